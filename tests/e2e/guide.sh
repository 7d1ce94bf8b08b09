#!/usr/bin/env bash
# tests/e2e/guide.sh: docs/guide.md, followed step by step in a fresh copy of
# the project, the way a user does it: start on SQLite and create todos over
# HTTP; make db-start (a native PostgreSQL on a free port); point .env at it;
# make migrate; make copy; make run on PostgreSQL and see the very same
# todos; make db-stop, make db-start: still there. make doctor is asked at
# each stage. Prints `ok - step` / `not ok - step`; exits 0 only when every
# step worked. Run by tests/run.sh (TODOHOST, TEST_TMPDIR), or by hand:
#   bash tests/e2e/guide.sh
set -uo pipefail
source "$(dirname "$0")/lib/project.sh"

if ! project_new; then
  echo "not ok - a fresh copy of the project (make sure make has built it)"
  exit 1
fi
note "project copy: $WORK; app port $APP_PORT; PostgreSQL port $PG_PORT; binary $TODOHOST"

# ---- 0. on SQLite, as before the move -------------------------------------

if app_start; then
  ok "make run serves on SQLite (database.db created, migrated, seeded)"
else
  not_ok "make run serves on SQLite (database.db created, migrated, seeded)"
  exit 1
fi
health=$(api "$(url /health)")
check "GET /health says sqlite at the head revision" \
  eq "$health" '{"status":"ok","database":"sqlite","revision":"2026_02_21_004"}'

created=0
for title in "Buy milk" "Write the guide" "Ünïcödé ✓ and \"quotes\"" "To be deleted"; do
  body=$(printf '{"title": "%s", "description": "made on SQLite"}' "${title//\"/\\\"}")
  code=$(api -o /dev/null -w '%{http_code}' -X POST "$(url /todos)" -H 'Content-Type: application/json' -d "$body")
  [ "$code" = 201 ] && created=$((created + 1))
done
check "POST /todos creates 4 todos on SQLite" eq "$created" 4
last_id=$(api "$(url /todos)" | grep -o '"id":[0-9]*' | tail -n 1 | cut -d: -f2)
check "PATCH /todos/{id} completes one" \
  eq "$(api -o /dev/null -w '%{http_code}' -X PATCH "$(url "/todos/$((last_id - 1))")" \
    -H 'Content-Type: application/json' -d '{"is_completed": true}')" 200
check "DELETE /todos/{id} soft-deletes one" \
  eq "$(api -o /dev/null -w '%{http_code}' -X DELETE "$(url "/todos/$last_id")")" 204
sqlite_todos=$(api "$(url /todos)")
check "GET /todos lists the seeds and the new todos" contains "$sqlite_todos" '"title":"Write the guide"'
app_stop

check "make help lists the guide's targets" eval '(cd "$WORK" && make --no-print-directory help) | grep -c -E "^(run|test|db-start|db-stop|migrate|seed|copy|psql|doctor|bench|clean) " | grep -qx 11'
check "build/todohost version names libpq (no driver to install)" eval '"$TODOHOST" version | grep -q "^libpq "'
mk doctor
check "make doctor passes on SQLite" eq "$?" 0
check "make doctor names the SQLite file" contains "$out" "DATABASE_URL=sqlite:///./database.db (from the default)"
check "make doctor without .env names make env and the template .env.example" contains "$out" "(for PostgreSQL: make env, or cp .env.example .env)"

# ---- 1. start PostgreSQL ---------------------------------------------------

mk db-start
check "make db-start starts a native PostgreSQL (no Docker engine)" contains "$out" "PostgreSQL is running on localhost:$PG_PORT (native"
mk db-start
check "make db-start again: already running, nothing to do" contains "$out" "already running"
check "its data is in localdev/data/personal_todo_pgdata" test -f "$WORK/localdev/data/personal_todo_pgdata/PG_VERSION"

# ---- 3. point .env at it ---------------------------------------------------

check "the template is .env.example, as in the guide (no env.example)" eval '[ -f "$WORK/.env.example" ] && [ ! -e "$WORK/env.example" ]'
check "git ignores .env but not .env.example" \
  eval 'git -C "$WORK" check-ignore -q .env && ! git -C "$WORK" check-ignore -q .env.example'
mk env
check "make env creates .env from .env.example" contains "$out" ".env created from .env.example"
check ".env is a copy of .env.example" cmp -s "$WORK/.env.example" "$WORK/.env"
sed -i "s/@localhost:5432\//@localhost:$PG_PORT\//" "$WORK/.env"
mk env
check "make env again keeps the .env there is, edits and all" \
  eval 'contains "$out" ".env exists: kept" && grep -q "@localhost:$PG_PORT/" "$WORK/.env"'
check ".env from .env.example names the server" grep -q "^DATABASE_URL=postgresql://todo_user:todo_pass@localhost:$PG_PORT/todo_db" "$WORK/.env"
mk doctor
check "make doctor: the empty PostgreSQL needs make migrate (exit non-zero)" [ $? -ne 0 ]
check "make doctor gives make migrate as the fix" contains "$out" "fix: make migrate"
check "make doctor masks the password" lacks "$out" "todo_pass"

