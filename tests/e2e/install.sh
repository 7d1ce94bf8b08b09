#!/usr/bin/env bash
# tests/e2e/install.sh: `make install` as a user does it, and the installed
# todohost used in a folder of one's own, outside this checkout, as Alembic
# is used after `pip install`: `make install PREFIX=<temp>` (the binary under
# test), then in a fresh folder with no TODOHOST_HOME and no scripts/ of its
# own: migrate.lua init, a revision, upgrade head on SQLite, the folder's
# .env, doctor.lua, a user script requiring installed modules, copy.lua to
# the test PostgreSQL, the installed man page (man -l, no warnings, and
# `man todohost` through MANPATH); `make uninstall` leaves none of our files.
# Then a staged install (DESTDIR=<temp> PREFIX=/usr), as a packager makes one:
# its binary finds its own installation, and uninstall empties the stage.
# Prints `ok - ` / `not ok - ` lines.
set -uo pipefail
source "$(dirname "$0")/lib/project.sh"     # ok, not_ok, check, contains, eq, note; cd to the checkout

TMP=${TEST_TMPDIR:-$(mktemp -d)}
PREFIX=$TMP/prefix
PROJ=$TMP/myapp
mkdir -p "$PROJ"
unset TODOHOST_HOME MIGRATIONS_DIR DATABASE_URL SWAGGER_UI_DIST
export NO_COLOR=1 LC_ALL=C.UTF-8

# ---- make install ---------------------------------------------------------------------

out=$(make --no-print-directory install PREFIX="$PREFIX" TODOHOST="$TODOHOST" 2>&1); rc=$?
check "make install PREFIX=... succeeds" eval '[ $rc -eq 0 ] || { note "$out"; false; }'
check "the binary is in PREFIX/bin" [ -x "$PREFIX/bin/todohost" ]
check "the scripts, the template, the seeds and Swagger UI are in PREFIX/share/todohost" \
  eval '[ -f "$PREFIX/share/todohost/scripts/migrate.lua" ] && [ -f "$PREFIX/share/todohost/scripts/web/json.lua" ] &&
        [ -f "$PREFIX/share/todohost/migrations/script.lua.tmpl" ] && [ -f "$PREFIX/share/todohost/seeds/001_example_todos.lua" ] &&
        [ -f "$PREFIX/share/todohost/node_modules/swagger-ui-dist/swagger-ui-bundle.js" ]'
check "the docs and the man page are installed" \
  eval '[ -f "$PREFIX/share/doc/todohost/guide.md" ] && [ -f "$PREFIX/share/man/man1/todohost.1" ]'
check "no shell script that only make uses is installed" \
  eval '[ -z "$(find "$PREFIX" -name "*.sh")" ]'

export PATH="$PREFIX/bin:$PATH"
# th ARGS...: the installed todohost in the user's folder; output in $out, status in $rc
th() { out=$(cd "$PROJ" && todohost "$@" 2>&1); rc=$?; }

th run - <<<'local p = require "todohost.paths"; print(p.install); print(p.project)'
check "the installed binary finds its installation with no variable set, the folder is the project" \
  eq "$out" "$(cd "$PREFIX/share/todohost" && pwd -P)"$'\n'"$(cd "$PROJ" && pwd -P)"

# ---- init, revision, upgrade ------------------------------------------------------------

th run migrate.lua init
check "migrate.lua init creates migrations/ with the template and a README" \
  eval '[ $rc -eq 0 ] && [ -f "$PROJ/migrations/script.lua.tmpl" ] && [ -s "$PROJ/migrations/README" ] &&
        cmp -s "$PROJ/migrations/script.lua.tmpl" "$ROOT/migrations/script.lua.tmpl" || { note "$out"; false; }'
th run migrate.lua init
check "init again: refused with one line and exit 1, nothing changed" \
  eval '[ $rc -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && contains "$out" "migrations exists and is not empty" &&
        [ "$(ls "$PROJ/migrations" | wc -l)" -eq 2 ]'
th run migrate.lua init other
check "init DIR creates DIR" eval '[ $rc -eq 0 ] && [ -f "$PROJ/other/script.lua.tmpl" ]'

