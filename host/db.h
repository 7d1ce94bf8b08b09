/*
 * db.h: the database driver interface, one API over SQLite and PostgreSQL.
 *
 * This is the C core's only door to a database. It knows nothing of Lua: the
 * Lua binding (lua_db.c), the copy engine and the C tests all call it.
 *
 * Conventions (one for the whole file):
 *   - functions returning int return 0 (or a count >= 0) on success and -1 on
 *     error; on error they fill the caller's db_error (never NULL) with a
 *     message, a five-character SQLSTATE and a hint saying what to do;
 *   - no message ever contains a password;
 *   - strings handed in are borrowed for the duration of the call; strings
 *     handed out (column names, text values) are owned by the cursor and stay
 *     valid until its next db_cursor_next() or db_cursor_close().
 *
 * Parameters are written $1..$n in SQL on both databases and always bound.
 * DB_TEXT parameters must have a NUL at p[n] (Lua strings do).
 */
#ifndef TODOHOST_DB_H
#define TODOHOST_DB_H

#include <stddef.h>
#include <stdint.h>

typedef struct db_conn db_conn;
typedef struct db_cursor db_cursor;

typedef enum db_kind { DB_SQLITE = 1, DB_POSTGRESQL = 2 } db_kind;

/* A value crossing the interface, in either direction. */
typedef enum db_type {
  DB_NULL = 0, DB_INT, DB_FLOAT, DB_BOOL, DB_TEXT, DB_BLOB,
  DB_TIMESTAMP  /* out only: ISO 8601 text in u.s ('T' separator) */
} db_type;

typedef struct db_value {
  db_type type;
  union {
    int64_t i;
    double f;
    int b;
    struct { const char *p; size_t n; } s;
  } u;
} db_value;

typedef struct db_error {
  char sqlstate[6];
  char message[1024];
  char hint[512];
} db_error;

/* Options for db_connect; a zeroed struct gives the defaults. */
typedef struct db_options {
  int readonly;      /* SQLite: open read-only, no WAL switch (the copy source) */
  int echo;          /* print each statement and its duration to stderr */
  int busy_timeout;  /* SQLite busy timeout in ms; 0 means 5000 */
} db_options;

/* ---- connections ------------------------------------------------------ */

/* Opens the database named by a URL (sqlite:///rel.db, sqlite:////abs.db,
 * sqlite:///:memory:, postgresql://, postgres://, postgresql+driver://).
 * On success *out owns a new connection: release it with db_close(). */
int db_connect(const char *url, const db_options *opt, db_conn **out,
               db_error *err);

/* Closes the connection, invalidates its cursors (they must still be passed
 * to db_cursor_close) and frees it. NULL is accepted. */
void db_close(db_conn *c);

db_kind db_conn_kind(const db_conn *c);
const char *db_kind_name(db_kind k);      /* "sqlite" or "postgresql" */

/* The URL with its password masked, for logs. Owned by the connection. */
const char *db_conn_safe_url(const db_conn *c);

/* Runs SQL that takes no parameters and returns no rows (BEGIN, DDL, several
 * statements separated by ';'). Not cached. */
int db_exec_simple(db_conn *c, const char *sql, db_error *err);

/* Nothing is done twice. A PostgreSQL connection found closed before a
 * statement is sent (also by looking at its socket) is re-established and
 * the statement sent on the new one, but only outside a transaction. A
 * connection that breaks once the statement was sent fails it with
 * SQLSTATE 08007: it may or may not have been applied; the next statement
 * reconnects. Inside a transaction a lost connection fails with 08006 (its
 * changes are rolled back), except a top-level COMMIT whose answer was
 * lost: 08007. (The asynchronous calls below never reconnect: a lost
 * connection fails the statement, and the pool replaces it.) */

/* ---- transactions ----------------------------------------------------- */

/* The core keeps each connection's transaction depth. db_begin opens a
 * transaction at depth 0 (SQLite: BEGIN IMMEDIATE, so the write lock is
 * taken at once) and a savepoint (th_sp_N) inside one; db_commit commits
 * it or releases the savepoint; db_rollback rolls it back (to the
 * savepoint). 0, or -1 with err. db_begin raises the depth only when it
 * succeeds; db_commit and db_rollback lower it either way (a top-level
 * COMMIT that fails on SQLite is rolled back). */
int db_begin(db_conn *c, db_error *err);
int db_commit(db_conn *c, db_error *err);
int db_rollback(db_conn *c, db_error *err);
int db_depth(const db_conn *c);

/* Rolls back whatever transaction is open on c, at any depth, and sets the
 * depth to 0: what a server does with a connection a request leaves in a
 * transaction. 0 (also when there was none, or c is busy), or -1 with err. */
int db_abandon_transaction(db_conn *c, db_error *err);

/* 1 when a streaming cursor is open on a PostgreSQL connection, which can
 * run nothing else until it ends. */
int db_conn_busy(const db_conn *c);

/* Marks the connection as lent to C code working on its native handle (the
 * copy engine): while pinned it runs no statement and refuses to close.
 * delta is +1 or -1. */
void db_pin(db_conn *c, int delta);
int db_pinned(const db_conn *c);

/* The native handles, for the copy engine: a sqlite3* or a PGconn*. */
void *db_native(db_conn *c);

/* ---- cursors ---------------------------------------------------------- */

/* Cursors live in caller-provided storage of db_cursor_size() bytes (a Lua
 * userdata, or scratch memory owned by the connection), so that nothing is
 * malloc'ed per statement. db_cursor_init() puts storage in the closed state;
 * db_cursor_close() is idempotent. */
