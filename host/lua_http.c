/*
 * lua_http.c: the `todohost.http` Lua module: glue between Lua and the
 * server core of http.c.
 *
 *   http.serve{app = "app", host, port, workers, max_body, access_log,
 *              reload, timeout, max_connections, max_connections_per_ip}
 *       each option's default is its setting's (HOST, PORT, MAX_BODY,
 *       ACCESS_LOG, RELOAD, HTTP_TIMEOUT, MAX_CONNECTIONS: config.c's
 *       table); workers: the number of cores; max_connections_per_ip: a
 *       quarter of max_connections, 0 for no limit (behind a proxy, where
 *       every connection comes from its address); access_log = "json":
 *       one JSON object a line
 *       blocks until SIGINT/SIGTERM; returns true after a graceful stop,
 *       raises a one-line error when it cannot start.
 *   http.unescape(s)      percent-decoding, '+' as a space
 *   http.parse_query(s)   "a=1&b=&a=2" -> {a = "2", b = ""} (kept as documented;
 *                         routes use web.router's reading)
 * (Query strings have one parser, the router's: web.router.parse_query.)
 *
 * Each pool thread's worker is its own lua_State (th_newstate()) that ran
 * require(app) once; the module returned handler(req) -> status, headers,
 * body. The state is used by that thread only.
 * req.headers has lower-case names; a repeated header's values are joined
 * with ", ".
 *
 * Each request runs in a coroutine of the worker's state (reused from one
 * request to the next) with a th_db_req of its own (lua_db.h): a database
 * call that waits for PostgreSQL yields it, the request is left pending
 * (HTTP_PENDING), and the database loop (th_db_tick, run by the server's
 * tick) wakes it, here resumed, when the call can go on. When a request
 * ends, its connections go back to their pools (th_db_end).
 * Stack of a worker state between requests: [1] = the handler, [2] = a
 * table anchoring every coroutine made.
 */
#include "lua_http.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "lua_db.h"
#include "runtime.h"

/* ---- workers: one lua_State per pool thread -------------------------- */

/* A request's coroutine with what it needs while it runs; reused. */
typedef struct request_slot {
  th_db_req db;           /* db.co is the coroutine; db.ud the worker */
  http_request *req;      /* the request it runs, while it runs */
} request_slot;

typedef struct app_worker {
  lua_State *L;
  int ncoroutines;        /* made so far (all anchored in the table at [2]) */
  request_slot **all;     /* every slot made (ncoroutines of them) */
  request_slot **idle;    /* slots free for the next request */
  int nidle;
  int cap;                /* of idle: >= ncoroutines */
  int db_fd;              /* th_db_fd of L: fixed for the state's life */
} app_worker;

/* [-1, +2] require(name) in a fresh state (name: a light userdata, so
 * that pushing the string happens in here, protected); the module must
 * return a function. Pushes it and the coroutine anchor table. */
static int load_app(lua_State *L) {
  const char *name = lua_touserdata(L, 1);
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
  if (!lua_isfunction(L, -1))
    return luaL_error(L, "module '%s' must return a function handler(req), not a %s", name,
                      luaL_typename(L, -1));
  lua_newtable(L);
  return 2;
}

/* [-1, +1] th_errline of the error at 1, as a string. */
static int errline_p(lua_State *L) {
  th_errline(L, 1);
  return 1;
}

/* Copies the error object on top of L (from a call that returned status)
 * into err as one line and pops it. A worker state has no protected caller,
 * so its __tostring (any Lua code) and the string's allocation run under
 * lua_pcall: an error there would otherwise reach the panic handler and
 * abort the whole server. */
static void copy_error(lua_State *L, int status, char *err, size_t errsize) {
  if (status == LUA_ERRMEM) {
    snprintf(err, errsize, "not enough memory");
  } else {
    lua_pushcfunction(L, errline_p);
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
      snprintf(err, errsize, "%s", lua_tostring(L, -1));
    else
      snprintf(err, errsize, "(the error object cannot be shown: its __tostring failed)");
  }
  lua_pop(L, 1);
}

