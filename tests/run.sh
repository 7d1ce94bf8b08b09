#!/usr/bin/env bash
# tests/run.sh: runs every test suite against every build and prints one
# closing line, "N passed, N failed". `make test` builds first, then calls it.
#
#   tests/run.sh [FILE...]   FILEs (specs, C tests, e2e scripts) limit the run
#
# For each build (plain build/todohost, then ASan+UBSan build/asan/todohost):
#   - every tests/spec/*_spec.lua under busted inside todohost, once per
#     database: TEST_DATABASE_URL=sqlite:///<fresh tmp>/test.db, then the
#     throwaway PostgreSQL server's URL (its todo_test database is dropped and
#     re-created before each spec file, the SQLite file is fresh each time);
#   - every tests/c/test_*.c, compiled against that build's libtodohost.a;
#   - every tests/e2e/*.sh (pass = exit 0; `ok - ` / `not ok - ` lines, when
#     printed, are counted one by one);
#   - every fuzz target tests/fuzz/fuzz_*.c, linked with tests/fuzz/replay.c
#     (no libFuzzer needed) and replayed over its corpus tests/fuzz/corpus/NAME/.
# Each run gets TODOHOST (absolute path of the binary under test), TEST_PG_URL,
# TEST_TMPDIR (a fresh scratch dir) and runs from the repository root.
# A suite that crashes, times out, or leaves a sanitizer report counts as a
# failure even when none of its own checks failed.
#
# Settings (environment): TEST_BUILDS="plain asan", TEST_DBS="sqlite postgresql",
# TEST_TIMEOUT=900 (seconds per suite), VERBOSE=1 (print every suite's whole
# output), TESTS_DIR=tests (where spec/, c/, e2e/ are). Logs of the last run
# stay in build/test-logs/. Everything else lives in a temp dir of its own,
# so two runs at once (even in one checkout) do not disturb each other.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
TESTS_DIR=${TESTS_DIR:-tests}
TEST_BUILDS=${TEST_BUILDS:-plain asan}
TEST_DBS=${TEST_DBS:-sqlite postgresql}
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
VERBOSE=${VERBOSE:-0}
LOGS=""           # this run's logs, in TMP_ROOT; copied to build/test-logs at the end
# C tests build with the Makefile's own settings (PKGS, CSTD, SAN).
make_var() {
  sed -n -E "s/^$1[[:space:]]*:?=[[:space:]]*//p" Makefile 2>/dev/null | head -n 1
}
PKGS=$(make_var PKGS); PKGS=${PKGS:-lua5.4 libpq sqlite3 libmicrohttpd libcrypto}
CSTD=$(make_var CSTD); CSTD=${CSTD:--std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE}
SAN=$(make_var SAN); SAN=${SAN:--O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined}
CWARN="-Wall -Wextra -Werror"

total_passed=0
total_failed=0
child=""
pg_dir=""
TMP_ROOT=""

if [ -t 1 ]; then red=$'\e[31m' green=$'\e[32m' dim=$'\e[2m' off=$'\e[0m'
else red="" green="" dim="" off=""; fi

cleanup() {
  if [ -n "$child" ]; then kill -TERM -- "-$child" "$child" 2>/dev/null; wait "$child" 2>/dev/null; child=""; fi
  if [ -n "$pg_dir" ]; then "$ROOT/tests/pg.sh" stop "$pg_dir" >/dev/null 2>&1; pg_dir=""; fi
  if [ -n "$TMP_ROOT" ]; then rm -rf "$TMP_ROOT"; TMP_ROOT=""; fi
}
trap cleanup EXIT
trap 'echo "tests/run.sh: interrupted" >&2; cleanup; exit 130' INT TERM HUP

# ---- what to run -----------------------------------------------------------

specs=() ctests=() e2es=() fuzzes=()
if [ $# -gt 0 ]; then
  for f in "$@"; do
    [ -f "$f" ] || { echo "tests/run.sh: no such test file: $f" >&2; exit 2; }
    case "$f" in
      *_spec.lua) specs+=("$f") ;;
      */fuzz/fuzz_*.c) fuzzes+=("$f") ;;
      *.c) ctests+=("$f") ;;
      *.sh) e2es+=("$f") ;;
      *) echo "tests/run.sh: $f is not a *_spec.lua, test_*.c, fuzz_*.c or e2e *.sh file" >&2; exit 2 ;;
    esac
  done
