#!/bin/sh
# The systematic build finds the fork-join lost actor and replays it.
#
# Usage: find_replay.sh BINARY MAX_SEEDS [ARGS...]
#
# TROUPE_SYSTEMATIC_BUG=inject_drop brings back the scheduler bug fixed in
# 714427e (inject_pop dropped a task that a ring held by a descheduled thief
# refused; the actor stayed marked scheduled and its round hung). Seeds 1,
# 2, ... run BINARY ARGS until one fails with the round's messages never
# handled; none within MAX_SEEDS fails the test. That seed is then run twice
# more: each run must fail the same way, with the same summary line (seed,
# period, switch points, hand-overs and the fingerprint of every hand-over),
# and the seed without the bug must pass.
set -u

bin=$1
max=$2
shift 2
out=$(mktemp)
trap 'rm -f "$out"' EXIT

summary() {
    grep '^systematic: seed=' "$out" | tail -n 1
}

lost() {
    grep -q 'messages lost or never run' "$out"
}

found=
seed=1
while [ "$seed" -le "$max" ]; do
    if ! env TROUPE_SYSTEMATIC_SEED="$seed" TROUPE_SYSTEMATIC_BUG=inject_drop \
        CMOCKA_TEST_ABORT=1 "$bin" "$@" >"$out" 2>&1; then
        if ! lost; then
            echo "seed $seed failed, but not with a lost actor:"
            cat "$out"
            exit 1
        fi
        found=$seed
        break
    fi
    seed=$((seed + 1))
done
if [ -z "$found" ]; then
    echo "the lost actor was not found within $max seeds"
    exit 1
fi
first=$(summary)
echo "found in seed $found (after $found seeds): $first"
grep '^rerun:' "$out"

for i in 1 2; do
    if env TROUPE_SYSTEMATIC_SEED="$found" TROUPE_SYSTEMATIC_BUG=inject_drop \
        CMOCKA_TEST_ABORT=1 "$bin" "$@" >"$out" 2>&1 || ! lost; then
        echo "replay $i of seed $found did not fail the same way:"
        cat "$out"
        exit 1
    fi
    again=$(summary)
    if [ "$again" != "$first" ]; then
        echo "replay $i of seed $found diverged:"
        echo "  first:  $first"
        echo "  replay: $again"
        exit 1
    fi
    echo "replay $i: identical"
done

if ! env TROUPE_SYSTEMATIC_SEED="$found" CMOCKA_TEST_ABORT=1 "$bin" "$@" \
    >"$out" 2>&1; then
    echo "seed $found fails without the bug too:"
    cat "$out"
    exit 1
fi
echo "without the bug, seed $found passes: $(summary)"