/* http_app.open: ud is the app module's name. */
static void *worker_open(void *ud, char *err, size_t errsize) {
  const char *app = ud;
  app_worker *w = calloc(1, sizeof *w);
  lua_State *L = w ? th_newstate() : NULL;
  if (!L) {
    free(w);
    snprintf(err, errsize, "out of memory creating a Lua state");
    return NULL;
  }
  w->L = L;
  lua_gc(L, LUA_GCGEN, 0, 0);   /* request garbage dies young */
  int status = th_db_serve(L);  /* (db.connect gives pools from here on) */
  if (status == LUA_OK) {
    lua_pushcfunction(L, load_app);
    lua_pushlightuserdata(L, (void *)app);
    status = th_pcall(L, 1, 2);
  }
  if (status != LUA_OK) {
    char why[1024];
    copy_error(L, status, why, sizeof why);
    snprintf(err, errsize, "cannot load the app '%s': %s", app, why);
    lua_close(L);
    free(w);
    return NULL;
  }
  w->db_fd = th_db_fd(L);
  return w;
}

/* Frees w: its state first (its pools, which may hold tasks of the
 * slots), then the slots. */
static void worker_close(void *worker) {
  app_worker *w = worker;
  lua_close(w->L);
  for (int i = 0; i < w->ncoroutines; i++) free(w->all[i]);
  free(w->all);
  free(w->idle);
  free(w);
}

/* [-1, +1] A new coroutine, anchored in the table given. */
static int new_coroutine(lua_State *L) {
  lua_newthread(L);
  lua_pushvalue(L, -1);
  lua_rawseti(L, 1, (lua_Integer)luaL_len(L, 1) + 1);
  return 1;
}

static void wake(th_db_req *r);

/* A slot for a new request (an idle one, else a new one), or NULL when
 * out of memory. The lists grow first, so that keeping track of the slot
 * later never fails. */
static request_slot *take_slot(app_worker *w) {
  if (w->nidle > 0) return w->idle[--w->nidle];
  if (w->ncoroutines == w->cap) {
    int cap = w->cap ? w->cap * 2 : 16;
    request_slot **idle = realloc(w->idle, sizeof *idle * (size_t)cap);
    if (idle) w->idle = idle;
    request_slot **all = realloc(w->all, sizeof *all * (size_t)cap);
    if (all) w->all = all;
    if (!idle || !all) return NULL;
    w->cap = cap;
  }
  request_slot *slot = calloc(1, sizeof *slot);
  if (!slot) return NULL;
  lua_State *L = w->L;
  lua_pushcfunction(L, new_coroutine);
  lua_pushvalue(L, 2);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_settop(L, 2);
    free(slot);
    return NULL;
  }
  slot->db.co = lua_tothread(L, -1);
  slot->db.wake = wake;
  slot->db.ud = w;
  lua_settop(L, 2);   /* anchored by the table */
  w->all[w->ncoroutines++] = slot;
  return slot;
}

static int reply_k(lua_State *L, int st, lua_KContext ctx);

/* The body of a request's coroutine: builds req, calls the handler (which
 * may pause, see the top of this file), checks what it returned and hands
 * it to http_reply. Arguments: the handler, the http_request (light
 * userdata). A reply made before an error is discarded by the server, so
 * nothing here leaks when it raises. */
static int call_handler(lua_State *L) {
  http_request *req = lua_touserdata(L, 2);
  lua_settop(L, 1);

  lua_createtable(L, 0, 5);
  lua_pushstring(L, req->method);
  lua_setfield(L, -2, "method");
  lua_pushstring(L, req->path);
  lua_setfield(L, -2, "path");
  lua_pushlstring(L, req->query, req->query_len);
  lua_setfield(L, -2, "query");
  lua_createtable(L, 0, (int)req->nheaders);
  for (size_t i = 0; i < req->nheaders; i++) {   /* a repeated header: "v1, v2" */
    const http_header *h = &req->headers[i];
    lua_pushlstring(L, h->name, h->name_len);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushlstring(L, h->value, h->value_len);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, h->value, h->value_len);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
  if (req->body) {
    lua_pushlstring(L, req->body, req->body_len);
    lua_setfield(L, -2, "body");
  }

  lua_callk(L, 1, 3, (lua_KContext)req, reply_k);   /* status, headers, body at 1, 2, 3 */
  return reply_k(L, LUA_OK, (lua_KContext)req);
}

