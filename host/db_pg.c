/*
 * db_pg.c: the PostgreSQL driver behind db.h, on libpq.
 *
 * Statements are prepared once per connection (named th_N) and executed
 * with text parameters; results come back in binary when every column type
 * decodes here, else in text, and are converted by column type OID.
 * Streaming cursors use single-row mode; deferred statements go out
 * together in pipeline mode. The session runs with TimeZone=UTC so
 * timestamps read the same everywhere.
 */
#include "db_int.h"

#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

/* type OIDs from pg_type.h (server headers are not installed) */
enum { BOOLOID = 16, BYTEAOID = 17, NAMEOID = 19, INT8OID = 20, INT2OID = 21,
       INT4OID = 23, TEXTOID = 25, OIDOID = 26, JSONOID = 114, FLOAT4OID = 700,
       FLOAT8OID = 701, BPCHAROID = 1042, VARCHAROID = 1043, DATEOID = 1082,
       TIMESTAMPOID = 1114, TIMESTAMPTZOID = 1184, UUIDOID = 2950 };

static const char HINT_START[] = "is PostgreSQL running? try `make db-start`";
static const char HINT_UNKNOWN[] =
    "look in the database whether it took effect; the next statement reconnects by itself";

static PGconn *pg_of(const db_conn *c) { return c->native; }

/* Copies the first line of text (without a "FATAL:  " or "ERROR:  "
 * prefix) into out. */
static void first_line(const char *text, char *out, size_t size) {
  if (!text) text = "";
  const char *p = text;
  const char *failed = strstr(p, "failed: ");
  if (failed && failed < p + strcspn(p, "\n")) p = failed + 8;
  if (strncmp(p, "FATAL:  ", 8) == 0 || strncmp(p, "ERROR:  ", 8) == 0) p += 8;
  size_t n = strcspn(p, "\n");
  if (n >= size) n = size - 1;
  memcpy(out, p, n);
  out[n] = '\0';
}

/* Fills err from a failed statement result (res may be NULL when the
 * connection broke). A connection that broke once the statement was handed
 * to libpq leaves its outcome unknown: libpq cannot tell whether any of it
 * left, nor whether the server ran it before the answer was lost. That is
 * SQLSTATE 08007, and the statement must not be sent again (db.c). */
static int fail_result(db_conn *c, const PGresult *res, db_error *err) {
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
  const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
  if (PQstatus(pg_of(c)) == CONNECTION_BAD) {
    char why[512];
    first_line(PQerrorMessage(pg_of(c)), why, sizeof why);
    db_error_set(err, "08007", HINT_UNKNOWN,
                 "the connection to PostgreSQL was lost after the statement was sent: it may or "
                 "may not have been applied; check before running it again (%s)", why);
    return -1;
  }
  /* a wrong parameter count is the caller's mistake, not a broken wire */
  if (state && strcmp(state, "08P01") == 0 && primary && strstr(primary, "bind message supplies"))
    state = "07001";
  if (!primary) {
    char why[512];
    first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(pg_of(c)), why, sizeof why);
    db_error_set(err, state ? state : "XX000", hint, "%s", why);
  } else if (detail) {
    db_error_set(err, state ? state : "XX000", hint, "%s (%s)", primary, detail);
  } else {
    db_error_set(err, state ? state : "XX000", hint, "%s", primary);
  }
  /* outside a transaction, never leave the session aborted (a connection
   * used asynchronously never waits: its pool rolls back when it is lent
   * again) */
  if (!c->async && c->depth == 0 && PQtransactionStatus(pg_of(c)) == PQTRANS_INERROR)
    PQclear(PQexec(pg_of(c), "ROLLBACK"));
  return -1;
}

/* ---- connecting ------------------------------------------------------- */

/* Notices, and the errors a server sends when no statement runs: a FATAL
 * one says it is ending the session (pg_terminate_backend, a shutdown). */
static void quiet_notices(void *arg, const PGresult *res) {
  db_conn *c = arg;
  const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (severity && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0)) c->ended = 1;
  if (c->echo) fprintf(stderr, "[todohost.db] %s", PQresultErrorMessage(res));
}

