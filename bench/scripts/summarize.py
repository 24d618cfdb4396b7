#!/usr/bin/env python3
"""Prints the headline figures of one scaling.sh output directory (the JSON last line of each
run file) as the rows RESULTS.md quotes: medians (min-max) and the ratios to the references
measured in the same command.

    python3 bench/scripts/summarize.py OUT
"""
import json
import statistics
import sys
from pathlib import Path


def last_json(path):
    """The JSON object on the last non-empty line of a run file, or None if the run failed."""
    try:
        lines = [l for l in path.read_text().splitlines() if l.strip()]
    except FileNotFoundError:
        return None
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return None


def m(x):
    return f"{x / 1e6:.2f} M"


def throughput_row(out, name, label):
    d = last_json(out / f"{name}.txt")
    if d is None:
        print(f"{label}: missing or failed ({name}.txt)")
        return None
    e = d["events_per_sec"]
    line = f"{label}: {m(e['median'])} ev/s ({m(e['min'])}-{m(e['max'])})"
    against = d.get("against")
    if against:  # every reference alternated with the evring runs of this command
        for case, c in against.items():
            line += f", {c['ratio']:.2f}x {case} ({m(c['msgs_per_sec']['median'])})"
            r = c.get("ratio_per_run")  # each evring run over the case's run right after it
            if r:
                line += f" [per run {r['median']:.2f}x, {r['min']:.2f}-{r['max']:.2f}]"
    elif d.get("bare_spsc_msgs_per_sec"):  # output of a build before --against
        bare = d["bare_spsc_msgs_per_sec"]
        line += f", {e['median'] / bare['median']:.2f}x bare_spsc ({m(bare['median'])})"
    print(line)
    return d


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: summarize.py OUT (a scaling.sh output directory)")
    out = Path(sys.argv[1])
    if not out.is_dir():
        sys.exit(f"summarize.py: {out} is not a directory")
    first = last_json(out / "tp_1p1c.txt")
    if first and "event_clock" in first:
        print(f"event clock: {first['event_clock']} (kernel clocksource {first['clocksource']})")
    throughput_row(out, "tp_1p1c", "try_publish, shared")
    throughput_row(out, "tp_1p1c_exclusive", "try_publish, exclusive")
    throughput_row(out, "tp_1p1c_batch16", "try_publish_batch 16, shared")
    throughput_row(out, "tp_1p1c_dedup", "try_publish --dedup, shared")

    ratios = {"exclusive / shared": [], "dedup / shared": []}
    for r in range(1, 6):
        s, x, dd = (last_json(out / f"round{r}_{k}.txt") for k in ("shared", "exclusive", "dedup"))
        if s and x:
            ratios["exclusive / shared"].append(x["events_per_sec"]["median"] / s["events_per_sec"]["median"])
        if s and dd:
            ratios["dedup / shared"].append(dd["events_per_sec"]["median"] / s["events_per_sec"]["median"])
    for k, v in ratios.items():
        if v:
            print(f"rounds {k}: {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f}), "
                  + " ".join(f"{x:.2f}" for x in v))

    peers = last_json(out / "peers.txt")
    if peers:
        cases = peers["cases"]
        def metric(case, name):
            return cases.get(case, {}).get("metrics", {}).get(name, {}).get("median")
        # A separate command from evring's runs: its rates are listed, not divided into evring's
        # (the throughput rows above carry the same-run ratios).
        rates = [f"{case} {m(metric(case, 'msgs_per_s'))}"
                 for case in ("bare_spsc", "bare_spsc_slot", "bare_spsc_span", "boost_mq", "boost_spsc_shm",
                              "moodycamel_cq", "moodycamel_rwq")
                 if metric(case, "msgs_per_s")]
        print("peers run (msgs/s): " + "; ".join(rates))
        print(f"peers pingpong rtt p50 {metric('pingpong', 'rtt_p50_ns')} ns, one-way p50 "
              f"{metric('pingpong', 'one_way_p50_ns')} ns; "
              f"bare_spsc rtt p50 {metric('bare_spsc', 'rtt_p50_ns')} ns")

    for name in ("lat_spin", "lat_spin_exclusive", "lat_block"):
        d = last_json(out / f"{name}.txt")
        if d is None:
            print(f"{name}: missing or failed")
            continue
        line = f"{name}: one-way p50 {d['p50_ns']} / p99 {d['p99_ns']} ns"
        # Only the ping-pong of the same command: the peers run may have met another host regime.
        pp = d.get("pingpong_rtt_p50_ns")
        if pp:
            line += f" ({d['p50_ns'] / (pp / 2):.1f}x the ping-pong's one-way {pp / 2:.0f} ns)"
        if "rtt_p50_ns" in d:
            line += f"; rtt p50 / p99 {d['rtt_p50_ns']} / {d['rtt_p99_ns']} ns"
            if pp:
                line += (f", ping-pong {pp} / {d['pingpong_rtt_p99_ns']} ns: "
                         f"{d['rtt_p50_ns'] / pp:.2f}x / {d['rtt_p99_ns'] / d['pingpong_rtt_p99_ns']:.2f}x")
        print(line)

    rows = []
    for parts in (1, 8):
        for p in (1, 2, 4, 8):
            rows.append((f"{p}x{parts}x1", f"scale_p{p}_parts{parts}_c1"))
    for c in (2, 4):
        rows.append((f"1x1x{c}", f"scale_p1_parts1_c{c}"))
    rows.append(("8x8x4", "scale_p8_parts8_c4"))
    cells = []
    for label, name in rows:
        d = last_json(out / f"{name}.txt")
        cells.append(f"{label} {m(d['events_per_sec']['median']) if d else 'failed'}")
    print("scaling (producers x partitions x consumers): " + "; ".join(cells))


if __name__ == "__main__":
    main()
