#!/usr/bin/env bash
# tests/fuzz/fuzz.sh: runs every libFuzzer target for FUZZ_S seconds (`make fuzz`).
#
#   tests/fuzz/fuzz.sh [NAME...]      NAME: fuzz_dburl, ... (default: every target)
#
# `make fuzz` builds build/fuzz/fuzz_NAME (clang, -fsanitize=fuzzer,address,
# undefined) first. Each target starts from its seed corpus
# tests/fuzz/corpus/NAME/ (read only) and the working corpus
# build/fuzz/corpus/NAME/ (kept between runs; new inputs go there), with
# tests/fuzz/NAME.dict when present and the flags in tests/fuzz/NAME.options.
# A crash, a sanitizer report, a failed property (abort), a slow input
# (-timeout, in seconds: FUZZ_TIMEOUT, default 10) or an out-of-memory input
# leaves its input in build/fuzz/findings/NAME/ and makes the run fail.
#
# Settings: FUZZ_S (seconds per target, default 60), FUZZ_JOBS (parallel
# workers per target, default 1), FUZZ_MERGE=1 (after fuzzing, minimize the
# working corpus into tests/fuzz/corpus/NAME/: commit what it adds).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
FUZZ_S=${FUZZ_S:-60}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_JOBS=${FUZZ_JOBS:-1}
export TODOHOST_HOME=$PWD
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  for src in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
fi

failed=0
summary=()
for name in "${targets[@]}"; do
  exe=build/fuzz/$name
  [ -x "$exe" ] || { echo "fuzz: $exe is missing: run make fuzz" >&2; exit 2; }
  work=build/fuzz/corpus/$name findings=build/fuzz/findings/$name
  seeds=tests/fuzz/corpus/$name
  mkdir -p "$work" "$findings" "$seeds"
  log=build/fuzz/$name.log
  args=(-max_total_time="$FUZZ_S" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb=2048
        -artifact_prefix="$findings/" -print_final_stats=1)
  [ -f "tests/fuzz/$name.dict" ] && args+=(-dict="tests/fuzz/$name.dict")
  if [ -f "tests/fuzz/$name.options" ]; then
    # one or more flags a line; '#' starts a comment line
    while read -r -a extra; do args+=("${extra[@]}"); done < <(grep -v '^[[:space:]]*#' "tests/fuzz/$name.options")
  fi
  if [ "$FUZZ_JOBS" -gt 1 ]; then args+=(-fork="$FUZZ_JOBS" -ignore_crashes=0); fi
  before=$(find "$findings" -type f | wc -l)
  echo "== $name: ${FUZZ_S}s (log: $log)"
  "$exe" "${args[@]}" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  after=$(find "$findings" -type f | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
  new=$((after - before))
  line="$name: ${execs:-?} executions, ${cov:-cov: ?}, $new new finding(s)"
  if [ "$rc" -ne 0 ] || [ "$new" -gt 0 ]; then
    failed=$((failed + 1))
    line="$line (exit $rc): FAILED"
    grep -E 'ERROR: |SUMMARY: |runtime error|property' "$log" | head -n 5 | sed 's/^/    /'
    ls -t "$findings" | head -n 3 | sed "s|^|    input: $findings/|"
  fi
  summary+=("$line")
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    "$exe" -merge=1 -timeout="$FUZZ_TIMEOUT" "$seeds" "$work" >>"$log" 2>&1 &&
      echo "   merged: $(find "$seeds" -type f | wc -l) inputs in $seeds"
  fi
done
echo "== summary"
printf '%s\n' "${summary[@]}"
echo "reproduce a finding: build/fuzz/NAME FILE; keep it as a test: copy it into tests/fuzz/corpus/NAME/"
[ "$failed" -eq 0 ]
