/*
 * db.c: the driver-independent half of db.h: connecting by URL, the
 * per-connection prepared-statement cache (LRU), cursor bookkeeping,
 * transactions, the checks around asynchronous statements, the DEBUG echo,
 * and value helpers shared by both drivers.
 */
#include "db_int.h"

#include "clock.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void db_error_set(db_error *err, const char *sqlstate, const char *hint,
                  const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  snprintf(err->sqlstate, sizeof err->sqlstate, "%s", sqlstate ? sqlstate : "HY000");
  snprintf(err->hint, sizeof err->hint, "%s", hint ? hint : "");
}

const char *db_kind_name(db_kind k) {
  return k == DB_POSTGRESQL ? "postgresql" : "sqlite";
}

db_kind db_conn_kind(const db_conn *c) { return c->kind; }
const char *db_conn_safe_url(const db_conn *c) { return c->url.safe; }
int db_depth(const db_conn *c) { return c->depth; }
int db_conn_busy(const db_conn *c) { return c->busy; }
void *db_native(db_conn *c) { return c->native; }
void db_pin(db_conn *c, int delta) { c->pinned += delta; }
int db_pinned(const db_conn *c) { return c->pinned; }

/* A synchronous call waits for the rest of a rows() loop closed early on a
 * connection an event loop used (db_pg.c, drain). */
static void settle(db_conn *c) {
  if (c->op == DB_OP_DRAIN) db_pg_drain_now(c);
}

/* 0 when the connection may run a statement, else -1 with err set. */
static int check_idle(const db_conn *c, db_error *err) {
  if (c->pinned) {
    db_error_set(err, "55000", "wait for the copy to return",
                 "connection is in use by a running copy");
    return -1;
  }
  if (c->busy) {
    db_error_set(err, "55000", "finish the rows() loop first, or read the rows with conn:query()",
                 "connection is busy: a rows() loop is still reading from it");
    return -1;
  }
  if (c->op != DB_OP_NONE) {
    db_error_set(err, "55000", "wait for the statement running on it to end",
                 "connection is busy: a statement is running on it");
    return -1;
  }
  return 0;
}

/* ---- connections ------------------------------------------------------ */

static int recover(db_conn *c, const char *sql, size_t len, db_error *err);
static int ensure_connected(db_conn *c, db_error *err);
static int keyword_at(const char *s, size_t len, const char *kw);
static size_t skip_space(const char *s, size_t i, size_t len);

/* Connects (async: starts connecting, PostgreSQL only). */
static int connect_url(const char *url, const db_options *opt, int async, db_conn **out,
                       db_error *err) {
  static const db_options defaults;
  if (!opt) opt = &defaults;
  *out = NULL;
  db_conn *c = calloc(1, sizeof *c);
  if (!c) { db_error_set(err, "53200", NULL, "out of memory"); return -1; }
  if (db_url_parse(url, &c->url, err) < 0) { free(c); return -1; }
  c->kind = c->url.kind;
  c->echo = opt->echo;
  c->async = async;
  int rc;
  if (c->kind == DB_SQLITE) {
    c->drv = &db_sqlite_driver;
    rc = async ? (db_error_set(err, "08001", "use a postgresql:// URL",
                               "asynchronous connections need PostgreSQL"), -1)
               : db_sqlite_connect(c, opt, err);
  } else {
    c->drv = &db_pg_driver;
    rc = async ? db_pg_connect_start(c, err) : db_pg_connect(c, opt, err);
  }
  if (rc < 0) {
    db_scrub(err->message, sizeof err->message, c->url.password);
    db_url_free(&c->url);
    free(c);
    return -1;
  }
  if (c->echo && !async) fprintf(stderr, "[todohost.db] connected to %s\n", c->url.safe);
  *out = c;
  return 0;
}

int db_connect(const char *url, const db_options *opt, db_conn **out, db_error *err) {
  return connect_url(url, opt, 0, out, err);
}

int db_connect_start(const char *url, const db_options *opt, db_conn **out, db_error *err) {
  return connect_url(url, opt, 1, out, err);
}

int db_connect_finish(db_conn *c, db_error *err) {
  if (c->op != DB_OP_DONE || c->op_kind != DB_OP_CONNECT) {
    db_error_set(err, "HY000", NULL, "the connection is not connecting");
    return -1;
  }
  c->op = DB_OP_NONE;
  if (c->op_failed) {
    *err = c->op_err;
    db_scrub(err->message, sizeof err->message, c->url.password);
    return -1;
  }
  if (c->echo) fprintf(stderr, "[todohost.db] connected to %s\n", c->url.safe);
  return 0;
}

