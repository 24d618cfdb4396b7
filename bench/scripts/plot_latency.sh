#!/usr/bin/env bash
# Latency percentile plot from HdrHistogram .hgrm files (evring-bench latency --hgrm, or any
# HdrHistogram tool), with gnuplot (Debian: gnuplot-nox).
#   usage: bench/scripts/plot_latency.sh OUT.svg|OUT.png [LABEL=]FILE.hgrm ...
# x: percentile on the usual 1/(1-p) log axis; y: latency in the unit the files were written in
# (evring-bench writes microseconds).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,6p' "$0" >&2
  exit 2
fi
command -v gnuplot >/dev/null || { echo "plot_latency.sh: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 2; }
out=$1
shift
term="svg size 900,540 dynamic"
[[ $out == *.png ]] && term="png size 900,540"
plots=""
for arg in "$@"; do
  file=${arg#*=}
  label=$(basename "$file" .hgrm)
  [[ $arg == *=* ]] && label=${arg%%=*}
  [[ -r $file ]] || { echo "plot_latency.sh: cannot read $file" >&2; exit 2; }
  plots+="'$file' using 4:1 with lines lw 2 title '$label',"
done
gnuplot <<GNUPLOT
set terminal $term
set output '$out'
set logscale x
set logscale y
set xlabel 'percentile'
set ylabel 'latency (us)'
set xtics ('50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000)
set grid
set key top left
plot ${plots%,}
GNUPLOT
echo "wrote $out"
