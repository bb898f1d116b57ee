#!/usr/bin/env bash
# The main job, end to end: train on the real data -> build and publish the index
# -> start the gRPC server (and its HTTP gateway with the web explorer) -> ask it for
# films like Toy Story 3, over gRPC and over HTTP -> stop the server.
# Run through `make demo` (which installs .venv first) or with the commands on PATH.
# The demo serves on free ports and stops; its last lines say how to go on: `make serve`
# serves the index it built on the documented ports. KEEP_SERVING=1 leaves this server
# running (explorer included) until Ctrl-C instead.
set -euo pipefail

DATA=${DATA:-${MOVIELINKS_DATA:-../shared/data/wp_movies_us.ndjson}}
WORK=${WORK:-work}
MOVIE=${MOVIE:-Toy Story 3}
KEEP_SERVING=${KEEP_SERVING:-0}
mkdir -p "$WORK"
run="$WORK/runs/$(date -u +%Y%m%dT%H%M%SZ)"

echo "== train: $DATA -> $run"
trainer train --data "$DATA" --out "$run"

echo "== index: $run -> $WORK/index"
indexer build "$run" --out "$WORK/index"

echo "== serve: $WORK/index on a free loopback port"
log="$WORK/server.log"
server --index "$WORK/index" --host 127.0.0.1 --port 0 --http-port "${HTTP_PORT:-0}" 2>"$log" &
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

explorer=$(grep -oE 'http=http://[0-9.]+:[0-9]+/' "$log" | head -1 | cut -d= -f2)

echo "== query: client query --movie \"$MOVIE\""
client --server "$address" query --movie "$MOVIE" -k 10

echo "== the same over HTTP: curl -s ${explorer}v1/similar-movies -d '{\"title\": \"$MOVIE\", \"k\": 3}'"
if command -v curl >/dev/null; then
  curl -s "${explorer}v1/similar-movies" -d "{\"title\": \"$MOVIE\", \"k\": 3}"
  echo
fi

if [[ "$KEEP_SERVING" == 1 ]]; then
  echo "== serving until Ctrl-C; in another terminal, in $(pwd):"
  echo "  source .venv/bin/activate"
  echo "  client --server $address query --movie \"$MOVIE\""
  echo "  client --server $address recommend --like \"$MOVIE\""
  echo "== web explorer: $explorer  (API description: ${explorer}openapi.json)"
  trap 'kill -TERM "$server_pid" 2>/dev/null || true' INT
  wait "$server_pid" || true
  trap - EXIT
  echo "server stopped cleanly"
  exit 0
fi

echo "== stop the server"
kill -TERM "$server_pid"
wait "$server_pid"
trap - EXIT
echo "server stopped cleanly"

serve="make serve"
[[ "$WORK" == work ]] || serve="make serve WORK=$WORK"
cat <<EOF
== next: serve the index just built and ask it; each line works pasted, in $(pwd)
  $serve
    (gRPC on 127.0.0.1:50051, the web explorer on http://127.0.0.1:8080/; Ctrl-C stops it)
then in another terminal, in $(pwd):
  source .venv/bin/activate
  client --server 127.0.0.1:50051 query --movie "$MOVIE"
  client --server 127.0.0.1:50051 recommend --like "$MOVIE"
and open http://127.0.0.1:8080/ in a browser: the web explorer
EOF
