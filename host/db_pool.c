/*
 * db_pool.c: bounded PostgreSQL connection pools on one event-loop thread
 * (see db_pool.h): connecting, lending, waiting, taking back, replacing.
 *
 * Every connection of every pool of a loop is in the loop's epoll set,
 * with the connection (a struct db_lent) as its data: idle and lent ones
 * for reading (a terminated session says so, and is dropped at once),
 * others for what db_poll asks. Borrowers' callbacks are only ever made
 * from db_loop_run, from its ready list: a borrower's own call never calls
 * it back. Connections and pools that end while db_loop_run is going
 * through a batch of events are freed when it is done with the batch.
 */
#include "db_pool.h"

#include "clock.h"
#include "dburl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { S_CONNECTING, S_IDLE, S_LENT, S_RESETTING, S_LOOSE, S_DEAD };   /* S_LOOSE: counted nowhere */
enum { T_NONE, T_QUEUED, T_READY, T_ON_CONN };   /* where a task is (db_task.queued) */

struct db_lent {
  db_pool *pool;
  db_conn *conn;
  int state;                    /* S_* */
  int fd;                       /* in the epoll set, or -1 */
  unsigned events;              /* EPOLLIN, EPOLLOUT */
  double deadline;              /* S_CONNECTING: give up then */
  db_task *task;                /* S_LENT: waits on the operation */
  struct db_lent *prev, *next;  /* in pool->slots, or loop->graveyard */
  struct db_lent *idle_prev, *idle_next;
};

struct db_pool {
  db_loop *loop;
  db_pool *prev, *next;         /* in loop->pools */
  char *url;
  db_options opt;
  db_pool_config cfg;
  struct db_lent *slots;        /* every connection not dead */
  struct db_lent *idle;         /* idle ones, most recently used first */
  int open, connecting, lent, nidle;
  db_task *wait_head, *wait_tail;   /* borrowers waiting, oldest first */
  int nwait;
  db_error last_err;            /* why the last connection attempt failed */
  double retry_at;              /* before then, nothing in hand: fail at once */
  int backoff_ms;
  int closing, dead;
};

struct db_loop {
  int epfd;
  db_pool *pools;
  struct db_lent *graveyard;    /* slots ended during a run */
  db_task *ready_head, *ready_tail;   /* borrowers to call back */
  int running;
  int aborted;                  /* db_loop_abort: nothing more is lent or made */
  db_error abort_err;
};

/* ---- task lists -------------------------------------------------------- */

static void task_unlink(db_task **head, db_task **tail, db_task *t) {
  if (t->prev) t->prev->next = t->next; else *head = t->next;
  if (t->next) t->next->prev = t->prev; else *tail = t->prev;
  t->prev = t->next = NULL;
}

static void task_append(db_task **head, db_task **tail, db_task *t) {
  t->next = NULL;
  t->prev = *tail;
  if (*tail) (*tail)->next = t; else *head = t;
  *tail = t;
}

/* t's wait is over: it is called back at the end of the loop's run. */
static void make_ready(db_loop *l, db_task *t) {
  t->queued = T_READY;
  task_append(&l->ready_head, &l->ready_tail, t);
}

static void fail_task(db_loop *l, db_task *t, const db_error *err) {
  t->failed = 1;
  t->err = *err;
  make_ready(l, t);
}

static db_task *pop_waiter(db_pool *p) {
  db_task *t = p->wait_head;
  if (!t) return NULL;
  task_unlink(&p->wait_head, &p->wait_tail, t);
  p->nwait--;
  t->queued = T_NONE;
  return t;
}

/* ---- slots -------------------------------------------------------------- */

/* Watches s's socket for want (DB_WANT_* bits; idle and lent connections:
 * reading). A socket libpq closed (a lost connection, or the next address
 * tried while connecting) left the set by itself, and its number may be
 * another connection's socket by now: it is never deleted by number here.
 * The same number can come back as a new socket of s while connecting: it
 * is added again then. */
static void set_watch(struct db_lent *s, int want) {
  int epfd = s->pool->loop->epfd;
  int fd = s->conn ? db_socket(s->conn) : -1;
  unsigned events = (want & DB_WANT_READ ? EPOLLIN : 0) | (want & DB_WANT_WRITE ? EPOLLOUT : 0);
  struct epoll_event ev = {.events = events, .data.ptr = s};
  if (fd != s->fd || s->state == S_CONNECTING) {
    s->fd = -1;
    if (fd < 0) return;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ||
        (errno == EEXIST && epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == 0)) {
      s->fd = fd;
      s->events = events;
    }
  } else if (fd >= 0 && events != s->events) {
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == 0) s->events = events;
  }
}

