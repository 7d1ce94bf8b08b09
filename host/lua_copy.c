/*
 * lua_copy.c: the `todohost.copy` Lua module: argument checks, results as
 * tables and errors as todohost.db error tables around the copy engine
 * (copy.h). The copying itself lives in copy.c.
 *
 *   copy.describe(dst, table [, columns])
 *       -> { {name=, type=, supported=, not_null=, max_chars=}, ... }
 *          the target columns as the catalog has them (type: format_type)
 *   copy.table(src, dst, opts) -> { rows=, bytes=, checksum=, seconds= }
 *       opts.table       table name, the same on both sides
 *       opts.columns     array of column names to copy
 *       opts.id_column   column naming a row in error messages (default rowid)
 *       opts.freeze      COPY ... FREEZE (the table was truncated in this
 *                        transaction)
 *       opts.on_progress function(rows, bytes), called every
 *       opts.progress_every rows (default 16384) and once at the end
 *   copy.check(src, dst, opts) -> { rows=, bytes=, seconds=, refused=, columns= }
 *       the pre-flight of copy.table (same opts, freeze ignored): every
 *       value through the same conversion, nothing written. columns[i] =
 *       { name=, type=, storage = {integer=, real=, text=, blob=, null=},
 *         refused=, retyped=, problems = {KIND = count, ...},
 *         samples = { {id=, value=, storage=, problem=, sqlstate=, reason=}, ... } }
 *       (KIND: other, null, too_long, utf8, time_number, text_bool; at most
 *       10 samples, the first refused values; id and value rendered as the
 *       copy's errors render them)
 *   copy.checksum(dst, table, columns) -> { rows=, bytes=, checksum=, seconds= }
 *       the count and checksum of what the target table holds
 *   copy.reverse(src, dst, opts) -> { rows=, bytes=, checksum=, seconds= }
 *       PostgreSQL (src) -> SQLite (dst): the table's rows streamed into
 *       dst with prepared INSERTs, in the callers' transactions; same opts
 *       as copy.table (freeze ignored); checksum: the source side's
 *   copy.sqlite_checksum(dst, src, table, columns) -> { rows=, bytes=, checksum=, seconds= }
 *       the SQLite table's count and checksum, each value encoded by the
 *       PostgreSQL (src) column's type: equal to copy.checksum(src, ...)
 *       when every value is the same
 *   copy.lock_target(path) -> lock, or raises (55006: open in another
 *       process; 26000: not a SQLite database): the existing snapshot held
 *       exclusively until lock:close() (also <close> and garbage collection)
 *   copy.install(tmp, path): fsyncs tmp, removes path's -wal/-shm/-journal,
 *       renames tmp over path (copy_snapshot_install)
 *   copy.now() -> seconds on a monotonic clock (for rates and ETAs)
 *   copy.isatty(fd) -> true when file descriptor fd is a terminal
 *
 * For copy.table and copy.check, src is a SQLite and dst a PostgreSQL
 * todohost.db connection (the other way round for copy.reverse). An error in
 * on_progress stops the copy and is re-raised as it was.
 */
#include "lua_copy.h"

#include <lauxlib.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "copy.h"
#include "lua_db.h"

/* The connection at idx, which must be of the given kind and idle. */
static db_conn *check_kind(lua_State *L, int idx, db_kind kind) {
  db_conn *c = th_checkconn(L, idx);
  if (db_conn_kind(c) != kind)
    luaL_argerror(L, idx, kind == DB_SQLITE ? "expected a SQLite connection"
                                            : "expected a PostgreSQL connection");
  if (db_conn_busy(c) || db_pinned(c))
    luaL_argerror(L, idx, "the connection is busy (an open cursor or a running copy); finish it first");
  return c;
}

/* Reads the array of column names at idx into a private table pushed on the
 * stack (so the strings stay alive whatever the caller's table becomes) and
 * an array of pointers to them, also pushed (Lua-owned scratch memory).
 * Returns the pointers; *n gets the count. Stack: +2. */
static const char **check_columns(lua_State *L, int idx, const char *what, int *n) {
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) luaL_error(L, "%s: expected an array of column names", what);
  lua_Integer len = luaL_len(L, idx);
  luaL_argcheck(L, len > 0 && len <= 1600, idx, "expected 1 to 1600 column names");
  lua_createtable(L, (int)len, 0);
  const char **names = lua_newuserdatauv(L, (size_t)len * sizeof *names, 0);
  for (lua_Integer i = 1; i <= len; i++) {
    if (lua_geti(L, idx, i) != LUA_TSTRING)
      luaL_error(L, "%s: column %d is not a string", what, (int)i);
    names[i - 1] = lua_tostring(L, -1);
    lua_rawseti(L, -3, i);
  }
  *n = (int)len;
  return names;
}

