/* test_db.c: the driver interface of db.h without Lua: cursors, the
 * statement cache, timestamps, on SQLite and (when TEST_PG_URL is set) on
 * PostgreSQL. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "db.h"
#include "db_int.h"

static int64_t scalar_int(db_conn *c, const char *sql, int n, const db_value *p) {
  db_cursor *cur = calloc(1, db_cursor_size());
  db_error err;
  int64_t v = -999;
  if (db_cursor_open(cur, c, sql, strlen(sql), n, p, 0, &err) == 0 &&
      db_cursor_next(cur, &err) == 1) {
    db_value out;
    db_cursor_value(cur, 0, &out);
    if (out.type == DB_INT) v = out.u.i;
  }
  db_cursor_close(cur);
  free(cur);
  return v;
}

static void exercise(const char *url, const char *label) {
  db_conn *c;
  db_error err;
  if (!CHECK(db_connect(url, NULL, &c, &err) == 0, "%s: connect (%s)", label, err.message)) return;
  CHECK_INT(db_exec_simple(c, "DROP TABLE IF EXISTS ctest", &err), 0, "%s: drop", label);
  CHECK_INT(db_exec_simple(c, "CREATE TABLE ctest (id INTEGER PRIMARY KEY, t TEXT)", &err), 0, "%s: create", label);

  /* 300 distinct statements: more than the cache holds, all still work */
  int ok = 1;
  for (int i = 0; i < 300 && ok; i++) {
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT %d + $1 AS v", i);
    db_value p = {.type = DB_INT, .u.i = 1};
    ok = scalar_int(c, sql, 1, &p) == i + 1;
  }
  CHECK(ok, "%s: statements beyond the cache size are evicted and re-prepared", label);
  CHECK(c->ncached <= DB_CACHE_MAX, "%s: the cache stays bounded (%d)", label, c->ncached);

  /* two open cursors on the same SQL (SQLite: the second gets its own stmt) */
  if (db_conn_kind(c) == DB_SQLITE) {
    db_exec_simple(c, "INSERT INTO ctest VALUES (1,'a'),(2,'b')", &err);
    db_cursor *a = calloc(1, db_cursor_size()), *b = calloc(1, db_cursor_size());
    const char *sql = "SELECT id FROM ctest ORDER BY id";
    db_cursor_open(a, c, sql, strlen(sql), 0, NULL, 1, &err);
    db_cursor_open(b, c, sql, strlen(sql), 0, NULL, 1, &err);
    int ra = db_cursor_next(a, &err), rb = db_cursor_next(b, &err);
    db_value va, vb;
    db_cursor_value(a, 0, &va);
    db_cursor_value(b, 0, &vb);
    CHECK(ra == 1 && rb == 1 && va.u.i == 1 && vb.u.i == 1, "%s: the same SQL in two open cursors", label);
    db_close(c);   /* closes both cursors */
    CHECK(!db_cursor_is_open(a) && !db_cursor_is_open(b), "%s: closing the connection closes its cursors", label);
    db_cursor_close(a);
    free(a);
    free(b);
    return;
  }
  db_close(c);
}

int main(void) {
  char out[64];
  CHECK_INT(db_iso_timestamp("2026-02-21 10:11:12", 19, 1, out, sizeof out), 25, "naive timestamp");
  CHECK_STR(out, "2026-02-21T10:11:12+00:00", "naive means UTC");
  db_iso_timestamp("2026-02-21 10:11:12.5+05", 24, 0, out, sizeof out);
  CHECK_STR(out, "2026-02-21T10:11:12.500000+05:00", "PostgreSQL's +HH offset gets minutes");
  db_iso_timestamp("2026-02-21T10:11:12.123456Z", 27, 1, out, sizeof out);
  CHECK_STR(out, "2026-02-21T10:11:12.123456+00:00", "Z becomes +00:00");
  db_iso_timestamp("2026-02-21 10:11:12.123456", 26, 0, out, sizeof out);
  CHECK_STR(out, "2026-02-21T10:11:12.123456", "timestamp without time zone stays naive");
  db_iso_timestamp("2026-02-21 10:11:12.77327+00", 28, 0, out, sizeof out);
  CHECK_STR(out, "2026-02-21T10:11:12.773270+00:00", "fractions get six digits");
  CHECK_INT(db_iso_timestamp("banana", 6, 1, out, sizeof out), -1, "not a timestamp");
  CHECK_INT(db_iso_timestamp("2026-02-21", 10, 1, out, sizeof out), -1, "a date alone is left alone");

  char f[40];
  db_format_double(0.1, f, sizeof f);
  CHECK_STR(f, "0.1", "shortest exact float text");
  db_format_double(1.0 / 3.0, f, sizeof f);
  CHECK(strtod(f, NULL) == 1.0 / 3.0, "1/3 reads back exactly (%s)", f);

  const char *dir = getenv("TEST_TMPDIR");
  char url[600];
  snprintf(url, sizeof url, "sqlite:///%s/test_db.db", dir ? dir : "/tmp");
  exercise(url, "sqlite");
  const char *pg = getenv("TEST_PG_URL");
  if (pg && *pg) exercise(pg, "postgresql");
  return check_summary();
}
