#!/usr/bin/env bash
# tests/e2e/faults.sh: database faults, with real servers. A transaction,
# a request, a migration and a copy whose PostgreSQL session is terminated
# part-way each roll back whole and say so; a SQLite file locked by another
# process is waited for, then refused in one clear line; PostgreSQL stopped
# under HTTP load gives quick 503s and the server comes back by itself; a
# full disk on the PostgreSQL side fails a copy whole.
#
# Uses the shared throwaway server (TEST_PG_URL, TEST_PG_DIR) for what does
# not stop it, and a second throwaway server of its own (tests/pg.sh) for the
# outage and the full disk. Cleans up after itself; bounded in time.
# Prints `ok - ` / `not ok - ` lines; run by tests/run.sh (TODOHOST, TEST_TMPDIR).
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
TODOHOST=${TODOHOST:-$ROOT/build/todohost}
TMP=${TEST_TMPDIR:-$(mktemp -d)}
failed=0
pids=()
own_pg=""
mounted=""

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
note() { printf '# %s\n' "$@" >&2; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
contains() { case "$1" in *"$2"*) return 0 ;; *) note "'$2' not in: ${1:0:600}"; return 1 ;; esac; }
eq() { [ "$1" = "$2" ] || { note "got:  ${1:0:600}" "want: ${2:0:600}"; return 1; }; }
one_line() { [ "$(printf '%s' "$1" | grep -c '')" -le 1 ] || { note "more than one line: $1"; return 1; }; }
now_ms() { date +%s%3N; }

cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [ -n "$own_pg" ] && [ -n "${PSQL_OWN:-}" ] && "$PSQL_OWN" -X -q "$OWN_ADMIN" \
    -c "DROP DATABASE IF EXISTS faults_full WITH (FORCE)" -c "DROP TABLESPACE IF EXISTS faults_small" >/dev/null 2>&1
  [ -n "$own_pg" ] && tests/pg.sh stop "$own_pg" >/dev/null 2>&1
  [ -n "$mounted" ] && umount "$mounted" 2>/dev/null
}
trap cleanup EXIT

if [ -z "${TEST_PG_URL:-}" ] || [ -z "${TEST_PG_DIR:-}" ]; then
  echo "ok - # SKIP TEST_PG_URL / TEST_PG_DIR not set (tests/run.sh starts PostgreSQL)"
  exit 0
fi
BINDIR=$(cat "$TEST_PG_DIR/bindir")
PSQL="$BINDIR/psql"
ADMIN="${TEST_PG_URL%/*}/postgres"

# url_for BASE_URL DBNAME: the URL of another database on the same server.
url_for() { echo "${1%/*}/$2"; }
# sql URL SQL: one value, unaligned.
sql() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 "$1" -c "$2"; }
fresh_db() { # fresh_db ADMIN_URL NAME
  sql "$1" "DROP DATABASE IF EXISTS $2 WITH (FORCE)" >/dev/null && sql "$1" "CREATE DATABASE $2" >/dev/null
}
# backend_running URL PATTERN: the pid of the session running a query like PATTERN.
backend_running() {
  sql "$1" "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active' AND query ILIKE '$2' LIMIT 1"
}
wait_backend() { # wait_backend URL PATTERN SECONDS: prints the pid
  local pid=""
  for _ in $(seq $(($3 * 20))); do
    pid=$(backend_running "$1" "$2")
    [ -n "$pid" ] && { echo "$pid"; return 0; }
    sleep 0.05
  done
  return 1
}
terminate() { sql "$ADMIN" "SELECT pg_terminate_backend($1)" >/dev/null; }

fresh_db "$ADMIN" faults_e2e || { not_ok "cannot create a database on the test server"; exit 1; }
URL=$(url_for "$TEST_PG_URL" faults_e2e)

