/*
 * test_copy.c: the bulk copy engine (host/copy.c) against a real SQLite file
 * and the real PostgreSQL server of the test run (TEST_PG_URL): conversions
 * checked against PostgreSQL's own parsing, awkward values round-tripped
 * byte for byte, bad values refused with table/column/row id/value named,
 * and the checksum shown to notice a changed row.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "copy.h"

static PGconn *pg;
static sqlite3 *lite;

/* ---- helpers ---------------------------------------------------------- */

static int pg_ok(const char *sql) {
  PGresult *r = PQexec(pg, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) fprintf(stderr, "pg: %s: %s", sql, PQerrorMessage(pg));
  PQclear(r);
  return ok;
}

/* The single value of a one-row query, in a static buffer ("<NULL>" for NULL,
 * "<ERROR>" when the query failed). */
static const char *pg_value(const char *sql) {
  static char buf[4096];
  PGresult *r = PQexec(pg, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    fprintf(stderr, "pg: %s: %s", sql, PQerrorMessage(pg));
    snprintf(buf, sizeof buf, "<ERROR>");
  } else if (PQgetisnull(r, 0, 0)) {
    snprintf(buf, sizeof buf, "<NULL>");
  } else {
    snprintf(buf, sizeof buf, "%s", PQgetvalue(r, 0, 0));
  }
  PQclear(r);
  return buf;
}

static int lite_ok(const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(lite, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) fprintf(stderr, "sqlite: %s: %s\n", sql, msg);
  sqlite3_free(msg);
  return rc == SQLITE_OK;
}

/* Copies `table` (columns cols) inside BEGIN; commits on success, rolls back
 * on failure. Returns copy_table's result; err/st filled. */
static int copy_in_tx(const char *table, const char *const *cols, int n, copy_stats *st,
                      db_error *err) {
  copy_spec spec = {.table = table, .columns = cols, .ncolumns = n, .id_column = "id"};
  pg_ok("BEGIN");
  int rc = copy_table(lite, pg, &spec, st, err);
  pg_ok(rc == 0 ? "COMMIT" : "ROLLBACK");
  return rc;
}

/* ---- conversions without a server ------------------------------------- */

static void test_utf8(void) {
  const char *why;
  size_t at;
  CHECK_INT(copy_utf8_check((const unsigned char *)"plain ascii text, longer than 8", 31, &why, &at),
            31, "ASCII counts one character per byte");
  CHECK_INT(copy_utf8_check((const unsigned char *)"caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x9b\x92", 14, &why, &at),
            8, "two-, three- and four-byte sequences count as one character each");
  CHECK_INT(copy_utf8_check((const unsigned char *)"abcdefgh\0ijk", 12, &why, &at), -1,
            "a NUL byte is refused");
  CHECK_INT(at, 8, "the NUL byte's offset is reported");
  CHECK_INT(copy_utf8_check((const unsigned char *)"\xc0\x80", 2, &why, &at), -1, "overlong NUL refused");
  CHECK_INT(copy_utf8_check((const unsigned char *)"\xe0\x80\xaf", 3, &why, &at), -1, "overlong '/' refused");
  CHECK_INT(copy_utf8_check((const unsigned char *)"\xed\xa0\x80", 3, &why, &at), -1, "UTF-16 surrogate refused");
  CHECK_INT(copy_utf8_check((const unsigned char *)"\xf4\x90\x80\x80", 4, &why, &at), -1, "past U+10FFFF refused");
  CHECK_INT(copy_utf8_check((const unsigned char *)"ok \xe2\x98", 5, &why, &at), -1, "truncated sequence refused");
  CHECK_INT(copy_utf8_check((const unsigned char *)"latin1 caf\xe9!", 12, &why, &at), -1, "Latin-1 byte refused");
  CHECK_INT(at, 10, "the bad byte's offset is reported");
}

