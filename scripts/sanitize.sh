#!/usr/bin/env bash
# The sanitizer and fuzzing jobs of CI (issue: crash-proof and hostile-input-proof):
#  1. the whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (g++),
#  2. the libFuzzer targets (clang) for FUZZ_SECONDS each (default 30).
# Run after scripts/install-deps.sh. Builds into build-asan/ and build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
fuzz_seconds=${FUZZ_SECONDS:-30}

echo "== ASan + UBSan test suite"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVRING_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-asan -j"$jobs"
# The install tests rebuild a consumer project without sanitizers: covered by the main run.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 600 -E '^install_'

if command -v clang++ >/dev/null && ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "== libFuzzer targets, ${fuzz_seconds} s each"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DEVRING_BUILD_TESTS=OFF -DEVRING_BUILD_BENCH=OFF -DEVRING_BUILD_TOOLS=OFF -DEVRING_BUILD_FUZZ=ON \
    -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=all" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  cmake --build build-fuzz -j"$jobs"
  for target in envelope_fuzz names_fuzz segment_fuzz; do
    corpus=build-fuzz/corpus/$target
    mkdir -p "$corpus"
    build-fuzz/tests/fuzz/evring_$target "$corpus" -artifact_prefix=build-fuzz/ -max_total_time="$fuzz_seconds" \
      -max_len=4096 -timeout=10 -print_final_stats=1 2>build-fuzz/$target.log || {
        tail -40 build-fuzz/$target.log; echo "fuzz target $target failed"; exit 1; }
    grep -E "stat::number_of_executed_units|stat::peak_rss" build-fuzz/$target.log | tr '\n' ' '
    echo " corpus: $(ls "$corpus" | wc -l) files ($target)"
  done
else
  echo "fuzzing skipped: clang++ with libclang-rt (libFuzzer) is not installed"
fi
