#!/usr/bin/env bash
# What does `evring top` attached to a bus under full load cost the bus?
#
# Runs the cross-process throughput bench (evring-bench throughput, one run of SECONDS each)
# ROUNDS times without and ROUNDS times with `evring top` attached to the bench's bus,
# interleaved A B B A A B ... so that drift (thermal, other load) hits both sides alike, and
# prints the median events/s of each side, their ratio (with / without), and the median of the
# per-round ratios (each round's two runs are adjacent in time, so that figure resists load
# that comes and goes better than the ratio of medians).
#
# The bench names its bus evb-<pid>-t<n> and has no flag to choose it, so top is started on the
# bus that appears for the bench's pid. With TOP_IN_TMUX=1 top runs in a detached tmux pane (a
# real terminal, escape codes and all); otherwise its plain frames go to a file.
#
# Usage: bench/top_overhead.sh [ROUNDS] [-- extra evring-bench throughput flags]
# Env:   BUILD=build   build dir holding bench/evring/evring-bench and tools/evring
#        SECONDS_PER_RUN=2  TOP_INTERVAL_MS=1000  TOP_IN_TMUX=0
# Exit:  0 ok; 1 a bench run or top failed (message on stderr); 2 bad usage.
set -euo pipefail

rounds=${1:-5}
shift || true
[[ ${1:-} == "--" ]] && shift
if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
  echo "top_overhead.sh: ROUNDS must be a positive integer, got '$rounds'" >&2
  exit 2
fi
build=${BUILD:-build}
bench=$build/bench/evring/evring-bench
evring=$build/tools/evring
seconds=${SECONDS_PER_RUN:-2}
interval=${TOP_INTERVAL_MS:-1000}
in_tmux=${TOP_IN_TMUX:-0}
for exe in "$bench" "$evring"; do
  if [[ ! -x $exe ]]; then
    echo "top_overhead.sh: $exe is not built (set BUILD to your build dir)" >&2
    exit 2
  fi
done
if [[ $in_tmux == 1 ]] && ! command -v tmux > /dev/null; then
  echo "top_overhead.sh: TOP_IN_TMUX=1 needs tmux" >&2
  exit 2
fi

work=$(mktemp -d /tmp/top-overhead.XXXXXX)
tmux_socket="top-overhead-$$"
cleanup() {
  [[ $in_tmux == 1 ]] && tmux -L "$tmux_socket" kill-server 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# events_per_sec of the JSON line in file $1.
events_per_sec() {
  python3 -c 'import json,sys; print(int(json.loads(sys.stdin.read().strip().splitlines()[-1])["events_per_sec"]["median"]))' < "$1"
}

# One bench run; $1 = with|without. Prints events/s.
run_once() {
  local mode=$1 out=$work/bench.json
  "$bench" throughput --runs 1 --seconds "$seconds" --no-peers --json "${bench_flags[@]}" \
    > "$out" 2> "$work/bench.err" &
  local bench_pid=$! top_pid="" bus=""
  if [[ $mode == with ]]; then
    for _ in $(seq 1 2000); do  # up to 10 s for the bench to create its bus
      bus=$(cd /dev/shm && ls -1 "evring.evb-$bench_pid-t"* 2> /dev/null | head -n1 || true)
      [[ -n $bus ]] && break
      sleep 0.005
    done
    if [[ -z $bus ]]; then
      echo "top_overhead.sh: the bench (pid $bench_pid) created no bus to attach top to" >&2
      wait "$bench_pid" || true
      exit 1
    fi
    bus=${bus#evring.}
    if [[ $in_tmux == 1 ]]; then
      tmux -L "$tmux_socket" new-session -d -s top -x 160 -y 50 \
        "$evring top $bus --interval-ms $interval 2> $work/top.err; sleep 60"
    else
      "$evring" top "$bus" --interval-ms "$interval" < /dev/null > "$work/top.out" 2> "$work/top.err" &
      top_pid=$!
    fi
  fi
  if ! wait "$bench_pid"; then
    echo "top_overhead.sh: evring-bench failed: $(tail -n1 "$work/bench.err")" >&2
    exit 1
  fi
  if [[ $mode == with ]]; then
    local frames
    if [[ $in_tmux == 1 ]]; then
      frames=$(tmux -L "$tmux_socket" capture-pane -p -t top | grep -c "evring top: bus $bus" || true)
      tmux -L "$tmux_socket" kill-server 2> /dev/null || true
    else
      kill "$top_pid" 2> /dev/null || true
      wait "$top_pid" 2> /dev/null || true
      frames=$(grep -c "evring top: bus $bus" "$work/top.out" || true)
    fi
    if [[ ${frames:-0} -eq 0 ]]; then
      echo "top_overhead.sh: top never drew a frame of bus $bus: $(cat "$work/top.err")" >&2
      exit 1
    fi
  fi
  events_per_sec "$out"
}

median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

bench_flags=("$@")
without=() with=() pair_ratios=()
echo "# top overhead: $rounds rounds x ${seconds}s, top every ${interval} ms$([[ $in_tmux == 1 ]] && echo ' in tmux'), bench flags: ${bench_flags[*]:-(defaults)}"
echo "# $(uname -n) $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
printf '%-6s %-8s %15s\n' round top events_per_sec
for ((r = 0; r < rounds; ++r)); do
  if ((r % 2 == 0)); then order=(without with); else order=(with without); fi
  for mode in "${order[@]}"; do
    v=$(run_once "$mode")
    printf '%-6d %-8s %15d\n' "$r" "$mode" "$v"
    if [[ $mode == with ]]; then with+=("$v"); else without+=("$v"); fi
  done
  pair_ratios+=("$(awk -v a="${with[r]}" -v b="${without[r]}" 'BEGIN {printf "%.4f", a / b}')")
done
m_without=$(median "${without[@]}")
m_with=$(median "${with[@]}")
ratio=$(awk -v a="$m_with" -v b="$m_without" 'BEGIN {printf "%.3f", a / b}')
echo "median events/s without top: $m_without"
echo "median events/s with top:    $m_with"
echo "ratio (with / without):      $ratio"
echo "per-round ratios:            ${pair_ratios[*]}"
echo "median per-round ratio:      $(median "${pair_ratios[@]}")"