void db_close(db_conn *c) {
  if (!c) return;
  while (c->cursors) db_cursor_close(c->cursors);
  free(c->op_echo);
  free(c->dealloc);
  db_cache_clear(c, c->kind == DB_POSTGRESQL);  /* the server forgets them itself */
  c->drv->disconnect(c);
  db_url_free(&c->url);
  free(c);
}

int db_exec_simple(db_conn *c, const char *sql, db_error *err) {
  settle(c);
  if (check_idle(c, err) < 0) return -1;
  double t0 = c->echo ? th_clock_ms() : 0;
  int rc = ensure_connected(c, err);
  if (rc == 0) {   /* sent: recover says whether it may go once more */
    rc = c->drv->exec_simple(c, sql, err);
    if (rc < 0 && recover(c, sql, strlen(sql), err)) rc = c->drv->exec_simple(c, sql, err);
  }
  if (c->echo) db_echo(c, sql, 0, NULL, rc < 0 ? -1 : th_clock_ms() - t0);
  if (rc < 0) db_scrub(err->message, sizeof err->message, c->url.password);
  return rc;
}

/* ---- the statement cache ---------------------------------------------- */

static unsigned hash_sql(const char *s, size_t n) {
  unsigned h = 2166136261u;            /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

static void lru_unlink(db_conn *c, db_stmt *s) {
  if (s->prev) s->prev->next = s->next; else c->lru_head = s->next;
  if (s->next) s->next->prev = s->prev; else c->lru_tail = s->prev;
  s->prev = s->next = NULL;
}

static void lru_push(db_conn *c, db_stmt *s) {
  s->next = c->lru_head;
  s->prev = NULL;
  if (c->lru_head) c->lru_head->prev = s; else c->lru_tail = s;
  c->lru_head = s;
}

static void cache_remove(db_conn *c, db_stmt *s, int lost) {
  db_stmt **pp = &c->buckets[s->hash % DB_CACHE_BUCKETS];
  while (*pp != s) pp = &(*pp)->hnext;
  *pp = s->hnext;
  lru_unlink(c, s);
  if (!lost) c->drv->finalize(c, s);
  c->ncached--;
  free(s->sql);
  free(s);
}

void db_cache_clear(db_conn *c, int lost) {
  for (db_cursor *cur = c->cursors; cur; cur = cur->next) cur->stmt = NULL;
  while (c->lru_head) cache_remove(c, c->lru_head, lost);
}

/* The cached statement for sql, prepared on first use. The least recently
 * used idle statement is dropped when the cache is full. NULL on error. */
db_stmt *db_stmt_get(db_conn *c, const char *sql, size_t len, db_error *err) {
  unsigned h = hash_sql(sql, len);
  for (db_stmt *s = c->buckets[h % DB_CACHE_BUCKETS]; s; s = s->hnext)
    if (s->hash == h && s->len == len && memcmp(s->sql, sql, len) == 0) {
      if (c->lru_head != s) { lru_unlink(c, s); lru_push(c, s); }
      return s;
    }
  db_stmt *s = calloc(1, sizeof *s);
  char *copy = malloc(len + 1);
  if (!s || !copy) {
    free(s); free(copy);
    db_error_set(err, "53200", NULL, "out of memory");
    return NULL;
  }
  memcpy(copy, sql, len);
  copy[len] = '\0';
  s->sql = copy;
  s->len = len;
  s->hash = h;
  if (c->drv->prepare(c, s, err) < 0) {
    free(copy); free(s);
    return NULL;
  }
  s->hnext = c->buckets[h % DB_CACHE_BUCKETS];
  c->buckets[h % DB_CACHE_BUCKETS] = s;
  lru_push(c, s);
  if (++c->ncached > DB_CACHE_MAX) {
    for (db_stmt *old = c->lru_tail; old && old != s; old = old->prev)
      if (!old->busy) { cache_remove(c, old, 0); break; }
  }
  return s;
}

/* ---- cursors ---------------------------------------------------------- */

size_t db_cursor_size(void) { return sizeof(db_cursor); }

void db_cursor_init(db_cursor *cur) { memset(cur, 0, sizeof *cur); }

int db_cursor_is_open(const db_cursor *cur) { return cur->conn != NULL; }

/* Nothing is done twice. A statement goes again to a new connection only
 * when it certainly never reached the server: the old connection was found
 * closed before it was sent (ensure_connected), or broke while the
 * statement was being prepared, which runs nothing (the driver's 08006).
 * Once a statement was handed to the driver for sending, a broken
 * connection leaves its outcome unknown (08007): the caller is told so and
 * decides; the next statement reconnects. Inside a transaction a lost
 * connection is never replaced: the server rolled the transaction back,
 * which is what err says, except for the top level COMMIT whose answer was
 * lost (it may have committed: 08007 stays). */

void db_lost_in_transaction(db_error *err) {
  db_error_set(err, "08006", "run the transaction again; is PostgreSQL running? try `make db-start`",
               "the connection to PostgreSQL was lost inside a transaction: "
               "its changes are rolled back");
}

/* Before sending: a connection found closed is re-established, unless it
 * was inside a transaction block (our depth, or a BEGIN sent as a plain
 * statement): that block is lost, which err says (once; the next statement
 * reconnects). 0 when the statement may be sent, else -1 with err. */
static int ensure_connected(db_conn *c, db_error *err) {
  if (!c->drv->lost || !c->drv->lost(c)) return 0;
  if (c->depth > 0 || c->tx_open) {
    c->tx_open = 0;   /* said once: at depth 0 the next statement reconnects */
    db_lost_in_transaction(err);
    return -1;
  }
  if (c->echo) fprintf(stderr, "[todohost.db] connection found closed: reconnecting\n");
  return c->drv->reset(c, err);
}

/* 1 when sql is COMMIT (or its synonym END), alone. */
static int is_commit(const char *sql, size_t len) {
  while (len && (isspace((unsigned char)sql[len - 1]) || sql[len - 1] == ';')) len--;
  size_t i = skip_space(sql, 0, len);
  return keyword_at(sql + i, len - i, "commit") || keyword_at(sql + i, len - i, "end");
}

/* After sql failed with err: 1 when the connection was lost before sql was
 * sent and is re-established (the caller sends sql once more), else 0 with
 * err saying what happened. */
static int recover(db_conn *c, const char *sql, size_t len, db_error *err) {
  if (!c->drv->lost || !c->drv->lost(c)) return 0;
  int unknown = strcmp(err->sqlstate, "08007") == 0;
  if (c->depth > 0 || c->tx_open) {   /* a transaction block, ours or BEGIN's */
    int outermost = c->depth == 1 || (c->depth == 0 && c->tx_open);
    c->tx_open = 0;
    if (!(unknown && outermost && is_commit(sql, len))) db_lost_in_transaction(err);
    return 0;
  }
  if (unknown) return 0;
  if (c->echo) fprintf(stderr, "[todohost.db] connection lost before sending: reconnecting once\n");
  return c->drv->reset(c, err) == 0;
}

int db_cursor_open(db_cursor *cur, db_conn *c, const char *sql, size_t len,
                   int nparams, const db_value *params, int stream,
                   db_error *err) {
  if (cur->conn) db_cursor_close(cur);
  memset(cur, 0, sizeof *cur);
  settle(c);
  if (check_idle(c, err) < 0) return -1;
  double t0 = c->echo ? th_clock_ms() : 0;
  if (ensure_connected(c, err) < 0) {
    if (c->echo) db_echo(c, sql, nparams, params, -1);
    db_scrub(err->message, sizeof err->message, c->url.password);
    return -1;
  }
  /* PostgreSQL statements without parameters (DDL, one-off queries) run
   * unprepared: one round trip instead of two, and nothing cached. */
  int adhoc = c->kind == DB_POSTGRESQL && nparams == 0;
  for (int attempt = 0;; attempt++) {
    db_stmt *s = adhoc ? NULL : db_stmt_get(c, sql, len, err);
    if (s || adhoc) {
      cur->conn = c;
      cur->stmt = s;
      cur->adhoc_sql = adhoc ? sql : NULL;
      cur->stream = stream;
      cur->next = c->cursors;
      if (c->cursors) c->cursors->prev = cur;
      c->cursors = cur;
      if (c->drv->open(cur, nparams, params, err) == 0) break;
      db_cursor_close(cur);
    }
    if (attempt == 0 && recover(c, sql, len, err)) continue;
    if (c->echo) db_echo(c, sql, nparams, params, -1);
    db_scrub(err->message, sizeof err->message, c->url.password);
    return -1;
  }
  if (c->echo) db_echo(c, sql, nparams, params, th_clock_ms() - t0);
  return 0;
}

int db_cursor_next(db_cursor *cur, db_error *err) {
  if (!cur->conn) {
    db_error_set(err, "HY000", NULL, "the cursor is closed");
    return -1;
  }
  if (cur->done) return 0;
  int rc = cur->conn->drv->next(cur, err);
  if (rc <= 0) cur->done = 1;
  if (rc < 0) db_scrub(err->message, sizeof err->message, cur->conn->url.password);
  return rc;
}

int db_cursor_complete(db_cursor *cur, db_error *err) {
  if (!cur->conn || cur->done) return 0;
  const db_driver *drv = cur->conn->drv;
  if (!drv->must_complete || !drv->must_complete(cur)) return 0;
  int rc;
  while ((rc = db_cursor_next(cur, err)) > 0) {}
  return rc;
}

int db_cursor_ncols(const db_cursor *cur) { return cur->conn ? cur->ncols : 0; }

const char *db_cursor_colname(const db_cursor *cur, int i, size_t *len) {
  return cur->conn->drv->colname(cur, i, len);
}

void db_cursor_value(db_cursor *cur, int i, db_value *out) {
  cur->conn->drv->value(cur, i, out);
}

int64_t db_cursor_changes(const db_cursor *cur) { return cur->changes; }

void db_cursor_close(db_cursor *cur) {
  db_conn *c = cur->conn;
  if (!c) return;
  c->drv->close(cur);
  if (cur->prev) cur->prev->next = cur->next; else c->cursors = cur->next;
  if (cur->next) cur->next->prev = cur->prev;
  if (cur->flags && cur->flags != cur->small_flags) free(cur->flags);
  cur->flags = NULL;
  cur->conn = NULL;
  cur->stmt = NULL;
  cur->prev = cur->next = NULL;
}

/* ---- transactions ----------------------------------------------------- */

/* The statement of op at the connection's depth into sql. */
static void tx_sql(const db_conn *c, db_tx op, char *sql, size_t size) {
  int d = c->depth;
  if (op == DB_TX_BEGIN) {
    if (d == 0) snprintf(sql, size, "%s", c->kind == DB_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN");
    else snprintf(sql, size, "SAVEPOINT th_sp_%d", d);
  } else if (d <= 1) {
    snprintf(sql, size, "%s", op == DB_TX_COMMIT ? "COMMIT" : "ROLLBACK");
  } else if (op == DB_TX_COMMIT) {
    snprintf(sql, size, "RELEASE SAVEPOINT th_sp_%d", d - 1);
  } else {
    snprintf(sql, size, "ROLLBACK TO SAVEPOINT th_sp_%d; RELEASE SAVEPOINT th_sp_%d", d - 1, d - 1);
  }
}

static int no_transaction(db_error *err) {
  db_error_set(err, "25P01", "call commit or rollback only inside a transaction",
               "there is no transaction to end");
  return -1;
}

int db_begin(db_conn *c, db_error *err) {
  char sql[64];
  tx_sql(c, DB_TX_BEGIN, sql, sizeof sql);
  if (db_exec_simple(c, sql, err) < 0) return -1;
  c->depth++;
  return 0;
}

/* COMMIT and ROLLBACK run inside the transaction (at its depth): a
 * connection found lost then is not replaced by a new one, on which a
 * COMMIT would "succeed" having committed nothing. */
int db_commit(db_conn *c, db_error *err) {
  if (c->depth == 0) return no_transaction(err);
  char sql[64];
  tx_sql(c, DB_TX_COMMIT, sql, sizeof sql);
  c->committing = c->depth == 1;   /* (the driver checks what COMMIT did) */
  int rc = db_exec_simple(c, sql, err);
  c->committing = 0;
  if (rc < 0 && c->depth == 1 && c->kind == DB_SQLITE) {
    db_error ignored;   /* a COMMIT SQLite refused leaves the transaction open */
    db_exec_simple(c, "ROLLBACK", &ignored);
  }
  c->depth--;
  return rc;
}

int db_rollback(db_conn *c, db_error *err) {
  if (c->depth == 0) return no_transaction(err);
  char sql[96];
  tx_sql(c, DB_TX_ROLLBACK, sql, sizeof sql);
  int rc = db_exec_simple(c, sql, err);
  c->depth--;
  return rc;
}

int db_abandon_transaction(db_conn *c, db_error *err) {
  if (c->busy || c->op != DB_OP_NONE || c->pinned || !c->native) return 0;
  if (!c->depth && !c->drv->in_transaction(c)) return 0;
  c->depth = 0;
  return db_exec_simple(c, "ROLLBACK", err);
}

/* ---- asynchronous use ------------------------------------------------- */

int db_socket(const db_conn *c) {
  return c->kind == DB_POSTGRESQL && c->native ? db_pg_socket(c) : -1;
}

int db_poll(db_conn *c) { return c->kind == DB_POSTGRESQL ? db_pg_poll(c) : DB_READY; }

int db_wants(db_conn *c) { return c->kind == DB_POSTGRESQL ? db_pg_wants(c) : DB_READY; }

void db_close_cursors(db_conn *c) {
  while (c->cursors) db_cursor_close(c->cursors);
}

int db_pending(const db_conn *c) { return c->op != DB_OP_NONE; }

int db_lost(db_conn *c) {
  int lost = c->drv->lost && c->drv->lost(c);
  c->seen_alive = !lost;   /* (the next db_send need not look again) */
  return lost;
}

/* 0 when an asynchronous operation may start on c, else -1 with err. A
 * connection found closed is not re-established here (a pool replaces
 * it): nothing was sent. */
static int check_async(db_conn *c, const char *sql, db_error *err) {
  if (c->kind != DB_POSTGRESQL) {
    db_error_set(err, "0A000", "use the synchronous calls on SQLite",
                 "asynchronous statements need PostgreSQL");
    return -1;
  }
  if (check_idle(c, err) < 0) return -1;
  int looked = c->seen_alive;
  c->seen_alive = 0;
  if (!looked && c->drv->lost(c)) {
    db_error_set(err, "08006", "run it again: the next connection is a new one",
                 "the connection to PostgreSQL was found closed before the statement was sent: "
                 "nothing ran");
    return -1;
  }
  c->async = 1;
  if (c->echo) {
    free(c->op_echo);
    c->op_echo = strdup(sql);
    c->op_t0 = th_clock_ms();
  }
  return 0;
}

int db_send(db_conn *c, const char *sql, size_t len, int nparams, const db_value *params,
            int stream, db_error *err) {
  if (check_async(c, sql, err) < 0) return -1;
  db_stmt *s = NULL;
  if (nparams > 0 && !(s = db_stmt_get(c, sql, len, err))) return -1;
  if (db_pg_send(c, s, sql, nparams, params, stream, err) < 0) {
    db_scrub(err->message, sizeof err->message, c->url.password);
    return -1;
  }
  return 0;
}

int db_send_tx(db_conn *c, db_tx op, db_error *err) {
  if (op != DB_TX_BEGIN && c->depth == 0) return no_transaction(err);
  char sql[96];
  tx_sql(c, op, sql, sizeof sql);
  if (check_async(c, sql, err) < 0 || db_pg_send_simple(c, sql, DB_OP_TX, err) < 0) return -1;
  c->op_tx = op;
  return 0;
}

/* Ends what a session's user may have left in it, keeping its prepared
 * statements (DISCARD ALL without DEALLOCATE ALL and DISCARD PLANS). */
#define SESSION_RESET "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; " \
  "SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"

int db_send_reset(db_conn *c, int full, db_error *err) {
  int in_tx = c->depth > 0 || (c->native && c->drv->in_transaction(c));
  c->depth = 0;
  const char *drop = c->dealloc ? c->dealloc : "";   /* (pq_finalize) */
  if (!in_tx && !full && !*drop) return 0;
  const char *reset = !full ? "" : SESSION_RESET "; ";
  size_t size = strlen(reset) + strlen(drop) + sizeof "ROLLBACK; ";
  char *sql = malloc(size);
  if (!sql) { db_error_set(err, "53200", NULL, "out of memory"); return -1; }
  snprintf(sql, size, "%s%s%s", in_tx ? "ROLLBACK; " : "", reset, drop);
  int rc = check_async(c, sql, err) < 0 || db_pg_send_simple(c, sql, DB_OP_RESET, err) < 0 ? -1 : 1;
  free(sql);
  if (rc > 0) { free(c->dealloc); c->dealloc = NULL; }
  return rc;
}

int db_finish(db_cursor *cur, db_conn *c, db_error *err) {
  if (c->op != DB_OP_DONE || c->op_kind == DB_OP_CONNECT) {
    db_error_set(err, "HY000", NULL, "no statement has ended on this connection");
    return -1;
  }
  if (c->echo && c->op_echo) {
    db_echo(c, c->op_echo, 0, NULL, c->op_failed ? -1 : th_clock_ms() - c->op_t0);
    free(c->op_echo);
    c->op_echo = NULL;
  }
  if (c->op_failed && c->depth > 0 && (c->ended || c->drv->lost(c))) {
    /* the session is gone, and the transaction with it; but a top-level
     * COMMIT whose answer was lost may have committed (08007 stays) */
    int commit = c->op_kind == DB_OP_TX && c->op_tx == DB_TX_COMMIT && c->depth == 1;
    if (!(commit && strcmp(c->op_err.sqlstate, "08007") == 0)) db_lost_in_transaction(&c->op_err);
  }
  c->op = DB_OP_NONE;
  if (c->op_kind == DB_OP_TX && !(c->op_tx == DB_TX_BEGIN && c->op_failed))
    c->depth += c->op_tx == DB_TX_BEGIN ? 1 : -1;
  if (c->op_failed) {
    *err = c->op_err;
    db_scrub(err->message, sizeof err->message, c->url.password);
    return -1;
  }
  if (c->op_kind == DB_OP_EXEC && cur) {
    if (cur->conn) db_cursor_close(cur);
    memset(cur, 0, sizeof *cur);
    cur->conn = c;
    cur->stmt = c->op_stmt;
    cur->next = c->cursors;
    if (c->cursors) c->cursors->prev = cur;
    c->cursors = cur;
    db_pg_adopt(cur, c);
  }
  db_pg_drop(c);
  return 0;
}

/* Case-insensitive: does s[0..len) start with the keyword kw (lower case),
 * followed by something that cannot continue a word? */
static int keyword_at(const char *s, size_t len, const char *kw) {
  size_t n = strlen(kw);
  if (len < n) return 0;
  for (size_t i = 0; i < n; i++)
    if ((s[i] | 0x20) != kw[i]) return 0;
  return len == n || !(isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == '$');
}

static size_t skip_space(const char *s, size_t i, size_t len) {
  while (i < len && isspace((unsigned char)s[i])) i++;
  return i;
}

/* ---- values ---------------------------------------------------------- */

void db_format_double(double f, char *buf, size_t size) {
  if (isnan(f)) { snprintf(buf, size, "NaN"); return; }
  if (isinf(f)) { snprintf(buf, size, f > 0 ? "Infinity" : "-Infinity"); return; }
  for (int prec = 15; prec <= 17; prec++) {   /* the shortest exact text */
    snprintf(buf, size, "%.*g", prec, f);
    if (strtod(buf, NULL) == f) return;
  }
}

/* ---- echo ------------------------------------------------------------- */

void db_echo(db_conn *c, const char *sql, int nparams, const db_value *params,
             double ms) {
  char line[2048];
  size_t n = 0;
  n += (size_t)snprintf(line + n, sizeof line - n, "[todohost.db] %s", sql);
  for (int i = 0; i < nparams && n < sizeof line - 64; i++) {
    const db_value *v = &params[i];
    const char *sep = i == 0 ? "  -- (" : ", ";
    switch (v->type) {
      case DB_NULL: n += (size_t)snprintf(line + n, sizeof line - n, "%sNULL", sep); break;
      case DB_INT: n += (size_t)snprintf(line + n, sizeof line - n, "%s%lld", sep, (long long)v->u.i); break;
      case DB_FLOAT: {
        char num[40];
        db_format_double(v->u.f, num, sizeof num);
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", sep, num);
        break;
      }
      case DB_BOOL: n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", sep, v->u.b ? "true" : "false"); break;
      default: {
        int shown = v->u.s.n > 40 ? 40 : (int)v->u.s.n;
        n += (size_t)snprintf(line + n, sizeof line - n, "%s'%.*s%s'", sep, shown,
                              v->u.s.p, v->u.s.n > 40 ? "..." : "");
      }
    }
    if (i == nparams - 1 && n < sizeof line - 2) line[n++] = ')', line[n] = '\0';
  }
  db_scrub(line, sizeof line, c->url.password);
  if (ms < 0) fprintf(stderr, "%s  [failed]\n", line);
  else fprintf(stderr, "%s  [%.3f ms]\n", line, ms);
}

/* ---- PostgreSQL's binary dates --------------------------------------- */

/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

#define PG_EPOCH_DAYS 10957   /* 2000-01-01 in days since 1970-01-01 */

int db_format_pg_date(int64_t days, char *out, size_t size) {
  int64_t y;
  unsigned m, d;
  civil_from_days(days + PG_EPOCH_DAYS, &y, &m, &d);
  if (y < 1) return snprintf(out, size, "%04lld-%02u-%02u BC", (long long)(1 - y), m, d);
  return snprintf(out, size, "%04lld-%02u-%02u", (long long)y, m, d);
}

int db_format_pg_timestamp(int64_t us, int tz, char *out, size_t size) {
  if (us == INT64_MAX) return snprintf(out, size, "infinity");
  if (us == INT64_MIN) return snprintf(out, size, "-infinity");
  int64_t days = us / 86400000000LL, rest = us % 86400000000LL;
  if (rest < 0) { rest += 86400000000LL; days--; }
  int64_t secs = rest / 1000000, frac = rest % 1000000;
  int64_t y;
  unsigned m, d;
  civil_from_days(days + PG_EPOCH_DAYS, &y, &m, &d);
  int n = snprintf(out, size, "%04lld-%02u-%02uT%02u:%02u:%02u", (long long)(y < 1 ? 1 - y : y),
                   m, d, (unsigned)(secs / 3600), (unsigned)(secs / 60 % 60), (unsigned)(secs % 60));
  if (frac) n += snprintf(out + n, size - (size_t)n, ".%06lld", (long long)frac);
  if (tz) n += snprintf(out + n, size - (size_t)n, "+00:00");
  if (y < 1) n += snprintf(out + n, size - (size_t)n, " BC");
  return n;
}

/* ---- timestamps ------------------------------------------------------- */

static int digits(const char *s, int n) {
  for (int i = 0; i < n; i++) if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

int db_iso_timestamp(const char *t, size_t len, int naive_utc,
                     char *out, size_t size) {
  /* YYYY-MM-DD[ T]HH:MM[:SS[.frac]][Z|+HH[:MM]|-HH[:MM]] */
  if (len < 16 || len + 7 > size || !digits(t, 4) || t[4] != '-' || !digits(t + 5, 2) ||
      t[7] != '-' || !digits(t + 8, 2) || (t[10] != ' ' && t[10] != 'T') ||
      !digits(t + 11, 2) || t[13] != ':' || !digits(t + 14, 2))
    return -1;
  size_t i = 16;
  if (i < len && t[i] == ':') {
    if (i + 3 > len || !digits(t + i + 1, 2)) return -1;
    i += 3;
  }
  memcpy(out, t, i);
  out[10] = 'T';
  size_t n = i;
  if (i < len && t[i] == '.') {   /* fraction: at least six digits, as Python prints */
    size_t start = i++;
    while (i < len && t[i] >= '0' && t[i] <= '9') i++;
    size_t digits_n = i - start - 1;
    if (digits_n == 0) return -1;
    memcpy(out + n, t + start, i - start);
    n += i - start;
    for (; digits_n < 6; digits_n++) out[n++] = '0';
  }
  if (i == len) {
    if (naive_utc) { memcpy(out + n, "+00:00", 6); n += 6; }
  } else if (t[i] == 'Z' && i + 1 == len) {
    memcpy(out + n, "+00:00", 6); n += 6;
  } else if ((t[i] == '+' || t[i] == '-') && i + 3 <= len && digits(t + i + 1, 2)) {
    memcpy(out + n, t + i, 3); n += 3; i += 3;
    if (i == len) { memcpy(out + n, ":00", 3); n += 3; }
    else if (t[i] == ':' && i + 3 == len && digits(t + i + 1, 2)) { memcpy(out + n, t + i, 3); n += 3; }
    else if (i + 2 == len && digits(t + i, 2)) { out[n++] = ':'; memcpy(out + n, t + i, 2); n += 2; }
    else return -1;
  } else {
    return -1;
  }
  out[n] = '\0';
  return (int)n;
}
