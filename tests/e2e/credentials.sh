#!/usr/bin/env bash
# tests/e2e/credentials.sh: no command ever prints a database password.
#
# Every command a user runs (migrate.lua's subcommands, copy.lua, seed.lua,
# serve.lua, doctor.lua, and the psql command line of `make psql`) runs over
# a corpus of malformed and hostile DATABASE_URLs carrying a known password:
# bad percent-encoding, unencoded '@', '/', '#', '?', '&', ' ', ':' and
# brackets in it, an unclosed IPv6 bracket, query-string passwords,
# unsupported schemes; from the environment, from .env, and with --url /
# --to. Then the same commands on the real throwaway PostgreSQL (TEST_PG_URL,
# whose password is todo_pass): they work, and say nothing of it either.
# Everything they print (stdout, stderr, the server's log) is searched for
# the password and its halves. serve.lua is started and stopped here, each
# in a bounded time. Prints `ok - ` / `not ok - ` lines.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
TODOHOST=${TODOHOST:-$ROOT/build/todohost}
TMP=${TEST_TMPDIR:-$(mktemp -d)}
WORK=$TMP/credentials
rm -rf "$WORK"
mkdir -p "$WORK/bin"
failed=0
server_pid=""

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
note() { printf '# %s\n' "$@" >&2; }

cleanup() { [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null; }
trap cleanup EXIT

# a psql that shows what it was given: its command line and whether the
# password came through the environment
cat >"$WORK/bin/psql" <<'EOF'
#!/bin/sh
echo "psql argv: $*"
if [ -n "${PGPASSWORD:-}" ]; then echo "psql: PGPASSWORD set"; printf "%s" "$PGPASSWORD" >"$(dirname "$0")/../psql.pw"; fi
EOF
chmod +x "$WORK/bin/psql"

export TODOHOST_HOME=$ROOT MIGRATIONS_DIR=$ROOT/migrations NO_COLOR=1
unset DATABASE_URL DEBUG

# run NAME CMD...: CMD in WORK (stdin closed, at most 60 s); its output
# (stdout and stderr) appended to $WORK/all.out under a header.
run() {
  local name=$1; shift
  { echo "==== $name"; (cd "$WORK" && timeout 60 "$@" </dev/null 2>&1); echo "==== exit $?"; } >>"$WORK/all.out"
}

# serve URL: serve.lua on a free port until it serves (or exits), then
# SIGTERM; at most 30 s to start and 10 s to stop. Its log joins all.out.
serve() {
  local log=$WORK/serve.log
  (cd "$WORK" && exec env DATABASE_URL="$1" PORT=0 WORKERS=1 "$TODOHOST" run serve.lua) >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 300); do
    grep -q "serving on" "$log" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  served=$(grep -c "serving on" "$log")
  kill -TERM "$server_pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=""
  { echo "==== serve.lua"; cat "$log"; } >>"$WORK/all.out"
}

# every command on DATABASE_URL=$1 (the environment)
every_command() {
  local url=$1
  for sub in current "upgrade head" "downgrade base" "stamp head" check "upgrade --sql head"; do
    # shellcheck disable=SC2086
    run "migrate $sub" env DATABASE_URL="$url" "$TODOHOST" run migrate.lua $sub
  done
  run "migrate --url" "$TODOHOST" run migrate.lua --url "$url" current
  run "seed" env DATABASE_URL="$url" "$TODOHOST" run seed.lua
  run "copy" env DATABASE_URL="$url" "$TODOHOST" run copy.lua --from "sqlite:///$WORK/none.db"
  run "copy --to" "$TODOHOST" run copy.lua --from "sqlite:///$WORK/none.db" --to "$url"
  run "doctor" env DATABASE_URL="$url" PORT="$free_port" "$TODOHOST" run doctor.lua
  run "DEBUG=true migrate" env DEBUG=true DATABASE_URL="$url" "$TODOHOST" run migrate.lua current
  run "make psql's command line" env DATABASE_URL="$url" PATH="$WORK/bin:$PATH" TODOHOST="$TODOHOST" \
    "$ROOT/scripts/db.sh" psql
  serve "$url"
}

# leaks NAME WORD...: ok when no WORD is in all.out (then emptied).
leaks() {
  local name=$1; shift
  local bad=""
  for w in "$@"; do
    if grep -a -q -F -- "$w" "$WORK/all.out"; then bad="$bad $w"; fi
  done
  if [ -z "$bad" ]; then ok "$name"
  else
    local w
    for w in "$@"; do grep -a -n -F -B3 -- "$w" "$WORK/all.out" | head -n 12 | sed "s/^/# /" >&2; done
    not_ok "$name"
  fi
  : >"$WORK/all.out"
}

free_port=$(( 20000 + RANDOM % 10000 ))

