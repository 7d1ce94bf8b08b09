#!/usr/bin/env bash
# tests/chroot/run.sh: issue 6's "fresh Debian 12 machine with only make":
# `make test` and `make run` in a debootstrap chroot that has nothing but
# Debian's minbase and the make package. Run as root on a Debian host:
#
#   tests/chroot/run.sh [--fresh] [--worktree] [--keep]
#
#   1. debootstrap --variant=minbase bookworm into $CHROOT
#      (/var/tmp/todohost-chroot), then apt-get install make, and nothing
#      else; that state is saved in $CHROOT.minbase+make.tar. The chroot is
#      reused as the last run left it (packages installed by make included);
#      --fresh puts it back to minbase + make first (from the tar, else a new
#      debootstrap);
#   2. bind-mounts /proc, /sys, /dev, /dev/pts and copies /etc/resolv.conf
#      (apt and npm inside need the network);
#   3. puts a clean `git clone` of this repository in $CHROOT/root/todohost
#      (--worktree: this checkout's files as they are now, committed or not,
#      git-ignored ones excepted);
#   4. runs `make test` in it as root (PostgreSQL runs as the `postgres`
#      user, tests/pg.sh sees to it);
#   5. runs `make run` for a few seconds and checks that
#      http://127.0.0.1:$RUN_PORT/health answers (RUN_PORT: 8080 unless
#      something on this host already listens there);
#   6. unmounts everything (also on failure or Ctrl-C); --keep keeps the
#      chroot's copy of the repository (the chroot itself is always kept).
# Logs: $CHROOT/root/make-test.log, make-run.log. Exit 0 when both worked.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
CHROOT=${CHROOT:-/var/tmp/todohost-chroot}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PRISTINE=$CHROOT.minbase+make.tar
WORKTREE=0
KEEP=0
FRESH=0
for a in "$@"; do
  case "$a" in
    --worktree) WORKTREE=1 ;;
    --keep) KEEP=1 ;;
    --fresh) FRESH=1 ;;
    *) echo "usage: tests/chroot/run.sh [--fresh] [--worktree] [--keep]" >&2; exit 2 ;;
  esac
done

