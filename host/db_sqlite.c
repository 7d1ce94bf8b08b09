/*
 * db_sqlite.c: the SQLite driver behind db.h.
 *
 * $n parameters are SQLite named parameters ("$1" is a name, numbered by
 * first appearance), so binding maps each name back to its number. Columns
 * declared BOOLEAN come out as booleans, columns declared DATETIME or
 * TIMESTAMP as ISO 8601 text with a UTC offset (naive values are UTC).
 */
#define _GNU_SOURCE  /* strcasestr */
#include "clock.h"
#include "db_int.h"

#include <sqlite3.h>
#include <stdint.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static sqlite3 *db_of(const db_conn *c) { return c->native; }
static sqlite3_stmt *st_of(const db_cursor *cur) {
  return cur->own ? cur->own : cur->stmt->handle;
}

/* The nearest PostgreSQL SQLSTATE for a SQLite error. */
static const char *sqlite_state(int code, const char *msg) {
  switch (code) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: return "23505";
    case SQLITE_CONSTRAINT_NOTNULL: return "23502";
    case SQLITE_CONSTRAINT_FOREIGNKEY: return "23503";
    case SQLITE_CONSTRAINT_CHECK: return "23514";
  }
  switch (code & 0xff) {
    case SQLITE_CONSTRAINT: return "23000";
    case SQLITE_BUSY: case SQLITE_LOCKED: return "55P03";
    case SQLITE_READONLY: return "25006";
    case SQLITE_CANTOPEN: return "08001";
    case SQLITE_NOMEM: return "53200";
    case SQLITE_FULL: return "53100";
    case SQLITE_IOERR: return "58030";
    case SQLITE_INTERRUPT: return "57014";
    case SQLITE_TOOBIG: return "54000";
    case SQLITE_MISMATCH: return "42804";
    case SQLITE_RANGE: return "08P01";
    case SQLITE_CORRUPT: case SQLITE_NOTADB: return "XX001";
    case SQLITE_ERROR:
      if (strstr(msg, "no such table")) return "42P01";
      if (strstr(msg, "no such column")) return "42703";
      if (strstr(msg, "syntax error") || strstr(msg, "incomplete input")) return "42601";
      if (strstr(msg, "already exists")) return "42P07";
      if (strstr(msg, "no such index")) return "42704";
      return "42000";
  }
  return "HY000";
}

static int fail(db_conn *c, int code, db_error *err) {
  const char *msg = sqlite3_errmsg(db_of(c));
  const char *state = sqlite_state(code, msg);
  const char *hint = NULL;
  if ((code & 0xff) == SQLITE_BUSY) {
    db_error_set(err, state,
                 "let the other writer finish (another todohost, or a sqlite3 shell inside a "
                 "transaction), or stop it; then run this again",
                 "the SQLite database '%s' is locked by another connection or process "
                 "(waited %d ms for it to let go)", c->url.target, c->busy_ms);
    return -1;
  }
  if ((code & 0xff) == SQLITE_READONLY)
    hint = "the database is opened read-only, or its file is not writable";
  db_error_set(err, state, hint, "%s", msg);
  return -1;
}

/* ---- connecting ------------------------------------------------------- */

static int journal_is_wal(void *ud, int n, char **values, char **names) {
  (void)names;
  *(int *)ud = n > 0 && values[0] && strcmp(values[0], "wal") == 0;
  return 0;
}

/* The busy handler: SQLite's own sleeps in steps of up to 100 ms, far too
 * coarse for a server whose writers each hold the lock for well under a
 * millisecond. This one backs off from 20 us to 500 us, until the
 * connection's timeout (ud: the db_conn, its busy_ms) has passed, and not
 * at all during wal_hook's RESTART checkpoint. Returns 1 to retry. */
static int busy_wait(void *ud, int count) {
  static _Thread_local double started;
  const db_conn *c = ud;
  if (c->checkpointing) return 0;
  double now = th_clock_ms();
  if (count == 0) started = now;
  if (now - started >= (double)c->busy_ms) return 0;
  int us = count < 5 ? 20 << count : 500;
  struct timespec ts = {0, us * 1000L};
  nanosleep(&ts, NULL);
  return 1;
}

