/*
 * lua_metrics.c: the `todohost.metrics` module: the server's request
 * counters, latency histograms and pool gauges, kept per Lua state (one
 * per worker thread) in C and summed over every state when scraped.
 *
 * Each state that loads the module claims a block; only that state's
 * thread writes it (one writer: relaxed atomic load and store, no locked
 * instruction on the hot path), and any thread reads it with atomic loads
 * to sum. A series (route, method, status) is added by writing its key,
 * then publishing it with a release store of `used`; a reader looks at a
 * series only once it has seen `used` with an acquire load. The list of
 * blocks only grows (under a mutex); a block whose state closed (a reload
 * replaced its worker) keeps its counts for the next state to continue, so
 * counters never go down, and its pool gauges read 0.
 *
 *   metrics.series(route, method, status) -> id   this state's series for
 *       that key (route and method cut to 63 and 15 bytes; when the block
 *       is full, the series route="other")
 *   metrics.observe(id, seconds)          one request of that series
 *   metrics.pool(open, lent, waiting)     this state's pool gauges
 *   metrics.collect() -> {bounds = {le...}, series = {{route, method,
 *       status, count, sum, buckets = {per bound, not cumulative}, inf}...},
 *       pool = {open, lent, waiting}}     summed over every block
 */
#include "lua_metrics.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The histogram's upper bounds in seconds (Prometheus' defaults, plus 1 ms). */
static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBOUNDS (sizeof bounds / sizeof *bounds)
enum { NSERIES = 128, ROUTE_MAX = 64, METHOD_MAX = 16 };

typedef struct series {
  atomic_int used;               /* published: the key below is set */
  char route[ROUTE_MAX];
  char method[METHOD_MAX];
  int status;
  atomic_ullong count;
  atomic_ullong sum_ns;          /* latency sum, nanoseconds */
  atomic_ullong buckets[NBOUNDS + 1];   /* the last: above every bound */
} series;

typedef struct block {
  struct block *next;
  int claimed;                   /* a live state writes it (guarded by blocks_mu) */
  int nused;                     /* series published (writer only) */
  atomic_int pool[3];            /* the pool gauges, named in gauge_names */
  series s[NSERIES];
} block;

static const char *const gauge_names[3] = {"open", "lent", "waiting"};

static pthread_mutex_t blocks_mu = PTHREAD_MUTEX_INITIALIZER;
static block *_Atomic blocks;    /* the list's head (readers walk it without the mutex) */

#define BLOCK_MT "todohost.metrics.block"

/* Adds one to a counter only this thread writes. */
static void bump(atomic_ullong *c, unsigned long long n) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* A free block (one whose state closed), else a new one; NULL when out of memory. */
static block *claim(void) {
  pthread_mutex_lock(&blocks_mu);
  block *b = atomic_load(&blocks);
  while (b && b->claimed) b = b->next;
  if (!b && (b = calloc(1, sizeof *b)) != NULL) {
    b->next = atomic_load(&blocks);
    atomic_store(&blocks, b);    /* (release: the zeroed block is visible first) */
  }
  if (b) b->claimed = 1;
  pthread_mutex_unlock(&blocks_mu);
  return b;
}

static block *self(lua_State *L) {
  return *(block **)lua_touserdata(L, lua_upvalueindex(1));
}

/* __gc of the state's block handle: the block is free for the next state. */
static int block_gc(lua_State *L) {
  block **h = luaL_checkudata(L, 1, BLOCK_MT);
  if (*h) {
    for (int i = 0; i < 3; i++) atomic_store(&(*h)->pool[i], 0);
    pthread_mutex_lock(&blocks_mu);
    (*h)->claimed = 0;
    pthread_mutex_unlock(&blocks_mu);
    *h = NULL;
  }
  return 0;
}

/* The series of b with that key, published now if new; NULL when full. */
static series *find(block *b, const char *route, const char *method, int status) {
  for (int i = 0; i < b->nused; i++) {
    series *s = &b->s[i];
    if (s->status == status && strcmp(s->route, route) == 0 && strcmp(s->method, method) == 0) return s;
  }
  if (b->nused == NSERIES) return NULL;
  series *s = &b->s[b->nused++];
  snprintf(s->route, sizeof s->route, "%s", route);
  snprintf(s->method, sizeof s->method, "%s", method);
  s->status = status;
  atomic_store_explicit(&s->used, 1, memory_order_release);
  return s;
}

static int l_series(lua_State *L) {
  block *b = self(L);
  const char *route = luaL_checkstring(L, 1), *method = luaL_checkstring(L, 2);
  int status = (int)luaL_checkinteger(L, 3);
  char r[ROUTE_MAX], m[METHOD_MAX];   /* cut as stored, so a long name finds itself again */
  snprintf(r, sizeof r, "%s", route);
  snprintf(m, sizeof m, "%s", method);
  series *s = find(b, r, m, status);
  if (!s) s = find(b, "other", m, status);
  if (!s) s = &b->s[NSERIES - 1];   /* full even for that: the last series counts it */
  lua_pushinteger(L, (lua_Integer)(s - b->s));
  return 1;
}

