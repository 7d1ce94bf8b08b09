/*
 * lua_http.h: the `todohost.http` Lua module (http.serve and the query
 * helpers), registered in package.preload by runtime.c.
 */
#ifndef TODOHOST_LUA_HTTP_H
#define TODOHOST_LUA_HTTP_H

#include <lua.h>

#include "http.h"

int luaopen_todohost_http(lua_State *L);

/* The http_app http.serve runs: each worker a lua_State (th_newstate) that
 * required the module named app (a string that must outlive the server),
 * each request in a coroutine of it. For a C caller of http_serve (the
 * HTTP fuzz target), after th_config_load. */
http_app th_http_lua_app(const char *app);

#endif
