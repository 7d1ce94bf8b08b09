/*
 * test_pool.c: host/db_pool.c and the asynchronous half of db.h, against
 * the test PostgreSQL (TEST_PG_URL): lending within the bound, waiters
 * served in order or failed at their deadline, callbacks made only from
 * db_loop_run, statements sent and finished without blocking (a statement's
 * second use is prepared on the way), a transaction left open rolled back
 * on return, the full reset, a terminated session replaced, a server that
 * is down failing at once, and a stop that cannot wait (db_loop_abort).
 */
#include "check.h"

#include "clock.h"
#include "db.h"
#include "db_pool.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* A borrower: its task and what happened to it. */
typedef struct borrower {
  db_task task;
  int calls;          /* times done was called */
  int in_call;        /* set around calls that must not call back */
} borrower;

static void done(db_task *t) {
  borrower *b = t->ud;
  CHECK(!b->in_call, "a callback is never made from the call that started the wait");
  b->calls++;
}

static void borrower_init(borrower *b) {
  memset(b, 0, sizeof *b);
  b->task.done = done;
  b->task.ud = b;
}

/* Runs the loop until *flag or ms pass. Returns 1 when *flag. */
static int run_until(db_loop *l, const int *flag, int ms) {
  double end = th_clock_ms() + ms;
  while (!*flag && th_clock_ms() < end) {
    struct pollfd p = {.fd = db_loop_fd(l), .events = POLLIN};
    int ready = poll(&p, 1, 10) == 1;
    db_loop_run(l, ready);
  }
  return *flag;
}

static int acquire(db_pool *p, db_loop *l, borrower *b, int ms) {
  b->in_call = 1;
  int rc = db_pool_acquire(p, &b->task);
  b->in_call = 0;
  if (rc == 1) return 1;
  if (rc < 0) return 0;
  return run_until(l, &b->calls, ms) && !b->task.failed;
}

/* Runs sql with one integer parameter (or none) on l's connection,
 * asynchronously; returns its first column (an integer), or -1. */
static long long run(db_loop *l, db_lent *lent, const char *sql, int with_param, long long param) {
  db_conn *c = db_lent_conn(lent);
  db_error err;
  db_value v = {.type = DB_INT, .u.i = param};
  if (db_send(c, sql, strlen(sql), with_param, &v, 0, &err) < 0) {
    printf("# send: %s\n", err.message);
    return -1;
  }
  borrower b;
  borrower_init(&b);
  if (!db_pool_wait(lent, &b.task)) run_until(l, &b.calls, 5000);
  db_cursor *cur = calloc(1, db_cursor_size());
  long long out = -1;
  if (db_finish(cur, c, &err) == 0 && db_cursor_next(cur, &err) == 1) {
    db_value got;
    db_cursor_value(cur, 0, &got);
    if (got.type == DB_INT) out = got.u.i;
    else if (got.type == DB_BOOL) out = got.u.b;
  } else {
    printf("# %s: %s\n", sql, err.message);
  }
  db_cursor_close(cur);
  free(cur);
  return out;
}

static long long scalar(db_conn *c, const char *sql) {
  db_cursor *cur = calloc(1, db_cursor_size());
  db_error err;
  long long out = -1;
  if (db_cursor_open(cur, c, sql, strlen(sql), 0, NULL, 0, &err) == 0 && db_cursor_next(cur, &err) == 1) {
    db_value v;
    db_cursor_value(cur, 0, &v);
    out = v.type == DB_INT ? v.u.i : v.type == DB_BOOL ? v.u.b : -1;
  }
  db_cursor_close(cur);
  free(cur);
  return out;
}

static void statements(db_loop *l, const char *url) {
  db_pool_config cfg = {.size = 1, .wait_ms = 2000, .connect_ms = 5000};
  db_error err;
  db_pool *p = db_pool_new(l, url, NULL, &cfg, &err);
  if (!CHECK(p != NULL, "a pool (%s)", p ? "" : err.message)) return;
  borrower a;
  borrower_init(&a);
  if (!CHECK(acquire(p, l, &a, 5000), "a connection is lent")) return;
  db_lent *lent = a.task.lent;
  for (long long i = 1; i <= 4; i++)   /* first use unprepared, then prepared, then prepared */
    CHECK_INT(run(l, lent, "SELECT $1::int8 * 10", 1, i), i * 10,
              "use %lld of a statement gives its own result", i);
  CHECK_INT(run(l, lent, "SELECT 7::int8", 0, 0), 7, "a statement without parameters");

  /* a transaction left open is rolled back on return */
  db_conn *c = db_lent_conn(lent);
  db_exec_simple(c, "CREATE TEMP TABLE IF NOT EXISTS pool_t (n int)", &err);
  db_exec_simple(c, "CREATE TABLE IF NOT EXISTS pool_c_items (n int)", &err);
  db_exec_simple(c, "DELETE FROM pool_c_items", &err);
  CHECK_INT(db_begin(c, &err), 0, "BEGIN");
  db_exec_simple(c, "INSERT INTO pool_c_items VALUES (1)", &err);
  db_pool_release(lent);
  borrower b;
  borrower_init(&b);
  if (!CHECK(acquire(p, l, &b, 5000), "the connection is lent again")) return;
  c = db_lent_conn(b.task.lent);
  CHECK_INT(db_depth(c), 0, "... at depth 0");
  CHECK_INT(scalar(c, "SELECT pg_current_xact_id_if_assigned() IS NULL"), 1, "... in no transaction");
  CHECK_INT(scalar(c, "SELECT count(*) FROM pool_c_items"), 0, "... what it wrote is rolled back");
  CHECK_INT(scalar(c, "SELECT count(*) FROM pg_class WHERE relname = 'pool_t'"), 1,
            "... a temporary table outlives the request without the full reset");
  db_exec_simple(c, "DROP TABLE pool_c_items", &err);
  db_pool_release(b.task.lent);
  db_pool_close(p);
}

