/*
 * main.c: the todohost command line.
 *
 *   todohost run [SCRIPT [ARG...]]   run a Lua script (no script: a prompt)
 *   todohost version                 versions of todohost, Lua, SQLite, libpq
 *
 * Settings are loaded (environment, .env, defaults) before anything runs.
 * Everything that touches the Lua state runs under a protected call.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <limits.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "runtime.h"

static const char usage[] =
    "usage: todohost run [SCRIPT [ARG...]]   run a Lua script (a path, or a name in scripts/);\n"
    "                                        with no SCRIPT, an interactive prompt\n"
    "       todohost version                 print the versions of todohost, Lua, SQLite and libpq\n";

static int print_version(void) {
  int pq = PQlibVersion();
  printf("todohost %s\n%s\nSQLite %s\nlibpq %d.%d\n", TH_VERSION, LUA_RELEASE,
         sqlite3_libversion(), pq / 10000, pq % 100);
  return 0;
}

static int errline(lua_State *L) {
  th_errline(L, 1);
  return 1;
}

/* Reports the error object on top of the stack as one line (plus a
 * traceback when DEBUG made one) and pops it. The conversion runs protected:
 * a failing __tostring must not take the process down. */
static void report(lua_State *L) {
  lua_pushcfunction(L, errline);
  lua_insert(L, -2);
  const char *msg = lua_pcall(L, 1, 1, 0) == LUA_OK ? lua_tostring(L, -1) : NULL;
  fprintf(stderr, "todohost: %s\n", msg ? msg : "(error object cannot be shown)");
  lua_pop(L, 1);
}

/* ---- running a script ------------------------------------------------- */

struct script_args { const char *path; int argc; char **argv; const char *progname; };

/* arg as the lua interpreter builds it: arg[0] the script, arg[1..n] its
 * arguments, arg[-1] the program. */
static int run_script(lua_State *L) {
  const struct script_args *a = lua_touserdata(L, 1);
  lua_createtable(L, a->argc, 2);
  lua_pushstring(L, a->progname);
  lua_rawseti(L, -2, -1);
  lua_pushstring(L, a->path);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < a->argc; i++) {
    lua_pushstring(L, a->argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  const char *file = strcmp(a->path, "-") == 0 ? NULL : a->path;  /* "-": stdin */
  if (luaL_loadfilex(L, file, "t") != LUA_OK) return lua_error(L);
  luaL_checkstack(L, a->argc, "too many arguments to script");
  for (int i = 0; i < a->argc; i++) lua_pushstring(L, a->argv[i]);
  lua_call(L, a->argc, 0);
  return 0;
}

/* ---- the prompt ------------------------------------------------------- */

/* Compiles line as an expression ("return LINE") first, then as a
 * statement; an incomplete chunk asks for more lines. */
static int repl(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "todohost.db");
  lua_call(L, 1, 1);
  lua_setglobal(L, "db");
  printf("todohost %s (%s): `db` is require \"todohost.db\"; "
         "try conn = db.connect() then conn:query(\"select 1 as x\")\n",
         TH_VERSION, LUA_RELEASE);
  char line[4096];
  lua_pushliteral(L, "");           /* pending chunk text */
  int pending = lua_gettop(L);
  for (;;) {
    fputs(lua_rawlen(L, pending) ? ">> " : "> ", stdout);
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) { putchar('\n'); break; }
    lua_pushvalue(L, pending);
    lua_pushstring(L, line);
    lua_concat(L, 2);
    lua_replace(L, pending);
    const char *code = lua_tostring(L, pending);
    lua_pushfstring(L, "return %s", code);
    int st = luaL_loadbufferx(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=stdin", "t");
    lua_remove(L, -2);
    if (st != LUA_OK) {
      lua_pop(L, 1);
      st = luaL_loadbufferx(L, code, strlen(code), "=stdin", "t");
      if (st == LUA_ERRSYNTAX && strstr(lua_tostring(L, -1), "<eof>")) {
        lua_pop(L, 1);              /* incomplete: read more */
        continue;
      }
    }
    lua_pushliteral(L, "");
    lua_replace(L, pending);
    if (st != LUA_OK) { report(L); continue; }
    int base = lua_gettop(L);
    if (th_pcall(L, 0, LUA_MULTRET) != LUA_OK) { report(L); continue; }
    int n = lua_gettop(L) - base + 1;
    if (n > 0) {
      lua_getglobal(L, "print");
      lua_insert(L, base);
      if (lua_pcall(L, n, 0, 0) != LUA_OK) report(L);
    }
    lua_settop(L, pending);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "-h") == 0) {
    fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0)
    return print_version();
  if (strcmp(argv[1], "run") != 0) {
    fprintf(stderr, "todohost: unknown command '%s'\n%s", argv[1], usage);
    return 2;
  }

  char err[512];
  if (th_config_load(NULL, err, sizeof err) < 0) {
    fprintf(stderr, "todohost: %s\n", err);
    return 1;
  }
  th_home();          /* the installation and the project, found once, here */
  th_project_dir();
  lua_State *L = th_newstate();
  if (!L) { fputs("todohost: cannot create a Lua state: out of memory\n", stderr); return 1; }

  int status;
  if (argc < 3) {
    lua_pushcfunction(L, repl);
    status = th_pcall(L, 0, 0);
  } else {
    char path[PATH_MAX];
    if (strcmp(argv[2], "-") == 0) snprintf(path, sizeof path, "-");
    else if (th_find_script(argv[2], path, sizeof path) < 0) {
      fprintf(stderr, "todohost: no script '%s' (looked for it as a path and in scripts/): "
                      "check the name, or list scripts/\n", argv[2]);
      lua_close(L);
      return 1;
    }
    struct script_args a = {path, argc - 3, argv + 3, argv[0]};
    lua_pushcfunction(L, run_script);
    lua_pushlightuserdata(L, &a);
    status = th_pcall(L, 1, 0);
  }
  if (status != LUA_OK) report(L);
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
