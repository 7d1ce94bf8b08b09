/*
 * strbuf.h: a string built by appending, for the C core (SQL text, masked
 * URLs). Either growing (malloc'ed; the owner frees p) or fixed (a caller's
 * buffer: what does not fit is cut). Always NUL-terminated once anything
 * was added; on allocation failure oom is set and further appends do
 * nothing.
 *
 *     strbuf b = {0};                      growing, starts empty
 *     strbuf f = {out, 0, size, 1, 0};     fixed: out[0..size)
 */
#ifndef TODOHOST_STRBUF_H
#define TODOHOST_STRBUF_H

#include <stdlib.h>
#include <string.h>

typedef struct strbuf {
  char *p;
  size_t len, cap;
  int fixed, oom;
} strbuf;

/* Appends s[0..n). */
static inline void strbuf_add(strbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    if (b->fixed) {
      n = b->cap > b->len + 1 ? b->cap - b->len - 1 : 0;
    } else {
      size_t cap = b->cap ? b->cap : 64;
      while (cap < b->len + n + 1) cap *= 2;
      char *p = realloc(b->p, cap);
      if (!p) { b->oom = 1; return; }
      b->p = p;
      b->cap = cap;
    }
  }
  if (!b->p) return;   /* a fixed buffer of size 0 */
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static inline void strbuf_str(strbuf *b, const char *s) { strbuf_add(b, s, strlen(s)); }

#endif
