# tests/e2e/lib/project.sh: sourced by the end-to-end scripts that work the
# way a user does (tests/e2e/guide.sh, tests/e2e/bad_input.sh): a fresh copy
# of this project in a temp folder, `make` targets run in it, the app served
# by `make run` on a free port, a native PostgreSQL from `make db-start` on
# another free port, and `ok - ` / `not ok - ` lines for tests/run.sh.
#
# After project_new:
#   ROOT      this checkout;   WORK   the fresh copy (the user's project folder)
#   APP_PORT  where make run serves (exported as PORT)
#   PG_PORT   where make db-start runs PostgreSQL (exported as DB_PORT)
#   TODOHOST  the binary under test (tests/run.sh: plain, then ASan+UBSan),
#             passed to make as TODOHOST=..., so make run/migrate/copy use it
# Everything started here is stopped, and WORK removed, on exit.

cd "$(dirname "${BASH_SOURCE[0]}")/../../.." || exit 1
ROOT=$PWD
TODOHOST=${TODOHOST:-$ROOT/build/todohost}
failed=0
app_pid=""
WORK=""
STOP_DB=0

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
# note TEXT: a diagnostic line (TAP comment, on stderr: the log of the run).
note() { printf '# %s\n' "$@" >&2; }
# check NAME COMMAND...: ok when COMMAND succeeds.
check() {
  local name=$1; shift
  if "$@"; then ok "$name"; else not_ok "$name"; fi
}
contains() { case "$1" in *"$2"*) return 0 ;; *) note "'$2' not in: ${1:0:600}"; return 1 ;; esac; }
lacks() { case "$1" in *"$2"*) note "'$2' found in: ${1:0:600}"; return 1 ;; *) return 0 ;; esac; }
eq() { [ "$1" = "$2" ] || { note "got:  ${1:0:600}" "want: ${2:0:600}"; return 1; }; }

port_busy() { bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 12000))   # below the ephemeral range (32768-)
    port_busy "$p" || { echo "$p"; return 0; }
  done
  return 1
}

# mk TARGET [VAR=VALUE...]: `make TARGET` in WORK with the binary under test;
# output in $WORK/../TARGET.out, status returned; the output is also kept in
# $out (stdout and stderr together).
mk() {
  local target=$1; shift
  local log="$WORK/../make-$target.out"
  (cd "$WORK" && make --no-print-directory TODOHOST="$TODOHOST" "$@" "$target") >"$log" 2>&1
  local rc=$?
  out=$(cat "$log")
  return "$rc"
}

# project_new: the fresh copy, as a user has it after `git clone` and `make`:
# the files git knows (tracked and new, not ignored), plus this checkout's build
# output and node_modules with their times kept, so make has nothing to rebuild.
project_new() {
  local base
  base=$(mktemp -d "${TMPDIR:-/tmp}/todohost-e2e.XXXXXX") || return 1
  chmod 755 "$base"     # as root, PostgreSQL runs as `postgres` and must reach its data folder
  WORK=$base/todohost
  mkdir -p "$WORK"
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -coz --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$WORK" || return 1
  else
    (cd "$ROOT" && tar --exclude=./build --exclude=./node_modules --exclude=./localdev --exclude=./.env \
      --exclude='./database.db*' -cf - .) | tar -xf - -C "$WORK" || return 1
  fi
  mkdir -p "$WORK/build"
  cp -a "$ROOT/build/obj" "$ROOT/build/todohost" "$ROOT/build/libtodohost.a" "$WORK/build/" || return 1
  [ -d "$ROOT/node_modules" ] && cp -a "$ROOT/node_modules" "$WORK/"
  rm -f "$WORK/.env" "$WORK"/database.db*
  rm -rf "$WORK/localdev"
  # a git checkout, as after git clone (make doctor checks that git ignores .env)
  if command -v git >/dev/null 2>&1; then git -C "$WORK" init -q; fi
  # no Docker engine here, whatever this machine has: make db-start runs the native server
  mkdir -p "$base/bin"
  printf '#!/bin/sh\necho "Cannot connect to the Docker daemon (tests/e2e: Docker disabled)" >&2\nexit 1\n' >"$base/bin/docker"
  chmod +x "$base/bin/docker"
  export PATH="$base/bin:$PATH"
  APP_PORT=$(free_port) && PG_PORT=$(free_port) || return 1
  export PORT=$APP_PORT DB_PORT=$PG_PORT
  unset DATABASE_URL DB_DATA_DIR MIGRATIONS_DIR
  export NO_COLOR=1
}

# app_start: `make run` in the background (its own process group); waits
# until /health answers. Returns 1 (output in $out) when it does not.
app_start() {
  (cd "$WORK" && exec setsid make --no-print-directory TODOHOST="$TODOHOST" run) >"$WORK/../make-run.out" 2>&1 &
  app_pid=$!
  for _ in $(seq 600); do
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$APP_PORT/health"; then out=$(cat "$WORK/../make-run.out"); return 0; fi
    kill -0 "$app_pid" 2>/dev/null || break
    sleep 0.1
  done
  out=$(cat "$WORK/../make-run.out")
  note "make run did not start serving:" "$out"
  app_stop
  return 1
}

# app_stop: Ctrl-C for the server: SIGTERM to make run's process group, then
# waits until everything in it has exited and the port is free.
app_stop() {
  [ -n "$app_pid" ] || return 0
  kill -TERM -- "-$app_pid" 2>/dev/null
  for _ in $(seq 150); do
    kill -0 -- "-$app_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$app_pid" 2>/dev/null
  wait "$app_pid" 2>/dev/null
  app_pid=""
  for _ in $(seq 50); do port_busy "$APP_PORT" || return 0; sleep 0.1; done
}

api() { curl -s --max-time 10 "$@"; }
url() { echo "http://127.0.0.1:$APP_PORT$1"; }

project_cleanup() {
  app_stop
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    (cd "$WORK" && scripts/db.sh stop >/dev/null 2>&1)
    rm -rf "$(dirname "$WORK")"
  fi
}
trap project_cleanup EXIT
trap 'exit 130' INT TERM HUP
