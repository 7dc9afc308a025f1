#!/bin/sh
# troupe-top against a running tree (live_page_server): one snapshot as
# JSON (checked by jq) and as text, and the refreshing view, sorted by
# restarts, after a crash.
#   top_test.sh <troupe-top> <live_page_server>
set -eu
top=$1
server=$2
dir=$(mktemp -d)
trap 'exec 3>&- 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
mkfifo "$dir/in"
"$server" 5 <"$dir/in" >"$dir/out" &
exec 3>"$dir/in"
for i in $(seq 100); do
    grep -q '^port ' "$dir/out" 2>/dev/null && break
    sleep 0.1
done
port=$(sed -n 's/^port //p' "$dir/out")
[ -n "$port" ] || { echo "FAIL: no port"; exit 1; }
ep=127.0.0.1:$port

"$top" -a "$ep" --once --json >"$dir/tree.json"
jq -e '.version == 1 and (.nodes | length) == 11 and
       (.nodes | map(.path) | index("/app/store/cache")) != null' \
    "$dir/tree.json" >/dev/null || { echo "FAIL: --json"; cat "$dir/tree.json"; exit 1; }
"$top" -a "$ep" --once --text >"$dir/tree.txt"
grep -q '^    /app/store/cache (worker) running' "$dir/tree.txt" ||
    { echo "FAIL: --text"; cat "$dir/tree.txt"; exit 1; }

echo "crash pool.3" >&3
for i in $(seq 100); do
    grep -q '^ok' "$dir/out" && break
    sleep 0.1
done
sleep 0.5
TROUPE_TOP_CLEAR=1 "$top" -a "$ep" -s restarts -d 100 -n 3 >"$dir/top.txt"
# Refreshed in place three times, with the header and the tree.
[ "$(grep -c "$(printf '\033\\[H')" "$dir/top.txt")" -eq 3 ] ||
    { echo "FAIL: no refresh"; cat -v "$dir/top.txt"; exit 1; }
grep -q 'NODE .*RESTARTS .*MAILBOX' "$dir/top.txt" || { echo "FAIL: header"; exit 1; }
# Sorted by restarts: the pool's third child first, then the others in
# tree order.
last=$(awk 'BEGIN{RS="\033\\[H\033\\[2J"} END{print}' "$dir/top.txt")
echo "$last" | grep -q 'crash requested' || { echo "FAIL: last failure"; echo "$last"; exit 1; }
order=$(echo "$last" | awk '$1 ~ /^[1-5]$/ {print $1}' | tr '\n' ' ')
[ "$order" = "3 1 2 4 5 " ] || { echo "FAIL: sort by restarts: '$order'"; echo "$last"; exit 1; }
"$top" -a 127.0.0.1:1 --once 2>/dev/null && { echo "FAIL: no endpoint"; exit 1; }
echo quit >&3
echo "troupe-top: ok"