/* The log's automatic checkpoint, in place of SQLite's (same threshold).
 * SQLite's is passive: it copies what no reader still needs, and the log
 * starts over only when a checkpoint copied all of it while nobody was
 * reading it. Two connections taking turns at writing (two server
 * workers) each find the other in the middle of a transaction, so the
 * log never starts over and the -wal file grows without bound (hundreds
 * of MB a minute), slowing every reader. Past WAL_RESTART_PAGES, then,
 * when the passive checkpoint has copied the whole log, a RESTART
 * checkpoint (nothing left to copy: it holds the write lock only to look
 * at the readers) makes the next writer start the log over; it does not
 * wait: when another connection is reading from the log or writing, it
 * gives up at once and a later commit tries again. ud is the connection.
 * (PRAGMA wal_autocheckpoint puts SQLite's own back in its place.) */
enum { WAL_CHECKPOINT_PAGES = 1000, WAL_RESTART_PAGES = 4000 };

static int wal_hook(void *ud, sqlite3 *db, const char *name, int pages) {
  db_conn *c = ud;
  if (pages < WAL_CHECKPOINT_PAGES) return SQLITE_OK;
  int log = 0, copied = 0;
  int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
  if (rc == SQLITE_OK && pages >= WAL_RESTART_PAGES && copied == log) {
    c->checkpointing = 1;
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
    c->checkpointing = 0;
  }
  return SQLITE_OK;   /* a checkpoint that could not finish is no error of the commit */
}

/* Switches the file to WAL unless it is already. The switch needs the
 * database to itself, and SQLite does not call the busy handler for it, so
 * it is retried here for up to the busy timeout. */
static int use_wal(sqlite3 *db, const db_options *opt, char **msg) {
  int wal = 0, rc = sqlite3_exec(db, "PRAGMA journal_mode", journal_is_wal, &wal, msg);
  int waited = 0, limit = opt->busy_timeout > 0 ? opt->busy_timeout : 5000;
  while (rc == SQLITE_OK && !wal) {
    rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", journal_is_wal, &wal, msg);
    if ((rc & 0xff) != SQLITE_BUSY || waited >= limit) break;
    sqlite3_free(*msg);
    *msg = NULL;
    sqlite3_sleep(10);
    waited += 10;
    rc = SQLITE_OK;
  }
  return rc;
}

int db_sqlite_connect(db_conn *c, const db_options *opt, db_error *err) {
  const char *path = c->url.target;
  int flags = (opt->readonly ? SQLITE_OPEN_READONLY
                             : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
              SQLITE_OPEN_NOMUTEX | (c->url.uri ? SQLITE_OPEN_URI : 0);
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, flags, NULL);
  if (rc != SQLITE_OK) {
    if (opt->readonly)
      db_error_set(err, "08001", "check the path in the URL (relative paths start at the working directory)",
                   "cannot open SQLite database '%s' read-only: %s", path,
                   db ? sqlite3_errmsg(db) : "out of memory");
    else
      db_error_set(err, "08001", "check the path in DATABASE_URL: its directory must exist and be writable",
                   "cannot open SQLite database '%s': %s", path,
                   db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return -1;
  }
  c->native = db;
  c->busy_ms = opt->busy_timeout > 0 ? opt->busy_timeout : 5000;
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_handler(db, busy_wait, c);
  sqlite3_wal_hook(db, wal_hook, c);
  int memory = strcmp(path, ":memory:") == 0 || strstr(path, "mode=memory") != NULL;
  char *msg = NULL;
  rc = sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, &msg);
  if (rc == SQLITE_OK && !opt->readonly && !memory) rc = use_wal(db, opt, &msg);
  /* In WAL mode NORMAL never corrupts and keeps every commit across a
   * crash of the program; only a power loss can drop the last commits.
   * FULL would fsync on every commit, which caps writes at the disk's
   * flush rate. */
  if (rc == SQLITE_OK && !opt->readonly && !memory)
    rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    db_error_set(err, sqlite_state(rc, msg ? msg : ""),
                 (rc & 0xff) == SQLITE_BUSY
                     ? "another process holds the database locked; retry when it is done"
                     : "check that DATABASE_URL points at a SQLite database file",
                 "cannot use SQLite database '%s': %s", path,
                 msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    sqlite3_close(db);
    c->native = NULL;
    return -1;
  }
  return 0;
}

static void sq_disconnect(db_conn *c) {
  sqlite3_close_v2(db_of(c));
  c->native = NULL;
}

static int sq_exec_simple(db_conn *c, const char *sql, db_error *err) {
  char *msg = NULL;
  int rc = sqlite3_exec(db_of(c), sql, NULL, NULL, &msg);
  if (rc == SQLITE_OK) return 0;
  db_error_set(err, sqlite_state(sqlite3_extended_errcode(db_of(c)), msg ? msg : ""),
               NULL, "%s", msg ? msg : sqlite3_errstr(rc));
  sqlite3_free(msg);
  return -1;
}

