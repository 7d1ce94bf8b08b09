/*
 * db.c: the driver-independent half of db.h: connecting by URL, the
 * per-connection prepared-statement cache (LRU), cursor bookkeeping, the
 * queue of deferred statements, the DEBUG echo, and value helpers shared by both drivers.
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
void db_set_depth(db_conn *c, int depth) { c->depth = depth; }
int db_get_depth(const db_conn *c) { return c->depth; }
int db_conn_busy(const db_conn *c) { return c->busy; }
void *db_native(db_conn *c) { return c->native; }
void db_pin(db_conn *c, int delta) {
  if (delta > 0 && c->dq_next < c->ndq) db_run_deferred(c);
  c->pinned += delta;
}
int db_pinned(const db_conn *c) { return c->pinned; }

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
  return 0;
}

/* ---- connections ------------------------------------------------------ */

static int recover(db_conn *c, const char *sql, size_t len, db_error *err);
static int ensure_connected(db_conn *c, db_error *err);
static int keyword_at(const char *s, size_t len, const char *kw);
static size_t skip_space(const char *s, size_t i, size_t len);

int db_connect(const char *url, const db_options *opt, db_conn **out,
               db_error *err) {
  static const db_options defaults;
  if (!opt) opt = &defaults;
  *out = NULL;
  db_conn *c = calloc(1, sizeof *c);
  if (!c) { db_error_set(err, "53200", NULL, "out of memory"); return -1; }
  if (db_url_parse(url, &c->url, err) < 0) { free(c); return -1; }
  c->kind = c->url.kind;
  c->echo = opt->echo;
  int rc;
  if (c->kind == DB_SQLITE) {
    c->drv = &db_sqlite_driver;
    rc = db_sqlite_connect(c, opt, err);
  } else {
    c->drv = &db_pg_driver;
    rc = db_pg_connect(c, opt, err);
  }
  if (rc < 0) {
    db_scrub(err->message, sizeof err->message, c->url.password);
    db_url_free(&c->url);
    free(c);
    return -1;
  }
  if (c->echo) fprintf(stderr, "[todohost.db] connected to %s\n", c->url.safe);
  *out = c;
  return 0;
}

static void dq_free(db_conn *c);

void db_close(db_conn *c) {
  if (!c) return;
  while (c->cursors) db_cursor_close(c->cursors);
  dq_free(c);
  db_cache_clear(c, c->kind == DB_POSTGRESQL);  /* the server forgets them itself */
  c->drv->disconnect(c);
  db_url_free(&c->url);
  free(c);
}