/* Turns libpq's connection failure into a message that says what to do. */
static void explain_connect_failure(PGconn *pg, db_error *err) {
  char why[512];
  first_line(PQerrorMessage(pg), why, sizeof why);
  const char *host = PQhost(pg), *port = PQport(pg), *db = PQdb(pg), *user = PQuser(pg);
  char where[300];
  snprintf(where, sizeof where, "%s:%s", host && *host ? host : "localhost",
           port && *port ? port : "5432");
  if (strstr(why, "Connection refused") || strstr(why, "No such file or directory")) {
    db_error_set(err, "08001", HINT_START,
                 "cannot connect to PostgreSQL at %s: connection refused", where);
  } else if (strstr(why, "database") && strstr(why, "does not exist")) {
    char hint[512];
    snprintf(hint, sizeof hint,
             "create it: `createdb -h %s -p %s -U %s %s`; or, with `make db-start`, "
             "recreate the server: `make db-stop && rm -rf localdev/data/personal_todo_pgdata && make db-start`",
             host && *host ? host : "localhost", port && *port ? port : "5432",
             user ? user : "postgres", db ? db : "todo_db");
    db_error_set(err, "3D000", hint, "%s on the PostgreSQL server at %s", why, where);
  } else if (strstr(why, "password authentication failed") ||
             strstr(why, "no password supplied")) {
    db_error_set(err, "28P01", "check the user and password in DATABASE_URL (.env)",
                 "cannot connect to PostgreSQL at %s: %s", where, why);
  } else if (strstr(why, "role") && strstr(why, "does not exist")) {
    db_error_set(err, "28000", "check the user name in DATABASE_URL (.env)",
                 "cannot connect to PostgreSQL at %s: %s", where, why);
  } else if (strstr(why, "could not translate host name")) {
    db_error_set(err, "08001", "check the host name in DATABASE_URL (.env)",
                 "cannot connect to PostgreSQL: %s", why);
  } else if (strstr(why, "timeout expired")) {
    db_error_set(err, "08001", HINT_START,
                 "cannot connect to PostgreSQL at %s: no answer (timeout)", where);
  } else {
    db_error_set(err, "08001", HINT_START, "cannot connect to PostgreSQL at %s: %s",
                 where, why);
  }
}

/* Our session defaults first: settings in the URL (its dbname, which
 * libpq expands) override them. */
static const char *const connect_keywords[] = {
  "options", "fallback_application_name", "client_encoding", "connect_timeout", "dbname", NULL
};

static void connect_values(const db_conn *c, const char *val[6]) {
  val[0] = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c extra_float_digits=3";
  val[1] = "todohost";
  val[2] = "UTF8";
  val[3] = "10";
  val[4] = c->url.target;
  val[5] = NULL;
}

int db_pg_connect(db_conn *c, const db_options *opt, db_error *err) {
  (void)opt;
  const char *val[6];
  connect_values(c, val);
  PGconn *pg = PQconnectdbParams(connect_keywords, val, 1);
  if (!pg) { db_error_set(err, "53200", NULL, "out of memory"); return -1; }
  if (PQstatus(pg) != CONNECTION_OK) {
    explain_connect_failure(pg, err);
    PQfinish(pg);
    return -1;
  }
  PQsetNoticeReceiver(pg, quiet_notices, c);
  c->native = pg;
  return 0;
}

/* Starts connecting without waiting (PQconnectPoll does the rest, see
 * db_pg_poll). libpq looks the host name up before it returns. */
int db_pg_connect_start(db_conn *c, db_error *err) {
  const char *val[6];
  connect_values(c, val);
  PGconn *pg = PQconnectStartParams(connect_keywords, val, 1);
  if (!pg) { db_error_set(err, "53200", NULL, "out of memory"); return -1; }
  if (PQstatus(pg) == CONNECTION_BAD) {
    explain_connect_failure(pg, err);
    PQfinish(pg);
    return -1;
  }
  PQsetNoticeReceiver(pg, quiet_notices, c);
  c->native = pg;
  c->op = c->op_kind = DB_OP_CONNECT;
  return 0;
}

static void pq_disconnect(db_conn *c) {
  PQclear(c->op_res);   /* an operation cut short */
  c->op_res = NULL;
  free(c->op_params);
  c->op_params = NULL;
  PQfinish(pg_of(c));
  c->native = NULL;
}

/* 1 when the connection is known to be closed, or closing. Before a
 * statement is sent on an idle session this also looks at the socket
 * without waiting: a server that ended the session (pg_terminate_backend,
 * a shutdown) has left its last words (a FATAL error, see quiet_notices)
 * and the end of the stream there; libpq, reading them, marks the
 * connection bad. What is found this way was found before anything was
 * sent. */
