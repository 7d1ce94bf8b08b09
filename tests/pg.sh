#!/bin/sh
# tests/pg.sh: a throwaway PostgreSQL server for the test suites.
#
#   eval "$(tests/pg.sh start)"   starts one; prints `export` lines for
#                                 TEST_PG_DIR (its temp dir) and TEST_PG_URL
#   tests/pg.sh env [DIR]         prints those lines again for a running server
#   tests/pg.sh stop [DIR]        stops it (pg_ctl stop -m fast) and removes DIR
#                                 (DIR defaults to $TEST_PG_DIR)
#   tests/pg.sh ctl DIR ACTION ...  pg_ctl ACTION (restart, stop, start) on it, as its
#                                 owner (restart -l DIR/log: keeps its options)
#
# The server lives in a fresh mktemp dir: data in DIR/data, its unix socket in
# DIR, its log in DIR/log. It listens on 127.0.0.1 only, on a free port
# (TEST_PG_PORT to force one), with fsync and friends off: fast, and nothing in
# it survives (TEST_PG_DURABLE=1: PostgreSQL's own defaults, for benchmarks). TCP logins need a password (scram-sha-256); the role todo_user
# (password todo_pass) is the superuser, its database is todo_test:
#   TEST_PG_URL=postgresql://todo_user:todo_pass@127.0.0.1:PORT/todo_test
# initdb and postgres refuse to run as root: as root the server runs as the
# `postgres` system user (which Debian's postgresql package creates).
# Binaries: PG_BINDIR, else the newest /usr/lib/postgresql/*/bin, else PATH.
set -eu

PG_USER=todo_user
PG_PASS=todo_pass
PG_DB=todo_test

die() { echo "tests/pg.sh: $*" >&2; exit 1; }

find_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  die "PostgreSQL server binaries not found; install them: apt-get install postgresql (or set PG_BINDIR)"
}

# as_owner CMD...: runs CMD as the server's owner, from a directory it can read.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# port_busy PORT: true when something accepts connections on 127.0.0.1:PORT.
port_busy() {
  if command -v bash >/dev/null 2>&1; then
    bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
  else
    return 1 # cannot probe: postgres will fail to bind and we try another
  fi
}

print_env() {
  echo "export TEST_PG_DIR='$1'"
  echo "export TEST_PG_URL='$(cat "$1/url")'"
}

start() {
  bindir=$(find_bindir)
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 ||
      die "running as root needs the 'postgres' system user; install it: apt-get install postgresql"
    command -v runuser >/dev/null 2>&1 || die "runuser not found; install util-linux or run as a normal user"
  fi
  # /tmp unless TMPDIR is set; as root, the postgres user must reach it.
  dir=$(mktemp -d "${TMPDIR:-/tmp}/todohost-pg.XXXXXX")
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      rmdir "$dir"
      dir=$(mktemp -d /tmp/todohost-pg.XXXXXX)
      chown postgres: "$dir"
    fi
  fi
  chmod 700 "$dir"
  trap 'as_owner "$bindir/pg_ctl" stop -D "$dir/data" -m immediate >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

  printf '%s\n' "$PG_PASS" >"$dir/pwfile"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/pwfile"
  if ! as_owner "$bindir/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$dir/pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
      --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    die "initdb failed (log above)"
  fi
  rm -f "$dir/pwfile"

  # fast and nothing survives a crash, unless TEST_PG_DURABLE=1 (benchmarks:
  # PostgreSQL's defaults, fsync and synchronous commit on, as in production)
  durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${TEST_PG_DURABLE:-0}" = 1 ] && durability=""
  tries=0
  while :; do
    tries=$((tries + 1))
    [ "$tries" -le 20 ] || die "no free port found after 20 tries; set TEST_PG_PORT to a free port"
    if [ -n "${TEST_PG_PORT:-}" ]; then
      port=$TEST_PG_PORT
    else
      # A random high port; od reads 2 bytes of /dev/urandom.
      port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 ))
      port_busy "$port" && continue
    fi
    if as_owner "$bindir/pg_ctl" start -w -t 60 -D "$dir/data" -l "$dir/log" -o \
        "-p $port -k '$dir' -c listen_addresses=127.0.0.1 $durability -c max_connections=200 -c shared_buffers=64MB" \
        >/dev/null 2>&1; then
      break
    fi
    [ -n "${TEST_PG_PORT:-}" ] && { cat "$dir/log" >&2; die "PostgreSQL did not start on port $port (log above)"; }
    grep -q 'could not bind\|could not create listen socket\|Address already in use' "$dir/log" 2>/dev/null ||
      { cat "$dir/log" >&2; die "PostgreSQL did not start (log above)"; }
    : >"$dir/log"
  done

  as_owner "$bindir/createdb" -h "$dir" -p "$port" -U "$PG_USER" "$PG_DB" ||
    die "createdb $PG_DB failed"
  echo "postgresql://$PG_USER:$PG_PASS@127.0.0.1:$port/$PG_DB" >"$dir/url"
  echo "$bindir" >"$dir/bindir"
  trap - EXIT
  print_env "$dir"
}

stop() {
  dir=${1:-${TEST_PG_DIR:-}}
  [ -n "$dir" ] || die "which server? give its dir: tests/pg.sh stop DIR (or set TEST_PG_DIR)"
  [ -d "$dir" ] || return 0
  [ -f "$dir/url" ] || [ -d "$dir/data" ] || die "$dir is not a tests/pg.sh server dir; not removing it"
  bindir=$(cat "$dir/bindir" 2>/dev/null || find_bindir)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" stop -D "$dir/data" -m fast -w -t 30 >/dev/null 2>&1 ||
      as_owner "$bindir/pg_ctl" stop -D "$dir/data" -m immediate -w >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  ctl)   # tests/pg.sh ctl DIR ACTION [OPTION...]: pg_ctl ACTION on that server (as its owner)
    dir=${2:?tests/pg.sh ctl DIR ACTION}
    shift 2
    as_owner "$(cat "$dir/bindir")/pg_ctl" "$@" -D "$dir/data" >/dev/null ;;
  env)
    dir=${2:-${TEST_PG_DIR:-}}
    [ -n "$dir" ] && [ -f "$dir/url" ] || die "no server at '${dir}'; start one: eval \"\$(tests/pg.sh start)\""
    print_env "$dir" ;;
  *) echo "usage: tests/pg.sh start|stop [DIR]|env [DIR]|ctl DIR ACTION..." >&2; exit 2 ;;
esac
