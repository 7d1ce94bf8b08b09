#!/usr/bin/env bash
# tests/e2e/compose.sh: docker-compose.yml is valid and holds the values of
# ORIGINAL-GUIDE.md's Compose file, and the two other places that name the
# development PostgreSQL agree with it: .env.example's DATABASE_URL (as
# todohost parses it) and scripts/db.sh's native server (used when no Docker
# engine runs). `docker-compose config` (Debian's docker-compose package,
# installed by `make test`) validates the file and prints it normalized; no
# Docker engine and no network are needed. Everything is written under
# TEST_TMPDIR (or a temp dir removed on exit). Prints `ok - ` / `not ok - `;
# exits 0 only when every check passed. Run by tests/run.sh, or by hand:
#   bash tests/e2e/compose.sh
set -uo pipefail
source "$(dirname "$0")/lib/project.sh"     # ok, not_ok, check, note; cd to the checkout

# The guide's values (ORIGINAL-GUIDE.md, section 1; the bind mount is relative
# to the Compose file, which is at the top of this project).
IMAGE=postgres:16
CONTAINER=personal_todo_postgres
USER_=todo_user PASSWORD=todo_pass DBNAME=todo_db
PORT_=5432
DATA_DIR=localdev/data/personal_todo_pgdata
DATA_TARGET=/var/lib/postgresql/data

if [ -n "${TEST_TMPDIR:-}" ]; then tmp=$TEST_TMPDIR
else tmp=$(mktemp -d "${TMPDIR:-/tmp}/todohost-compose.XXXXXX") || exit 1; trap 'rm -rf "$tmp"' EXIT
fi

# same NAME GOT WANT: ok when equal; a password is never printed.
same() {
  if [ "$2" = "$3" ]; then ok "$1"; return; fi
  case "$1" in
    *password*) note "the passwords differ (not shown)" ;;
    *) note "got:  $2" "want: $3" ;;
  esac
  not_ok "$1"
}

# ---- docker-compose config: valid, normalized ---------------------------------

if ! command -v docker-compose >/dev/null 2>&1; then
  not_ok "docker-compose is installed (make test installs it: scripts/install-deps.sh test)"
  exit 1
fi
# A copy in the temp dir: the bind mount resolves there, no .env of this
# checkout is read, and DOCKER_HOST points nowhere, so no engine is reached.
proj=$tmp/compose-project
mkdir -p "$proj" "$tmp/home" && cp docker-compose.yml "$proj/" || exit 1
compose() {
  (cd "$proj" && env -i PATH="$PATH" HOME="$tmp/home" LANG=C.UTF-8 \
    DOCKER_HOST="unix://$tmp/no-docker-engine.sock" docker-compose -f docker-compose.yml "$@")
}
if compose config >"$tmp/config.yml" 2>"$tmp/config.err"; then
  ok "docker-compose config validates docker-compose.yml"
else
  not_ok "docker-compose config validates docker-compose.yml"
  note "$(cat "$tmp/config.err")"
  exit 1
fi
same "one service, postgres" "$(compose config --services 2>&1)" postgres

