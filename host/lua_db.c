/*
 * lua_db.c: the `todohost.db` module, thin glue between Lua and db.h (and,
 * in a server's worker, db_pool.h).
 *
 * Types (one metatable each, made in luaopen_todohost_db):
 *   connection  full userdata lconn: a connection of its own (`conn`), or
 *               in a server's worker, for PostgreSQL, a pool (`pool`): see
 *               "Requests" below. A scratch cursor serves exec/query/first,
 *               so they allocate nothing (it is opened and closed with no
 *               yield between, so the requests sharing a pool share it
 *               safely). User values: 1 the masked URL, 2 the URL (pools);
 *   cursor      full userdata for rows(); user value 1 is its connection (a
 *               child keeps its parent alive), user value 2 caches the
 *               column names as Lua strings;
 *   error       a plain table {message, sqlstate, hint, sql} whose
 *               metatable gives a one-line __tostring.
 * close(), __close and __gc share one idempotent close per type.
 *
 * Requests. A server's worker state (th_db_serve) runs each request in a
 * coroutine and tells the binding which request runs (th_db_enter). There
 * db.connect() to PostgreSQL gives a pool of the worker's; a request takes
 * one of its connections at its first statement and keeps it until it
 * ends (th_db_end gives it back), so what it does to its session is its
 * own while it runs. Its statements are sent without waiting: the call
 * yields the request's coroutine (th_db_req.waiting), and the pool's loop
 * (th_db_tick) wakes it when the result is in; the call then returns as
 * if it had waited. Where the request cannot pause (a coroutine of the
 * handler's own, a metamethod), the statement runs at once on the same
 * connection. Outside requests (while the app loads) a pool object runs
 * on a connection of its own, as db.connect() does everywhere else.
 */
#include "lua_db.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dburl.h"
#include "mask.h"
#include "runtime.h"
#include <lualib.h>

static const char CONN_MT[] = "todohost.db.connection";
static const char CURSOR_MT[] = "todohost.db.cursor";
static const char ERROR_MT[] = "todohost.db.error";
static const char URLBOX_MT[] = "todohost.db.url";
static const char STATE_MT[] = "todohost.db.state";

/* A server worker's state: its loop (every pool's sockets) and the
 * request running. A userdata in the registry, made by th_db_serve before
 * the app loads, so it is finalized after every connection object. */
typedef struct dbstate {
  db_loop *loop;          /* NULL once freed */
  th_db_req *current;     /* the request running, or NULL */
  int chain;              /* the code running can yield up to the request's
                             coroutine (see "the handler's own coroutines") */
  struct lconn *direct;   /* the connections of its own opened in the state (SQLite) */
  db_pool_config cfg;     /* from DB_POOL_SIZE, DB_POOL_TIMEOUT, DB_POOL_RESET */
} dbstate;

static const char STATE_KEY = 0;   /* its address is the registry key */

typedef struct lconn {
  db_conn *conn;          /* a connection of its own; NULL once closed (or not made yet) */
  db_pool *pool;          /* a worker's pool; NULL once closed, or none */
  dbstate *st;            /* with pool: the worker's state */
  db_kind kind;
  int closed;
  struct lconn *prev, *next;   /* in st->direct: a connection of its own in a worker */
  db_cursor *scratch;     /* storage right after this struct */
} lconn;

typedef struct lcursor {
  lconn *owner;           /* kept alive through user value 1 */
  db_lent *lent;          /* a pool's connection it streams from, or NULL */
  db_cursor *cur;         /* storage right after this struct */
} lcursor;

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

/* ---- errors ----------------------------------------------------------- */

static int error_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "message");
  lua_getfield(L, 1, "hint");
  const char *msg = lua_tostring(L, -2), *hint = lua_tostring(L, -1);
  if (hint && *hint) lua_pushfstring(L, "%s; %s", msg ? msg : "database error", hint);
  else lua_pushstring(L, msg ? msg : "database error");
  return 1;
}

/* Pushes the error table for err (sql, when not NULL, names the statement). */
static void push_error(lua_State *L, const db_error *err, const char *sql) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, err->message);
  lua_setfield(L, -2, "message");
  lua_pushstring(L, err->sqlstate);
  lua_setfield(L, -2, "sqlstate");
  if (err->hint[0]) {
    lua_pushstring(L, err->hint);
    lua_setfield(L, -2, "hint");
  }
  if (sql) {
    lua_pushstring(L, sql);
    lua_setfield(L, -2, "sql");
  }
  luaL_setmetatable(L, ERROR_MT);
}

int th_raise_dberror(lua_State *L, const db_error *err) {
  push_error(L, err, NULL);
  return lua_error(L);
}

/* Raises err with the statement attached. The caller has already released
 * whatever it held: err is a copy in the caller's frame. */
static int raise_stmt_error(lua_State *L, const db_error *err, const char *sql) {
  push_error(L, err, sql);
  return lua_error(L);
}

/* ---- a server worker's state ------------------------------------------ */

static dbstate *state_of(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &STATE_KEY);
  dbstate *st = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return st && st->loop ? st : NULL;
}

static int state_gc(lua_State *L) {
  dbstate *st = luaL_checkudata(L, 1, STATE_MT);
  db_loop_free(st->loop);   /* every pool still on it, whatever it lent */
  st->loop = NULL;
  return 0;
}

/* The value of an integer setting (its default when it is not valid:
 * the server checked the settings when it started). */
static int setting_int(const char *name) {
  const th_setting_def *d = th_setting_find(name);
  th_value v;
  char why[256];
  if (d && th_setting_read(d, &v, why, sizeof why) == 0 && v.text) return (int)v.i;
  return d && d->def ? atoi(d->def) : 0;
}