# ---- a transaction lost before its COMMIT -----------------------------------
cat >"$TMP/lost_commit.lua" <<'EOF'
local db = require "todohost.db"
local url = os.getenv("URL")
local c, killer = db.connect(url), db.connect(url)
c:exec("CREATE TABLE lost_commit (x int)")
local ok, err = pcall(c.transaction, c, function(t)
  t:exec("INSERT INTO lost_commit VALUES (1)")
  local pid = t:first("SELECT pg_backend_pid() AS p").p
  killer:first("SELECT pg_terminate_backend($1) AS ok", pid)
  for _ = 1, 500 do   -- until the session is gone: nothing more runs in it
    if not killer:first("SELECT 1 AS v FROM pg_stat_activity WHERE pid = $1", pid) then break end
    os.execute("sleep 0.01")
  end
end)
print(ok and "committed" or tostring(err))
print(c:first("SELECT count(*) AS n FROM lost_commit").n)
EOF
out=$(URL=$URL "$TODOHOST" run "$TMP/lost_commit.lua" 2>&1)
check "a transaction whose connection was lost before COMMIT is not reported committed" \
  contains "$out" "lost inside a transaction: its changes are rolled back"
check "... and wrote nothing" eq "$(printf '%s\n' "$out" | tail -n 1)" "0"

# ---- a request ---------------------------------------------------------------
sql "$URL" "CREATE TABLE fault_req (note text)" >/dev/null
cat >"$TMP/fault_app.lua" <<'EOF'
-- fault_app.lua: /slow writes, then waits in pg_sleep, in one transaction;
-- /count counts what was written.
local db = require "todohost.db"
local conn = db.connect(os.getenv("DATABASE_URL"))
return function(req)
  if req.path == "/slow" then
    conn:transaction(function(c)
      c:exec("INSERT INTO fault_req VALUES ('partial')")
      c:first("SELECT pg_sleep(20) AS s")
    end)
    return 200, { ["content-type"] = "text/plain" }, "done"
  end
  local n = conn:first("SELECT count(*) AS n FROM fault_req").n
  return 200, { ["content-type"] = "text/plain" }, tostring(n)
end
EOF
log=$TMP/request.log
env DATABASE_URL="$URL" APP=fault_app WORKERS=1 PORT=0 LUA_PATH="$TMP/?.lua;$ROOT/tests/fixtures/?.lua;;" \
  "$TODOHOST" run "$ROOT/tests/fixtures/serve_hello.lua" >"$log" 2>&1 &