static int pq_lost(db_conn *c) {
  PGconn *pg = pg_of(c);
  if (PQstatus(pg) == CONNECTION_OK && !c->ended) {   /* as of the last statement's end */
    PGTransactionStatusType t = PQtransactionStatus(pg);
    if (t == PQTRANS_IDLE || t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
      c->tx_open = t != PQTRANS_IDLE;
  }
  if (PQstatus(pg) == CONNECTION_BAD || c->ended) return 1;
  if (c->busy || PQpipelineStatus(pg) != PQ_PIPELINE_OFF || PQisBusy(pg)) return 0;
  struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
  /* a few rounds: the last message, then the end of the stream */
  for (int k = 0; k < 4 && PQstatus(pg) != CONNECTION_BAD; k++)
    if (poll(&p, 1, 0) != 1 || !PQconsumeInput(pg)) break;
  (void)PQisBusy(pg);   /* parses what arrived: a FATAL message sets c->ended */
  return PQstatus(pg) == CONNECTION_BAD || c->ended;
}

static int pq_reset(db_conn *c, db_error *err) {
  db_cache_clear(c, 1);   /* prepared statements died with the session */
  c->busy = 0;
  c->ended = 0;
  c->tx_open = 0;
  PQreset(pg_of(c));
  if (PQstatus(pg_of(c)) != CONNECTION_OK) {
    explain_connect_failure(pg_of(c), err);
    return -1;
  }
  return 0;
}

/* A COMMIT that PostgreSQL answered with ROLLBACK: a statement in the
 * transaction failed and the error was caught (pcall); nothing was
 * committed. Fills err and returns 1 then. */
static int commit_rolled_back(const PGresult *res, db_error *err) {
  if (PQresultStatus(res) != PGRES_COMMAND_OK || strcmp(PQcmdStatus((PGresult *)res), "ROLLBACK") != 0)
    return 0;
  db_error_set(err, "25P02",
               "a statement inside the transaction failed and its error was caught (pcall): "
               "let the error propagate, or run the part that may fail in a nested conn:transaction",
               "the transaction was rolled back, not committed: a statement in it had failed");
  return 1;
}

static int pq_exec_simple(db_conn *c, const char *sql, db_error *err) {
  PGresult *res = PQexec(pg_of(c), sql);
  ExecStatusType st = PQresultStatus(res);
  int rc = 0;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)
    rc = fail_result(c, res, err);
  else if (c->committing && commit_rolled_back(res, err))
    rc = -1;
  PQclear(res);
  return rc;
}

/* ---- statements ------------------------------------------------------- */

/* Types whose binary form decodes here to exactly what the text form gives
 * (float4 is left out: its shortest decimal text reads back as a different
 * double than its exact binary value). */
static int binary_decodable(Oid t) {
  switch (t) {
    case BOOLOID: case BYTEAOID: case NAMEOID: case INT8OID: case INT2OID:
    case INT4OID: case TEXTOID: case OIDOID: case JSONOID: case FLOAT8OID:
    case BPCHAROID: case VARCHAROID: case DATEOID: case TIMESTAMPOID:
    case TIMESTAMPTZOID: case UUIDOID:
      return 1;
  }
  return 0;
}

/* Whether s's results come back in binary: when every column of res (a
 * result of s, or its description) has a binary form decoded here. */
static void learn_columns(db_stmt *s, const PGresult *res) {
  s->binary = 1;
  for (int i = 0, n = PQnfields(res); i < n; i++)
    if (!binary_decodable(PQftype(res, i))) s->binary = 0;
  s->described = 1;
}

/* A statement is first run unprepared (one round trip: most statements
 * of migrations and scripts run once); from its second use on it is
 * prepared on the server. This only names it. */
static int pq_prepare(db_conn *c, db_stmt *s, db_error *err) {
  (void)err;
  snprintf(s->name, sizeof s->name, "th_%u", ++c->stmt_seq);
  return 0;
}

/* Prepares s on the server and describes its result columns: when every
 * one has a binary form decoded here, results are asked for in binary,
 * which spares the server its text formatting (timestamps above all) and
 * us the parsing. 0, or -1 with err. */
static int prepare_on_server(db_conn *c, db_stmt *s, db_error *err) {
  PGresult *res = PQprepare(pg_of(c), s->name, s->sql, 0, NULL);
  int rc = 0;
  if (PQresultStatus(res) != PGRES_COMMAND_OK) rc = fail_result(c, res, err);
  PQclear(res);
  if (rc == 0) s->prepared = 1;
  if (rc == 0 && !s->described) {   /* (a first use's result told already) */
    res = PQdescribePrepared(pg_of(c), s->name);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) rc = fail_result(c, res, err);
    else learn_columns(s, res);
    PQclear(res);
  }
  if (rc < 0 && PQstatus(pg_of(c)) == CONNECTION_BAD) {
    /* preparing runs nothing: the statement itself never left (db.c may
     * send it again on a new connection) */
    char why[512];
    first_line(PQerrorMessage(pg_of(c)), why, sizeof why);
    db_error_set(err, "08006", HINT_START,
                 "lost the connection to PostgreSQL before the statement was sent: %s", why);
  }
  return rc;
}

