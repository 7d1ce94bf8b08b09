/*
 * clock.h: the one monotonic clock of todohost, for durations (query
 * echo, request times, idle deadlines, copy statistics, util.clock). Never
 * the time of day. Header-only; no Lua and no database, so every layer may
 * include it.
 */
#ifndef TODOHOST_CLOCK_H
#define TODOHOST_CLOCK_H

#include <time.h>

/* Milliseconds from CLOCK_MONOTONIC (an arbitrary start). */
static inline double th_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Seconds from the same clock. */
static inline double th_clock_seconds(void) { return th_clock_ms() / 1e3; }

#endif
