/*
 * runtime.c: making Lua states for todohost and running code in them.
 *
 * Every state gets the standard libraries, a package.path that finds
 * scripts/ and scripts/app/ (in the project, then in the installation)
 * before the system's Lua paths, and the host's C modules in
 * package.preload. The two places are found here, once, and given to
 * scripts as `todohost.paths`:
 *
 *   paths.install          the installation: todohost's own scripts/,
 *                          migrations/script.lua.tmpl, seeds/ and
 *                          node_modules/swagger-ui-dist/ (a checkout, or
 *                          PREFIX/share/todohost after `make install`)
 *   paths.project          the project: the working directory, holding the
 *                          user's migrations/, seeds/, .env, database.db
 *   paths.in_install(rel)  -> paths.install .. "/" .. rel
 *   paths.in_project(rel)  -> rel inside the project, as the user types it
 *                             (relative: the working directory is the project)
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
#include "lua_metrics.h"
#include "lua_settings.h"
#include "lua_util.h"

const char *const TH_VERSION = "0.1.0";

static int luaopen_todohost_paths(lua_State *L);

/* The host's C modules. Add one line per module. */
static const luaL_Reg host_modules[] = {
  {"todohost.db", luaopen_todohost_db},
  {"todohost.copy", luaopen_todohost_copy},
  {"todohost.http", luaopen_todohost_http},
  {"todohost.metrics", luaopen_todohost_metrics},
  {"todohost.util", luaopen_todohost_util},
  {"todohost.settings", luaopen_todohost_settings},
  {"todohost.paths", luaopen_todohost_paths},
  {NULL, NULL}
};

/* ---- the two places: the installation and the project ----------------- */

static char home[PATH_MAX];
static pthread_once_t home_once = PTHREAD_ONCE_INIT;
static char project[PATH_MAX];
static pthread_once_t project_once = PTHREAD_ONCE_INIT;

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Writes path into home, made absolute when it exists. */
static void set_home(const char *path) {
  char real[PATH_MAX];
  const char *src = realpath(path, real) ? real : path;
  size_t n = strlen(src) < sizeof home ? strlen(src) : sizeof home - 1;
  memcpy(home, src, n);
  home[n] = '\0';
}

/* TODOHOST_HOME; else next to the executable: installed,
 * <prefix>/bin/todohost with <prefix>/share/todohost/scripts; in a checkout,
 * <home>/build/todohost or <home>/build/asan/todohost; else ".". */
static void find_home(void) {
  const char *env = th_setting_text("TODOHOST_HOME");
  if (env && *env) { set_home(env); return; }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) { strcpy(home, "."); return; }
  exe[n] = '\0';
  char probe[PATH_MAX + 32];
  char *slash = strrchr(exe, '/');
  if (slash) {
    *slash = '\0';
    snprintf(probe, sizeof probe, "%s/../share/todohost/scripts", exe);
    if (is_dir(probe)) {
      snprintf(probe, sizeof probe, "%s/../share/todohost", exe);
      set_home(probe);
      return;
    }
    *slash = '/';
  }
  for (int up = 0; up < 3; up++) {
    slash = strrchr(exe, '/');
    if (!slash) break;
    *slash = '\0';
    snprintf(probe, sizeof probe, "%s/scripts", exe);
    if (is_dir(probe)) { set_home(exe); return; }
  }
  strcpy(home, ".");
}

const char *th_home(void) {
  pthread_once(&home_once, find_home);
  return home;
}

static void find_project(void) {
  if (!getcwd(project, sizeof project)) strcpy(project, ".");
}

const char *th_project_dir(void) {
  pthread_once(&project_once, find_project);
  return project;
}

/* ---- todohost.paths ----------------------------------------------------- */

/* paths.in_install(rel) -> the installation's path joined with rel. */
static int l_paths_in_install(lua_State *L) {
  lua_pushfstring(L, "%s/%s", th_home(), luaL_checkstring(L, 1));
  return 1;
}

/* paths.in_project(rel) -> rel inside the project, relative to the working
 * directory while that is the project (so messages show it as typed), else
 * the project's path joined with rel. */
static int l_paths_in_project(lua_State *L) {
  const char *rel = luaL_checkstring(L, 1);
  char cwd[PATH_MAX];
  if (rel[0] == '/' || (getcwd(cwd, sizeof cwd) && strcmp(cwd, th_project_dir()) == 0))
    lua_pushvalue(L, 1);
  else
    lua_pushfstring(L, "%s/%s", th_project_dir(), rel);
  return 1;
}

static int luaopen_todohost_paths(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"in_install", l_paths_in_install},
    {"in_project", l_paths_in_project},
    {NULL, NULL}
  };
  luaL_newlib(L, funcs);
  lua_pushstring(L, th_home());
  lua_setfield(L, -2, "install");
  lua_pushstring(L, th_project_dir());
  lua_setfield(L, -2, "project");
  return 1;
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

/* package.path = scripts/ and scripts/app/ in the working directory, the
 * same two in the home, then what Lua had (the system's paths, where busted
 * and cjson live). scripts/app/ holds the Todo app, whose modules keep their
 * short names: http.serve{app = "app"}, require "api", "todos", "models". */
static int setup(lua_State *L) {
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  const char *h = th_home();
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "./scripts/?.lua;./scripts/?/init.lua;./scripts/app/?.lua;"
                  "%s/scripts/?.lua;%s/scripts/?/init.lua;%s/scripts/app/?.lua;%s",
                  h, h, h, lua_tostring(L, -1));
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
