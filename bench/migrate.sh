#!/usr/bin/env bash
# bench/migrate.sh: wall time of `todohost run migrate.lua upgrade head` on an
# empty PostgreSQL database and of `current`, as whole processes (start-up,
# connection, migration files, queries), median of RUNS runs each.
# Target: under 50 ms each (Alembic takes about 400 ms).
# Then, on the database at head, `check` (target < 30 ms) and `revision
# --autogenerate` with nothing to do (target < 100 ms) against Alembic on the
# original app (bench/alembic: its Todo model, env.py and the same 4
# revisions), timed the same way in the same run. Alembic 1.8 (Debian's) has
# no `alembic check` (it came in 1.9): the reference of both is `alembic
# revision --autogenerate`, which compares the same way; the original's env.py
# writes no file when nothing changed. Last, bench/alembic/detect.sh prints
# what that Alembic detects on docs/extending.md's changes.
#
#   bench/migrate.sh            starts a throwaway server with tests/pg.sh
#   TEST_PG_URL=... bench/migrate.sh   uses that server instead (a superuser URL)
#
# Settings: RUNS=15, TODOHOST=build/todohost, PYTHON=/usr/bin/python3 (with
# Debian's python3-alembic, python3-sqlalchemy, python3-psycopg2: make
# bench-migrate installs them; without them the Alembic part is skipped).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-15}
TODOHOST=${TODOHOST:-build/todohost}
[ -x "$TODOHOST" ] || { echo "bench/migrate.sh: $TODOHOST not found; run make first" >&2; exit 1; }

pg_dir="" work=""
cleanup() {
  [ -z "$work" ] || rm -rf "$work"
  [ -n "$pg_dir" ] && tests/pg.sh stop "$pg_dir" >/dev/null 2>&1; pg_dir=""
}
trap cleanup EXIT
if [ -z "${TEST_PG_URL:-}" ]; then
  eval "$(tests/pg.sh start)"
  pg_dir=$TEST_PG_DIR
fi

# A URL naming database $1 on the same server.
url_for() { printf '%s/%s' "${TEST_PG_URL%/*}" "$1"; }
export PGOPTIONS="-c client_min_messages=warning"   # no NOTICE of DROP ... IF EXISTS
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

up=$(printf '%s\n' "${up_times[@]}" | median)
cur=$(printf '%s\n' "${cur_times[@]}" | median)
verdict() { [ "$1" -lt 50000 ] && echo "ok, target < 50 ms" || echo "OVER the 50 ms target"; }
printf 'migrate upgrade head (empty PostgreSQL db): %6.1f ms median of %d  (%s)\n' "$(echo "$up / 1000" | bc -l)" "$RUNS" "$(verdict "$up")"
printf 'migrate current:                            %6.1f ms median of %d  (%s)\n' "$(echo "$cur / 1000" | bc -l)" "$RUNS" "$(verdict "$cur")"

# --- check and autogenerate, against Alembic on the original app ---------
# times_of N CMD...: N wall times (us) of CMD, one a line; fails when CMD does.
times_of() {
  local n=$1 t0 t1; shift
  for _ in $(seq "$n"); do
    t0=$(now_us)
    "$@" >/dev/null || { echo "bench/migrate.sh: failed: $*" >&2; return 1; }
    t1=$(now_us)
    echo $(( t1 - t0 ))
  done
}
ms() { echo "$1 / 1000" | bc -l; }
files_before=$(find migrations -type f | wc -l)
export DATABASE_URL
DATABASE_URL=$(url_for $db)
check=$(times_of "$RUNS" "$TODOHOST" run migrate.lua -q check | median)
autogen=$(times_of "$RUNS" "$TODOHOST" run migrate.lua -q revision --autogenerate -m bench | median)
[ "$(find migrations -type f | wc -l)" = "$files_before" ] ||
  { echo "bench/migrate.sh: revision --autogenerate wrote a file on a database at head" >&2; exit 1; }

PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1
ref=""
if "$PYTHON" -c 'import alembic, sqlalchemy, psycopg2' 2>/dev/null; then
  work=$(mktemp -d)
  cp -r bench/alembic/alembic.ini bench/alembic/env.py bench/alembic/models.py \
    bench/alembic/script.py.mako bench/alembic/versions "$work/"
  admin "DROP DATABASE IF EXISTS ${db}_alembic"
  admin "CREATE DATABASE ${db}_alembic"
  DATABASE_URL=$(url_for "${db}_alembic")
  "$PYTHON" -m alembic -c "$work/alembic.ini" upgrade head 2>/dev/null
  ref=$(times_of "$RUNS" "$PYTHON" -m alembic -c "$work/alembic.ini" revision --autogenerate -m bench 2>/dev/null | median)
  ! compgen -G "$work/versions/*bench*" >/dev/null || { echo "bench/migrate.sh: Alembic found changes on its database at head" >&2; exit 1; }
  ref_version=$("$PYTHON" -c 'import alembic; print(alembic.__version__)')
  admin "DROP DATABASE ${db}_alembic"
fi
admin "DROP DATABASE IF EXISTS $db"

# row LABEL US TARGET_US: the time, the ratio to Alembic's and the verdict.
row() {
  local vs=""
  [ -z "$ref" ] || vs=$(printf '  vs Alembic %.1f ms (%.1fx faster)' "$(ms "$ref")" "$(echo "$ref / $2" | bc -l)")
  local v="ok, target < $(( $3 / 1000 )) ms"; [ "$2" -lt "$3" ] || v="OVER the $(( $3 / 1000 )) ms target"
  printf '%-44s%6.1f ms median of %d%s  (%s)\n' "$1" "$(ms "$2")" "$RUNS" "$vs" "$v"
}
row "migrate check (db at head, matches schema):" "$check" 30000
row "revision --autogenerate (nothing to do):" "$autogen" 100000
if [ -n "$ref" ]; then
  echo "  Alembic $ref_version has no \`alembic check\`; its time is \`alembic revision --autogenerate\` on the original app, nothing to do (no file)"
  bench/alembic/detect.sh "$TEST_PG_URL"
else
  echo "  Alembic part skipped: $PYTHON lacks alembic, sqlalchemy or psycopg2 (scripts/install-deps.sh bench installs them)"
fi
