#!/bin/bash
# bench/http.sh: `make bench-http`. In one run, on a throwaway PostgreSQL
# server (and then on a SQLite file), with 1,000 todos:
#   wrk -t2 -c32 on GET /todos/1, GET /todos (100 rows) and POST /todos,
#   and `pgbench -S -M prepared` with the same 32 clients as the ceiling.
# Prints requests/s, p99 latency, the ratio to pgbench, the server's peak
# resident memory, and each figure against its target.
# Settings: ROUNDS=3 (the median run is shown), SECONDS_PER_RUN=5, CONNECTIONS=32, WORKERS (server default: cores),
# ACCESS_LOG=true (the default; the log goes to a file; false: no log),
# BENCH_DBS="postgresql sqlite".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${TODOHOST:-$ROOT/build/todohost}
SECS=${SECONDS_PER_RUN:-5}
CONNS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
DBS=${BENCH_DBS:-postgresql sqlite}
export ACCESS_LOG=${ACCESS_LOG:-true}
for tool in wrk bc; do
  command -v "$tool" >/dev/null || { echo "bench/http.sh: $tool is missing: scripts/install-deps.sh bench" >&2; exit 1; }
done

work=$(mktemp -d /tmp/todohost-bench-http.XXXXXX)
chmod 755 "$work"
pgdir="" server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; fi
  [ -n "$pgdir" ] && tests/pg.sh stop "$pgdir" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"title":"a todo from wrk","description":"bench/http.sh"}'
wrk.headers["Content-Type"] = "application/json"
LUA

# prepare URL: migrations to head, then exactly 1,000 todos.
prepare() {
  DATABASE_URL=$1 "$BIN" run migrate.lua upgrade head >/dev/null 2>&1 ||
    { echo "bench/http.sh: migrating $2 failed:" >&2; DATABASE_URL=$1 "$BIN" run migrate.lua upgrade head; exit 1; }
  DATABASE_URL=$1 "$BIN" run - <<'LUA'
local conn = require("todohost.db").connect()
conn:transaction(function()
  conn:exec("DELETE FROM todos")
  for i = 1, 1000 do
    conn:exec("INSERT INTO todos (id, title, description, is_completed) VALUES ($1, $2, $3, $4)",
      i, "todo number " .. i, i % 3 == 0 and "some description" or nil, i % 2 == 0)
  end
end)
if conn.kind == "postgresql" then conn:exec("SELECT setval('todos_id_seq', 1000)") end
-- steady state, as a database that has lived a while: statistics and the
-- visibility map up to date (autovacuum would get there by itself)
conn:exec(conn.kind == "postgresql" and "VACUUM ANALYZE todos" or "ANALYZE")
LUA
}

