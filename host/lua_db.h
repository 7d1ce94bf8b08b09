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
 * (lua_http.c), which runs each request in a coroutine and calls
 * th_db_request(co, fresh) before each resume (fresh: a new request) and
 * th_db_request(NULL, 0) after. A request whose handler called
 * db.batch_reads() (web/router.lua does, for routes declared with
 * batch_reads = true) may pause at its plain reads: exec(), query() and
 * first() called by the request coroutine itself (where it can yield) with
 * a plain read (db_plain_read) on a connection db_may_defer accepts, while
 * every other connection of the state is idle (db_idle), queue it with db_defer and yield the connection
 * object instead of waiting. Whoever resumes the coroutine first runs the
 * queue of that connection (th_db_waiting, db_run_deferred); the call then
 * returns as if it had never paused. Once the request runs anything but a
 * plain read (from any coroutine), a transaction or opens a connection, it
 * never pauses again. Outside requests every call runs at once. */
void th_db_request(lua_State *co, int fresh);

/* The db_conn a coroutine's yield (its value at idx) waits for, or NULL
 * when the yield came from somewhere else. */
db_conn *th_db_waiting(lua_State *co, int idx);

/* Raises err as a todohost.db error table {message, sqlstate, hint} (with a
 * __tostring giving one line). Never returns. */
int th_raise_dberror(lua_State *L, const db_error *err);

#endif
