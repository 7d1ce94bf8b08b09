/*
 * runtime.h: creating and running Lua states for todohost.
 *
 * Every lua_State in the program is made by th_newstate(): the standard
 * libraries, a package.path that finds scripts/ and scripts/app/, the
 * host's own modules (todohost.db, ..., todohost.paths) in package.preload,
 * and nothing else. One state per thread, ever. A new host module is one
 * line in runtime.c's host_modules.
 * In the bindings (lua_*.c), a module function is l_<module>_<name>
 * (l_db_connect for db.connect) and a method <type>_<name> (conn_exec).
 */
#ifndef TODOHOST_RUNTIME_H
#define TODOHOST_RUNTIME_H

#include <lua.h>

/* Closes a coroutine's pending to-be-closed variables and resets it
 * (lua_closethread from Lua 5.4.6, lua_resetthread before). */
#if LUA_VERSION_RELEASE_NUM >= 50406
#define reset_thread(co, from) lua_closethread((co), (from))
#else
#define reset_thread(co, from) ((void)(from), lua_resetthread(co))
#endif

/* A new state ready to run user scripts, or NULL when out of memory. The
 * caller owns it: lua_close() it on the thread that made it. */
lua_State *th_newstate(void);

/* lua_pcall with a message handler that keeps error tables intact and adds a
 * traceback to string errors when the DEBUG setting is true. Returns the lua_pcall
 * status; on error the error object is on top of the stack. */
int th_pcall(lua_State *L, int nargs, int nresults);

/* One readable line for the error object at idx (uses __tostring on tables).
 * The string is pushed on the stack and also returned. */
const char *th_errline(lua_State *L, int idx);

/* Resolves a script argument: an existing path, else scripts/NAME, else
 * scripts/NAME.lua (in the project, then in the installation). Writes the
 * path into buf; returns 0, or -1 when not found. */
int th_find_script(const char *name, char *buf, size_t size);

/* The installation: the directory holding todohost's own scripts/, the
 * revision template and Swagger UI's files. TODOHOST_HOME; else, next to
 * the executable, <prefix>/share/todohost for <prefix>/bin/todohost, or the
 * checkout holding build/todohost; else ".". Absolute when it exists. Found
 * once; never NULL. */
const char *th_home(void);

/* The project: the user's folder (migrations/, seeds/, .env, database.db),
 * the working directory at start, absolute. Found once; never NULL. */
const char *th_project_dir(void);

extern const char *const TH_VERSION;

#endif