static void push_stats(lua_State *L, const copy_stats *st) {
  char hex[33];
  copy_checksum_hex(st, hex);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, st->rows);
  lua_setfield(L, -2, "rows");
  lua_pushinteger(L, st->bytes);
  lua_setfield(L, -2, "bytes");
  lua_pushstring(L, hex);
  lua_setfield(L, -2, "checksum");
  lua_pushnumber(L, st->seconds);
  lua_setfield(L, -2, "seconds");
}

/* copy.describe(dst, table [, columns]) */
static int l_copy_describe(lua_State *L) {
  db_conn *dst = check_kind(L, 1, DB_POSTGRESQL);
  const char *table = luaL_checkstring(L, 2);
  const char **cols = NULL;
  int ncols = 0;
  if (!lua_isnoneornil(L, 3)) cols = check_columns(L, 3, "copy.describe", &ncols);
  db_error err;
  PGconn *pg = db_native(dst);
  int count = copy_describe(pg, table, cols, ncols, NULL, 0, &err);
  if (count < 0) return th_raise_dberror(L, &err);
  copy_column *out = lua_newuserdatauv(L, (size_t)count * sizeof *out, 0);
  if (copy_describe(pg, table, cols, ncols, out, count, &err) < 0) return th_raise_dberror(L, &err);
  copy_columns_release(out, count);   /* (nothing below needs the labels) */
  lua_createtable(L, count, 0);
  for (int i = 0; i < count; i++) {
    lua_createtable(L, 0, 5);
    lua_pushstring(L, out[i].name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, out[i].type_name);
    lua_setfield(L, -2, "type");
    lua_pushboolean(L, out[i].type != COPY_UNSUPPORTED);
    lua_setfield(L, -2, "supported");
    lua_pushboolean(L, out[i].not_null);
    lua_setfield(L, -2, "not_null");
    if (out[i].max_chars >= 0) {
      lua_pushinteger(L, out[i].max_chars);
      lua_setfield(L, -2, "max_chars");
    }
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* The on_progress bridge: calls the Lua function under lua_pcall so that no
 * error unwinds through the engine (which holds a statement and a COPY). */
typedef struct progress_ctx {
  lua_State *L;
  int fn;        /* stack index of the function */
  int err_slot;  /* stack index receiving the error object */
  int failed;
} progress_ctx;

static int progress_bridge(void *ud, int64_t rows, int64_t bytes) {
  progress_ctx *ctx = ud;
  lua_State *L = ctx->L;
  lua_pushvalue(L, ctx->fn);
  lua_pushinteger(L, rows);
  lua_pushinteger(L, bytes);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_replace(L, ctx->err_slot);
    ctx->failed = 1;
    return 1;
  }
  return 0;
}

/* Reads opts (at idx 3) into spec and ctx as copy.table and copy.check take
 * them; the strings stay alive on the stack. Raises on a bad option. */
static void check_spec(lua_State *L, copy_spec *spec, progress_ctx *ctx) {
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_getfield(L, 3, "table");  /* stays on the stack: keeps the string alive */
  spec->table = lua_tostring(L, -1);
  luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 3, "opts.table must be a table name");
  lua_getfield(L, 3, "columns");
  spec->columns = check_columns(L, -1, "opts.columns", &spec->ncolumns);
  lua_getfield(L, 3, "id_column");
  if (!lua_isnil(L, -1)) {
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 3, "opts.id_column must be a column name");
    spec->id_column = lua_tostring(L, -1);
  }
  lua_getfield(L, 3, "freeze");
  spec->freeze = lua_toboolean(L, -1);
  lua_getfield(L, 3, "progress_every");
  spec->progress_every = luaL_optinteger(L, -1, 0);
  lua_getfield(L, 3, "on_progress");
  if (!lua_isnil(L, -1)) {
    luaL_argcheck(L, lua_isfunction(L, -1), 3, "opts.on_progress must be a function");
    ctx->fn = lua_gettop(L);
    lua_pushnil(L);
    ctx->err_slot = lua_gettop(L);
    spec->on_progress = progress_bridge;
    spec->ud = ctx;
  }
  luaL_checkstack(L, 8, "copy");  /* room for the bridge's calls */
}

