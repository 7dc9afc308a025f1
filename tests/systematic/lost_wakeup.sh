#!/bin/sh
# The systematic build reports a lost wakeup as a deadlock, with its seed,
# and the seed replays it.
#
# Usage: lost_wakeup.sh BINARY SEEDS
#
# Over seeds 1..SEEDS, lost_wakeup must both pass (the setter first) and be
# stopped with "systematic: deadlock" and a rerun line (the waiter first);
# the first deadlocked seed, run again, must deadlock with the same summary.
set -u

bin=$1
max=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT

passed=0
locked=
seed=1
while [ "$seed" -le "$max" ]; do
    if TROUPE_SYSTEMATIC_SEED=$seed "$bin" >"$out" 2>&1; then
        passed=$((passed + 1))
    elif grep -q '^systematic: deadlock' "$out" &&
        grep -q "^rerun: TROUPE_SYSTEMATIC_SEED=$seed " "$out"; then
        if [ -z "$locked" ]; then
            locked=$seed
            first=$(grep '^systematic: seed=' "$out")
        fi
    else
        echo "seed $seed failed otherwise:"
        cat "$out"
        exit 1
    fi
    seed=$((seed + 1))
done
if [ -z "$locked" ] || [ "$passed" -eq 0 ]; then
    echo "over $max seeds: $passed passed, first deadlock: ${locked:-none}"
    exit 1
fi
TROUPE_SYSTEMATIC_SEED=$locked "$bin" >"$out" 2>&1
again=$(grep '^systematic: seed=' "$out")
if ! grep -q '^systematic: deadlock' "$out" || [ "$again" != "$first" ]; then
    echo "seed $locked did not replay: $first / $again"
    exit 1
fi
echo "over $max seeds: $passed passed; seed $locked deadlocked and replayed: $first"
