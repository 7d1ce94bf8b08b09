/*
 * db_pool.h: bounded pools of PostgreSQL connections for one event-loop
 * thread: connections are made, lent, waited on and taken back without
 * the thread ever waiting for the network.
 *
 * A db_loop is the set of sockets of every pool of one thread (an epoll
 * set): its owner watches one descriptor, db_loop_fd(), and calls
 * db_loop_run() when it is readable and when the time it returned has
 * passed. Every callback (db_task.done) is made from db_loop_run, never
 * from the call that started the wait, so a caller never re-enters
 * itself. Everything here runs on the loop's thread.
 *
 * A borrower (an HTTP request) takes a connection with db_pool_acquire,
 * runs statements on it with db.h's asynchronous calls (db_send ...,
 * then db_pool_wait until db_poll says DB_READY, then db_finish), or the
 * synchronous ones, and gives it back with db_pool_release: an open
 * transaction is rolled back then (and with `full_reset` the session is
 * reset: settings, advisory locks, temporary tables, LISTEN, lastval;
 * prepared statements stay), before anyone else gets it. A connection
 * found closed while idle is dropped and replaced at once.
 */
#ifndef TODOHOST_DB_POOL_H
#define TODOHOST_DB_POOL_H

#include "db.h"

typedef struct db_loop db_loop;
typedef struct db_pool db_pool;
typedef struct db_lent db_lent;     /* a connection lent to a borrower */
typedef struct db_task db_task;

/* A borrower's wait: for a connection (db_pool_acquire) or for the
 * operation running on its connection (db_pool_wait). Owned by the
 * borrower; it must stay put while it waits (or be cancelled). */
struct db_task {
  void (*done)(db_task *t);   /* set by the borrower: the wait has ended */
  void *ud;                   /* the borrower's */
  db_lent *lent;              /* acquire: the connection lent */
  int failed;                 /* acquire: no connection; err says why */
  db_error err;
  /* the pool's */
  db_pool *pool;
  db_task *prev, *next;
  double deadline;
  int queued;
};

typedef struct db_pool_config {
  int size;          /* connections at most (>= 1) */
  int wait_ms;       /* how long a borrower waits for one before failing */
  int connect_ms;    /* how long a connection may take to be made */
  int full_reset;    /* reset the session when a connection comes back */
} db_pool_config;

/* A new loop, or NULL (out of memory, or no epoll). */
db_loop *db_loop_new(void);
/* Frees the loop and every pool still on it, whatever they lent. */
void db_loop_free(db_loop *l);
int db_loop_fd(const db_loop *l);
/* For a stop that cannot wait any longer: every borrower waiting for a
 * connection fails with err, idle connections close, and the lent ones
 * are cut off (their sockets shut down: what runs on them, or is sent
 * next, fails as a connection lost, its outcome unknown). The loop lends
 * and makes nothing more (acquiring fails with err). Callbacks come from
 * the next db_loop_run, as always. */
void db_loop_abort(db_loop *l, const db_error *err);
/* Handles what is due and, when ready (db_loop_fd was found readable),
 * what is ready, without waiting. Returns the ms until the next deadline
 * (0: call again at once), or -1 when none. */
int db_loop_run(db_loop *l, int ready);

/* A new pool on l for url (checked now; nothing connects until a
 * connection is wanted). NULL with err. */
db_pool *db_pool_new(db_loop *l, const char *url, const db_options *opt,
                     const db_pool_config *cfg, db_error *err);
/* Closes the pool: idle connections now, lent ones when they come back,
 * then frees it. Waiting borrowers fail ("the pool is closed"). */
void db_pool_close(db_pool *p);

/* Lends a connection to t: 1 when lent at once (t->lent), 0 when t waits
 * (t->done is called with t->lent, or with t->failed and t->err: the
 * deadline passed, or PostgreSQL cannot be reached), -1 with t->err when
 * it fails at once (the pool is closed, or the last try to connect failed
 * a moment ago and nothing else is on its way). */
int db_pool_acquire(db_pool *p, db_task *t);
/* For a borrower that cannot wait (nothing else runs meanwhile): an idle
 * connection, or one made now, waiting for PostgreSQL. 1 with *out, or -1
 * with err (every connection is lent, or it cannot connect). */
int db_pool_acquire_now(db_pool *p, db_lent **out, db_error *err);

/* A waiting t gives up; nothing is called. */
void db_pool_cancel(db_task *t);

db_conn *db_lent_conn(const db_lent *l);
/* Waits for the operation started on l's connection (or the next row of
 * its streaming cursor): 1 when db_poll says DB_READY already (t is not
 * kept), 0 when t->done will be called once it does. */
int db_pool_wait(db_lent *l, db_task *t);
/* Takes l back (see the top of this file). l is gone after the call. */
void db_pool_release(db_lent *l);

/* Connections open or being made, lent, and borrowers waiting. */
void db_pool_stats(const db_pool *p, int *open, int *lent, int *waiting);
/* The same, summed over every pool of l. */
void db_loop_stats(const db_loop *l, int *open, int *lent, int *waiting);

#endif
