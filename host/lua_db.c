/*
 * lua_db.c: the `todohost.db` module, thin glue between Lua and db.h.
 *
 * Types (one metatable each, made in luaopen_todohost_db):
 *   connection  full userdata { lconn, scratch cursor storage }; the scratch
 *               cursor serves exec/query/first, so they allocate nothing;
 *               open ones are listed per state (see should_defer);
 *   cursor      full userdata for rows(); user value 1 is its connection (a
 *               child keeps its parent alive), user value 2 caches the
 *               column names as Lua strings;
 *   error       a plain table {message, sqlstate, hint, sql} whose
 *               metatable gives a one-line __tostring.
 * close(), __close and __gc share one idempotent close per type.
 */
#include "lua_db.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dburl.h"

static const char CONN_MT[] = "todohost.db.connection";
static const char CURSOR_MT[] = "todohost.db.cursor";
static const char ERROR_MT[] = "todohost.db.error";
static const char URLBOX_MT[] = "todohost.db.url";

struct conn_list;

typedef struct lconn {
  db_conn *conn;          /* NULL once closed */
  db_cursor *scratch;     /* storage right after this struct */
  struct lconn *prev, *next;   /* in list while open */
  struct conn_list *list;
} lconn;

/* Every open connection of a Lua state (all its coroutines), for the rule
 * that a request pauses only when all of them are idle. A userdata in the
 * registry, so it outlives every connection's __gc. */
typedef struct conn_list {
  lconn *head;
} conn_list;

static const char CONN_LIST = 0;   /* its address is the registry key */

static int note_statement(const db_conn *c, const char *sql, size_t len);

typedef struct lcursor {
  lconn *owner;           /* kept alive through user value 1 */
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

/* ---- connections ------------------------------------------------------ */

static lconn *toconn(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, CONN_MT);
}

db_conn *th_checkconn(lua_State *L, int idx) {
  lconn *lc = toconn(L, idx);
  if (!lc->conn) luaL_error(L, "connection is closed");
  return lc->conn;
}

static int conn_close(lua_State *L) {
  lconn *lc = toconn(L, 1);
  db_conn *c = lc->conn;
  if (c && db_pinned(c))   /* never from __gc: the C code holding it keeps it reachable */
    return luaL_error(L, "connection is in use by a running copy: close it after the copy returns");
  lc->conn = NULL;        /* idempotent: null the handle first */
  if (lc->list) {
    if (lc->prev) lc->prev->next = lc->next; else lc->list->head = lc->next;
    if (lc->next) lc->next->prev = lc->prev;
    lc->list = NULL;
  }
  db_close(c);            /* also closes the scratch and rows() cursors */
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

static int l_db_connect(lua_State *L) {
  const char *url = lua_isnoneornil(L, 1) ? NULL : url_arg(L, 1);
  db_options opt = {0};
  opt.echo = th_setting_bool("DEBUG");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "readonly");
    opt.readonly = lua_toboolean(L, -1);
    lua_getfield(L, 2, "echo");
    if (!lua_isnil(L, -1)) opt.echo = lua_toboolean(L, -1);
    lua_getfield(L, 2, "busy_timeout");
    opt.busy_timeout = (int)luaL_optinteger(L, -1, 0);
    lua_pop(L, 3);
  }
  if (!url) url = th_setting_text("DATABASE_URL");
  /* closed userdata first: an allocation error leaves nothing to leak */
  size_t off = ALIGN16(sizeof(lconn));
  lconn *lc = lua_newuserdatauv(L, off + db_cursor_size(), 0);
  lc->conn = NULL;
  lc->prev = lc->next = NULL;
  lc->list = NULL;
  lc->scratch = (db_cursor *)((char *)lc + off);
  db_cursor_init(lc->scratch);
  luaL_setmetatable(L, CONN_MT);
  db_error err;
  note_statement(NULL, NULL, 0);   /* a request's own connection: it never pauses (backends stay bounded) */
  if (db_connect(url, &opt, &lc->conn, &err) < 0) return th_raise_dberror(L, &err);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CONN_LIST);
  lc->list = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (lc->list) {
    lc->next = lc->list->head;
    if (lc->next) lc->next->prev = lc;
    lc->list->head = lc;
  }
  return 1;
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

/* ---- exec, query, first ----------------------------------------------- */

#define SMALL_PARAMS 16

/* Checks (conn, sql, params...) and opens the connection's scratch cursor.
 * On a database error the cursor is closed and the error raised. */
