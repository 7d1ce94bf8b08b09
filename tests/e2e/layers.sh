#!/usr/bin/env bash
# tests/e2e/layers.sh: the C layers include downwards only (docs/architecture.md).
#
#   base       clock.h hex.h strbuf.h textsafe.[ch] mask.h config.[ch]  system headers only
#   db core    db.[ch] db_int.h db_pg.c db_sqlite.c db_pool.[ch] dburl.[ch] copy.[ch]
#              base, each other, libpq, SQLite, xxHash; never Lua, never HTTP
#   http core  http.[ch]                                       base, libmicrohttpd;
#                                                              never Lua, never a database
#   bindings   lua_*.[ch] runtime.[ch]                          any layer below
#   main       main.c                                           anything
# Every host/ file must belong to one layer. Prints `ok - ` / `not ok - `
# lines; first it checks that the checker itself catches a violation.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
failed=0
ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }

BASE="clock.h hex.h strbuf.h textsafe.h mask.h config.h"
DB="db.h db_int.h db_pool.h dburl.h copy.h"

# layer FILE: the layer of a host/ file name, or nothing
layer() {
  case "$(basename "$1")" in
    clock.h|hex.h|strbuf.h|textsafe.c|textsafe.h|mask.h|config.c|config.h) echo base ;;
    db.c|db.h|db_int.h|db_pg.c|db_sqlite.c|db_pool.c|db_pool.h|dburl.c|dburl.h|copy.c|copy.h) echo db ;;
    http.c|http.h) echo http ;;
    lua_*.c|lua_*.h|runtime.c|runtime.h) echo bindings ;;
    main.c) echo main ;;
  esac
}

# allowed LAYER: the project and library headers a layer may include
allowed() {
  case "$1" in
    base) echo "$BASE" ;;
    db) echo "$BASE $DB libpq-fe.h sqlite3.h xxhash.h" ;;
    http) echo "$BASE http.h microhttpd.h" ;;
    *) echo "*" ;;
  esac
}

# violations FILE LAYER: the includes of FILE its layer may not have (one a line)
violations() {
  local file=$1 ok_list
  ok_list=" $(allowed "$2") "
  [ "$ok_list" = " * " ] && return 0
  # project headers ("x.h") and the libraries' headers (<x.h> that are not the C library's or POSIX's)
  sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]([^">]+)[">].*/\1/p' "$file" |
    while read -r h; do
      case "$h" in
        lua.h|lauxlib.h|lualib.h|microhttpd.h|libpq-fe.h|sqlite3.h|xxhash.h|openssl/*) ;;
        *.h) [ -e "host/$h" ] || continue ;;   # the C library and POSIX
      esac
      case "$ok_list" in *" $h "*) ;; *) echo "$h" ;; esac
    done
}

# the checker catches a violation: a database file that includes lua.h
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include "db_int.h"\n#include <lua.h>\n#include "http.h"\n' >"$probe/db.c"
got=$(violations "$probe/db.c" db | tr '\n' ' ')
if [ "$got" = "lua.h http.h " ]; then ok "the checker sees a database file including lua.h and http.h"
else not_ok "the checker sees a database file including lua.h and http.h (got: $got)"; fi

for f in host/*.c host/*.h; do
  l=$(layer "$f")
  if [ -z "$l" ]; then not_ok "$f belongs to a layer (add it to tests/e2e/layers.sh and docs/architecture.md)"; continue; fi
  bad=$(violations "$f" "$l" | tr '\n' ' ')
  if [ -z "$bad" ]; then ok "$f ($l) includes only its own layer and those below"
  else not_ok "$f ($l) includes ${bad% }, from a layer above or beside it"; fi
done
[ "$failed" -eq 0 ]
