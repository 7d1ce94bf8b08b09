/*
 * dburl.h: database URLs, the forms SQLAlchemy users write, and keeping their
 * passwords out of every message. The one URL parser and the one password
 * masker of todohost: the drivers, the HTTP server's log and every script
 * (through todohost.db: db.parse_url, db.mask_url, db.mask_text) use these.
 *
 *   sqlite:///relative/path.db    sqlite:////absolute/path.db    sqlite:///:memory:
 *   postgresql://user:pass@host:port/db   postgres://...   postgresql+psycopg2://...
 *
 * PostgreSQL URLs are handed to libpq, which parses them; this file strips
 * SQLAlchemy's "+driver" suffix, finds the password to mask, and refuses a
 * URL that libpq would read differently from the way it is masked.
 *
 * Masking is structural: it reads the URL text, never libpq's result, so a
 * URL libpq cannot parse is masked as well as one it can. In scheme://REST
 * the userinfo is REST up to its LAST '@' (an unencoded '@', '/', '?', '#'
 * or ' ' in a password stays inside it); its text after the first ':' is the
 * password. Query parameters whose (percent-decoded) name contains
 * "password" are masked up to the next "&name=" (an unencoded '&' not
 * starting a parameter stays in the value). When in doubt, more is masked:
 * a URL with an '@' after its host, such as ?user=me@example.org, shows
 * "***" from the first ':' up to that '@'.
 */
#ifndef TODOHOST_DBURL_H
#define TODOHOST_DBURL_H

#include <stddef.h>
#include "db.h"
#include "mask.h"   /* db_mask_url, db_mask_text, db_scrub */

typedef struct db_url {
  db_kind kind;
  char *target;    /* SQLite: file path (":memory:" for memory); PG: libpq URI */
  char *safe;      /* the URL with the password replaced by "***" */
  char *password;  /* PG: the password libpq reads, or NULL; to scrub messages */
  char *file;      /* SQLite: the file name (no "file:", no query), NULL in memory */
  char **params;   /* PG: libpq's reading, password left out: key, value, ...,
                      NULL (every option the URL sets) */
  int uri;         /* SQLite: target is a file: URI (SQLITE_OPEN_URI) */
} db_url;

/* Parses url into *out (all strings malloc'ed; release with db_url_free).
 * Returns 0, or -1 with err set: unknown scheme (listing the supported
 * forms), malformed URL (the reason, never quoting the password), a URL
 * whose password needs percent-encoding, or out of memory. */
int db_url_parse(const char *url, db_url *out, db_error *err);
void db_url_free(db_url *u);

/* The supported forms, for messages. */
extern const char DB_URL_FORMS[];

#endif
