#!/usr/bin/env bash
# Interleaved A/B of two evring-bench binaries (a base tree and a new one) on one machine: each
# round runs every configuration of both, one run each, so the two trees see the same moments of
# a noisy host; the ratios are taken per round and their medians reported.
#   BASE=/tmp/base/build/bench/evring/evring-bench NEW=build/bench/evring/evring-bench \
#     OUT=out ROUNDS=7 bench/scripts/ab.sh
# Build the base in a worktree:  git worktree add /tmp/base REV && cmake -S /tmp/base \
#   -B /tmp/base/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DEVRING_BUILD_TESTS=OFF \
#   && cmake --build /tmp/base/build --target evring-bench
# Files: OUT/rN_{base,new,newx,based,newd,newxd}.txt (throughput: shared, exclusive, dedup) and
# OUT/lN_{base,new}.txt (latency; the ping-pong in the same command), then OUT/summary.txt.
set -u
BASE=${BASE:?path of the base tree\'s evring-bench}
NEW=${NEW:-build/bench/evring/evring-bench}
OUT=${OUT:-/tmp/evring-ab}
ROUNDS=${ROUNDS:-7}
DUR=${DUR:-0.5}
mkdir -p "$OUT"
{ date -u; uname -a; grep -m1 "model name" /proc/cpuinfo; } >"$OUT/machine.txt" 2>&1

tp() { "$1" throughput --cpus 0,1 --runs 1 --seconds "$DUR" --json "${@:3}" >"$OUT/$2.txt" 2>&1; }
for r in $(seq "$ROUNDS"); do
  echo "== round $r" >&2
  tp "$BASE" "r${r}_base"
  tp "$NEW" "r${r}_new"
  tp "$NEW" "r${r}_newx" --exclusive
  tp "$BASE" "r${r}_based" --dedup --no-peers
  tp "$NEW" "r${r}_newd" --dedup --no-peers
  tp "$NEW" "r${r}_newxd" --exclusive --dedup --no-peers
  "$BASE" latency --cpus 0,1 --seconds 1 --json >"$OUT/l${r}_base.txt" 2>&1
  "$NEW" latency --cpus 0,1 --seconds 1 --json >"$OUT/l${r}_new.txt" 2>&1
done

python3 - "$OUT" "$ROUNDS" >"$OUT/summary.txt" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def last_json(path):
    try:
        return json.loads(open(path).read().strip().splitlines()[-1])
    except Exception:
        return None
def eps(name, r):
    j = last_json(f"{out}/r{r}_{name}.txt")
    return j["events_per_sec"]["median"] if j else None
def lat(name, r, key):
    j = last_json(f"{out}/l{r}_{name}.txt")
    return j.get(key) if j else None
def row(label, values):
    v = [x for x in values if x is not None]
    if not v:
        print(f"{label:44s} (no data)"); return
    print(f"{label:44s} median {statistics.median(v):8.3f}  min {min(v):8.3f}  max {max(v):8.3f}  n {len(v)}")
R = range(1, rounds + 1)
def ratio(a, b, f):
    x, y = f(a), f(b)
    return x / y if x and y else None
print("throughput, M events/s")
for n in ("base", "new", "newx", "based", "newd", "newxd"):
    row(f"  {n}", [(eps(n, r) or 0) / 1e6 or None for r in R])
print("per-round ratios")
row("  new / base (shared)", [ratio("new", "base", lambda n: eps(n, r)) for r in R])
row("  newx / new (exclusive / shared)", [ratio("newx", "new", lambda n: eps(n, r)) for r in R])
row("  newx / base", [ratio("newx", "base", lambda n: eps(n, r)) for r in R])
row("  based / base (dedup on/off, base)", [ratio("based", "base", lambda n: eps(n, r)) for r in R])
row("  newd / new (dedup on/off, new)", [ratio("newd", "new", lambda n: eps(n, r)) for r in R])
row("  newxd / newx (dedup on/off, exclusive)", [ratio("newxd", "newx", lambda n: eps(n, r)) for r in R])
row("  newd / based (dedup, new / base)", [ratio("newd", "based", lambda n: eps(n, r)) for r in R])
print("latency, ns (new / base per round; pingpong from the same command)")
for key in ("p50_ns", "p99_ns", "rtt_p50_ns", "rtt_p99_ns", "pingpong_rtt_p50_ns"):
    row(f"  base {key}", [lat("base", r, key) for r in R])
    row(f"  new  {key}", [lat("new", r, key) for r in R])
    row(f"  new/base {key}", [ratio("new", "base", lambda n: lat(n, r, key)) for r in R])
EOF
cat "$OUT/summary.txt"
