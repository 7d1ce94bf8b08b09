/*
 * runtime.c: making Lua states for todohost and running code in them.
 *
 * Every state gets the standard libraries, a package.path that finds
 * scripts/ (in the working directory, then in the todohost home) before the
 * system's Lua paths, and the host's C modules in package.preload.
 */
#include "runtime.h"

#include <lauxlib.h>
#include <lualib.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "lua_copy.h"
#include "lua_db.h"
#include "lua_http.h"
#include "lua_settings.h"
#include "lua_util.h"

const char *const TH_VERSION = "0.1.0";

/* The host's C modules. Add one line per module. */
static const luaL_Reg host_modules[] = {
  {"todohost.db", luaopen_todohost_db},
  {"todohost.copy", luaopen_todohost_copy},
  {"todohost.http", luaopen_todohost_http},
  {"todohost.util", luaopen_todohost_util},
  {"todohost.settings", luaopen_todohost_settings},
  {NULL, NULL}
};

/* ---- the todohost home ------------------------------------------------ */

static char home[PATH_MAX];
static pthread_once_t home_once = PTHREAD_ONCE_INIT;

static void find_home(void) {
  const char *env = th_setting_text("TODOHOST_HOME");
  if (env && *env) { snprintf(home, sizeof home, "%s", env); return; }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) { strcpy(home, "."); return; }
  exe[n] = '\0';
  /* <home>/build/todohost or <home>/build/asan/todohost */
  for (int up = 0; up < 3; up++) {
    char *slash = strrchr(exe, '/');
    if (!slash) break;
    *slash = '\0';
    char probe[PATH_MAX + 16];
    snprintf(probe, sizeof probe, "%s/scripts", exe);
    struct stat st;
    if (stat(probe, &st) == 0 && S_ISDIR(st.st_mode)) {
      snprintf(home, sizeof home, "%s", exe);
      return;
    }
  }
  strcpy(home, ".");
}

const char *th_home(void) {
  pthread_once(&home_once, find_home);
  return home;
}

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);  /* files, pipes, /dev/stdin */
}

int th_find_script(const char *name, char *buf, size_t size) {
  if (is_file(name)) { snprintf(buf, size, "%s", name); return 0; }
  if (strchr(name, '/')) return -1;   /* an explicit path that is not there */
  const char *dirs[] = {"scripts", NULL};
  char alt[PATH_MAX + 16];
  snprintf(alt, sizeof alt, "%s/scripts", th_home());
  dirs[1] = alt;
  for (int d = 0; d < 2; d++) {
    snprintf(buf, size, "%s/%s", dirs[d], name);
    if (is_file(buf)) return 0;
    snprintf(buf, size, "%s/%s.lua", dirs[d], name);
    if (is_file(buf)) return 0;
  }
  return -1;
}

/* ---- errors ----------------------------------------------------------- */

const char *th_errline(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (luaL_callmeta(L, idx, "__tostring")) {
    if (lua_type(L, -1) == LUA_TSTRING) return lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER)
    return lua_pushstring(L, lua_tostring(L, idx));
  return lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
}

/* Message handler: string errors get a traceback when DEBUG is true; error
 * tables pass through untouched (their __tostring says it all). */
static int msghandler(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING) return 1;
  if (th_setting_bool("DEBUG"))
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

int th_pcall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return status;
}

/* ---- states ----------------------------------------------------------- */

/* package.path = scripts/ in the working directory, scripts/ in the home,
 * then what Lua had (the system's paths, where busted and cjson live). */
static int setup(lua_State *L) {
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  const char *h = th_home();
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "./scripts/?.lua;./scripts/?/init.lua;%s/scripts/?.lua;%s/scripts/?/init.lua;%s",
                  h, h, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 1);
  lua_getfield(L, -1, "preload");
  for (const luaL_Reg *m = host_modules; m->name; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 2);
  return 0;
}

lua_State *th_newstate(void) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  lua_pushcfunction(L, setup);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) { lua_close(L); return NULL; }
  return L;
}
