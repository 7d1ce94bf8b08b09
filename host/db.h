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
 * the statement sent on the new one, but only at transaction depth 0 (the
 * caller keeps the depth: set it before COMMIT returns to 0 only after).
 * A connection that breaks once the statement was sent fails it with
 * SQLSTATE 08007: it may or may not have been applied; the next statement
 * reconnects. Inside a transaction a lost connection fails with 08006 (its
 * changes are rolled back), except a COMMIT at depth 1 whose answer was
 * lost: 08007. */
void db_set_depth(db_conn *c, int depth);
int db_get_depth(const db_conn *c);

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

int db_cursor_ncols(const db_cursor *cur);
/* Column name i (0-based), length in *len. */
const char *db_cursor_colname(const db_cursor *cur, int i, size_t *len);
/* Value of column i of the current row, converted by the type mapping. */
void db_cursor_value(db_cursor *cur, int i, db_value *out);
/* Rows changed by an INSERT/UPDATE/DELETE, once the cursor is done. */
int64_t db_cursor_changes(const db_cursor *cur);
void db_cursor_close(db_cursor *cur);
int db_cursor_is_open(const db_cursor *cur);

/* ---- deferred statements (PostgreSQL) ---------------------------------- */

/* A server running many requests on one connection queues their reads
 * and runs them together, in one round trip: db_defer queues a statement,
 * db_run_deferred runs everything queued, db_cursor_take opens a cursor on
 * one statement's outcome.
 *
 * A plain read (db_read_statement) may wait on a PostgreSQL connection that
 * is idle: outside any transaction, with no cursor open (db_may_defer).
 * Queued statements go out in one pipeline, one round trip. When all of
 * them are plain reads they run in one READ ONLY transaction (one
 * snapshot); otherwise each is followed by its own Sync and runs in its own
 * implicit transaction. Either way each gets the outcome it would have had
 * alone: when anything goes wrong in a read-only batch, which then changed
 * nothing, every read runs again alone; an error in a per-statement batch
 * touches nothing but its own statement. Any other statement on the
 * connection (and db_pin) first runs what is queued: statements always run
 * in the order they were issued. A read of a read-only batch whose answer
 * is lost with the connection runs again alone on a new one (the READ ONLY
 * transaction changed nothing); any other statement sent and unanswered
 * fails with 08007, as db_cursor_open's would. */

/* 1 when sql is a plain read: it starts with SELECT, VALUES or TABLE (after
 * blanks and parentheses) and names nothing that creates a table (INTO) or
 * uses or changes session state (nextval, setval, lastval, currval,
 * set_config, setseed, set_limit, advisory locks, pg_temp, dblink), and
 * spells no name with U& escapes. Functions of the database's own that
 * change the session are out of its sight. */
int db_read_statement(const char *sql, size_t len);

/* db_read_statement(sql), from c's statement cache when sql is in it
 * (each text is scanned once per connection). */
int db_plain_read(const db_conn *c, const char *sql, size_t len);

/* 1 when a plain read may wait on c now (PostgreSQL, db_idle). */
int db_may_defer(const db_conn *c);

/* 1 when c is in no transaction, has no open cursor and is not lent to C
 * code: another user could run statements on it without noticing. */
int db_idle(const db_conn *c);


/* Queues sql with params. Both are borrowed: they must stay valid until the
 * statement has run (db_run_deferred, or db_cursor_take). Returns a ticket
 * >= 0, or -1 with err (out of memory). */
int db_defer(db_conn *c, const char *sql, size_t len, int nparams,
             const db_value *params, db_error *err);

/* Statements queued on c and not run yet. */
int db_deferred(const db_conn *c);

/* Runs every queued statement; each outcome waits for db_cursor_take. */
void db_run_deferred(db_conn *c);

/* Opens cur on the outcome of ticket (running the queue first if it has not
 * run yet); each ticket is taken exactly once. Returns 0 with the cursor
 * open as db_cursor_open leaves it, or -1 with the statement's error. */
int db_cursor_take(db_cursor *cur, db_conn *c, int ticket, db_error *err);

/* ---- helpers ---------------------------------------------------------- */

void db_error_set(db_error *err, const char *sqlstate, const char *hint,
                  const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif
