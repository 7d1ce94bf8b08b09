/*
 * dburl.h: database URLs, the forms SQLAlchemy users write, and keeping their
 * passwords out of every message.
 *
 *   sqlite:///relative/path.db    sqlite:////absolute/path.db    sqlite:///:memory:
 *   postgresql://user:pass@host:port/db   postgres://...   postgresql+psycopg2://...
 *
 * PostgreSQL URLs are handed to libpq, which parses them; this file only
 * strips SQLAlchemy's "+driver" suffix and finds the password to mask.
 */
#ifndef TODOHOST_DBURL_H
#define TODOHOST_DBURL_H

#include <stddef.h>
#include "db.h"

typedef struct db_url {
  db_kind kind;
  char *target;    /* SQLite: file path (":memory:" for memory); PG: libpq URI */
  char *safe;      /* the URL with the password replaced by "***" */
  char *password;  /* the password, or NULL; used only to scrub messages */
  int uri;         /* SQLite: target is a file: URI (SQLITE_OPEN_URI) */
} db_url;

/* Parses url into *out (all strings malloc'ed; release with db_url_free).
 * Returns 0, or -1 with err set: unknown scheme (listing the supported
 * forms), malformed URL (libpq's reason), or out of memory. */
int db_url_parse(const char *url, db_url *out, db_error *err);
void db_url_free(db_url *u);

/* Replaces every occurrence of secret in buf (NUL-terminated, capacity size)
 * by "***". A NULL or empty secret does nothing. */
void db_scrub(char *buf, size_t size, const char *secret);

/* The supported forms, for messages. */
extern const char DB_URL_FORMS[];

#endif