/* One call of the engine from Lua: copy.table's or copy.check's arguments
 * (src, dst, opts) read and checked. */
typedef struct engine_call {
  db_conn *src, *dst;
  copy_spec spec;
  progress_ctx ctx;   /* spec.ud points here */
  db_error err;
} engine_call;

static void begin_call(lua_State *L, engine_call *c, db_kind src_kind) {
  c->src = check_kind(L, 1, src_kind);
  c->dst = check_kind(L, 2, src_kind == DB_SQLITE ? DB_POSTGRESQL : DB_SQLITE);
  c->spec = (copy_spec){0};
  c->ctx = (progress_ctx){L, 0, 0, 0};
  check_spec(L, &c->spec, &c->ctx);
}

/* by = 1 before the engine runs (on_progress may not close or use the
 * connections meanwhile), -1 after it. */
static void pin_call(engine_call *c, int by) {
  db_pin(c->src, by);
  db_pin(c->dst, by);
}

/* After the engine returned rc: re-raises on_progress's error, or raises
 * c->err when rc < 0; returns otherwise. */
static void raise_if_failed(lua_State *L, engine_call *c, int rc) {
  if (c->ctx.failed) {
    lua_pushvalue(L, c->ctx.err_slot);
    lua_error(L);
  }
  if (rc < 0) th_raise_dberror(L, &c->err);
}

/* copy.table(src, dst, opts) */
static int l_copy_table(lua_State *L) {
  engine_call c;
  begin_call(L, &c, DB_SQLITE);
  copy_stats st;
  pin_call(&c, 1);
  int rc = copy_table(db_native(c.src), db_native(c.dst), &c.spec, &st, &c.err);
  pin_call(&c, -1);
  raise_if_failed(L, &c, rc);
  push_stats(L, &st);
  return 1;
}

static void push_count(lua_State *L, const char *name, int64_t n) {
  lua_pushinteger(L, n);
  lua_setfield(L, -2, name);
}

/* The table copy.check returns for one column (see the header comment). */
static void push_check_column(lua_State *L, const copy_check_column *c) {
  static const char *const storage[6] = {NULL, "integer", "real", "text", "blob", "null"};
  lua_createtable(L, 0, 8);
  lua_pushstring(L, c->col.name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, c->col.type_name);
  lua_setfield(L, -2, "type");
  lua_createtable(L, 0, 5);
  for (int k = 1; k <= 5; k++) push_count(L, storage[k], c->storage[k]);
  lua_setfield(L, -2, "storage");
  push_count(L, "refused", c->refused);
  push_count(L, "retyped", c->retyped);
  lua_createtable(L, 0, COPY_PROBLEM_COUNT);
  for (int p = 0; p < COPY_PROBLEM_COUNT; p++)
    if (c->problems[p]) push_count(L, copy_problem_name((copy_problem)p), c->problems[p]);
  lua_setfield(L, -2, "problems");
  lua_createtable(L, c->nsamples, 0);
  for (int k = 0; k < c->nsamples; k++) {
    const copy_check_sample *s = &c->samples[k];
    lua_createtable(L, 0, 6);
    lua_pushstring(L, s->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, s->value);
    lua_setfield(L, -2, "value");
    lua_pushstring(L, storage[s->storage >= 1 && s->storage <= 5 ? s->storage : 5]);
    lua_setfield(L, -2, "storage");
    lua_pushstring(L, copy_problem_name(s->problem));
    lua_setfield(L, -2, "problem");
    lua_pushstring(L, s->sqlstate);
    lua_setfield(L, -2, "sqlstate");
    lua_pushstring(L, s->why);
    lua_setfield(L, -2, "reason");
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "samples");
}