static void pq_finalize(db_conn *c, db_stmt *s) {
  if (!s->prepared) return;
  char sql[48];
  snprintf(sql, sizeof sql, "DEALLOCATE %s", s->name);
  if (c->async) {   /* an event loop's connection never waits: it goes with the next reset */
    size_t had = c->dealloc ? strlen(c->dealloc) : 0;
    char *more = realloc(c->dealloc, had + strlen(sql) + 3);
    if (more) snprintf(more + had, strlen(sql) + 3, "%s; ", sql);
    if (more) c->dealloc = more;   /* (out of memory: the session's end drops it) */
    return;
  }
  PQclear(PQexec(pg_of(c), sql));
}

/* Parameters in text format, except bytea in binary. */
typedef struct pq_params {
  const char **values;
  int *lengths, *formats;
  char (*num)[40];
  const char *values_s[16];
  int lengths_s[16], formats_s[16];
  char num_s[16][40];
} pq_params;

static void params_free(pq_params *p) {
  if (p->values != p->values_s) {
    free(p->values); free(p->lengths); free(p->formats); free(p->num);
  }
}

static int params_build(pq_params *p, int n, const db_value *v, db_error *err) {
  p->values = p->values_s; p->lengths = p->lengths_s;
  p->formats = p->formats_s; p->num = p->num_s;
  if (n > 16) {
    p->values = malloc(sizeof *p->values * (size_t)n);
    p->lengths = malloc(sizeof *p->lengths * (size_t)n);
    p->formats = malloc(sizeof *p->formats * (size_t)n);
    p->num = malloc(sizeof *p->num * (size_t)n);
    if (!p->values || !p->lengths || !p->formats || !p->num) {
      params_free(p);
      db_error_set(err, "53200", NULL, "out of memory");
      return -1;
    }
  }
  for (int i = 0; i < n; i++) {
    p->lengths[i] = 0;
    p->formats[i] = 0;
    switch (v[i].type) {
      case DB_NULL: p->values[i] = NULL; break;
      case DB_INT:
        snprintf(p->num[i], sizeof p->num[i], "%lld", (long long)v[i].u.i);
        p->values[i] = p->num[i];
        break;
      case DB_FLOAT:
        db_format_double(v[i].u.f, p->num[i], sizeof p->num[i]);
        p->values[i] = p->num[i];
        break;
      case DB_BOOL: p->values[i] = v[i].u.b ? "true" : "false"; break;
      case DB_BLOB:
        p->values[i] = v[i].u.s.p;
        p->lengths[i] = (int)v[i].u.s.n;
        p->formats[i] = 1;
        break;
      default:
        if (memchr(v[i].u.s.p, '\0', v[i].u.s.n)) {
          params_free(p);
          db_error_set(err, "22021", "PostgreSQL text cannot hold NUL bytes; store binary data in a bytea column",
                       "parameter $%d contains a NUL byte", i + 1);
          return -1;
        }
        p->values[i] = v[i].u.s.p;
        break;
    }
  }
  return 0;
}

static int pq_open(db_cursor *cur, int nparams, const db_value *params,
                   db_error *err) {
  db_conn *c = cur->conn;
  PGconn *pg = pg_of(c);
  db_stmt *s = cur->stmt;
  /* unprepared: statements without parameters, and first uses */
  const char *unnamed = cur->adhoc_sql;
  if (s && !s->prepared) {
    if (s->uses == 0) unnamed = s->sql;
    else if (prepare_on_server(c, s, err) < 0) return -1;
  }
  if (s) s->uses++;
  int format = cur->binary = !unnamed && s->binary;
  pq_params p;
  if (params_build(&p, nparams, params, err) < 0) return -1;
  if (cur->stream) {
    int ok = unnamed
                 ? PQsendQueryParams(pg, unnamed, nparams, NULL, p.values, p.lengths, p.formats, 0)
                 : PQsendQueryPrepared(pg, s->name, nparams, p.values, p.lengths, p.formats, format);
    params_free(&p);
    if (!ok) return fail_result(c, NULL, err);
    PQsetSingleRowMode(pg);
    c->busy = 1;
    cur->started = 1;
    return 0;
  }
  PGresult *res = unnamed
                      ? PQexecParams(pg, unnamed, nparams, NULL, p.values, p.lengths, p.formats, 0)
                      : PQexecPrepared(pg, s->name, nparams, p.values, p.lengths, p.formats, format);
  params_free(&p);
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
    if (s && unnamed == s->sql) learn_columns(s, res);   /* its first use */
    cur->res = res;
    cur->nrows = PQntuples(res);
    cur->ncols = PQnfields(res);
    cur->row = -1;
    cur->changes = atoll(PQcmdTuples(res));
    return 0;
  }
  fail_result(c, res, err);
  PQclear(res);
  return -1;
}

