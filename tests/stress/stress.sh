#!/usr/bin/env bash
# tests/stress/stress.sh: load and soak (`make stress`; a short form runs in
# `make test` through tests/e2e/stress.sh).
#
# For each database (a SQLite file; a PostgreSQL database on TEST_PG_URL's
# server, or on a throwaway server of its own when TEST_PG_URL is unset), it
# serves the Todo API with the binary under test and runs, with wrk:
#   1. keep-alive: STRESS_CONNS (1,000) concurrent keep-alive connections,
#      STRESS_S seconds, a mix of GET /todos/1, GET /todos?limit=10, POST /todos;
#   2. churn: STRESS_CHURN_CONNS (64) clients opening and closing a connection
#      for every request, STRESS_S seconds.
# It passes when: no request failed (statuses other than 200, 201 and an
# intended 503, which must stay under 1% of the answers; socket errors:
# connect, read, write, timeout), the server
# lives and still answers, its open file descriptors after the load are those
# before it, and its resident memory grew by less than STRESS_RSS_MB (16) MB
# from the warm-up to the end. Prints `ok - ` / `not ok - ` lines, the
# figures as `# ` comments, and exits non-zero on any failure.
#
# Settings: TODOHOST (default build/todohost), STRESS_S (60), STRESS_CONNS
# (1000), STRESS_CHURN_CONNS (64), STRESS_DBS ("sqlite postgresql"),
# STRESS_RSS_MB (16), WORKERS (the server's default when unset).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
BIN=${TODOHOST:-$ROOT/build/todohost}
SECS=${STRESS_S:-60}
CONNS=${STRESS_CONNS:-1000}
CHURN=${STRESS_CHURN_CONNS:-64}
DBS=${STRESS_DBS:-sqlite postgresql}
RSS_MB=${STRESS_RSS_MB:-16}
command -v wrk >/dev/null || { echo "stress: wrk is missing: scripts/install-deps.sh test" >&2; exit 2; }
# wrk's connections and the server's sockets need file descriptors
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

