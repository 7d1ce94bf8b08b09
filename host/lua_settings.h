/*
 * lua_settings.h: the `todohost.settings` Lua module, a thin binding over
 * the settings table of config.h.
 */
#ifndef TODOHOST_LUA_SETTINGS_H
#define TODOHOST_LUA_SETTINGS_H

#include <lua.h>

/* luaopen function, registered in package.preload["todohost.settings"]. */
int luaopen_todohost_settings(lua_State *L);

#endif