/* Takes s's socket out of the set, while libpq still holds it (see
 * set_watch). */
static void unwatch(struct db_lent *s) {
  if (s->fd >= 0 && s->conn && db_socket(s->conn) == s->fd)
    epoll_ctl(s->pool->loop->epfd, EPOLL_CTL_DEL, s->fd, NULL);
  s->fd = -1;
}

static void idle_push(db_pool *p, struct db_lent *s) {
  s->state = S_IDLE;
  s->idle_prev = NULL;
  s->idle_next = p->idle;
  if (p->idle) p->idle->idle_prev = s;
  p->idle = s;
  p->nidle++;
}

static void idle_remove(db_pool *p, struct db_lent *s) {
  if (s->idle_prev) s->idle_prev->idle_next = s->idle_next; else p->idle = s->idle_next;
  if (s->idle_next) s->idle_next->idle_prev = s->idle_prev;
  s->idle_prev = s->idle_next = NULL;
  p->nidle--;
}

static void pool_maybe_free(db_pool *p);

/* Closes s's connection and forgets it (freed now, or after the run). */
static void kill_slot(struct db_lent *s) {
  db_pool *p = s->pool;
  db_loop *l = p->loop;
  if (s->state == S_DEAD) return;
  unwatch(s);
  if (s->state == S_IDLE) idle_remove(p, s);
  if (s->state == S_CONNECTING) p->connecting--;
  if (s->state == S_LENT) p->lent--;
  if (s->task && s->task->queued == T_ON_CONN) s->task->queued = T_NONE;
  s->task = NULL;
  p->open--;
  if (s->prev) s->prev->next = s->next; else p->slots = s->next;
  if (s->next) s->next->prev = s->prev;
  db_close(s->conn);
  s->conn = NULL;
  s->state = S_DEAD;
  if (l->running) {
    s->prev = NULL;
    s->next = l->graveyard;
    l->graveyard = s;
  } else {
    free(s);
  }
}

/* Starts one more connection. 0, or -1 (why in p->last_err). */
static int start_connect(db_pool *p) {
  struct db_lent *s = calloc(1, sizeof *s);
  if (!s) {
    db_error_set(&p->last_err, "53200", NULL, "out of memory");
    return -1;
  }
  if (db_connect_start(p->url, &p->opt, &s->conn, &p->last_err) < 0) {
    free(s);
    return -1;
  }
  s->pool = p;
  s->fd = -1;
  s->state = S_CONNECTING;
  s->deadline = th_clock_ms() + p->cfg.connect_ms;
  s->next = p->slots;
  if (p->slots) p->slots->prev = s;
  p->slots = s;
  p->open++;
  p->connecting++;
  set_watch(s, DB_WANT_WRITE);   /* libpq: first wait until the socket can be written */
  return 0;
}

/* A connection was lost or failed: one is made in its place when the
 * pool is not full (in the background: no borrower needs to wait). */
static void replace(db_pool *p) {
  if (!p->closing && !p->loop->aborted && p->open < p->cfg.size) (void)start_connect(p);
}

/* s is ready for use: to the oldest waiter, or idle. */
static void give(struct db_lent *s) {
  db_pool *p = s->pool;
  if (p->closing || p->loop->aborted) {
    kill_slot(s);
    pool_maybe_free(p);
    return;
  }
  set_watch(s, DB_WANT_READ);
  db_task *t = pop_waiter(p);
  if (!t) {
    idle_push(p, s);
    return;
  }
  s->state = S_LENT;
  p->lent++;
  t->lent = s;
  make_ready(p->loop, t);
}

/* Fails every waiter: nothing is on its way to them. */
static void fail_waiters(db_pool *p, const db_error *err) {
  db_task *t;
  while ((t = pop_waiter(p)) != NULL) fail_task(p->loop, t, err);
}

/* A connection attempt failed (err): the next one waits a little (50 ms,
 * doubling to 1 s); waiters fail when nothing else can reach them. */
static void connect_failed(struct db_lent *s, const db_error *err) {
  db_pool *p = s->pool;
  p->last_err = *err;
  p->backoff_ms = p->backoff_ms ? (p->backoff_ms * 2 > 1000 ? 1000 : p->backoff_ms * 2) : 50;
  p->retry_at = th_clock_ms() + p->backoff_ms;
  kill_slot(s);
  if (p->connecting == 0 && p->lent == 0 && p->nidle == 0) fail_waiters(p, &p->last_err);
  pool_maybe_free(p);
}

