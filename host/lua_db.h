/*
 * lua_db.h: the `todohost.db` Lua module (connections, cursors, errors).
 *
 * Other bindings (the copy engine's, the HTTP server's) reach the C
 * connection behind a Lua connection object through th_checkconn().
 */
#ifndef TODOHOST_LUA_DB_H
#define TODOHOST_LUA_DB_H

#include <lua.h>
#include "db.h"

/* luaopen function, registered in package.preload["todohost.db"]. */
int luaopen_todohost_db(lua_State *L);

/* The open db_conn behind the connection object at idx; raises a Lua error
 * ("bad argument" or "connection is closed") otherwise. The connection stays
 * owned by the Lua object. */
db_conn *th_checkconn(lua_State *L, int idx);

/* Deferred reads, for a server running many handlers on one connection
 * (lua_http.c): in a coroutine marked with th_db_batching(co, 1), exec(),
 * query() and first() called from Lua code (where the coroutine can yield)
 * with a plain read db_can_defer accepts, while every other connection of
 * the state is idle (db_idle), queue it with db_defer and yield the
 * connection object instead of waiting. Whoever resumes the coroutine first
 * runs the queue of that connection (th_db_waiting, db_run_deferred); the
 * call then returns as if it had never paused. Any statement that is not a
 * plain read (and transaction()) unmarks the coroutine: that request then
 * runs to its end without pausing. Anywhere else (the main state,
 * coroutines of the script's own, inside conn:transaction) every call runs
 * at once. The mark lives in the thread's extra space. */
void th_db_batching(lua_State *co, int on);

/* The db_conn a coroutine's yield (its value at idx) waits for, or NULL
 * when the yield came from somewhere else. */
db_conn *th_db_waiting(lua_State *co, int idx);

/* Raises err as a todohost.db error table {message, sqlstate, hint} (with a
 * __tostring giving one line). Never returns. */
int th_raise_dberror(lua_State *L, const db_error *err);

#endif