static void test_datetime_refusals(void) {
  static const char *const bad[] = {
    "banana", "2024-02-30 10:00:00", "2023-02-29", "2024-13-01 00:00:00", "2024-01-01 24:00:00",
    "2024-01-01 12:60:00", "2024-01-01 12:00:61", "2024-01-01 12:00:00.1234567",
    "2024-01-01 12:00:00.", "2024-01-01 12:00:00+25:00", "2024-01-01 12:00:00 PST",
    "2024-01-01x12:00:00", "24-01-01 12:00:00", "2024-1-1 12:00:00", "0000-01-01 00:00:00",
    "2024-01-01 12:00:00 ", "", "1700000000",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t us;
    const char *why = NULL;
    CHECK(copy_parse_datetime(bad[i], strlen(bad[i]), &us, &why) == -1 && why,
          "datetime '%s' is refused with a reason", bad[i]);
  }
  int64_t us;
  const char *why;
  CHECK_INT(copy_parse_datetime("2024-01-01 12:00:00.1234560", 27, &us, &why), 0,
            "a seventh fraction digit that is zero loses nothing and is accepted");
  int32_t d;
  CHECK_INT(copy_parse_date("2024-01-01 00:00:00", 19, &d, &why), -1, "a date column refuses a time");
  CHECK_INT(copy_parse_date("2024-02-29", 10, &d, &why), 0, "a leap day is a date");
}

/* Each accepted form must give exactly the microseconds PostgreSQL itself
 * computes for the same text (naive = UTC). */
static void test_datetime_against_server(void) {
  static const char *const good[] = {
    "2000-01-01 00:00:00", "2026-02-21 10:15:30", "2026-02-21T10:15:30", "2026-02-21 10:15",
    "2026-02-21 10:15:30.5", "2026-02-21 10:15:30.123", "2026-02-21 10:15:30.123456",
    "2026-02-21 10:15:30.000001", "2026-02-21T10:15:30Z", "2026-02-21T10:15:30.25+02:00",
    "2026-02-21 10:15:30-05:30", "2026-02-21 10:15:30 +0100", "2026-02-21 10:15:30+01",
    "1969-12-31 23:59:59.999999", "1900-03-01 00:00:00", "0001-01-01 00:00:00",
    "9999-12-31 23:59:59.999999", "2024-02-29 12:00:00", "2026-02-21",
  };
  pg_ok("SET TimeZone = 'UTC'");
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    int64_t us = 0;
    const char *why = "";
    int rc = copy_parse_datetime(good[i], strlen(good[i]), &us, &why);
    CHECK(rc == 0, "datetime '%s' is accepted (%s)", good[i], rc ? why : "ok");
    char sql[256], mine[32];
    snprintf(sql, sizeof sql,
             "SELECT ((extract(epoch FROM '%s'::timestamptz) - 946684800) * 1000000)::int8", good[i]);
    snprintf(mine, sizeof mine, "%lld", (long long)us);
    CHECK_STR(mine, pg_value(sql), "datetime '%s' gives PostgreSQL's microseconds", good[i]);
  }
  int32_t days;
  const char *why;
  copy_parse_date("1999-12-31", 10, &days, &why);
  CHECK_INT(days, -1, "1999-12-31 is day -1 of PostgreSQL's epoch");
  copy_parse_date("2026-02-21", 10, &days, &why);
  char mine_days[16];
  snprintf(mine_days, sizeof mine_days, "%d", (int)days);
  CHECK_STR(mine_days, pg_value("SELECT '2026-02-21'::date - '2000-01-01'::date"),
            "2026-02-21 gives PostgreSQL's day number");
}

/* ---- copying through the server --------------------------------------- */

static const char *const TODO_COLS[] = {"id", "title", "description", "is_completed",
                                        "created_at", "updated_at", "deleted_at"};

static int make_schemas(void) {
  return pg_ok("DROP SCHEMA IF EXISTS copy_ctest CASCADE") && pg_ok("CREATE SCHEMA copy_ctest") &&
         pg_ok("SET search_path = copy_ctest") &&
         pg_ok("CREATE TABLE todos (id SERIAL PRIMARY KEY, title VARCHAR(200) NOT NULL,"
               " description TEXT, is_completed BOOLEAN NOT NULL DEFAULT false,"
               " created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),"
               " updated_at TIMESTAMPTZ, deleted_at TIMESTAMPTZ)") &&
         pg_ok("CREATE TABLE nums (id INTEGER PRIMARY KEY, i2 SMALLINT, i4 INTEGER, i8 BIGINT,"
               " f4 REAL, f8 DOUBLE PRECISION, d DATE, ts TIMESTAMP, b BYTEA, u UUID, j JSON,"
               " n NUMERIC)") &&
         /* title nullable here (unlike the app's schema) to show a NULL refused by the target */
         lite_ok("CREATE TABLE todos (id INTEGER NOT NULL PRIMARY KEY, title VARCHAR(200),"
                 " description TEXT, is_completed BOOLEAN NOT NULL DEFAULT 0,"
                 " created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at DATETIME,"
                 " deleted_at DATETIME)") &&
         lite_ok("CREATE TABLE nums (id INTEGER PRIMARY KEY, i2 INTEGER, i4 INTEGER, i8 INTEGER,"
                 " f4 REAL, f8, d DATE, ts DATETIME, b BLOB, u TEXT, j TEXT, n NUMERIC)");
}

/* Inserts one todo with a bound title (so NUL bytes and any bytes go in). */
static int insert_todo(int id, const char *title, size_t len, const char *desc, int done,
                       const char *created, const char *updated) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(lite, "INSERT INTO todos VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)", -1, &st,
                         NULL) != SQLITE_OK)
    return 0;
  sqlite3_bind_int(st, 1, id);
  sqlite3_bind_text(st, 2, title, (int)len, SQLITE_TRANSIENT);
  if (desc) sqlite3_bind_text(st, 3, desc, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 4, done);
  sqlite3_bind_text(st, 5, created, -1, SQLITE_TRANSIENT);
  if (updated) sqlite3_bind_text(st, 6, updated, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE;
}

static void test_awkward_values(void) {
  static const char *const titles[] = {
    "it's \"quoted\"", "back\\slash \\N \\t", "tab\there", "new\nline\r\n", "emoji \xf0\x9f\x98\x80\xf0\x9f\x9b\x92",
    "\xe8\xb2\xb7\xe3\x81\x84\xe7\x89\xa9", "", " leading and trailing ", "\\.", "comma, semi; pipe|",
  };
  int n = (int)(sizeof titles / sizeof titles[0]);
  lite_ok("BEGIN");
  for (int i = 0; i < n; i++)
    insert_todo(i + 1, titles[i], strlen(titles[i]), i % 2 ? NULL : titles[n - 1 - i], i % 2,
                i % 3 ? "2026-02-21 10:15:30.123456" : "2026-02-21T10:15:30+02:00",
                i % 2 ? NULL : "2026-02-21 10:15");
  /* a 1 MiB description and a title of exactly 200 characters, multibyte */
  size_t big = 1024 * 1024;
  char *desc = malloc(big + 1);
  for (size_t k = 0; k < big; k++) desc[k] = (char)('a' + k % 26);
  memcpy(desc + 1000, "\xe2\x9c\x93\t\n\\", 6);
  desc[big] = '\0';
  char title200[200 * 3 + 1];
  for (int k = 0; k < 200; k++) memcpy(title200 + 3 * k, "\xe2\x9c\x93", 3);
  title200[600] = '\0';
  insert_todo(100, title200, 600, desc, 1, "2026-02-21 10:15:30", NULL);
  lite_ok("COMMIT");

  copy_stats st, back;
  db_error err;
  int rc = copy_in_tx("todos", TODO_COLS, 7, &st, &err);
  if (!CHECK(rc == 0, "awkward values copy (%s)", rc ? err.message : "ok")) { free(desc); return; }
  CHECK_INT(st.rows, n + 1, "every row was copied");
  CHECK_INT(copy_checksum(pg, "todos", TODO_COLS, 7, &back, &err), 0, "target checksum reads back");
  char h1[33], h2[33];
  copy_checksum_hex(&st, h1);
  copy_checksum_hex(&back, h2);
  CHECK_STR(h2, h1, "the target's checksum equals the source's");
  CHECK_INT(back.rows, st.rows, "the target's row count equals the source's");

  /* every title byte-exact, read back with the server's own output */
  for (int i = 0; i < n; i++) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT title FROM todos WHERE id = %d", i + 1);
    CHECK_STR(pg_value(sql), titles[i], "title %d arrives byte for byte", i + 1);
  }
  CHECK_STR(pg_value("SELECT title FROM todos WHERE id = 100"), title200,
            "a 200-character multibyte title fits varchar(200)");
  PGresult *r = PQexec(pg, "SELECT description FROM todos WHERE id = 100");
  CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && (size_t)PQgetlength(r, 0, 0) == big &&
            memcmp(PQgetvalue(r, 0, 0), desc, big) == 0,
        "the 1 MiB description arrives byte for byte");
  PQclear(r);
  free(desc);
  char half[16];
  snprintf(half, sizeof half, "%d", n / 2);
  CHECK_STR(pg_value("SELECT count(*) FROM todos WHERE description IS NULL"), half,
            "NULLs stay NULL (not empty strings)");
  CHECK_STR(pg_value("SELECT string_agg(CASE WHEN is_completed THEN 't' ELSE 'f' END, '' ORDER BY id) FROM todos"),
            "ftftftftftt", "0/1 become false/true");
  CHECK_STR(pg_value("SELECT created_at FROM todos WHERE id = 1"), "2026-02-21 08:15:30+00",
            "an offset is applied (10:15:30+02:00 is 08:15:30 UTC)");
  CHECK_STR(pg_value("SELECT created_at FROM todos WHERE id = 2"), "2026-02-21 10:15:30.123456+00",
            "microseconds are kept, naive means UTC");
  CHECK_STR(pg_value("SELECT updated_at FROM todos WHERE id = 3"), "2026-02-21 10:15:00+00",
            "HH:MM without seconds is accepted");

  /* the checksum notices a single changed row */
  pg_ok("UPDATE todos SET title = title || ' ' WHERE id = 5");
  copy_checksum(pg, "todos", TODO_COLS, 7, &back, &err);
  copy_checksum_hex(&back, h2);
  CHECK(strcmp(h1, h2) != 0, "the checksum changes when one stored value changes");
  pg_ok("UPDATE todos SET created_at = created_at + interval '1 microsecond' WHERE id = 5");
  pg_ok("UPDATE todos SET title = rtrim(title) WHERE id = 5");
  copy_checksum(pg, "todos", TODO_COLS, 7, &back, &err);
  copy_checksum_hex(&back, h2);
  CHECK(strcmp(h1, h2) != 0, "the checksum notices one microsecond");
}

static void test_numbers(void) {
  const char *const cols[] = {"id", "i2", "i4", "i8", "f4", "f8", "d", "ts", "b", "u", "j"};
  lite_ok("INSERT INTO nums VALUES (1, -32768, 2147483647, -9223372036854775808, 0.5, 0.1,"
          " '2024-02-29', '2026-02-21 10:15:30.5', x'00ff10', '6F9619FF-8B86-D011-B42D-00C04FC964FF',"
          " '{\"a\": [1, 2]}', 1)");
  lite_ok("INSERT INTO nums VALUES (2, 32767, -2147483648, 9223372036854775807, -1e10, -0.0,"
          " '0001-01-01', '1999-12-31T23:59:59.999999', x'', '6f9619ff8b86d011b42d00c04fc964ff', 'null', 2)");
  lite_ok("INSERT INTO nums VALUES (3, 0, 0, 0, 3, 1e308, NULL, NULL, NULL, NULL, NULL, NULL)");
  lite_ok("INSERT INTO nums (id, f8) VALUES (4, 5e-324)");
  lite_ok("INSERT INTO nums (id, f8) VALUES (5, 9e999)");
  copy_stats st, back;
  db_error err;
  int rc = copy_in_tx("nums", cols, 11, &st, &err);
  if (!CHECK(rc == 0, "numbers copy (%s)", rc ? err.message : "ok")) return;
  copy_checksum(pg, "nums", cols, 11, &back, &err);
  char h1[33], h2[33];
  copy_checksum_hex(&st, h1);
  copy_checksum_hex(&back, h2);
  CHECK_STR(h2, h1, "numbers: the target's checksum equals the source's");
  CHECK_STR(pg_value("SELECT concat_ws(',', i2, i4, i8) FROM nums WHERE id = 1"),
            "-32768,2147483647,-9223372036854775808", "integer extremes arrive");
  CHECK_STR(pg_value("SELECT encode(float8send(f8), 'hex') FROM nums WHERE id = 1"),
            "3fb999999999999a", "0.1 arrives bit for bit");
  CHECK_STR(pg_value("SELECT encode(float8send(f8), 'hex') FROM nums WHERE id = 2"),
            "8000000000000000", "-0.0 keeps its sign");
  CHECK_STR(pg_value("SELECT encode(float8send(f8), 'hex') FROM nums WHERE id = 4"),
            "0000000000000001", "the smallest subnormal arrives");
  CHECK_STR(pg_value("SELECT f8::text FROM nums WHERE id = 5"), "Infinity", "infinity arrives");
  CHECK_STR(pg_value("SELECT concat_ws(',', f4, d, ts, encode(b, 'hex'), u, j) FROM nums WHERE id = 1"),
            "0.5,2024-02-29,2026-02-21 10:15:30.5,00ff10,6f9619ff-8b86-d011-b42d-00c04fc964ff,{\"a\": [1, 2]}",
            "real, date, timestamp, bytea, uuid and json arrive");
  CHECK_STR(pg_value("SELECT concat_ws(',', f4, d, ts, length(b), u) FROM nums WHERE id = 2"),
            "-1e+10,0001-01-01,1999-12-31 23:59:59.999999,0,6f9619ff-8b86-d011-b42d-00c04fc964ff",
            "a float4-exact real, year 1, an empty blob and a uuid without dashes arrive");
  CHECK_STR(pg_value("SELECT f4 FROM nums WHERE id = 3"), "3", "an integer in a real column arrives");

  /* values that do not fit are refused, naming table, column, row id and value */
  static const struct { const char *sql, *col, *value; } bad[] = {
    {"INSERT INTO nums (id, i4) VALUES (7, 2147483648)", "nums.i4", "2147483648"},
    {"INSERT INTO nums (id, i2) VALUES (7, 'abc')", "nums.i2", "'abc'"},
    {"INSERT INTO nums (id, i8) VALUES (7, 1.5)", "nums.i8", "1.5"},
    {"INSERT INTO nums (id, f4) VALUES (7, 0.1)", "nums.f4", "0.10000000000000001"},
    {"INSERT INTO nums (id, f8) VALUES (7, 9007199254740993)", "nums.f8", "9007199254740993"},
    {"INSERT INTO nums (id, d) VALUES (7, '2024-02-30')", "nums.d", "'2024-02-30'"},
    {"INSERT INTO nums (id, u) VALUES (7, 'not-a-uuid')", "nums.u", "'not-a-uuid'"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    pg_ok("TRUNCATE nums");
    lite_ok("DELETE FROM nums WHERE id = 7");
    lite_ok(bad[k].sql);
    db_error e = {0};
    rc = copy_in_tx("nums", cols, 11, &st, &e);
    CHECK(rc == -1 && strstr(e.message, bad[k].col) && strstr(e.message, "row id 7") &&
              strstr(e.message, bad[k].value),
          "%s is refused by name (%s)", bad[k].sql, e.message);
  }
  lite_ok("DELETE FROM nums WHERE id = 7");

  /* a numeric column converts (COPY_TYPES' numeric entry): 1 and 2 arrive exactly */
  const char *const with_n[] = {"id", "n"};
  pg_ok("TRUNCATE nums");
  rc = copy_in_tx("nums", with_n, 2, &st, &err);
  CHECK(rc == 0 && st.rows == 5, "a numeric column is copied (%s)", rc ? err.message : "");
}

/* One refused value: the copy fails, the message names table, column, row id
 * and value, and the target table is left empty. */
static void refuse(const char *setup_sql, const char *title, size_t title_len, const char *want_col,
                   const char *want_value, const char *label) {
  lite_ok("DELETE FROM todos");
  pg_ok("TRUNCATE todos");
  lite_ok("BEGIN");
  for (int i = 1; i <= 5; i++) insert_todo(i, "fine", 4, NULL, 0, "2026-01-01 00:00:00", NULL);
  if (title) insert_todo(42, title, title_len, NULL, 0, "2026-01-01 00:00:00", NULL);
  else insert_todo(42, "fine", 4, NULL, 0, "2026-01-01 00:00:00", NULL);
  for (int i = 43; i <= 45; i++) insert_todo(i, "fine", 4, NULL, 0, "2026-01-01 00:00:00", NULL);
  lite_ok("COMMIT");
  if (setup_sql) lite_ok(setup_sql);
  copy_stats st;
  db_error err = {0};
  int rc = copy_in_tx("todos", TODO_COLS, 7, &st, &err);
  CHECK_INT(rc, -1, "%s: the copy is refused", label);
  CHECK(strstr(err.message, want_col) && strstr(err.message, "row id 42") &&
            strstr(err.message, want_value),
        "%s: the error names %s, row id 42 and %s (%s)", label, want_col, want_value, err.message);
  CHECK(err.sqlstate[0] == '2', "%s: a data-exception SQLSTATE (%s)", label, err.sqlstate);
  CHECK_STR(pg_value("SELECT count(*) FROM todos"), "0", "%s: nothing arrives in the target", label);
  CHECK_INT(PQtransactionStatus(pg), PQTRANS_IDLE, "%s: the connection is usable again", label);
}

static void test_refusals(void) {
  refuse("UPDATE todos SET is_completed = 'banana' WHERE id = 42", NULL, 0, "todos.is_completed",
         "'banana'", "'banana' in a boolean");
  refuse("UPDATE todos SET is_completed = 2 WHERE id = 42", NULL, 0, "todos.is_completed", "2",
         "2 in a boolean");
  refuse(NULL, "nul\0byte", 8, "todos.title", "'nul\\x00byte'", "a NUL byte in text");
  refuse(NULL, "caf\xe9", 4, "todos.title", "'caf\\xe9'", "invalid UTF-8");
  refuse("UPDATE todos SET created_at = '2026-02-30 10:00:00' WHERE id = 42", NULL, 0,
         "todos.created_at", "'2026-02-30 10:00:00'", "an impossible date");
  refuse("UPDATE todos SET created_at = 1700000000 WHERE id = 42", NULL, 0, "todos.created_at",
         "1700000000", "a number in a timestamp column");
  refuse("UPDATE todos SET title = NULL WHERE id = 42", NULL, 0, "todos.title", "NULL",
         "NULL in a NOT NULL column");
  char long_title[202];
  memset(long_title, 'x', 201);
  long_title[201] = '\0';
  refuse(NULL, long_title, 201, "todos.title", "'xxxx", "201 characters in varchar(200)");
}

static int cancel_after(void *ud, int64_t rows, int64_t bytes) {
  (void)bytes;
  int64_t *calls = ud;
  ++*calls;
  return rows >= 20000;
}

static void test_many_rows_and_progress(void) {
  lite_ok("DELETE FROM todos");
  pg_ok("TRUNCATE todos");
  lite_ok("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)"
          " INSERT INTO todos SELECT i, 'todo ' || i, CASE WHEN i % 3 THEN 'd' || i END, i % 2,"
          " '2026-01-01 00:00:00.' || printf('%06d', i), NULL, NULL FROM n");
  int64_t calls = 0;
  copy_spec spec = {.table = "todos", .columns = TODO_COLS, .ncolumns = 7, .id_column = "id",
                    .progress_every = 10000, .on_progress = cancel_after, .ud = &calls};
  copy_stats st;
  db_error err;
  pg_ok("BEGIN");
  int rc = copy_table(lite, pg, &spec, &st, &err);
  pg_ok("ROLLBACK");
  CHECK(rc == -1 && strstr(err.message, "cancelled"), "a progress callback can stop the copy (%s)",
        err.message);
  CHECK_INT(calls, 2, "progress is reported every progress_every rows");
  CHECK_STR(pg_value("SELECT count(*) FROM todos"), "0", "a cancelled copy leaves nothing");

  /* with FREEZE, into a table truncated in the same transaction */
  calls = 0;
  spec.on_progress = NULL;
  pg_ok("BEGIN");
  pg_ok("TRUNCATE todos");
  spec.freeze = 1;
  rc = copy_table(lite, pg, &spec, &st, &err);
  copy_stats back;
  int rc2 = copy_checksum(pg, "todos", TODO_COLS, 7, &back, &err);
  pg_ok("COMMIT");
  CHECK(rc == 0 && rc2 == 0, "50000 rows copy with FREEZE (%s)", rc || rc2 ? err.message : "ok");
  CHECK_INT(st.rows, 50000, "50000 rows sent");
  CHECK_INT(back.rows, 50000, "50000 rows read back");
  CHECK(st.sum_hi == back.sum_hi && st.sum_lo == back.sum_lo, "50000 rows: checksums match");
  CHECK_STR(pg_value("SELECT count(*) FROM todos"), "50000", "the rows are there after COMMIT");

  /* a row the server refuses (duplicate key) fails the copy with its message */
  pg_ok("TRUNCATE todos");
  pg_ok("INSERT INTO todos (id, title) VALUES (30000, 'already here')");
  spec.freeze = 0;
  pg_ok("BEGIN");
  rc = copy_table(lite, pg, &spec, &st, &err);
  pg_ok("ROLLBACK");
  CHECK(rc == -1 && strcmp(err.sqlstate, "23505") == 0 && strstr(err.message, "todos_pkey"),
        "a duplicate key stops the copy with the server's error (%s: %s)", err.sqlstate, err.message);
  CHECK_STR(pg_value("SELECT count(*) FROM todos"), "1", "and the target is as before");
}

static void test_describe(void) {
  copy_column cols[8];
  db_error err;
  int n = copy_describe(pg, "todos", NULL, 0, cols, 8, &err);
  CHECK_INT(n, 7, "describe reads the 7 columns of todos from the catalog");
  if (n != 7) return;
  CHECK_STR(cols[1].type_name, "character varying(200)", "title is varchar(200)");
  CHECK_INT(cols[1].max_chars, 200, "its limit is 200 characters");
  CHECK_INT(cols[3].type, COPY_BOOL, "is_completed converts to boolean");
  CHECK_INT(cols[4].type, COPY_TIMESTAMPTZ, "created_at converts to timestamptz");
  CHECK_INT(cols[4].not_null, 1, "created_at is NOT NULL");
  copy_columns_release(cols, n);
  CHECK_INT(copy_describe(pg, "no_such_table", NULL, 0, cols, 8, &err), -1, "a missing table is an error");
  CHECK(strstr(err.message, "no_such_table") != NULL, "naming it (%s)", err.message);
  const char *const missing[] = {"id", "priority"};
  CHECK_INT(copy_describe(pg, "todos", missing, 2, cols, 8, &err), -1, "a missing column is an error");
  CHECK(strstr(err.message, "todos.priority") != NULL, "naming it (%s)", err.message);
}

int main(void) {
  test_utf8();
  test_datetime_refusals();

  const char *url = getenv("TEST_PG_URL");
  const char *tmp = getenv("TEST_TMPDIR");
  if (!CHECK(url && *url, "TEST_PG_URL is set (tests/run.sh starts a server)")) return check_summary();
  pg = PQconnectdb(url);
  if (!CHECK(PQstatus(pg) == CONNECTION_OK, "connect to TEST_PG_URL")) {
    fprintf(stderr, "%s", PQerrorMessage(pg));
    PQfinish(pg);
    return check_summary();
  }
  char path[1024];
  snprintf(path, sizeof path, "%s/copy_source.db", tmp && *tmp ? tmp : "/tmp");
  remove(path);
  CHECK_INT(sqlite3_open(path, &lite), SQLITE_OK, "open a fresh SQLite file");

  test_datetime_against_server();
  if (CHECK(make_schemas(), "create the test schemas")) {
    test_describe();
    test_awkward_values();
    test_numbers();
    test_refusals();
    test_many_rows_and_progress();
  }
  pg_ok("RESET search_path");
  pg_ok("DROP SCHEMA IF EXISTS copy_ctest CASCADE");
  PQfinish(pg);
  sqlite3_close(lite);
  remove(path);
  return check_summary();
}
