/*
 * textsafe.c: escaping outside text for logs and terminals (see textsafe.h).
 */
#include "textsafe.h"
#include "hex.h"

/* The length of the well-formed UTF-8 sequence at s (n bytes left) that is
 * shown as it is (not a C1 control, a bidi control or a line separator), or
 * 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  unsigned cp;
  if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1fu;
  else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0fu;
  else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07u;
  else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3fu);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
    return 0;   /* overlong, out of range, a surrogate, a C1 control */
  if (cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
      (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029)
    return 0;   /* bidi controls reorder what follows; line and paragraph separators */
  return len;
}

/* text_safe, with the backslash escaped or kept. */
static char *escape(const char *s, size_t len, char *out, size_t size, int backslash) {
  const unsigned char *p = (const unsigned char *)s;
  size_t o = 0, i = 0, cut = 0;   /* cut: the last place "..." and the NUL fit */
  while (i < len) {
    unsigned char c = p[i];
    size_t n = c >= 0x20 && c < 0x7f && (c != '\\' || !backslash) ? 1
             : c >= 0x80 ? utf8_len(p + i, len - i) : 0;
    size_t need = n ? n : 4;
    if (o + 4 <= size) cut = o;
    if (o + need + 1 > size) {
      o = cut;
      out[o++] = '.'; out[o++] = '.'; out[o++] = '.';
      break;
    }
    if (n) {
      for (size_t k = 0; k < n; k++) out[o++] = (char)p[i + k];
      i += n;
    } else {
      out[o++] = '\\'; out[o++] = 'x';
      hex_put(out + o, &c, 1);
      o += 2;
      i++;
    }
  }
  out[o] = '\0';
  return out;
}

char *text_safe(const char *s, size_t len, char *out, size_t size) {
  return escape(s, len, out, size, 1);
}

char *text_safe_message(const char *s, size_t len, char *out, size_t size) {
  return escape(s, len, out, size, 0);
}
