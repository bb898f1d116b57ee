#!/usr/bin/env bash
# The main job, end to end: train on the real data -> build and publish the index
# -> start the gRPC server -> ask it for films like Interstellar -> stop the server.
# Run through `make demo` (which installs .venv first) or with the commands on PATH.
set -euo pipefail

DATA=${DATA:-${MOVIELINKS_DATA:-../shared/data/wp_movies_us.ndjson}}
WORK=${WORK:-work}
MOVIE=${MOVIE:-Interstellar (film)}
mkdir -p "$WORK"
run="$WORK/runs/$(date -u +%Y%m%dT%H%M%SZ)"

echo "== train: $DATA -> $run"
trainer train --data "$DATA" --out "$run"

echo "== index: $run -> $WORK/index"
indexer build "$run" --out "$WORK/index"

echo "== serve: $WORK/index on a free loopback port"
log="$WORK/server.log"
server --index "$WORK/index" --host 127.0.0.1 --port 0 2>"$log" &
server_pid=$!
trap 'kill -TERM "$server_pid" 2>/dev/null || true' EXIT
address=""
for _ in $(seq 1 100); do
  address=$(grep -oE 'listening on [0-9.]+:[0-9]+' "$log" | awk '{print $3}' || true)
  [[ -n "$address" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$address" ]] || { echo "server did not start in 10 s" >&2; cat "$log" >&2; exit 1; }
cat "$log"

echo "== query: client query --movie \"$MOVIE\""
client --server "$address" query --movie "$MOVIE" -k 10

echo "== stop the server"
kill -TERM "$server_pid"
wait "$server_pid"
trap - EXIT
echo "server stopped cleanly"
