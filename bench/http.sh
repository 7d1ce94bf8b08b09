#!/bin/bash
# bench/http.sh: `make bench-http`. In one run, on a throwaway PostgreSQL
# server with PostgreSQL's durable defaults (fsync and synchronous commit on,
# as in production) and then on a SQLite file, with 1,000 todos:
#   wrk -t2 -c32 on GET /todos/1, GET /todos (100 rows), POST /todos and
#   PATCH /todos/{id}; after each, PostgreSQL's own ceiling for it, pgbench
#   -M prepared with the same 32 clients: -S for GET /todos/1 (the issue's
#   reference), else a script running the handler's own statement.
# Prints each round, then the medians: requests/s, p99 latency, the ratio
# to pgbench against its target, and the server's peak resident memory.
# Each PostgreSQL round also prints where the time goes: CPU microseconds per
# request spent by the server, by PostgreSQL (the postmaster and every
# backend, those that ended included) and by the load tool (wrk, pgbench).
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

# cpu_ticks PID...: clock ticks of CPU used by the processes and by their
# children that ended (fields utime, stime, cutime, cstime of /proc/PID/stat).
cpu_ticks() {
  local t=0 f p
  for p in "$@"; do
    f=($(cut -d' ' -f14-17 "/proc/$p/stat" 2>/dev/null)) || continue
    t=$((t + ${f[0]:-0} + ${f[1]:-0} + ${f[2]:-0} + ${f[3]:-0}))
  done
  echo "$t"
}
# pg_ticks: the CPU ticks of the PostgreSQL server, backends included.
pg_ticks() {
  local pm
  pm=$(head -n 1 "$pgdir/data/postmaster.pid")
  cpu_ticks "$pm" $(pgrep -P "$pm")
}
# measured CMD...: runs CMD; its stdout goes to $work/out; sets cpu_tool,
# cpu_server, cpu_pg (seconds) for the run.
measured() {
  local hz s0 s1 p0=0 p1=0 tool
  hz=$(getconf CLK_TCK)
  s0=$(cpu_ticks $server)
  [ -n "$pgdir" ] && p0=$(pg_ticks)
  tool=$( { "$@" >"$work/out"; times; } | tail -n 1)
  s1=$(cpu_ticks $server)
  [ -n "$pgdir" ] && p1=$(pg_ticks)
  cpu_server=$(echo "($s1 - $s0) / $hz" | bc -l)
  cpu_pg=$(echo "($p1 - $p0) / $hz" | bc -l)
  # `times`' second line: the children's user and system time, as 0m1.234s
  cpu_tool=$(echo "$tool" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }')
}
# per_request CPU_SECONDS RATE: microseconds of CPU per request.
per_request() { printf '%.0f' "$(echo "$1 * 1000000 / ($2 * $SECS)" | bc -l)"; }

# wrk_run PATH [SCRIPT]: prints "requests/s p99_ms errors" and the CPU
# microseconds per request of the server, PostgreSQL and wrk.
wrk_run() {
  local out
  measured wrk -t2 -c"$CONNS" -d"${SECS}s" --latency ${2:+-s "$2"} "http://127.0.0.1:$port$1"
  out=$(cat "$work/out")
  local rps p99 errors
  rps=$(echo "$out" | sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p')
  p99=$(echo "$out" | awk '$1 == "99%" {
          v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
          if (u == "us") v /= 1000; else if (u == "s") v *= 1000; printf "%.2f", v }')
  local non2xx socket
  non2xx=$(echo "$out" | sed -nE 's/.*Non-2xx or 3xx responses: *([0-9]+).*/\1/p')
  socket=$(echo "$out" | sed -nE 's/.*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+).*/\1+\2+\3+\4/p')
  errors=$(( ${non2xx:-0} + ${socket:-0} ))
  # then CPU microseconds per request: server, PostgreSQL, wrk
  echo "$rps $p99 $errors $(per_request "$cpu_server" "$rps") $(per_request "$cpu_pg" "$rps") $(per_request "$cpu_tool" "$rps")"
}

# verdict VALUE TARGET [le]: "ok" or "MISSED".
verdict() {
  if [ "${3:-ge}" = le ]; then [ "$(echo "$1 <= $2" | bc -l)" = 1 ] && echo ok || echo MISSED
  else [ "$(echo "$1 >= $2" | bc -l)" = 1 ] && echo ok || echo MISSED; fi
}

cat >"$work/patch.lua" <<'LUA'
wrk.method = "PATCH"
wrk.body = '{"is_completed":true}'
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, "/todos/" .. math.random(1, 1000))
end
LUA

# The handlers' own statements, for pgbench (-M prepared), as todos.lua
# sends them for each request.
COLUMNS="id, title, description, is_completed, created_at, updated_at"
cat >"$work/pg_get.sql" <<SQL
\set id random(1, 1000)
SELECT $COLUMNS FROM todos WHERE id = :id AND deleted_at IS NULL;
SQL
cat >"$work/pg_list.sql" <<SQL
SELECT $COLUMNS FROM todos WHERE deleted_at IS NULL ORDER BY id LIMIT 100 OFFSET 0;
SQL
cat >"$work/pg_post.sql" <<SQL
INSERT INTO todos (title, description, is_completed, created_at) VALUES ('a todo from pgbench', 'bench/http.sh', false, CURRENT_TIMESTAMP) RETURNING $COLUMNS;
SQL
cat >"$work/pg_patch.sql" <<SQL
\set id random(1, 1000)
UPDATE todos SET is_completed = true, updated_at = CURRENT_TIMESTAMP WHERE id = :id AND deleted_at IS NULL RETURNING $COLUMNS;
SQL

