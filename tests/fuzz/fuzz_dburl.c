/*
 * fuzz_dburl.c: database URL parsing and password masking.
 *
 * Input: SELECTOR BYTE, then parts separated by '\n': scheme, user,
 * password, host, database, query. Two kinds of runs on each input:
 *
 * 1. The whole input (after the selector) as a URL: parsing, db_mask_url
 *    and db_mask_text never crash or read out of bounds, errors have a
 *    message. (Whether an output holds "the password" needs to know which
 *    bytes are the password: that is run 2.)
 * 2. URLs assembled from the parts with a known password, in the forms
 *      scheme://user:PASSWORD@host/db?query          (userinfo)
 *      scheme://user@host/db?query&password=PASSWORD (query string)
 *      scheme://user:PASSWORD/db?query                (no "@host": refused
 *                                                      or masked, never a port)
 *    The password always holds the byte 0xff (put in when the part has
 *    none) and no other part does: then ANY output holding 0xff leaked a
 *    piece of the password. The outputs: the masked URL, the parse error's
 *    message and hint, libpq's reading (params), db_mask_url, and
 *    db_mask_text of a line quoting the URL. The rule's limits (dburl.h):
 *    the host part must read as a host (host characters, numeric ports),
 *    a query password must not hold '&', and for db_mask_text no part
 *    may hold a blank (in free text a URL ends at a blank).
 */
#include "fuzz.h"
#include "dburl.h"

#define MARK '\xff'

static int has_mark(const char *s) { return s && strchr(s, MARK) != NULL; }

static int host_like(const char *h) {
  for (; *h; h++)
    if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
          strchr(".-_:[],", *h)))
      return 0;
  return 1;
}

static int has_blank(const char *s) { return strpbrk(s, " \t\r\n") != NULL; }

/* Whether s is a URL scheme: [A-Za-z][A-Za-z0-9+.-]* */
static int scheme_ok(const char *s) {
  if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) return 0;
  for (s++; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("+.-", *s)))
      return 0;
  return 1;
}

/* Parses and masks url; when check, no output may hold the marker. */
static void run(const char *url, int check, int check_text) {
  db_url u;
  db_error err;
  memset(&err, 0, sizeof err);
  if (db_url_parse(url, &u, &err) == 0) {
    FUZZ_REQUIRE(u.safe != NULL && u.target != NULL, "%s", url);
    if (check) {
      FUZZ_REQUIRE(!has_mark(u.safe), "masked URL shows the password: %s", u.safe);
      for (char **p = u.params; p && *p; p++)
        FUZZ_REQUIRE(!has_mark(*p), "libpq's reading shows the password: %s", *p);
    }
    db_url_free(&u);
  } else {
    FUZZ_REQUIRE(err.message[0] != '\0', "an error without a message");
    if (check) {
      FUZZ_REQUIRE(!has_mark(err.message), "the error shows the password: %s", err.message);
      FUZZ_REQUIRE(!has_mark(err.hint), "the hint shows the password: %s", err.hint);
    }
  }
  char *m = db_mask_url(url);
  FUZZ_REQUIRE(m != NULL, "db_mask_url");
  if (check) FUZZ_REQUIRE(!has_mark(m), "db_mask_url shows the password: %s", m);
  free(m);
  size_t n = strlen(url);
  char *text = malloc(n + 64), *out = malloc(n + 128);
  if (!text || !out) abort();
  snprintf(text, n + 64, "cannot connect to '%s': refused\nnext", url);
  db_mask_text(text, out, n + 128);
  if (check && check_text) FUZZ_REQUIRE(!has_mark(out), "db_mask_text shows the password: %s", out);
  free(text);
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  unsigned sel = data[0];
  char *in = fuzz_cstring(data + 1, size - 1);
  run(in, 0, 0);

  /* the parts; the marker only in the password */
  char *part[6] = {"postgresql", "todo_user", "", "127.0.0.1:5432", "todo_db", ""};
  char *s = in;
  for (int i = 0; i < 6 && s; i++) {
    char *nl = strchr(s, '\n');
    if (nl) *nl = '\0';
    part[i] = s;
    s = nl ? nl + 1 : NULL;
  }
  for (int i = 0; i < 6; i++)   /* (libpq decodes %ff: no such escape either) */
    if (i != 2)
      for (char *c = part[i]; *c; c++)
        if (*c == MARK || (c[0] == '%' && (c[1] == 'f' || c[1] == 'F') && (c[2] == 'f' || c[2] == 'F'))) *c = 'x';
  size_t pn = strlen(part[2]);
  char *pw = malloc(pn + 2);
  if (!pw) abort();
  memcpy(pw, part[2], pn + 1);
  if (!strchr(pw, MARK)) {   /* put the marker in, where the selector says */
    size_t at = (sel >> 2) % (pn + 1);
    memmove(pw + at + 1, pw + at, pn - at + 1);
    pw[at] = MARK;
  }
  int text_ok = !has_blank(part[0]) && !has_blank(part[1]) && !has_blank(part[3]) &&
                !has_blank(part[4]) && !has_blank(part[5]) && !has_blank(pw);
  size_t cap = strlen(part[0]) + strlen(part[1]) + strlen(pw) + strlen(part[3]) + strlen(part[4]) +
               strlen(part[5]) + 64;
  char *url = malloc(cap);
  if (!url) abort();
  if ((sel & 1) == 0) {
    snprintf(url, cap, "%s://%s:%s@%s/%s%s%s", part[0], part[1], pw, part[3], part[4],
             part[5][0] ? "?" : "", part[5]);
    run(url, host_like(part[3]), text_ok);
  } else {
    snprintf(url, cap, "%s://%s@%s/%s?%s%spassword=%s", part[0], part[1], part[3], part[4], part[5],
             part[5][0] ? "&" : "", pw);
    run(url, host_like(part[3]) && !strchr(pw, '&'), text_ok);
  }
  if (sel & 2) {   /* the "@host" forgotten: libpq would read user:PASSWORD as host:port */
    snprintf(url, cap, "%s://%s:%s/%s%s%s", part[0], part[1], pw, part[4], part[5][0] ? "?" : "", part[5]);
    run(url, scheme_ok(part[0]) && !strpbrk(pw, "@/?#[]") && !strpbrk(part[1], "@/?#:[]") && !strchr(part[4], '@') &&
             !strchr(part[5], '@') && !strstr(part[5], "password"), text_ok);
  }
  free(url);
  free(pw);
  free(in);
  return 0;
}