/* The loop found s's socket ready (or s is due). */
static void slot_ready(struct db_lent *s) {
  db_pool *p = s->pool;
  db_error err;
  int st;
  switch (s->state) {
    case S_CONNECTING:
      st = db_poll(s->conn);
      if (st > 0) { set_watch(s, st); return; }
      if (db_connect_finish(s->conn, &err) < 0) {
        connect_failed(s, &err);
        return;
      }
      p->connecting--;
      s->state = S_LOOSE;
      p->backoff_ms = 0;
      give(s);
      return;
    case S_IDLE:
      if (db_poll(s->conn) < 0) {   /* the server ended the session */
        kill_slot(s);
        replace(p);
        pool_maybe_free(p);
      }
      return;
    case S_RESETTING:
      st = db_poll(s->conn);
      if (st > 0) { set_watch(s, st); return; }
      if (db_finish(NULL, s->conn, &err) < 0) {
        kill_slot(s);
        replace(p);
        pool_maybe_free(p);
        return;
      }
      give(s);
      return;
    case S_LENT:
      if (!s->task) {   /* nobody waits: read what came, or stop watching a closed socket */
        if (db_poll(s->conn) < 0) unwatch(s);
        return;
      }
      st = db_poll(s->conn);
      if (st > 0) { set_watch(s, st); return; }
      db_task *t = s->task;
      s->task = NULL;
      set_watch(s, DB_WANT_READ);
      make_ready(p->loop, t);
      return;
  }
}

/* ---- pools -------------------------------------------------------------- */

db_pool *db_pool_new(db_loop *l, const char *url, const db_options *opt,
                     const db_pool_config *cfg, db_error *err) {
  db_url u;   /* the URL is checked now, without connecting */
  if (db_url_parse(url, &u, err) < 0) return NULL;
  db_kind kind = u.kind;
  db_url_free(&u);
  if (kind != DB_POSTGRESQL) {
    db_error_set(err, "08001", "use a postgresql:// URL", "a connection pool needs PostgreSQL");
    return NULL;
  }
  db_pool *p = calloc(1, sizeof *p);
  char *copy = strdup(url);
  if (!p || !copy) {
    free(p);
    free(copy);
    db_error_set(err, "53200", NULL, "out of memory");
    return NULL;
  }
  p->loop = l;
  p->url = copy;
  if (opt) p->opt = *opt;
  p->cfg = *cfg;
  if (p->cfg.size < 1) p->cfg.size = 1;
  p->next = l->pools;
  if (l->pools) l->pools->prev = p;
  l->pools = p;
  return p;
}

static void pool_free(db_pool *p) {
  db_loop *l = p->loop;
  while (p->slots) kill_slot(p->slots);
  if (p->prev) p->prev->next = p->next; else l->pools = p->next;
  if (p->next) p->next->prev = p->prev;
  free(p->url);
  free(p);
}

/* Frees a closing pool once all its connections are back (after the
 * run when one is going: its slots may still be in the batch). */
static void pool_maybe_free(db_pool *p) {
  if (!p->closing || p->open > 0) return;
  if (p->loop->running) p->dead = 1;
  else pool_free(p);
}

void db_pool_close(db_pool *p) {
  if (!p || p->closing) return;
  p->closing = 1;
  db_error err;
  db_error_set(&err, "08003", "open it again", "the connection pool is closed");
  fail_waiters(p, &err);
  for (struct db_lent *s = p->slots, *next; s; s = next) {
    next = s->next;
    if (s->state != S_LENT) kill_slot(s);
  }
  pool_maybe_free(p);
}

void db_pool_stats(const db_pool *p, int *open, int *lent, int *waiting) {
  *open = p->open;
  *lent = p->lent;
  *waiting = p->nwait;
}

/* ---- borrowing ------------------------------------------------------------ */