int db_exec_simple(db_conn *c, const char *sql, db_error *err) {
  if (c->dq_next < c->ndq) db_run_deferred(c);
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
/* The cached statement for sql, or NULL (nothing is prepared). */
static db_stmt *stmt_find(const db_conn *c, const char *sql, size_t len) {
  unsigned h = hash_sql(sql, len);
  for (db_stmt *s = c->buckets[h % DB_CACHE_BUCKETS]; s; s = s->hnext)
    if (s->hash == h && s->len == len && memcmp(s->sql, sql, len) == 0) return s;
  return NULL;
}

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
  s->plain_read = db_read_statement(copy, len);
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

static void lost_in_transaction(db_error *err) {
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
    lost_in_transaction(err);
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
    if (!(unknown && outermost && is_commit(sql, len))) lost_in_transaction(err);
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
  if (c->dq_next < c->ndq) db_run_deferred(c);
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

/* ---- deferred statements ---------------------------------------------- */

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

/* Identifiers whose presence makes a SELECT more than a read: it creates
 * a table (INTO), or uses or changes the session (sequences and their
 * lastval/currval, set_config, the random seed, pg_trgm's limit, advisory
 * locks, temporary tables, dblink). A function of one's own doing such
 * things is out of sight: hence routes opt in (web/router.lua). */
static int session_word(const char *w, size_t n) {
  static const char *const words[] = {"into", "nextval", "setval", "lastval", "currval",
                                      "set_config", "setseed", "set_limit", "pg_temp"};
  static const char *const prefixes[] = {"pg_advisory", "pg_try_advisory", "dblink"};
  char low[24];
  size_t m = n < sizeof low - 1 ? n : sizeof low - 1;   /* a prefix is enough for the prefixes */
  for (size_t i = 0; i < m; i++) low[i] = (char)tolower((unsigned char)w[i]);
  low[m] = '\0';
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
    if (strncmp(low, prefixes[i], strlen(prefixes[i])) == 0) return 1;
  if (m < n) return 0;   /* longer than any of the words */
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (strcmp(low, words[i]) == 0) return 1;
  return 0;
}

int db_read_statement(const char *sql, size_t len) {
  size_t i = skip_space(sql, 0, len);
  while (i < len && sql[i] == '(') i = skip_space(sql, i + 1, len);
  if (!keyword_at(sql + i, len - i, "select") && !keyword_at(sql + i, len - i, "values") &&
      !keyword_at(sql + i, len - i, "table"))
    return 0;
  while (i < len) {   /* every word, string contents too: a false alarm only costs the pause */
    if ((sql[i] == '&' && i > 0 && (sql[i - 1] | 0x20) == 'u') || sql[i] == '\\')
      return 0;   /* U&"..." escapes could spell any name */
    if (isalnum((unsigned char)sql[i]) || sql[i] == '_') {
      size_t start = i;
      while (i < len && (isalnum((unsigned char)sql[i]) || sql[i] == '_' || sql[i] == '$')) i++;
      if (session_word(sql + start, i - start)) return 0;
    } else {
      i++;
    }
  }
  return 1;
}

int db_idle(const db_conn *c) {
  return !c->depth && !c->busy && !c->pinned && !c->cursors && c->drv->idle(c);
}

int db_plain_read(const db_conn *c, const char *sql, size_t len) {
  const db_stmt *s = stmt_find(c, sql, len);
  return s ? s->plain_read : db_read_statement(sql, len);
}

int db_may_defer(const db_conn *c) { return c->drv->run_batch && db_idle(c); }

int db_deferred(const db_conn *c) { return c->ndq - c->dq_next; }

int db_defer(db_conn *c, const char *sql, size_t len, int nparams,
             const db_value *params, db_error *err) {
  if (c->ndq == c->dq_cap) {
    int cap = c->dq_cap ? c->dq_cap * 2 : 16;
    db_queued *q = realloc(c->dq, sizeof *q * (size_t)cap);
    if (!q) { db_error_set(err, "53200", NULL, "out of memory"); return -1; }
    c->dq = q;
    c->dq_cap = cap;
  }
  db_queued *d = &c->dq[c->ndq];
  memset(d, 0, sizeof *d);
  d->sql = sql;
  d->len = len;
  d->nparams = nparams;
  d->params = params;
  d->state = DB_DEFER_QUEUED;
  c->dq_live++;
  return c->ndq++;
}

/* Runs d alone, as db_cursor_open would, keeping its result. */
static void run_alone(db_conn *c, db_queued *d) {
  db_error err;
  db_cursor tmp, *cur = &tmp;
  db_cursor_init(cur);
  if (db_cursor_open(cur, c, d->sql, d->len, d->nparams, d->params, 0, &err) < 0) {
    d->err = malloc(sizeof *d->err);
    if (d->err) *d->err = err;
    d->state = DB_DEFER_FAILED;
    return;
  }
  d->res = cur->res;       /* taken over: the cursor closes without it */
  d->binary = cur->binary;
  cur->res = NULL;
  db_cursor_close(cur);
  d->state = DB_DEFER_DONE;
}

void db_run_deferred(db_conn *c) {
  int first = c->dq_next, n = c->ndq - first;
  if (n <= 0) return;
  c->dq_next = c->ndq;   /* from here on db_cursor_open does not come back here */
  db_queued *q = c->dq + first;
  db_error err;
  if (n >= 2 && ensure_connected(c, &err) == 0 && db_idle(c)) {
    double t0 = c->echo ? th_clock_ms() : 0;
    c->drv->run_batch(c, q, n);
    double ms = c->echo ? th_clock_ms() - t0 : 0;
    if (c->echo) fprintf(stderr, "[todohost.db] %d statements in one round trip  [%.3f ms]\n", n, ms);
    for (int i = 0; i < n; i++) {
      if (q[i].state == DB_DEFER_FAILED && q[i].err)
        db_scrub(q[i].err->message, sizeof q[i].err->message, c->url.password);
      if (c->echo && q[i].state != DB_DEFER_QUEUED)
        db_echo(c, q[i].sql, q[i].nparams, q[i].params, q[i].state == DB_DEFER_DONE ? ms : -1);
    }
  }
  for (int i = 0; i < n; i++)
    if (q[i].state == DB_DEFER_QUEUED) run_alone(c, &q[i]);
}

int db_cursor_take(db_cursor *cur, db_conn *c, int ticket, db_error *err) {
  if (cur->conn) db_cursor_close(cur);
  memset(cur, 0, sizeof *cur);
  if (ticket < 0 || ticket >= c->ndq || c->dq[ticket].state == DB_DEFER_TAKEN) {
    db_error_set(err, "HY000", NULL, "no such deferred statement");
    return -1;
  }
  if (ticket >= c->dq_next) db_run_deferred(c);
  db_queued *d = &c->dq[ticket];
  int rc = 0;
  if (d->state == DB_DEFER_FAILED) {
    if (d->err) *err = *d->err;
    else db_error_set(err, "53200", NULL, "out of memory");
    free(d->err);
    d->err = NULL;
    rc = -1;
  } else {
    cur->conn = c;
    cur->next = c->cursors;
    if (c->cursors) c->cursors->prev = cur;
    c->cursors = cur;
    c->drv->adopt(cur, d->res, d->binary);
    d->res = NULL;
  }
  d->state = DB_DEFER_TAKEN;
  if (--c->dq_live == 0) c->ndq = c->dq_next = 0;   /* all taken: start over */
  return rc;
}

/* Frees every outcome not taken, and the queue. */
static void dq_free(db_conn *c) {
  for (int i = 0; i < c->ndq; i++) {
    if (c->dq[i].res) c->drv->drop(c->dq[i].res);
    free(c->dq[i].err);
  }
  free(c->dq);
  c->dq = NULL;
  c->ndq = c->dq_cap = c->dq_next = c->dq_live = 0;
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