/* [-0, +0] protected by the caller (th_pcall): may raise. */
static int serve_p(lua_State *L) {
  const char *reset = th_setting_text("DB_POOL_RESET");
  if (!reset || (strcmp(reset, "full") != 0 && strcmp(reset, "rollback") != 0))
    return luaL_error(L, "DB_POOL_RESET must be full or rollback, not '%s'", reset ? reset : "");
  dbstate *st = lua_newuserdatauv(L, sizeof *st, 0);
  memset(st, 0, sizeof *st);
  luaL_setmetatable(L, STATE_MT);
  st->loop = db_loop_new();
  if (!st->loop) return luaL_error(L, "cannot make the database loop (out of memory or descriptors)");
  st->cfg.size = setting_int("DB_POOL_SIZE");
  st->cfg.wait_ms = setting_int("DB_POOL_TIMEOUT");
  st->cfg.connect_ms = st->cfg.wait_ms > 10000 ? st->cfg.wait_ms : 10000;
  st->cfg.full_reset = strcmp(reset, "full") == 0;
  lua_rawsetp(L, LUA_REGISTRYINDEX, &STATE_KEY);
  return 0;
}

/* ---- the handler's own coroutines ---------------------------------------

 * A statement may pause its request from inside a coroutine of the
 * handler's own: the coroutine yields PAUSE to whoever resumed it, and in
 * a server's worker coroutine.resume and coroutine.wrap pass it on up to
 * the request's coroutine, then resume the inner one when the request is
 * woken. A statement pauses only where every resumer up the chain can
 * yield too (dbstate.chain); elsewhere (a metamethod, a C callback) it
 * runs at once. The rest is as in Lua's lcorolib.c. */

static const char PAUSE = 0;   /* its address: what a pausing call yields */

/* Resumes co with narg values from L's stack; pushes what it yields or
 * returns and returns how many, or -1 with the error pushed. */
static int resume_inner(lua_State *L, lua_State *co, int narg) {
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  dbstate *st = state_of(L);
  int saved = st ? st->chain : 0;
  if (st) st->chain = saved && lua_isyieldable(L);
  lua_xmove(L, co, narg);
  int nres, status = lua_resume(co, L, narg, &nres);
  if (st) st->chain = saved;
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

/* 1 when co paused for the database (its one value on top of L). */
static int paused(lua_State *L, lua_State *co, int r) {
  return r == 1 && lua_touserdata(L, -1) == &PAUSE && lua_status(co) == LUA_YIELD;
}

/* The coroutines paused for the database (a weak-keyed set in the
 * registry, made by pass_pauses_up): only the continuation that passed
 * the pause up resumes one; any other resume (another request holding it)
 * is refused, as it would run the request's statement as its own. */
static const char PAUSED = 0;   /* its address is the registry key */

/* Marks (on) or unmarks the coroutine at idx. */
static void mark_paused(lua_State *L, int idx, int on) {
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &PAUSED);
  lua_pushvalue(L, idx);
  if (on) lua_pushboolean(L, 1); else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static int is_paused(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &PAUSED) != LUA_TTABLE) { lua_pop(L, 1); return 0; }
  lua_pushvalue(L, idx);
  int on = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return on;
}

#define PAUSED_ELSEWHERE "cannot resume a coroutine that waits for the database for another request"

static int co_resume_k(lua_State *L, int status, lua_KContext ctx);

/* What coroutine.resume returns for r, or the pause passed on up. */
static int resumed(lua_State *L, lua_State *co, int r) {
  if (paused(L, co, r)) {
    mark_paused(L, 1, 1);
    return lua_yieldk(L, 1, 0, co_resume_k);
  }
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

static int co_resume_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  lua_State *co = lua_tothread(L, 1);
  lua_settop(L, 1);
  mark_paused(L, 1, 0);
  return resumed(L, co, resume_inner(L, co, 0));
}

static int co_resume(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);   /* (the message of lcorolib.c) */
  lua_State *co = lua_tothread(L, 1);
  if (is_paused(L, 1)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, PAUSED_ELSEWHERE);
    return 2;
  }
  return resumed(L, co, resume_inner(L, co, lua_gettop(L) - 1));
}

static int co_wrap_k(lua_State *L, int status, lua_KContext ctx);

/* What a coroutine.wrap function returns for r (raising its errors), or
 * the pause passed on up. */
static int wrapped(lua_State *L, lua_State *co, int r) {
  if (paused(L, co, r)) {
    mark_paused(L, lua_upvalueindex(1), 1);
    return lua_yieldk(L, 1, 0, co_wrap_k);
  }
  if (r >= 0) return r;
  int st = lua_status(co);
  if (st != LUA_OK && st != LUA_YIELD) {   /* an error: close its variables */
    lua_pop(L, 1);
    reset_thread(co, L);
    lua_xmove(co, L, 1);
  }
  if (lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

static int co_wrap_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  lua_settop(L, 0);
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  mark_paused(L, lua_upvalueindex(1), 0);
  return wrapped(L, co, resume_inner(L, co, 0));
}

static int co_wrap_call(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  if (is_paused(L, lua_upvalueindex(1))) return luaL_error(L, PAUSED_ELSEWHERE);
  return wrapped(L, co, resume_inner(L, co, lua_gettop(L)));
}

static int co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, co_wrap_call, 1);
  return 1;
}

/* Puts co_resume and co_wrap in the state's coroutine table. */
static void pass_pauses_up(lua_State *L) {
  lua_newtable(L);   /* PAUSED, weak-keyed */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &PAUSED);
  luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 0);
  lua_pushcfunction(L, co_resume);
  lua_setfield(L, -2, "resume");
  lua_pushcfunction(L, co_wrap);
  lua_setfield(L, -2, "wrap");
  lua_pop(L, 1);
}

int th_db_serve(lua_State *L) {
  luaL_requiref(L, "todohost.db", luaopen_todohost_db, 0);   /* (the metatables) */
  lua_pop(L, 1);
  pass_pauses_up(L);
  lua_pushcfunction(L, serve_p);
  return lua_pcall(L, 0, 0, 0);
}

int th_db_fd(lua_State *L) {
  dbstate *st = state_of(L);
  return st ? db_loop_fd(st->loop) : -1;
}

int th_db_tick(lua_State *L, int ready) {
  dbstate *st = state_of(L);
  return st ? db_loop_run(st->loop, ready) : -1;
}

void th_db_abort(lua_State *L) {
  dbstate *st = state_of(L);
  if (!st) return;
  db_error err;
  db_error_set(&err, "57P01", "run the request again once the server is back",
               "the server is stopping: this request's database work was cut short");
  db_loop_abort(st->loop, &err);
}