# pgbench_run ARGS...: tps of one pgbench run with CONNS clients, and the
# CPU microseconds per transaction of PostgreSQL and pgbench.
pgbench_run() {
  measured "$bindir/pgbench" -h 127.0.0.1 -p "$pgport" -U todo_user -n -M prepared \
    -c "$CONNS" -j 2 -T "$SECS" "$@" todo_test
  local tps
  tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$work/out")
  echo "$tps $(per_request "$cpu_pg" "$tps") $(per_request "$cpu_tool" "$tps")"
}

# median: the middle one of the numbers on stdin.
median() { sort -g | sed -n "$(( (ROUNDS + 1) / 2 ))p"; }

# row NAME RPS P99 ERRORS CEILING TARGET_RATIO REFERENCE
row() {
  local ratio verdict_ratio="-"
  ratio=$(printf '%.2f' "$(echo "$2 / $5" | bc -l)")
  [ -n "$6" ] && verdict_ratio="$(verdict "$ratio" "$6") (target >= $6)"
  printf '  %-16s %9.0f req/s  p99 %7.2f ms (%-6s)  errors %-3s  %9.0f tps %-22s ratio %s %s\n' \
    "$1" "$2" "$3" "$(verdict "$3" 20 le)" "$4" "$5" "$7" "$ratio" "$verdict_ratio"
}

echo "== bench-http: $("$BIN" version | head -n 1), wrk -t2 -c$CONNS, ${SECS}s per run, $ROUNDS rounds, $(nproc) cores, ACCESS_LOG=$ACCESS_LOG"
echo "   load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the figures)"

WORK="one list post patch"
for db in $DBS; do
  if [ "$db" = postgresql ]; then
    eval "$(TEST_PG_DURABLE=1 tests/pg.sh start)"   # fsync and synchronous commit on, as in production
    pgdir=$TEST_PG_DIR
    url=$TEST_PG_URL
    bindir=$(cat "$pgdir/bindir")
    pgport=$(echo "$url" | sed -E 's|.*:([0-9]+)/.*|\1|')
    export PGPASSWORD=todo_pass
  else
    url="sqlite:///$work/bench.db"
  fi
  prepare "$url" "$db"
  [ "$db" = postgresql ] && "$bindir/pgbench" -h 127.0.0.1 -p "$pgport" -U todo_user -i -s 1 -q todo_test >/dev/null 2>&1
  start_server "$url"
  # warm-up, not measured: the pools open their connections (a PostgreSQL
  # login each) as the first requests need them; pgbench's figures leave
  # out its own connecting too ("without initial connection time")
  wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$port/todos/1" >/dev/null
  echo "$db:"
  # each round: every request kind through todohost, then (PostgreSQL) the
  # same statements through pgbench, so both see the same database
  for round in $(seq "$ROUNDS"); do
    for w in $WORK; do
      case $w in
        one) r=$(wrk_run /todos/1) ;;
        list) r=$(wrk_run /todos) ;;
        post) r=$(wrk_run /todos "$work/post.lua") ;;
        patch) r=$(wrk_run /todos "$work/patch.lua") ;;
      esac
      echo "$r" >>"$work/$db.$w.wrk"
      if [ "$db" = postgresql ]; then
        case $w in
          one) t=$(pgbench_run -S) ;;
          list) t=$(pgbench_run -f "$work/pg_list.sql") ;;
          post) t=$(pgbench_run -f "$work/pg_post.sql") ;;
          patch) t=$(pgbench_run -f "$work/pg_patch.sql") ;;
        esac
        echo "${t%% *}" >>"$work/$db.$w.pgbench"
        read -r rps _ _ us_server us_pg us_wrk <<<"$r"
        read -r tps us_pg_ref us_pgbench <<<"$t"
        printf '  round %d %-6s todohost %7.0f req/s (CPU us/req: server %3s + postgres %3s + wrk %3s)  pgbench %7.0f tps (postgres %3s + pgbench %3s)  ratio %.2f\n' \
          "$round" "$w" "$rps" "$us_server" "$us_pg" "$us_wrk" "$tps" "$us_pg_ref" "$us_pgbench" "$(echo "$rps / $tps" | bc -l)"
      fi
    done
  done
  rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$server/status")
  stop_server

  for w in $WORK; do
    read -r rps p99 err us_server _ us_wrk < <(sort -g -k1,1 "$work/$db.$w.wrk" | sed -n "$(( (ROUNDS + 1) / 2 ))p")
    case $w in
      one) name="GET /todos/1" target=0.8 ref="(pgbench -S)" ;;
      list) name="GET /todos" target="" ref="(its SELECT)" ;;
      post) name="POST /todos" target=0.6 ref="(its INSERT)" ;;
      patch) name="PATCH /todos/{id}" target="" ref="(its UPDATE)" ;;
    esac
    if [ "$db" = postgresql ]; then
      row "$name" "$rps" "$p99" "$err" "$(median <"$work/$db.$w.pgbench")" "$target" "$ref"
    else
      printf '  %-16s %9.0f req/s  p99 %7.2f ms (%-6s)  errors %-3s  CPU us/req: server %s + wrk %s\n' "$name" "$rps" "$p99" \
        "$(verdict "$p99" 20 le)" "$err" "$us_server" "$us_wrk"
    fi
  done
  printf '  %-16s %9d kB peak resident memory (target < 65536: %s)\n' "server memory" "$rss" "$(verdict "$rss" 65536 le)"
  if [ "$db" = postgresql ]; then tests/pg.sh stop "$pgdir" >/dev/null 2>&1; pgdir=""; fi
done