/* Reads what is left of a streaming query, so the connection is free. A
 * connection used by an event loop (c->async) never waits for it: what
 * has not arrived yet is read by db_pg_poll (DB_OP_DRAIN), and the next
 * operation starts once that has ended. */
static void drain(db_conn *c) {
  PGresult *r;
  if (c->async) {
    c->busy = 0;
    c->op = c->op_kind = DB_OP_DRAIN;
    while (PQconsumeInput(pg_of(c)) && !PQisBusy(pg_of(c))) {
      if (!(r = PQgetResult(pg_of(c)))) { c->op = DB_OP_NONE; return; }
      PQclear(r);
    }
    if (PQstatus(pg_of(c)) == CONNECTION_BAD) c->op = DB_OP_NONE;   /* (found lost by the next call) */
    return;
  }
  while ((r = PQgetResult(pg_of(c))) != NULL) PQclear(r);
  c->busy = 0;
}

void db_pg_drain_now(db_conn *c) {
  PGresult *r;
  while ((r = PQgetResult(pg_of(c))) != NULL) PQclear(r);
  c->op = DB_OP_NONE;
}

static int pq_next(db_cursor *cur, db_error *err) {
  if (!cur->stream) return ++cur->row < cur->nrows ? 1 : 0;
  db_conn *c = cur->conn;
  PQclear(cur->res);
  cur->res = NULL;
  PGresult *res = PQgetResult(pg_of(c));
  switch (PQresultStatus(res)) {
    case PGRES_SINGLE_TUPLE:
      cur->res = res;
      cur->ncols = PQnfields(res);
      cur->row = 0;
      return 1;
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
      cur->changes = atoll(PQcmdTuples(res));
      PQclear(res);
      drain(c);
      return 0;
    default:
      if (!res) { c->busy = 0; return 0; }
      drain(c);
      fail_result(c, res, err);
      PQclear(res);
      return -1;
  }
}

static const char *pq_colname(const db_cursor *cur, int i, size_t *len) {
  const char *name = PQfname(cur->res, i);
  if (!name) name = "?";
  *len = strlen(name);
  return name;
}

/* ---- binary values ----------------------------------------------------- */

static uint64_t be64(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  uint64_t v = 0;
  for (int k = 0; k < 8; k++) v = v << 8 | u[k];
  return v;
}

static uint32_t be32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static void binary_value(db_cursor *cur, Oid type, const char *s, size_t n, db_value *out) {
  switch (type) {
    case BOOLOID: out->type = DB_BOOL; out->u.b = s[0] != 0; return;
    case INT2OID: out->type = DB_INT; out->u.i = (int16_t)(((unsigned char)s[0] << 8) | (unsigned char)s[1]); return;
    case INT4OID: out->type = DB_INT; out->u.i = (int32_t)be32(s); return;
    case OIDOID: out->type = DB_INT; out->u.i = be32(s); return;
    case INT8OID: out->type = DB_INT; out->u.i = (int64_t)be64(s); return;
    case FLOAT8OID: {
      uint64_t bits = be64(s);
      out->type = DB_FLOAT;
      memcpy(&out->u.f, &bits, sizeof bits);
      return;
    }
    case BYTEAOID: out->type = DB_BLOB; out->u.s.p = s; out->u.s.n = n; return;
    case DATEOID: {
      int32_t days = (int32_t)be32(s);
      int m = days == INT32_MAX ? snprintf(cur->tsbuf, sizeof cur->tsbuf, "infinity")
            : days == INT32_MIN ? snprintf(cur->tsbuf, sizeof cur->tsbuf, "-infinity")
            : db_format_pg_date(days, cur->tsbuf, sizeof cur->tsbuf);
      out->type = DB_TEXT; out->u.s.p = cur->tsbuf; out->u.s.n = (size_t)m;
      return;
    }
    case TIMESTAMPOID: case TIMESTAMPTZOID: {
      int m = db_format_pg_timestamp((int64_t)be64(s), type == TIMESTAMPTZOID, cur->tsbuf, sizeof cur->tsbuf);
      out->type = DB_TEXT; out->u.s.p = cur->tsbuf; out->u.s.n = (size_t)m;
      return;
    }
    case UUIDOID: {
      static const char hex[] = "0123456789abcdef";
      size_t k = 0;
      for (int b = 0; b < 16; b++) {
        if (b == 4 || b == 6 || b == 8 || b == 10) cur->tsbuf[k++] = '-';
        cur->tsbuf[k++] = hex[(unsigned char)s[b] >> 4];
        cur->tsbuf[k++] = hex[(unsigned char)s[b] & 15];
      }
      out->type = DB_TEXT; out->u.s.p = cur->tsbuf; out->u.s.n = k;
      return;
    }
    default:  /* text, varchar, bpchar, name, json: the bytes themselves */
      out->type = DB_TEXT; out->u.s.p = s; out->u.s.n = n;
  }
}

