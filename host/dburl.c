/*
 * dburl.c: parsing database URLs into a driver kind and target, masking
 * passwords. See dburl.h for the forms and the masking rule. Every function
 * here takes time linear in its input.
 */
#include "dburl.h"
#include "strbuf.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libpq-fe.h>

const char DB_URL_FORMS[] =
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, "
    "postgresql://user:password@host:port/dbname (postgres:// and "
    "postgresql+psycopg2:// work too)";

static const char PERCENT_HINT[] =
    "percent-encode the password in DATABASE_URL: % as %25, @ as %40, / as %2F, "
    "? as %3F, # as %23, & as %26, space as %20";

#define NONE SIZE_MAX

static char *dupn(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) { memcpy(p, s, n); p[n] = '\0'; }
  return p;
}

void db_url_free(db_url *u) {
  free(u->target); free(u->safe); free(u->password); free(u->file);
  if (u->params) {
    for (char **p = u->params; *p; p++) free(*p);
    free(u->params);
  }
  memset(u, 0, sizeof *u);
}

/* ---- output ------------------------------------------------------------- */

/* Masked text goes into a strbuf: a caller's buffer (fixed: truncates) or
 * a growing malloc'ed one. */

/* ---- the structure of a URL --------------------------------------------- */

static int scheme_char(int c) {
  return isalnum((unsigned char)c) || c == '+' || c == '.' || c == '-';
}

/* The offset of what follows "scheme://" (or "scheme:") in s[0..n), where
 * scheme is [A-Za-z][A-Za-z0-9+.-]*; 0 when s does not start with one. */
static size_t authority_start(const char *s, size_t n) {
  if (n == 0 || !isalpha((unsigned char)s[0])) return 0;
  size_t i = 1;
  while (i < n && scheme_char(s[i])) i++;
  if (i >= n || s[i] != ':') return 0;
  if (i + 2 < n && s[i + 1] == '/' && s[i + 2] == '/') return i + 3;
  return i + 1;
}

/* Whether a query parameter name (percent-encoded, n bytes) names a
 * password: its decoded text contains "password" in any case. */
static int password_key(const char *k, size_t n) {
  char d[64];
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    char c = k[i];
    if (c == '%' && i + 2 < n && isxdigit((unsigned char)k[i + 1]) && isxdigit((unsigned char)k[i + 2])) {
      char hex[3] = {k[i + 1], k[i + 2], '\0'};
      c = (char)strtol(hex, NULL, 16);
      i += 2;
    }
    if (m == sizeof d - 1) return 0;   /* no parameter with such a long name */
    d[m++] = (char)tolower((unsigned char)c);
  }
  d[m] = '\0';
  return strstr(d, "password") != NULL;
}

/* Whether s[i..n) starts a "name=" query parameter. */
static int param_start(const char *s, size_t i, size_t n) {
  size_t k = i;
  while (k < n && (isalnum((unsigned char)s[k]) || s[k] == '_' || s[k] == '%' || s[k] == '.' || s[k] == '-')) k++;
  return k > i && k < n && s[k] == '=';
}

/* The end of a query value starting at v: the next '&' that starts a
 * "name=" parameter, else n. */
static size_t value_end(const char *s, size_t v, size_t n) {
  for (size_t j = v; j < n; j++)
    if (s[j] == '&' && param_start(s, j + 1, n)) return j;
  return n;
}

/* The userinfo of s[0..n): *at = its last '@' after the scheme (NONE when
 * there is none), *colon = the first ':' before it (NONE: no password). */
static void userinfo(const char *s, size_t n, size_t *colon, size_t *at) {
  size_t a = authority_start(s, n);
  *at = *colon = NONE;
  for (size_t i = n; i > a; i--)
    if (s[i - 1] == '@') { *at = i - 1; break; }
  if (*at == NONE) return;
  const char *c = memchr(s + a, ':', *at - a);
  if (c) *colon = (size_t)(c - s);
}

static int plain_hosts(const char *s, size_t n);

/* For a URL without '@' (*at is NONE): when its authority does not read as
 * hosts with numeric ports, what follows its first ':' (outside brackets)
 * is taken for a password (postgresql://user:password/db, the "@host"
 * forgotten): *colon = that ':', *at = the authority's end. */
