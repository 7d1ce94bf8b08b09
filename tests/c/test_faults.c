/* test_faults.c: nothing is done twice. A lost PostgreSQL connection is
 * re-established and the statement sent again only when the old connection
 * was found closed before the statement left; when it broke after, the
 * caller is told the outcome is unknown (SQLSTATE 08007).
 *
 * The fault: a TCP proxy (a thread of this test) between db.h and the
 * throwaway PostgreSQL of TEST_PG_URL. Armed with a command tag ("INSERT",
 * "COMMIT"), it forwards the server's next CommandComplete message with that
 * tag, swallows what follows up to ReadyForQuery (so the server has
 * finished, committed, before the client learns anything), and closes both
 * sides: the client got the statement's success and then lost the
 * connection. Later connections go through untouched. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "check.h"
#include "db.h"

/* ---- the proxy --------------------------------------------------------- */

#define PAIRS 16

typedef struct pair {
  int client, server;              /* -1 when unused */
  unsigned char head[5];           /* server->client framing: type + int32 length */
  int nhead;
  uint32_t left;                   /* body bytes of the current message still to come */
  char tag[8];                     /* the start of a CommandComplete body */
  int ntag;
  int cutting;                     /* forwarded the armed CommandComplete: swallow to 'Z' */
} pair;

typedef struct proxy {
  int listener, wake[2];
  struct sockaddr_in target;
  pthread_t thread;
  pthread_mutex_t mu;
  char armed[8];                   /* cut after the next CommandComplete with this tag */
  int cuts;                        /* cuts done */
  pair pairs[PAIRS];
} proxy;

static void pair_close(pair *p) {
  if (p->client >= 0) close(p->client);
  if (p->server >= 0) close(p->server);
  memset(p, 0, sizeof *p);
  p->client = p->server = -1;
}

