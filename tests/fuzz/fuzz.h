/*
 * fuzz.h: the convention for the libFuzzer targets in tests/fuzz/fuzz_*.c.
 *
 * A target is one file defining LLVMFuzzerTestOneInput (and, when it needs
 * set-up, LLVMFuzzerInitialize). It links against libtodohost.a only, never
 * main.c. It checks properties, not only crashes: a property that fails calls
 * FUZZ_REQUIRE, which prints the property and aborts, so libFuzzer keeps the
 * input as a finding and the corpus replay in `make test` fails on it.
 *
 *   make fuzz            builds build/fuzz/NAME with clang and libFuzzer and
 *                        runs each for FUZZ_S seconds (tests/fuzz/fuzz.sh)
 *   make test            replays tests/fuzz/corpus/NAME/ through replay.c
 *                        under the plain and the ASan+UBSan builds (gcc)
 *
 * Inputs must be deterministic in effect: no clock, no randomness, no state
 * kept from one input to the next other than what LLVMFuzzerInitialize set up.
 */
#ifndef TODOHOST_TESTS_FUZZ_H
#define TODOHOST_TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define FUZZ_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define FUZZ_PRINTF(f, a)
#endif

/* Reports a failed property and aborts (libFuzzer keeps the input). */
static void fuzz_fail(const char *file, int line, const char *what, const char *fmt, ...)
    FUZZ_PRINTF(4, 5) __attribute__((noreturn, unused));
#include <stdarg.h>
static void fuzz_fail(const char *file, int line, const char *what, const char *fmt, ...) {
  fprintf(stderr, "%s:%d: property failed: %s", file, line, what);
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    fputs(": ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
  }
  fputc('\n', stderr);
  fflush(stderr);
  abort();
}

/* FUZZ_REQUIRE(cond, "format", ...): the property cond must hold. */
#define FUZZ_REQUIRE(cond, ...) \
  do { if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); } while (0)

/* A NUL-terminated malloc'ed copy of the input (free it). */
static inline char *fuzz_cstring(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) abort();
  memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

/* Whether needle (n bytes) occurs in hay (h bytes). */
static inline int fuzz_contains(const char *hay, size_t h, const char *needle, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i + n <= h; i++)
    if (memcmp(hay + i, needle, n) == 0) return 1;
  return 0;
}

#endif
