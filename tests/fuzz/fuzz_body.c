/*
 * fuzz_body.c: request body validation of the Todo API (JSON decoding,
 * white space stripping, the create and update models), through
 * scripts/web/schema.lua. The properties are in tests/fuzz/fuzz_body.lua.
 */
#include "fuzz_lua.h"

FUZZ_LUA_TARGET("tests/fuzz/fuzz_body.lua")
