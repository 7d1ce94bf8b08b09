/* test_db_async.c: db.h's asynchronous calls (what a server's pool uses)
 * never wait for PostgreSQL. The statement cache is full and a new
 * statement evicts a prepared one while the session's server process is
 * stopped (SIGSTOP): db_send must return at once. A watchdog (SIGALRM)
 * continues the process when a call waits for it, and the check fails.
 * The evicted statement is dropped on the server all the same, with the
 * session reset a pool sends before lending the connection again.
 * Needs TEST_PG_URL (the harness's throwaway PostgreSQL). */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "db.h"
#include "db_pool.h"

static volatile sig_atomic_t stopped_pid, waited;

static void watchdog(int sig) {
  (void)sig;
  waited = 1;
  if (stopped_pid > 0) kill((pid_t)stopped_pid, SIGCONT);
}

/* Polls c until its operation is ready: 0, or -1 after 10 s. */
static int wait_ready(db_conn *c) {
  for (int i = 0; i < 1000; i++) {
    int want = db_poll(c);
    if (want <= 0) return 0;
    struct pollfd p = {.fd = db_socket(c),
                       .events = (short)((want & DB_WANT_READ ? POLLIN : 0) | (want & DB_WANT_WRITE ? POLLOUT : 0))};
    poll(&p, 1, 10);
  }
  return -1;
}

/* Runs sql with one integer parameter (or none when n is 0); returns the
 * first column of the first row as an integer, or -1. */
static long run(db_conn *c, const char *sql, int n, long param) {
  db_value v = {.type = DB_INT, .u.i = param};
  db_error err;
  db_cursor *cur = calloc(1, db_cursor_size());
  long out = -1;
  if (db_send(c, sql, strlen(sql), n, &v, 0, &err) == 0 && wait_ready(c) == 0 &&
      db_finish(cur, c, &err) == 0 && db_cursor_next(cur, &err) > 0) {
    db_value got;
    db_cursor_value(cur, 0, &got);
    out = got.type == DB_INT ? (long)got.u.i : got.type == DB_TEXT ? atol(got.u.s.p) : -1;
  }
  db_cursor_close(cur);
  free(cur);
  return out;
}

/* ---- the pool: a socket libpq closed is never taken out of the loop's
 * set by number (that number may be another connection's by then) ---- */

static void task_done(db_task *t) { *(int *)t->ud = 1; }

/* Runs l until *flag is set: 1, or 0 after ms. */
static int run_until(db_loop *l, int *flag, int ms) {
  for (int waited = 0; !*flag && waited < ms; waited += 10) {
    struct pollfd p = {.fd = db_loop_fd(l), .events = POLLIN};
    int ready = poll(&p, 1, 10) == 1;
    db_loop_run(l, ready);
  }
  return *flag;
}

/* A connection lent from a new pool on l (waiting for it), or NULL. */
static db_lent *lend(db_loop *l, db_pool **pool, const char *url) {
  db_pool_config cfg = {.size = 2, .wait_ms = 3000, .connect_ms = 3000};
  db_error err;
  *pool = db_pool_new(l, url, NULL, &cfg, &err);
  if (!*pool) return NULL;
  int flag = 0;
  db_task t;
  memset(&t, 0, sizeof t);
  t.done = task_done;
  t.ud = &flag;
  int rc = db_pool_acquire(*pool, &t);
  if (rc == 0 && run_until(l, &flag, 5000) && !t.failed) rc = 1;
  return rc == 1 ? t.lent : NULL;
}

