/*
 * lua_db.h: the `todohost.db` Lua module (connections, cursors, errors),
 * and what a server (lua_http.c) tells it about its requests.
 *
 * Other bindings (the copy engine's) reach the C connection behind a Lua
 * connection object through th_checkconn().
 */
#ifndef TODOHOST_LUA_DB_H
#define TODOHOST_LUA_DB_H

#include <lua.h>
#include "db.h"
#include "db_pool.h"

/* luaopen function, registered in package.preload["todohost.db"]. */
int luaopen_todohost_db(lua_State *L);

/* The open db_conn behind the connection object at idx (for a pool: the
 * running request's connection, or the object's own outside requests);
 * raises a Lua error ("bad argument" or "connection is closed") otherwise.
 * The connection stays owned by the Lua object (or its pool). */
db_conn *th_checkconn(lua_State *L, int idx);

/* Raises err as a todohost.db error table {message, sqlstate, hint} (with a
 * __tostring giving one line). Never returns. */
int th_raise_dberror(lua_State *L, const db_error *err);

/* ---- requests (a server's worker state) --------------------------------

 * A server makes its worker state one with th_db_serve before the app
 * loads: db.connect() to PostgreSQL there gives a pool (DB_POOL_SIZE,
 * DB_POOL_TIMEOUT, DB_POOL_RESET). It runs each request in a coroutine, in
 * a th_db_req of its own, and around each resume calls th_db_enter (NULL
 * after). A request takes a connection of a pool at its first statement
 * there; its statements are sent without waiting, and the call yields
 * with r->waiting set: the server leaves the request suspended, watches
 * th_db_fd, calls th_db_tick after each round of events, and r->wake(r)
 * is called (from th_db_tick) when the call can go on: the server then
 * resumes r->co. When the request has ended (its handler returned or
 * failed), th_db_end gives its connections back to their pools. */

#define TH_DB_LEASES 8   /* pools one request may use at once */

typedef struct th_db_req {
  lua_State *co;                        /* set by the server */
  void (*wake)(struct th_db_req *r);    /* set by the server */
  void *ud;                             /* the server's */
  int waiting;                          /* the binding yielded co and will wake it */
  /* the binding's own */
  db_task task;                         /* what it waits for */
  db_pool *acquiring;                   /* the pool it waits on for a connection */
  db_lent *busy;                        /* the connection it waits on */
  struct { db_pool *pool; db_lent *lent; } leases[TH_DB_LEASES];
  int nleases;
} th_db_req;

/* Makes L a server's worker state. Returns LUA_OK, or an error status with
 * the message on the stack (bad DB_POOL_RESET, out of memory). */
int th_db_serve(lua_State *L);
void th_db_enter(lua_State *L, th_db_req *r);
void th_db_end(lua_State *L, th_db_req *r);
int th_db_fd(lua_State *L);               /* -1 outside a server's worker */
int th_db_tick(lua_State *L, int ready);  /* ms until it wants a tick again, or -1 */
/* The server stops now: what the paused requests wait for fails (their
 * calls raise errors, from the next th_db_tick), so that they end. */
void th_db_abort(lua_State *L);

#endif
