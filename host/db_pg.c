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
  /* outside a transaction, never leave the session aborted */
  if (c->depth == 0 && PQtransactionStatus(pg_of(c)) == PQTRANS_INERROR)
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

int db_pg_connect(db_conn *c, const db_options *opt, db_error *err) {
  (void)opt;
  /* our session defaults first: settings in the URL override them */
  const char *const kw[] = {"options", "fallback_application_name", "client_encoding",
                            "connect_timeout", "dbname", NULL};
  const char *const val[] = {"-c TimeZone=UTC -c DateStyle=ISO,YMD -c extra_float_digits=3",
                             "todohost", "UTF8", "10", c->url.target, NULL};
  PGconn *pg = PQconnectdbParams(kw, val, 1);
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

static void pq_disconnect(db_conn *c) {
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

static int pq_exec_simple(db_conn *c, const char *sql, db_error *err) {
  PGresult *res = PQexec(pg_of(c), sql);
  ExecStatusType st = PQresultStatus(res);
  int rc = 0;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)
    rc = fail_result(c, res, err);
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
  if (rc == 0) {
    s->prepared = 1;
    res = PQdescribePrepared(pg_of(c), s->name);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      rc = fail_result(c, res, err);
    } else {
      s->binary = 1;
      for (int i = 0, n = PQnfields(res); i < n; i++)
        if (!binary_decodable(PQftype(res, i))) s->binary = 0;
    }
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

/* Reads what is left of a streaming query, so the connection is free. */
static void drain(db_conn *c) {
  PGresult *r;
  while ((r = PQgetResult(pg_of(c))) != NULL) PQclear(r);
  c->busy = 0;
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

/* ---- deferred statements ---------------------------------------------- */

static int pq_idle(const db_conn *c) {
  return PQtransactionStatus(pg_of(c)) == PQTRANS_IDLE && PQpipelineStatus(pg_of(c)) == PQ_PIPELINE_OFF;
}

/* Sends q (after its statement is ready on the server) into the pipeline.
 * 1 when sent, 0 on failure (err set). */
static int send_deferred(db_conn *c, db_queued *q, db_stmt *s, db_error *err) {
  PGconn *pg = pg_of(c);
  pq_params p;
  if (params_build(&p, q->nparams, q->params, err) < 0) return 0;
  int ok;
  if (!s || !s->prepared) {   /* no parameters, or a first use: unnamed, in text */
    ok = PQsendQueryParams(pg, s ? s->sql : q->sql, q->nparams, NULL, p.values, p.lengths,
                           p.formats, 0);
    q->binary = 0;
  } else {
    ok = PQsendQueryPrepared(pg, s->name, q->nparams, p.values, p.lengths, p.formats, s->binary);
    q->binary = s->binary;
  }
  params_free(&p);
  if (!ok) fail_result(c, NULL, err);
  return ok;
}

/* Marks q failed with err (copied). */
static void defer_failed(db_queued *q, const db_error *err) {
  q->err = malloc(sizeof *q->err);
  if (q->err) *q->err = *err;
  q->state = DB_DEFER_FAILED;
}

/* Reads only (every one db_plain_read): one pipeline, one round trip, in
 * one explicit READ ONLY transaction with one Sync, so the server flushes
 * once. The reads share a snapshot; the server refuses any write a
 * function of the user's would attempt. When anything at all goes wrong
 * (an error, a refused write, the connection), the transaction has changed
 * nothing: every read is left queued and runs alone, getting exactly the
 * outcome it would have had alone. Returns 1 when every read is done. */
static int run_reads(db_conn *c, db_queued *q, db_stmt **stmts, int n, int *sent) {
  PGconn *pg = pg_of(c);
  db_error err;
  int nsent = 0, good = PQsendQueryParams(pg, "BEGIN READ ONLY", 0, NULL, NULL, NULL, NULL, 0);
  for (int i = 0; i < n && good; i++) {
    if (q[i].state != DB_DEFER_QUEUED) continue;
    good = send_deferred(c, &q[i], stmts[i], &err);
    if (good) sent[nsent++] = i;
  }
  if (good) good = PQsendQueryParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
  if (!PQpipelineSync(pg)) return 0;
  /* results in order: BEGIN, the reads, COMMIT (each then a NULL), Sync */
  int item = 0, seen = 0, nulls = 0, synced = 0;
  while (!synced && nulls < 2 && PQstatus(pg) != CONNECTION_BAD) {
    PGresult *r = PQgetResult(pg);
    if (!r) {
      if (seen) { item++; seen = 0; } else nulls++;
      continue;
    }
    nulls = 0;
    seen = 1;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      synced = 1;
    } else if (item >= 1 && item <= nsent && st == PGRES_TUPLES_OK && !q[sent[item - 1]].res) {
      q[sent[item - 1]].res = r;
      r = NULL;
    } else if (st != PGRES_COMMAND_OK || (item == nsent + 1 && strcmp(PQcmdStatus(r), "COMMIT") != 0)) {
      good = 0;   /* an error, a skipped statement, or a COMMIT that rolled back */
    }
    PQclear(r);
  }
  good = good && synced && item == nsent + 2;
  for (int k = 0; k < nsent; k++) {
    db_queued *d = &q[sent[k]];
    if (good && d->res) {
      d->state = DB_DEFER_DONE;
    } else {
      PQclear(d->res);
      d->res = NULL;
      good = 0;
    }
  }
  return good;
}

/* Any statements: one pipeline, one round trip, each statement followed
 * by its own Sync, so each runs in its own implicit transaction exactly as
 * it would alone (an error skips nothing but itself). */
static void run_each(db_conn *c, db_queued *q, db_stmt **stmts, int n, int *sent) {
  PGconn *pg = pg_of(c);
  db_error err;
  int nsent = 0;
  /* libpq 15 flushes at every Sync: the socket is corked meanwhile, so the
   * whole batch still leaves as one packet and wakes the server once (a
   * Unix socket refuses the option: nothing to gain there anyway) */
  int corked = 0;
#ifdef TCP_CORK
  int one = 1, zero = 0;
  corked = setsockopt(PQsocket(pg), IPPROTO_TCP, TCP_CORK, &one, sizeof one) == 0;
#endif
  for (int i = 0; i < n; i++) {
    if (q[i].state != DB_DEFER_QUEUED) continue;
    if (!send_deferred(c, &q[i], stmts[i], &err) || !PQpipelineSync(pg)) break;
    sent[nsent++] = i;
  }
#ifdef TCP_CORK
  if (corked) setsockopt(PQsocket(pg), IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
#endif
  (void)corked;
  /* Per statement, up to its Sync's result: its own result, a NULL, and
   * when the commit at the Sync fails (a deferred constraint, a
   * serialization failure) an error and a NULL before the Sync. The outcome
   * is known only at the Sync: an error anywhere before it fails the
   * statement. When the connection breaks first, every statement handed to
   * libpq and not answered has an unknown outcome (08007); those never
   * handed over stay queued and run alone (reconnecting). */
  int k = 0;
  for (; k < nsent && PQstatus(pg) != CONNECTION_BAD; k++) {
    db_queued *d = &q[sent[k]];
    PGresult *res = NULL;
    int failed = 0, synced = 0, nulls = 0;
    while (!synced && nulls < 2) {
      PGresult *r = PQgetResult(pg);
      if (!r) {
        if (PQstatus(pg) == CONNECTION_BAD) break;
        nulls++;   /* two in a row: libpq has nothing more for us */
        continue;
      }
      nulls = 0;
      ExecStatusType st = PQresultStatus(r);
      if (st == PGRES_PIPELINE_SYNC) {
        synced = 1;
      } else if ((st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) && !res && !failed) {
        res = r;
        r = NULL;
      } else if (!failed) {
        fail_result(c, r, &err);
        failed = 1;
      }
      PQclear(r);
    }
    if (synced && !failed) {
      d->res = res;
      d->state = DB_DEFER_DONE;
    } else {
      PQclear(res);
      if (!synced) break;   /* no outcome */
      defer_failed(d, &err);
    }
  }
  if (k < nsent && PQstatus(pg) == CONNECTION_BAD) {
    fail_result(c, NULL, &err);
    for (; k < nsent; k++) defer_failed(&q[sent[k]], &err);
  }
}

/* Statements used before are prepared on the server first (outside the
 * pipeline, once per connection), as pq_open does; then the batch runs as
 * run_reads (reads only) or run_each. */
static void pq_run_batch(db_conn *c, db_queued *q, int n) {
  PGconn *pg = pg_of(c);
  db_error err;
  db_stmt *small[32], **stmts = n <= 32 ? small : malloc(sizeof *stmts * (size_t)n);
  int *sent = malloc(sizeof *sent * (size_t)n);
  if (!stmts || !sent) {   /* (all left queued: run one by one) */
    if (stmts != small) free(stmts);
    free(sent);
    return;
  }
  int reads = 1;
  for (int i = 0; i < n; i++) {
    stmts[i] = NULL;
    if (q[i].nparams > 0) {
      db_stmt *s = db_stmt_get(c, q[i].sql, q[i].len, &err);
      if (!s || (!s->prepared && s->uses > 0 && prepare_on_server(c, s, &err) < 0)) {
        if (PQstatus(pg) != CONNECTION_BAD) defer_failed(&q[i], &err);   /* else: left queued */
        continue;
      }
      s->uses++;
      s->busy++;   /* not evicted from the cache while this batch uses it */
      stmts[i] = s;
    }
    reads = reads && db_plain_read(c, q[i].sql, q[i].len);
  }
  if (PQstatus(pg) != CONNECTION_BAD && PQenterPipelineMode(pg)) {
    if (reads) run_reads(c, q, stmts, n, sent);   /* (what it leaves queued runs alone) */
    else run_each(c, q, stmts, n, sent);
  }
  for (int i = 0; i < n; i++) if (stmts[i]) stmts[i]->busy--;
  if (stmts != small) free(stmts);
  free(sent);
  if (PQstatus(pg) == CONNECTION_BAD) return;   /* the next statement reconnects */
  if (!PQexitPipelineMode(pg)) {
    /* results left unaccounted for: a fresh session, not one stuck in a
     * pipeline that refuses every later statement */
    db_error ignored;
    pq_reset(c, &ignored);
  } else if (PQtransactionStatus(pg) != PQTRANS_IDLE) {
    PQclear(PQexec(pg, "ROLLBACK"));   /* a failed BEGIN READ ONLY block stays open */
  }
}

static void pq_adopt(db_cursor *cur, void *res, int binary) {
  cur->res = res;
  cur->binary = binary;
  cur->nrows = PQntuples(res);
  cur->ncols = PQnfields(res);
  cur->row = -1;
  cur->changes = atoll(PQcmdTuples(res));
}

static void pq_drop(void *res) { PQclear(res); }

const db_driver db_pg_driver = {
  pq_prepare, pq_finalize, pq_open, pq_next, pq_colname, pq_value, pq_close,
  pq_exec_simple, pq_disconnect, pq_lost, pq_reset,
  pq_idle, pq_run_batch, pq_adopt, pq_drop,
};