void th_db_enter(lua_State *L, th_db_req *r) {
  dbstate *st = state_of(L);
  if (st) {
    st->current = r;
    st->chain = r != NULL;
  }
}

void th_db_end(lua_State *L, th_db_req *r) {
  for (int i = 0; i < r->nleases; i++) db_pool_release(r->leases[i].lent);
  r->nleases = 0;
  r->busy = NULL;
  r->acquiring = NULL;
  r->waiting = 0;
  /* a transaction the request left open on a connection of the worker's
   * own (SQLite) is rolled back, as a pool does for its connections */
  dbstate *st = state_of(L);
  for (lconn *lc = st ? st->direct : NULL; lc; lc = lc->next) {
    db_error ignored;
    if (lc->conn) db_abandon_transaction(lc->conn, &ignored);
  }
}

/* ---- connections ------------------------------------------------------ */

static lconn *toconn(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, CONN_MT);
}

static int conn_close(lua_State *L) {
  lconn *lc = toconn(L, 1);
  db_conn *c = lc->conn;
  if (c && db_pinned(c))   /* never from __gc: the C code holding it keeps it reachable */
    return luaL_error(L, "connection is in use by a running copy: close it after the copy returns");
  lc->conn = NULL;        /* idempotent: null the handles first */
  lc->closed = 1;
  if (lc->st && !lc->pool && (lc->prev || lc->st->direct == lc)) {   /* in st->direct */
    if (lc->prev) lc->prev->next = lc->next; else lc->st->direct = lc->next;
    if (lc->next) lc->next->prev = lc->prev;
    lc->prev = lc->next = NULL;
  }
  db_pool *p = lc->pool;
  lc->pool = NULL;
  db_close(c);            /* also closes the scratch and rows() cursors */
  if (p && lc->st->loop) {
    /* the running request's lease on it goes back now (its cursors close) */
    th_db_req *r = lc->st->current;
    for (int i = 0; r && i < r->nleases; i++)
      if (r->leases[i].pool == p) {
        db_pool_release(r->leases[i].lent);
        r->leases[i] = r->leases[--r->nleases];
        break;
      }
    db_pool_close(p);     /* lent connections are closed as they come back */
  }
  return 0;
}

/* The string argument idx with every NUL byte made a space, pushed on the
 * stack (so owned by Lua) and returned. The C maskers read C strings: a NUL
 * would end the text early and leave a password after it unmasked. */
static const char *text_arg(lua_State *L, int idx) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (!memchr(s, '\0', n)) { lua_pushvalue(L, idx); return s; }
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, n);
  for (size_t i = 0; i < n; i++) p[i] = s[i] ? s[i] : ' ';
  luaL_pushresultsize(&b, n);
  return lua_tostring(L, -1);
}

/* A database URL argument: raises when it holds a NUL byte (no URL does;
 * libpq would read only up to it). */
static const char *url_arg(lua_State *L, int idx) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (memchr(s, '\0', n)) luaL_argerror(L, idx, "a database URL cannot hold a NUL byte");
  return s;
}

/* Reads db.connect's options table at idx into opt. */
static void connect_options(lua_State *L, int idx, db_options *opt) {
  opt->echo = th_setting_bool("DEBUG");
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "readonly");
  opt->readonly = lua_toboolean(L, -1);
  lua_getfield(L, idx, "echo");
  if (!lua_isnil(L, -1)) opt->echo = lua_toboolean(L, -1);
  lua_getfield(L, idx, "busy_timeout");
  opt->busy_timeout = (int)luaL_optinteger(L, -1, 0);
  lua_pop(L, 3);
}

/* A new connection userdata in the closed state (nothing to leak when an
 * allocation error cuts the call short). */
static lconn *new_conn(lua_State *L) {
  size_t off = ALIGN16(sizeof(lconn));
  lconn *lc = lua_newuserdatauv(L, off + db_cursor_size(), 2);
  memset(lc, 0, sizeof *lc);
  lc->closed = 1;
  lc->scratch = (db_cursor *)((char *)lc + off);
  db_cursor_init(lc->scratch);
  luaL_setmetatable(L, CONN_MT);
  return lc;
}

static int l_db_connect(lua_State *L) {
  const char *url = lua_isnoneornil(L, 1) ? NULL : url_arg(L, 1);
  db_options opt = {0};
  connect_options(L, 2, &opt);
  if (!url) url = th_setting_text("DATABASE_URL");
  lconn *lc = new_conn(L);
  db_error err;
  dbstate *st = state_of(L);
  if (st && strncmp(url, "sqlite:", 7) != 0) {   /* a server's worker: a pool */
    char *safe = db_mask_url(url);
    if (!safe) return luaL_error(L, "out of memory");
    lua_pushstring(L, safe);
    free(safe);
    lua_setiuservalue(L, -2, 1);
    lua_pushstring(L, url);
    lua_setiuservalue(L, -2, 2);
    lc->pool = db_pool_new(st->loop, url, &opt, &st->cfg, &err);
    if (!lc->pool) return th_raise_dberror(L, &err);
    lc->st = st;
    lc->kind = DB_POSTGRESQL;
    lc->closed = 0;
    return 1;
  }
  if (db_connect(url, &opt, &lc->conn, &err) < 0) return th_raise_dberror(L, &err);
  lc->kind = db_conn_kind(lc->conn);
  lc->closed = 0;
  if (st) {   /* a worker's: listed, so that each request's end can clean it */
    lc->st = st;
    lc->next = st->direct;
    if (st->direct) st->direct->prev = lc;
    st->direct = lc;
  }
  return 1;
}

/* The connection a pool object runs on outside requests, made at its
 * first use. Raises when it cannot connect. */
static db_conn *own_conn(lua_State *L, lconn *lc, int idx) {
  if (lc->conn) return lc->conn;
  lua_getiuservalue(L, idx, 2);
  const char *url = lua_tostring(L, -1);
  db_options opt = {0};
  opt.echo = th_setting_bool("DEBUG");
  db_error err;
  if (!url || db_connect(url, &opt, &lc->conn, &err) < 0) {
    if (!url) db_error_set(&err, "08003", NULL, "connection is closed");
    return th_raise_dberror(L, &err), NULL;
  }
  lua_pop(L, 1);
  return lc->conn;
}

