#!/usr/bin/env bash
# Scaling: every workload at several worker counts, one process at a time.
#   bench/scale.sh [build-dir]
#   COUNTS="1 2 4 8 16" RUNS=3 bench/scale.sh build/release
# For each workload, RUNS rounds; a round runs the program once at each
# count in COUNTS (default: 1, 2, then doubling up to `nproc`, and
# `nproc` itself). Then a Markdown table: each workload's median rate (M/s)
# at each count, and each count's median ratio, within a round, to the
# first count. BENCHES picks the workloads; SCALE passes through.
set -euo pipefail
dir=${1:-build/release}
runs=${RUNS:-3}
benches=${BENCHES:-mpsc pingpong call call4 spawn ring fanout restart skynet forkjoin pairs}
if [ -z "${COUNTS:-}" ]; then
    cores=$(nproc)
    COUNTS=1
    for ((c = 2; c < cores; c *= 2)); do COUNTS+=" $c"; done
    [ "$cores" -gt 1 ] && COUNTS+=" $cores"
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT

for b in $benches; do
    bin="$dir/bench/bench_$b"
    [ -x "$bin" ] || continue
    for ((r = 0; r < runs; r++)); do
        for c in $COUNTS; do
            line=$(WORKERS=$c "$bin" | grep 'workload=') || line=
            echo "$b $r $c $line" >>"$out"
        done
    done
done
awk -v counts="$COUNTS" -v runs="$runs" "$(<"$(dirname "$0")/stats.awk")"'
{
    if (!($1 in seen)) { seen[$1] = 1; order[++nb] = $1 }
    rate = field("rate")
    if (rate == "") { failed[$1 " " $3]++; next }
    byround[$1 " " $2 " " $3] = rate
    rates[$1 " " $3] = rates[$1 " " $3] " " rate / 1e6
}
END {
    nc = split(counts, c, " ")
    head = "| workload |"; rule = "|---|"
    for (i = 1; i <= nc; i++) { head = head " " c[i] " |"; rule = rule "---|" }
    for (i = 2; i <= nc; i++) { head = head " " c[i] "/" c[1] " |"; rule = rule "---|" }
    print head; print rule
    for (k = 1; k <= nb; k++) {
        b = order[k]; row = "| " b " |"
        for (i = 1; i <= nc; i++) {
            m = median(rates[b " " c[i]])
            row = row " " (m == "" ? "failed" : sprintf("%.3g", m)) \
                (failed[b " " c[i]] ? " (" failed[b " " c[i]] " failed)" : "") " |"
        }
        for (i = 2; i <= nc; i++) {
            list = ""
            for (r = 0; r < runs; r++)
                if ((b " " r " " c[1]) in byround && (b " " r " " c[i]) in byround)
                    list = list " " byround[b " " r " " c[i]] / byround[b " " r " " c[1]]
            m = median(list)
            row = row " " (m == "" ? "-" : sprintf("%.2f", m)) " |"
        }
        print row
    }
}' "$out"