pids+=($!)
port=""
for _ in $(seq 100); do
  port=$(sed -n 's|.*serving on http://[^ ]*:\([0-9]*\) .*|\1|p' "$log" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.1
done
if [ -z "$port" ]; then
  not_ok "the request app starts"; sed 's/^/#   /' "$log" >&2
else
  curl -s -o /dev/null -w '%{http_code}' --max-time 30 "http://127.0.0.1:$port/slow" >"$TMP/slow.code" &
  curl_pid=$!
  if pid=$(wait_backend "$URL" "SELECT pg_sleep%" 20); then
    terminate "$pid"
    wait "$curl_pid"
    check "a request whose session is terminated mid-transaction fails (500)" eq "$(cat "$TMP/slow.code")" "500"
    check "... it wrote nothing" eq "$(sql "$URL" "SELECT count(*) FROM fault_req")" "0"
    check "... and the server's log says it was rolled back" contains "$(cat "$log")" "its changes are rolled back"
    check "the next request reconnects" eq "$(curl -s --max-time 10 "http://127.0.0.1:$port/count")" "0"
  else
    not_ok "the request reaches pg_sleep"
  fi
fi

# ---- a migration ---------------------------------------------------------------
proj=$TMP/project
mkdir -p "$proj" && cp -r scripts migrations "$proj/"
cat >"$proj/migrations/2099_01_01_001_slow.lua" <<'EOF'
return {
  revision = "2099_01_01_001",
  down_revision = "2026_02_21_004",
  message = "slow",
  create_date = "2099-01-01",
  upgrade = function(op)
    op.execute("CREATE TABLE half_done (x int)")
    op.execute("SELECT pg_sleep(20)")
  end,
  downgrade = function(op) op.execute("DROP TABLE half_done") end,
}
EOF
fresh_db "$ADMIN" faults_mig
MURL=$(url_for "$TEST_PG_URL" faults_mig)
(cd "$proj" && DATABASE_URL=$MURL "$TODOHOST" run migrate.lua upgrade 2026_02_21_004 >/dev/null 2>&1)
(cd "$proj" && DATABASE_URL=$MURL timeout 60 "$TODOHOST" run migrate.lua upgrade head >"$TMP/mig.out" 2>&1; echo $? >"$TMP/mig.rc") &
mig_pid=$!
if pid=$(wait_backend "$MURL" "SELECT pg_sleep%" 20); then
  terminate "$pid"
  wait "$mig_pid"
  check "a migration whose session is terminated fails" test "$(cat "$TMP/mig.rc")" -ne 0
  check "... alembic_version is unchanged" eq "$(sql "$MURL" "SELECT version_num FROM alembic_version")" "2026_02_21_004"
  check "... none of the revision is left" eq "$(sql "$MURL" "SELECT to_regclass('half_done') IS NULL")" "t"
  check "... and it says it was rolled back" contains "$(cat "$TMP/mig.out")" "rolled back"
else
  not_ok "the migration reaches pg_sleep"; kill "$mig_pid" 2>/dev/null
fi
sql "$ADMIN" "DROP DATABASE IF EXISTS faults_mig WITH (FORCE)" >/dev/null

# ---- SQLite locked by another writer -------------------------------------------
if command -v sqlite3 >/dev/null 2>&1; then
  lite=$TMP/locked.db
  sqlite3 "$lite" "PRAGMA journal_mode=WAL; CREATE TABLE t (x int);" >/dev/null
  { echo "BEGIN IMMEDIATE; INSERT INTO t VALUES (1);"; sleep 6; echo "COMMIT;"; } | sqlite3 "$lite" &
  pids+=($!)
  sleep 0.5
  cat >"$TMP/locked.lua" <<'EOF'
local db = require "todohost.db"
local c = db.connect(os.getenv("URL"), { busy_timeout = 1500 })
c:exec("INSERT INTO t VALUES (2)")
EOF
  t0=$(now_ms)
  out=$(URL="sqlite:///$lite" "$TODOHOST" run "$TMP/locked.lua" 2>&1)
  rc=$?
  waited=$(($(now_ms) - t0))
  check "a write to a SQLite file another process holds locked fails" test "$rc" -ne 0
  check "... after the busy timeout (waited ${waited} ms, timeout 1500 ms)" test "$waited" -ge 1400
  check "... saying it is locked by another process and what to do" \
    contains "$out" "is locked by another connection or process (waited 1500 ms"
  check "... in one line" one_line "$out"
else
  echo "ok - # SKIP sqlite3 shell not installed (apt-get install sqlite3)"
fi

sql "$ADMIN" "DROP DATABASE IF EXISTS faults_e2e WITH (FORCE)" >/dev/null

# ---- a second throwaway server: the outage and the full disk ------------------
if ! env_lines=$(TMPDIR=$TMP tests/pg.sh start 2>"$TMP/pg2.err"); then
  not_ok "a second throwaway PostgreSQL starts"; sed 's/^/#   /' "$TMP/pg2.err" >&2
  exit 1
fi
own_pg=$(printf '%s\n' "$env_lines" | sed -n "s/^export TEST_PG_DIR='\(.*\)'$/\1/p")
OWN_URL=$(printf '%s\n' "$env_lines" | sed -n "s/^export TEST_PG_URL='\(.*\)'$/\1/p")
OWN_ADMIN=$(url_for "$OWN_URL" postgres)
PSQL_OWN=$PSQL
as_owner() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else (cd / && "$@"); fi; }
pg_own() { as_owner "$BINDIR/pg_ctl" "$@" -D "$own_pg/data" >/dev/null 2>&1; }

# ---- PostgreSQL stopped and restarted under HTTP load --------------------------
DATABASE_URL=$OWN_URL "$TODOHOST" run migrate.lua upgrade head >/dev/null 2>&1
app_port=$((20000 + RANDOM % 12000))
env DATABASE_URL="$OWN_URL" PORT="$app_port" WORKERS=2 RELOAD=false ACCESS_LOG=false \
  "$TODOHOST" run serve.lua >"$TMP/serve.log" 2>&1 &
serve_pid=$!
pids+=($serve_pid)
# health_within_10s: the status of /health once it is 200, or the last one.
health_within_10s() {
  local code=""
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$app_port/health")
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  echo "$code"
}
code=$(health_within_10s)
check "serve.lua answers /health on PostgreSQL" eq "$code" "200"
# the load: two curl loops, each request's status and time in a file
for k in 1 2; do
  (while [ ! -e "$TMP/load.stop" ]; do
     curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 20 "http://127.0.0.1:$app_port/todos" 
   done >"$TMP/load.$k") &
  pids+=($!)