else
  shopt -s nullglob
  specs=("$TESTS_DIR"/spec/*_spec.lua)
  ctests=("$TESTS_DIR"/c/test_*.c)
  e2es=("$TESTS_DIR"/e2e/*.sh)
  fuzzes=("$TESTS_DIR"/fuzz/fuzz_*.c)
  shopt -u nullglob
fi

# ---- running one suite -----------------------------------------------------

# run_logged TIMEOUT OUT ERR CMD...: runs CMD with stdout in OUT and stderr in
# ERR, no stdin, in its own process group (so Ctrl-C and the time limit stop
# everything it started). Returns CMD's status (124 on time-out).
run_logged() {
  local limit=$1 out=$2 err=$3; shift 3
  timeout -k 10 "$limit" "$@" >"$out" 2>"$err" </dev/null &
  child=$!
  wait "$child" 2>/dev/null # (no "Aborted" job notice: finish_suite reports it)
  local rc=$?
  child=""
  return "$rc"
}

# count_results OUT: prints "passed failed skipped plan" for the TAP-like
# lines in OUT: `ok [N] - name`, `not ok [N] - name`, `ok [N] - # SKIP ...`,
# and whether a `1..N` plan line was seen (1/0).
count_results() {
  awk '
    /^not ok( [0-9]+)? - /      { f++; next }
    /^ok( [0-9]+)? - # SKIP/    { s++; next }
    /^ok( [0-9]+)? - /          { p++; next }
    /^1\.\.[0-9]+$/             { plan = 1 }
    END { printf "%d %d %d %d\n", p, f, s, plan }' "$1"
}

# sanitizer_reports: prints (and removes) the reports that sanitized
# processes wrote since the last call, from this suite and its children.
sanitizer_reports() {
  local f found=1
  for f in "$SAN_DIR"/*; do
    [ -e "$f" ] || continue
    found=0
    echo "--- $(basename "$f")"
    cat "$f"
    rm -f "$f"
  done
  return $found
}

# finish_suite LABEL RC OUT ERR KIND SECONDS: counts one suite's results,
# prints its line, and on failure the failing checks and the end of its
# output. KIND is tap (busted: a plan line must be there), plain or compile.
# Reads $build.
finish_suite() {
  local label=$1 rc=$2 out=$3 err=$4 kind=$5 secs=$6
  local passed failed skipped plan problem=""
  read -r passed failed skipped plan < <(count_results "$out")
  local san
  san=$(sanitizer_reports)
  if [ -n "$san" ]; then problem="sanitizer report"
  # UBSan inside the ASan runtime writes to stderr, whatever log_path says
  elif [ "$build" = asan ] && grep -qE '^[^ ]+:[0-9]+:[0-9]+: runtime error: ' "$err"; then
    problem="sanitizer report (UBSan, in stderr)"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then problem="timed out after ${TEST_TIMEOUT}s"
  elif [ "$rc" -gt 128 ]; then problem="killed by signal $((rc - 128))"
  elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then problem="exited with status $rc"
  elif [ "$kind" = tap ] && [ "$plan" -eq 0 ]; then problem="stopped before the end (no TAP plan line)"
  elif [ "$kind" = plain ] && [ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -eq 0 ]; then
    passed=1 # a script that checks by its exit status only
  fi
  if [ -n "$problem" ] && [ "$failed" -eq 0 ]; then failed=1; fi
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))

  local extra=""
  [ "$skipped" -gt 0 ] && extra=", $skipped skipped"
  [ -n "$problem" ] && extra="$extra; $problem"
  if [ "$failed" -eq 0 ]; then
    printf '%sok%s      %-52s %4d passed%s %s(%ss)%s\n' "$green" "$off" "$label" "$passed" "$extra" "$dim" "$secs" "$off"
  else
    printf '%sFAILED%s  %-52s %4d passed, %d failed%s %s(%ss)%s\n' "$red" "$off" "$label" "$passed" "$failed" "$extra" "$dim" "$secs" "$off"
  fi
  if [ "$VERBOSE" = 1 ]; then
    sed 's/^/    | /' "$out"; sed 's/^/    ! /' "$err"
  elif [ "$failed" -gt 0 ]; then
    # the first failing checks with their TAP diagnostics ("# ..." lines after them)
    awk -v max=10 '
      /^not ok( [0-9]+)? - / { n++; show = n <= max; if (show) print "    " $0; next }
      show && /^# /          { print "    " $0; next }
                             { show = 0 }
      END { if (n > max) printf "    ... and %d more failures\n", n - max }' "$out"
    if [ -n "$problem" ]; then
      echo "    --- last lines of output ($(shown "$out")):"
      tail -n 15 "$out" | sed 's/^/    | /'
    fi
    if [ -s "$err" ] && [ "$kind" = compile ]; then
      echo "    --- compiler output ($(shown "$err")):"
      head -n 30 "$err" | sed 's/^/    ! /'
    elif [ -s "$err" ]; then
      echo "    --- last lines of stderr ($(shown "$err")):"
      tail -n "$([ -n "$problem" ] && echo 25 || echo 10)" "$err" | sed 's/^/    ! /'
    fi
  fi
  [ -n "$san" ] && printf '%s\n' "$san" | head -n 60 | sed 's/^/    san: /'
  return 0
}

# shown LOG: where LOG will be once the run ends.
shown() {
  echo "build/test-logs/${1##*/}"
}

