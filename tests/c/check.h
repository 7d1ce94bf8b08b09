/*
 * check.h: the whole test convention for the C tests in tests/c/test_*.c.
 *
 * Each check prints one line on stdout:
 *     ok - NAME
 *     not ok - NAME (FILE:LINE: EXPRESSION [got ..., want ...])
 * and main() ends with `return check_summary();`, which prints
 * "# N passed, N failed" and returns 0 only when every check passed.
 *
 * tests/run.sh compiles each test against build/libtodohost.a (and the ASan +
 * UBSan library for the sanitizer pass), runs it from the repository root
 * with TEST_PG_URL and TEST_TMPDIR set, and counts the ok / not ok lines. A
 * program that exits non-zero without a "not ok" line (a crash, an abort, a
 * sanitizer report) counts as one failure.
 *
 *     #include "check.h"
 *     int main(void) {
 *       CHECK(1 + 1 == 2, "addition");
 *       CHECK_INT(th_truthy("yes"), 1, "'yes' is true");
 *       CHECK_STR(buf, "expected", "dburl %s renders", url);
 *       return check_summary();
 *     }
 *
 * Every macro evaluates its arguments once and returns 1 when the check
 * passed, so a test can stop early: if (!CHECK(conn, "connect")) return
 * check_summary();
 */
#ifndef TODOHOST_TESTS_CHECK_H
#define TODOHOST_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int check_passed_count, check_failed_count;

/* Prints the ok / not ok line. detail (may be NULL) follows the expression
 * on a failure. Returns ok. */
#if defined(__GNUC__)
#define CHECK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CHECK_PRINTF(f, a)
#endif

CHECK_PRINTF(6, 7)
static inline int check_report(int ok, const char *file, int line, const char *expr,
                        const char *detail, const char *fmt, ...) {
  va_list ap;
  fputs(ok ? "ok - " : "not ok - ", stdout);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  if (!ok) printf(" (%s:%d: %s%s%s)", file, line, expr, detail ? " " : "", detail ? detail : "");
  putchar('\n');
  fflush(stdout);
  if (ok) check_passed_count++;
  else check_failed_count++;
  return ok;
}

static inline int check_int(long long got, long long want, const char *file, int line,
                     const char *expr, const char *name) {
  char detail[96];
  snprintf(detail, sizeof detail, "[got %lld, want %lld]", got, want);
  return check_report(got == want, file, line, expr, detail, "%s", name);
}

static inline int check_str(const char *got, const char *want, const char *file, int line,
                     const char *expr, const char *name) {
  int ok = got && want ? strcmp(got, want) == 0 : got == want;
  char detail[512];
  snprintf(detail, sizeof detail, "[got %s%.200s%s, want %s%.200s%s]", got ? "\"" : "",
           got ? got : "NULL", got ? "\"" : "", want ? "\"" : "", want ? want : "NULL",
           want ? "\"" : "");
  return check_report(ok, file, line, expr, detail, "%s", name);
}

/* Formats a check name into a static buffer (checks are single-threaded). */
CHECK_PRINTF(1, 2)
static inline const char *check_name(const char *fmt, ...) {
  static char name[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  return name;
}

/* CHECK(condition, name format, ...) */
#define CHECK(cond, ...) check_report(!!(cond), __FILE__, __LINE__, #cond, NULL, __VA_ARGS__)
/* CHECK_INT(got, want, name format, ...): compared as long long. */
#define CHECK_INT(got, want, ...) \
  check_int((long long)(got), (long long)(want), __FILE__, __LINE__, #got " == " #want, \
            check_name(__VA_ARGS__))
/* CHECK_STR(got, want, name format, ...): strcmp, NULL equals only NULL. */
#define CHECK_STR(got, want, ...) \
  check_str((got), (want), __FILE__, __LINE__, #got " == " #want, check_name(__VA_ARGS__))

/* Prints "# N passed, N failed"; returns the exit status for main(). */
static inline int check_summary(void) {
  printf("# %d passed, %d failed\n", check_passed_count, check_failed_count);
  fflush(stdout);
  return check_failed_count ? 1 : 0;
}

#endif