db_conn *th_checkconn(lua_State *L, int idx) {
  lconn *lc = toconn(L, idx);
  if (lc->closed) luaL_error(L, "connection is closed");
  if (!lc->pool) return lc->conn;
  th_db_req *r = lc->st->current;
  for (int i = 0; r && i < r->nleases; i++)
    if (r->leases[i].pool == lc->pool) return db_lent_conn(r->leases[i].lent);
  return own_conn(L, lc, idx);
}
/* ---- values ----------------------------------------------------------- */

/* Converts the Lua arguments from index first on into values. Strings stay
 * owned by the Lua stack, which outlives the call. vals has room for n. */
static void check_params(lua_State *L, int first, int n, db_value *vals) {
  for (int i = 0; i < n; i++) {
    int idx = first + i;
    db_value *v = &vals[i];
    switch (lua_type(L, idx)) {
      case LUA_TNIL: v->type = DB_NULL; break;
      case LUA_TBOOLEAN: v->type = DB_BOOL; v->u.b = lua_toboolean(L, idx); break;
      case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) { v->type = DB_INT; v->u.i = lua_tointeger(L, idx); }
        else { v->type = DB_FLOAT; v->u.f = lua_tonumber(L, idx); }
        break;
      case LUA_TSTRING:
        v->type = DB_TEXT;
        v->u.s.p = lua_tolstring(L, idx, &v->u.s.n);
        break;
      case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { v->type = DB_NULL; break; }  /* cjson.null */
        /* fall through */
      default:
        luaL_argerror(L, idx, lua_pushfstring(L,
            "SQL parameters must be nil, boolean, number or string, got %s",
            luaL_typename(L, idx)));
    }
  }
}

/* Pushes a value of the current row. */
static void push_value(lua_State *L, const db_value *v) {
  switch (v->type) {
    case DB_NULL: lua_pushnil(L); break;
    case DB_INT: lua_pushinteger(L, (lua_Integer)v->u.i); break;
    case DB_FLOAT: lua_pushnumber(L, v->u.f); break;
    case DB_BOOL: lua_pushboolean(L, v->u.b); break;
    default: lua_pushlstring(L, v->u.s.p, v->u.s.n); break;
  }
}

/* Pushes a table with the column names of cur as Lua strings. */
static void push_names(lua_State *L, db_cursor *cur) {
  int n = db_cursor_ncols(cur);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    size_t len;
    const char *name = db_cursor_colname(cur, i, &len);
    lua_pushlstring(L, name, len);
    lua_rawseti(L, -2, i + 1);
  }
}

/* Pushes the current row as a table keyed by column name; NULLs are left
 * out. names is the stack index of a names table, or 0. */
static void push_row(lua_State *L, db_cursor *cur, int names) {
  int n = db_cursor_ncols(cur);
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    db_value v;
    db_cursor_value(cur, i, &v);
    if (v.type == DB_NULL) continue;
    if (names) lua_rawgeti(L, names, i + 1);
    else {
      size_t len;
      const char *name = db_cursor_colname(cur, i, &len);
      lua_pushlstring(L, name, len);
    }
    push_value(L, &v);
    lua_rawset(L, -3);
  }
}

/* ---- outcomes ----------------------------------------------------------- */

/* Runs the open cur to its end; pushes the rows changed. */
static int push_changes(lua_State *L, db_cursor *cur, const char *sql) {
  db_error err;
  int rc;
  while ((rc = db_cursor_next(cur, &err)) > 0) {}
  int64_t changes = db_cursor_changes(cur);
  db_cursor_close(cur);
  if (rc < 0) return raise_stmt_error(L, &err, sql);
  lua_pushinteger(L, (lua_Integer)changes);
  return 1;
}

/* Pushes every row of the open cur as a list; raises on an error. */
static int push_all_rows(lua_State *L, db_cursor *cur, const char *sql) {
  lua_newtable(L);
  int result = lua_gettop(L), names = 0;
  db_error err;
  int rc;
  lua_Integer i = 0;
  while ((rc = db_cursor_next(cur, &err)) > 0) {
    if (!names) { push_names(L, cur); names = lua_gettop(L); }
    push_row(L, cur, names);
    lua_rawseti(L, result, ++i);
  }
  db_cursor_close(cur);
  if (rc < 0) return raise_stmt_error(L, &err, sql);
  lua_settop(L, result);
  return 1;
}

/* Pushes the first row of the open cur (nil when none) and closes it. */
static int push_first_row(lua_State *L, db_cursor *cur, const char *sql) {
  db_error err;
  int rc = db_cursor_next(cur, &err);
  if (rc > 0) {
    push_row(L, cur, 0);
    if (db_cursor_complete(cur, &err) < 0) rc = -1;   /* a writer's end: its commit */
  }
  db_cursor_close(cur);
  if (rc < 0) return raise_stmt_error(L, &err, sql);
  if (rc == 0) lua_pushnil(L);
  return 1;
}

/* What exec, query and first return. */
enum { RUN_EXEC, RUN_QUERY, RUN_FIRST };

static int push_outcome(lua_State *L, db_cursor *cur, int mode, const char *sql) {
  if (mode == RUN_EXEC) return push_changes(L, cur, sql);
  if (mode == RUN_QUERY) return push_all_rows(L, cur, sql);
  return push_first_row(L, cur, sql);
}

#define SMALL_PARAMS 16

/* The parameters of the call (conn, sql, params...) as values, in small
 * or (more of them) in a userdata pushed on the stack. Returns how many. */
static int call_params(lua_State *L, db_value small[SMALL_PARAMS], db_value **vals) {
  int n = lua_gettop(L) - 2;
  *vals = small;
  if (n > SMALL_PARAMS) *vals = lua_newuserdatauv(L, sizeof **vals * (size_t)n, 0);
  check_params(L, 3, n, *vals);
  return n;
}

/* ---- requests: leases and pauses ----------------------------------------- */

/* The running request when the call in L may pause it: made by the
 * request's coroutine itself, where it can yield. */
static th_db_req *pausable(lua_State *L, const lconn *lc) {
  th_db_req *r = lc->st->current;
  return r && lc->st->chain && lua_isyieldable(L) ? r : NULL;
}

