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

/* Raises err as a todohost.db error table {message, sqlstate, hint} (with a
 * __tostring giving one line). Never returns. */
int th_raise_dberror(lua_State *L, const db_error *err);

#endif
