#!/usr/bin/env bash
# Runs every benchmark in a build directory.
#   bench/run.sh [build-dir]        one run of each, its result line
#   RUNS=5 bench/run.sh [build-dir] five runs of each, then the median line
# WORKERS and SCALE pass through to the programs (see BENCH.md); INSPECT=1
# turns the live endpoint on in each (nobody watching it).
set -euo pipefail
dir=${1:-build/release}
runs=${RUNS:-1}
order="mpsc pingpong call call4 spawn ring fanout restart skynet forkjoin pairs"
status=0
for name in $order; do
    bin="$dir/bench/bench_$name"
    [ -x "$bin" ] || continue
    lines=()
    for ((i = 0; i < runs; i++)); do
        if ! line=$("$bin"); then
            echo "$line"
            status=1
            continue 2
        fi
        lines+=("$line")
        [ "$runs" -gt 1 ] && echo "  run $((i + 1)): $line"
    done
    if [ "$runs" -gt 1 ]; then
        # The run whose rate is the median of the runs.
        median=$(printf '%s\n' "${lines[@]}" |
            awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^rate=/) { split($i, kv, "="); print kv[2] "\t" $0 } }' |
            sort -g | awk -v n="$runs" 'NR == int((n + 1) / 2) { sub(/^[^\t]*\t/, ""); print }')
        echo "median: $median"
    else
        echo "${lines[0]}"
    fi
done
exit $status