static void test_pool_socket_numbers(const char *url) {
  db_loop *l = db_loop_new();
  db_pool *p1, *p2;
  db_lent *first = lend(l, &p1, url);
  if (!CHECK(first != NULL, "pool: a connection lent")) return;
  long pid = run(db_lent_conn(first), "SELECT pg_backend_pid()", 0, 0);
  db_conn *admin;
  db_error err;
  CHECK(db_connect(url, NULL, &admin, &err) == 0, "pool: an admin connection");
  db_cursor *cur = calloc(1, db_cursor_size());
  db_value v = {.type = DB_INT, .u.i = pid};
  db_cursor_open(cur, admin, "SELECT pg_terminate_backend($1)", 31, 1, &v, 0, &err);
  db_cursor_close(cur);
  free(cur);
  db_close(admin);
  usleep(200 * 1000);
  int old_fd = db_socket(db_lent_conn(first));
  /* the borrower finds its connection lost (libpq closes the socket),
   * with no loop run in between */
  CHECK_INT(db_lost(db_lent_conn(first)), 1, "pool: the lent connection is found lost");
  db_lent *second = lend(l, &p2, url);   /* its socket may get the old number */
  if (!CHECK(second != NULL, "pool: a connection of another pool lent")) return;
  printf("# old socket %d, new one %d\n", old_fd, db_socket(db_lent_conn(second)));
  db_pool_release(first);   /* (the lost one: dropped) */
  int flag = 0;
  db_task t;
  memset(&t, 0, sizeof t);
  t.done = task_done;
  t.ud = &flag;
  const char *sql = "SELECT 7";
  int done = db_send(db_lent_conn(second), sql, strlen(sql), 0, NULL, 0, &err) == 0 &&
             (db_pool_wait(second, &t) == 1 || run_until(l, &flag, 3000));
  CHECK(done, "pool: the other connection still gets its answer after the lost one is dropped");
  cur = calloc(1, db_cursor_size());
  if (done) CHECK(db_finish(cur, db_lent_conn(second), &err) == 0, "pool: and finishes it");
  db_cursor_close(cur);
  free(cur);
  db_pool_release(second);
  db_pool_close(p1);
  db_pool_close(p2);
  db_loop_free(l);
}

int main(void) {
  const char *url = getenv("TEST_PG_URL");
  if (!url || !*url) {
    printf("ok - skipped: no TEST_PG_URL\n");
    return check_summary();
  }
  db_conn *c;
  db_error err;
  if (!CHECK(db_connect_start(url, NULL, &c, &err) == 0 && wait_ready(c) == 0 &&
             db_connect_finish(c, &err) == 0, "connects without waiting"))
    return check_summary();
  long pid = run(c, "SELECT pg_backend_pid()", 0, 0);
  CHECK(pid > 0, "the session's server process");

  /* 200 statements (the cache's size), each used twice: prepared */
  char sql[96];
  int good = 1;
  for (int k = 1; k <= 200 && good; k++) {
    snprintf(sql, sizeof sql, "SELECT $1::int + %d", k);
    good = run(c, sql, 1, 1) == 1 + k && run(c, sql, 1, 2) == 2 + k;
  }
  CHECK(good, "200 statements prepared");

  signal(SIGALRM, watchdog);
  stopped_pid = (sig_atomic_t)pid;
  kill((pid_t)pid, SIGSTOP);
  alarm(2);
  int sent = db_send(c, "SELECT $1::int + 1000", strlen("SELECT $1::int + 1000"), 1,
                     &(db_value){.type = DB_INT, .u.i = 1}, 0, &err);
  alarm(0);
  kill((pid_t)pid, SIGCONT);
  stopped_pid = 0;
  CHECK_INT(waited, 0, "db_send evicting a prepared statement does not wait for the server");
  CHECK_INT(sent, 0, "the 201st statement is sent");
  db_cursor *cur = calloc(1, db_cursor_size());
  CHECK(wait_ready(c) == 0 && db_finish(cur, c, &err) == 0, "and runs");
  db_cursor_close(cur);
  free(cur);

  /* the pool's reset drops what was evicted on the server */
  int rc = db_send_reset(c, 0, &err);
  if (rc > 0) rc = wait_ready(c) == 0 && db_finish(NULL, c, &err) == 0 ? 0 : -1;
  CHECK_INT(rc, 0, "the session reset");
  CHECK_INT(run(c, "SELECT count(*)::int FROM pg_prepared_statements", 0, 0), 199,
            "the evicted statement no longer exists on the server");
  db_close(c);
  test_pool_socket_numbers(url);
  return check_summary();
}