static int write_all(int fd, const unsigned char *b, size_t n) {
  while (n) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Forwards what the server sent (b[0..n)), walking the v3 message framing:
 * returns 1 when the pair must be closed now (the cut is done), 0 to go on,
 * -1 on a socket error. */
static int from_server(proxy *px, pair *p, const unsigned char *b, size_t n) {
  size_t start = 0, i = 0;
  while (i < n) {
    if (p->nhead < 5) {
      p->head[p->nhead++] = b[i++];
      if (p->nhead == 5) {
        p->left = ((uint32_t)p->head[1] << 24 | (uint32_t)p->head[2] << 16 |
                   (uint32_t)p->head[3] << 8 | p->head[4]) - 4;
        p->ntag = 0;
      }
    } else {
      size_t k = n - i < p->left ? n - i : p->left;
      for (size_t j = 0; j < k && p->ntag < (int)sizeof p->tag - 1; j++)
        p->tag[p->ntag++] = (char)b[i + j];
      i += k;
      p->left -= (uint32_t)k;
    }
    if (p->nhead == 5 && p->left == 0) {   /* a whole message ends at i */
      char type = (char)p->head[0];
      p->tag[p->ntag] = '\0';
      p->nhead = 0;
      if (p->cutting) {
        start = i;
        if (type == 'Z') return 1;
        continue;
      }
      pthread_mutex_lock(&px->mu);
      int cut = type == 'C' && px->armed[0] && strncmp(p->tag, px->armed, strlen(px->armed)) == 0;
      if (cut) { px->armed[0] = '\0'; px->cuts++; }
      pthread_mutex_unlock(&px->mu);
      if (cut) {
        if (write_all(p->client, b + start, i - start) < 0) return -1;
        start = i;
        p->cutting = 1;
      }
    }
  }
  if (!p->cutting && start < n && write_all(p->client, b + start, n - start) < 0) return -1;
  return 0;
}

static void *proxy_main(void *arg) {
  proxy *px = arg;
  unsigned char buf[65536];
  for (;;) {
    struct pollfd fds[2 + 2 * PAIRS];
    int nf = 0;
    fds[nf++] = (struct pollfd){px->wake[0], POLLIN, 0};
    fds[nf++] = (struct pollfd){px->listener, POLLIN, 0};
    for (int k = 0; k < PAIRS; k++) {
      fds[nf++] = (struct pollfd){px->pairs[k].client, POLLIN, 0};
      fds[nf++] = (struct pollfd){px->pairs[k].server, POLLIN, 0};
    }
    if (poll(fds, (nfds_t)nf, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) break;
    if (fds[1].revents & POLLIN) {
      int c = accept(px->listener, NULL, NULL);
      int s = c < 0 ? -1 : socket(AF_INET, SOCK_STREAM, 0);
      int k = 0;
      while (k < PAIRS && px->pairs[k].client >= 0) k++;
      if (c >= 0 && (s < 0 || k == PAIRS ||
                     connect(s, (struct sockaddr *)&px->target, sizeof px->target) < 0)) {
        close(c);
        if (s >= 0) close(s);
      } else if (c >= 0) {
        px->pairs[k].client = c;
        px->pairs[k].server = s;
      }
    }
    for (int k = 0; k < PAIRS; k++) {
      pair *p = &px->pairs[k];
      short rc = fds[2 + 2 * k].revents, rs = fds[3 + 2 * k].revents;
      if (p->client < 0) continue;
      if (rc) {
        ssize_t n = recv(p->client, buf, sizeof buf, 0);
        if (n <= 0 || (!p->cutting && write_all(p->server, buf, (size_t)n) < 0)) {
          pair_close(p);
          continue;
        }
      }
      if (rs) {
        ssize_t n = recv(p->server, buf, sizeof buf, 0);
        if (n <= 0 || from_server(px, p, buf, (size_t)n) != 0) pair_close(p);
      }
    }
  }
  for (int k = 0; k < PAIRS; k++) pair_close(&px->pairs[k]);
  return NULL;
}

/* Starts a proxy to the server of url on 127.0.0.1; *port gets its port.
 * 0, or -1. */
static int proxy_start(proxy *px, const char *url, int *port) {
  memset(px, 0, sizeof *px);
  for (int k = 0; k < PAIRS; k++) px->pairs[k].client = px->pairs[k].server = -1;
  PQconninfoOption *opts = PQconninfoParse(url, NULL);
  if (!opts) return -1;
  const char *host = "127.0.0.1", *pgport = "5432";
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    if (strcmp(o->keyword, "hostaddr") == 0 && o->val && *o->val) host = o->val;
    if (strcmp(o->keyword, "host") == 0 && o->val && *o->val) host = o->val;
    if (strcmp(o->keyword, "port") == 0 && o->val && *o->val) pgport = o->val;
  }
  px->target.sin_family = AF_INET;
  px->target.sin_port = htons((uint16_t)atoi(pgport));
  int ok = inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
                     &px->target.sin_addr) == 1;
  PQconninfoFree(opts);
  if (!ok) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  px->listener = socket(AF_INET, SOCK_STREAM, 0);
  if (px->listener < 0 || bind(px->listener, (struct sockaddr *)&a, sizeof a) < 0 ||
      listen(px->listener, 16) < 0 || getsockname(px->listener, (struct sockaddr *)&a, &len) < 0 ||
      pipe(px->wake) < 0) {
    if (px->listener >= 0) close(px->listener);
    return -1;
  }
  *port = ntohs(a.sin_port);
  pthread_mutex_init(&px->mu, NULL);
  if (pthread_create(&px->thread, NULL, proxy_main, px) != 0) return -1;
  return 0;
}

static void proxy_arm(proxy *px, const char *tag) {
  pthread_mutex_lock(&px->mu);
  snprintf(px->armed, sizeof px->armed, "%s", tag);
  pthread_mutex_unlock(&px->mu);
}

static int proxy_cuts(proxy *px) {
  pthread_mutex_lock(&px->mu);
  int n = px->cuts;
  pthread_mutex_unlock(&px->mu);
  return n;
}

static void proxy_stop(proxy *px) {
  if (write(px->wake[1], "x", 1) != 1) return;
  pthread_join(px->thread, NULL);
  close(px->wake[0]);
  close(px->wake[1]);
  close(px->listener);
  pthread_mutex_destroy(&px->mu);
}

/* ---- helpers ------------------------------------------------------------- */

static int64_t scalar(db_conn *c, const char *sql) {
  db_cursor *cur = calloc(1, db_cursor_size());
  db_error err;
  int64_t v = -999;
  if (db_cursor_open(cur, c, sql, strlen(sql), 0, NULL, 0, &err) == 0 &&
      db_cursor_next(cur, &err) == 1) {
    db_value out;
    db_cursor_value(cur, 0, &out);
    if (out.type == DB_INT) v = out.u.i;
    else if (out.type == DB_BOOL) v = out.u.b;
  }
  db_cursor_close(cur);
  free(cur);
  return v;
}

