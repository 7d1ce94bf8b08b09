/*
 * sqlite_point.c: the reference for `make bench-db`: point SELECTs by
 * primary key with a plain sqlite3_step loop (prepare once, bind, step,
 * read the column, reset), for SECONDS seconds. Prints queries per second.
 *
 *   sqlite_point DBFILE ROWS SECONDS
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: sqlite_point DBFILE ROWS SECONDS\n"); return 2; }
  sqlite3 *db;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    fprintf(stderr, "sqlite_point: cannot open %s\n", argv[1]);
    return 1;
  }
  long rows = atol(argv[2]);
  double seconds = atof(argv[3]);
  sqlite3_stmt *st;
  sqlite3_prepare_v2(db, "SELECT id, title, n FROM bench WHERE id = $1", -1, &st, NULL);
  unsigned seed = 42;
  long n = 0, sum = 0;
  double start = now(), end = start + seconds;
  while (1) {
    for (int i = 0; i < 1000; i++) {
      seed = seed * 1103515245u + 12345u;
      sqlite3_bind_int64(st, 1, 1 + (long)(seed >> 8) % rows);
      if (sqlite3_step(st) == SQLITE_ROW) {
        sum += sqlite3_column_int64(st, 0);
        sum += sqlite3_column_bytes(st, 1);
        (void)sqlite3_column_text(st, 1);
        sum += sqlite3_column_int64(st, 2);
      }
      sqlite3_reset(st);
    }
    n += 1000;
    if (now() >= end) break;
  }
  double rate = (double)n / (now() - start);
  printf("%.0f\n", rate);
  fprintf(stderr, "(checksum %ld)\n", sum);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return 0;
}