static db_lent *lease_of(const th_db_req *r, const db_pool *p) {
  for (int i = 0; r && i < r->nleases; i++)
    if (r->leases[i].pool == p) return r->leases[i].lent;
  return NULL;
}

static void lease_add(th_db_req *r, db_pool *p, db_lent *l) {
  r->leases[r->nleases].pool = p;
  r->leases[r->nleases].lent = l;
  r->nleases++;
}

static void task_done(db_task *t) {
  th_db_req *r = t->ud;
  r->waiting = 0;
  r->wake(r);
}

static db_task *task_of(th_db_req *r) {
  r->task.done = task_done;
  r->task.ud = r;
  return &r->task;
}

/* Yields the request until its task is done; k then continues with ctx. */
static int pause_request(lua_State *L, th_db_req *r, lua_KContext ctx, lua_KFunction k) {
  r->waiting = 1;
  lua_pushlightuserdata(L, (void *)&PAUSE);   /* (passed up by the handler's own coroutines) */
  return lua_yieldk(L, 1, ctx, k);
}

/* The connection of lc's pool that request r holds, taking one at its
 * first statement: NULL when r must pause for it (may is 1: r->task
 * waits), and raises when none can be had. */
static db_lent *request_conn(lua_State *L, lconn *lc, th_db_req *r, int may_pause) {
  db_lent *l = lease_of(r, lc->pool);
  if (l) return l;
  if (r->nleases == TH_DB_LEASES)
    luaL_error(L, "a request can use at most %d database pools at once", TH_DB_LEASES);
  db_error err;
  if (!may_pause) {
    if (db_pool_acquire_now(lc->pool, &l, &err) < 0) th_raise_dberror(L, &err);
    lease_add(r, lc->pool, l);
    return l;
  }
  int rc = db_pool_acquire(lc->pool, task_of(r));
  if (rc < 0) {
    err = r->task.err;
    th_raise_dberror(L, &err);
  }
  if (rc == 0) {
    r->acquiring = lc->pool;
    return NULL;
  }
  lease_add(r, lc->pool, r->task.lent);
  return r->task.lent;
}

/* In a continuation after request_conn paused: the connection lent. */
static db_lent *acquired(lua_State *L, th_db_req *r) {
  if (r->task.failed) {
    db_error err = r->task.err;
    th_raise_dberror(L, &err);
  }
  lease_add(r, r->acquiring, r->task.lent);
  return r->task.lent;
}

/* Waits (pausing r) for the operation started on l; k(ctx) continues. */
static int await(lua_State *L, th_db_req *r, db_lent *l, lua_KContext ctx, lua_KFunction k) {
  r->busy = l;
  if (db_pool_wait(l, task_of(r))) return k(L, LUA_OK, ctx);
  return pause_request(L, r, ctx, k);
}

/* ---- exec, query, first ----------------------------------------------- */

/* Continuation stages (in the context, above the mode's 4 bits). */
enum { STAGE_ACQUIRED = 16, STAGE_SENT = 32, STAGE_DRAINED = 64 };

/* 1 when l's connection still reads what a rows() loop closed early left:
 * the caller awaits that, then sends (stage STAGE_DRAINED). */
static int draining(db_lent *l) { return db_pending(db_lent_conn(l)); }

static int stmt_k(lua_State *L, int status, lua_KContext ctx);

/* Runs (conn, sql, params...) on l's connection (or c, without l): sent
 * for r, which pauses until its outcome is in (stmt_k), or at once with
 * the scratch cursor (r NULL). */
static int start_stmt(lua_State *L, lconn *lc, db_conn *c, th_db_req *r, db_lent *l, int mode) {
  if (r && draining(l)) return await(L, r, l, mode | STAGE_DRAINED, stmt_k);
  size_t len;
  const char *sql = lua_tolstring(L, 2, &len);
  db_value small[SMALL_PARAMS], *vals;
  int n = call_params(L, small, &vals);
  db_error err;
  if (r) {
    if (db_send(db_lent_conn(l), sql, len, n, vals, 0, &err) < 0) return raise_stmt_error(L, &err, sql);
    return await(L, r, l, mode | STAGE_SENT, stmt_k);
  }
  if (db_cursor_open(lc->scratch, l ? db_lent_conn(l) : c, sql, len, n, vals, 0, &err) < 0)
    return raise_stmt_error(L, &err, sql);
  return push_outcome(L, lc->scratch, mode, sql);
}
static int stmt_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lconn *lc = toconn(L, 1);
  th_db_req *r = lc->st->current;
  int mode = (int)(ctx & 15);
  if (ctx & STAGE_ACQUIRED) return start_stmt(L, lc, NULL, r, acquired(L, r), mode);
  if (ctx & STAGE_DRAINED) return start_stmt(L, lc, NULL, r, r->busy, mode);
  db_error err;
  const char *sql = lua_tostring(L, 2);
  if (db_finish(lc->scratch, db_lent_conn(r->busy), &err) < 0) return raise_stmt_error(L, &err, sql);
  return push_outcome(L, lc->scratch, mode, sql);
}

/* exec, query and first: on a connection of its own, or in a request on
 * its pool's connection (pausing when it can), or outside requests on the
 * pool object's own connection. */
static int run_stmt(lua_State *L, int mode) {
  lconn *lc = toconn(L, 1);
  luaL_checkstring(L, 2);
  if (lc->closed) return luaL_error(L, "connection is closed");
  if (!lc->pool) return start_stmt(L, lc, lc->conn, NULL, NULL, mode);
  th_db_req *r = lc->st->current;
  if (!r) return start_stmt(L, lc, own_conn(L, lc, 1), NULL, NULL, mode);
  th_db_req *pr = pausable(L, lc);
  db_lent *l = request_conn(L, lc, r, pr != NULL);
  if (!l) return pause_request(L, r, mode | STAGE_ACQUIRED, stmt_k);
  return start_stmt(L, lc, NULL, pr, l, mode);
}

static int conn_exec(lua_State *L) { return run_stmt(L, RUN_EXEC); }
static int conn_query(lua_State *L) { return run_stmt(L, RUN_QUERY); }
static int conn_first(lua_State *L) { return run_stmt(L, RUN_FIRST); }