# ---- the hostile corpus: nothing listens on port 9 ------------------------------
# the password is always S3cr_<c>_3tPw: its halves S3cr_ and _3tPw are searched too
hostile=(
  'postgresql://todo_user:S3cr_%_3tPw@127.0.0.1:9/todo_db'
  'postgresql://todo_user:S3cr_%zz_3tPw@127.0.0.1:9/todo_db'
  'postgresql://todo_user:S3cr_@_3tPw@127.0.0.1:9/todo_db'
  'postgresql://todo_user:S3cr_/_3tPw@127.0.0.1:9/todo_db'
  'postgresql://todo_user:S3cr_#_3tPw@127.0.0.1:9/todo_db'
  'postgresql://todo_user:S3cr_?_3tPw@127.0.0.1:9/todo_db'
  'postgresql://todo_user:S3cr_ _3tPw@127.0.0.1:9/todo_db'
  'postgresql://todo_user:S3cr_:_3tPw@127.0.0.1:9/todo_db'
  'postgresql://todo_user:S3cr_[_3tPw]@127.0.0.1:9/todo_db'
  'postgresql://todo_user:S3cr_/?k=v_3tPw@127.0.0.1:9/todo_db'
  'postgresql://todo_user:S3cr_x_3tPw@[::1/todo_db'
  'postgresql://todo_user:S3cr_x_3tPw@127.0.0.1:9/todo_db?nosuch=1'
  'postgresql://todo_user@127.0.0.1:9/todo_db?password=S3cr_&_3tPw'
  'postgresql://todo_user@127.0.0.1:9/todo_db?password=S3cr_@_3tPw&bad'
  'postgresql://todo_user@127.0.0.1:9/todo_db?%70assword=S3cr_x_3tPw&sslmode=bad'
  'postgresql+psycopg2://todo_user:S3cr_x_3tPw@no-such-host.invalid:5432/todo_db'
  'postgres:/todo_user:S3cr_x_3tPw@127.0.0.1:9/todo_db'
  'mysql://todo_user:S3cr_x_3tPw@127.0.0.1:9/todo_db'
  'sqlite://todo_user:S3cr_x_3tPw@127.0.0.1/todo_db'
)
for url in "${hostile[@]}"; do
  every_command "$url"
  leaks "every command on $url: no password" "S3cr_" "_3tPw"
done

# from .env, quoted, with the environment's DATABASE_URL unset
printf "DATABASE_URL='postgresql://todo_user:S3cr_@/?#_3tPw@127.0.0.1:9/todo_db'\n" >"$WORK/.env"
run "migrate (.env)" "$TODOHOST" run migrate.lua current
run "doctor (.env)" env PORT="$free_port" "$TODOHOST" run doctor.lua
run "make psql (.env)" env PATH="$WORK/bin:$PATH" TODOHOST="$TODOHOST" "$ROOT/scripts/db.sh" psql
run "seed (.env)" "$TODOHOST" run seed.lua
serve "postgresql://todo_user:S3cr_@/?#_3tPw@127.0.0.1:9/todo_db"
leaks "every command with DATABASE_URL in .env: no password" "S3cr_" "_3tPw"
rm -f "$WORK/.env"

# ---- the real PostgreSQL: everything works, and the password stays hidden --------

if [ -z "${TEST_PG_URL:-}" ]; then
  not_ok "TEST_PG_URL is set (tests/run.sh starts a throwaway PostgreSQL)"
  exit 1
fi
db=todo_credentials_$$
admin="${TEST_PG_URL%/*}/postgres"
pg="${TEST_PG_URL%/*}/$db"
"$TODOHOST" run - <<<"require('todohost.db').connect('$admin'):exec('DROP DATABASE IF EXISTS $db'); require('todohost.db').connect('$admin'):exec('CREATE DATABASE $db')" ||
  not_ok "create a database for the test"
password=${TEST_PG_URL#*://*:}
password=${password%%@*}

run "migrate upgrade head (real)" env DATABASE_URL="$pg" DEBUG=true "$TODOHOST" run migrate.lua upgrade head
run "seed (real)" env DATABASE_URL="$pg" DEBUG=true "$TODOHOST" run seed.lua
run "sqlite source" env DATABASE_URL="sqlite:///$WORK/src.db" "$TODOHOST" run migrate.lua upgrade head
run "copy (real)" env DATABASE_URL="$pg" "$TODOHOST" run copy.lua --from "sqlite:///$WORK/src.db" --replace
run "doctor (real)" env DATABASE_URL="$pg" PORT="$free_port" "$TODOHOST" run doctor.lua
run "make psql (real)" env DATABASE_URL="$pg" PATH="$WORK/bin:$PATH" TODOHOST="$TODOHOST" "$ROOT/scripts/db.sh" psql
out=$(cat "$WORK/all.out")
case "$out" in
  *"Running upgrade"*"copy: sqlite:///"*"-> postgresql://"*":***@"*"the database answers"*"psql: PGPASSWORD set"*)
    ok "the commands work on the real PostgreSQL (migrate, seed, copy, doctor, psql)" ;;
  *) note "$out"; not_ok "the commands work on the real PostgreSQL (migrate, seed, copy, doctor, psql)" ;;
esac
if ! grep -a "psql argv" "$WORK/all.out" | grep -q -F -- "$password" && [ "$(cat "$WORK/psql.pw" 2>/dev/null)" = "$password" ]; then
  ok "make psql: the password reaches psql through PGPASSWORD, not its command line"
else
  not_ok "make psql: the password reaches psql through PGPASSWORD, not its command line"
fi
serve "$pg"
if [ "$served" -ge 1 ]; then ok "serve.lua served on the real PostgreSQL and stopped"
else note "$(cat "$WORK/serve.log")"; not_ok "serve.lua served on the real PostgreSQL and stopped"; fi
leaks "the real PostgreSQL: no password in any output" "$password"
every_command "${pg/:$password@/:S3cr_x_3tPw@}"   # a wrong password: authentication fails
leaks "the real PostgreSQL, a wrong password: no password in any output" "S3cr_" "_3tPw"

"$TODOHOST" run - <<<"require('todohost.db').connect('$admin'):exec('DROP DATABASE IF EXISTS $db WITH (FORCE)')" >/dev/null 2>&1
[ "$failed" -eq 0 ]
