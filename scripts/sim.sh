#!/usr/bin/env bash
# The simulation's CI run (docs/testing.md): every scenario of
# tests/sim/canary_test.c (the canaries' passing twins: the bug switches
# off, the bank transfer done as one call) over seeds derived from the
# commit, one seed in twenty run again in a second process and its step
# trace compared (the first step where the two part is named), every
# "sometimes" property required to hold on some seed; then every tape of
# tests/sim/corpus/ replayed: it must fail the same way with its bug and
# pass without it; then the network's checks (simnet_test, chat_sim_test)
# on the same seeds (TROUPE_SIM_BASE).
#
#   scripts/sim.sh [--no-build] [--seeds N] [build-dir]
#
# N defaults to 200 a scenario; build-dir to build/dev. The first seed is
# the commit's first 8 hex digits (SIM_BASE overrides it), so a commit runs
# the same seeds every time and the next commit runs new ones.
set -uo pipefail
cd "$(dirname "$0")/.."

build=1
seeds=200
dir=build/dev
while [ $# -gt 0 ]; do
    case $1 in
    --no-build) build=0 ;;
    --seeds) seeds=$2; shift ;;
    *) dir=$1 ;;
    esac
    shift
done

if [ "$build" = 1 ]; then
    preset=$(basename "$dir")
    cmake --preset "$preset" >/dev/null || exit 1
    cmake --build "$dir" -j "${JOBS:-2}" --target sim_canary_test \
        simnet_test chat_sim_test || exit 1
fi

if [ -n "${SIM_BASE:-}" ]; then
    base=$SIM_BASE
else
    head=$(git rev-parse HEAD 2>/dev/null || echo 1)
    base=$((16#${head:0:8}))
fi

bin="$dir/tests/sim_canary_test"
[ -x "$bin" ] || { echo "missing $bin: build first" >&2; exit 1; }
out="${TMPDIR:-/tmp}/troupe-sim-$$"
mkdir -p "$out"
start=$(date +%s.%N)
echo "sim: $bin: seeds $base .. $((base + seeds - 1)) a scenario"
TROUPE_SIM_OUT="$out" "$bin" --ci "$base" "$seeds" tests/sim/corpus
rc=$?
# The network's checks, on this commit's seeds too: the echo check over the
# simulated network (resets, losses, every tenth seed rechecked) and the
# chat server under resets and partitions.
for t in simnet_test chat_sim_test; do
    [ "$rc" -eq 0 ] || break
    echo "sim: $t on seeds from $base"
    TROUPE_SIM_BASE="$base" TROUPE_SIM_OUT="$out" "$dir/tests/$t" || rc=1
done
end=$(date +%s.%N)
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
echo "sim: done in $secs s: $([ $rc -eq 0 ] && echo passed || echo FAILED)"
if [ $rc -ne 0 ]; then
    echo "sim: the failures' tapes, traces and trees are in $out"
    echo "sim: rerun one seed: TROUPE_SIM_SEED=N $bin --ci N 1"
else
    rm -rf "$out"
fi
exit $rc