# fresh_tmp NAME: a new scratch dir under TMP_ROOT, printed.
fresh_tmp() {
  local d="$TMP_ROOT/$1"
  rm -rf "$d"
  mkdir -p "$d"
  echo "$d"
}

# reset_pg_db: drops and re-creates the PostgreSQL test database.
reset_pg_db() {
  local admin="${TEST_PG_URL%/*}/postgres" db="${TEST_PG_URL##*/}"
  "$(cat "$pg_dir/bindir")/psql" -X -q -v ON_ERROR_STOP=1 "$admin" \
    -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\"" >/dev/null
}

# run_spec BUILD BIN DB SPEC
run_spec() {
  local build=$1 bin=$2 db=$3 spec=$4
  local name tmp url start rc
  name=$(basename "$spec" .lua)
  tmp=$(fresh_tmp "$build-$db-$name")
  if [ "$db" = sqlite ]; then url="sqlite:///$tmp/test.db"
  else
    url=$TEST_PG_URL
    reset_pg_db || { echo "tests/run.sh: cannot re-create the test database on the throwaway server" >&2; }
  fi
  local out="$LOGS/$build-$db-$name.out" err="$LOGS/$build-$db-$name.err"
  start=$SECONDS
  TEST_DATABASE_URL=$url TEST_TMPDIR=$tmp TODOHOST=$bin \
    run_logged "$TEST_TIMEOUT" "$out" "$err" "$bin" run tests/busted.lua -o TAP "$spec"
  rc=$?
  finish_suite "$build $db $spec" "$rc" "$out" "$err" tap $((SECONDS - start))
}

# run_c BUILD BIN SRC KIND: compiles SRC against the build's library and
# runs it. KIND c: a C test (tests/c/check.h). KIND fuzz: a fuzz target,
# linked with the replay main and fed its corpus tests/fuzz/corpus/NAME once.
run_c() {
  local build=$1 bin=$2 src=$3 kind=$4
  local name lib exe flags tmp start rc extra=() args=()
  name=$(basename "$src" .c)
  if [ "$build" = asan ]; then lib=build/asan/libtodohost.a; flags=$SAN
  else lib=build/libtodohost.a; flags="-O1 -g"; fi
  if [ "$kind" = fuzz ]; then
    extra=("$ROOT/$TESTS_DIR/fuzz/replay.c")
    args=("$TESTS_DIR/fuzz/corpus/$name")
  fi
  exe=$TMP_ROOT/bin/$build/$name
  mkdir -p "$(dirname "$exe")"
  local out="$LOGS/$build-$kind-$name.out" err="$LOGS/$build-$kind-$name.err"
  start=$SECONDS
  # shellcheck disable=SC2086,SC2046 # word splitting of the flag lists is intended
  if ! cc $CSTD $CWARN $flags -I"$ROOT/host" -I"$ROOT/$TESTS_DIR/$kind" -o "$exe" "$src" "${extra[@]}" \
      "$lib" $(pkg-config --cflags --libs $PKGS) -lpthread -lm -ldl -rdynamic >"$out" 2>"$err"; then
    echo "not ok - $src compiles (see the compiler output below)" >>"$out"
    finish_suite "$build $kind $src" 1 "$out" "$err" compile $((SECONDS - start))
    return
  fi
  tmp=$(fresh_tmp "$build-$kind-$name")
  TEST_TMPDIR=$tmp TODOHOST=$bin TODOHOST_HOME=$ROOT \
    run_logged "$TEST_TIMEOUT" "$out" "$err" "$exe" "${args[@]}"
  rc=$?
  finish_suite "$build $kind $src" "$rc" "$out" "$err" plain $((SECONDS - start))
}