/* ---- statements ------------------------------------------------------- */

static int prepare_raw(db_conn *c, const char *sql, size_t len, unsigned flags,
                       sqlite3_stmt **out, db_error *err) {
  const char *tail = NULL;
  int rc = sqlite3_prepare_v3(db_of(c), sql, (int)len, flags, out, &tail);
  if (rc != SQLITE_OK) return fail(c, rc, err);
  if (*out == NULL) {
    db_error_set(err, "42601", "pass one SQL statement", "empty SQL statement");
    return -1;
  }
  while (tail && *tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' ||
                           *tail == '\r' || *tail == ';'))
    tail++;
  if (tail && *tail) {
    sqlite3_finalize(*out);
    *out = NULL;
    db_error_set(err, "42601", "call exec once per statement",
                 "more than one SQL statement in one call (at: %.40s)", tail);
    return -1;
  }
  return 0;
}

static int sq_prepare(db_conn *c, db_stmt *s, db_error *err) {
  sqlite3_stmt *st = NULL;
  if (prepare_raw(c, s->sql, s->len, SQLITE_PREPARE_PERSISTENT, &st, err) < 0)
    return -1;
  s->handle = st;
  return 0;
}

static void sq_finalize(db_conn *c, db_stmt *s) {
  (void)c;
  sqlite3_finalize(s->handle);
  s->handle = NULL;
}

/* Which parameter of the caller feeds SQL parameter i ("$3" -> 3, "?5" ->
 * 5, "?" -> its position). */
static int param_number(sqlite3_stmt *st, int i) {
  const char *name = sqlite3_bind_parameter_name(st, i);
  if (!name) return i;
  if ((name[0] == '$' || name[0] == '?') && name[1] >= '1' && name[1] <= '9') {
    int n = 0;
    for (const char *p = name + 1; *p; p++) {
      if (*p < '0' || *p > '9' || n > 100000) return -1;
      n = n * 10 + (*p - '0');
    }
    return n;
  }
  return -1;
}

static int bind_all(db_cursor *cur, sqlite3_stmt *st, int nparams,
                    const db_value *params, db_error *err) {
  /* streaming cursors outlive the call: SQLite copies their values */
  sqlite3_destructor_type keep = cur->stream ? SQLITE_TRANSIENT : SQLITE_STATIC;
  int count = sqlite3_bind_parameter_count(st), highest = 0;
  for (int i = 1; i <= count; i++) {
    int k = param_number(st, i);
    if (k < 0) {
      db_error_set(err, "42601", "write parameters as $1, $2, ...",
                   "unsupported parameter '%s'", sqlite3_bind_parameter_name(st, i));
      return -1;
    }
    if (k > highest) highest = k;
    if (k > nparams) continue;
    const db_value *v = &params[k - 1];
    int rc;
    switch (v->type) {
      case DB_NULL: rc = sqlite3_bind_null(st, i); break;
      case DB_INT: rc = sqlite3_bind_int64(st, i, v->u.i); break;
      case DB_FLOAT: rc = sqlite3_bind_double(st, i, v->u.f); break;
      case DB_BOOL: rc = sqlite3_bind_int(st, i, v->u.b ? 1 : 0); break;
      case DB_BLOB: rc = sqlite3_bind_blob64(st, i, v->u.s.p, v->u.s.n, keep); break;
      default: rc = sqlite3_bind_text64(st, i, v->u.s.p, v->u.s.n, keep, SQLITE_UTF8); break;
    }
    if (rc != SQLITE_OK) return fail(cur->conn, rc, err);
  }
  if (highest != nparams) {
    db_error_set(err, "07001", "pass one argument for each of $1..$n",
                 "the statement takes %d parameter%s but %d %s given", highest,
                 highest == 1 ? "" : "s", nparams, nparams == 1 ? "was" : "were");
    return -1;
  }
  return 0;
}

/* Per-column conversions from the declared types. */
static int set_flags(db_cursor *cur, sqlite3_stmt *st, db_error *err) {
  int n = sqlite3_column_count(st);
  cur->ncols = n;
  if (n <= (int)sizeof cur->small_flags) cur->flags = cur->small_flags;
  else if (!(cur->flags = malloc((size_t)n))) {
    db_error_set(err, "53200", NULL, "out of memory");
    return -1;
  }
  for (int i = 0; i < n; i++) {
    const char *t = sqlite3_column_decltype(st, i);
    unsigned char f = DB_COL_PLAIN;
    if (t) {
      if (strcasestr(t, "BOOL")) f = DB_COL_BOOL;
      else if (strcasestr(t, "TIMESTAMP") || strcasestr(t, "DATETIME")) f = DB_COL_TIMESTAMP;
    }
    cur->flags[i] = f;
  }
  return 0;
}

