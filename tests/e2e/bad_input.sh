#!/usr/bin/env bash
# tests/e2e/bad_input.sh: the mistakes of issue 6, made on purpose in a
# fresh copy of the project: `make run` with PostgreSQL configured but down,
# a .env with a typo (in the URL's scheme, its host, or the line itself), a
# port already in use, a database at a revision migrations/ does not have,
# `make copy` without database.db. Each must end with ONE clear line that
# says what to do (besides make's own command echo and "make: *** ..."
# trailer, and migrate's INFO lines), a non-zero exit, no traceback, no
# password, and no data changed. Prints `ok - ` / `not ok - ` lines.
set -uo pipefail
source "$(dirname "$0")/lib/project.sh"

if ! project_new; then
  echo "not ok - a fresh copy of the project (make sure make has built it)"
  exit 1
fi

# the lines a user reads: without make's echo/trailer and migrate's INFO lines
said() {
  grep -v -E -e '^make(\[[0-9]+\])?: \*\*\*' -e '^INFO  \[' -e "^$TODOHOST run " -e '^RELOAD=true ' <<<"$1"
}

# expect_one_line NAME RC TEXT: RC non-zero and the output one line holding TEXT.
expect_one_line() {
  local name=$1 rc=$2 text=$3 lines
  lines=$(said "$out")
  if [ "$rc" -ne 0 ] && [ "$(grep -c . <<<"$lines")" -eq 1 ] && contains "$lines" "$text" &&
      lacks "$out" "traceback" && lacks "$out" "secretpw"; then
    ok "$name"
    note "  $lines"
  else
    note "exit status $rc; output:" "$out"
    not_ok "$name"
  fi
}

env_url() { printf 'DATABASE_URL=%s\n' "$1" >"$WORK/.env"; }

# ---- PostgreSQL configured but down ------------------------------------------------

env_url "postgresql://todo_user:secretpw@localhost:$PG_PORT/todo_db"
mk run
expect_one_line "make run, PostgreSQL down: one line saying make db-start" $? "is PostgreSQL running? try \`make db-start\`"
check "nothing was served" eval '! port_busy $APP_PORT'

# ---- .env typos --------------------------------------------------------------------

env_url "postgressql://todo_user:secretpw@localhost:$PG_PORT/todo_db"
mk run
expect_one_line "make run, .env URL scheme typo: one line with the accepted forms" $? \
  "unsupported database URL scheme 'postgressql'"
env_url "postgresql://todo_user:secretpw@localhots:$PG_PORT/todo_db"
mk run
expect_one_line "make run, .env host typo: one line naming the host" $? 'could not translate host name "localhots"'
printf 'DATABASE_URL postgresql://todo_user:secretpw@localhost:%s/todo_db\n' "$PG_PORT" >"$WORK/.env"
mk run
expect_one_line "make run, .env line without '=': one line with its line number" $? ".env line 1"
mk doctor
expect_one_line "make doctor, .env line without '=': the same line" $? ".env line 1"
rm -f "$WORK/.env"

# ---- a port already in use ---------------------------------------------------------

# something else on the port: the HTTP fixture server of the host's own tests
(cd "$ROOT" && PORT=$APP_PORT LUA_PATH="$ROOT/tests/fixtures/?.lua;;" exec "$TODOHOST" run tests/fixtures/serve_hello.lua) \
  >"$WORK/../squatter.log" 2>&1 &
squatter=$!
for _ in $(seq 100); do port_busy "$APP_PORT" && break; sleep 0.1; done
mk run
expect_one_line "make run, port in use: one line naming the process and kill PID" $? \
  "already running on port $APP_PORT (pid $squatter: $TODOHOST run tests/fixtures/serve_hello.lua); stop it"
check "make run, port in use: stopped before creating or migrating database.db" test ! -e "$WORK/database.db"
mk doctor
rc=$?
check "make doctor, port in use: names the process and the kill command" \
  eval '[ $rc -ne 0 ] && contains "$out" "fix: kill $squatter"'
kill -TERM "$squatter" 2>/dev/null; wait "$squatter" 2>/dev/null

# ---- a database at an unknown revision ------------------------------------------------

mk migrate
"$TODOHOST" run - <<<'require("todohost.db").connect("sqlite:///'"$WORK"'/database.db"):exec("UPDATE alembic_version SET version_num = $1", "2027_01_01_001")'
before=$(cd "$WORK" && sqlite3 database.db .dump 2>/dev/null | md5sum)
mk run
expect_one_line "make run, unknown revision: one line naming it" $? "Can't locate revision 2027_01_01_001"
mk migrate
expect_one_line "make migrate, unknown revision: the same line" $? "Can't locate revision 2027_01_01_001"
mk doctor
rc=$?
check "make doctor, unknown revision: says migrations/ does not have it" \
  eval '[ $rc -ne 0 ] && contains "$out" "the database is at 2027_01_01_001, which migrations/ does not have"'
check "the database was not changed" eq "$(cd "$WORK" && sqlite3 database.db .dump 2>/dev/null | md5sum)" "$before"

# ---- make copy without database.db ---------------------------------------------------------

mv "$WORK/database.db" "$WORK/elsewhere.db"
rm -f "$WORK"/database.db-*
env_url "postgresql://todo_user:secretpw@localhost:$PG_PORT/todo_db"
mk copy
expect_one_line "make copy without database.db: one line" $? "database.db"
check "make copy did not create database.db" test ! -e "$WORK/database.db"

# ---- the fixes docs/troubleshooting.md gives -------------------------------------------------

mk copy ARGS="--from sqlite:///elsewhere.db"
check "make copy ARGS=\"--from sqlite:///path\" reads that file (then needs PostgreSQL)" \
  eval 'lacks "$out" "cannot open SQLite" && contains "$out" "make db-start"'
status=$(cd "$WORK" && scripts/db.sh status 2>&1)
check "scripts/db.sh status: not running (start it: make db-start)" contains "$status" "not running (start it: make db-start)"
mk db-start
env_url "postgresql://todo_user:todo_pass@localhost:$PG_PORT/todo_db2"
mk doctor
check "make doctor, missing database: the createdb command" \
  contains "$out" "fix: createdb -h localhost -p $PG_PORT -U todo_user todo_db2"
mk db-stop
rm -rf "$WORK/localdev/data/personal_todo_pgdata"
mk db-start
env_url "postgresql://todo_user:todo_pass@localhost:$PG_PORT/todo_db"
mk migrate
check "make db-stop; rm -rf localdev/data/personal_todo_pgdata; make db-start: a new empty todo_db" \
  eq "$(grep -c 'Running upgrade' <<<"$out")" 4
current=$(cd "$WORK" && "$TODOHOST" run migrate.lua current 2>&1)
check "migrate.lua current names the revision" contains "$current" "2026_02_21_004 (head)"
history=$(cd "$WORK" && "$TODOHOST" run migrate.lua history -i 2>&1)
check "migrate.lua history -i marks the current revision" contains "$history" "(head) (current)"
export DATABASE_URL="sqlite:///./elsewhere.db"
mk doctor
check "a DATABASE_URL in the environment wins over .env (make doctor says so)" \
  contains "$out" "DATABASE_URL=sqlite:///./elsewhere.db (from the environment)"
unset DATABASE_URL
mk doctor
check "after unset DATABASE_URL, .env counts again" contains "$out" "(from .env)"
mk db-stop

[ "$failed" -eq 0 ]
