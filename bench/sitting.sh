#!/usr/bin/env bash
# One sitting: builds (and the peers) side by side, one process at a time.
#   RUNS=5 bench/sitting.sh build/release ../old/build/release
#   PEERS=/tmp/troupe-peers RUNS=5 bench/sitting.sh build/release
# For each workload, RUNS rounds; a round runs each program once with
# WORKERS=2, then each once with WORKERS=1 (the build directories in the
# order given, then tokio and Go from PEERS, as ../shared/peers/build.sh
# leaves them). Then one line per workload, worker count and program: the
# median rate, the runs' rates and, where the program prints them, the
# largest RSS and the median bytes per actor. BENCHES picks the workloads.
set -euo pipefail
[ $# -ge 1 ] || {
    echo "usage: bench/sitting.sh build-dir [build-dir...]" >&2
    exit 2
}
runs=${RUNS:-5}
benches=${BENCHES:-mpsc pingpong call call4 spawn ring fanout restart skynet forkjoin pairs}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# The program for workload $1 of program $2 (a build directory or a peer).
program() {
    case $2 in
    tokio | go) echo "$PEERS/$2/bin/$1" ;;
    *) echo "$2/bench/bench_$1" ;;
    esac
}

progs=("$@")
if [ -n "${PEERS:-}" ]; then
    progs+=(tokio go)
fi
for b in $benches; do
    for ((r = 0; r < runs; r++)); do
        for w in 2 1; do
            for p in "${progs[@]}"; do
                bin=$(program "$b" "$p")
                [ -x "$bin" ] || continue
                line=$(WORKERS=$w "$bin" | grep 'workload=') || line=
                echo "$b $w $p $line" >>"$out"
            done
        done
    done
done
awk "$(<"$(dirname "$0")/stats.awk")"'
{
    k = $1 " " $2 " " $3
    if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    if ((rate = field("rate")) == "") { failed[k]++; next }
    rates[k] = rates[k] " " sprintf("%.3g", rate / 1e6)
    if ((rss = field("rss_kb")) != "" && rss + 0 > peak[k] + 0) peak[k] = rss
    if ((bpa = field("bytes_per_actor")) != "") bytes[k] = bytes[k] " " bpa
}
END {
    for (i = 1; i <= n; i++) {
        k = order[i]
        line = sprintf("%s median %s M/s; runs:%s", k, median(rates[k]), rates[k])
        if (peak[k] != "") line = line sprintf("; rss_kb <= %s", peak[k])
        if (bytes[k] != "") line = line sprintf("; bytes_per_actor median %s", median(bytes[k]))
        if (failed[k]) line = line sprintf("; %d runs failed", failed[k])
        print line
    }
}' "$out"
