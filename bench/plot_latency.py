#!/usr/bin/env python3
"""Plot HdrHistogram .hgrm percentile distributions (as written by `evring-bench latency --hgrm`).

usage: plot_latency.py OUT.png FILE.hgrm [FILE.hgrm ...]
With matplotlib: latency (value column, as written) vs percentile on the usual
log 1/(1-p) axis. Without it: prints a text table of selected percentiles per file.
"""
import sys


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and not line.startswith("#") and parts[0][0].isdigit():
                try:
                    rows.append((float(parts[0]), float(parts[1])))
                except ValueError:
                    pass
    return rows


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, files = sys.argv[1], sys.argv[2:]
    data = {f: load(f) for f in files}
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        marks = [0.5, 0.9, 0.99, 0.999, 0.9999]
        print("file " + " ".join("p%g" % (m * 100) for m in marks) + "  (units as in the .hgrm)")
        for f, rows in data.items():
            vals = [next((v for v, p in rows if p >= m), rows[-1][0]) for m in marks]
            print(f, " ".join("%.3f" % v for v in vals))
        print("matplotlib not installed: %s not written" % out, file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(9, 5))
    for f, rows in data.items():
        xs = [1 / (1 - p) for v, p in rows if p < 1]
        ys = [v for v, p in rows if p < 1]
        ax.plot(xs, ys, label=f)
    ax.set_xscale("log")
    ax.set_xticks([2, 10, 100, 1000, 10000, 100000])
    ax.set_xticklabels(["50%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
    ax.set_ylabel("latency (hgrm units, us for evring-bench)")
    ax.set_xlabel("percentile")
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    fig.savefig(out, dpi=120, bbox_inches="tight")


if __name__ == "__main__":
    main()