th run migrate.lua revision -m "create notes"
rev_file=$(ls "$PROJ"/migrations/*_create_notes.lua 2>/dev/null)
check "revision -m writes a revision from the folder's template" eval '[ $rc -eq 0 ] && [ -f "$rev_file" ] || { note "$out"; false; }'
# the revision's upgrade and downgrade bodies, as the user writes them
sed -i -e 's|^    -- e.g. op.add_column.*|    op.create_table("notes", op.column("id", op.types.integer, { nullable = false }), op.column("body", op.types.text), op.primary_key("id"))|' \
       -e 's|^    -- e.g. op.drop_column.*|    op.drop_table("notes")|' "$rev_file"
rev=$(basename "$rev_file" | sed 's/_create_notes\.lua$//')

th run migrate.lua upgrade head
check "upgrade head on SQLite: database.db in the folder, at the revision" \
  eval '[ $rc -eq 0 ] && [ -f "$PROJ/database.db" ] && contains "$out" "Running upgrade  -> $rev"'
th run migrate.lua current
check "current reads the folder's database" contains "$out" "$rev (head)"

# ---- the folder's .env ------------------------------------------------------------------

printf 'DATABASE_URL=sqlite:///./from_env.db\n' >"$PROJ/.env"
th run migrate.lua upgrade head
check "the folder's .env names the database" eval '[ $rc -eq 0 ] && [ -f "$PROJ/from_env.db" ]'
rm -f "$PROJ/.env"

# ---- a script of the user's own ---------------------------------------------------------

cat >"$PROJ/my_report.lua" <<'LUA'
local db = require "todohost.db"
local json = require "web.json"
local conn <close> = db.connect()
conn:exec("INSERT INTO notes (body) VALUES (?)", "hello")
print(json.encode({ notes = conn:first("SELECT count(*) AS n FROM notes").n }))
LUA
th run my_report.lua
check "todohost run my_report.lua finds the installed modules (todohost.db, web.json)" eq "$out" '{"notes":1}'
th run - <<<'print(package.searchpath("api", package.path)); print(type(require("api").router))'
check "the installed Todo app's modules are found by their short names (scripts/app/)" \
  eq "$out" "$(cd "$PREFIX/share/todohost" && pwd -P)/scripts/app/api.lua"$'\n'"function"

# ---- doctor ------------------------------------------------------------------------------

th run doctor.lua
check "doctor.lua checks the folder's migrations" contains "$out" "migrations: at head $rev"

# ---- copy.lua to PostgreSQL ----------------------------------------------------------------

if [ -n "${TEST_PG_URL:-}" ]; then
  db=todo_install_$$
  admin="${TEST_PG_URL%/*}/postgres"
  pg="${TEST_PG_URL%/*}/$db"
  th run - <<<"local db = require 'todohost.db'; local c <close> = db.connect('$admin'); c:exec('DROP DATABASE IF EXISTS $db'); c:exec('CREATE DATABASE $db')"
  th run migrate.lua --url "$pg" upgrade head
  th run copy.lua --to "$pg"
  check "copy.lua copies the folder's database.db into PostgreSQL" eval '[ $rc -eq 0 ] || { note "$out"; false; }'
  th run - <<<"local db = require 'todohost.db'; local c <close> = db.connect('$pg'); print(c:first('SELECT body FROM notes').body)"
  check "the copied row is in PostgreSQL" eq "$out" "hello"
  th run - <<<"local db = require 'todohost.db'; local c <close> = db.connect('$admin'); c:exec('DROP DATABASE IF EXISTS $db')"
else
  not_ok "TEST_PG_URL is set (tests/run.sh starts a throwaway PostgreSQL)"
fi

# ---- the man page -----------------------------------------------------------------------------

page=$PREFIX/share/man/man1/todohost.1
warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
text=$(MANWIDTH=80 man -l "$page" 2>/dev/null)
check "man -l renders the installed page without warnings" \
  eval '[ -z "$warnings" ] && contains "$text" "todohost run migrate.lua init" && contains "$text" "DATABASE_URL" || { note "$warnings"; false; }'
check "man todohost finds it under PREFIX/share/man" eq "$(MANPATH="$PREFIX/share/man" man -w todohost 2>&1)" "$page"

# ---- make uninstall ----------------------------------------------------------------------------

out=$(make --no-print-directory uninstall PREFIX="$PREFIX" 2>&1)
left=$(find "$PREFIX" -type f -o -type l -o -name '*todohost*')
check "make uninstall leaves PREFIX without our files" eval '[ -z "$left" ] || { note "$left" "$out"; false; }'
check "the user's folder is untouched" eval '[ -f "$PROJ/database.db" ] && [ -f "$rev_file" ]'
out=$(make --no-print-directory uninstall PREFIX="$PREFIX" 2>&1); rc=$?
check "make uninstall where nothing is installed: an error naming the manifest" \
  eval '[ $rc -ne 0 ] && contains "$out" "todohost is not installed there"'

# ---- DESTDIR: a staged install, as a package is built ------------------------------------------

STAGE=$TMP/stage
out=$(make --no-print-directory install DESTDIR="$STAGE" PREFIX=/usr TODOHOST="$TODOHOST" 2>&1)
check "make install DESTDIR=... PREFIX=/usr puts everything under DESTDIR" \
  eval '[ -x "$STAGE/usr/bin/todohost" ] && [ -f "$STAGE/usr/share/todohost/scripts/migrate.lua" ] &&
        [ -f "$STAGE/usr/share/man/man1/todohost.1" ] && [ -z "$(find "$STAGE" -mindepth 1 -maxdepth 1 ! -name usr)" ] || { note "$out"; false; }'
check "the manifest lists paths relative to PREFIX, not the stage" \
  eval '! grep -q -e "$STAGE" -e "^/" "$STAGE/usr/share/todohost/install-manifest"'
check "the staged binary finds its own installation" \
  eq "$(cd "$PROJ" && "$STAGE/usr/bin/todohost" run - <<<'print(require("todohost.paths").install)' 2>&1)" "$(cd "$STAGE/usr/share/todohost" && pwd -P)"
make --no-print-directory uninstall DESTDIR="$STAGE" PREFIX=/usr >/dev/null 2>&1
left=$(find "$STAGE" -type f -o -type l -o -name '*todohost*')
check "make uninstall DESTDIR=... empties the stage of our files" eval '[ -z "$left" ] || { note "$left"; false; }'

[ "$failed" -eq 0 ]
