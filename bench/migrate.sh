#!/usr/bin/env bash
# bench/migrate.sh: wall time of `todohost run migrate.lua upgrade head` on an
# empty PostgreSQL database and of `current`, as whole processes (start-up,
# connection, migration files, queries), median of RUNS runs each.
# Target: under 50 ms each (Alembic takes about 400 ms).
#
#   bench/migrate.sh            starts a throwaway server with tests/pg.sh
#   TEST_PG_URL=... bench/migrate.sh   uses that server instead (a superuser URL)
#
# Settings: RUNS=15, TODOHOST=build/todohost.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-15}
TODOHOST=${TODOHOST:-build/todohost}
[ -x "$TODOHOST" ] || { echo "bench/migrate.sh: $TODOHOST not found; run make first" >&2; exit 1; }

pg_dir=""
cleanup() { [ -n "$pg_dir" ] && tests/pg.sh stop "$pg_dir" >/dev/null 2>&1; pg_dir=""; }
trap cleanup EXIT
if [ -z "${TEST_PG_URL:-}" ]; then
  eval "$(tests/pg.sh start)"
  pg_dir=$TEST_PG_DIR
fi

# A URL naming database $1 on the same server.
url_for() { printf '%s/%s' "${TEST_PG_URL%/*}" "$1"; }
admin() { psql -X -q -v ON_ERROR_STOP=1 "$TEST_PG_URL" -c "$1" >/dev/null; }

now_us() { echo $(( $(date +%s%N) / 1000 )); }

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

db=bench_migrate
up_times=() cur_times=()
for i in $(seq "$RUNS"); do
  admin "DROP DATABASE IF EXISTS $db"
  admin "CREATE DATABASE $db"
  t0=$(now_us)
  DATABASE_URL=$(url_for $db) "$TODOHOST" run migrate.lua -q upgrade head
  t1=$(now_us)
  up_times+=($(( t1 - t0 )))
done
for i in $(seq "$RUNS"); do
  t0=$(now_us)
  DATABASE_URL=$(url_for $db) "$TODOHOST" run migrate.lua -q current >/dev/null
  t1=$(now_us)
  cur_times+=($(( t1 - t0 )))
done
admin "DROP DATABASE IF EXISTS $db"

up=$(printf '%s\n' "${up_times[@]}" | median)
cur=$(printf '%s\n' "${cur_times[@]}" | median)
verdict() { [ "$1" -lt 50000 ] && echo "ok, target < 50 ms" || echo "OVER the 50 ms target"; }
printf 'migrate upgrade head (empty PostgreSQL db): %6.1f ms median of %d  (%s)\n' "$(echo "$up / 1000" | bc -l)" "$RUNS" "$(verdict "$up")"
printf 'migrate current:                            %6.1f ms median of %d  (%s)\n' "$(echo "$cur / 1000" | bc -l)" "$RUNS" "$(verdict "$cur")"