static void pq_value(db_cursor *cur, int i, db_value *out) {
  const PGresult *res = cur->res;
  int row = cur->row;
  if (PQgetisnull(res, row, i)) { out->type = DB_NULL; return; }
  const char *s = PQgetvalue(res, row, i);
  size_t n = (size_t)PQgetlength(res, row, i);
  if (cur->binary) { binary_value(cur, PQftype(res, i), s, n, out); return; }
  switch (PQftype(res, i)) {
    case BOOLOID:
      out->type = DB_BOOL; out->u.b = s[0] == 't';
      return;
    case INT2OID: case INT4OID: case INT8OID: case OIDOID:
      out->type = DB_INT; out->u.i = strtoll(s, NULL, 10);
      return;
    case FLOAT4OID: case FLOAT8OID:
      out->type = DB_FLOAT; out->u.f = strtod(s, NULL);
      return;
    case TIMESTAMPOID: case TIMESTAMPTZOID: {
      int m = db_iso_timestamp(s, n, 0, cur->tsbuf, sizeof cur->tsbuf);
      if (m >= 0) { s = cur->tsbuf; n = (size_t)m; }
      break;
    }
    case BYTEAOID: {
      size_t len = 0;
      PQfreemem(cur->bytea);
      cur->bytea = PQunescapeBytea((const unsigned char *)s, &len);
      if (cur->bytea) {
        out->type = DB_BLOB;
        out->u.s.p = (const char *)cur->bytea;
        out->u.s.n = len;
        return;
      }
      break;
    }
  }
  out->type = DB_TEXT;
  out->u.s.p = s;
  out->u.s.n = n;
}

static void pq_close(db_cursor *cur) {
  PQclear(cur->res);
  cur->res = NULL;
  PQfreemem(cur->bytea);
  cur->bytea = NULL;
  if (cur->stream && cur->started && cur->conn->busy) drain(cur->conn);
}

/* ---- asynchronous operations (db.h) ---------------------------------- */

/* The parameters of a statement whose execution waits for its prepare:
 * one allocation holding the arrays and the bytes they point to. */
typedef struct kept_params {
  int n;
  const char **values;
  int *lengths, *formats;
} kept_params;

static kept_params *params_keep(const pq_params *p, int n) {
  size_t bytes = 0;
  for (int i = 0; i < n; i++)
    if (p->values[i]) bytes += p->formats[i] ? (size_t)p->lengths[i] : strlen(p->values[i]) + 1;
  size_t arrays = sizeof(kept_params) + sizeof(char *) * (size_t)n + 2 * sizeof(int) * (size_t)n;
  kept_params *k = malloc(arrays + bytes);
  if (!k) return NULL;
  k->n = n;
  k->values = (const char **)(k + 1);
  k->lengths = (int *)(k->values + n);
  k->formats = k->lengths + n;
  char *data = (char *)(k->formats + n);
  for (int i = 0; i < n; i++) {
    k->lengths[i] = p->lengths[i];
    k->formats[i] = p->formats[i];
    k->values[i] = NULL;
    if (!p->values[i]) continue;
    size_t len = p->formats[i] ? (size_t)p->lengths[i] : strlen(p->values[i]) + 1;
    memcpy(data, p->values[i], len);
    k->values[i] = data;
    data += len;
  }
  return k;
}

/* Fails the operation running on c: the connection broke. What the
 * server did is unknown once anything of the statement may have left. */
static void op_lost(db_conn *c) {
  if (!c->op_failed) {
    char why[512];
    first_line(PQerrorMessage(pg_of(c)), why, sizeof why);
    if (c->op == DB_OP_PREPARE)   /* preparing runs nothing */
      db_error_set(&c->op_err, "08006", HINT_START,
                   "lost the connection to PostgreSQL before the statement ran: %s", why);
    else
      db_error_set(&c->op_err, "08007", HINT_UNKNOWN,
                   "the connection to PostgreSQL was lost after the statement was sent: it may or "
                   "may not have been applied; check before running it again (%s)", why);
    c->op_failed = 1;
  }
  PQclear(c->op_res);
  c->op_res = NULL;
  free(c->op_params);
  c->op_params = NULL;
  c->op = DB_OP_DONE;
}

