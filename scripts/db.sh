#!/bin/sh
# scripts/db.sh: the development PostgreSQL of ORIGINAL-GUIDE.md, with or without Docker.
#
#   scripts/db.sh start    make db-start: start it (nothing to do when it runs)
#   scripts/db.sh stop     make db-stop:  stop it; the data stays
#   scripts/db.sh status   is it running, and where
#   scripts/db.sh config   the native server's role, database, port and data
#                          folder as this script resolves them (no password)
#   scripts/db.sh psql     make psql: a SQL shell on DATABASE_URL as todohost
#                          reads it (TODOHOST: the binary; psql with the password
#                          in PGPASSWORD, never on its command line; or
#                          sqlite3 for a sqlite:/// URL)
#
# With a Docker engine (`docker info` answers) this is `docker compose up -d` /
# `docker compose down` on docker-compose.yml (postgres:16). Without one, a
# native PostgreSQL server (Debian's postgresql package) does the same job:
# the same role, password and database on the same port of localhost, data
# in the same folder (kept across stop and start), so .env.example's
# DATABASE_URL works either way. As root the native server runs as the
# `postgres` user.
#
# Each value has one place: the role, password and database are
# docker-compose.yml's (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB); the
# port and the data folder are the settings DB_PORT and DB_DATA_DIR, read by
# todohost (TODOHOST: the binary) from the environment, then .env, then their
# defaults (host/config.c), as `make doctor` reads them.
set -eu

cd "$(dirname "$0")/.."
ROOT=$PWD

die() { echo "db: $*" >&2; exit 1; }
say() { echo "db: $*"; }