static void bare_userinfo(const char *s, size_t n, size_t *colon, size_t *at) {
  size_t a = authority_start(s, n);
  size_t end = a + strcspn(s + a, "/?#");
  if (end > n) end = n;
  if (plain_hosts(s + a, end - a)) return;
  int bracket = 0;
  for (size_t i = a; i < end; i++) {
    if (s[i] == '[') bracket = 1;
    else if (s[i] == ']') bracket = 0;
    else if (s[i] == ':' && !bracket) { *colon = i; *at = end; return; }
  }
}

/* The state of masking s: s[0..done) is written, its end masked when
 * hidden is set. */
typedef struct masking {
  strbuf *o;
  const char *s;
  size_t done;
  int hidden;
} masking;

/* Masks s[from..to): writes the text before it and "***", or extends the
 * mask just written when from is inside it. Masks come in order of from. */
static void hide(masking *m, size_t from, size_t to) {
  if (m->hidden && from <= m->done) {
    if (to > m->done) m->done = to;
    return;
  }
  if (from < m->done) from = m->done;
  strbuf_add(m->o, m->s + m->done, from - m->done);
  strbuf_add(m->o, "***", 3);
  m->done = to > from ? to : from;
  m->hidden = 1;
}

/* Appends the URL s[0..n) to o with its passwords masked: the userinfo's
 * password, and the value of every password query parameter, wherever it
 * is (also inside the userinfo: the masks are merged). */
static void mask_into(strbuf *o, const char *s, size_t n) {
  size_t colon, at;
  userinfo(s, n, &colon, &at);
  if (at == NONE) bare_userinfo(s, n, &colon, &at);
  masking m = {o, s, 0, 0};
  int user_pending = colon != NONE;
  size_t cached_from = NONE, cached_end = 0;   /* value_end(cached_from) */
  for (size_t i = 0; i < n;) {
    if (user_pending && i > colon) {
      hide(&m, colon + 1, at);
      user_pending = 0;
    }
    if (s[i] != '?' && s[i] != '&') { i++; continue; }
    size_t k = i + 1;
    while (k < n && s[k] != '&' && s[k] != '=' && s[k] != '?') k++;
    if (k < n && s[k] == '=' && password_key(s + i + 1, k - i - 1)) {
      size_t from = k + 1;
      /* a value never holds an "&name=", so one inside an earlier value
       * ends where it ends: each byte is looked at a bounded number of times */
      if (cached_from == NONE || from < cached_from || from > cached_end) {
        cached_from = from;
        cached_end = value_end(s, from, n);
      }
      if (user_pending && from > colon) {
        hide(&m, colon + 1, at);
        user_pending = 0;
      }
      hide(&m, from, cached_end);
    }
    i = k;
  }
  if (user_pending) hide(&m, colon + 1, at);
  if (m.done < n) strbuf_add(o, s + m.done, n - m.done);
}

char *db_mask_url(const char *url) {
  strbuf o = {0};
  strbuf_add(&o, "", 0);
  mask_into(&o, url, strlen(url));
  if (o.oom) { free(o.p); return NULL; }
  return o.p;
}

/* ---- masking free text ---------------------------------------------------- */

