/*
 * lua_http.h: the `todohost.http` Lua module (http.serve and the query
 * helpers), registered in package.preload by runtime.c.
 */
#ifndef TODOHOST_LUA_HTTP_H
#define TODOHOST_LUA_HTTP_H

#include <lua.h>

int luaopen_todohost_http(lua_State *L);

#endif
