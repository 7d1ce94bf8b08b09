/*
 * db_int.h: what the two drivers share with db.c, and nobody else sees:
 * the connection and cursor layouts, the statement cache, the driver table.
 */
#ifndef TODOHOST_DB_INT_H
#define TODOHOST_DB_INT_H

#include <stdio.h>
#include "db.h"
#include "dburl.h"

/* A prepared statement in a connection's cache, keyed by its SQL text. */
typedef struct db_stmt {
  struct db_stmt *hnext;             /* hash chain */
  struct db_stmt *prev, *next;       /* LRU list, most recent first */
  unsigned hash;
  size_t len;
  char *sql;                         /* owned copy, NUL-terminated */
  void *handle;                      /* SQLite: sqlite3_stmt* */
  char name[20];                     /* PostgreSQL: server-side name */
  int binary;                        /* PostgreSQL: results come in binary format */
  int prepared;                      /* PostgreSQL: exists on the server */
  int uses;                          /* PostgreSQL: executions so far */
  int busy;                          /* SQLite: an open cursor is stepping it;
                                        PostgreSQL: a batch is using it */
  int plain_read;                    /* db_read_statement(sql), computed once */
} db_stmt;

/* A statement queued by db_defer, then its outcome until db_cursor_take. */
typedef struct db_queued {
  const char *sql;                   /* borrowed (see db_defer) */
  size_t len;
  int nparams;
  const db_value *params;            /* borrowed */
  int state;                         /* DB_DEFER_QUEUED, _DONE, _FAILED or _TAKEN */
  void *res;                         /* PG: the PGresult when done */
  int binary;                        /* PG: res is in binary format */
  db_error *err;                     /* when failed (malloc'ed) */
} db_queued;

enum { DB_DEFER_QUEUED, DB_DEFER_DONE, DB_DEFER_FAILED, DB_DEFER_TAKEN };

#define DB_CACHE_BUCKETS 256
#define DB_CACHE_MAX 200

typedef struct db_driver {
  /* Prepares s->sql into s (handle or name). 0 or -1. */
  int (*prepare)(db_conn *c, db_stmt *s, db_error *err);
  /* Releases what prepare made; must not fail. */
  void (*finalize)(db_conn *c, db_stmt *s);
  /* Binds and executes; the cursor is already linked to c and s. */
  int (*open)(db_cursor *cur, int nparams, const db_value *params, db_error *err);
  int (*next)(db_cursor *cur, db_error *err);
  const char *(*colname)(const db_cursor *cur, int i, size_t *len);
  void (*value)(db_cursor *cur, int i, db_value *out);
  void (*close)(db_cursor *cur);
  int (*exec_simple)(db_conn *c, const char *sql, db_error *err);
  void (*disconnect)(db_conn *c);
  /* 1 when the connection to the server is gone (NULL for SQLite). */
  int (*lost)(db_conn *c);
  /* Re-establishes a lost connection; 0, or -1 with err set. */
  int (*reset)(db_conn *c, db_error *err);
  /* Deferred statements (NULL for SQLite). idle: 1 when the session is in
   * no transaction. run_batch: runs q[0..n) (n >= 2) in one round trip,
   * each statement on its own as if it ran alone; leaves each one DONE
   * (res, binary set), FAILED (err set), or still QUEUED when it cannot
   * tell (the connection broke): the caller then runs those alone. adopt:
   * opens cur (linked to its connection already) on such a result, taking
   * it over. drop: frees a result never adopted. */
  int (*idle)(const db_conn *c);
  void (*run_batch)(db_conn *c, db_queued *q, int n);
  void (*adopt)(db_cursor *cur, void *res, int binary);
  void (*drop)(void *res);
} db_driver;

struct db_conn {
  db_kind kind;
  const db_driver *drv;
  db_url url;
  void *native;                      /* sqlite3* or PGconn* */
  int depth;                         /* transaction depth (lua_db.c) */
  int echo;
  int busy;                          /* PG: a streaming cursor owns the wire */
  int pinned;                        /* lent to C code (db_pin) */
  int busy_ms;                       /* SQLite: the busy timeout */
  int ended;                         /* PG: the server said, while idle, that it
                                        ends the session (a FATAL message) */
  int tx_open;                       /* PG: the session was inside a transaction
                                        block when last seen alive (BEGIN sent
                                        with db_exec_simple counts, not only
                                        depth): losing it lost that transaction */
  unsigned stmt_seq;                 /* PG: statement names */
  db_stmt *buckets[DB_CACHE_BUCKETS];
  db_stmt *lru_head, *lru_tail;
  int ncached;
  db_cursor *cursors;                /* open cursors, invalidated on close */
  db_queued *dq;                     /* deferred statements: tickets index it */
  int ndq, dq_cap;                   /* entries used, allocated */
  int dq_next;                       /* entries from here on are queued */
  int dq_live;                       /* entries not taken yet */
};

struct db_cursor {
  db_conn *conn;                     /* NULL when closed */
  db_cursor *prev, *next;            /* in conn->cursors */
  db_stmt *stmt;                     /* cached statement, or NULL */
  const char *adhoc_sql;             /* PG: SQL run unprepared (during open only) */
  void *own;                         /* SQLite: an uncached statement */
  void *res;                         /* PG: the current PGresult */
  int row, nrows, ncols;
  int stream, done, started;
  int64_t changes;
  unsigned char *flags;              /* SQLite: per-column conversions */
  unsigned char small_flags[16];
  char tsbuf[64];                    /* a converted timestamp */
  unsigned char *bytea;              /* PG: the last decoded bytea value */
  int binary;                        /* PG: the result is in binary format */
};

/* SQLite column conversions (flags[i]) */
enum { DB_COL_PLAIN = 0, DB_COL_BOOL = 1, DB_COL_TIMESTAMP = 2 };

extern const db_driver db_sqlite_driver;
extern const db_driver db_pg_driver;

int db_sqlite_connect(db_conn *c, const db_options *opt, db_error *err);
int db_pg_connect(db_conn *c, const db_options *opt, db_error *err);

/* The cached statement for sql (see db.c), or NULL with err. */
db_stmt *db_stmt_get(db_conn *c, const char *sql, size_t len, db_error *err);

/* Drops every cached statement (PG after a reconnect: they died with the
 * session). finalize is called unless lost is set. */
void db_cache_clear(db_conn *c, int lost);

/* Normalizes a timestamp text into out (ISO 8601, 'T', "+HH:MM" offset;
 * naive_utc appends +00:00 when there is none). Returns the length, or -1
 * when text does not look like a timestamp (then use it unchanged). */
int db_iso_timestamp(const char *text, size_t len, int naive_utc,
                     char *out, size_t size);

/* Formats PostgreSQL's binary date (days since 2000-01-01) or timestamp
 * (microseconds since 2000-01-01 00:00 UTC) as the text path would after
 * db_iso_timestamp: 'T', a six-digit fraction only when there is one,
 * "+00:00" for timestamptz (tz != 0), " BC" before year 1, "infinity".
 * Returns the length (snprintf's). */
int db_format_pg_date(int64_t days, char *out, size_t size);
int db_format_pg_timestamp(int64_t us, int tz, char *out, size_t size);

/* The shortest text that reads back as exactly f (NaN, Infinity too). */
void db_format_double(double f, char *buf, size_t size);

/* Echo support: the monotonic time in ms, and the echo line. */
void db_echo(db_conn *c, const char *sql, int nparams, const db_value *params,
             double ms);

#endif
