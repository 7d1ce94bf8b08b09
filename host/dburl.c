/*
 * dburl.c: parsing database URLs into a driver kind and target, masking
 * passwords. See dburl.h for the forms.
 */
#include "dburl.h"

#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

const char DB_URL_FORMS[] =
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, "
    "postgresql://user:password@host:port/dbname (postgres:// and "
    "postgresql+psycopg2:// work too)";

static char *dupn(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) { memcpy(p, s, n); p[n] = '\0'; }
  return p;
}

void db_url_free(db_url *u) {
  free(u->target); free(u->safe); free(u->password);
  memset(u, 0, sizeof *u);
}

void db_scrub(char *buf, size_t size, const char *secret) {
  size_t n = secret ? strlen(secret) : 0;
  if (n == 0) return;
  char *p = buf;
  while ((p = strstr(p, secret)) != NULL) {
    size_t tail = strlen(p + n) + 1;
    if (n >= 3) {
      memcpy(p, "***", 3);
      memmove(p + 3, p + n, tail);
    } else {  /* growing the text: keep within size */
      size_t used = (size_t)(p - buf) + 3 + tail;
      if (used > size) break;
      memmove(p + 3, p + n, tail);
      memcpy(p, "***", 3);
    }
    p += 3;
  }
}

/* The URL with the password of its userinfo replaced by "***"; malloc'ed. */
static char *mask_url(const char *url, const char *password) {
  size_t n = strlen(url);
  char *out = malloc(n + 4);
  if (!out) return NULL;
  memcpy(out, url, n + 1);
  const char *sep = strstr(url, "://");
  if (sep) {
    const char *auth = sep + 3;
    const char *end = auth + strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *q = auth; q < end; q++) if (*q == '@') at = q;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon) {
      size_t head = (size_t)(colon + 1 - url);
      memcpy(out + head, "***", 3);
      memcpy(out + head + 3, at, strlen(at) + 1);
    }
  }
  db_scrub(out, n + 4, password);  /* also ?password=... */
  return out;
}

static int parse_sqlite(const char *url, const char *rest, db_url *out,
                        db_error *err) {
  const char *path;
  if (strncmp(rest, "///", 3) == 0) path = rest + 3;       /* relative, or /abs */
  else if (strcmp(rest, "//") == 0 || rest[0] == '\0') path = ":memory:";
  else {
    db_error_set(err, "08001", NULL,
                 "malformed SQLite URL '%s': use %s", url, DB_URL_FORMS);
    return -1;
  }
  if (*path == '\0') path = ":memory:";
  size_t n = strcspn(path, "?");
  out->kind = DB_SQLITE;
  if (strncmp(path, "file:", 5) == 0) out->uri = 1;
  if (path[n] == '?' && strstr(path + n, "uri=true")) out->uri = 1;
  if (out->uri) {
    /* file:NAME?mode=ro&uri=true as SQLAlchemy accepts: keep the query for
     * SQLite, minus SQLAlchemy's own uri=true */
    out->target = dupn(path, strlen(path));
    if (out->target) {
      char *u = strstr(out->target, "uri=true");
      if (u) {
        char *end = u + 8;
        if (*end == '&') memmove(u, end + 1, strlen(end + 1) + 1);
        else { if (u[-1] == '&' || u[-1] == '?') u[-1] = '\0'; else *u = '\0'; }
      }
      if (strncmp(out->target, "file:", 5) != 0) {
        char *t = malloc(strlen(out->target) + 6);
        if (t) { strcpy(t, "file:"); strcat(t, out->target); }
        free(out->target); out->target = t;
      }
    }
  } else {
    out->target = dupn(path, n);
  }
  out->safe = dupn(url, strlen(url));
  if (!out->target || !out->safe) {
    db_url_free(out);
    db_error_set(err, "53200", NULL, "out of memory");
    return -1;
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

  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(uri, &perr);
  if (!opts) {
    char why[512];
    snprintf(why, sizeof why, "%s", perr ? perr : "out of memory");
    PQfreemem(perr);
    why[strcspn(why, "\n")] = '\0';
    char *safe = mask_url(url, NULL);
    db_error_set(err, "08001", NULL,
                 "malformed PostgreSQL URL '%s' (%s): use %s",
                 safe ? safe : "?", why, DB_URL_FORMS);
    free(safe);
    db_scrub(err->message, sizeof err->message, NULL);
    free(uri);
    return -1;
  }
  for (PQconninfoOption *o = opts; o->keyword; o++)
    if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
      out->password = dupn(o->val, strlen(o->val));
  PQconninfoFree(opts);
  out->kind = DB_POSTGRESQL;
  out->target = uri;
  out->safe = mask_url(url, out->password);
  if (!out->safe) {
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
  const char *sep = strstr(url, "://");
  size_t scheme_len = sep ? (size_t)(sep - url) : strcspn(url, ":");
  char scheme[64];
  if (scheme_len >= sizeof scheme) scheme_len = sizeof scheme - 1;
  memcpy(scheme, url, scheme_len);
  scheme[scheme_len] = '\0';
  char *plus = strchr(scheme, '+');
  if (plus) *plus = '\0';   /* SQLAlchemy's dialect+driver */

  if (strcmp(scheme, "sqlite") == 0 && url[scheme_len] == ':')
    return parse_sqlite(url, url + scheme_len + 1, out, err);
  if (sep && (strcmp(scheme, "postgresql") == 0 || strcmp(scheme, "postgres") == 0))
    return parse_postgres(url, scheme_len, out, err);

  /* Say which scheme was wrong without echoing the rest (it may hold a
   * password). */
  db_error_set(err, "08001", "fix DATABASE_URL in .env or the environment",
               "unsupported database URL scheme '%s': use %s",
               sep ? scheme : "(none)", DB_URL_FORMS);
  return -1;
}
