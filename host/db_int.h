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
  int busy;                          /* SQLite: an open cursor is stepping it (a
                                        PostgreSQL connection runs one statement
                                        at a time: never evicted while in use) */
  int described;                     /* PG: binary set from a result's columns */
} db_stmt;

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
  /* 1 when the session is inside a transaction block (or a failed one). */
  int (*in_transaction)(const db_conn *c);
  /* 1 when ending the cursor's statement before its last row would skip
   * what its end does (NULL: never). SQLite commits a statement that
   * writes when it is reset, but checks deferred constraints there without
   * a way to report them, and runs the WAL hook (the automatic checkpoint)
   * only when a step reaches SQLITE_DONE. */
  int (*must_complete)(const db_cursor *cur);
} db_driver;

struct db_conn {
  db_kind kind;
  const db_driver *drv;
  db_url url;
  void *native;                      /* sqlite3* or PGconn* */
  int depth;                         /* transaction depth (db_begin...) */
  int echo;
  int busy;                          /* PG: a streaming cursor owns the wire */
  int pinned;                        /* lent to C code (db_pin) */
  int busy_ms;                       /* SQLite: the busy timeout */
  int checkpointing;                 /* SQLite: a RESTART checkpoint, which waits for nothing */
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
  /* the asynchronous operation running (db.h), PostgreSQL only */
  int op;                            /* DB_OP_* */
  int op_tx;                         /* DB_OP_TX: which db_tx, to move depth */
  int op_failed;                     /* it failed: op_err says why */
  db_error op_err;
  void *op_res;                      /* its result (a PGresult) */
  int op_binary;                     /* ... in binary format */
  int op_stream;                     /* db_send's stream */
  db_stmt *op_stmt;                  /* the cached statement it runs, or NULL */
  void *op_params;                   /* parameters kept while it is prepared */
  char *op_echo;                     /* with echo: the SQL, for the echo line */
  int op_kind;                       /* DB_OP_EXEC, _TX, _RESET or _CONNECT */
  double op_t0;                      /* with echo: when it started */
  int committing;                    /* db_commit's top-level COMMIT is running */
  int seen_alive;                    /* db_lost just found it open: db_send skips
                                        looking again */
  int async;                         /* used by an event loop: nothing may block
                                        (no automatic ROLLBACK after an error) */
  char *dealloc;                     /* async: DEALLOCATEs of statements evicted from
                                        the cache, sent with the next db_send_reset */
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

/* db_conn.op */
enum { DB_OP_NONE, DB_OP_CONNECT, DB_OP_PREPARE, DB_OP_EXEC, DB_OP_TX, DB_OP_RESET, DB_OP_DONE,
       DB_OP_DRAIN   /* reading what a streaming cursor closed early left (db_pg_poll) */ };

/* PostgreSQL's asynchronous half (db_pg.c), behind db.h's calls; db.c
 * checks the connection's state first. Each send returns 0 with c->op
 * set, or -1 with err (nothing sent). */
int db_pg_connect_start(db_conn *c, db_error *err);
int db_pg_send(db_conn *c, db_stmt *s, const char *sql, int nparams,
               const db_value *params, int stream, db_error *err);
int db_pg_send_simple(db_conn *c, const char *sql, int op, db_error *err);
/* Advances c->op (never blocks): DB_READY once it is DB_OP_DONE (with
 * op_failed and op_err, or op_res), else the DB_WANT_* bits. */
int db_pg_poll(db_conn *c);
/* What db_pg_poll would wait for, without reading the socket (db_wants). */
int db_pg_wants(db_conn *c);
/* Opens cur on c->op_res, taking it over. */
void db_pg_adopt(db_cursor *cur, db_conn *c);
/* 1 when the session is inside a transaction block (or a failed one). */
int db_pg_in_transaction(const db_conn *c);
int db_pg_socket(const db_conn *c);
/* Frees a result of the last operation that was not adopted. */
void db_pg_drop(db_conn *c);
/* Ends a DB_OP_DRAIN at once, waiting for the server (the synchronous calls). */
void db_pg_drain_now(db_conn *c);

/* SQLite column conversions (flags[i]) */
enum { DB_COL_PLAIN = 0, DB_COL_BOOL = 1, DB_COL_TIMESTAMP = 2 };

extern const db_driver db_sqlite_driver;
extern const db_driver db_pg_driver;

int db_sqlite_connect(db_conn *c, const db_options *opt, db_error *err);
int db_pg_connect(db_conn *c, const db_options *opt, db_error *err);

/* The cached statement for sql (see db.c), or NULL with err. */
db_stmt *db_stmt_get(db_conn *c, const char *sql, size_t len, db_error *err);

/* err says the connection was lost inside a transaction, whose changes
 * are rolled back (08006). */
void db_lost_in_transaction(db_error *err);

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