# todohost_says MODE: the shell assignments todohost prints for MODE
# (scripts/db.sh's Lua part below), evaluated here. "server": PORT and DATA
# (the settings DB_PORT and DB_DATA_DIR); "target": the psql target of
# DATABASE_URL. A setting it cannot read stops here in one line.
todohost_says() {
  bin=${TODOHOST:-$ROOT/build/todohost}
  [ -x "$bin" ] || die "$bin is missing; build it first: make"
  assignments=$("$bin" run - "$1" <<'LUA'
local settings = require "todohost.settings"
local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function get(name)
  local ok, value = pcall(settings.get, name)
  if not ok then
    io.stderr:write("db: ", tostring(value), "\n")
    os.exit(1)
  end
  return value
end
if arg[1] == "server" then
  print("PORT=" .. get("DB_PORT"))
  print("DATA=" .. sh(get("DB_DATA_DIR")))
  os.exit(0)
end
-- "target": kind (sqlite or postgresql) and file, or conninfo (libpq's
-- key='value' form, WITHOUT the password) and password, from DATABASE_URL as
-- todohost resolves it and parses it (host/dburl.c: the same reading as
-- every other command).
local target, err = require("todohost.db").parse_url(get("DATABASE_URL"))
if not target then
  io.stderr:write("db: ", tostring(err), "\n")
  os.exit(1)
end
local function libpq(s) return "'" .. s:gsub("\\", "\\\\"):gsub("'", "\\'") .. "'" end
print("kind=" .. target.kind)
if target.kind == "sqlite" then
  print("file=" .. sh(target.path or ""))
else
  local parts = {}
  for key, value in pairs(target.params) do parts[#parts + 1] = key .. "=" .. libpq(value) end
  table.sort(parts)
  print("conninfo=" .. sh(table.concat(parts, " ")))
  print("password=" .. sh(target.password or ""))
end
LUA
) || exit 1
  eval "$assignments"
}

# compose_value KEY: KEY's value in docker-compose.yml's environment.
compose_value() {
  v=$(sed -n -E "s/^[[:space:]]+$1:[[:space:]]*\"?([^\"]*)\"?[[:space:]]*$/\1/p" docker-compose.yml | head -n 1)
  [ -n "$v" ] || die "docker-compose.yml names no $1; restore it: git checkout docker-compose.yml"
  printf '%s' "$v"
}

# server_settings: what the native server is (DB_USER, DB_PASS, DB_NAME,
# PORT, DATA, LOG).
server_settings() {
  DB_USER=$(compose_value POSTGRES_USER)
  DB_PASS=$(compose_value POSTGRES_PASSWORD)
  DB_NAME=$(compose_value POSTGRES_DB)
  todohost_says server
  case "$DATA" in /*) ;; *) DATA=$ROOT/$DATA ;; esac
  LOG=$DATA/server.log
}

# ---- Docker --------------------------------------------------------------

have_docker() {
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"
  elif command -v docker-compose >/dev/null 2>&1; then docker-compose "$@"
  else die "Docker runs but Docker Compose is missing; install it: apt-get install docker-compose-plugin (or docker-compose)"
  fi
}

# ---- native PostgreSQL -----------------------------------------------------

find_bindir() {
  d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$d" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return; fi
  return 1
}

# as_owner CMD...: runs CMD as the user that owns the server's files.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@")
  else (cd / && "$@"); fi
}

native_running() {
  [ -f "$DATA/PG_VERSION" ] && as_owner "$BINDIR/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

native_setup() {
  if ! BINDIR=$(find_bindir); then
    if [ -x scripts/install-deps.sh ]; then
      say "no Docker engine and no PostgreSQL server here: installing Debian's postgresql"
      scripts/install-deps.sh test >&2 || die "could not install PostgreSQL; run: apt-get install postgresql"
    fi
    BINDIR=$(find_bindir) || die "no Docker engine and no PostgreSQL server; install one: apt-get install postgresql"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "the 'postgres' system user is missing (as root the server runs as it); run: apt-get install --reinstall postgresql-common"
  fi
}

# native_init: creates the cluster, role and database when DATA is empty.
native_init() {
  mkdir -p "$DATA"
  if [ -f "$DATA/PG_VERSION" ]; then
    have=$(cat "$DATA/PG_VERSION")
    want=$("$BINDIR/pg_ctl" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')
    [ "$have" = "$want" ] ||
      die "$DATA holds PostgreSQL $have data (Docker's postgres:16?) but this machine runs PostgreSQL $want natively; start Docker for it, or move that folder away to start afresh"
    return 0
  fi
  [ -z "$(ls -A "$DATA")" ] ||
    die "$DATA is not empty but holds no PostgreSQL data; move it away (mv $DATA $DATA.old) and run make db-start again"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$DATA"
    runuser -u postgres -- test -w "$DATA" ||
      die "the postgres user cannot reach $DATA (a parent folder is private); move the repository under a readable path, or run as a normal user"
  fi
  chmod 700 "$DATA"
  say "creating a PostgreSQL cluster in ${DATA#"$ROOT"/}"
  pwfile=$(mktemp)
  printf '%s\n' "$DB_PASS" >"$pwfile"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$pwfile"
  if ! as_owner "$BINDIR/initdb" -D "$DATA" -U "$DB_USER" --pwfile="$pwfile" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
      >"$pwfile.log" 2>&1; then
    cat "$pwfile.log" >&2
    rm -f "$pwfile" "$pwfile.log"
    find "$DATA" -mindepth 1 -delete 2>/dev/null || true
    die "initdb failed (output above)"
  fi
  rm -f "$pwfile" "$pwfile.log"
  # Localhost only, TCP only (no socket path to get wrong), like the container's port.
  cat >>"$DATA/postgresql.conf" <<EOF

# scripts/db.sh (make db-start): the development server of DATABASE_URL
listen_addresses = 'localhost'
port = $PORT
unix_socket_directories = ''
EOF
}

native_start() {
  native_setup
  native_init
  if native_running; then
    say "PostgreSQL is already running on localhost:$PORT (native, data in ${DATA#"$ROOT"/})"
    return 0
  fi
  if command -v bash >/dev/null 2>&1 && bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; then
    die "port $PORT is taken by another server; stop it (for Debian's own cluster: pg_ctlcluster --help) and run make db-start again"
  fi
  if ! as_owner "$BINDIR/pg_ctl" start -w -t 60 -D "$DATA" -l "$LOG" -o "-p $PORT" >/dev/null 2>&1; then
    tail -n 15 "$LOG" >&2 2>/dev/null || true
    die "PostgreSQL did not start (log above, whole log in ${LOG#"$ROOT"/})"
  fi
  # (also when an earlier first start stopped half-way)
  if [ -z "$(PGPASSWORD=$DB_PASS "$BINDIR/psql" -X -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]; then
    PGPASSWORD=$DB_PASS "$BINDIR/createdb" -h 127.0.0.1 -p "$PORT" -U "$DB_USER" "$DB_NAME" ||
      die "createdb $DB_NAME failed; see ${LOG#"$ROOT"/}"
  fi
  say "PostgreSQL is running on localhost:$PORT (native, data in ${DATA#"$ROOT"/})"
  say "DATABASE_URL=postgresql://$DB_USER:***@localhost:$PORT/$DB_NAME"
}

native_stop() {
  native_setup
  if ! native_running; then say "PostgreSQL is not running"; return 0; fi
  as_owner "$BINDIR/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null ||
    die "pg_ctl stop failed; see ${LOG#"$ROOT"/}"
  say "PostgreSQL stopped; data kept in ${DATA#"$ROOT"/}"
}

native_status() {
  native_setup
  if native_running; then say "running on localhost:$PORT (native, data in ${DATA#"$ROOT"/})"
  else say "not running (start it: make db-start)"; return 3; fi
}

# ---- make psql -------------------------------------------------------------

# The password goes to psql through PGPASSWORD, never its command line
# (which ps shows to every user).
open_shell() {
  kind='' file='' conninfo='' password=''
  todohost_says target
  case "$kind" in
    sqlite)
      command -v sqlite3 >/dev/null 2>&1 || die "sqlite3 is missing; install it: apt-get install sqlite3"
      [ -z "$file" ] && exec sqlite3
      [ -f "$file" ] || say "note: $file does not exist yet (make run creates it); sqlite3 will create an empty one"
      exec sqlite3 "$file" ;;
    postgresql)
      command -v psql >/dev/null 2>&1 || die "psql is missing; install it: apt-get install postgresql-client"
      if [ -n "$password" ]; then PGPASSWORD=$password; export PGPASSWORD; fi
      unset password
      exec psql "$conninfo" ;;
  esac
}


# ---- main ------------------------------------------------------------------

cmd=${1:-}
case "$cmd" in
  start|stop|status|config) server_settings ;;
esac
case "$cmd" in
  start)
    if have_docker; then
      mkdir -p "$DATA"
      compose up -d
    else
      native_start
    fi ;;
  stop)
    if have_docker; then compose down; else native_stop; fi ;;
  status)
    if have_docker; then compose ps; else native_status; fi ;;
  config) echo "role $DB_USER, database $DB_NAME, port $PORT, data in ${DATA#"$ROOT"/}" ;;
  psql) open_shell ;;
  *) echo "usage: scripts/db.sh start|stop|status|config|psql" >&2; exit 2 ;;
esac