static int blank(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\0'; }

static int word_char(int c) { return scheme_char(c) || c == '_'; }

/* Whether the word w[0..n) ends with "password" (any case). */
static int ends_with_password(const char *w, size_t n) {
  static const char pw[] = "password";
  size_t m = sizeof pw - 1;
  if (n < m) return 0;
  for (size_t i = 0; i < m; i++)
    if (tolower((unsigned char)w[n - m + i]) != pw[i]) return 0;
  return 1;
}

/* Whether s[0..n) is a database scheme (postgresql, postgres, sqlite, with
 * or without "+driver"), any case. */
static int db_scheme(const char *s, size_t n) {
  static const char *const names[] = {"postgresql", "postgres", "sqlite"};
  const char *plus = memchr(s, '+', n);
  if (plus) n = (size_t)(plus - s);
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (strlen(names[i]) == n && strncasecmp(s, names[i], n) == 0) return 1;
  return 0;
}

char *db_mask_text(const char *text, char *out, size_t size) {
  strbuf o = {out, 0, size, 1, 0};
  out[0] = '\0';
  size_t n = strlen(text);
  size_t i = 0, done = 0;
  size_t line_end = 0, line_at = NONE;   /* the current line's last '@' */
  while (i < n) {
    if (text[i] == ':') {
      /* a URL: "://" (or ":" after a database scheme); it starts at its
       * scheme, or at its word when that has no scheme or a ':' before it
       * (postgresql:/u:p://x@h) */
      int slashes = i + 2 < n && text[i + 1] == '/' && text[i + 2] == '/';
      size_t b = i;
      while (b > done && scheme_char(text[b - 1])) b--;
      while (b < i && !isalpha((unsigned char)text[b])) b++;
      if (slashes || (b < i && db_scheme(text + b, i - b))) {
        size_t w = b;
        while (w > done && !blank(text[w - 1])) w--;
        if (b == i || memchr(text + w, ':', b - w)) b = w;
        size_t e = i + 1;
        int has_at = 0, has_colon = 0;
        for (; e < n && !blank(text[e]); e++) {
          if (text[e] == '@') has_at = 1;
          if (text[e] == ':') has_colon = 1;
        }
        if (!has_at && has_colon) {   /* a password with a blank in it? */
          if (e >= line_end) {
            const char *nl = memchr(text + e, '\n', n - e);
            line_end = nl ? (size_t)(nl - text) : n;
            line_at = NONE;
            for (size_t j = line_end; j > e; j--)
              if (text[j - 1] == '@') { line_at = j - 1; break; }
          }
          if (line_at != NONE && line_at >= e)
            for (e = line_at; e < n && !blank(text[e]); e++) {}
        }
        strbuf_add(&o, text + done, b - done);
        mask_into(&o, text + b, e - b);
        i = done = e;
        continue;
      }
    }
    if (!word_char(text[i]) || (i > 0 && word_char(text[i - 1]))) { i++; continue; }
    size_t k = i;
    while (k < n && word_char(text[k])) k++;
    size_t eq = k;
    while (eq < n && (text[eq] == ' ' || text[eq] == '\t')) eq++;
    if (eq < n && text[eq] == '=' && ends_with_password(text + i, k - i)) {
      /* key=value: quoted, or up to a blank or an '&' */
      size_t v = eq + 1;
      while (v < n && (text[v] == ' ' || text[v] == '\t')) v++;
      size_t e = v;
      if (v < n && (text[v] == '\'' || text[v] == '"')) {
        char q = text[v];
        for (e = v + 1; e < n && text[e] != q; e++)
          if (text[e] == '\\' && e + 1 < n) e++;
        if (e < n) e++;
      } else {
        while (e < n && !blank(text[e]) && text[e] != '&') e++;
      }
      if (memchr(text + v, ':', e - v))   /* a URL in it: the whole word */
        while (e < n && !blank(text[e])) e++;
      strbuf_add(&o, text + done, v - done);
      strbuf_add(&o, "***", 3);
      i = done = e;
      continue;
    }
    i = k;
  }
  strbuf_add(&o, text + done, n - done);
  return out;
}

void db_scrub(char *buf, size_t size, const char *secret) {
  size_t n = secret ? strlen(secret) : 0;
  if (n == 0) return;
  size_t len = strlen(buf);
  /* Knuth-Morris-Pratt: linear whatever the text and the secret (repeated
   * strstr calls are too under a sanitizer, which measures each rest) */
  size_t *fail = malloc(n * sizeof *fail);
  char *copy = dupn(buf, len);
  if (!fail || !copy) {   /* cannot rewrite it: withhold it */
    free(fail);
    free(copy);
    if (strstr(buf, secret)) snprintf(buf, size, "(message withheld: it held a password)");
    return;
  }
  fail[0] = 0;
  for (size_t i = 1, k = 0; i < n; i++) {
    while (k > 0 && secret[i] != secret[k]) k = fail[k - 1];
    if (secret[i] == secret[k]) k++;
    fail[i] = k;
  }
  strbuf o = {buf, 0, size, 1, 0};
  buf[0] = '\0';
  size_t done = 0;
  for (size_t i = 0, k = 0; i < len; i++) {
    while (k > 0 && copy[i] != secret[k]) k = fail[k - 1];
    if (copy[i] == secret[k]) k++;
    if (k == n) {   /* copy[i + 1 - n .. i] is the secret */
      strbuf_add(&o, copy + done, i + 1 - n - done);
      strbuf_add(&o, "***", 3);
      done = i + 1;
      k = 0;
    }
  }
  strbuf_add(&o, copy + done, len - done);
  free(fail);
  free(copy);
}

/* ---- SQLite ----------------------------------------------------------------- */

/* Whether the query parameter q[0..n) is SQLAlchemy's uri=true. */
static int is_uri_true(const char *q, size_t n) {
  return n == 8 && memcmp(q, "uri=true", 8) == 0;
}

/* The SQLite target of path (after "sqlite:///"): a file name, or for
 * file: names and ?uri=true a file: URI keeping the query minus uri=true. */
static int sqlite_target(const char *path, db_url *out) {
  size_t n = strcspn(path, "?");
  const char *query = path[n] == '?' ? path + n + 1 : NULL;
  out->uri = strncmp(path, "file:", 5) == 0;
  for (const char *q = query; q && *q;) {
    size_t m = strcspn(q, "&");
    if (is_uri_true(q, m)) out->uri = 1;
    q += m + (q[m] == '&');
  }
  const char *name = path, *name_end = path + n;
  if (strncmp(name, "file:", 5) == 0) name += 5;
  int memory = (size_t)(name_end - name) == 8 && memcmp(name, ":memory:", 8) == 0;
  if (out->uri && query && strstr(query, "mode=memory")) memory = 1;
  if (!memory) {
    out->file = dupn(name, (size_t)(name_end - name));
    if (!out->file) return -1;
  }
  if (!out->uri) {
    out->target = dupn(path, n);
    return out->target ? 0 : -1;
  }
  strbuf t = {0};
  if (strncmp(path, "file:", 5) != 0) strbuf_add(&t, "file:", 5);
  strbuf_add(&t, path, n);
  int first = 1;
  for (const char *q = query; q && *q;) {
    size_t m = strcspn(q, "&");
    if (!is_uri_true(q, m) && m > 0) {
      strbuf_add(&t, first ? "?" : "&", 1);
      strbuf_add(&t, q, m);
      first = 0;
    }
    q += m + (q[m] == '&');
  }
  if (t.oom || !t.p) { free(t.p); return -1; }
  out->target = t.p;
  return 0;
}

static int parse_sqlite(const char *url, const char *rest, db_url *out,
                        db_error *err) {
  const char *path;
  if (strncmp(rest, "///", 3) == 0) path = rest + 3;       /* relative, or /abs */
  else if (strcmp(rest, "//") == 0 || rest[0] == '\0') path = ":memory:";
  else {
    char *safe = db_mask_url(url);
    db_error_set(err, "08001", NULL,
                 "malformed SQLite URL '%s': use %s", safe ? safe : "?", DB_URL_FORMS);
    free(safe);
    return -1;
  }
  if (*path == '\0') path = ":memory:";
  out->kind = DB_SQLITE;
  out->safe = db_mask_url(url);
  if (!out->safe || sqlite_target(path, out) < 0) {
    db_url_free(out);
    db_error_set(err, "53200", NULL, "out of memory");
    return -1;
  }
  return 0;
}

/* ---- PostgreSQL ---------------------------------------------------------------- */

/* Whether s[0..n) reads as host[:port][,host[:port]]...: host characters
 * only, ports of 1 to 5 digits up to 65535 (a bracketed IPv6 address may
 * hold ':'). */
static int plain_hosts(const char *s, size_t n) {
  int bracket = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '[') bracket = 1;
    else if (s[i] == ']') bracket = 0;
    else if (s[i] == ':' && !bracket) {
      size_t j = i + 1;
      long port = 0;
      while (j < n && isdigit((unsigned char)s[j]) && j - i <= 5) port = port * 10 + (s[j++] - '0');
      if (port > 65535 || (j < n && s[j] != ',')) return 0;   /* not a port (empty: the default) */
      i = j - (j < n);
    } else if (!isalnum((unsigned char)s[i]) && !strchr(".-_%,:", s[i])) {
      return 0;
    }
  }
  return 1;
}