static int l_observe(lua_State *L) {
  block *b = self(L);
  lua_Integer id = luaL_checkinteger(L, 1);
  double secs = luaL_checknumber(L, 2);
  luaL_argcheck(L, id >= 0 && id < b->nused, 1, "not a series of this state");
  series *s = &b->s[id];
  if (!(secs >= 0)) secs = 0;
  size_t i = 0;
  while (i < NBOUNDS && secs > bounds[i]) i++;
  bump(&s->buckets[i], 1);
  bump(&s->sum_ns, (unsigned long long)(secs * 1e9));
  bump(&s->count, 1);
  return 0;
}

static int l_pool(lua_State *L) {
  block *b = self(L);
  for (int i = 0; i < 3; i++)
    atomic_store_explicit(&b->pool[i], (int)luaL_checkinteger(L, i + 1), memory_order_relaxed);
  return 0;
}

/* Adds series s into the row of out (the table on top) with its key,
 * making the row when it is new; rows: key string -> index in out. */
static void add_row(lua_State *L, int out, int rows, const series *s) {
  lua_pushfstring(L, "%s\n%s\n%d", s->route, s->method, s->status);
  if (lua_rawget(L, rows) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 7);
    lua_pushstring(L, s->route);
    lua_setfield(L, -2, "route");
    lua_pushstring(L, s->method);
    lua_setfield(L, -2, "method");
    lua_pushinteger(L, s->status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "count");
    lua_pushnumber(L, 0);
    lua_setfield(L, -2, "sum");
    lua_createtable(L, NBOUNDS + 1, 0);
    for (size_t i = 1; i <= NBOUNDS + 1; i++) {
      lua_pushinteger(L, 0);
      lua_rawseti(L, -2, (lua_Integer)i);
    }
    lua_setfield(L, -2, "buckets");
    lua_pushvalue(L, -1);
    lua_rawseti(L, out, (lua_Integer)lua_rawlen(L, out) + 1);
    lua_pushfstring(L, "%s\n%s\n%d", s->route, s->method, s->status);
    lua_pushvalue(L, -2);
    lua_rawset(L, rows);
  }
  /* the row is on top */
  unsigned long long count = atomic_load_explicit(&s->count, memory_order_relaxed);
  lua_getfield(L, -1, "count");
  lua_pushinteger(L, lua_tointeger(L, -1) + (lua_Integer)count);
  lua_setfield(L, -3, "count");
  lua_pop(L, 1);
  lua_getfield(L, -1, "sum");
  lua_pushnumber(L, lua_tonumber(L, -1) + (double)atomic_load_explicit(&s->sum_ns, memory_order_relaxed) / 1e9);
  lua_setfield(L, -3, "sum");
  lua_pop(L, 1);
  lua_getfield(L, -1, "buckets");
  for (size_t i = 0; i <= NBOUNDS; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    lua_Integer n = lua_tointeger(L, -1) + (lua_Integer)atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    lua_pop(L, 1);
    lua_pushinteger(L, n);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pop(L, 2);
}

static int l_collect(lua_State *L) {
  lua_createtable(L, 0, 3);
  lua_createtable(L, NBOUNDS, 0);
  for (size_t i = 0; i < NBOUNDS; i++) {
    lua_pushnumber(L, bounds[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "bounds");
  lua_newtable(L);
  int out = lua_gettop(L);
  lua_newtable(L);
  int rows = lua_gettop(L);
  lua_Integer gauges[3] = {0, 0, 0};
  /* walked without the mutex: blocks are only ever added at the head, and
   * a block's series are read only once published */
  for (block *b = atomic_load(&blocks); b; b = b->next) {
    for (int i = 0; i < 3; i++) gauges[i] += atomic_load_explicit(&b->pool[i], memory_order_relaxed);
    for (int i = 0; i < NSERIES; i++) {
      if (!atomic_load_explicit(&b->s[i].used, memory_order_acquire)) break;
      add_row(L, out, rows, &b->s[i]);
    }
  }
  lua_pop(L, 1);   /* rows */
  lua_setfield(L, -2, "series");
  lua_createtable(L, 0, 3);
  for (int i = 0; i < 3; i++) {
    lua_pushinteger(L, gauges[i]);
    lua_setfield(L, -2, gauge_names[i]);
  }
  lua_setfield(L, -2, "pool");
  return 1;
}

int luaopen_todohost_metrics(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"series", l_series},
    {"observe", l_observe},
    {"pool", l_pool},
    {"collect", l_collect},
    {NULL, NULL}
  };
  block **h = lua_newuserdatauv(L, sizeof *h, 0);
  *h = NULL;
  if (luaL_newmetatable(L, BLOCK_MT)) {
    lua_pushcfunction(L, block_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  block *b = claim();
  if (!b) return luaL_error(L, "out of memory");
  *h = b;
  luaL_newlibtable(L, funcs);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, funcs, 1);   /* each function holds the handle: the block lives as long as they do */
  return 1;
}