say() { printf '== %s\n' "$*"; }
die() { echo "tests/chroot/run.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run me as root (debootstrap, chroot and mounts need it)"
case "$CHROOT" in "$ROOT"/*) die "CHROOT must not be inside the repository" ;; esac

mounted=()
run_pid=""
cleanup() {
  if [ -n "$run_pid" ]; then kill -TERM -- "-$run_pid" 2>/dev/null; sleep 2; kill -KILL -- "-$run_pid" 2>/dev/null; fi
  # anything still running inside (a server left behind) holds the mounts
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$CHROOT" ] && kill -KILL "${p#/proc/}" 2>/dev/null
  done
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null; done
  mounted=()
  if [ "$KEEP" = 0 ]; then rm -rf "$CHROOT/root/todohost"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

in_chroot() {
  chroot "$CHROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# ---- 1. the machine: minbase + make ------------------------------------------------

if [ "$FRESH" = 1 ] && [ -d "$CHROOT" ]; then
  # never delete through a mount (/dev of the host is bound in there during a run)
  if grep -q " $CHROOT/" /proc/mounts; then die "something is still mounted under $CHROOT; umount it first"; fi
  say "--fresh: removing $CHROOT"
  rm -rf --one-file-system "$CHROOT" || die "cannot remove $CHROOT"
  if [ -f "$PRISTINE" ]; then
    say "--fresh: restoring minbase + make from $PRISTINE"
    mkdir -p "$CHROOT" && tar -xpf "$PRISTINE" -C "$CHROOT" || die "cannot restore $PRISTINE"
  fi
fi

if [ ! -x "$CHROOT/usr/bin/apt-get" ] || [ ! -f "$CHROOT/etc/debian_version" ]; then
  command -v debootstrap >/dev/null 2>&1 || apt-get install -y -qq debootstrap >/dev/null ||
    die "debootstrap is missing: apt-get install debootstrap"
  say "debootstrap --variant=minbase bookworm $CHROOT $MIRROR"
  mkdir -p "$CHROOT"
  debootstrap --variant=minbase bookworm "$CHROOT" "$MIRROR" >"$CHROOT.debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $CHROOT.debootstrap.log"
fi
say "the chroot: Debian $(cat "$CHROOT/etc/debian_version"), $(in_chroot dpkg-query -W -f '.\n' | wc -l) packages"

for m in proc sys dev dev/pts; do
  mkdir -p "$CHROOT/$m"
  case "$m" in
    proc) mount -t proc proc "$CHROOT/proc" ;;
    sys) mount --rbind /sys "$CHROOT/sys" && mount --make-rslave "$CHROOT/sys" ;;
    dev) mount --rbind /dev "$CHROOT/dev" && mount --make-rslave "$CHROOT/dev" ;;
    dev/pts) mountpoint -q "$CHROOT/dev/pts" || mount -t devpts devpts "$CHROOT/dev/pts" ;;
  esac || die "cannot mount $CHROOT/$m"
  mounted+=("$CHROOT/$m")
done
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
# The host's own extra CA certificates (a TLS-inspecting proxy's, in a
# sandbox): the chroot shares the host's network, so it gets the host's trust
# too. No-op on an ordinary network. Debian's ca-certificates (installed by
# make's apt-get, or already) adds them to /etc/ssl/certs, which npm uses.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$CHROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$CHROOT/usr/local/share/ca-certificates/"
  if [ -x "$CHROOT/usr/sbin/update-ca-certificates" ]; then in_chroot update-ca-certificates >/dev/null 2>&1; fi
fi

if ! in_chroot dpkg-query -W -f '${Status}' make 2>/dev/null | grep -q 'install ok installed'; then
  say "apt-get install make (the only package added by hand)"
  in_chroot apt-get update -qq >/dev/null && in_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make >/dev/null ||
    die "apt-get install make failed in the chroot"
  in_chroot apt-get clean
  say "saving minbase + make as $PRISTINE"
  tar --one-file-system -cpf "$PRISTINE" -C "$CHROOT" . || die "cannot write $PRISTINE"
fi
say "packages in the chroot: $(in_chroot dpkg-query -W -f '.\n' | wc -l)"

# ---- 2. the project ------------------------------------------------------------------

DEST=$CHROOT/root/todohost
rm -rf "$DEST"
if [ "$WORKTREE" = 1 ]; then
  say "copying this checkout's files (committed or not) to /root/todohost"
  mkdir -p "$DEST"
  (cd "$ROOT" && git ls-files -coz --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$DEST" ||
    die "copying the checkout failed"
else
  say "git clone $ROOT /root/todohost (HEAD $(git -C "$ROOT" rev-parse --short HEAD))"
  git clone -q "$ROOT" "$DEST" || die "git clone failed"
  rm -rf "$DEST/.git"   # a copy: the chroot has no git, and needs none
fi

# ---- 3. make test ----------------------------------------------------------------------

say "make test (as root in the chroot; log: $CHROOT/root/make-test.log)"
start=$SECONDS
in_chroot sh -c 'cd /root/todohost && make test' >"$CHROOT/root/make-test.log" 2>&1
test_rc=$?
say "make test: exit $test_rc after $((SECONDS - start))s; its last lines:"
tail -n 25 "$CHROOT/root/make-test.log" | sed 's/^/   | /'

# ---- 4. make run --------------------------------------------------------------------------

RUN_PORT=8080
if bash -c "exec 3<>/dev/tcp/127.0.0.1/$RUN_PORT" 2>/dev/null; then
  RUN_PORT=$(( (RANDOM % 20000) + 30000 ))
  say "port 8080 is taken on this host (the chroot shares its network): make run uses PORT=$RUN_PORT"
fi
say "make run (log: $CHROOT/root/make-run.log), then GET http://127.0.0.1:$RUN_PORT/health"
setsid chroot "$CHROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb PORT=$RUN_PORT \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  sh -c 'cd /root/todohost && exec make run' >"$CHROOT/root/make-run.log" 2>&1 &
run_pid=$!
health=""
for _ in $(seq 1800); do   # up to 180 s (after make test, make run builds nothing new)
  health=$(curl -s --max-time 2 "http://127.0.0.1:$RUN_PORT/health") && [ -n "$health" ] && break
  kill -0 "$run_pid" 2>/dev/null || break
  sleep 0.1
done
sleep 3   # "for a few seconds": it must keep serving
health2=$(curl -s --max-time 2 "http://127.0.0.1:$RUN_PORT/health")
kill -TERM -- "-$run_pid" 2>/dev/null
wait "$run_pid" 2>/dev/null
run_pid=""
echo "   /health: ${health:-no answer}; 3 s later: ${health2:-no answer}"
sed 's/^/   | /' "$CHROOT/root/make-run.log" | tail -n 15
run_ok=1
case "$health2" in *'"status":"ok"'*) ;; *) run_ok=0 ;; esac

# ---- verdict --------------------------------------------------------------------------------

[ "$test_rc" -eq 0 ] && echo "ok - make test in a minbase chroot" || echo "not ok - make test in a minbase chroot (exit $test_rc)"
[ "$run_ok" = 1 ] && echo "ok - make run serves /health in a minbase chroot" || echo "not ok - make run serves /health in a minbase chroot"
[ "$test_rc" -eq 0 ] && [ "$run_ok" = 1 ]
