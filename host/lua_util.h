/*
 * lua_util.h: the `todohost.util` module: small services scripts need and
 * plain Lua lacks (a SHA-256 from OpenSSL, a monotonic clock, sleeping).
 */
#ifndef TODOHOST_LUA_UTIL_H
#define TODOHOST_LUA_UTIL_H

#include <lua.h>

int luaopen_todohost_util(lua_State *L);

#endif
