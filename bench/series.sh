#!/usr/bin/env bash
# Paired series: one workload, several configurations run alternately.
#   ROUNDS=21 bench/series.sh mpsc build/release:2 build/release:1
#   ROUNDS=41 bench/series.sh pingpong ../old/build/release:1 build/release:1
# A configuration is a build directory and a worker count. Each round runs
# every configuration once, in reverse order every other round, so that a
# slow phase of the machine falls on all of them. Then one line each: the
# median rate, the median of its ratios to the first configuration within
# a round, the ratio of the means of the fastest fifth of each, and the
# bytes per actor (or peak RSS) of every run.
set -euo pipefail
[ $# -ge 2 ] || {
    echo "usage: bench/series.sh workload dir:workers [dir:workers...]" >&2
    exit 2
}
rounds=${ROUNDS:-21}
bench=$1
shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT

for ((r = 0; r < rounds; r++)); do
    order=("$@")
    if ((r % 2)); then
        for ((i = 0, j = $# - 1; i < j; i++, j--)); do
            t=${order[i]} order[i]=${order[j]} order[j]=$t
        done
    fi
    for c in "${order[@]}"; do
        line=$(WORKERS=${c##*:} "${c%:*}/bench/bench_$bench" | grep 'workload=') || line=
        echo "$r $c $line" >>"$out"
    done
done
awk -v first="$1" -v bench="$bench" "$(<"$(dirname "$0")/stats.awk")"'
function sort(v, n,   i, j, t) {
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
}
function amedian(v, n) { sort(v, n); return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
function topmean(c,   v, n, i, k, s) {
    n = 0
    for (i = 0; i < R; i++) if ((c, i) in rate) v[++n] = rate[c, i]
    sort(v, n); k = int(n / 5); if (k < 1) k = 1
    for (i = n - k + 1; i <= n; i++) s += v[i]
    return s / k
}
{
    c = $2
    if (!(c in seen)) { seen[c] = 1; order[++nc] = c }
    if ($1 + 1 > R) R = $1 + 1
    if ((x = field("rate")) == "") { failed[c]++; next }
    rate[c, $1] = x
    if ((m = field("bytes_per_actor")) == "") m = field("rss_kb")
    mem[c] = mem[c] " " m
}
END {
    for (k = 1; k <= nc; k++) {
        c = order[k]; n = 0; q = 0
        for (i = 0; i < R; i++) {
            if (!((c, i) in rate)) continue
            v[++n] = rate[c, i]
            if ((first, i) in rate) w[++q] = rate[c, i] / rate[first, i]
        }
        printf "%s %s: median %.3g M/s; paired %.3f; fastest fifth %.3f;%s", \
            bench, c, amedian(v, n) / 1e6, amedian(w, q), topmean(c) / topmean(first), mem[c]
        if (failed[c]) printf "; %d runs failed", failed[c]
        printf "\n"
        delete v; delete w
    }
}' "$out"
