/*
 * fuzz_lua.h: a libFuzzer target whose input goes to a Lua function.
 *
 * The target's C file is one line, FUZZ_LUA_TARGET("tests/fuzz/NAME.lua").
 * That script (under TODOHOST_HOME, which fuzz.sh and the replay in
 * tests/run.sh set to the repository) runs once in a state made by
 * th_newstate(), with two arguments: a function returning the work done so
 * far, as two never decreasing counters (the Lua instructions run, to
 * FUZZ_LUA_COUNT, and the bytes allocated), deterministic where a clock is
 * not; and the todohost home. It returns the per-input function, which gets the
 * input as a string and returns nil when every property held, or a text
 * saying which one failed. A Lua error, or that text, fails the input
 * (FUZZ_REQUIRE). One state for the process, made in LLVMFuzzerInitialize;
 * the stack is emptied after each input.
 *
 * libFuzzer sees no coverage inside Lua (liblua is not instrumented), so a
 * line hook feeds it: each step from one Lua line to the next bumps a
 * counter in libFuzzer's extra counters, AFL's edge coverage for Lua code.
 */
#ifndef TODOHOST_TESTS_FUZZ_LUA_H
#define TODOHOST_TESTS_FUZZ_LUA_H

#include "fuzz.h"
#include "runtime.h"

#include <lauxlib.h>
#include <lua.h>

static lua_State *fuzz_L;
static int fuzz_check_ref = LUA_NOREF;
static lua_Alloc fuzz_inner_alloc;
static void *fuzz_inner_ud;
static size_t fuzz_allocated;
static size_t fuzz_instructions;
static uintptr_t fuzz_prev_line;

#define FUZZ_LUA_COUNT 100
#define FUZZ_LUA_EDGES 65536
#if defined(__clang__)
__attribute__((used, section("__libfuzzer_extra_counters")))
#endif
static uint8_t fuzz_lua_edges[FUZZ_LUA_EDGES];

/* Counts instructions, and marks the edge between two Lua lines. */
static void fuzz_hook(lua_State *L, lua_Debug *ar) {
  if (ar->event == LUA_HOOKCOUNT) {
    fuzz_instructions += FUZZ_LUA_COUNT;
    return;
  }
  if (!lua_getinfo(L, "S", ar)) return;
  uintptr_t here = ((uintptr_t)ar->source ^ ((uintptr_t)ar->linedefined << 12)) * 2654435761u
                   + (uintptr_t)ar->currentline;
  uint8_t *c = &fuzz_lua_edges[(here ^ fuzz_prev_line) % FUZZ_LUA_EDGES];
  if (*c < 255) (*c)++;
  fuzz_prev_line = here >> 1;
}

/* The state's allocator, counting the bytes each allocation adds. */
static void *fuzz_counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  size_t had = ptr ? osize : 0;
  if (nsize > had) fuzz_allocated += nsize - had;
  return fuzz_inner_alloc(fuzz_inner_ud, ptr, osize, nsize);
}

static int fuzz_l_work(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)fuzz_instructions);
  lua_pushinteger(L, (lua_Integer)fuzz_allocated);
  return 2;
}

/* Loads script and keeps the function it returns; exits on any failure. */
static void fuzz_lua_init(const char *script) {
  fuzz_L = th_newstate();
  if (!fuzz_L) { fputs("fuzz: out of memory\n", stderr); exit(1); }
  fuzz_inner_alloc = lua_getallocf(fuzz_L, &fuzz_inner_ud);
  lua_setallocf(fuzz_L, fuzz_counting_alloc, NULL);
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", th_home(), script);
  if (luaL_loadfile(fuzz_L, path) != LUA_OK) {
    fprintf(stderr, "fuzz: %s\n", lua_tostring(fuzz_L, -1));
    exit(1);
  }
  lua_pushcfunction(fuzz_L, fuzz_l_work);
  lua_pushstring(fuzz_L, th_home());
  if (th_pcall(fuzz_L, 2, 1) != LUA_OK || !lua_isfunction(fuzz_L, -1)) {
    fprintf(stderr, "fuzz: %s did not return a function: %s\n", path, th_errline(fuzz_L, -1));
    exit(1);
  }
  fuzz_check_ref = luaL_ref(fuzz_L, LUA_REGISTRYINDEX);
}

/* Runs the script's function on one input; fails the input when it raises
 * or returns the text of a failed property. */
static void fuzz_lua_run(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_L;
  fuzz_prev_line = 0;
  lua_sethook(L, fuzz_hook, LUA_MASKLINE | LUA_MASKCOUNT, FUZZ_LUA_COUNT);
  lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_check_ref);
  lua_pushlstring(L, (const char *)data, size);
  int rc = th_pcall(L, 1, 1);
  FUZZ_REQUIRE(rc == LUA_OK, "Lua error: %s", th_errline(L, -1));
  FUZZ_REQUIRE(lua_isnil(L, -1), "%s", th_errline(L, -1));
  lua_sethook(L, NULL, 0, 0);
  lua_settop(L, 0);
}

#define FUZZ_LUA_TARGET(script)                                             \
  int LLVMFuzzerInitialize(int *argc, char ***argv);                        \
  int LLVMFuzzerInitialize(int *argc, char ***argv) {                       \
    (void)argc; (void)argv;                                                 \
    fuzz_lua_init(script);                                                  \
    return 0;                                                               \
  }                                                                         \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {            \
    fuzz_lua_run(data, size);                                               \
    return 0;                                                               \
  }

#endif
