/*
 * fuzz_params.c: routing and the path and query parameters of the Todo
 * API, through scripts/web/router.lua and schema.lua. The properties are in
 * tests/fuzz/fuzz_params.lua.
 */
#include "fuzz_lua.h"

FUZZ_LUA_TARGET("tests/fuzz/fuzz_params.lua")