/* Hands the execution of s (or of sql unprepared) to libpq. 1 when it
 * took it. */
static int send_exec(db_conn *c, db_stmt *s, const char *sql, int n, const char *const *values,
                     const int *lengths, const int *formats) {
  PGconn *pg = pg_of(c);
  const char *unnamed = !s ? sql : !s->prepared ? s->sql : NULL;
  if (s) s->uses++;
  c->op_binary = !unnamed && s->binary;
  int ok = unnamed ? PQsendQueryParams(pg, unnamed, n, NULL, values, lengths, formats, 0)
                   : PQsendQueryPrepared(pg, s->name, n, values, lengths, formats, c->op_binary);
  if (ok && c->op_stream) PQsetSingleRowMode(pg);
  return ok;
}

/* Fills err after libpq refused to take a statement: nothing was sent. */
static int refused(db_conn *c, db_error *err) {
  char why[512];
  first_line(PQerrorMessage(pg_of(c)), why, sizeof why);
  db_error_set(err, PQstatus(pg_of(c)) == CONNECTION_BAD ? "08006" : "55000", HINT_START,
               "the statement was not sent to PostgreSQL: %s", why);
  PQsetnonblocking(pg_of(c), 0);
  return -1;
}

int db_pg_send(db_conn *c, db_stmt *s, const char *sql, int nparams, const db_value *params,
               int stream, db_error *err) {
  PGconn *pg = pg_of(c);
  pq_params p;
  if (params_build(&p, nparams, params, err) < 0) return -1;
  PQsetnonblocking(pg, 1);   /* sending never waits for the socket */
  c->op_failed = 0;
  c->op_res = NULL;
  c->op_stmt = s;
  c->op_stream = stream;
  c->op_kind = DB_OP_EXEC;
  int ok;
  if (s && !s->prepared && s->uses > 0) {   /* its second use: prepare it, then run it */
    c->op_params = params_keep(&p, nparams);
    ok = c->op_params && PQsendPrepare(pg, s->name, s->sql, 0, NULL);
    c->op = DB_OP_PREPARE;
  } else {
    ok = send_exec(c, s, sql, nparams, p.values, p.lengths, p.formats);
    c->op = DB_OP_EXEC;
  }
  params_free(&p);
  if (ok) return 0;
  int oom = c->op == DB_OP_PREPARE && !c->op_params;
  free(c->op_params);
  c->op_params = NULL;
  c->op = DB_OP_NONE;
  if (oom) {
    PQsetnonblocking(pg, 0);
    db_error_set(err, "53200", NULL, "out of memory");
    return -1;
  }
  return refused(c, err);
}

int db_pg_send_simple(db_conn *c, const char *sql, int op, db_error *err) {
  PGconn *pg = pg_of(c);
  PQsetnonblocking(pg, 1);
  c->op_failed = 0;
  c->op_res = NULL;
  c->op_stmt = NULL;
  c->op_stream = 0;
  if (!PQsendQuery(pg, sql)) return refused(c, err);
  c->op = c->op_kind = op;
  return 0;
}

/* One result of the operation running on c: the first good one is kept,
 * the first error fails it. */
static void take_result(db_conn *c, PGresult *r) {
  ExecStatusType st = PQresultStatus(r);
  if (!c->op_failed && c->op_kind == DB_OP_TX && c->op_tx == DB_TX_COMMIT && c->depth == 1 &&
      commit_rolled_back(r, &c->op_err))
    c->op_failed = 1;
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY) {
    if (c->op == DB_OP_EXEC && !c->op_res && !c->op_failed) {   /* (not a prepare's) */
      if (c->op_stmt && !c->op_stmt->described) learn_columns(c->op_stmt, r);
      c->op_res = r;
      return;
    }
  } else if (!c->op_failed) {
    const char *severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (severity && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0))
      c->ended = 1;   /* the server ends the session: a transaction in it is gone */
    fail_result(c, r, &c->op_err);
    c->op_failed = 1;
    PQclear(c->op_res);
    c->op_res = NULL;
  }
  PQclear(r);
}

/* The statement s was prepared: its execution goes out with the kept
 * parameters. 1 when libpq took it. */
static int execute_prepared(db_conn *c) {
  kept_params *k = c->op_params;
  c->op_params = NULL;
  c->op_stmt->prepared = 1;
  c->op = DB_OP_EXEC;
  int ok = send_exec(c, c->op_stmt, NULL, k->n, k->values, k->lengths, k->formats);
  free(k);
  return ok;
}