static db_cursor *open_scratch(lua_State *L, const char **sqlp) {
  lconn *lc = toconn(L, 1);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  if (!lc->conn) luaL_error(L, "connection is closed");
  int n = lua_gettop(L) - 2;
  db_value small[SMALL_PARAMS], *vals = small;
  if (n > SMALL_PARAMS) vals = lua_newuserdatauv(L, sizeof *vals * (size_t)n, 0);
  check_params(L, 3, n, vals);
  db_error err;
  if (db_cursor_open(lc->scratch, lc->conn, sql, len, n, vals, 0, &err) < 0)
    raise_stmt_error(L, &err, sql);
  *sqlp = sql;
  return lc->scratch;
}

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

/* ---- deferred statements (see lua_db.h) ------------------------------- */

/* A request coroutine's mark (its extra space): NULL, not pausing (the
 * default); &PAUSING, its plain reads may pause (db.batch_reads()); &WROTE,
 * it ran something else and never pauses again. */
static const char PAUSING = 0, WROTE = 0;

/* The request coroutine running on this thread (one lua_State per
 * thread), set by the server around each resume; NULL elsewhere. */
static _Thread_local lua_State *current_request;

static const void **mark_of(lua_State *co) { return (const void **)lua_getextraspace(co); }

void th_db_request(lua_State *co, int fresh) {
  current_request = co;
  if (co && fresh) *mark_of(co) = NULL;
}

db_conn *th_db_waiting(lua_State *co, int idx) {
  lconn *lc = luaL_testudata(co, idx, CONN_MT);
  return lc && lc->conn && db_deferred(lc->conn) > 0 ? lc->conn : NULL;
}

/* A request that runs anything but a plain read (a write, SET, DDL, a
 * transaction, a function the scanner knows to change the session; also
 * from a coroutine of its own, and opening a connection) never pauses
 * again: from then on it runs to its end with no other request in between,
 * so whatever it did to the session is still as it left it at its next
 * statement. sql NULL: not a read. Returns 1 when the running request may
 * still pause (0 outside a request). */
static int note_statement(const db_conn *c, const char *sql, size_t len) {
  if (!current_request) return 0;
  const void **mark = mark_of(current_request);
  /* (a request that has not opted in is done with opting in: no scan; the
   * classification comes from c's statement cache when there is a c) */
  if (*mark != &PAUSING || !sql || !(c ? db_plain_read(c, sql, len) : db_read_statement(sql, len)))
    *mark = &WROTE;
  return *mark == &PAUSING;
}

/* db.batch_reads() -> true when the running request may now pause at its
 * plain reads: it is a request that has run no statement yet, and its
 * state has a PostgreSQL connection (SQLite has no round trips to save). */
static int l_db_batch_reads(lua_State *L) {
  if (L == current_request && *mark_of(L) == NULL) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &CONN_LIST);
    conn_list *list = lua_touserdata(L, -1);
    lua_pop(L, 1);
    for (lconn *o = list ? list->head : NULL; o; o = o->next)
      if (o->conn && db_conn_kind(o->conn) == DB_POSTGRESQL) *mark_of(L) = &PAUSING;
  }
  lua_pushboolean(L, L == current_request && *mark_of(L) == &PAUSING);
  return 1;
}

/* 1 when this call (conn, sql, ...) should queue its statement and yield:
 * made by the request coroutine itself (where it can yield), which allowed
 * pausing; the statement is a plain read that may wait on its connection;
 * and every other connection of the state is idle, so that the requests
 * running while this one pauses cannot land in the middle of its
 * transaction or rows() loop elsewhere. */
static int should_defer(lua_State *L) {
  if (!current_request) return 0;
  lconn *lc = toconn(L, 1);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  if (!lc->conn) return 0;   /* (the call then raises "connection is closed") */
  if (!note_statement(lc->conn, sql, len) || L != current_request || !lua_isyieldable(L) || !lc->list ||
      !db_may_defer(lc->conn))
    return 0;
  for (lconn *o = lc->list->head; o; o = o->next)
    if (o != lc && o->conn && !db_idle(o->conn)) return 0;
  return 1;
}

/* Queues (conn, sql, params...) and yields the connection; k continues
 * with the ticket once the coroutine is resumed. The parameter values live
 * in a userdata on this call's stack, which the yield keeps (as it keeps
 * the argument strings they point into). */
static int defer_and_yield(lua_State *L, lua_KFunction k) {
  lconn *lc = toconn(L, 1);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  int n = lua_gettop(L) - 2;
  db_value *vals = lua_newuserdatauv(L, sizeof *vals * (size_t)(n > 0 ? n : 1), 0);
  check_params(L, 3, n, vals);
  db_error err;
  int ticket = db_defer(lc->conn, sql, len, n, vals, &err);
  if (ticket < 0) return raise_stmt_error(L, &err, sql);
  lua_pushvalue(L, 1);
  return lua_yieldk(L, 1, (lua_KContext)ticket, k);
}

