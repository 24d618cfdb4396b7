#!/usr/bin/env bash
# The sanitizer and fuzzing jobs of CI (issue: crash-proof and hostile-input-proof):
#  1. the whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (g++),
#  2. the concurrency tests (threads and forked processes) under ThreadSanitizer (g++),
#  3. the libFuzzer targets (clang) for FUZZ_SECONDS each (default 30).
# Run after scripts/install-deps.sh. Builds into build-asan/, build-tsan/ and build-fuzz/.
# SANITIZE_STAGES picks stages (default "asan tsan fuzz").
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
fuzz_seconds=${FUZZ_SECONDS:-30}
stages=" ${SANITIZE_STAGES:-asan tsan fuzz} "
stage() { [[ $stages == *" $1 "* ]]; }

if stage asan; then
echo "== ASan + UBSan test suite"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVRING_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-asan -j"$jobs"
# The install tests rebuild a consumer project without sanitizers: covered by the main run.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 600 -E '^install_'
fi

# TSan sees the races between threads of one process; forked children run instrumented too (each
# checks its own threads), but TSan cannot see two processes racing through a shared mapping:
# the multi-process and crash tests are here for their in-process threads and to keep the
# fork paths TSan-clean. Like the stress tests themselves, a clean run proves no ordering right.
tsan_targets=(evring_core_ring_test evring_core_ring_liveness_test evring_core_ring_publish_test
  evring_core_ring_consumer_test evring_core_ring_exclusive_test evring_core_ring_bias_test
  evring_core_ring_stress_test evring_core_ordering_test
  evring_core_dedup_test evring_core_histogram_test evring_shm_multiprocess_test
  evring_shm_dedup_multiprocess_test evring_shm_crash_test)
tsan_tests='^(core/(ring|ring_liveness|ring_publish|ring_consumer|ring_exclusive|ring_bias|ring_stress|ordering|dedup|histogram)_test|shm/(multiprocess|dedup_multiprocess|crash)_test):'
if stage tsan; then
  echo "== ThreadSanitizer concurrency tests"
  tsan_start=$SECONDS
  # g++ (shared libtsan): ring_test replaces operator new to count allocations, which clang's
  # static TSan runtime also defines. g++ 12 warns (-Wtsan) that std::atomic_thread_fence is not
  # modelled; neither compiler models fences, see tests/tsan.supp.
  CC=gcc CXX=g++ cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DEVRING_BUILD_BENCH=OFF -DEVRING_BUILD_TOOLS=OFF \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
  cmake --build build-tsan -j"$jobs" --target "${tsan_targets[@]}"
  # halt_on_error: the first report fails the test that caused it. The suppressions are the
  # ring's seqlock copy-outs (discarded when lapped) and TSan's blind spot for a robust mutex
  # recovered through EOWNERDEAD; each entry says why it is benign.
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:history_size=4:suppressions=$PWD/tests/tsan.supp" \
    ctest --test-dir build-tsan --output-on-failure -j"$jobs" --timeout 900 -R "$tsan_tests"
  echo "ThreadSanitizer stage: $((SECONDS - tsan_start)) s"
fi

if stage fuzz; then

if command -v clang++ >/dev/null && ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "== libFuzzer targets, ${fuzz_seconds} s each"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DEVRING_BUILD_TESTS=OFF -DEVRING_BUILD_BENCH=OFF -DEVRING_BUILD_TOOLS=OFF -DEVRING_BUILD_FUZZ=ON \
    -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=all" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  cmake --build build-fuzz -j"$jobs"
  # segment_fuzz works on a bus named fuzz-<its pid> and removes it at exit; a run that crashed
  # or was killed leaves it in /dev/shm. Remove those whose process is gone.
  remove_stale_fuzz_buses() {
    local f pid
    for f in /dev/shm/evring.fuzz-*; do
      [[ -e $f ]] || continue
      pid=${f##*-}
      [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null && rm -f "$f" && echo "removed stale $f"
    done
    return 0
  }
  remove_stale_fuzz_buses
  trap remove_stale_fuzz_buses EXIT
  for target in envelope_fuzz names_fuzz segment_fuzz jsonl_fuzz; do
    corpus=build-fuzz/corpus/$target
    mkdir -p "$corpus"
    seeds=()  # hand-written starting inputs, read only (tests/fuzz/seeds/<target>/)
    [[ -d tests/fuzz/seeds/$target ]] && seeds=("tests/fuzz/seeds/$target")
    build-fuzz/tests/fuzz/evring_$target "$corpus" "${seeds[@]}" -artifact_prefix=build-fuzz/ -max_total_time="$fuzz_seconds" \
      -max_len=4096 -timeout=10 -print_final_stats=1 2>build-fuzz/$target.log || {
        tail -40 build-fuzz/$target.log; echo "fuzz target $target failed"; exit 1; }
    grep -E "stat::number_of_executed_units|stat::peak_rss" build-fuzz/$target.log | tr '\n' ' '
    echo " corpus: $(ls "$corpus" | wc -l) files ($target)"
  done
else
  echo "fuzzing skipped: clang++ with libclang-rt (libFuzzer) is not installed"
fi
fi