static int64_t rows(db_conn *admin) { return scalar(admin, "SELECT count(*) FROM fault_items"); }

static int unknown_outcome(const db_error *err) {
  return strcmp(err->sqlstate, "08007") == 0 &&
         strstr(err->message, "may or may not have been applied") != NULL &&
         strchr(err->message, '\n') == NULL;
}

/* Terminates c's server process from admin and waits until it is gone. */
static int terminate(db_conn *admin, db_conn *c) {
  int64_t pid = scalar(c, "SELECT pg_backend_pid()");
  char sql[200];
  snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", (long long)pid);
  if (scalar(admin, sql) != 1) return 0;
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %lld", (long long)pid);
  for (int i = 0; i < 500; i++) {
    if (scalar(admin, sql) == 0) return 1;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

/* ---- the cases ------------------------------------------------------------- */

static void cut_after_insert(db_conn *admin, proxy *px, const char *via) {
  db_conn *c;
  db_error err;
  if (!CHECK(db_connect(via, NULL, &c, &err) == 0, "connect through the proxy (%s)", err.message)) return;
  db_exec_simple(admin, "DELETE FROM fault_items", &err);

  /* db_exec_simple: the simple query protocol */
  proxy_arm(px, "INSERT");
  int rc = db_exec_simple(c, "INSERT INTO fault_items (title) VALUES ('once')", &err);
  CHECK_INT(rc, -1, "an INSERT whose connection broke after CommandComplete is not reported as done");
  CHECK(unknown_outcome(&err), "... it says the outcome is unknown (%s: %s)", err.sqlstate, err.message);
  CHECK_INT(proxy_cuts(px), 1, "... the proxy cut the connection once");
  CHECK_INT(rows(admin), 1, "... and it is not run again: the table holds one row");
  CHECK_INT(scalar(c, "SELECT 41 + 1"), 42, "the next statement reconnects by itself");

  /* db_cursor_open with parameters: the extended protocol, unnamed, then prepared */
  for (int use = 0; use < 2; use++) {
    db_exec_simple(admin, "DELETE FROM fault_items", &err);
    db_cursor *cur = calloc(1, db_cursor_size());
    const char *sql = "INSERT INTO fault_items (title) VALUES ($1)";
    db_value p = {.type = DB_TEXT, .u.s = {"param", 5}};
    if (use == 1) {   /* the second use is prepared on the server: use it once, unbroken */
      db_cursor_open(cur, c, sql, strlen(sql), 1, &p, 0, &err);
      db_cursor_close(cur);
      db_exec_simple(admin, "DELETE FROM fault_items", &err);
    }
    proxy_arm(px, "INSERT");
    rc = db_cursor_open(cur, c, sql, strlen(sql), 1, &p, 0, &err);
    db_cursor_close(cur);
    free(cur);
    CHECK_INT(rc, -1, "a parameterised INSERT (%s) cut after CommandComplete fails", use ? "prepared" : "first use");
    CHECK(unknown_outcome(&err), "... with the outcome unknown (%s: %s)", err.sqlstate, err.message);
    CHECK_INT(rows(admin), 1, "... and one row");
  }

  /* COMMIT of a transaction: its outcome is unknown too, not "rolled back" */
  db_exec_simple(admin, "DELETE FROM fault_items", &err);
  db_begin(c, &err);
  db_exec_simple(c, "INSERT INTO fault_items (title) VALUES ('tx')", &err);
  proxy_arm(px, "COMMIT");
  rc = db_commit(c, &err);
  CHECK_INT(rc, -1, "a COMMIT whose answer is lost fails");
  CHECK(unknown_outcome(&err), "... saying the outcome is unknown, not rolled back (%s: %s)", err.sqlstate, err.message);
  CHECK_INT(rows(admin), 1, "... (it was committed)");
  db_close(c);
}

static void retry_when_found_closed(db_conn *admin, const char *url) {
  db_conn *c;
  db_error err;
  if (!CHECK(db_connect(url, NULL, &c, &err) == 0, "connect (%s)", err.message)) return;
  db_exec_simple(admin, "DELETE FROM fault_items", &err);
  int64_t before = scalar(c, "SELECT pg_backend_pid()");
  CHECK(terminate(admin, c), "an idle connection is terminated");
  int rc = db_exec_simple(c, "INSERT INTO fault_items (title) VALUES ('retried')", &err);
  CHECK_INT(rc, 0, "an INSERT on a connection found closed before sending runs on a new one (%s)", rc ? err.message : "");
  CHECK_INT(rows(admin), 1, "... exactly once");
  CHECK(scalar(c, "SELECT pg_backend_pid()") != before, "... on a new server process");

  CHECK(terminate(admin, c), "terminated again");
  db_cursor *cur = calloc(1, db_cursor_size());
  const char *sql = "INSERT INTO fault_items (title) VALUES ($1)";
  db_value p = {.type = DB_TEXT, .u.s = {"again", 5}};
  rc = db_cursor_open(cur, c, sql, strlen(sql), 1, &p, 0, &err);
  db_cursor_close(cur);
  free(cur);
  CHECK_INT(rc, 0, "a parameterised INSERT on a connection found closed runs on a new one (%s)", rc ? err.message : "");
  CHECK_INT(rows(admin), 2, "... exactly once");

  /* inside a transaction a connection found closed is not replaced */
  db_begin(c, &err);
  CHECK(terminate(admin, c), "terminated inside a transaction");
  rc = db_exec_simple(c, "INSERT INTO fault_items (title) VALUES ('in tx')", &err);
  CHECK(rc == -1 && strcmp(err.sqlstate, "08006") == 0 && strstr(err.message, "rolled back"),
        "inside a transaction: an error saying it was rolled back (%s)", err.message);
  rc = db_commit(c, &err);
  CHECK(rc == -1 && strstr(err.message, "rolled back"),
        "... and its COMMIT is not run on a new connection (%s)", err.message);
  CHECK_INT(rows(admin), 2, "... nothing of it was written");
  CHECK_INT(scalar(c, "SELECT 1"), 1, "outside the transaction it reconnects");

  /* a transaction opened with a plain BEGIN (no depth): the same rule */
  db_exec_simple(admin, "DELETE FROM fault_items", &err);
  db_exec_simple(c, "BEGIN", &err);
  db_exec_simple(c, "INSERT INTO fault_items (title) VALUES ('first')", &err);
  CHECK(terminate(admin, c), "terminated inside a transaction opened by a plain BEGIN");
  rc = db_exec_simple(c, "INSERT INTO fault_items (title) VALUES ('second')", &err);
  CHECK(rc == -1 && strcmp(err.sqlstate, "08006") == 0 && strstr(err.message, "rolled back"),
        "after a plain BEGIN: an error saying the transaction was rolled back (%s)", rc ? err.message : "no error");
  CHECK_INT(rows(admin), 0, "... and nothing of it, nor the statement after, was written");
  rc = db_exec_simple(c, "INSERT INTO fault_items (title) VALUES ('later')", &err);
  CHECK_INT(rc, 0, "the statement after that error runs on a new connection (%s)", rc ? err.message : "");
  CHECK_INT(rows(admin), 1, "... once");
  db_close(c);
}

int main(void) {
  const char *url = getenv("TEST_PG_URL");
  if (!url || !*url) {
    printf("ok - # SKIP TEST_PG_URL is not set\n");
    return check_summary();
  }
  db_conn *admin;
  db_error err;
  if (!CHECK(db_connect(url, NULL, &admin, &err) == 0, "connect (%s)", err.message)) return check_summary();
  db_exec_simple(admin, "DROP TABLE IF EXISTS fault_items", &err);
  db_exec_simple(admin, "CREATE TABLE fault_items (id serial PRIMARY KEY, title text NOT NULL)", &err);

  proxy px;
  int port = 0;
  if (CHECK(proxy_start(&px, url, &port) == 0, "the fault proxy starts")) {
    /* the same database, through the proxy; no SSL or GSS negotiation */
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    const char *user = "", *pass = "", *dbname = "";
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
      if (!o->val) continue;
      if (strcmp(o->keyword, "user") == 0) user = o->val;
      if (strcmp(o->keyword, "password") == 0) pass = o->val;
      if (strcmp(o->keyword, "dbname") == 0) dbname = o->val;
    }
    char via[600];
    snprintf(via, sizeof via, "postgresql://%s:%s@127.0.0.1:%d/%s?sslmode=disable&gssencmode=disable",
             user, pass, port, dbname);
    PQconninfoFree(opts);
    cut_after_insert(admin, &px, via);
    proxy_stop(&px);
  }
  retry_when_found_closed(admin, url);
  db_exec_simple(admin, "DROP TABLE IF EXISTS fault_items", &err);
  db_close(admin);
  return check_summary();
}
