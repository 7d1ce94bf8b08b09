/*
 * lua_settings.c: the `todohost.settings` module: every setting todohost
 * knows (host/config.c's table), resolved once at start-up from the
 * environment, then .env, then the default.
 *
 *   settings.get(name)      -> value, source: the value typed by the setting's
 *                              kind (string, boolean, integer; nil when unset
 *                              with no default) and where it came from
 *                              ("environment", ".env" or "default"). Raises a
 *                              one-line error for a name todohost does not
 *                              know or a value it cannot read.
 *   settings.default(name)  -> the default, typed (nil when there is none)
 *   settings.boolean(text)  -> true/false for a boolean word, else nil
 *   settings.all()          -> an array, in the table's order, of
 *                              {name, kind, value, source, default, doc,
 *                              min, max (integers), error (text, when the
 *                              value cannot be read: value is then nil)}
 *
 * Values are returned as they are: a DATABASE_URL holds a password, so show
 * it through db.mask_url.
 */
#include "lua_settings.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char *const kind_names[] = {"string", "boolean", "integer"};

/* Pushes text read as d's kind (nil for NULL); text was checked already. */
static void push_typed(lua_State *L, const th_setting_def *d, const th_value *v) {
  if (!v->text) lua_pushnil(L);
  else if (d->kind == TH_BOOL) lua_pushboolean(L, v->b);
  else if (d->kind == TH_INT) lua_pushinteger(L, (lua_Integer)v->i);
  else lua_pushstring(L, v->text);
}

/* The setting named by argument 1, or a raised error (no position: the
 * name is the user's, not the script's). */
static const th_setting_def *check_setting(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const th_setting_def *d = th_setting_find(name);
  if (!d) {
    lua_pushfstring(L, "todohost has no setting named %s (see docs/lua-api.md, \"Settings\")", name);
    lua_error(L);
  }
  return d;
}

static int l_settings_get(lua_State *L) {
  const th_setting_def *d = check_setting(L);
  th_value v;
  char err[512];
  if (th_setting_read(d, &v, err, sizeof err) < 0) {
    lua_pushstring(L, err);
    return lua_error(L);
  }
  push_typed(L, d, &v);
  lua_pushstring(L, th_source_name(v.source));
  return 2;
}

/* Pushes d's default, typed (the table's defaults are all valid). */
static void push_default(lua_State *L, const th_setting_def *d) {
  th_value v = {TH_FROM_DEFAULT, d->def, d->def ? th_parse_bool(d->def) == 1 : 0, 0};
  if (d->kind == TH_INT && d->def) v.i = strtoll(d->def, NULL, 10);
  push_typed(L, d, &v);
}

static int l_settings_default(lua_State *L) {
  push_default(L, check_setting(L));
  return 1;
}

static int l_settings_all(lua_State *L) {
  lua_newtable(L);
  lua_Integer n = 0;
  for (const th_setting_def *d = th_settings; d->name; d++) {
    th_value v;
    char err[512];
    int rc = th_setting_read(d, &v, err, sizeof err);
    lua_createtable(L, 0, 9);
    lua_pushstring(L, d->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, kind_names[d->kind]);
    lua_setfield(L, -2, "kind");
    if (rc == 0) push_typed(L, d, &v);
    else lua_pushnil(L);
    lua_setfield(L, -2, "value");
    lua_pushstring(L, th_source_name(v.source));
    lua_setfield(L, -2, "source");
    push_default(L, d);
    lua_setfield(L, -2, "default");
    lua_pushstring(L, d->doc);
    lua_setfield(L, -2, "doc");
    if (d->kind == TH_INT) {
      lua_pushinteger(L, (lua_Integer)d->min);
      lua_setfield(L, -2, "min");
      lua_pushinteger(L, (lua_Integer)d->max);
      lua_setfield(L, -2, "max");
    }
    if (rc < 0) {
      lua_pushstring(L, err);
      lua_setfield(L, -2, "error");
    }
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* settings.boolean(text) -> true or false for one of config.c's boolean
 * words (any case), nil for anything else. */
static int l_settings_boolean(lua_State *L) {
  int b = th_parse_bool(luaL_checkstring(L, 1));
  if (b < 0) return 0;
  lua_pushboolean(L, b);
  return 1;
}

int luaopen_todohost_settings(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"get", l_settings_get},
    {"default", l_settings_default},
    {"all", l_settings_all},
    {"boolean", l_settings_boolean},
    {NULL, NULL}
  };
  luaL_newlib(L, funcs);
  return 1;
}