# ---- 6. migrate --------------------------------------------------------------

mk migrate
rc=$?
check "make migrate runs the four revisions on PostgreSQL" eq "$rc:$(grep -c 'Running upgrade' <<<"$out")" "0:4"
check "make migrate logs the PostgreSQL dialect" contains "$out" "Context impl PostgresqlImpl."
tables=$(cd "$WORK" && printf '\\dt\n' | make --no-print-directory psql 2>&1)
check "make psql shows todos and alembic_version" eval 'contains "$tables" " todos " && contains "$tables" " alembic_version "'
mk doctor
check "make doctor: SQLite data not copied yet, fix make copy" contains "$out" "fix: make copy"
mk migrate DATABASE_URL=sqlite:///./database.db
rc=$?
check "DATABASE_URL=sqlite:///./database.db make migrate: database.db already at head" \
  eval '[ $rc -eq 0 ] && lacks "$out" "Running upgrade"'
check "copy.lua --help lists its options" eval '(cd "$WORK" && "$TODOHOST" run copy.lua --help) | grep -q -- "--replace"'
mk copy ARGS=--dry-run
check "make copy ARGS=--dry-run checks and writes nothing" contains "$out" "dry run: every check passed; nothing was written"

# ---- copy the SQLite data across ------------------------------------------------

mk copy
rc=$?
check "make copy copies database.db into PostgreSQL" eq "$rc" 0
[ "$rc" -eq 0 ] || note "$out"
check "database.db is still there after the copy" test -s "$WORK/database.db"
mk doctor
check "make doctor passes on PostgreSQL after the copy" eq "$?" 0
grep -q '✗' <<<"$out" && note "$out"
count=$(cd "$WORK" && printf 'SELECT COUNT(*) FROM todos;\n' | make --no-print-directory psql 2>&1)
check "make psql: SELECT COUNT(*) FROM todos counts every row, the deleted one too" \
  contains "$count" " $last_id"
mk copy ARGS=--replace
rc=$?
check "make copy ARGS=--replace copies again over the first copy" eval '[ $rc -eq 0 ] && contains "$out" "verified"'
[ "$rc" -eq 0 ] || note "$out"

# ---- 8. run on PostgreSQL and verify ----------------------------------------------

if app_start; then ok "make run serves on PostgreSQL"; else not_ok "make run serves on PostgreSQL"; fi
health=$(api "$(url /health)")
check "GET /health says postgresql at the head revision" \
  eq "$health" '{"status":"ok","database":"postgresql","revision":"2026_02_21_004"}'
check "make run did not seed the copied database" lacks "$out" "seeded"
check "GET /todos on PostgreSQL is exactly what SQLite served" eq "$(api "$(url /todos)")" "$sqlite_todos"
check "GET /docs serves Swagger UI" eq "$(api -o /dev/null -w '%{http_code}' "$(url /docs)")" 200
check "the deleted todo stays deleted" \
  eq "$(api -o /dev/null -w '%{http_code}' "$(url "/todos/$last_id")")" 404
new=$(api -X POST "$(url /todos)" -H 'Content-Type: application/json' -d '{"title": "My first Postgres todo"}')
check "a new todo on PostgreSQL gets the next id" contains "$new" "\"id\":$((last_id + 1)),"
pg_todos=$(api "$(url /todos)")
app_stop

# ---- 9. day to day: db-stop, db-start, the data stays ---------------------------------

mk db-stop
check "make db-stop stops PostgreSQL, data kept" contains "$out" "PostgreSQL stopped; data kept"
mk db-stop
check "make db-stop again: not running, nothing to do" contains "$out" "not running"
mk doctor
rc=$?
check "make doctor with PostgreSQL down: fix make db-start" eval '[ $rc -ne 0 ] && contains "$out" "fix: make db-start"'
mk run
rc=$?
check "make run with PostgreSQL down fails in one clear line" \
  eval '[ $rc -ne 0 ] && contains "$out" "connection refused; is PostgreSQL running? try \`make db-start\`" && lacks "$out" "traceback"'
mk db-start
check "make db-start again after a stop" contains "$out" "PostgreSQL is running on localhost:$PG_PORT"
if app_start; then ok "make run serves on PostgreSQL again"; else not_ok "make run serves on PostgreSQL again"; fi
check "GET /todos: every todo is still there after db-stop / db-start" eq "$(api "$(url /todos)")" "$pg_todos"
app_stop
mk db-stop
check "make db-stop at the end of the day" contains "$out" "PostgreSQL stopped"

# ---- back to SQLite: database.db is as it was before the copy ----------------------------

rm "$WORK/.env"
if app_start; then ok "without .env, make run serves on SQLite again"; else not_ok "without .env, make run serves on SQLite again"; fi
check "database.db still holds exactly the todos of before the move" eq "$(api "$(url /todos)")" "$sqlite_todos"
app_stop

[ "$failed" -eq 0 ]