int db_pool_acquire(db_pool *p, db_task *t) {
  t->pool = p;
  t->lent = NULL;
  t->failed = 0;
  t->queued = T_NONE;
  if (p->closing) {
    db_error_set(&t->err, "08003", "open it again", "the connection pool is closed");
    return -1;
  }
  if (p->loop->aborted) {
    t->err = p->loop->abort_err;
    return -1;
  }
  while (p->idle) {
    struct db_lent *s = p->idle;
    idle_remove(p, s);
    s->state = S_LOOSE;
    if (db_lost(s->conn)) {   /* found closed: nothing was sent on it */
      kill_slot(s);
      continue;
    }
    s->state = S_LENT;
    p->lent++;
    t->lent = s;
    return 1;
  }
  double now = th_clock_ms();
  if (p->open < p->cfg.size && p->connecting <= p->nwait) {
    if (p->connecting == 0 && p->lent == 0 && now < p->retry_at) {
      t->err = p->last_err;   /* it failed a moment ago: do not wait for the next failure */
      return -1;
    }
    if (start_connect(p) < 0 && p->connecting == 0 && p->lent == 0) {
      t->err = p->last_err;
      return -1;
    }
  }
  t->deadline = now + p->cfg.wait_ms;
  t->queued = T_QUEUED;
  task_append(&p->wait_head, &p->wait_tail, t);
  p->nwait++;
  return 0;
}

int db_pool_acquire_now(db_pool *p, db_lent **out, db_error *err) {
  *out = NULL;
  db_task t;
  memset(&t, 0, sizeof t);
  if (p->closing || p->loop->aborted || p->idle) {   /* (acquire lends or fails at once) */
    int rc = db_pool_acquire(p, &t);
    if (rc == 1) { *out = t.lent; return 1; }
    if (rc == 0) db_pool_cancel(&t);
    if (rc < 0) { *err = t.err; return -1; }
  }
  if (p->open >= p->cfg.size) {
    db_error_set(err, "53300", "run the first statement from the handler itself, or raise DB_POOL_SIZE",
                 "all %d database connections of this worker are in use, and this call cannot wait "
                 "for one (it runs where the request cannot pause: a coroutine of the handler's own, "
                 "a metamethod)", p->cfg.size);
    return -1;
  }
  struct db_lent *s = calloc(1, sizeof *s);
  if (!s) { db_error_set(err, "53200", NULL, "out of memory"); return -1; }
  if (db_connect(p->url, &p->opt, &s->conn, err) < 0) { free(s); return -1; }
  s->pool = p;
  s->fd = -1;
  s->state = S_LENT;
  s->next = p->slots;
  if (p->slots) p->slots->prev = s;
  p->slots = s;
  p->open++;
  p->lent++;
  set_watch(s, DB_WANT_READ);
  *out = s;
  return 1;
}

void db_pool_cancel(db_task *t) {
  db_pool *p = t->pool;
  if (!p) return;
  if (t->queued == T_QUEUED) {
    task_unlink(&p->wait_head, &p->wait_tail, t);
    p->nwait--;
  } else if (t->queued == T_READY) {
    task_unlink(&p->loop->ready_head, &p->loop->ready_tail, t);
    if (t->lent && !t->failed) db_pool_release(t->lent);   /* lent, never taken */
  } else if (t->queued == T_ON_CONN && t->lent && t->lent->task == t) {
    t->lent->task = NULL;
  }
  t->queued = T_NONE;
}

db_conn *db_lent_conn(const db_lent *l) { return l->conn; }

int db_pool_wait(db_lent *s, db_task *t) {
  int st = db_wants(s->conn);
  if (st <= 0) return 1;   /* ready, or lost (the finish call says so) */
  t->pool = s->pool;
  t->lent = s;
  t->failed = 0;
  t->queued = T_ON_CONN;
  s->task = t;
  set_watch(s, st);
  return 0;
}

void db_pool_release(db_lent *s) {
  db_pool *p = s->pool;
  db_conn *c = s->conn;
  s->task = NULL;
  p->lent--;
  s->state = S_LOOSE;
  if (p->closing || db_pending(c) || db_conn_busy(c)) {
    /* an operation cut short, or a rows() loop still reading: a new
     * connection is cheaper and safer than waiting for the rest */
    int closing = p->closing;
    kill_slot(s);
    if (!closing) replace(p);
    pool_maybe_free(p);
    return;
  }
  db_close_cursors(c);
  db_error err;
  int rc = db_send_reset(c, p->cfg.full_reset, &err);
  if (rc == 0) {
    give(s);
  } else if (rc > 0) {
    s->state = S_RESETTING;
    set_watch(s, DB_WANT_READ | DB_WANT_WRITE);
  } else {
    kill_slot(s);
    replace(p);
  }
}

/* ---- the loop ------------------------------------------------------------- */