/* copy.check(src, dst, opts) */
static int l_copy_check(lua_State *L) {
  engine_call c;
  begin_call(L, &c, DB_SQLITE);
  int ncol = c.spec.ncolumns;
  /* Lua-owned: collected whatever is raised below */
  copy_check_column *cols = lua_newuserdatauv(L, (size_t)ncol * sizeof *cols, 0);
  copy_stats st;
  pin_call(&c, 1);
  int rc = copy_check_table(db_native(c.src), db_native(c.dst), &c.spec, cols, &st, &c.err);
  pin_call(&c, -1);
  raise_if_failed(L, &c, rc);
  int64_t refused = 0;
  lua_createtable(L, 0, 5);
  push_count(L, "rows", st.rows);
  push_count(L, "bytes", st.bytes);
  lua_pushnumber(L, st.seconds);
  lua_setfield(L, -2, "seconds");
  lua_createtable(L, ncol, 0);
  for (int k = 0; k < ncol; k++) {
    push_check_column(L, &cols[k]);
    lua_rawseti(L, -2, k + 1);
    refused += cols[k].refused;
  }
  lua_setfield(L, -2, "columns");
  push_count(L, "refused", refused);
  return 1;
}

/* copy.checksum(dst, table, columns) */
static int l_copy_checksum(lua_State *L) {
  db_conn *dst = check_kind(L, 1, DB_POSTGRESQL);
  const char *table = luaL_checkstring(L, 2);
  int ncols;
  const char **cols = check_columns(L, 3, "copy.checksum", &ncols);
  copy_stats st;
  db_error err;
  if (copy_checksum(db_native(dst), table, cols, ncols, &st, &err) < 0)
    return th_raise_dberror(L, &err);
  push_stats(L, &st);
  return 1;
}

/* copy.reverse(src, dst, opts) */
static int l_copy_reverse(lua_State *L) {
  engine_call c;
  begin_call(L, &c, DB_POSTGRESQL);
  copy_stats st;
  pin_call(&c, 1);
  int rc = copy_reverse_table(db_native(c.src), db_native(c.dst), &c.spec, &st, &c.err);
  pin_call(&c, -1);
  raise_if_failed(L, &c, rc);
  push_stats(L, &st);
  return 1;
}

/* copy.sqlite_checksum(dst, src, table, columns) */
static int l_copy_sqlite_checksum(lua_State *L) {
  db_conn *dst = check_kind(L, 1, DB_SQLITE);
  db_conn *src = check_kind(L, 2, DB_POSTGRESQL);
  copy_spec spec = {0};
  spec.table = luaL_checkstring(L, 3);
  spec.columns = check_columns(L, 4, "copy.sqlite_checksum", &spec.ncolumns);
  copy_stats st;
  db_error err;
  if (copy_sqlite_checksum(db_native(dst), db_native(src), &spec, &st, &err) < 0)
    return th_raise_dberror(L, &err);
  push_stats(L, &st);
  return 1;
}

#define LOCK_META "todohost.copy.lock"

/* The lock's userdata: the connection holding the file (NULL once closed). */
typedef struct target_lock {
  sqlite3 *db;
} target_lock;

static int l_lock_close(lua_State *L) {
  target_lock *lk = luaL_checkudata(L, 1, LOCK_META);
  if (lk->db) sqlite3_close(lk->db);
  lk->db = NULL;
  return 0;
}

/* copy.lock_target(path) */
static int l_copy_lock_target(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  target_lock *lk = lua_newuserdatauv(L, sizeof *lk, 0);  /* before locking: no raise after */
  lk->db = NULL;
  luaL_setmetatable(L, LOCK_META);
  db_error err;
  if (copy_snapshot_lock(path, &lk->db, &err) < 0) return th_raise_dberror(L, &err);
  return 1;
}

/* copy.install(tmp, path) */
static int l_copy_install(lua_State *L) {
  const char *tmp = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2);
  db_error err;
  if (copy_snapshot_install(tmp, path, &err) < 0) return th_raise_dberror(L, &err);
  return 0;
}

static int l_copy_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)th_clock_seconds());
  return 1;
}

static int l_copy_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

int luaopen_todohost_copy(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"describe", l_copy_describe},
    {"table", l_copy_table},
    {"check", l_copy_check},
    {"checksum", l_copy_checksum},
    {"reverse", l_copy_reverse},
    {"sqlite_checksum", l_copy_sqlite_checksum},
    {"lock_target", l_copy_lock_target},
    {"install", l_copy_install},
    {"now", l_copy_now},
    {"isatty", l_copy_isatty},
    {NULL, NULL}
  };
  static const luaL_Reg lock_methods[] = {
    {"close", l_lock_close},
    {"__close", l_lock_close},
    {"__gc", l_lock_close},
    {NULL, NULL}
  };
  luaL_newmetatable(L, LOCK_META);
  luaL_setfuncs(L, lock_methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