# flat: the normalized YAML (block style, as `docker-compose config` prints
# it) as PATH<TAB>VALUE lines: services.postgres.image<TAB>postgres:16; list
# items are numbered (….ports.0.target) and counted (….ports.#<TAB>1).
awk '
  function path(n,   p, k) { p = ""; for (k = 1; k <= n; k++) p = p (k > 1 ? "." : "") key[k]; return p }
  function unquote(v) { if (v ~ /^".*"$/ || v ~ /^\047.*\047$/) v = substr(v, 2, length(v) - 2); return v }
  # entry IND TEXT: a "key: value" or "key:" line at indent IND under the stack
  function entry(at, text,   k, v) {
    while (n > 0 && ind[n] >= at) n--
    k = text; v = ""
    if (match(text, /: /)) { k = substr(text, 1, RSTART - 1); v = substr(text, RSTART + 2) }
    else sub(/:$/, "", k)
    n++; ind[n] = at; key[n] = unquote(k); item[n] = 0
    if (v != "") { print path(n) "\t" unquote(v); n-- }
  }
  /^[ ]*(#|$)/ { next }
  {
    match($0, /^ */); i = RLENGTH; text = substr($0, i + 1)
    if (text !~ /^- /) { entry(i, text); next }
    # a list item: its parent is the nearest open key at this indent or less
    while (n > 0 && (ind[n] > i || (item[n] && ind[n] == i))) n--
    p = path(n); idx = count[p]++; last[p] = 1
    n++; ind[n] = i; key[n] = idx; item[n] = 1
    text = substr(text, 3)
    if (text ~ /^[^ "\047]+:( |$)/) entry(i + 2, text)
    else { print path(n) "\t" unquote(text); n-- }
  }
  END { for (p in last) print p ".#\t" count[p] }
' "$tmp/config.yml" >"$tmp/config.flat"
# get PATH: the value at PATH in the normalized file (empty when absent)
get() { awk -F'\t' -v k="$1" '$1 == k { print $2; exit }' "$tmp/config.flat"; }

svc=services.postgres
same "image is $IMAGE" "$(get $svc.image)" "$IMAGE"
same "container_name is $CONTAINER" "$(get $svc.container_name)" "$CONTAINER"
same "POSTGRES_USER is $USER_" "$(get $svc.environment.POSTGRES_USER)" "$USER_"
same "POSTGRES_PASSWORD is the guide's password" "$(get $svc.environment.POSTGRES_PASSWORD)" "$PASSWORD"
same "POSTGRES_DB is $DBNAME" "$(get $svc.environment.POSTGRES_DB)" "$DBNAME"
same "one port mapping, $PORT_:$PORT_" \
  "$(get $svc.ports.#) $(get $svc.ports.0.published):$(get $svc.ports.0.target)" "1 $PORT_:$PORT_"
# Compose v1 prints a volume as SOURCE:TARGET:MODE, v2 as source/target keys.
volume=$(get $svc.volumes.0)
[ -n "$volume" ] || volume="$(get $svc.volumes.0.source):$(get $svc.volumes.0.target):rw"
same "one bind mount, ./$DATA_DIR -> $DATA_TARGET" \
  "$(get $svc.volumes.#) $volume" "1 $proj/$DATA_DIR:$DATA_TARGET:rw"

# ---- .env.example: DATABASE_URL names the same server ---------------------------

# As `make env` does it: .env.example copied to .env, read and parsed by todohost.
mkdir -p "$tmp/env-example" && cp .env.example "$tmp/env-example/.env" || exit 1
url=$(cd "$tmp/env-example" && env -u DATABASE_URL "$TODOHOST" run - 2>&1 <<'LUA'
local db = require "todohost.db"
local target, err = db.parse_url(os.getenv("DATABASE_URL"))
if not target then io.stderr:write(tostring(err), "\n") os.exit(1) end
print(target.kind, target.host, target.port, target.user, target.dbname)
print(target.password)
LUA
)
check ".env.example's DATABASE_URL parses" [ $? -eq 0 ]
same ".env.example's DATABASE_URL: postgresql://$USER_@localhost:$PORT_/$DBNAME" \
  "$(head -n 1 <<<"$url")" "$(printf '%s\t' postgresql localhost "$PORT_" "$USER_")$DBNAME"
same ".env.example's DATABASE_URL has the guide's password" "$(sed -n 2p <<<"$url")" "$PASSWORD"

# ---- scripts/db.sh: the native server has the same role, database, port, data ------

# (run in a copy holding no .env, whose DB_PORT would rightly win)
copy=$tmp/dbsh-project
mkdir -p "$copy/scripts"
cp scripts/db.sh "$copy/scripts/" && cp docker-compose.yml "$copy/"
dbsh() { (cd "$copy" && env -u DB_PORT -u DB_DATA_DIR TODOHOST="${TODOHOST:-$ROOT/build/todohost}" scripts/db.sh "$@" 2>&1); }
native=$(dbsh config)
same "scripts/db.sh's native server: $USER_, $DBNAME, port $PORT_, data in $DATA_DIR" \
  "$native" "role $USER_, database $DBNAME, port $PORT_, data in $DATA_DIR"
printf 'DB_PORT=6543\nDB_DATA_DIR=pg data\n' >"$copy/.env"
native=$(dbsh config)
same "scripts/db.sh reads DB_PORT and DB_DATA_DIR from .env too, as make doctor does" \
  "$native" "role $USER_, database $DBNAME, port 6543, data in pg data"
printf 'DB_PORT=99999\n' >"$copy/.env"
native=$(dbsh status)
rc=$?
check "scripts/db.sh status with a bad DB_PORT in .env: one line saying so, exit 1" \
  eval '[ $rc -eq 1 ] && [ "$native" = "db: DB_PORT must be a whole number from 1 to 65535, got \"99999\" (from .env)" ]'
check "scripts/db.sh takes the password from docker-compose.yml (written nowhere in it)" \
  eval '! grep -q -F "$PASSWORD" scripts/db.sh'

[ "$failed" -eq 0 ]