/* In a continuation: the scratch cursor opened on the ticket's outcome;
 * raises the statement's error. */
static db_cursor *take_scratch(lua_State *L, lua_KContext ticket) {
  lconn *lc = toconn(L, 1);
  if (!lc->conn) luaL_error(L, "connection is closed");
  db_error err;
  if (db_cursor_take(lc->scratch, lc->conn, (int)ticket, &err) < 0)
    raise_stmt_error(L, &err, lua_tostring(L, 2));
  return lc->scratch;
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
  if (rc > 0) push_row(L, cur, 0);
  db_cursor_close(cur);
  if (rc < 0) return raise_stmt_error(L, &err, sql);
  if (rc == 0) lua_pushnil(L);
  return 1;
}

static int exec_k(lua_State *L, int status, lua_KContext ticket) {
  (void)status;
  return push_changes(L, take_scratch(L, ticket), lua_tostring(L, 2));
}

static int conn_exec(lua_State *L) {
  if (should_defer(L)) return defer_and_yield(L, exec_k);
  const char *sql;
  db_cursor *cur = open_scratch(L, &sql);
  return push_changes(L, cur, sql);
}

static int query_k(lua_State *L, int status, lua_KContext ticket) {
  (void)status;
  return push_all_rows(L, take_scratch(L, ticket), lua_tostring(L, 2));
}

static int conn_query(lua_State *L) {
  if (should_defer(L)) return defer_and_yield(L, query_k);
  const char *sql;
  db_cursor *cur = open_scratch(L, &sql);
  return push_all_rows(L, cur, sql);
}

static int first_k(lua_State *L, int status, lua_KContext ticket) {
  (void)status;
  return push_first_row(L, take_scratch(L, ticket), lua_tostring(L, 2));
}

static int conn_first(lua_State *L) {
  if (should_defer(L)) return defer_and_yield(L, first_k);
  const char *sql;
  db_cursor *cur = open_scratch(L, &sql);
  return push_first_row(L, cur, sql);
}

/* ---- rows(): streaming cursors ---------------------------------------- */

static lcursor *tocursor(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, CURSOR_MT);
}

static int cursor_close(lua_State *L) {
  lcursor *lk = tocursor(L, 1);
  db_cursor_close(lk->cur);   /* idempotent */
  return 0;
}

