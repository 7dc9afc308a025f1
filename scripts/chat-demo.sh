#!/usr/bin/env bash
# The chat service at work (`make demo`): start the server, load it with
# clients in rooms for a few seconds while fault switches crash a room and
# some connections, print its live supervision tree and the figures, then
# stop it with SIGINT (every client is told, every socket closed).
#   scripts/chat-demo.sh [build-dir] [seconds]
set -euo pipefail
dir=${1:-build/release}
secs=${2:-5}
server="$dir/samples/sample_chat"
load="$dir/bench/bench_chat_load"
for bin in "$server" "$load"; do
    [ -x "$bin" ] || { echo "missing $bin: build first" >&2; exit 1; }
done

out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$server" -p 0 --admin --faults --inspect 127.0.0.1:0 > "$out" 2>&1 &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^chat: listening on .*:\([0-9]*\)$/\1/p' "$out")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { cat "$out"; echo "the server did not start" >&2; exit 1; }

echo "== chat server (pid $pid) on 127.0.0.1:$port; talk to it with: nc 127.0.0.1 $port"
sed -n 's/^chat: live tree on /== live tree (while it runs): /p' "$out"
echo "== load: 200 clients in 10 rooms, 5 lines/s each, ${secs} s; a room or a"
echo "   connection is crashed on purpose every 300 ms (4 extra clients)"
"$load" --port "$port" --clients 200 --rooms 10 --rate 5 --secs "$secs" \
    --pid "$pid" --chaos 4 --admin 2> >(sed 's/^/   /' >&2) |
    sed 's/^/== result: /'
sleep 0.2
echo "== stopping the server (SIGINT)"
kill -INT "$pid"
status=0
wait "$pid" || status=$?
trap 'rm -f "$out"' EXIT
sed 's/^/   /' "$out"
exit "$status"