static int sq_open(db_cursor *cur, int nparams, const db_value *params,
                   db_error *err) {
  db_conn *c = cur->conn;
  sqlite3_stmt *st;
  if (cur->stmt->busy) {  /* the cached one is in an open loop: use a fresh one */
    if (prepare_raw(c, cur->stmt->sql, cur->stmt->len, 0, &st, err) < 0) return -1;
    cur->own = st;
  } else {
    st = cur->stmt->handle;
    cur->stmt->busy = 1;
    cur->started = 1;   /* this cursor holds the cached statement */
  }
  if (bind_all(cur, st, nparams, params, err) < 0) return -1;
  if (set_flags(cur, st, err) < 0) return -1;
  cur->changes = sqlite3_total_changes64(db_of(c));  /* baseline, see sq_next */
  return 0;
}

static int sq_next(db_cursor *cur, db_error *err) {
  sqlite3_stmt *st = st_of(cur);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) return 1;
  if (rc == SQLITE_DONE) {
    sqlite3 *db = db_of(cur->conn);
    int64_t before = cur->changes;
    cur->changes = (!sqlite3_stmt_readonly(st) && sqlite3_total_changes64(db) != before)
                       ? sqlite3_changes64(db) : 0;
    return 0;
  }
  cur->changes = 0;
  fail(cur->conn, sqlite3_extended_errcode(db_of(cur->conn)), err);
  sqlite3_reset(st);
  return -1;
}

static const char *sq_colname(const db_cursor *cur, int i, size_t *len) {
  const char *name = sqlite3_column_name(st_of(cur), i);
  if (!name) name = "?";
  *len = strlen(name);
  return name;
}

static void sq_value(db_cursor *cur, int i, db_value *out) {
  sqlite3_stmt *st = st_of(cur);
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: {
      int64_t v = sqlite3_column_int64(st, i);
      if (cur->flags[i] == DB_COL_BOOL && (v == 0 || v == 1)) {
        out->type = DB_BOOL; out->u.b = (int)v;
      } else {
        out->type = DB_INT; out->u.i = v;
      }
      return;
    }
    case SQLITE_FLOAT:
      out->type = DB_FLOAT; out->u.f = sqlite3_column_double(st, i);
      return;
    case SQLITE_NULL:
      out->type = DB_NULL;
      return;
    case SQLITE_BLOB:
      out->type = DB_BLOB;
      out->u.s.p = sqlite3_column_blob(st, i);
      out->u.s.n = (size_t)sqlite3_column_bytes(st, i);
      if (!out->u.s.p) out->u.s.p = "";
      return;
    default: {
      const char *p = (const char *)sqlite3_column_text(st, i);
      size_t n = (size_t)sqlite3_column_bytes(st, i);
      if (cur->flags[i] == DB_COL_TIMESTAMP) {
        int m = db_iso_timestamp(p, n, 1, cur->tsbuf, sizeof cur->tsbuf);
        if (m >= 0) { p = cur->tsbuf; n = (size_t)m; }
      }
      out->type = DB_TEXT;
      out->u.s.p = p ? p : "";
      out->u.s.n = n;
    }
  }
}

static void sq_close(db_cursor *cur) {
  if (cur->own) {
    sqlite3_finalize(cur->own);
    cur->own = NULL;
  } else if (cur->started && cur->stmt) {
    sqlite3_reset(cur->stmt->handle);
    cur->stmt->busy = 0;
  }
}

static int sq_in_transaction(const db_conn *c) { return sqlite3_get_autocommit(c->native) == 0; }

/* A writer (INSERT ... RETURNING read by first()) has done its changes at
 * its first step; the rest of its steps return rows already computed. */
static int sq_must_complete(const db_cursor *cur) {
  return !sqlite3_stmt_readonly(st_of((db_cursor *)cur));
}

const db_driver db_sqlite_driver = {
  sq_prepare, sq_finalize, sq_open, sq_next, sq_colname, sq_value, sq_close,
  sq_exec_simple, sq_disconnect, NULL, NULL,
  sq_in_transaction, sq_must_complete,
};
