/*
 * lua_util.c: the `todohost.util` module.
 *
 *   util.sha256(s)   -> 64 lower-case hex digits (OpenSSL's libcrypto)
 *   util.clock()     -> seconds from a monotonic clock, as a float
 *   util.sleep(s)    -> sleeps s seconds (a float)
 *   util.isatty(f)   -> true when f (io.stdout, io.stderr...) is a terminal
 *   util.listdir(d [, suffix])
 *                    -> sorted array of the names in directory d (no . and ..;
 *                       with suffix, only the names ending in it that do not
 *                       start with '.': util.listdir(d, ".lua") lists the
 *                       revision files and seeds), or nil, message when d
 *                       cannot be read
 *   util.mkdir(d)    -> true after creating directory d and its missing
 *                       parents (mode 0777 less the umask; d existing as a
 *                       directory is fine), or nil, message
 *   util.text_safe(s [, keep_backslash])
 *                    -> s safe for a terminal or a log line: control
 *                       characters, bidi controls, invalid UTF-8 and '\' as
 *                       \xNN (host/textsafe.h), never truncated; with
 *                       keep_backslash true a '\' stays (for messages that
 *                       carry escapes of their own)
 */
#include "lua_util.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "textsafe.h"

static int l_util_sha256(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(s, len, md, &n, EVP_sha256(), NULL))
    return luaL_error(L, "sha256: OpenSSL failed");
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned int i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  lua_pushlstring(L, hex, 2 * (size_t)n);
  return 1;
}

static int l_util_text_safe(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int keep_backslash = lua_toboolean(L, 2);
  if (len > (((size_t)-1) - 8) / 4) return luaL_error(L, "text_safe: text too long");
  size_t size = 4 * len + 8;   /* every byte may become \xNN; room for the NUL */
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, size);
  (keep_backslash ? text_safe_message : text_safe)(s, len, out, size);
  luaL_pushresultsize(&b, strlen(out));
  return 1;
}

static int l_util_clock(lua_State *L) {
  lua_pushnumber(L, (lua_Number)th_clock_seconds());
  return 1;
}

static int l_util_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0, 1, "must not be negative");
  if (s > 1e9) s = 1e9;   /* ~31 years: (time_t)inf would be undefined */
  struct timespec ts = {(time_t)s, (long)((s - (lua_Number)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
  return 0;
}

static int l_util_isatty(lua_State *L) {
  luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
  /* closed: liolib sets closef to NULL and leaves f dangling (fclose'd) */
  lua_pushboolean(L, p->closef != NULL && p->f != NULL && isatty(fileno(p->f)));
  return 1;
}

/* The DIR* is owned by a userdata so an error while filling the table
 * (out of memory) cannot leak it. */
static int dir_gc(lua_State *L) {
  DIR **d = lua_touserdata(L, 1);
  if (*d) { closedir(*d); *d = NULL; }
  return 0;
}

/* 1 when name is listed: with a suffix, a name that ends in it and is not
 * hidden (an editor's ".#x.lua" lock file is no revision). */
static int listed(const char *name, const char *suffix, size_t suffix_len) {
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return 0;
  if (!suffix) return 1;
  size_t len = strlen(name);
  return name[0] != '.' && len >= suffix_len && memcmp(name + len - suffix_len, suffix, suffix_len) == 0;
}

static int l_util_listdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t suffix_len = 0;
  const char *suffix = luaL_optlstring(L, 2, NULL, &suffix_len);
  DIR **d = lua_newuserdatauv(L, sizeof *d, 0);
  *d = NULL;
  if (luaL_newmetatable(L, "todohost.util.dir")) {
    lua_pushcfunction(L, dir_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (!(*d = opendir(path))) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_newtable(L);
  lua_Integer n = 0;
  struct dirent *e;
  while ((e = readdir(*d)) != NULL) {
    if (!listed(e->d_name, suffix, suffix_len)) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(*d);
  *d = NULL;
  /* sorted, so revision files and seeds come in a stable order */
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, -3);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
  return 1;
}

/* mkdir(2) of path, tolerating a directory already there. */
static int make_one(const char *path) {
  struct stat st;
  if (mkdir(path, 0777) == 0) return 0;
  if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
  if (errno == EEXIST) errno = ENOTDIR;
  return -1;
}

static int l_util_mkdir(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  if (len == 0) {
    luaL_pushfail(L);
    lua_pushliteral(L, "mkdir: an empty path");
    return 2;
  }
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, len + 1);   /* a copy cut at each '/' in turn */
  memcpy(p, path, len + 1);
  int rc = 0;
  for (size_t i = 1; i <= len && rc == 0; i++) {
    if (p[i] != '/' && p[i] != '\0') continue;
    char c = p[i];
    p[i] = '\0';
    if (p[i - 1] != '/') rc = make_one(p);
    p[i] = c;
  }
  if (rc != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int luaopen_todohost_util(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"sha256", l_util_sha256},
    {"clock", l_util_clock},
    {"sleep", l_util_sleep},
    {"isatty", l_util_isatty},
    {"listdir", l_util_listdir},
    {"mkdir", l_util_mkdir},
    {"text_safe", l_util_text_safe},
    {NULL, NULL}
  };
  luaL_newlib(L, funcs);
  return 1;
}
