/* test_batch.c: deferred statements (db_defer, db_run_deferred,
 * db_cursor_take) on the real PostgreSQL server of TEST_PG_URL: what may be
 * deferred, one round trip for a batch (read from libpq's protocol trace),
 * each statement in its own transaction with its own outcome, issue order
 * kept against synchronous statements, recovery from a lost connection. On
 * SQLite nothing defers. */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "db.h"

/* The rule lua_db.c applies before queueing a statement. */
static int can_defer(const db_conn *c, const char *sql, size_t len) {
  return db_may_defer(c) && db_plain_read(c, sql, len);
}

static db_cursor *new_cursor(void) { return calloc(1, db_cursor_size()); }

/* Takes ticket and returns column col of its first row as text (copied into
 * out), or "ERROR sqlstate". */
static const char *take_text(db_conn *c, int ticket, int col, char *out, size_t size) {
  db_cursor *cur = new_cursor();
  db_error err;
  if (db_cursor_take(cur, c, ticket, &err) < 0) {
    snprintf(out, size, "ERROR %s", err.sqlstate);
  } else if (db_cursor_next(cur, &err) != 1) {
    snprintf(out, size, "NO ROW");
  } else {
    db_value v;
    db_cursor_value(cur, col, &v);
    if (v.type == DB_INT) snprintf(out, size, "%lld", (long long)v.u.i);
    else if (v.type == DB_NULL) snprintf(out, size, "NULL");
    else snprintf(out, size, "%.*s", (int)v.u.s.n, v.u.s.p);
  }
  db_cursor_close(cur);
  free(cur);
  return out;
}

/* The integer in the first column of sql's first row, or -1. */
static long long scalar(db_conn *c, const char *sql) {
  char buf[64];
  db_error err;
  int t = db_defer(c, sql, strlen(sql), 0, NULL, &err);
  take_text(c, t, 0, buf, sizeof buf);
  return strncmp(buf, "ERROR", 5) == 0 ? -1 : atoll(buf);
}

static int exec(db_conn *c, const char *sql) {
  db_error err;
  return db_exec_simple(c, sql, &err);
}