/* The iterator: (cursor, _) -> row, or nil at the end (closing the cursor). */
static int cursor_next(lua_State *L) {
  lcursor *lk = tocursor(L, 1);
  if (!db_cursor_is_open(lk->cur)) {
    if (!lk->owner->conn) return luaL_error(L, "connection is closed");
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
  if (rc < 0) return th_raise_dberror(L, &err);
  lua_pushnil(L);
  return 1;
}

/* conn:rows(sql, ...) -> iterator, cursor, nil, cursor (to-be-closed, so a
 * `break` out of the loop closes it). */
static int conn_rows(lua_State *L) {
  lconn *lc = toconn(L, 1);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  note_statement(lc->conn, sql, len);
  if (!lc->conn) return luaL_error(L, "connection is closed");
  int n = lua_gettop(L) - 2;
  db_value small[SMALL_PARAMS], *vals = small;
  if (n > SMALL_PARAMS) vals = lua_newuserdatauv(L, sizeof *vals * (size_t)n, 0);
  check_params(L, 3, n, vals);
  size_t off = ALIGN16(sizeof(lcursor));
  lcursor *lk = lua_newuserdatauv(L, off + db_cursor_size(), 2);
  lk->owner = lc;
  lk->cur = (db_cursor *)((char *)lk + off);
  db_cursor_init(lk->cur);
  luaL_setmetatable(L, CURSOR_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  db_error err;
  if (db_cursor_open(lk->cur, lc->conn, sql, len, n, vals, 1, &err) < 0)
    return raise_stmt_error(L, &err, sql);
  lua_pushcfunction(L, cursor_next);
  lua_insert(L, -2);
  lua_pushnil(L);
  lua_pushvalue(L, -2);
  return 4;
}

/* ---- transactions ----------------------------------------------------- */

/* Runs one transaction-control statement; 0 or -1 with err. */
static int tx_stmt(db_conn *c, const char *verb, int depth, db_error *err) {
  char sql[64];
  if (depth == 0) {
    if (strcmp(verb, "BEGIN") == 0)
      snprintf(sql, sizeof sql, "%s", db_conn_kind(c) == DB_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN");
    else
      snprintf(sql, sizeof sql, "%s", verb);
  } else if (strcmp(verb, "BEGIN") == 0) {
    snprintf(sql, sizeof sql, "SAVEPOINT th_sp_%d", depth);
  } else if (strcmp(verb, "COMMIT") == 0) {
    snprintf(sql, sizeof sql, "RELEASE SAVEPOINT th_sp_%d", depth);
  } else {
    snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT th_sp_%d; RELEASE SAVEPOINT th_sp_%d",
             depth, depth);
  }
  return db_exec_simple(c, sql, err);
}

/* conn:transaction(fn) -> what fn returns. fn(conn) runs inside BEGIN ..
 * COMMIT (a SAVEPOINT when nested); any error rolls back and is re-raised
 * as it was. */
static int conn_transaction(lua_State *L) {
  lconn *lc = toconn(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (!lc->conn) return luaL_error(L, "connection is closed");
  note_statement(NULL, NULL, 0);   /* a transaction: no more pauses for this request */
  lua_settop(L, 2);
  db_conn *c = lc->conn;
  int depth = db_get_depth(c);
  db_error err;
  if (tx_stmt(c, "BEGIN", depth, &err) < 0) return th_raise_dberror(L, &err);
  db_set_depth(c, depth + 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  int status = lua_pcall(L, 1, LUA_MULTRET, 0);
  if (!lc->conn) {  /* fn closed the connection: the server rolled back */
    if (status != LUA_OK) return lua_error(L);
    return luaL_error(L, "connection is closed (closed inside its own transaction, which was rolled back)");
  }
  /* COMMIT and ROLLBACK still run inside the transaction (depth + 1): a
   * connection found lost then is not replaced by a new one, on which a
   * COMMIT would "succeed" having committed nothing */
  if (status != LUA_OK) {
    db_error ignored;
    tx_stmt(c, "ROLLBACK", depth, &ignored);
    db_set_depth(c, depth);
    return lua_error(L);   /* the original error, untouched */
  }
  int rc = tx_stmt(c, "COMMIT", depth, &err);
  db_set_depth(c, depth);
  if (rc < 0) {
    db_error ignored;
    if (depth == 0 && db_conn_kind(c) == DB_SQLITE) tx_stmt(c, "ROLLBACK", depth, &ignored);
    return th_raise_dberror(L, &err);
  }
  return lua_gettop(L) - 2;
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

static int conn_tostring(lua_State *L) {
  lconn *lc = toconn(L, 1);
  if (lc->conn) lua_pushfstring(L, "todohost.db connection (%s)", db_conn_safe_url(lc->conn));
  else lua_pushliteral(L, "todohost.db connection (closed)");
  return 1;
}

/* __index: methods, plus the read-only fields `kind` and `url` (masked). */
static int conn_index(lua_State *L) {
  lconn *lc = toconn(L, 1);
  const char *key = lua_tostring(L, 2);
  if (key && strcmp(key, "kind") == 0) {
    if (!lc->conn) return luaL_error(L, "connection is closed");
    lua_pushstring(L, db_kind_name(db_conn_kind(lc->conn)));
    return 1;
  }
  if (key && strcmp(key, "url") == 0) {   /* masked */
    if (!lc->conn) return luaL_error(L, "connection is closed");
    lua_pushstring(L, db_conn_safe_url(lc->conn));
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
  {"__gc", cursor_close},
  {"__close", cursor_close},
  {NULL, NULL}
};

/* db.is_error(v) -> true when v is a todohost.db error table. */
static int l_db_is_error(lua_State *L) {
  lua_pushboolean(L, lua_getmetatable(L, 1) &&
                         (luaL_getmetatable(L, ERROR_MT), lua_rawequal(L, -1, -2)));
  return 1;
}

int luaopen_todohost_db(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &CONN_LIST) == LUA_TNIL) {   /* once per state */
    conn_list *list = lua_newuserdatauv(L, sizeof *list, 0);
    list->head = NULL;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &CONN_LIST);
  }
  lua_pop(L, 1);
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

  luaL_newmetatable(L, ERROR_MT);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  static const luaL_Reg funcs[] = {
    {"connect", l_db_connect},
    {"is_error", l_db_is_error},
    {"batch_reads", l_db_batch_reads},
    {"parse_url", l_db_parse_url},
    {"mask_url", l_db_mask_url},
    {"mask_text", l_db_mask_text},
    {NULL, NULL}
  };
  luaL_newlib(L, funcs);
  return 1;
}
