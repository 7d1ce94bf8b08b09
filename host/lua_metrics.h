/*
 * lua_metrics.h: the `todohost.metrics` module: per-worker request counters,
 * latency histograms and pool gauges, summed over the workers when scraped.
 */
#ifndef TODOHOST_LUA_METRICS_H
#define TODOHOST_LUA_METRICS_H

#include <lua.h>

int luaopen_todohost_metrics(lua_State *L);

#endif