/* ---- rows(): streaming cursors ---------------------------------------- */

static lcursor *tocursor(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, CURSOR_MT);
}

/* close(), __close and __gc, idempotent. A statement that writes, left
 * before its last row, is first run to its end (db_cursor_complete), so a
 * failed commit raises here, as first() raises it; but not from __gc (a
 * collector cannot report) nor from a __close that an error unwinds (that
 * error stays the one reported). */
static int close_cursor(lua_State *L, int quiet) {
  lcursor *lk = tocursor(L, 1);
  db_error err;
  int rc = quiet ? 0 : db_cursor_complete(lk->cur, &err);   /* (a closed one: nothing) */
  db_cursor_close(lk->cur);
  lk->lent = NULL;
  if (rc < 0) return th_raise_dberror(L, &err);
  return 0;
}

/* close(), and __close (its second argument: the error unwinding, if any) */
static int cursor_close(lua_State *L) { return close_cursor(L, !lua_isnoneornil(L, 2)); }
static int cursor_gc(lua_State *L) { return close_cursor(L, 1); }

/* The next row of the cursor at 1, or nil at the end (closing it). */
static int next_row(lua_State *L) {
  lcursor *lk = tocursor(L, 1);
  if (!db_cursor_is_open(lk->cur)) {
    if (lk->owner->closed) return luaL_error(L, "connection is closed");
    lua_pushnil(L);
    return 1;
  }
  db_error err;
  int rc = db_cursor_next(lk->cur, &err);
  if (rc > 0) {
    if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE) {
      lua_pop(L, 1);
      push_names(L, lk->cur);
      lua_pushvalue(L, -1);
      lua_setiuservalue(L, 1, 2);
    }
    push_row(L, lk->cur, lua_gettop(L));
    return 1;
  }
  db_cursor_close(lk->cur);
  lk->lent = NULL;
  if (rc < 0) return th_raise_dberror(L, &err);
  lua_pushnil(L);
  return 1;
}

static int next_row_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  return next_row(L);
}

/* The iterator: (cursor, _) -> row, or nil at the end. Streaming from a
 * pool's connection in a request, it pauses until the next row is in. */
static int cursor_next(lua_State *L) {
  lcursor *lk = tocursor(L, 1);
  lua_settop(L, 1);
  if (lk->lent && db_cursor_is_open(lk->cur) && lk->owner->st) {
    if (lease_of(lk->owner->st->current, lk->owner->pool) != lk->lent)   /* (kept somewhere) */
      return luaL_error(L, "this rows() loop reads from the connection of another request: "
                           "read it to its end in the request that started it");
    th_db_req *r = pausable(L, lk->owner);
    if (r) return await(L, r, lk->lent, 0, next_row_k);
  }
  return next_row(L);
}

/* Pushes what rows() returns for the cursor at idx: iterator, cursor, nil,
 * cursor (to-be-closed, so a `break` out of the loop closes it). */
static int push_loop(lua_State *L, int idx) {
  lua_pushcfunction(L, cursor_next);
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_pushvalue(L, idx);
  return 4;
}

static int rows_k(lua_State *L, int status, lua_KContext ctx);

/* Sends the rows() statement on l for r; the cursor is at idx. */
static int send_rows(lua_State *L, th_db_req *r, db_lent *l, int idx) {
  size_t len;
  const char *sql = lua_tolstring(L, 2, &len);
  lua_settop(L, idx);   /* (the parameters are below the cursor) */
  if (draining(l)) return await(L, r, l, STAGE_DRAINED | (lua_KContext)idx << 8, rows_k);
  int n = idx - 3;
  db_value small[SMALL_PARAMS], *vals = small;
  if (n > SMALL_PARAMS) vals = lua_newuserdatauv(L, sizeof *vals * (size_t)n, 0);
  check_params(L, 3, n, vals);
  db_error err;
  if (db_send(db_lent_conn(l), sql, len, n, vals, 1, &err) < 0) return raise_stmt_error(L, &err, sql);
  lua_settop(L, idx);
  return await(L, r, l, STAGE_SENT | (lua_KContext)idx << 8, rows_k);
}

static int rows_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lconn *lc = toconn(L, 1);
  th_db_req *r = lc->st->current;
  int idx = (int)(ctx >> 8);
  if (ctx & STAGE_ACQUIRED) return send_rows(L, r, acquired(L, r), idx);
  if (ctx & STAGE_DRAINED) return send_rows(L, r, r->busy, idx);
  lcursor *lk = tocursor(L, idx);
  db_error err;
  if (db_finish(lk->cur, db_lent_conn(r->busy), &err) < 0)
    return raise_stmt_error(L, &err, lua_tostring(L, 2));
  lk->lent = r->busy;
  return push_loop(L, idx);
}

