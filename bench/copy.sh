#!/bin/bash
# bench/copy.sh: `make bench-copy`. On a throwaway PostgreSQL server, in one run:
#   - builds a SQLite database of 1,000,000 todos shaped like the real table
#     (NULL and unicode descriptions, naive and offset timestamps with and
#     without microseconds), migrated by migrate.lua;
#   - for each tool, into a fresh migrated database: copy.lua (verification
#     included), `psql \copy` of the same rows from a prepared TSV file (the
#     server's own text ingest, our reference) and pgloader (Debian) when it
#     is installed;
#   - then, from the database copy.lua filled, PostgreSQL -> SQLite: copy.lua's
#     verified snapshot against `psql \copy ... TO` a CSV file plus `sqlite3
#     .import` into the same migrated schema; and `copy.lua --check` on the
#     source (it reads every value and writes nothing);
#   - prints the median and best wall-clock time of ROUNDS runs of each (the
#     tools take turns, so load from elsewhere hits them alike), the ratios
#     (targets: <= 0.6x psql \copy, <= 0.25x pgloader; reverse <= 1.0x;
#     --check <= 0.5x the copy), peak resident memory (target < 32 MB), and
#     whether every tool left the same rows (copy.lua's checksum).
# Settings: ROWS=1000000, ROUNDS=3, TODOHOST=build/todohost.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${TODOHOST:-$ROOT/build/todohost}
ROWS=${ROWS:-1000000}
ROUNDS=${ROUNDS:-3}
work=$(mktemp -d /tmp/todohost-bench-copy.XXXXXX)
chmod 755 "$work"
pgdir=""
cleanup() { [ -n "$pgdir" ] && tests/pg.sh stop "$pgdir" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT

# pgloader (the tool people use today) and GNU time (peak memory): best effort
for pkg in pgloader time; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' && continue
  if [ "$(id -u)" -ne 0 ] || ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "$pkg" >/dev/null 2>&1; then
    echo "bench-copy: could not install $pkg (apt-get install $pkg); its figures are skipped" >&2
  fi
done

eval "$(tests/pg.sh start)"
pgdir=$TEST_PG_DIR
bindir=$(cat "$pgdir/bindir" 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
admin_url=${TEST_PG_URL%/*}/postgres
url_of() { echo "${TEST_PG_URL%/*}/$1"; }
psql_q() { PGTZ=UTC "$bindir/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "== bench-copy: $("$BIN" version | head -n 1), $ROWS rows, median of $ROUNDS runs"

# ---- the source: a migrated SQLite file with ROWS todos --------------------
src=$work/database.db
DATABASE_URL="sqlite:///$src" "$BIN" run migrate.lua upgrade head >/dev/null 2>&1
"$BIN" run - "sqlite:///$src" "$ROWS" <<'LUA'
local conn = require("todohost.db").connect(arg[1])
local sql = [[WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ROWS)
INSERT INTO todos (id, title, description, is_completed, created_at, updated_at, deleted_at)
SELECT i,
  CASE i % 7 WHEN 0 THEN 'Café ☕ order #' || i WHEN 1 THEN 'Buy milk and eggs ' || i
    WHEN 2 THEN '買い物リスト ' || i || ' 🛒' WHEN 3 THEN 'Write the quarterly report, section ' || i
    ELSE 'Task number ' || i || ' with a "quote" and a \backslash' END,
  CASE WHEN i % 3 = 0 THEN NULL
    WHEN i % 3 = 1 THEN 'Details for item ' || i || ': naïve façade — ünïcödé ✓ and some more words to make it longer than a title usually is.'
    ELSE 'Short note ' || i END,
  i % 2,
  strftime('%Y-%m-%d %H:%M:%S', 1700000000 + i * 37, 'unixepoch')
    || CASE WHEN i % 2 = 0 THEN '.' || printf('%06d', (i * 7919) % 1000000) ELSE '' END,
  CASE WHEN i % 4 = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%f', 1700000000 + i * 41, 'unixepoch') END,
  CASE WHEN i % 10 = 0 THEN strftime('%Y-%m-%dT%H:%M:%S', 1700000000 + i * 43, 'unixepoch') || '+02:00' END
FROM n]]
conn:exec((sql:gsub("ROWS", function() return tostring(math.tointeger(tonumber(arg[2]))) end)))
conn:close()
LUA
echo "source: $src ($(du -h "$src" | cut -f1), $ROWS todos)"

# ---- the same rows as a TSV file in COPY's text format ----------------------
tsv=$work/todos.tsv
sqlite3 "$src" >"$tsv" <<'SQL'
.mode list
.separator "\t"
.nullvalue '\N'
.headers off
SELECT id,
  replace(replace(replace(replace(title, '\', '\\'), char(9), '\t'), char(10), '\n'), char(13), '\r'),
  replace(replace(replace(replace(description, '\', '\\'), char(9), '\t'), char(10), '\n'), char(13), '\r'),
  is_completed, created_at, updated_at, deleted_at
FROM todos;
SQL

# ---- a migrated template database; each run gets a fresh copy of it --------
psql_q "$admin_url" -c "CREATE DATABASE bench_template"
DATABASE_URL=$(url_of bench_template) "$BIN" run migrate.lua upgrade head >/dev/null 2>&1
run_no=0
fresh_db() {
  run_no=$((run_no + 1))
  local name=bench_$run_no
  psql_q "$admin_url" -c "CREATE DATABASE $name TEMPLATE bench_template" -c "CHECKPOINT"
  echo "$name"
}
drop_db() { psql_q "$admin_url" -c "DROP DATABASE $1"; }

# checksum NAME: copy.lua's checksum of the target's todos (same for every tool
# when they stored the same values)
checksum() {
  "$BIN" run - "$(url_of "$1")" <<'LUA'
local conn = require("todohost.db").connect(arg[1])
local copy = require "todohost.copy"
local sum = copy.checksum(conn, "todos", { "id", "title", "description", "is_completed",
  "created_at", "updated_at", "deleted_at" })
print(sum.rows .. " " .. sum.checksum)
LUA
}

pgloader_bin=$(command -v pgloader || true)
time_bin=$(command -v /usr/bin/time || true)
declare -a t_copy t_psql t_pgloader t_rev t_revref t_check
rss_copy=0 rss_rev=0 rss_check=0
# an empty migrated SQLite file, the schema sqlite3 .import fills
DATABASE_URL="sqlite:///$work/empty.db" "$BIN" run migrate.lua upgrade head >/dev/null 2>&1
sum_copy="" sum_psql="" sum_pgloader=""

for round in $(seq "$ROUNDS"); do
  # copy.lua
  db=$(fresh_db)
  start=$(now)
  if [ -n "$time_bin" ]; then
    "$time_bin" -f %M -o "$work/rss" "$BIN" run copy.lua --from "sqlite:///$src" --to "$(url_of "$db")" >"$work/copy.out" 2>&1
    rss=$(tail -n 1 "$work/rss")
    [ "$rss" -gt "$rss_copy" ] && rss_copy=$rss
  else
    "$BIN" run copy.lua --from "sqlite:///$src" --to "$(url_of "$db")" >"$work/copy.out" 2>&1
  fi
  t_copy+=("$(echo "$(now) - $start" | bc -l)")
  [ "$round" = 1 ] && sum_copy=$(checksum "$db") && sed -n '/^table/,$p' "$work/copy.out"

  # PostgreSQL -> SQLite: copy.lua's verified snapshot of that database ...
  rm -f "$work/snap.db"
  start=$(now)
  if [ -n "$time_bin" ]; then
    "$time_bin" -f %M -o "$work/rss" "$BIN" run copy.lua --from "$(url_of "$db")" --to "sqlite:///$work/snap.db" >"$work/rev.out" 2>&1 ||
      { echo "the reverse copy failed:"; tail -n 5 "$work/rev.out"; }
    rss=$(tail -n 1 "$work/rss")
    [ "$rss" -gt "$rss_rev" ] && rss_rev=$rss
  else
    "$BIN" run copy.lua --from "$(url_of "$db")" --to "sqlite:///$work/snap.db" >"$work/rev.out" 2>&1
  fi
  t_rev+=("$(echo "$(now) - $start" | bc -l)")
  # ... against psql \copy TO a CSV file plus sqlite3 .import into the same schema
  rm -f "$work/ref.db" "$work/out.csv"
  cp "$work/empty.db" "$work/ref.db"
  start=$(now)
  psql_q "$(url_of "$db")" -c "\\copy (SELECT id, title, description, is_completed::int, created_at, updated_at, deleted_at FROM todos) TO '$work/out.csv' CSV"
  sqlite3 "$work/ref.db" ".import --csv $work/out.csv todos"
  t_revref+=("$(echo "$(now) - $start" | bc -l)")
  drop_db "$db"

  # the pre-flight on the source (it reads every value, writes nothing)
  db=$(fresh_db)
  start=$(now)
  if [ -n "$time_bin" ]; then
    "$time_bin" -f %M -o "$work/rss" "$BIN" run copy.lua --check --from "sqlite:///$src" --to "$(url_of "$db")" >"$work/check.out" 2>&1 ||
      { echo "the check failed:"; tail -n 5 "$work/check.out"; }
    rss=$(tail -n 1 "$work/rss")
    [ "$rss" -gt "$rss_check" ] && rss_check=$rss
  else
    "$BIN" run copy.lua --check --from "sqlite:///$src" --to "$(url_of "$db")" >"$work/check.out" 2>&1
  fi
  t_check+=("$(echo "$(now) - $start" | bc -l)")
  drop_db "$db"

  # psql \copy from the TSV file
  db=$(fresh_db)
  start=$(now)
  psql_q "$(url_of "$db")" -c "\\copy todos (id, title, description, is_completed, created_at, updated_at, deleted_at) FROM '$tsv'"
  t_psql+=("$(echo "$(now) - $start" | bc -l)")
  [ "$round" = 1 ] && sum_psql=$(checksum "$db")
  drop_db "$db"

  # pgloader into the migrated schema (data only)
  if [ -n "$pgloader_bin" ]; then
    db=$(fresh_db)
    cat >"$work/pgloader.load" <<EOF
LOAD DATABASE
  FROM sqlite://$src
  INTO $(url_of "$db")
WITH data only, reset sequences
EXCLUDING TABLE NAMES LIKE 'alembic_version', 'todohost_migration_checksums';
EOF
    start=$(now)
    (cd "$work" && "$pgloader_bin" --quiet pgloader.load >"$work/pgloader.out" 2>&1) ||
      { echo "pgloader failed:"; tail -n 20 "$work/pgloader.out"; }
    t_pgloader+=("$(echo "$(now) - $start" | bc -l)")
    [ "$round" = 1 ] && sum_pgloader=$(checksum "$db")
    drop_db "$db"
  fi
done

best() { sort -g | head -n 1; }
m_copy=$(printf '%s\n' "${t_copy[@]}" | median) b_copy=$(printf '%s\n' "${t_copy[@]}" | best)
m_psql=$(printf '%s\n' "${t_psql[@]}" | median) b_psql=$(printf '%s\n' "${t_psql[@]}" | best)
ratio() { echo "$1 / $2" | bc -l; }
echo
echo "                      median    best   runs (wall clock, seconds)"
printf 'copy.lua (verified)   %6.2f  %6.2f   %s\n' "$m_copy" "$b_copy" "$(printf '%.2f ' "${t_copy[@]}")"
printf 'psql \\copy (TSV)      %6.2f  %6.2f   %s\n' "$m_psql" "$b_psql" "$(printf '%.2f ' "${t_psql[@]}")"
if [ -n "$pgloader_bin" ]; then
  m_pgl=$(printf '%s\n' "${t_pgloader[@]}" | median) b_pgl=$(printf '%s\n' "${t_pgloader[@]}" | best)
  printf 'pgloader              %6.2f  %6.2f   %s\n' "$m_pgl" "$b_pgl" "$(printf '%.2f ' "${t_pgloader[@]}")"
fi
printf 'ratio copy.lua / psql \\copy   median %.2f  best %.2f  (target <= 0.60)\n' \
  "$(ratio "$m_copy" "$m_psql")" "$(ratio "$b_copy" "$b_psql")"
if [ -n "$pgloader_bin" ]; then
  printf 'ratio copy.lua / pgloader     median %.2f  best %.2f  (target <= 0.25)\n' \
    "$(ratio "$m_copy" "$m_pgl")" "$(ratio "$b_copy" "$b_pgl")"
else
  echo "pgloader: not installed (apt-get install pgloader), skipped"
fi
if [ -n "$time_bin" ]; then
  printf 'copy.lua peak resident memory   %.1f MB  (target < 32 MB)\n' "$(echo "$rss_copy / 1024" | bc -l)"
else
  echo "copy.lua peak resident memory: /usr/bin/time not installed (apt-get install time), not measured"
fi
echo "target checksums (rows checksum): copy.lua $sum_copy"
echo "                                  psql     $sum_psql$([ "$sum_psql" = "$sum_copy" ] && echo " (same)" || echo " (DIFFERENT)")"
[ -n "$pgloader_bin" ] &&
  echo "                                  pgloader $sum_pgloader$([ "$sum_pgloader" = "$sum_copy" ] && echo " (same)" || echo " (DIFFERENT)")"
m_rev=$(printf '%s\n' "${t_rev[@]}" | median) b_rev=$(printf '%s\n' "${t_rev[@]}" | best)
m_revref=$(printf '%s\n' "${t_revref[@]}" | median) b_revref=$(printf '%s\n' "${t_revref[@]}" | best)
m_check=$(printf '%s\n' "${t_check[@]}" | median) b_check=$(printf '%s\n' "${t_check[@]}" | best)
echo
echo "PostgreSQL -> SQLite        median    best   runs"
printf 'copy.lua (verified)         %6.2f  %6.2f   %s\n' "$m_rev" "$b_rev" "$(printf '%.2f ' "${t_rev[@]}")"
printf 'psql \\copy TO + .import     %6.2f  %6.2f   %s\n' "$m_revref" "$b_revref" "$(printf '%.2f ' "${t_revref[@]}")"
printf 'ratio copy.lua / psql+sqlite3   median %.2f  best %.2f  (target <= 1.00)\n' \
  "$(ratio "$m_rev" "$m_revref")" "$(ratio "$b_rev" "$b_revref")"
echo
printf 'copy.lua --check            %6.2f  %6.2f   %s\n' "$m_check" "$b_check" "$(printf '%.2f ' "${t_check[@]}")"
printf 'ratio --check / the copy        median %.2f  best %.2f  (target <= 0.50)\n' \
  "$(ratio "$m_check" "$m_copy")" "$(ratio "$b_check" "$b_copy")"
if [ -n "$time_bin" ]; then
  printf 'peak resident memory: reverse copy %.1f MB, --check %.1f MB  (target < 32 MB)\n' \
    "$(echo "$rss_rev / 1024" | bc -l)" "$(echo "$rss_check / 1024" | bc -l)"
fi
exit 0