/* Whether libpq reads the userinfo of the URI u (after "postgresql://") as
 * dburl.h's rule masks it. libpq ends the userinfo at the FIRST '@' before
 * the first '/', the masker at the LAST '@' of the URL. They may differ
 * only when that last '@' lies in a "name=value" query parameter libpq
 * reads after plain hosts, and what follows it cannot be a host:
 * ?options=-c%20x@y&sslmode=require. Anything else is ambiguous (is
 * ?user=me@example.org a password ending in "user=me"?): 0. And -1 when the
 * hosts open an IPv6 '[' they do not close (libpq reads on to the next ']',
 * through the path and the query). */
static int libpq_agrees(const char *u) {
  size_t n = strlen(u);
  size_t a = authority_start(u, n);
  size_t colon, at;
  userinfo(u, n, &colon, &at);
  size_t slash = a + strcspn(u + a, "/");
  const char *first = memchr(u + a, '@', slash - a);
  size_t libpq_at = first ? (size_t)(first - u) : NONE;
  size_t h = libpq_at == NONE ? a : libpq_at + 1;   /* libpq's hosts: u[h..slash) */
  const char *open = memchr(u + h, '[', slash - h);
  if (open && !memchr(open, ']', (size_t)(u + slash - open)))
    return -1;   /* libpq would read the host on past the '/' */
  if (libpq_at == at) return 1;
  if (colon == NONE) return 1;   /* no password in either reading (libpq's userinfo is shorter) */
  if (slash == n) return 0;
  if (memchr(u + h, '@', slash - h)) return 0;
  const char *q = memchr(u + slash, '?', n - slash);
  if (!q || (size_t)(q - u) > at) return 0;   /* the '@' is in the database name */
  size_t p = at;
  while (p > (size_t)(q - u) && u[p] != '&' && u[p] != '=') p--;
  if (u[p] != '=') return 0;                  /* not inside a value */
  size_t e = at + 1 + strcspn(u + at + 1, "/?#");
  if (plain_hosts(u + at + 1, e - at - 1)) return 0;   /* could be user:password@host: ask */
  return plain_hosts(u + h, slash - h);
}