static void bounds(db_loop *l, const char *url) {
  db_pool_config cfg = {.size = 2, .wait_ms = 300, .connect_ms = 5000};
  db_error err;
  db_pool *p = db_pool_new(l, url, NULL, &cfg, &err);
  if (!CHECK(p != NULL, "a pool of 2")) return;
  borrower b[4];
  for (int i = 0; i < 4; i++) borrower_init(&b[i]);
  CHECK(acquire(p, l, &b[0], 5000) && acquire(p, l, &b[1], 5000), "two connections are lent");
  int open, lent, waiting;
  db_pool_stats(p, &open, &lent, &waiting);
  CHECK(open == 2 && lent == 2 && waiting == 0, "2 open, 2 lent (%d, %d, %d)", open, lent, waiting);

  /* a third waits; it gets the first one given back */
  b[2].in_call = 1;
  CHECK_INT(db_pool_acquire(p, &b[2].task), 0, "a third borrower waits");
  b[2].in_call = 0;
  db_pool_stats(p, &open, &lent, &waiting);
  CHECK(open == 2 && waiting == 1, "... no third connection is made (%d open, %d waiting)", open, waiting);
  db_pool_release(b[0].task.lent);
  CHECK_INT(b[2].calls, 0, "... not called back from the release");
  CHECK(run_until(l, &b[2].calls, 2000) && !b[2].task.failed, "... then lent the one given back");

  /* a fourth waits past its deadline */
  double t0 = th_clock_ms();
  b[3].in_call = 1;
  db_pool_acquire(p, &b[3].task);
  b[3].in_call = 0;
  run_until(l, &b[3].calls, 3000);
  double waited = th_clock_ms() - t0;
  CHECK(b[3].task.failed && strcmp(b[3].task.err.sqlstate, "53300") == 0,
        "a borrower that waits past DB_POOL_TIMEOUT fails with 53300 (%s)", b[3].task.err.message);
  CHECK(waited >= 280 && waited < 2000, "... after about 300 ms (%.0f ms)", waited);

  /* a waiter that gives up is never called */
  borrower gone;
  borrower_init(&gone);
  db_pool_acquire(p, &gone.task);
  db_pool_cancel(&gone.task);
  db_pool_release(b[1].task.lent);
  db_pool_release(b[2].task.lent);
  int never = 0;
  run_until(l, &never, 400);
  CHECK_INT(gone.calls, 0, "a cancelled waiter is not called back");
  db_pool_stats(p, &open, &lent, &waiting);
  CHECK(open == 2 && lent == 0 && waiting == 0, "everything is back (%d open, %d lent, %d waiting)", open, lent, waiting);
  db_pool_close(p);
}