done
sleep 1
pg_own stop -m fast -w -t 30
sleep 1
: >"$TMP/outage"
for _ in $(seq 10); do
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 20 "http://127.0.0.1:$app_port/health" >>"$TMP/outage"
done
codes=$(cut -d' ' -f1 "$TMP/outage" | sort -u | tr '\n' ' ')
slowest=$(cut -d' ' -f2 "$TMP/outage" | sort -n | tail -n 1)
check "with PostgreSQL stopped, requests get 503" eq "$codes" "503 "
# the reference: libpq's connect_timeout (10 s) is what a hung wait would take
check "... at once (slowest ${slowest}s; a wait for the connect timeout would take 10s)" \
  awk -v t="$slowest" 'BEGIN { exit !(t < 2) }'
check "... and no worker died: the server is up and serves /docs" \
  eq "$(kill -0 "$serve_pid" 2>/dev/null && curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$app_port/docs")" "200"
own_port=${OWN_URL##*:}; own_port=${own_port%%/*}
pg_own start -w -t 60 -l "$own_pg/log" -o "-p $own_port -k '$own_pg' -c listen_addresses=127.0.0.1 -c fsync=off"
t0=$(now_ms)
code=$(health_within_10s)
check "PostgreSQL restarted: 200s resume by themselves (after $(($(now_ms) - t0)) ms)" eq "$code" "200"
touch "$TMP/load.stop"
sleep 0.5
bad=$(cat "$TMP/load.1" "$TMP/load.2" | awk '$1 != 200 && $1 != 503' | head -n 3)
check "under load every answer was 200 or 503 ($(cat "$TMP/load.1" "$TMP/load.2" | wc -l) requests)" eq "$bad" ""
check "... and the server is still the same process" kill -0 "$serve_pid"
kill -TERM "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null

# ---- a full disk on the PostgreSQL side during a copy --------------------------
if [ "$(id -u)" -ne 0 ]; then
  echo "ok - # SKIP not root: cannot mount a small tmpfs for the full-disk copy"
else
  small=$own_pg/small_fs   # where the server's user can reach it
  mkdir -p "$small"
  if mount -t tmpfs -o size=4m tmpfs "$small"; then
    mounted=$small
    chown postgres: "$small"
    check "a tablespace on a 4 MiB tmpfs" sql "$OWN_ADMIN" "CREATE TABLESPACE faults_small LOCATION '$small'"
    sql "$OWN_ADMIN" "CREATE DATABASE faults_full" >/dev/null
    FURL=$(url_for "$OWN_URL" faults_full)
    DATABASE_URL=$FURL "$TODOHOST" run migrate.lua upgrade head >/dev/null 2>&1
    sql "$FURL" "ALTER TABLE todos SET TABLESPACE faults_small" >/dev/null
    sql "$FURL" "INSERT INTO todos (id, title, is_completed, created_at) VALUES (999999, 'kept', false, now())" >/dev/null
    before=$(sql "$FURL" "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM todos t")
    src=$TMP/big.db
    DATABASE_URL="sqlite:///$src" "$TODOHOST" run migrate.lua upgrade head >/dev/null 2>&1
    sqlite3 "$src" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
      INSERT INTO todos (id, title, description, is_completed, created_at)
      SELECT i, 'todo ' || i, printf('%.200c', 'x'), 0, '2026-01-01 00:00:00' FROM n"
    out=$("$TODOHOST" run copy.lua --from "sqlite:///$src" --to "$FURL" --replace 2>&1)
    rc=$?
    check "a copy onto a full disk fails" test "$rc" -ne 0
    note "the copy said: $(printf "%s\n" "$out" | grep "^todohost:")"
    check "... saying the disk is full" contains "$out" "disk is full (53100)"
    check "... and that nothing was committed" contains "$out" "nothing was committed"
    check "... in one line" one_line "$(printf '%s\n' "$out" | grep '^todohost:')"
    check "... the target is unchanged" eq "$(sql "$FURL" "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM todos t")" "$before"
    sql "$OWN_ADMIN" "DROP DATABASE faults_full WITH (FORCE)" >/dev/null
    sql "$OWN_ADMIN" "DROP TABLESPACE faults_small" >/dev/null
    umount "$small" && mounted=""
  else
    echo "ok - # SKIP cannot mount a tmpfs here"
  fi
fi

[ "$failed" -eq 0 ]
