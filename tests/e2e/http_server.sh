#!/usr/bin/env bash
# tests/e2e/http_server.sh: the HTTP server (todohost.http) as a user runs
# it, over real sockets with curl, using the small app in tests/fixtures/:
# request fields, bodies and the size limit, handler failures, malformed
# HTTP, keep-alive, the idle time-out, the connection limit, reload, the
# graceful stop on SIGTERM/SIGINT, and clear start-up errors.
# Prints `ok - ` / `not ok - ` lines; run by tests/run.sh (TODOHOST, TEST_TMPDIR).
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
TODOHOST=${TODOHOST:-$ROOT/build/todohost}
TMP=${TEST_TMPDIR:-$(mktemp -d)}
export LUA_PATH="$ROOT/tests/fixtures/?.lua;;"
failed=0
server_pid=""

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
check() { # check NAME CONDITION-COMMAND...
  local name=$1; shift
  if "$@"; then ok "$name"; else not_ok "$name"; fi
}
eq() { [ "$1" = "$2" ] || { echo "# got:  $1" >&2; echo "# want: $2" >&2; return 1; }; }
contains() { case "$1" in *"$2"*) return 0 ;; *) echo "# '$2' not in: ${1:0:300}" >&2; return 1 ;; esac; }
lacks() { case "$1" in *"$2"*) echo "# '$2' found in: ${1:0:300}" >&2; return 1 ;; *) return 0 ;; esac; }