/* The rest of call_handler, once the handler has returned. */
static int reply_k(lua_State *L, int st, lua_KContext ctx) {
  (void)st;
  http_request *req = (http_request *)ctx;
  int isint;
  lua_Integer status = lua_tointegerx(L, 1, &isint);
  if (!isint || status < 200 || status > 599)
    return luaL_error(L, "the handler returned status %s (a %s): want an integer from 200 to 599",
                      luaL_tolstring(L, 1, NULL), luaL_typename(L, 1));
  int ht = lua_type(L, 2), bt = lua_type(L, 3);
  if (ht != LUA_TNIL && ht != LUA_TTABLE)
    return luaL_error(L, "the handler returned headers as a %s: want a table or nil", lua_typename(L, ht));
  if (bt != LUA_TNIL && bt != LUA_TSTRING)
    return luaL_error(L, "the handler returned a body that is a %s: want a string or nil", lua_typename(L, bt));
  size_t blen = 0;
  const char *body = bt == LUA_TSTRING ? lua_tolstring(L, 3, &blen) : NULL;
  if (http_reply(req, (int)status, body, blen) != 0)
    return luaL_error(L, "out of memory building the response");
  if (ht == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      int vt = lua_type(L, -1);
      if (lua_type(L, -2) != LUA_TSTRING || (vt != LUA_TSTRING && vt != LUA_TNUMBER)) {
        /* in sequence: C leaves the order of evaluating arguments open */
        const char *name = luaL_tolstring(L, -2, NULL);   /* pushes, so the value is now at -2 */
        const char *value = luaL_tolstring(L, -2, NULL);
        return luaL_error(L, "the handler returned a header %s = %s: want string names and string values",
                          name, value);
      }
      size_t klen, vlen;
      const char *k = lua_tolstring(L, -2, &klen);
      const char *v = lua_tolstring(L, -1, &vlen);   /* a number value becomes a string in place */
      if (strlen(k) != klen || strlen(v) != vlen || http_reply_header(req, k, v) != 0)
        return luaL_error(L, "the handler returned an invalid header '%s' (bad name, or CR/LF in it)", k);
      lua_pop(L, 1);
    }
  }
  return 0;
}

/* [-2, +1] (message, coroutine as a light userdata) -> the message with
 * the coroutine's traceback (as debug.traceback(co, message) gives). */
static int traceback_p(lua_State *L) {
  luaL_traceback(L, lua_touserdata(L, 2), lua_tostring(L, 1), 0);
  return 1;
}

/* Resumes the request of slot with nargs arguments on its coroutine's
 * stack. Returns 0 when the request is answered, HTTP_PENDING when a
 * database call paused it (lua_db.h), or -1 with the cause in err. Once
 * it has ended, its connections go back and the slot is idle again. */
static int resume(app_worker *w, request_slot *slot, int nargs, char *err, size_t errsize) {
  lua_State *co = slot->db.co;
  int nres;
  th_db_enter(w->L, &slot->db);
  int status = lua_resume(co, w->L, nargs, &nres);
  th_db_enter(w->L, NULL);
  if (status == LUA_YIELD) {
    if (slot->db.waiting) {
      lua_pop(co, nres);   /* (the binding's mark) */
      return HTTP_PENDING;
    }
    snprintf(err, errsize, "the handler called coroutine.yield outside a coroutine of its own");
    status = LUA_ERRRUN;
    lua_settop(co, 0);
    reset_thread(co, w->L);
  } else if (status != LUA_OK) {
    lua_xmove(co, w->L, 1);
    if (status == LUA_ERRRUN && lua_type(w->L, -1) == LUA_TSTRING && th_setting_bool("DEBUG")) {
      /* with DEBUG, the traceback th_pcall's message handler would add */
      lua_pushcfunction(w->L, traceback_p);
      lua_pushvalue(w->L, -2);
      lua_pushlightuserdata(w->L, co);
      if (lua_pcall(w->L, 2, 1, 0) == LUA_OK) lua_remove(w->L, -2);
      else lua_pop(w->L, 1);
    }
    copy_error(w->L, status, err, errsize);
    reset_thread(co, w->L);
  }
  lua_settop(co, 0);
  th_db_end(w->L, &slot->db);   /* (a transaction left open is rolled back) */
  slot->req = NULL;
  w->idle[w->nidle++] = slot;   /* room made by take_slot */
  return status == LUA_OK ? 0 : -1;
}

