#!/usr/bin/env bash
# The chat server's figures (docs/benchmarks.md, "Chat server"): each runs
# a fresh server and bench_chat_load against it, and prints the load
# generator's line.
#   bench/chat.sh [build-dir] [latency|idle|saturation|all]
set -euo pipefail
dir=${1:-build/release}
what=${2:-all}
server="$dir/samples/sample_chat"
load="$dir/bench/bench_chat_load"

# Start a server with the given options; sets $pid and $port.
start() {
    out=$(mktemp)
    "$server" -p 0 -q "$@" > "$out" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 200); do
        port=$(sed -n 's/^chat: listening on .*:\([0-9]*\)$/\1/p' "$out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    rm -f "$out"
    [ -n "$port" ] || { echo "the server did not start" >&2; exit 1; }
}

stop() {
    kill -TERM "$pid"
    wait "$pid"
}

if [ "$what" = all ] || [ "$what" = latency ]; then
    # 200 clients in 10 rooms, 5 lines/s each for 20 s.
    start
    "$load" --port "$port" --clients 200 --rooms 10 --rate 5 --secs 20 \
        --pid "$pid"
    stop
fi
if [ "$what" = all ] || [ "$what" = idle ]; then
    # 10,000 idle connections, greeted; RSS per connection.
    start
    "$load" --port "$port" --clients 10000 --idle --secs 2 --pid "$pid"
    stop
fi
if [ "$what" = all ] || [ "$what" = saturation ]; then
    # 1,000 clients in 10 rooms, each sending its next line as soon as its
    # last one came back, for 10 s: 1 then 2 workers and I/O threads.
    for n in 1 2; do
        start -w "$n" --io-threads "$n"
        echo -n "workers=$n io_threads=$n "
        "$load" --port "$port" --clients 1000 --rooms 10 --rate 0 --secs 10 \
            --pid "$pid"
        stop
    done
fi
