#!/bin/sh
# Installs the Debian packages todohost needs, and only those that are missing.
# Usage: scripts/install-deps.sh [build|test|bench|fuzz|all|node]   (default: build)
# Uses apt-get, through sudo when not root; does nothing when all are present.
set -eu

build="gcc make pkg-config liblua5.4-dev lua5.4 libpq-dev libsqlite3-dev libxxhash-dev lua-cjson libmicrohttpd-dev"
test="$build lua-busted postgresql postgresql-contrib sqlite3 curl wrk nodejs chromium chromium-driver docker-compose man-db nginx systemd"
bench="$test python3-alembic python3-sqlalchemy python3-psycopg2"   # python: only the reference tool of bench-migrate (Alembic)
fuzz="$build clang libclang-rt-14-dev"
case "${1:-build}" in
  build) want=$build ;;
  test)  want=$test ;;
  bench) want=$bench ;;
  fuzz)  want=$fuzz ;;
  all)   want="$bench nodejs npm" ;;
  node)  want="nodejs npm" ;;
  *) echo "usage: $0 [build|test|bench|fuzz|all|node]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""
elif command -v sudo >/dev/null 2>&1; then sudo="sudo"
else
  echo "todohost: missing packages:$missing; install them as root: apt-get install$missing" >&2
  exit 1
fi
echo "todohost: installing missing packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null || true
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
  { echo "todohost: apt-get install$missing failed; run it by hand to see why" >&2; exit 1; }