failed=0
# an AddressSanitizer build (gcc links libasan)
sanitized=0
ldd "$BIN" 2>/dev/null | grep -q libasan && sanitized=1
ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
note() { printf '# %s\n' "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/todohost-stress.XXXXXX")
chmod 755 "$work"
server="" own_pg=""
cleanup() {
  if [ -n "$server" ]; then kill -KILL "$server" 2>/dev/null; wait "$server" 2>/dev/null; fi
  [ -n "$own_pg" ] && tests/pg.sh stop "$own_pg" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# pg_url: a fresh todo_stress database on the test server (started here if needed).
pg_url() {
  if [ -z "${TEST_PG_URL:-}" ]; then
    local env
    env=$(tests/pg.sh start) || { echo "stress: could not start a PostgreSQL server" >&2; return 1; }
    eval "$env"
    own_pg=$TEST_PG_DIR
  fi
  local admin="${TEST_PG_URL%/*}/postgres" url="${TEST_PG_URL%/*}/todo_stress"
  local psql
  psql=$(cat "${TEST_PG_DIR:?}/bindir" 2>/dev/null)/psql
  [ -x "$psql" ] || psql=psql
  PGOPTIONS="-c client_min_messages=warning" "$psql" -X -q -v ON_ERROR_STOP=1 "$admin" -c "DROP DATABASE IF EXISTS todo_stress WITH (FORCE)" \
    -c "CREATE DATABASE todo_stress" >/dev/null || return 1
  echo "$url"
}

# fds PID, rss_kb PID: the server's open descriptors and resident memory.
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# start_server URL LOG: serves on a free port; sets server, port.
start_server() {
  DATABASE_URL=$1 PORT=0 ACCESS_LOG=false "$BIN" run serve.lua >"$2" 2>&1 &
  server=$!
  port=""
  for _ in $(seq 400); do
    port=$(sed -n 's|.*serving on http://[^ ]*:\([0-9]*\).*|\1|p' "$2" | head -n 1)
    [ -n "$port" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$port" ]
}

# load NAME CONNS SECS [close]: one wrk run; judges it, prints its figures.
load() {
  local name=$1 conns=$2 secs=$3 mode=${4:-}
  local out threads=2
  [ "$conns" -lt 2 ] && threads=1
  out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s -s tests/stress/load.lua \
        "http://127.0.0.1:$port" ${mode:+-- "$mode"} 2>&1)
  local rps bad good busy sock
  rps=$(echo "$out" | sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p')
  good=$(echo "$out" | awk '$1 == "status" && ($2 == 200 || $2 == 201) { n += $3 } END { print n + 0 }')
  busy=$(echo "$out" | awk '$1 == "status" && $2 == 503 { n += $3 } END { print n + 0 }')
  bad=$(echo "$out" | awk '$1 == "status" && !($2 == 200 || $2 == 201 || $2 == 503) { printf "%s%s x%s", sep, $2, $3; sep = ", " }')
  sock=$(echo "$out" | sed -nE 's/^socket errors connect ([0-9]+) read ([0-9]+) write ([0-9]+) timeout ([0-9]+)/connect \1, read \2, write \3, timeout \4/p')
  note "$name: ${rps:-?} req/s, $good answered 200/201, $busy 503${bad:+, other: $bad}; socket errors: ${sock:-?}"
  # 503 is the server's intended answer to overload, but not to most requests
  if [ -n "$bad" ] || [ "$good" -eq 0 ] || [ $((busy * 100)) -gt "$good" ] ||
     [ "$sock" != "connect 0, read 0, write 0, timeout 0" ]; then
    echo "$out" | sed 's/^/#   /'
    return 1
  fi
}

for db in $DBS; do
  case "$db" in
    sqlite) url="sqlite:///$work/stress.db" ;;
    postgresql) url=$(pg_url) || { not_ok "$db: a database for the stress test"; continue; } ;;
    *) echo "stress: unknown database '$db' in STRESS_DBS" >&2; exit 2 ;;
  esac
  log=$work/server-$db.log
  if ! DATABASE_URL=$url "$BIN" run migrate.lua upgrade head >"$work/migrate-$db.log" 2>&1; then
    not_ok "$db: migrate"; cat "$work/migrate-$db.log"; continue
  fi
  if ! start_server "$url" "$log"; then not_ok "$db: the server starts"; tail -n 20 "$log"; continue; fi
  # a todo with id 1 (seeded databases have it; make sure)
  curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"title":"first"}' "http://127.0.0.1:$port/todos"
  # warm-up: pools, caches and allocator arenas reach their working size
  load "$db warm-up" "$CONNS" 3 >/dev/null
  sleep 1
  fd0=$(fds "$server") rss0=$(rss_kb "$server")
  # the keep-alive phase in two halves: the first reaches the server's
  # working size under 1,000 connections (allocator arenas, per-connection
  # pools), the rest must not grow from there
  half=$(( (SECS + 1) / 2 ))
  fdh=""
  if load "$db keep-alive, $CONNS connections, ${half}s" "$CONNS" "$half" &&
     { sleep 1; rss1=$(rss_kb "$server") fdh=$(fds "$server"); load "$db keep-alive, $CONNS connections, $((SECS - half))s more" "$CONNS" "$((SECS - half))"; }; then
    ok "$db: $CONNS concurrent keep-alive connections for ${SECS}s, no failed request"
  else not_ok "$db: $CONNS concurrent keep-alive connections for ${SECS}s, no failed request"; fi
  rss1=${rss1:-$rss0}
  # (a worker opens its SQLite connection's -wal file at its first read:
  # descriptors are compared from the working size on, as memory is)
  fd0=${fdh:-$fd0}
  if load "$db churn, $CHURN clients, a connection per request, ${SECS}s" "$CHURN" "$SECS" close; then
    ok "$db: connections opened and closed in a loop for ${SECS}s, no failed request"
  else not_ok "$db: connections opened and closed in a loop for ${SECS}s, no failed request"; fi
  sleep 1
  if kill -0 "$server" 2>/dev/null && curl -sf -o /dev/null "http://127.0.0.1:$port/health"; then
    ok "$db: the server still answers after the load"
  else not_ok "$db: the server still answers after the load"; tail -n 20 "$log"; fi
  fd1=$(fds "$server") rss2=$(rss_kb "$server")
  note "$db: file descriptors $fd0 -> $fd1; resident memory after the warm-up $((rss0 / 1024)) MB, after half the keep-alive phase $((rss1 / 1024)) MB, at the end $((rss2 / 1024)) MB"
  if [ "$fd1" -le "$fd0" ]; then ok "$db: open file descriptors flat ($fd0 -> $fd1)"
  else not_ok "$db: open file descriptors flat ($fd0 -> $fd1)"; ls -l "/proc/$server/fd" | tail -n 20 | sed 's/^/#   /'; fi
  if [ "$sanitized" = 1 ]; then
    # AddressSanitizer keeps freed memory in its quarantine (hundreds of MB)
    # and grows its shadow: its resident size says nothing of ours. Its own
    # leak check at exit (a report fails the run) judges leaks instead.
    ok "# SKIP $db: resident memory under AddressSanitizer (its leak check at exit judges leaks)"
  elif [ $((rss2 - rss1)) -lt $((RSS_MB * 1024)) ]; then ok "$db: resident memory flat (grew $(( (rss2 - rss1) / 1024 )) MB in the second half and the churn, bound $RSS_MB MB)"
  else not_ok "$db: resident memory flat (grew $(( (rss2 - rss1) / 1024 )) MB in the second half and the churn, bound $RSS_MB MB)"; fi
  kill -TERM "$server"
  if wait "$server"; then ok "$db: the server stops cleanly on SIGTERM"
  else not_ok "$db: the server stops cleanly on SIGTERM"; tail -n 20 "$log"; fi
  server=""
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error' "$log"; then
    not_ok "$db: no sanitizer report"; grep -A 20 -E 'ERROR: |runtime error' "$log" | head -n 40 | sed 's/^/#   /'
  fi
done
echo "# $failed failed"
[ "$failed" -eq 0 ]