cleanup() { [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null; }
trap cleanup EXIT

# start NAME [ENV=VALUE...]: starts serve_hello.lua with the settings, in
# $TMP/NAME.log; sets server_pid and port (0 when it did not start).
start() {
  local name=$1; shift
  start_script "$name" "$ROOT/tests/fixtures/serve_hello.lua" "$@"
}

# start_script NAME SCRIPT [ENV=VALUE...]: start, for any script.
start_script() {
  local name=$1 script=$2; shift 2
  log=$TMP/$name.log
  env PORT=0 "$@" "$TODOHOST" run "$script" >"$log" 2>&1 &
  server_pid=$!
  port=0
  for _ in $(seq 100); do
    port=$(sed -n 's|.*serving on http://[^ ]*:\([0-9]*\) .*|\1|p' "$log" | head -n 1)
    [ -n "$port" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  port=0
  echo "# server did not start:" >&2; sed 's/^/#   /' "$log" >&2
  return 1
}

# stop [SIGNAL]: signals the server and waits; sets status.
stop() {
  kill "-${1:-TERM}" "$server_pid" 2>/dev/null
  wait "$server_pid"
  status=$?
  server_pid=""
}

url() { echo "http://127.0.0.1:$port$1"; }
c() { curl -s --max-time 10 "$@"; }

# ---- requests ---------------------------------------------------------------

start main WORKERS=2 MAX_BODY=1048576 || exit 1

body=$(c "$(url '/a%20b/c?x=1&y=%20+z&x=2')" -H 'X-Test: Hello' -H 'X-Twice: 1' -H 'X-Twice: 2')
check "GET: the method" contains "$body" '"method":"GET"'
check "GET: the path, percent-decoded" contains "$body" '"path":"\/a b\/c"'
check "GET: the raw query" contains "$body" '"query":"x=1&y=%20+z&x=2"'
check "GET: header names in lower case" contains "$body" '"x-test":"Hello"'
check "GET: a repeated header's values joined" contains "$body" '"x-twice":"1, 2"'
check "parse_query: decoded" contains "$body" '"y":"  z"'
check "parse_query: the last value wins" contains "$body" '"x":"2"'
check "GET: no body is nil" contains "$body" '"body":null'

head=$(c -D - -o /dev/null "$(url /h)")
check "the handler's headers are sent (a number value too)" contains "$head" "x-answer: 42"

body=$(c -X POST --data-binary 'hello world' "$(url /p)")
check "POST: the body reaches the handler" contains "$body" '"body":"hello world"'

head -c 2000000 /dev/zero | tr '\0' 'a' >"$TMP/big"
code=$(c -o "$TMP/out" -w '%{http_code}' -X POST --data-binary @"$TMP/big" "$(url /p)")
check "a body over max_body: 413" eq "$code" 413
check "413 body is JSON" eq "$(cat "$TMP/out")" '{"detail":"Request Entity Too Large"}'
code=$(c -o /dev/null -w '%{http_code}' -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big" "$(url /p)")
check "a chunked body over max_body: 413" eq "$code" 413

code=$(c -o "$TMP/out" -w '%{http_code}' "$(url /error)")
check "a Lua error in the handler: 500" eq "$code" 500
check "500 body hides the cause" eq "$(cat "$TMP/out")" '{"detail":"Internal Server Error"}'
sleep 0.2
check "the cause is logged" contains "$(cat "$log")" "GET /error: "
check "the cause is logged without the password" lacks "$(cat "$log")" "secret"
code=$(c -o /dev/null -w '%{http_code}' "$(url /error-table)")
check "an error table: 500" eq "$code" 500
code=$(c -o /dev/null -w '%{http_code}' "$(url /bad-status)")
check "a status that is not an integer: 500" eq "$code" 500
head=$(c -D - -o /dev/null "$(url /bad-header)")
check "a header with CR/LF: 500" contains "$head" "HTTP/1.1 500"
check "no header injection" lacks "$head" "set-cookie"
n1=$(c "$(url /served)"); n2=$(c "$(url /served)"); n3=$(c "$(url /served)")
check "workers keep serving after errors" test "$((n1 + n2 + n3))" -ge 3
code=$(c -o /dev/null -w '%{http_code}' "$(url /empty)")
check "204 with no body" eq "$code" 204

v=$(c -v "$(url /k1)" "$(url /k2)" 2>&1 >/dev/null)
check "keep-alive: the second request reuses the connection" contains "$v" "Re-using existing connection"

exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n' >&3
reply=$(timeout 5 head -n 1 <&3)
exec 3>&-
check "malformed HTTP: 400 from the library" contains "$reply" "HTTP/1.1 400"

stop TERM
check "SIGTERM: exit 0" eq "$status" 0
check "SIGTERM: 'stopped' logged" contains "$(cat "$log")" "todohost: stopped"

# ---- graceful stop with a request in flight (SIGINT) ----------------------

start graceful || exit 1
c -o "$TMP/slow" "$(url /sleep)" &
curl_pid=$!
sleep 0.4
stop INT
wait "$curl_pid"
check "SIGINT: the request in flight completes" eq "$(cat "$TMP/slow")" "slept"
check "SIGINT: exit 0" eq "$status" 0
code=$(c -o /dev/null -w '%{http_code}' "$(url /)")
check "after the stop: nothing listens" eq "$code" 000

# ---- time-out and connection limit -----------------------------------------

start timeout HTTP_TIMEOUT=1 || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /slo' >&3
t0=$SECONDS
timeout 10 cat <&3 >/dev/null
check "a slow client is timed out" test $((SECONDS - t0)) -le 4
exec 3>&-
t0=$SECONDS
cut=$(
  trap '' PIPE
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'GET / HTTP/1.1\r\nHost: x\r\n' >&3
  for _ in $(seq 30); do   # one header byte every 0.3 s: never idle, never done
    printf 'X' >&3 2>/dev/null || { echo yes; exit; }
    sleep 0.3
  done
  echo no
)
check "a client trickling its request is cut off after the time-out" test "$cut" = yes -a $((SECONDS - t0)) -le 4
stop TERM

start limits MAX_CONNECTIONS=4 WORKERS=1 || exit 1
for fd in 4 5 6 7; do eval "exec $fd<>/dev/tcp/127.0.0.1/$port"; done
sleep 0.2
code=$(c --max-time 1 -o /dev/null -w '%{http_code}' "$(url /)")
check "over max_connections: not served (waits in the backlog)" eq "$code" 000
for fd in 4 5 6 7; do eval "exec $fd>&-"; done
sleep 0.3
code=$(c -o /dev/null -w '%{http_code}' "$(url /)")
check "under max_connections again: served" eq "$code" 200
stop TERM

# the per-address limit holds over all pool threads together (each has a
# libmicrohttpd daemon of its own; one of them may accept them all)
start per_ip MAX_PER_IP=3 WORKERS=4 || exit 1
for fd in 4 5; do eval "exec $fd<>/dev/tcp/127.0.0.1/$port"; done
sleep 0.2
code=$(c -o /dev/null -w '%{http_code}' "$(url /)")
check "under the per-IP limit (2 of 3 taken): served" eq "$code" 200
for fd in 6; do eval "exec $fd<>/dev/tcp/127.0.0.1/$port"; done
sleep 0.2
code=$(c --max-time 2 -o /dev/null -w '%{http_code}' "$(url /)")
check "at the per-IP limit: refused" eq "$code" 000
for fd in 4 5 6; do eval "exec $fd>&-"; done
sleep 0.3
served=0
for _ in 1 2 3 4 5 6; do
  [ "$(c -o /dev/null -w '%{http_code}' "$(url /)")" = 200 ] && served=$((served + 1))
done
check "under the per-IP limit again: every request served" eq "$served" 6
stop TERM

# the per-IP limit is on by default: a quarter of max_connections (8 here)
cat >"$TMP/serve_default_limits.lua" <<'LUA'
require("todohost.http").serve { app = "hello_app", port = 0, workers = 2, max_connections = 8 }
LUA
start_script default_limits "$TMP/serve_default_limits.lua" || exit 1
for fd in 4 5; do eval "exec $fd<>/dev/tcp/127.0.0.1/$port"; done
sleep 0.2
code=$(c --max-time 2 -o /dev/null -w '%{http_code}' "$(url /)")
check "the per-IP limit is on by default (2 of max_connections 8 taken): refused" eq "$code" 000
for fd in 4 5; do eval "exec $fd>&-"; done
sleep 0.3
code=$(c -o /dev/null -w '%{http_code}' "$(url /)")
check "under the default per-IP limit again: served" eq "$code" 200
stop TERM

# 1,000 concurrent keep-alive connections from one address fit the defaults
# (MAX_CONNECTIONS 10,000, a quarter of it per address)
if ulimit -n 2048 2>/dev/null; then
  cat >"$TMP/serve_defaults.lua" <<'LUA'
require("todohost.http").serve { app = "hello_app", port = 0, workers = 2 }
LUA
  start_script defaults "$TMP/serve_defaults.lua" || exit 1
  held=()
  for _ in $(seq 1000); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" && held+=("$fd")
  done
  sleep 0.3
  code=$(c --max-time 3 -o /dev/null -w '%{http_code}' "$(url /)")
  check "1,000 connections held open (${#held[@]}): one more is still served by default" eq "$code" 200
  for fd in "${held[@]}"; do exec {fd}>&-; done
  stop TERM
else
  ok "# SKIP 1,000 connections: ulimit -n 2048 not allowed"
fi

# ---- start-up errors -------------------------------------------------------

start first || exit 1
out=$(PORT=$port "$TODOHOST" run "$ROOT/tests/fixtures/serve_hello.lua" 2>&1)
rc=$?
check "a busy port: non-zero exit" test "$rc" -ne 0
check "a busy port: one clear line" eq "$out" "todohost: port $port is already in use: stop the other server or set PORT"
stop TERM

out=$(PORT=0 APP=no_such_app "$TODOHOST" run "$ROOT/tests/fixtures/serve_hello.lua" 2>&1)
rc=$?
check "an app that does not load: non-zero exit" test "$rc" -ne 0
check "an app that does not load: says which" contains "$out" "cannot load the app 'no_such_app'"

# ---- reload ----------------------------------------------------------------

mkdir -p "$TMP/proj/scripts"
echo 'return function() return 200, nil, "v1" end' >"$TMP/proj/scripts/reload_app.lua"
(cd "$TMP/proj" && exec env PORT=0 RELOAD=true APP=reload_app "$TODOHOST" run "$ROOT/tests/fixtures/serve_hello.lua" >"$TMP/reload.log" 2>&1) &
server_pid=$!
log=$TMP/reload.log
for _ in $(seq 100); do
  port=$(sed -n 's|.*serving on http://[^ ]*:\([0-9]*\) .*|\1|p' "$log" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.1
done
check "reload: serves v1" eq "$(c "$(url /)")" v1
sleep 1.1   # a new mtime second, in case the file system keeps whole seconds
echo 'return function() return 200, nil, "v2" end' >"$TMP/proj/scripts/reload_app.lua"
sleep 1
check "reload: a changed script is served without a restart" eq "$(c "$(url /)")" v2
echo 'return function( this is not Lua' >"$TMP/proj/scripts/reload_app.lua"
sleep 1
check "reload: a broken script keeps the previous handlers" eq "$(c "$(url /)")" v2
check "reload: the broken script is reported" contains "$(cat "$log")" "reload failed, the previous handlers keep serving"
stop TERM
check "reload: exit 0" eq "$status" 0

[ "$failed" -eq 0 ]