static int connect_poll(db_conn *c) {
  switch (PQconnectPoll(pg_of(c))) {
    case PGRES_POLLING_READING: return DB_WANT_READ;
    case PGRES_POLLING_WRITING: return DB_WANT_WRITE;
    case PGRES_POLLING_OK: break;
    default:
      explain_connect_failure(pg_of(c), &c->op_err);
      c->op_failed = 1;
  }
  c->op = DB_OP_DONE;
  return DB_READY;
}

int db_pg_poll(db_conn *c) {
  PGconn *pg = pg_of(c);
  if (c->op == DB_OP_CONNECT) return connect_poll(c);
  if (c->op == DB_OP_DONE) return DB_READY;
  if (c->op == DB_OP_DRAIN) {   /* (see drain) */
    PGresult *r;
    while (PQconsumeInput(pg) && !PQisBusy(pg)) {
      if (!(r = PQgetResult(pg))) break;
      PQclear(r);
    }
    if (PQstatus(pg) != CONNECTION_BAD && PQisBusy(pg)) return DB_WANT_READ;
    c->op = DB_OP_NONE;   /* (a lost connection: the next call finds it) */
    return DB_READY;
  }
  if (c->op == DB_OP_NONE) {
    if (c->busy) {   /* a streaming cursor: ready when its next row is in */
      if (!PQconsumeInput(pg)) return DB_READY;   /* (db_cursor_next reports it) */
      return PQisBusy(pg) ? DB_WANT_READ : DB_READY;
    }
    /* idle: what the server says on its own (a FATAL message: ended) */
    if (PQstatus(pg) == CONNECTION_BAD || !PQconsumeInput(pg)) return -1;
    (void)PQisBusy(pg);
    return PQstatus(pg) == CONNECTION_BAD || c->ended ? -1 : DB_READY;
  }
  for (;;) {
    int f = PQflush(pg);
    if (f < 0) { op_lost(c); break; }
    if (f > 0) return DB_WANT_READ | DB_WANT_WRITE;
    if (c->op_stream && c->op == DB_OP_EXEC) {   /* sent: the cursor reads the rows */
      c->busy = 1;
      c->op = DB_OP_DONE;
      break;
    }
    if (!PQconsumeInput(pg)) { op_lost(c); break; }
    int ended = 0;
    while (!ended && !PQisBusy(pg)) {
      PGresult *r = PQgetResult(pg);
      if (r) take_result(c, r);
      else ended = 1;
    }
    if (PQstatus(pg) == CONNECTION_BAD) { op_lost(c); break; }
    if (!ended) return DB_WANT_READ;
    /* the command has ended */
    if (c->op == DB_OP_PREPARE && !c->op_failed) {
      if (!execute_prepared(c)) { op_lost(c); break; }
      continue;
    }
    free(c->op_params);
    c->op_params = NULL;
    c->op = DB_OP_DONE;
    break;
  }
  if (PQstatus(pg) != CONNECTION_BAD) PQsetnonblocking(pg, 0);
  return DB_READY;
}

int db_pg_wants(db_conn *c) {
  PGconn *pg = pg_of(c);
  if (c->op == DB_OP_DONE) return DB_READY;
  if (c->op == DB_OP_CONNECT || (c->op == DB_OP_NONE && !c->busy)) return db_pg_poll(c);
  int f = PQflush(pg);
  if (f > 0) return DB_WANT_READ | DB_WANT_WRITE;
  if (f < 0 || (c->op_stream && c->op == DB_OP_EXEC)) return db_pg_poll(c);
  if (!PQisBusy(pg)) return c->op == DB_OP_NONE ? DB_READY : db_pg_poll(c);
  return DB_WANT_READ;   /* nothing read yet: the socket says when */
}

void db_pg_adopt(db_cursor *cur, db_conn *c) {
  cur->binary = c->op_binary;
  cur->stream = c->op_stream;
  if (c->op_stream) {
    cur->started = 1;
    return;
  }
  PGresult *res = c->op_res;
  c->op_res = NULL;
  cur->res = res;
  cur->nrows = PQntuples(res);
  cur->ncols = PQnfields(res);
  cur->row = -1;
  cur->changes = atoll(PQcmdTuples(res));
}

int db_pg_in_transaction(const db_conn *c) {
  return PQtransactionStatus(pg_of(c)) != PQTRANS_IDLE;
}

int db_pg_socket(const db_conn *c) { return PQsocket(pg_of(c)); }

void db_pg_drop(db_conn *c) {
  PQclear(c->op_res);
  c->op_res = NULL;
}

const db_driver db_pg_driver = {
  pq_prepare, pq_finalize, pq_open, pq_next, pq_colname, pq_value, pq_close,
  pq_exec_simple, pq_disconnect, pq_lost, pq_reset, db_pg_in_transaction, NULL,
};
