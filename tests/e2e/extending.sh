#!/usr/bin/env bash
# tests/e2e/extending.sh: docs/extending.md, done as written, in a fresh copy
# of the project: a new endpoint (GET /stats) and a new migration (a priority
# column), with `make run` running, nothing compiled. The code is taken from
# the page itself (the blocks after its <!-- file: -->, <!-- edit: --> and
# <!-- revision: --> markers), so the page and this test cannot drift apart.
# First on SQLite (live reload), then on a native PostgreSQL (make db-start).
# Prints `ok - ` / `not ok - ` lines.
set -uo pipefail
source "$(dirname "$0")/lib/project.sh"

DOC=$ROOT/docs/extending.md

# block MARKER: the fenced code block that follows the line <!-- MARKER --> in the page.
block() {
  awk -v marker="<!-- $1 -->" '
    $0 == marker { found = 1; next }
    found == 1 && /^```/ { found = 2; next }
    found == 2 && /^```/ { exit }
    found == 2 { print }' "$DOC"
}

if ! project_new; then
  echo "not ok - a fresh copy of the project (make sure make has built it)"
  exit 1
fi
binaries_before=$(md5sum "$WORK/build/todohost" | cut -d' ' -f1)

if app_start; then ok "make run serves on SQLite"; else not_ok "make run serves on SQLite"; exit 1; fi
check "GET /stats is unknown before" eq "$(api -o /dev/null -w '%{http_code}' "$(url /stats)")" 404

# ---- the endpoint ------------------------------------------------------------------

code=$(block "file: scripts/app/stats.lua")
check "docs/extending.md has the scripts/app/stats.lua block" [ -n "$code" ]
printf '%s\n' "$code" >"$WORK/scripts/app/stats.lua"
line=$(block "edit: scripts/app/api.lua")
check "scripts/app/api.lua has the ROUTE_MODULES line the page edits" grep -q '^local ROUTE_MODULES = ' "$WORK/scripts/app/api.lua"
sed -i "s/^local ROUTE_MODULES = .*/$line/" "$WORK/scripts/app/api.lua"

stats=""
for _ in $(seq 100); do   # the workers reload on the change
  stats=$(api "$(url /stats)")
  case "$stats" in '{"total"'*) break ;; esac
  sleep 0.1
done
check "GET /stats answers without a restart (reload)" eq "$stats" '{"total":3,"completed":1,"open":2}'
api -o /dev/null -X PATCH "$(url /todos/2)" -H 'Content-Type: application/json' -d '{"is_completed": true}'
check "GET /stats follows the data" eq "$(api "$(url /stats)")" '{"total":3,"completed":2,"open":1}'
check "/openapi.json lists /stats with its Stats model" \
  eval 'o=$(api "$(url /openapi.json)"); contains "$o" "\"/stats\"" && contains "$o" "\"Stats\""'

# ---- the migration -------------------------------------------------------------------

gen=$(cd "$WORK" && "$TODOHOST" run migrate.lua revision -m "add priority to todos" 2>&1)
file=$(sed -n 's/^Generating \(migrations\/[^ ]*\.lua\) .*done$/\1/p' <<<"$gen")
check "migrate.lua revision -m writes the revision file" eval '[ -n "$file" ] && [ -f "$WORK/$file" ]'
[ -n "$file" ] || note "$gen"
rev=$(basename "$file" .lua | cut -d_ -f1-4)
functions=$(block "revision: add priority to todos")
check "docs/extending.md has the upgrade/downgrade block" [ -n "$functions" ]
if [ -n "$file" ] && [ -f "$WORK/$file" ]; then
  # replace everything from "  upgrade = function" to the closing "}" with the page's block
  awk -v body="$functions" '
    /^  upgrade = function/ { print body; skip = 1; next }
    skip && /^}/ { skip = 0 }
    !skip { print }' "$WORK/$file" >"$WORK/$file.new" && mv "$WORK/$file.new" "$WORK/$file"
fi
mk migrate
check "make migrate applies it on SQLite (live database)" contains "$out" "Running upgrade 2026_02_21_004 -> $rev, add priority to todos"
cols=$(cd "$WORK" && printf 'SELECT id, title, priority FROM todos;\n' | make --no-print-directory psql 2>&1)
check "make psql: SELECT id, title, priority FROM todos (SQLite)" eval 'contains "$cols" "1|Read the todohost README|0"'
mk doctor
check "make doctor: at head $rev" contains "$out" "✓ migrations: at head $rev"
sql=$(cd "$WORK" && "$TODOHOST" run migrate.lua upgrade --sql 2026_02_21_004:head 2>&1)
check "migrate.lua upgrade --sql 2026_02_21_004:head prints the new revision's SQL only" \
  eval 'contains "$sql" "priority INTEGER DEFAULT 0 NOT NULL" && lacks "$sql" "Running upgrade 2026_02_21_003"'
down=$(cd "$WORK" && "$TODOHOST" run migrate.lua downgrade -1 2>&1)
check "migrate.lua downgrade -1 warns, then drops the column" \
  eval 'contains "$down" "drops column todos.priority" && contains "$down" "Running downgrade $rev -> 2026_02_21_004"'
mk migrate
check "make migrate applies it again" contains "$out" "Running upgrade 2026_02_21_004 -> $rev"
check "the todos are all there after the SQLite table rebuilds" eq "$(api "$(url /stats)")" '{"total":3,"completed":2,"open":1}'
check "migrate.lua help lists the commands" eval '(cd "$WORK" && "$TODOHOST" run migrate.lua help) | grep -q "^  history"'
app_stop

# ---- the same on PostgreSQL --------------------------------------------------------------

mk db-start
check "make db-start" contains "$out" "PostgreSQL is running on localhost:$PG_PORT"
printf 'DATABASE_URL=postgresql://todo_user:todo_pass@localhost:%s/todo_db\n' "$PG_PORT" >"$WORK/.env"
mk migrate
check "make migrate on PostgreSQL runs all five revisions" eq "$(grep -c 'Running upgrade' <<<"$out")" 5
if app_start; then ok "make run serves on PostgreSQL (seeded)"; else not_ok "make run serves on PostgreSQL (seeded)"; fi
check "GET /stats on PostgreSQL: the same SQL works" eq "$(api "$(url /stats)")" '{"total":3,"completed":1,"open":2}'
cols=$(cd "$WORK" && printf 'SELECT id, title, priority FROM todos;\n' | make --no-print-directory psql 2>&1)
check "make psql: the priority column on PostgreSQL" eval 'contains "$cols" "priority" && contains "$cols" "(3 rows)"'
app_stop
mk db-stop

check "nothing was compiled: build/todohost is the same file" \
  eq "$(md5sum "$WORK/build/todohost" | cut -d' ' -f1)" "$binaries_before"

[ "$failed" -eq 0 ]
