#!/usr/bin/env bash
# Scaling matrix and same-run references for issue #5, on whatever machine runs it.
#   producers 1 2 4 8 over 1 and 8 partitions (1 consumer); consumers 1 2 4 (1 producer);
#   the 1+1 headline (batch 1 and 16, exclusive, dedup) with bare_spsc in the same run (batch 1
#   and 16 also bare_spsc_slot, bare_spsc_span and Boost message_queue), and five
#   interleaved rounds of shared / exclusive / dedup; latency + RTT (shared and exclusive)
#   beside the ping-pong; every peer case.
# Every process gets its own CPU when the machine has enough (--cpus 0..N-1). Outputs one file
# per run (table + a JSON last line) under OUT. Static binaries carried to a bare machine:
#   cmake -S . -B build-static -G Ninja -DEVRING_BUILD_TESTS=OFF -DEVRING_BUILD_TOOLS=OFF \
#     -DEVRING_STATIC_EXECUTABLES=ON && cmake --build build-static --target evring-bench evring-peers
#   B=build-static/bench/evring/evring-bench P=build-static/bench/peers/evring-peers \
#     OUT=out bench/scripts/scaling.sh
set -u
B=${B:-build/bench/evring/evring-bench}
P=${P:-build/bench/peers/evring-peers}
OUT=${OUT:-/tmp/evring-scaling}
DUR=${DUR:-0.5}      # seconds per run
RUNS=${RUNS:-3}      # runs per configuration (medians, min-max)
mkdir -p "$OUT"
ncpu=$(nproc)
all=$(seq -s, 0 $((ncpu - 1)))
{ date -u; uname -a; nproc; lscpu 2>/dev/null || grep -m1 "model name" /proc/cpuinfo; } >"$OUT/machine.txt" 2>&1

run() {  # run NAME TIMEOUT CMD...
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*" >&2
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"
  echo "$name rc=$?" >>"$OUT/status.txt"
}

# The three references of issue #5 alternate with the evring runs of one command, so their
# ratios hold even when the host changes speed between commands.
refs=bare_spsc,bare_spsc_slot,bare_spsc_span,boost_mq
run tp_1p1c 120 "$B" throughput --cpus 0,1 --seconds "$DUR" --runs 5 --against "$refs" --json
run tp_1p1c_exclusive 90 "$B" throughput --cpus 0,1 --seconds "$DUR" --runs 5 --exclusive --json
run tp_1p1c_batch16 120 "$B" throughput --cpus 0,1 --seconds "$DUR" --runs 5 --batch 16 \
  --against "$refs" --json
run tp_1p1c_dedup 90 "$B" throughput --cpus 0,1 --seconds "$DUR" --runs 5 --dedup --no-peers --json
# Interleaved rounds (shared, exclusive, dedup, one run each with its bare_spsc): the ratios
# between the three come from runs minutes apart at most, not from separate blocks.
for r in 1 2 3 4 5; do
  run "round${r}_shared" 60 "$B" throughput --cpus 0,1 --seconds "$DUR" --runs 1 --json
  run "round${r}_exclusive" 60 "$B" throughput --cpus 0,1 --seconds "$DUR" --runs 1 --exclusive --json
  run "round${r}_dedup" 60 "$B" throughput --cpus 0,1 --seconds "$DUR" --runs 1 --dedup --json
done
run lat_spin 90 "$B" latency --cpus 0,1 --seconds 2 --json --hgrm "$OUT/lat_spin.hgrm"
run lat_spin_exclusive 90 "$B" latency --cpus 0,1 --seconds 2 --exclusive --json \
  --hgrm "$OUT/lat_spin_exclusive.hgrm"
run lat_block 90 "$B" latency --cpus 0,1 --seconds 2 --wait block --json --hgrm "$OUT/lat_block.hgrm"
run peers 180 "$P" --cpus 0,1 --runs "$RUNS" --seconds "$DUR" --json
for parts in 1 8; do
  for p in 1 2 4 8; do
    run "scale_p${p}_parts${parts}_c1" 90 "$B" throughput --producers "$p" --partitions "$parts" \
      --consumers 1 --cpus "$all" --seconds "$DUR" --runs "$RUNS" --no-peers --json
  done
done
for c in 2 4; do
  run "scale_p1_parts1_c${c}" 90 "$B" throughput --producers 1 --partitions 1 --consumers "$c" \
    --cpus "$all" --seconds "$DUR" --runs "$RUNS" --no-peers --json
done
run "scale_p8_parts8_c4" 90 "$B" throughput --producers 8 --partitions 8 --consumers 4 \
  --cpus "$all" --seconds "$DUR" --runs "$RUNS" --no-peers --json
cat "$OUT/status.txt"