static int conn_rows(lua_State *L) {
  lconn *lc = toconn(L, 1);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  if (lc->closed) return luaL_error(L, "connection is closed");
  int n = lua_gettop(L) - 2;
  size_t off = ALIGN16(sizeof(lcursor));
  lcursor *lk = lua_newuserdatauv(L, off + db_cursor_size(), 2);
  lk->owner = lc;
  lk->lent = NULL;
  lk->cur = (db_cursor *)((char *)lk + off);
  db_cursor_init(lk->cur);
  luaL_setmetatable(L, CURSOR_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  int idx = lua_gettop(L);
  db_conn *c = lc->conn;
  if (lc->pool) {
    th_db_req *r = lc->st->current;
    if (!r) {
      c = own_conn(L, lc, 1);
    } else {
      th_db_req *pr = pausable(L, lc);
      db_lent *l = request_conn(L, lc, r, pr != NULL);
      if (!l) return pause_request(L, r, STAGE_ACQUIRED | (lua_KContext)idx << 8, rows_k);
      if (pr) return send_rows(L, r, l, idx);
      c = db_lent_conn(l);
      lk->lent = l;
    }
  }
  db_value small[SMALL_PARAMS], *vals = small;
  if (n > SMALL_PARAMS) vals = lua_newuserdatauv(L, sizeof *vals * (size_t)n, 0);
  check_params(L, 3, n, vals);
  db_error err;
  if (db_cursor_open(lk->cur, c, sql, len, n, vals, 1, &err) < 0)
    return raise_stmt_error(L, &err, sql);
  return push_loop(L, idx);
}

/* ---- transactions ----------------------------------------------------- */

/* fn closed the connection: the server rolled back (status: fn's). */
static int closed_inside(lua_State *L, int failed) {
  if (failed) return lua_error(L);
  return luaL_error(L, "connection is closed (closed inside its own transaction, which was rolled back)");
}

/* conn:transaction(fn) at once on c: fn(conn) runs inside BEGIN ..
 * COMMIT (a SAVEPOINT when nested); any error rolls back and is re-raised
 * as it was. */
static int tx_now(lua_State *L, lconn *lc, db_conn *c) {
  db_error err;
  if (db_begin(c, &err) < 0) return th_raise_dberror(L, &err);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  int status = lua_pcall(L, 1, LUA_MULTRET, 0);
  if (lc->closed) return closed_inside(L, status != LUA_OK);
  if (status != LUA_OK) {
    db_error ignored;
    db_rollback(c, &ignored);
    return lua_error(L);   /* the original error, untouched */
  }
  if (db_commit(c, &err) < 0) return th_raise_dberror(L, &err);
  return lua_gettop(L) - 2;
}

enum { TX_ACQUIRED = 1, TX_BEGUN, TX_RAN, TX_COMMITTED, TX_ROLLED_BACK,
       TX_DRAINED = 8 };   /* | op << 4 | next << 8: send op, then go on at next */

static int tx_k(lua_State *L, int status, lua_KContext ctx);

/* Sends op on l for r; tx_k continues at stage next. A ROLLBACK that
 * cannot be sent is skipped (the error it follows is raised). */
static int tx_send(lua_State *L, th_db_req *r, db_lent *l, db_tx op, int next) {
  if (draining(l)) return await(L, r, l, TX_DRAINED | op << 4 | (lua_KContext)next << 8, tx_k);
  db_error err;
  if (db_send_tx(db_lent_conn(l), op, &err) < 0) {
    if (op == DB_TX_ROLLBACK) return lua_error(L);
    return th_raise_dberror(L, &err);
  }
  return await(L, r, l, next, tx_k);
}

static int tx_k(lua_State *L, int status, lua_KContext ctx) {
  lconn *lc = toconn(L, 1);
  th_db_req *r = lc->st->current;
  if (ctx & TX_DRAINED) return tx_send(L, r, r->busy, (db_tx)(ctx >> 4 & 15), (int)(ctx >> 8));
  db_error err;
  switch ((int)ctx) {
    case TX_ACQUIRED:
      return tx_send(L, r, acquired(L, r), DB_TX_BEGIN, TX_BEGUN);
    case TX_BEGUN:
      if (db_finish(NULL, db_lent_conn(r->busy), &err) < 0) return th_raise_dberror(L, &err);
      lua_pushvalue(L, 2);
      lua_pushvalue(L, 1);
      return tx_k(L, lua_pcallk(L, 1, LUA_MULTRET, 0, TX_RAN, tx_k), TX_RAN);
    case TX_RAN: {
      int failed = status != LUA_OK && status != LUA_YIELD;
      if (lc->closed) return closed_inside(L, failed);
      db_lent *l = lease_of(r, lc->pool);
      if (!l) return luaL_error(L, "the transaction's connection went back to the pool");
      db_close_cursors(db_lent_conn(l));   /* rows() loops fn left: they end with it */
      return tx_send(L, r, l, failed ? DB_TX_ROLLBACK : DB_TX_COMMIT,
                     failed ? TX_ROLLED_BACK : TX_COMMITTED);
    }
    case TX_COMMITTED:
      if (db_finish(NULL, db_lent_conn(r->busy), &err) < 0) return th_raise_dberror(L, &err);
      return lua_gettop(L) - 2;
    default:   /* TX_ROLLED_BACK: the original error, untouched */
      (void)db_finish(NULL, db_lent_conn(r->busy), &err);
      return lua_error(L);
  }
}

static int conn_transaction(lua_State *L) {
  lconn *lc = toconn(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (lc->closed) return luaL_error(L, "connection is closed");
  lua_settop(L, 2);
  if (!lc->pool) return tx_now(L, lc, lc->conn);
  th_db_req *r = lc->st->current;
  if (!r) return tx_now(L, lc, own_conn(L, lc, 1));
  th_db_req *pr = pausable(L, lc);
  db_lent *l = request_conn(L, lc, r, pr != NULL);
  if (!l) return pause_request(L, r, TX_ACQUIRED, tx_k);
  if (!pr) return tx_now(L, lc, db_lent_conn(l));
  return tx_send(L, r, l, DB_TX_BEGIN, TX_BEGUN);
}

/* db.batch_reads() -> false: kept so that routes written for the earlier
 * scheme keep working; every request now has its own connection. */
static int l_db_batch_reads(lua_State *L) {
  lua_pushboolean(L, 0);
  return 1;
}

/* ---- URLs: parsing and masking (host/dburl.c) -------------------------- */

/* What a URL call holds while it builds its result: freed by __gc when a
 * Lua error (out of memory) cuts the call short, else by the call itself. */
typedef struct urlbox {
  db_url url;
  char *text;
} urlbox;

static int urlbox_gc(lua_State *L) {
  urlbox *b = luaL_checkudata(L, 1, URLBOX_MT);
  db_url_free(&b->url);
  free(b->text);
  b->text = NULL;
  return 0;
}

static urlbox *new_urlbox(lua_State *L) {
  urlbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, URLBOX_MT);
  return b;
}

static void set_string(lua_State *L, const char *key, const char *value) {
  if (!value) return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, key);
}

/* db.parse_url(url) -> {kind, url (masked), ...} or nil, error table.
 * SQLite: path (nil in memory), uri. PostgreSQL: libpq's reading as
 * params {key = value} (never the password), host, port (integer when
 * one), user, dbname from it, and password. */