static void what_defers(db_conn *c) {
  static const struct { const char *sql; int want; } cases[] = {
    {"SELECT 1", 1},
    {"  select id FROM todos WHERE id = $1", 1},
    {"(SELECT 1) UNION (SELECT 2)", 1},
    {"SELECT * FROM formats WHERE forum = 'for'", 1},
    {"VALUES (1)", 1},
    {"TABLE todos", 1},
    {"SELECT * FROM t FOR UPDATE", 1},
    {"INSERT INTO t VALUES (1)", 0},
    {"update t SET a = 1", 0},
    {"DELETE FROM t", 0},
    {"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", 0},
    {"SELECT * INTO t2 FROM t", 0},
    {"SELECT nextval('s')", 0},
    {"SELECT LastVal()", 0},
    {"SELECT currval('todos_id_seq')", 0},
    {"SELECT set_config('app.user', $1, false)", 0},
    {"SELECT pg_advisory_lock(42)", 0},
    {"SELECT pg_try_advisory_xact_lock(1)", 0},
    {"SELECT * FROM pg_temp.t", 0},
    {"SELECT setseed(0.5)", 0},
    {"SELECT set_limit(0.3)", 0},
    {"SELECT pg_try_advisory_xact_lock_shared(1)", 0},
    {"SELECT U&\"nextv\\0061l\"('s')", 0},
    {"SELECT pg_catalog.set_config('a.b', 'c', false)", 0},
    {"-- a comment\nSELECT 1", 0},
    {"selected", 0},
    {"BEGIN", 0},
    {"SET search_path = x", 0},
    {"CREATE TABLE t (a int)", 0},
    {"VACUUM t", 0},
    {"CALL p()", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    CHECK_INT(can_defer(c, cases[i].sql, strlen(cases[i].sql)), cases[i].want,
              "can_defer(%s)", cases[i].sql);
  exec(c, "BEGIN");
  CHECK_INT(can_defer(c, "SELECT 1", 8), 0, "nothing defers inside a transaction");
  exec(c, "ROLLBACK");
  db_set_depth(c, 1);
  CHECK_INT(can_defer(c, "SELECT 1", 8), 0, "nothing defers inside conn:transaction");
  db_set_depth(c, 0);
  db_cursor *cur = new_cursor();
  db_error err;
  db_cursor_open(cur, c, "SELECT 1", 8, 0, NULL, 1, &err);
  CHECK_INT(can_defer(c, "SELECT 1", 8), 0, "nothing defers while a cursor is open");
  db_cursor_close(cur);
  free(cur);
  CHECK_INT(can_defer(c, "SELECT 1", 8), 1, "... and again once it is closed");
}

/* Reads only: one round trip (the protocol trace shows every message out
 * before the first answer), one read-only transaction (one now()). */
static void one_round_trip(db_conn *c) {
  db_error err;
  const char *sql = "SELECT $1::int * 2 AS v, now()::text AS x";
  db_value p[8];
  int ticket[8];
  for (int round = 0; round < 3; round++) {   /* first use, preparing, prepared */
    FILE *trace = tmpfile();
    PGconn *pg = db_native(c);
    if (round == 2 && trace) {
      PQtrace(pg, trace);
      PQsetTraceFlags(pg, PQTRACE_SUPPRESS_TIMESTAMPS);
    }
    for (int i = 0; i < 8; i++) {
      p[i] = (db_value){.type = DB_INT, .u.i = i + 10 * round};
      ticket[i] = db_defer(c, sql, strlen(sql), 1, &p[i], &err);
    }
    CHECK_INT(db_deferred(c), 8, "round %d: 8 statements queued", round);
    db_run_deferred(c);
    if (round == 2 && trace) PQuntrace(pg);
    CHECK_INT(db_deferred(c), 0, "round %d: the queue ran", round);
    int values_ok = 1, one_transaction = 1;
    char xids[8][64], buf[64];
    for (int i = 0; i < 8; i++) {
      db_cursor *cur = new_cursor();
      values_ok &= db_cursor_take(cur, c, ticket[i], &err) == 0 && db_cursor_next(cur, &err) == 1;
      db_value v, x;
      if (values_ok) {
        db_cursor_value(cur, 0, &v);
        db_cursor_value(cur, 1, &x);
        values_ok &= v.type == DB_INT && v.u.i == 2 * (i + 10 * round);
        snprintf(xids[i], sizeof xids[i], "%.*s", (int)x.u.s.n, x.u.s.p);
        for (int j = 0; j < i; j++) one_transaction &= strcmp(xids[i], xids[j]) == 0;
      }
      db_cursor_close(cur);
      free(cur);
      take_text(c, ticket[i], 0, buf, sizeof buf);   /* taken: an error now */
      if (strncmp(buf, "ERROR", 5) != 0) values_ok = 0;
    }
    CHECK(values_ok, "round %d: every ticket gets its own row, once", round);
    CHECK(one_transaction, "round %d: the reads ran in one transaction (one now())", round);
    if (round == 2 && trace) {
      /* one round trip: every message we sent precedes the first answer */
      rewind(trace);
      char line[512];
      int sent = 0, answered = 0, sent_after_answer = 0;
      while (fgets(line, sizeof line, trace)) {
        if (line[0] == 'F') { sent++; if (answered) sent_after_answer++; }
        else if (line[0] == 'B') answered++;
      }
      CHECK(sent >= 16 && answered > 0 && sent_after_answer == 0,
            "one round trip: %d messages out before the first of %d answers (%d after)", sent,
            answered, sent_after_answer);
    }
    if (trace) fclose(trace);
  }
}

/* One statement of a batch: its SQL and its one parameter (or none). */
typedef struct stmt_in {
  const char *sql;
  const db_value *param;
} stmt_in;

/* Queues the n statements, runs the queue, and writes each one's first
 * column as text (or "ERROR sqlstate") into out[i]. */
static void run_batch(db_conn *c, int n, const stmt_in *in, char out[][64]) {
  db_error err;
  int ticket[16];
  for (int i = 0; i < n; i++)
    ticket[i] = db_defer(c, in[i].sql, strlen(in[i].sql), in[i].param ? 1 : 0, in[i].param, &err);
  db_run_deferred(c);
  for (int i = 0; i < n; i++) take_text(c, ticket[i], 0, out[i], 64);
}

/* A read that fails, or a read whose function tries to write, makes every
 * read of the batch run again alone: each gets its own outcome, the write
 * happens exactly once, and the connection is usable afterwards. */
static void reads_fall_back(db_conn *c) {
  exec(c, "DROP TABLE IF EXISTS batch_r; CREATE TABLE batch_r (id int);"
          "CREATE OR REPLACE FUNCTION batch_touch() RETURNS int LANGUAGE sql AS "
          "'INSERT INTO batch_r VALUES (1) RETURNING 1'");
  const char *ok = "SELECT $1::int + 1";
  const char *bad = "SELECT 1 / ($1::int - 7)";
  const char *touch = "SELECT batch_touch()";
  db_value p[3] = {{.type = DB_INT, .u.i = 1}, {.type = DB_INT, .u.i = 7}, {.type = DB_INT, .u.i = 2}};
  CHECK_INT(db_plain_read(c, touch, strlen(touch)), 1, "a function's insides are out of the scanner's sight");
  char out[4][64];
  run_batch(c, 4, (stmt_in[]){{ok, &p[0]}, {bad, &p[1]}, {ok, &p[2]}, {touch, NULL}}, out);
  CHECK(strcmp(out[0], "2") == 0 && strcmp(out[1], "ERROR 22012") == 0 && strcmp(out[2], "3") == 0,
        "a failing read gets its own error, the others their rows (%s, %s, %s)", out[0], out[1], out[2]);
  CHECK_STR(out[3], "1", "a read whose function writes runs alone and answers");
  CHECK_INT(scalar(c, "SELECT count(*) FROM batch_r"), 1, "... and its write happened exactly once");
  run_batch(c, 2, (stmt_in[]){{touch, NULL}, {ok, &p[0]}}, out);
  CHECK(strcmp(out[0], "1") == 0 && strcmp(out[1], "2") == 0,
        "refused in the read-only batch, it ran alone (%s, %s)", out[0], out[1]);
  CHECK_INT(scalar(c, "SELECT count(*) FROM batch_r"), 2, "one more write, once");
  CHECK_INT(db_idle(c), 1, "the connection is idle again (no failed transaction left open)");
  /* a sequence is not rolled back: only READ ONLY keeps the batch from
   * drawing a number that the run alone then draws again */
  exec(c, "DROP SEQUENCE IF EXISTS batch_s; CREATE SEQUENCE batch_s;"
          "CREATE OR REPLACE FUNCTION batch_draw() RETURNS bigint LANGUAGE sql AS 'SELECT nextval(''batch_s'')'");
  run_batch(c, 2, (stmt_in[]){{"SELECT batch_draw()", NULL}, {bad, &p[1]}}, out);
  CHECK(strcmp(out[0], "1") == 0 && strcmp(out[1], "ERROR 22012") == 0,
        "a hidden nextval beside a failing read (%s, %s)", out[0], out[1]);
  CHECK_INT(scalar(c, "SELECT last_value FROM batch_s"), 1, "... drew one number: the batch was read-only");
  exec(c, "DROP FUNCTION batch_touch(); DROP FUNCTION batch_draw(); DROP TABLE batch_r; DROP SEQUENCE batch_s");
}

/* The driver runs each queued statement as if alone, writes too (db_defer
 * takes any statement; can_defer is the caller's rule): a failing
 * INSERT in the middle leaves the one before it committed, and an error
 * raised at the commit (a deferred foreign key) fails its own statement
 * without shifting the answers of those after it. */
static void each_alone(db_conn *c) {
  db_error err;
  exec(c, "DROP TABLE IF EXISTS batch_w, batch_fk_child, batch_fk_parent;"
          "CREATE TABLE batch_w (id int PRIMARY KEY);"
          "CREATE TABLE batch_fk_parent (id int PRIMARY KEY);"
          "CREATE TABLE batch_fk_child (p int REFERENCES batch_fk_parent DEFERRABLE INITIALLY DEFERRED)");
  const char *ins = "INSERT INTO batch_w VALUES ($1) RETURNING id";
  const char *count = "SELECT count(*) FROM batch_w";
  db_value p = {.type = DB_INT, .u.i = 10};
  int t0 = db_defer(c, ins, strlen(ins), 1, &p, &err);
  int t1 = db_defer(c, ins, strlen(ins), 1, &p, &err);
  int t2 = db_defer(c, count, strlen(count), 0, NULL, &err);
  db_run_deferred(c);
  char a[64], b[64], d[64];
  take_text(c, t0, 0, a, sizeof a);
  take_text(c, t1, 0, b, sizeof b);
  take_text(c, t2, 0, d, sizeof d);
  CHECK_STR(a, "10", "a deferred INSERT answers with its row");
  CHECK_STR(b, "ERROR 23505", "the duplicate after it gets its own error (unique violation)");
  CHECK_STR(d, "1", "the first INSERT stayed committed");

  const char *orphan = "INSERT INTO batch_fk_child VALUES (99)";
  const char *echo = "SELECT $1::text";
  db_value w[3] = {{.type = DB_TEXT, .u.s = {"request B", 9}}, {.type = DB_TEXT, .u.s = {"request C", 9}},
                   {.type = DB_TEXT, .u.s = {"request D", 9}}};
  int o = db_defer(c, orphan, strlen(orphan), 0, NULL, &err);
  int tb = db_defer(c, echo, strlen(echo), 1, &w[0], &err);
  int tc = db_defer(c, echo, strlen(echo), 1, &w[1], &err);
  int td = db_defer(c, echo, strlen(echo), 1, &w[2], &err);
  db_run_deferred(c);
  char e[64];
  take_text(c, o, 0, e, sizeof e);
  take_text(c, tb, 0, a, sizeof a);
  take_text(c, tc, 0, b, sizeof b);
  take_text(c, td, 0, d, sizeof d);
  CHECK_STR(e, "ERROR 23503", "an error at the commit (deferred foreign key) fails its own statement");
  CHECK(strcmp(a, "request B") == 0 && strcmp(b, "request C") == 0 && strcmp(d, "request D") == 0,
        "... and every later statement still gets its own answer (%s, %s, %s)", a, b, d);
  CHECK_INT(scalar(c, "SELECT count(*) FROM batch_fk_child"), 0, "the orphan row was not kept");
  exec(c, "DROP TABLE batch_w, batch_fk_child, batch_fk_parent");
}

static void failures_stay_apart(db_conn *c) {
  db_error err;
  exec(c, "DROP TABLE IF EXISTS batch_t; CREATE TABLE batch_t (id int PRIMARY KEY)");
  exec(c, "INSERT INTO batch_t VALUES (1), (2)");
  const char *good = "SELECT count(*) FROM batch_t WHERE id <= $1";
  const char *bad = "SELECT 1 / ($1::int - 7)";
  db_value p[3] = {{.type = DB_INT, .u.i = 1}, {.type = DB_INT, .u.i = 7}, {.type = DB_INT, .u.i = 2}};
  int t0 = db_defer(c, good, strlen(good), 1, &p[0], &err);
  int t1 = db_defer(c, bad, strlen(bad), 1, &p[1], &err);
  int t2 = db_defer(c, good, strlen(good), 1, &p[2], &err);
  char a[64], b[64], d[64];
  /* taking a ticket runs the queue when nobody did */
  take_text(c, t0, 0, a, sizeof a);
  take_text(c, t1, 0, b, sizeof b);
  take_text(c, t2, 0, d, sizeof d);
  CHECK_STR(a, "1", "a statement before a failing one still answers");
  CHECK_STR(b, "ERROR 22012", "the failing one gets its own error (division by zero)");
  CHECK_STR(d, "2", "a statement after a failing one is not skipped");
}

static void issue_order(db_conn *c) {
  db_error err;
  const char *count = "SELECT count(*) FROM batch_t";
  int before = db_defer(c, count, strlen(count), 0, NULL, &err);
  CHECK_INT(exec(c, "INSERT INTO batch_t VALUES (3)"), 0, "a synchronous statement after a queued one");
  int after = db_defer(c, count, strlen(count), 0, NULL, &err);
  char a[64], b[64];
  take_text(c, before, 0, a, sizeof a);
  take_text(c, after, 0, b, sizeof b);
  CHECK_STR(a, "2", "the queued SELECT ran before the INSERT issued after it");
  CHECK_STR(b, "3", "the SELECT queued after the INSERT sees it");
}

static void lost_connection(const char *url, db_conn *c) {
  db_error err;
  db_conn *killer;
  if (!CHECK(db_connect(url, NULL, &killer, &err) == 0, "a second connection")) return;
  char sql[160];
  db_cursor *cur = new_cursor();
  const char *pid_sql = "SELECT pg_backend_pid()";
  int64_t pid = 0;
  if (db_cursor_open(cur, c, pid_sql, strlen(pid_sql), 0, NULL, 0, &err) == 0 &&
      db_cursor_next(cur, &err) == 1) {
    db_value v;
    db_cursor_value(cur, 0, &v);
    pid = v.u.i;
  }
  db_cursor_close(cur);
  free(cur);
  snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", (long long)pid);
  CHECK_INT(db_exec_simple(killer, sql, &err), 0, "the batch's connection is terminated");
  db_close(killer);
  const char *q = "SELECT $1::int + 1";
  db_value p[2] = {{.type = DB_INT, .u.i = 41}, {.type = DB_INT, .u.i = 99}};
  int t0 = db_defer(c, q, strlen(q), 1, &p[0], &err);
  int t1 = db_defer(c, q, strlen(q), 1, &p[1], &err);
  db_run_deferred(c);
  char a[64], b[64];
  take_text(c, t0, 0, a, sizeof a);
  take_text(c, t1, 0, b, sizeof b);
  CHECK_STR(a, "42", "after a lost connection the batch reconnects and answers");
  CHECK_STR(b, "100", "... every statement of it");
}

int main(void) {
  const char *dir = getenv("TEST_TMPDIR");
  char url[600];
  snprintf(url, sizeof url, "sqlite:///%s/test_batch.db", dir ? dir : "/tmp");
  db_conn *c;
  db_error err;
  if (CHECK(db_connect(url, NULL, &c, &err) == 0, "sqlite: connect")) {
    CHECK_INT(can_defer(c, "SELECT 1", 8), 0, "sqlite: nothing defers (no round trips to save)");
    db_close(c);
  }
  const char *pg = getenv("TEST_PG_URL");
  if (!pg || !*pg) return check_summary();
  if (!CHECK(db_connect(pg, NULL, &c, &err) == 0, "postgresql: connect (%s)", err.message))
    return check_summary();
  what_defers(c);
  one_round_trip(c);
  reads_fall_back(c);
  each_alone(c);
  failures_stay_apart(c);
  issue_order(c);
  lost_connection(pg, c);
  /* outcomes never taken are freed with the connection (ASan checks) */
  const char *q = "SELECT 1";
  db_defer(c, q, strlen(q), 0, NULL, &err);
  db_defer(c, q, strlen(q), 0, NULL, &err);
  db_run_deferred(c);
  exec(c, "DROP TABLE batch_t");
  db_close(c);
  return check_summary();
}