size_t db_cursor_size(void);
void db_cursor_init(db_cursor *cur);

/* Prepares (through the per-connection statement cache) and executes sql
 * with params. With stream != 0 rows are fetched one at a time (PostgreSQL
 * single-row mode) so memory stays flat; otherwise PostgreSQL fetches the
 * whole result at once. Returns 0 and leaves the cursor open, or -1. */
int db_cursor_open(db_cursor *cur, db_conn *c, const char *sql, size_t len,
                   int nparams, const db_value *params, int stream,
                   db_error *err);

/* Advances to the next row: 1 on a row, 0 when done, -1 on error. */
int db_cursor_next(db_cursor *cur, db_error *err);
/* Runs the statement of an open cursor to its end, skipping its other rows,
 * when ending it early would leave its end undone (a SQLite statement that
 * writes: its commit's errors, its checkpoint); else does nothing. Values
 * read from the cursor before are no longer valid. 0, or -1 with err set. */
int db_cursor_complete(db_cursor *cur, db_error *err);

int db_cursor_ncols(const db_cursor *cur);
/* Column name i (0-based), length in *len. */
const char *db_cursor_colname(const db_cursor *cur, int i, size_t *len);
/* Value of column i of the current row, converted by the type mapping. */
void db_cursor_value(db_cursor *cur, int i, db_value *out);
/* Rows changed by an INSERT/UPDATE/DELETE, once the cursor is done. */
int64_t db_cursor_changes(const db_cursor *cur);
void db_cursor_close(db_cursor *cur);
int db_cursor_is_open(const db_cursor *cur);

/* ---- asynchronous use (PostgreSQL) ------------------------------------ */

/* A server runs many requests on one thread, so none of these calls waits
 * for the network. After starting an operation the caller watches
 * db_socket(c) for what db_poll asks (DB_WANT_READ, DB_WANT_WRITE, both
 * bits may be set) and calls db_poll again when the socket is ready (or
 * at any time: it never blocks); DB_READY means the operation has ended,
 * and its outcome is taken with the matching finish call. One operation
 * at a time per connection; while one runs, the synchronous calls above
 * refuse the connection ("connection is busy"). Nothing here reconnects
 * or sends anything twice: a connection found lost fails the operation
 * (08006 when nothing was sent, 08007 when the outcome is unknown).
 * db_poll on a connection with no operation running reads what the server
 * sent on its own (a notice, the FATAL message of a terminated session)
 * and returns DB_READY, or -1 once the connection is known to be lost. */
enum { DB_READY = 0, DB_WANT_READ = 1, DB_WANT_WRITE = 2 };

int db_socket(const db_conn *c);     /* -1 when none (SQLite, or lost) */
int db_poll(db_conn *c);
/* What to wait for, as db_poll says, but without reading the socket when
 * nothing can have come yet (just after sending): one system call less. */
int db_wants(db_conn *c);

/* Starts connecting to url (PostgreSQL only; 08001 for SQLite). Returns 0
 * with *out owning a connection that is connecting: poll it until
 * DB_READY, then db_connect_finish. -1 with err: a bad URL. */
int db_connect_start(const char *url, const db_options *opt, db_conn **out,
                     db_error *err);
/* 0 when the connection started by db_connect_start is up; -1 with err
 * (the caller then closes it). */
int db_connect_finish(db_conn *c, db_error *err);

/* Sends sql with params as db_cursor_open would run it (prepared from its
 * second use, results in binary where they decode), without waiting. With
 * stream != 0 the rows come one at a time (single-row mode): once the
 * statement is finished into a cursor, db_poll says DB_READY whenever
 * db_cursor_next would not wait. The parameters are copied. 0 when sent,
 * -1 with err when it was not (nothing ran). */
int db_send(db_conn *c, const char *sql, size_t len, int nparams,
            const db_value *params, int stream, db_error *err);

/* Sends the transaction statement of db_begin, db_commit or db_rollback
 * for the connection's depth, which changes as those would once it is
 * finished. 0 when sent, -1 with err. */
typedef enum db_tx { DB_TX_BEGIN, DB_TX_COMMIT, DB_TX_ROLLBACK } db_tx;
int db_send_tx(db_conn *c, db_tx op, db_error *err);

/* What a pool sends before lending a connection again: ROLLBACK when a
 * transaction is open (a failed handler never leaks one), and with full
 * != 0 the session reset too (see db_pool.h), and the DEALLOCATE of
 * prepared statements the cache dropped meanwhile (never sent at once: it
 * would wait). 1 when something was sent (poll it, then db_finish(NULL,
 * ...)), 0 when there was nothing to do, -1 with err. */
int db_send_reset(db_conn *c, int full, db_error *err);

/* Once db_poll said DB_READY: the outcome of the operation. For db_send,
 * cur is opened on its result (as db_cursor_open leaves it); for the
 * others cur is NULL. 0, or -1 with the statement's error. */
int db_finish(db_cursor *cur, db_conn *c, db_error *err);

/* Closes every cursor open on c (their storage stays with its owner, in
 * the closed state). */
void db_close_cursors(db_conn *c);

/* 1 while an operation started here has not been finished, or while a
 * connection used asynchronously reads what a streaming cursor closed
 * before its end left (poll it until DB_READY; the synchronous calls wait
 * for it instead). */
int db_pending(const db_conn *c);

/* 1 when the connection is known to be closed (also by looking at its
 * socket, without waiting). Only for a connection with nothing running. */
int db_lost(db_conn *c);

/* ---- helpers ---------------------------------------------------------- */

void db_error_set(db_error *err, const char *sqlstate, const char *hint,
                  const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif
