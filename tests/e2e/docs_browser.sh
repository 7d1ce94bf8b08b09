#!/usr/bin/env bash
# tests/e2e/docs_browser.sh: /docs works in a browser with no internet: starts
# `todohost run serve.lua` on a fresh SQLite database, adds a todo, then
# tests/browser/docs_test.mjs drives headless Chromium through Swagger UI
# (expand GET /todos, Try it out, Execute) and checks the todo is listed.
# Needs chromium, chromium-driver and node (make test installs them) and
# node_modules/swagger-ui-dist (make). Prints `ok - ` / `not ok - ` lines.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
TODOHOST=${TODOHOST:-$ROOT/build/todohost}
TMP=${TEST_TMPDIR:-$(mktemp -d)}
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null; }
trap cleanup EXIT

for tool in node chromium chromedriver curl; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "not ok - $tool is installed (apt-get install chromium chromium-driver nodejs curl)"; exit 1; }
done
[ -f node_modules/swagger-ui-dist/swagger-ui-bundle.js ] || {
  echo "not ok - swagger-ui-dist is installed (run make: it runs npm ci)"; exit 1; }

export DATABASE_URL="sqlite:///$TMP/docs_browser.db"
mig=$("$TODOHOST" run tests/browser/prepare_db.lua "$DATABASE_URL" "$TMP/migrations") || {
  echo "not ok - the test database is migrated"; exit 1; }
[ -n "$mig" ] && export MIGRATIONS_DIR="$mig"

log=$TMP/docs_browser.log
PORT=0 WORKERS=2 "$TODOHOST" run serve.lua >"$log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 100); do
  port=$(sed -n 's|.*serving on http://[^ ]*:\([0-9]*\) .*|\1|p' "$log" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "not ok - serve.lua starts"; sed 's/^/#   /' "$log"; exit 1
fi
echo "ok - serve.lua starts (port $port)"

title="Browser check $$ $RANDOM"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/todos" \
  -H 'content-type: application/json' -d "{\"title\": \"$title\"}")
if [ "$code" = 201 ]; then echo "ok - POST /todos"; else echo "not ok - POST /todos (got $code)"; fi

node tests/browser/docs_test.mjs "http://127.0.0.1:$port" "$title" "$TMP/docs.png"
rc=$?

kill -TERM "$server_pid" 2>/dev/null
wait "$server_pid"
stopped=$?
server_pid=""
if [ "$stopped" = 0 ]; then echo "ok - the server stops on SIGTERM"; else echo "not ok - the server stops on SIGTERM ($stopped)"; rc=1; fi
exit "$rc"