/* Copies libpq's parse error into why (size) up to its first '"' (the
 * quote of the input), trimmed. */
static void unquoted_reason(const char *perr, char *why, size_t size) {
  snprintf(why, size, "%s", perr ? perr : "out of memory");
  why[strcspn(why, "\"\n")] = '\0';
  size_t n = strlen(why);
  while (n > 0 && (why[n - 1] == ' ' || why[n - 1] == ':')) why[--n] = '\0';
}

/* The error for a URI libpq refused: its reason for the masked URI when
 * that fails too (it quotes only masked text), else the password is what
 * it refused. */
static void malformed(const char *url, const char *uri, const char *perr, db_error *err) {
  char *safe = db_mask_url(url), *safe_uri = db_mask_url(uri);
  char why[512], *perr2 = NULL;
  PQconninfoOption *opts = safe_uri ? PQconninfoParse(safe_uri, &perr2) : NULL;
  if (!opts && perr2) {
    char masked[512];
    snprintf(why, sizeof why, "%s", perr2);
    why[strcspn(why, "\n")] = '\0';
    db_mask_text(why, masked, sizeof masked);
    db_error_set(err, "08001", "fix DATABASE_URL in .env or the environment",
                 "malformed PostgreSQL URL '%s' (%s): use %s",
                 safe ? safe : "?", masked, DB_URL_FORMS);
  } else {
    unquoted_reason(perr, why, sizeof why);
    db_error_set(err, "08001", PERCENT_HINT,
                 "malformed PostgreSQL URL '%s': its password is not valid (%s)",
                 safe ? safe : "?", why);
  }
  PQconninfoFree(opts);
  PQfreemem(perr2);
  free(safe);
  free(safe_uri);
}

/* Copies libpq's options (password left out) into out->params and the
 * password into out->password. Returns 0, or -1 when out of memory. */