/* http_app.handle: runs the handler in a coroutine. */
static int worker_handle(void *worker, http_request *req, char *err, size_t errsize) {
  app_worker *w = worker;
  request_slot *slot = take_slot(w);
  if (!slot) {
    snprintf(err, errsize, "not enough memory");
    return -1;
  }
  slot->req = req;
  lua_State *co = slot->db.co;
  lua_pushcfunction(co, call_handler);
  lua_pushvalue(w->L, 1);
  lua_xmove(w->L, co, 1);
  lua_pushlightuserdata(co, req);
  return resume(w, slot, 2, err, errsize);
}

/* th_db_req.wake: a paused request can go on (called from th_db_tick). */
static void wake(th_db_req *r) {
  request_slot *slot = (request_slot *)r;   /* (db is its first member) */
  http_request *req = slot->req;
  char err[1024];
  err[0] = '\0';
  int rc = resume(r->ud, slot, 0, err, sizeof err);
  if (rc != HTTP_PENDING) http_finish(req, rc, err);
}

static int worker_fd(void *worker) { return ((app_worker *)worker)->db_fd; }

static int worker_tick(void *worker, int ready) {
  return th_db_tick(((app_worker *)worker)->L, ready);
}

static void worker_abort(void *worker) { th_db_abort(((app_worker *)worker)->L); }

/* ---- http.serve ------------------------------------------------------- */

http_app th_http_lua_app(const char *app) {
  http_app happ = {worker_open, worker_close, worker_handle, (void *)app, worker_fd, worker_tick,
                    worker_abort};
  return happ;
}

static const char *const serve_options[] = {
  "app", "host", "port", "workers", "max_body", "access_log", "reload", "timeout",
  "max_connections", "max_connections_per_ip", NULL
};

/* opts.key as an integer in [lo, hi], def when nil. */
static lua_Integer opt_integer(lua_State *L, const char *key, lua_Integer def, lua_Integer lo,
                               lua_Integer hi) {
  int t = lua_getfield(L, 1, key);
  lua_Integer v = def;
  if (t != LUA_TNIL) {
    int isint;
    v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < lo || v > hi)
      luaL_error(L, "http.serve: %s must be an integer from %I to %I, got %s", key, lo, hi,
                 luaL_tolstring(L, -1, NULL));
  }
  lua_pop(L, 1);
  return v;
}