static void reset_and_loss(db_loop *l, const char *url) {
  db_pool_config cfg = {.size = 1, .wait_ms = 2000, .connect_ms = 5000, .full_reset = 1};
  db_error err;
  db_pool *p = db_pool_new(l, url, NULL, &cfg, &err);
  borrower a, b, c;
  borrower_init(&a);
  borrower_init(&b);
  borrower_init(&c);
  if (!CHECK(p && acquire(p, l, &a, 5000), "a pool with the full reset lends")) return;
  db_conn *conn = db_lent_conn(a.task.lent);
  db_exec_simple(conn, "SELECT set_config('app.left', 'x', false), pg_advisory_lock(77)", &err);
  long long pid = scalar(conn, "SELECT pg_backend_pid()");
  db_pool_release(a.task.lent);
  if (!CHECK(acquire(p, l, &b, 5000), "lent again after the reset")) return;
  conn = db_lent_conn(b.task.lent);
  CHECK_INT(scalar(conn, "SELECT pg_backend_pid()"), pid, "... the same session");
  CHECK_INT(scalar(conn, "SELECT coalesce(current_setting('app.left', true), '') = ''"), 1, "... its setting reset");
  CHECK_INT(scalar(conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"),
            0, "... its advisory lock released");
  db_pool_release(b.task.lent);

  /* the idle session is terminated: the pool replaces it */
  db_conn *admin;
  if (!CHECK(db_connect(url, NULL, &admin, &err) == 0, "an admin connection")) return;
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", pid);
  CHECK_INT(scalar(admin, sql), 1, "the idle session is terminated");
  db_close(admin);
  int never = 0;
  run_until(l, &never, 500);
  if (!CHECK(acquire(p, l, &c, 5000), "a connection is lent after that")) return;
  conn = db_lent_conn(c.task.lent);
  long long now = scalar(conn, "SELECT pg_backend_pid()");
  CHECK(now > 0 && now != pid, "... a new session (%lld, was %lld)", now, pid);
  db_pool_release(c.task.lent);
  db_pool_close(p);
}

static void down(db_loop *l) {
  db_pool_config cfg = {.size = 2, .wait_ms = 3000, .connect_ms = 3000};
  db_error err;
  /* port 1 on the loopback: nothing listens there */
  db_pool *p = db_pool_new(l, "postgresql://u:secret@127.0.0.1:1/db", NULL, &cfg, &err);
  if (!CHECK(p != NULL, "a pool for a server that is down")) return;
  borrower a, b;
  borrower_init(&a);
  borrower_init(&b);
  double t0 = th_clock_ms();
  int rc = db_pool_acquire(p, &a.task);
  if (rc == 0) run_until(l, &a.calls, 3000);
  double took = th_clock_ms() - t0;
  CHECK((rc < 0 || a.task.failed) && strcmp(a.task.err.sqlstate, "08001") == 0,
        "a borrower fails with 08001 (%s)", a.task.err.message);
  CHECK(took < 500, "... at once, not at the deadline (%.0f ms)", took);
  CHECK(!strstr(a.task.err.message, "secret"), "... and the message holds no password");
  CHECK_INT(db_pool_acquire(p, &b.task), -1, "the next one fails at once too (the retry waits a moment)");
  db_pool_close(p);
}

/* A stop that cannot wait: db_loop_abort ends the waits of a borrower
 * waiting for a connection and of one whose statement never ends. */
static void aborted(const char *url) {
  db_loop *l = db_loop_new();
  db_pool_config cfg = {.size = 1, .wait_ms = 60000, .connect_ms = 5000};
  db_error err;
  db_pool *p = l ? db_pool_new(l, url, NULL, &cfg, &err) : NULL;
  borrower a, b, c, sleeping;
  borrower_init(&a);
  borrower_init(&b);
  borrower_init(&c);
  borrower_init(&sleeping);
  if (!CHECK(p && acquire(p, l, &a, 5000), "a pool of 1 lends")) return;
  db_conn *conn = db_lent_conn(a.task.lent);
  const char *sql = "SELECT pg_sleep(600)";
  CHECK_INT(db_send(conn, sql, strlen(sql), 0, NULL, 0, &err), 0, "a statement that never ends is sent");
  CHECK_INT(db_pool_wait(a.task.lent, &sleeping.task), 0, "... and waited on");
  CHECK_INT(db_pool_acquire(p, &b.task), 0, "a second borrower waits for the connection");
  db_error why;
  db_error_set(&why, "57P01", NULL, "the server is stopping");
  double t0 = th_clock_ms();
  db_loop_abort(l, &why);
  CHECK_INT(b.calls + sleeping.calls, 0, "nobody is called back from db_loop_abort itself");
  run_until(l, &b.calls, 2000);
  run_until(l, &sleeping.calls, 2000);
  CHECK(b.calls == 1 && b.task.failed && strcmp(b.task.err.sqlstate, "57P01") == 0,
        "the waiting borrower fails with the abort's error (%s)", b.task.err.message);
  CHECK(sleeping.calls == 1 && th_clock_ms() - t0 < 1000, "the statement's wait ends at once");
  CHECK_INT(db_finish(NULL, conn, &err), -1, "... and the statement fails");
  CHECK(strncmp(err.sqlstate, "08", 2) == 0, "... as a connection lost (%s: %s)", err.sqlstate, err.message);
  CHECK_INT(db_pool_acquire(p, &c.task), -1, "nothing more is lent");
  CHECK(strcmp(c.task.err.sqlstate, "57P01") == 0, "... with the abort's error (%s)", c.task.err.message);
  db_pool_release(a.task.lent);
  db_pool_close(p);
  db_loop_free(l);
  db_conn *admin;   /* (the session is gone; its backend may sleep on) */
  if (db_connect(url, NULL, &admin, &err) == 0) {
    db_exec_simple(admin, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                          "WHERE query = 'SELECT pg_sleep(600)'", &err);
    db_close(admin);
  }
}

int main(void) {
  const char *url = getenv("TEST_PG_URL");
  if (!url) {
    printf("# TEST_PG_URL is not set: no PostgreSQL to test the pool on\n");
    CHECK(0, "TEST_PG_URL is set");
    return check_summary();
  }
  db_loop *l = db_loop_new();
  if (!CHECK(l != NULL, "a loop")) return check_summary();
  statements(l, url);
  bounds(l, url);
  reset_and_loss(l, url);
  down(l);
  db_loop_free(l);
  aborted(url);
  return check_summary();
}
