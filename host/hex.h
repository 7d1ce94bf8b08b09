/*
 * hex.h: hexadecimal digits, both ways, for the C core (percent-decoding,
 * uuid and bytea text, escaped log text).
 */
#ifndef TODOHOST_HEX_H
#define TODOHOST_HEX_H

#include <stddef.h>

/* The value of hex digit c (either case), or -1. */
static inline int hex_digit(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Writes p[0..n) as 2n lower-case hex digits at out (no NUL). */
static inline void hex_put(char *out, const unsigned char *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t k = 0; k < n; k++) {
    out[2 * k] = digits[p[k] >> 4];
    out[2 * k + 1] = digits[p[k] & 15];
  }
}

#endif