static int l_db_parse_url(lua_State *L) {
  const char *text = url_arg(L, 1);
  urlbox *b = new_urlbox(L);
  db_error err;
  if (db_url_parse(text, &b->url, &err) < 0) {
    lua_pushnil(L);
    push_error(L, &err, NULL);
    return 2;
  }
  const db_url *u = &b->url;
  lua_createtable(L, 0, 8);
  set_string(L, "kind", db_kind_name(u->kind));
  set_string(L, "url", u->safe);
  if (u->kind == DB_SQLITE) {
    set_string(L, "path", u->file);
    lua_pushboolean(L, u->uri);
    lua_setfield(L, -2, "uri");
  } else {
    lua_newtable(L);
    for (char **p = u->params; p && *p; p += 2) {
      lua_pushstring(L, p[1]);
      lua_setfield(L, -2, p[0]);
      if (strcmp(p[0], "host") == 0 || strcmp(p[0], "user") == 0 || strcmp(p[0], "dbname") == 0) {
        lua_pushstring(L, p[1]);
        lua_setfield(L, -3, p[0]);
      } else if (strcmp(p[0], "port") == 0 && p[1][0] && strlen(p[1]) <= 5 &&
                 strspn(p[1], "0123456789") == strlen(p[1])) {
        lua_pushinteger(L, atoi(p[1]));
        lua_setfield(L, -3, "port");
      }
    }
    lua_setfield(L, -2, "params");
    set_string(L, "password", u->password);
  }
  db_url_free(&b->url);
  return 1;
}

/* db.mask_url(url) -> url with every password replaced by "***" (a NUL
 * byte shows as a space). */
static int l_db_mask_url(lua_State *L) {
  const char *text = text_arg(L, 1);
  urlbox *b = new_urlbox(L);
  b->text = db_mask_url(text);
  if (!b->text) return luaL_error(L, "out of memory");
  lua_pushstring(L, b->text);
  free(b->text);
  b->text = NULL;
  return 1;
}

/* db.mask_text(text) -> text with the password of every URL and every
 * password=... in it replaced by "***" (a NUL byte shows as a space). */
static int l_db_mask_text(lua_State *L) {
  const char *text = text_arg(L, 1);
  size_t n = strlen(text);
  urlbox *b = new_urlbox(L);
  size_t cap = 2 * n + 64;   /* each "***" replaces at least one byte of key=, ://, @ */
  b->text = malloc(cap);
  if (!b->text) return luaL_error(L, "out of memory");
  db_mask_text(text, b->text, cap);
  lua_pushstring(L, b->text);
  free(b->text);
  b->text = NULL;
  return 1;
}

/* ---- metatables ------------------------------------------------------- */

/* Pushes the masked URL of the connection object at idx. */
static void push_safe_url(lua_State *L, lconn *lc, int idx) {
  if (lc->pool || !lc->conn) lua_getiuservalue(L, idx, 1);
  else lua_pushstring(L, db_conn_safe_url(lc->conn));
}

static int conn_tostring(lua_State *L) {
  lconn *lc = toconn(L, 1);
  if (lc->closed) {
    lua_pushliteral(L, "todohost.db connection (closed)");
  } else {
    push_safe_url(L, lc, 1);
    lua_pushfstring(L, "todohost.db connection (%s)", lua_tostring(L, -1));
  }
  return 1;
}

/* __index: methods, plus the read-only fields `kind` and `url` (masked). */
static int conn_index(lua_State *L) {
  lconn *lc = toconn(L, 1);
  const char *key = lua_tostring(L, 2);
  if (key && strcmp(key, "kind") == 0) {
    if (lc->closed) return luaL_error(L, "connection is closed");
    lua_pushstring(L, db_kind_name(lc->kind));
    return 1;
  }
  if (key && strcmp(key, "url") == 0) {   /* masked */
    if (lc->closed) return luaL_error(L, "connection is closed");
    push_safe_url(L, lc, 1);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static const luaL_Reg conn_methods[] = {
  {"exec", conn_exec},
  {"query", conn_query},
  {"first", conn_first},
  {"rows", conn_rows},
  {"transaction", conn_transaction},
  {"close", conn_close},
  {NULL, NULL}
};

static const luaL_Reg conn_meta[] = {
  {"__gc", conn_close},
  {"__close", conn_close},
  {"__tostring", conn_tostring},
  {NULL, NULL}
};

static const luaL_Reg cursor_meta[] = {
  {"__gc", cursor_gc},
  {"__close", cursor_close},
  {NULL, NULL}
};

/* db.is_error(v) -> true when v is a todohost.db error table. */
static int l_db_is_error(lua_State *L) {
  lua_pushboolean(L, lua_getmetatable(L, 1) &&
                         (luaL_getmetatable(L, ERROR_MT), lua_rawequal(L, -1, -2)));
  return 1;
}

/* db.pool_stats() -> {open, lent, waiting} summed over the worker's pools,
 * or nil outside a server's worker. */
static int l_db_pool_stats(lua_State *L) {
  dbstate *st = state_of(L);
  if (!st) return 0;
  int open = 0, lent = 0, waiting = 0;
  db_loop_stats(st->loop, &open, &lent, &waiting);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, open);
  lua_setfield(L, -2, "open");
  lua_pushinteger(L, lent);
  lua_setfield(L, -2, "lent");
  lua_pushinteger(L, waiting);
  lua_setfield(L, -2, "waiting");
  return 1;
}

int luaopen_todohost_db(lua_State *L) {
  luaL_newmetatable(L, CONN_MT);
  luaL_setfuncs(L, conn_meta, 0);
  luaL_newlib(L, conn_methods);
  lua_pushcclosure(L, conn_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  luaL_newmetatable(L, CURSOR_MT);
  luaL_setfuncs(L, cursor_meta, 0);
  lua_pushcfunction(L, cursor_close);
  lua_setfield(L, -2, "close");
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  luaL_newmetatable(L, URLBOX_MT);
  lua_pushcfunction(L, urlbox_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  luaL_newmetatable(L, STATE_MT);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  luaL_newmetatable(L, ERROR_MT);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  static const luaL_Reg funcs[] = {
    {"connect", l_db_connect},
    {"is_error", l_db_is_error},
    {"batch_reads", l_db_batch_reads},
    {"pool_stats", l_db_pool_stats},
    {"parse_url", l_db_parse_url},
    {"mask_url", l_db_mask_url},
    {"mask_text", l_db_mask_text},
    {NULL, NULL}
  };
  luaL_newlib(L, funcs);
  return 1;
}