# start_server URL: serves on a free port; sets server (pid), port.
start_server() {
  local log=$work/server.log
  DATABASE_URL=$1 PORT=0 "$BIN" run serve.lua >"$log" 2>&1 &
  server=$!
  port=""
  for _ in $(seq 200); do
    port=$(sed -n 's|.*serving on http://[^ ]*:\([0-9]*\) .*|\1|p' "$log" | head -n 1)
    [ -n "$port" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$port" ]; then echo "bench/http.sh: the server did not start:" >&2; cat "$log" >&2; exit 1; fi
  curl -sf -o /dev/null "http://127.0.0.1:$port/todos/1" ||
    { echo "bench/http.sh: GET /todos/1 failed:" >&2; cat "$log" >&2; exit 1; }
}

stop_server() {
  kill -TERM "$server"
  wait "$server" || { echo "bench/http.sh: the server did not stop cleanly:" >&2; tail "$work/server.log" >&2; }
  server=""
}

# wrk_run PATH [SCRIPT]: prints "requests/s p99_ms errors".
wrk_run() {
  local out
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency ${2:+-s "$2"} "http://127.0.0.1:$port$1")
  local rps p99 errors
  rps=$(echo "$out" | sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p')
  p99=$(echo "$out" | awk '$1 == "99%" {
          v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
          if (u == "us") v /= 1000; else if (u == "s") v *= 1000; printf "%.2f", v }')
  local non2xx socket
  non2xx=$(echo "$out" | sed -nE 's/.*Non-2xx or 3xx responses: *([0-9]+).*/\1/p')
  socket=$(echo "$out" | sed -nE 's/.*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+).*/\1+\2+\3+\4/p')
  errors=$(( ${non2xx:-0} + ${socket:-0} ))
  echo "$rps $p99 $errors"
}

# wrk_median PATH [SCRIPT]: wrk_run ROUNDS times; prints the run with the
# median requests/s (this machine's neighbours make single runs swing).
wrk_median() {
  local i
  for i in $(seq "$ROUNDS"); do wrk_run "$@"; done | sort -g -k1,1 | sed -n "$(( (ROUNDS + 1) / 2 ))p"
}

# verdict VALUE TARGET [le]: "ok" or "MISSED".
verdict() {
  if [ "${3:-ge}" = le ]; then [ "$(echo "$1 <= $2" | bc -l)" = 1 ] && echo ok || echo MISSED
  else [ "$(echo "$1 >= $2" | bc -l)" = 1 ] && echo ok || echo MISSED; fi
}

# row NAME TARGET RPS P99 ERRORS [CEILING]
row() {
  local ratio="-"
  [ -n "${6:-}" ] && ratio=$(printf '%.2f' "$(echo "$3 / $6" | bc -l)")
  printf '  %-16s %9.0f req/s (target %6d: %-6s)  p99 %7.2f ms (%-6s)  vs pgbench %5s  errors %s\n' \
    "$1" "$3" "$2" "$(verdict "$3" "$2")" "$4" "$(verdict "$4" 20 le)" "$ratio" "$5"
}

echo "== bench-http: $("$BIN" version | head -n 1), wrk -t2 -c$CONNS, ${SECS}s per run, $(nproc) cores, ACCESS_LOG=$ACCESS_LOG"
echo "   load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the figures)"

for db in $DBS; do
  if [ "$db" = postgresql ]; then
    eval "$(tests/pg.sh start)"
    pgdir=$TEST_PG_DIR
    url=$TEST_PG_URL
  else
    url="sqlite:///$work/bench.db"
  fi
  prepare "$url" "$db"
  start_server "$url"
  read -r one_rps one_p99 one_err < <(wrk_median /todos/1)
  read -r list_rps list_p99 list_err < <(wrk_median /todos)
  read -r post_rps post_p99 post_err < <(wrk_median /todos "$work/post.lua")
  rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$server/status")
  stop_server

  ceiling=""
  if [ "$db" = postgresql ]; then
    bindir=$(cat "$pgdir/bindir")
    pgport=$(echo "$url" | sed -E 's|.*:([0-9]+)/.*|\1|')
    export PGPASSWORD=todo_pass
    "$bindir/pgbench" -h 127.0.0.1 -p "$pgport" -U todo_user -i -s 1 -q todo_test >/dev/null 2>&1
    ceiling=$(for i in $(seq "$ROUNDS"); do
        "$bindir/pgbench" -h 127.0.0.1 -p "$pgport" -U todo_user -n -S -M prepared \
          -c "$CONNS" -j 2 -T "$SECS" todo_test 2>/dev/null | sed -nE 's/^tps = ([0-9.]+).*/\1/p'
      done | sort -g | sed -n "$(( (ROUNDS + 1) / 2 ))p")
  fi

  echo "$db:"
  if [ "$db" = postgresql ]; then
    row "GET /todos/1" 25000 "$one_rps" "$one_p99" "$one_err" "$ceiling"
    row "GET /todos" 5000 "$list_rps" "$list_p99" "$list_err" "$ceiling"
    row "POST /todos" 8000 "$post_rps" "$post_p99" "$post_err" "$ceiling"
    printf '  %-16s %9.0f tps (the ceiling: pgbench -S -M prepared -c %d -j 2)\n' "pgbench -S" "$ceiling" "$CONNS"
  else
    row "GET /todos/1" 40000 "$one_rps" "$one_p99" "$one_err"
    row "GET /todos" 5000 "$list_rps" "$list_p99" "$list_err"
    row "POST /todos" 0 "$post_rps" "$post_p99" "$post_err"
  fi
  printf '  %-16s %9d kB peak resident memory (target < 65536: %s)\n' "server memory" "$rss" "$(verdict "$rss" 65536 le)"

  if [ "$db" = postgresql ]; then tests/pg.sh stop "$pgdir" >/dev/null 2>&1; pgdir=""; fi
done