static int opt_boolean(lua_State *L, const char *key, int def) {
  int t = lua_getfield(L, 1, key);
  int v = def;
  if (t == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
  else if (t != LUA_TNIL) luaL_error(L, "http.serve: %s must be true or false, got a %s", key, lua_typename(L, t));
  lua_pop(L, 1);
  return v;
}

/* opts.key as a string that stays alive in opts (the table is argument 1
 * for the whole call), def when nil. */
static const char *opt_string(lua_State *L, const char *key, const char *def) {
  int t = lua_getfield(L, 1, key);
  const char *v = def;
  if (t == LUA_TSTRING) v = lua_tostring(L, -1);
  else if (t != LUA_TNIL) luaL_error(L, "http.serve: %s must be a string, got a %s", key, lua_typename(L, t));
  lua_pop(L, 1);
  return v;
}

/* The default text of a setting of config.c's table (one that has one). */
static const char *setting_default(const char *name) {
  return th_setting_find(name)->def;
}

static lua_Integer default_integer(const char *name) {
  return (lua_Integer)strtoll(setting_default(name), NULL, 10);
}

static int l_http_serve(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    int known = 0;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (const char *const *o = serve_options; *o; o++)
        if (strcmp(*o, lua_tostring(L, -2)) == 0) known = 1;
    if (!known) return luaL_error(L, "http.serve: unknown option %s", luaL_tolstring(L, -2, NULL));
    lua_pop(L, 1);
  }
  const char *app = opt_string(L, "app", NULL);
  if (!app || !*app) return luaL_error(L, "http.serve: app (the handler module's name) is required");

  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  http_config cfg = {0};
  /* the defaults are the settings' (config.c); the ranges are the API's */
  cfg.host = opt_string(L, "host", setting_default("HOST"));
  cfg.port = (unsigned)opt_integer(L, "port", default_integer("PORT"), 0, 65535);
  cfg.workers = (unsigned)opt_integer(L, "workers", cores > 0 ? cores : 1, 1, 1024);
  cfg.max_body = (size_t)opt_integer(L, "max_body", default_integer("MAX_BODY"), 0, (lua_Integer)1 << 40);
  lua_getfield(L, 1, "access_log");   /* "json": one JSON object a line */
  int json_log = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "json") == 0;
  lua_pop(L, 1);
  cfg.access_log = json_log ? 2 : opt_boolean(L, "access_log", th_parse_bool(setting_default("ACCESS_LOG")));
  cfg.reload = opt_boolean(L, "reload", th_parse_bool(setting_default("RELOAD")));
  cfg.timeout = (unsigned)opt_integer(L, "timeout", default_integer("HTTP_TIMEOUT"), 0, 86400);
  cfg.max_connections = (unsigned)opt_integer(L, "max_connections", default_integer("MAX_CONNECTIONS"), 1, 1000000);
  /* a quarter of the connections by default: one client cannot take them all */
  lua_Integer share = cfg.max_connections / 4 ? cfg.max_connections / 4 : 1;
  cfg.max_per_ip = (unsigned)opt_integer(L, "max_connections_per_ip", share, 0, 1000000);

  /* Watched: scripts/, seeds/, migrations/ here and in the todohost home
   * (where require also looks). A directory twice does no harm. */
  static const char *const watched[] = {"scripts", "seeds", "migrations"};
  char paths[6][PATH_MAX];
  const char *dirs[7];
  int n = 0;
  for (int i = 0; i < 3; i++) {
    snprintf(paths[n], sizeof paths[n], "%s", watched[i]);
    dirs[n] = paths[n];
    n++;
    snprintf(paths[n], sizeof paths[n], "%s/%s", th_home(), watched[i]);
    dirs[n] = paths[n];
    n++;
  }
  dirs[n] = NULL;
  cfg.watch_dirs = dirs;

  http_app happ = th_http_lua_app(app);
  char err[1024];
  if (http_serve(&cfg, &happ, err, sizeof err) != 0) {
    lua_pushstring(L, err);   /* an operational error: no script position */
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- query strings ---------------------------------------------------- */

/* Pushes the decoded s[0..len). */
static void push_unescaped(lua_State *L, const char *s, size_t len) {
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, len + 1);
  luaL_pushresultsize(&b, http_unescape(s, len, out));
}

static int l_http_unescape(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  push_unescaped(L, s, len);
  return 1;
}

/* http.parse_query(s): kept as documented before (every name, an empty
 * value as "", the last value wins). Routes read their query through the
 * router's own reading (web.router.parse_query, where an empty value counts
 * as absent); this stays for scripts that used it. Linear in #s. */
static int l_http_parse_query(lua_State *L) {
  size_t len;
  const char *s = luaL_optlstring(L, 1, "", &len);
  const char *end = s + len;
  lua_newtable(L);
  while (s < end) {
    const char *amp = memchr(s, '&', (size_t)(end - s));
    if (!amp) amp = end;
    if (amp > s) {
      const char *eq = memchr(s, '=', (size_t)(amp - s));
      const char *name_end = eq ? eq : amp;
      push_unescaped(L, s, (size_t)(name_end - s));
      if (eq) push_unescaped(L, eq + 1, (size_t)(amp - eq - 1));
      else lua_pushliteral(L, "");
      lua_rawset(L, -3);
    }
    s = amp + 1;
  }
  return 1;
}

static const luaL_Reg http_funcs[] = {
  {"serve", l_http_serve},
  {"unescape", l_http_unescape},
  {"parse_query", l_http_parse_query},
  {NULL, NULL}
};

int luaopen_todohost_http(lua_State *L) {
  luaL_newlib(L, http_funcs);
  return 1;
}
