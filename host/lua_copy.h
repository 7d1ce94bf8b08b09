/*
 * lua_copy.h: the `todohost.copy` Lua module, a thin binding over the bulk
 * copy engine (copy.h) for scripts/copy.lua.
 */
#ifndef TODOHOST_LUA_COPY_H
#define TODOHOST_LUA_COPY_H

#include <lua.h>

/* luaopen function, registered in package.preload["todohost.copy"]. */
int luaopen_todohost_copy(lua_State *L);

#endif