# run_e2e BUILD BIN SCRIPT
run_e2e() {
  local build=$1 bin=$2 script=$3
  local name tmp start rc
  name=$(basename "$script" .sh)
  tmp=$(fresh_tmp "$build-e2e-$name")
  local out="$LOGS/$build-e2e-$name.out" err="$LOGS/$build-e2e-$name.err"
  start=$SECONDS
  TEST_TMPDIR=$tmp TODOHOST=$bin run_logged "$TEST_TIMEOUT" "$out" "$err" bash "$script"
  rc=$?
  finish_suite "$build e2e $script" "$rc" "$out" "$err" plain $((SECONDS - start))
}

# ---- main ------------------------------------------------------------------

TMP_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/todohost-test.XXXXXX")
LOGS=$TMP_ROOT/logs
mkdir -p "$LOGS"
SAN_DIR=$TMP_ROOT/sanitizer
mkdir -p "$SAN_DIR"
# Sanitized processes (the binary, C tests, anything they start) write their
# reports to files here; finish_suite turns any report into a failure.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:log_path=$SAN_DIR/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$SAN_DIR/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-}"

if [ "${#specs[@]}" -gt 0 ] || [ "${#ctests[@]}" -gt 0 ] || [ "${#e2es[@]}" -gt 0 ] || [ "${#fuzzes[@]}" -gt 0 ]; then
  case " $TEST_DBS " in *" postgresql "*) need_pg=1 ;; *) need_pg=0 ;; esac
  [ "${#ctests[@]}" -gt 0 ] || [ "${#e2es[@]}" -gt 0 ] || [ "${#fuzzes[@]}" -gt 0 ] && need_pg=1
  if [ "$need_pg" = 1 ]; then
    if ! pg_env=$("$ROOT/tests/pg.sh" start 2>"$LOGS/pg-start.err"); then
      cat "$LOGS/pg-start.err" >&2
      echo "tests/run.sh: could not start the throwaway PostgreSQL server (above); install it with scripts/install-deps.sh test" >&2
      echo "0 passed, 1 failed"
      exit 1
    fi
    eval "$pg_env"
    pg_dir=$TEST_PG_DIR
    export TEST_PG_URL
    echo "${dim}PostgreSQL test server: ${TEST_PG_URL/:todo_pass@/:***@} (in $pg_dir)${off}"
  fi
fi
export TEST_PG_URL=${TEST_PG_URL:-}

for build in $TEST_BUILDS; do
  case "$build" in
    plain) bin=$ROOT/build/todohost ;;
    asan) bin=$ROOT/build/asan/todohost ;;
    *) echo "tests/run.sh: unknown build '$build' in TEST_BUILDS (use plain and/or asan)" >&2; exit 2 ;;
  esac
  if [ ! -x "$bin" ]; then
    echo "${red}FAILED${off}  $build: $bin is missing; build it first: make all asan"
    total_failed=$((total_failed + 1))
    continue
  fi
  echo "== $build build: $bin"
  if [ "${#specs[@]}" -gt 0 ]; then
    for db in $TEST_DBS; do
      for spec in "${specs[@]}"; do run_spec "$build" "$bin" "$db" "$spec"; done
    done
  fi
  for src in "${ctests[@]}"; do run_c "$build" "$bin" "$src" c; done
  for script in "${e2es[@]}"; do run_e2e "$build" "$bin" "$script"; done
  for src in "${fuzzes[@]}"; do run_c "$build" "$bin" "$src" fuzz; done
done

if [ $((total_passed + total_failed)) -eq 0 ]; then
  echo "${dim}no tests found (tests/spec/*_spec.lua, tests/c/test_*.c, tests/e2e/*.sh)${off}"
fi
# keep this run's logs (only this run's) in build/test-logs
mkdir -p build
rm -rf build/test-logs.new && cp -r "$LOGS" build/test-logs.new && rm -rf build/test-logs &&
  mv build/test-logs.new build/test-logs
cleanup
[ "$total_failed" -gt 0 ] && echo "${dim}logs: build/test-logs/${off}"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