static int keep_options(const PQconninfoOption *opts, db_url *out) {
  size_t n = 0;
  for (const PQconninfoOption *o = opts; o->keyword; o++) if (o->val) n++;
  out->params = calloc(2 * n + 1, sizeof *out->params);
  if (!out->params) return -1;
  size_t k = 0;
  for (const PQconninfoOption *o = opts; o->keyword; o++) {
    if (!o->val) continue;
    if (strstr(o->keyword, "password")) {   /* also sslpassword: never kept */
      if (strcmp(o->keyword, "password") == 0 && *o->val && !(out->password = dupn(o->val, strlen(o->val)))) return -1;
      continue;
    }
    if (!(out->params[k++] = dupn(o->keyword, strlen(o->keyword)))) return -1;
    if (!(out->params[k++] = dupn(o->val, strlen(o->val)))) return -1;
  }
  return 0;
}

static int parse_postgres(const char *url, size_t scheme_len, db_url *out,
                          db_error *err) {
  /* libpq knows postgresql:// and postgres://; drop "+driver". */
  const char *rest = url + scheme_len;  /* points at "://" */
  size_t n = strlen("postgresql") + strlen(rest);
  char *uri = malloc(n + 1);
  if (!uri) { db_error_set(err, "53200", NULL, "out of memory"); return -1; }
  strcpy(uri, "postgresql");
  strcat(uri, rest);

  size_t colon, at;
  userinfo(uri, strlen(uri), &colon, &at);
  if (at == NONE) bare_userinfo(uri, strlen(uri), &colon, &at);
  if (at != NONE && uri[at] != '@') {   /* postgresql://user:password/db: no "@host" */
    char *safe = db_mask_url(url);
    db_error_set(err, "08001", "write it as postgresql://user:password@host:port/dbname",
                 "the PostgreSQL URL '%s' has no '@' between its user and its host "
                 "(or a port that is not a number)", safe ? safe : "?");
    free(safe);
    free(uri);
    return -1;
  }
  int agrees = libpq_agrees(uri);
  if (agrees < 0) {
    malformed(url, uri, "unterminated IPv6 address", err);
    free(uri);
    return -1;
  }
  if (!agrees) {
    char *safe = db_mask_url(url);
    db_error_set(err, "08001", PERCENT_HINT,
                 "the password in the PostgreSQL URL '%s' holds a character that must be "
                 "percent-encoded ('@', '/', '?', '#', '&', '%%' or a space)", safe ? safe : "?");
    free(safe);
    free(uri);
    return -1;
  }
  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(uri, &perr);
  if (!opts) {
    malformed(url, uri, perr, err);
    PQfreemem(perr);
    free(uri);
    return -1;
  }
  out->kind = DB_POSTGRESQL;
  out->target = uri;
  int rc = keep_options(opts, out);
  PQconninfoFree(opts);
  out->safe = db_mask_url(url);
  if (rc < 0 || !out->safe) {
    db_url_free(out);
    db_error_set(err, "53200", NULL, "out of memory");
    return -1;
  }
  return 0;
}

int db_url_parse(const char *url, db_url *out, db_error *err) {
  memset(out, 0, sizeof *out);
  if (!url || !*url) {
    db_error_set(err, "08001", "set DATABASE_URL in the environment or in .env",
                 "empty database URL: use %s", DB_URL_FORMS);
    return -1;
  }
  size_t a = authority_start(url, strlen(url));
  const char *sep = a >= 3 && strncmp(url + a - 3, "://", 3) == 0 ? url + a - 3 : NULL;
  size_t scheme_len = a ? (sep ? (size_t)(sep - url) : a - 1) : 0;
  char scheme[64];
  if (scheme_len >= sizeof scheme) scheme_len = 0;   /* no scheme is that long */
  memcpy(scheme, url, scheme_len);
  scheme[scheme_len] = '\0';
  char *plus = strchr(scheme, '+');
  if (plus) *plus = '\0';   /* SQLAlchemy's dialect+driver */

  if (strcmp(scheme, "sqlite") == 0)
    return parse_sqlite(url, url + scheme_len + 1, out, err);
  if (sep && (strcmp(scheme, "postgresql") == 0 || strcmp(scheme, "postgres") == 0))
    return parse_postgres(url, scheme_len, out, err);

  /* Say which scheme was wrong without echoing the rest (it may hold a
   * password). */
  db_error_set(err, "08001", "fix DATABASE_URL in .env or the environment",
               "unsupported database URL scheme '%s': use %s",
               scheme_len ? scheme : "(none)", DB_URL_FORMS);
  return -1;
}