db_loop *db_loop_new(void) {
  db_loop *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (l->epfd < 0) {
    free(l);
    return NULL;
  }
  return l;
}

void db_loop_free(db_loop *l) {
  if (!l) return;
  l->running = 0;
  while (l->pools) pool_free(l->pools);
  while (l->graveyard) {
    struct db_lent *s = l->graveyard;
    l->graveyard = s->next;
    free(s);
  }
  close(l->epfd);
  free(l);
}

int db_loop_fd(const db_loop *l) { return l->epfd; }

void db_loop_abort(db_loop *l, const db_error *err) {
  if (l->aborted) return;
  l->aborted = 1;
  l->abort_err = *err;
  for (db_pool *p = l->pools, *after; p; p = after) {
    after = p->next;
    fail_waiters(p, err);
    for (struct db_lent *s = p->slots, *next; s; s = next) {
      next = s->next;
      if (s->state != S_LENT) {
        kill_slot(s);
      } else if (s->conn && db_socket(s->conn) >= 0) {
        /* libpq keeps the socket (and closes it); it reads the end of the
         * stream now, and fails what runs or comes next as a connection
         * lost: the loop calls back whoever waits on it */
        shutdown(db_socket(s->conn), SHUT_RDWR);
        set_watch(s, DB_WANT_READ);
      }
    }
    pool_maybe_free(p);
  }
}

/* Waiters and connection attempts past their deadline fail. Returns the
 * nearest deadline left, or -1. */
static double expire(db_pool *p, double now) {
  double next = -1;
  db_error err;
  for (struct db_lent *s = p->slots, *after; s; s = after) {
    after = s->next;
    if (s->state != S_CONNECTING) continue;
    if (s->deadline <= now) {
      db_error_set(&err, "08001", "is PostgreSQL running and answering? try `make db-start`",
                   "PostgreSQL did not finish accepting a connection within %d ms",
                   p->cfg.connect_ms);
      connect_failed(s, &err);
    } else if (next < 0 || s->deadline < next) {
      next = s->deadline;
    }
  }
  while (p->wait_head && p->wait_head->deadline <= now) {
    db_task *t = pop_waiter(p);
    if (p->open > 0 && p->open == p->connecting)
      db_error_set(&err, "08001", "is PostgreSQL running and answering? try `make db-start`",
                   "no connection to PostgreSQL within %d ms: it has not answered yet",
                   p->cfg.wait_ms);
    else
      db_error_set(&err, "53300",
                   "raise DB_POOL_SIZE (within PostgreSQL's max_connections) or DB_POOL_TIMEOUT, "
                   "or make the statements faster",
                   "all %d database connections of this worker were busy for %d ms",
                   p->cfg.size, p->cfg.wait_ms);
    fail_task(p->loop, t, &err);
  }
  if (p->wait_head && (next < 0 || p->wait_head->deadline < next)) next = p->wait_head->deadline;
  return next;
}

int db_loop_run(db_loop *l, int ready) {
  struct epoll_event ev[64];
  l->running++;
  int n = ready ? epoll_wait(l->epfd, ev, 64, 0) : 0;
  for (int i = 0; i < n; i++) slot_ready(ev[i].data.ptr);
  double now = th_clock_ms(), next = -1;
  for (db_pool *p = l->pools; p; p = p->next) {
    double d = p->dead ? -1 : expire(p, now);
    if (d >= 0 && (next < 0 || d < next)) next = d;
  }
  /* the callbacks run last: they may acquire, wait, release, close */
  db_task *t;
  while ((t = l->ready_head) != NULL) {
    task_unlink(&l->ready_head, &l->ready_tail, t);
    t->queued = T_NONE;
    t->done(t);
  }
  l->running--;
  while (l->graveyard) {
    struct db_lent *s = l->graveyard;
    l->graveyard = s->next;
    free(s);
  }
  for (db_pool *p = l->pools, *after; p; p = after) {
    after = p->next;
    if (p->dead || (p->closing && p->open == 0)) pool_free(p);
  }
  if (n == 64) return 0;   /* more may be ready */
  if (next < 0) return -1;
  double ms = next - th_clock_ms();
  return ms <= 0 ? 0 : (int)ms + 1;
}

void db_loop_stats(const db_loop *l, int *open, int *lent, int *waiting) {
  *open = *lent = *waiting = 0;
  for (const db_pool *p = l->pools; p; p = p->next) {
    *open += p->open;
    *lent += p->lent;
    *waiting += p->nwait;
  }
}
