/* test_dburl.c: URL forms, password masking and scrubbing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "dburl.h"


/* ---- issue 10: time linear in the input ---------------------------------- */

/* the input size: a database URL far longer than any real one (64 KiB);
 * db_scrub gets 1 MiB, where its old memmove per hit was clearly quadratic */
static size_t BIG = 64 * 1024;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* s: prefix, then unit repeated up to BIG bytes; malloc'ed. */
static char *repeat(const char *prefix, const char *unit) {
  char *s = malloc(BIG + 1);
  size_t n = strlen(prefix), u = strlen(unit);
  memcpy(s, prefix, n);
  while (n + u <= BIG) { memcpy(s + n, unit, u); n += u; }
  s[n] = '\0';
  return s;
}

/* The fastest of 3 runs of what (0: parse, 1: mask_url, 2: mask_text, 3: scrub) on s. */
static double seconds(int what, const char *s) {
  double best = 1e9;
  char *out = malloc(4 * BIG);
  for (int r = 0; r < 3; r++) {
    double t0 = now_s();
    if (what == 0) {
      db_url u;
      db_error err;
      if (db_url_parse(s, &u, &err) == 0) db_url_free(&u);
    } else if (what == 1) {
      free(db_mask_url(s));
    } else if (what == 2) {
      db_mask_text(s, out, 4 * BIG);
    } else {
      strcpy(out, s);
      db_scrub(out, 4 * BIG, "abc");
    }
    double t = now_s() - t0;
    if (t < best) best = t;
  }
  free(out);
  return best;
}

static void check_linear(int what, const char *name, const char *prefix, const char *worst_unit,
                         const char *plain_unit) {
  char *worst = repeat(prefix, worst_unit), *plain = repeat(prefix, plain_unit);
  double tw = seconds(what, worst), tp = seconds(what, plain);
  CHECK(tw < 30 * tp + 0.05, "%s of %zu bytes of \"%s\": %.4fs, of plain text: %.4fs", name, strlen(worst),
        worst_unit, tw, tp);
  free(worst);
  free(plain);
}

static void check_linear_times(void) {
  static const char *const url_worst[] = {"@", ":", "?password=", "&password=&", "%", "[", "@/?",
                                          "?password=a&password=", "a@b:c/", "&a="};
  for (size_t i = 0; i < sizeof url_worst / sizeof *url_worst; i++) {
    check_linear(0, "db_url_parse", "postgresql://u:p", url_worst[i], "a");
    check_linear(1, "db_mask_url", "postgresql://u:p", url_worst[i], "a");
  }
  check_linear(0, "db_url_parse (SQLite)", "sqlite:///x?", "uri=true&", "a");
  static const char *const text_worst[] = {"a://", ":", "x:", "password=", "a:b ", "postgresql:", "a:// ",
                                           "password='", "p:x\n@", "://@"};
  for (size_t i = 0; i < sizeof text_worst / sizeof *text_worst; i++)
    check_linear(2, "db_mask_text", "", text_worst[i], "a");
  BIG = 1024 * 1024;
  check_linear(3, "db_scrub", "", "abc", "abd");
  check_linear(3, "db_scrub", "", "ab", "aa");
}

int main(void) {
  db_url u;
  db_error err;

  CHECK_INT(db_url_parse("sqlite:///./database.db", &u, &err), 0, "relative SQLite URL");
  CHECK_INT(u.kind, DB_SQLITE, "kind sqlite");
  CHECK_STR(u.target, "./database.db", "relative path");
  db_url_free(&u);

  db_url_parse("sqlite:////var/lib/todo.db", &u, &err);
  CHECK_STR(u.target, "/var/lib/todo.db", "four slashes: absolute path");
  db_url_free(&u);

  db_url_parse("sqlite+pysqlite:///rel.db", &u, &err);
  CHECK_STR(u.target, "rel.db", "SQLite driver suffix is ignored");
  db_url_free(&u);

  db_url_parse("sqlite://", &u, &err);
  CHECK_STR(u.target, ":memory:", "sqlite:// is in memory");
  db_url_free(&u);

  db_url_parse("sqlite:///file:data.db?mode=ro&uri=true", &u, &err);
  CHECK_INT(u.uri, 1, "uri=true opens as a URI");
  CHECK_STR(u.target, "file:data.db?mode=ro", "uri=true is SQLAlchemy's, not SQLite's");
  db_url_free(&u);

  CHECK_INT(db_url_parse("postgresql+psycopg2://todo_user:todo_pass@localhost:5432/todo_db", &u, &err),
            0, "SQLAlchemy's postgresql+psycopg2 URL");
  CHECK_INT(u.kind, DB_POSTGRESQL, "kind postgresql");
  CHECK_STR(u.target, "postgresql://todo_user:todo_pass@localhost:5432/todo_db", "driver suffix dropped for libpq");
  CHECK_STR(u.safe, "postgresql+psycopg2://todo_user:***@localhost:5432/todo_db", "password masked");
  CHECK_STR(u.password, "todo_pass", "password found by libpq's parser");
  db_url_free(&u);

  db_url_parse("postgres://u@h/db?password=s3cret&sslmode=disable", &u, &err);
  CHECK_STR(u.target, "postgresql://u@h/db?password=s3cret&sslmode=disable", "postgres:// accepted");
  CHECK(strstr(u.safe, "s3cret") == NULL, "password in the query is masked: %s", u.safe);
  db_url_free(&u);

  db_url_parse("postgresql://u:p%40ss@h/db", &u, &err);
  CHECK_STR(u.password, "p@ss", "percent-encoded password decoded by libpq");
  CHECK_STR(u.safe, "postgresql://u:***@h/db", "encoded password masked");
  db_url_free(&u);

  CHECK_INT(db_url_parse("mysql://root:hunter2@h/db", &u, &err), -1, "unknown scheme refused");
  CHECK(strstr(err.message, "'mysql'") != NULL, "names the scheme: %s", err.message);
  CHECK(strstr(err.message, "hunter2") == NULL, "never the password");
  CHECK(strstr(err.message, "sqlite:///") != NULL, "lists the forms");

  CHECK_INT(db_url_parse("todo.db", &u, &err), -1, "a bare path is refused");
  CHECK_INT(db_url_parse("", &u, &err), -1, "empty URL refused");
  CHECK_INT(db_url_parse("postgresql://u:pw@h/db?nosuch=1", &u, &err), -1, "libpq refuses an unknown parameter");
  CHECK(strstr(err.message, ":pw@") == NULL, "malformed URL message masks the password: %s", err.message);


  /* ---- issue 10: the password never leaves, whatever the URL ---------- */
  /* "@host" forgotten: libpq would read the password as a port */
  CHECK_INT(db_url_parse("postgresql://todo_user:s3kr1tpw/todo_db", &u, &err), -1,
            "a URL with user:password and no '@host' is refused");
  CHECK(strstr(err.message, "s3kr1tpw") == NULL && strstr(err.hint, "s3kr1tpw") == NULL,
        "... without the password: %s", err.message);
  CHECK(strstr(err.message, "no '@'") != NULL, "... saying what is missing: %s", err.message);
  {
    char *m = db_mask_url("postgresql://todo_user:s3kr1tpw/todo_db");
    CHECK_STR(m, "postgresql://todo_user:***/todo_db", "db_mask_url masks it");
    free(m);
    char t[200];
    CHECK_STR(db_mask_text("connect to postgresql://u:s3kr1tpw/db failed", t, sizeof t),
              "connect to postgresql://u:***/db failed", "db_mask_text masks it");
  }
  CHECK_INT(db_url_parse("postgresql://h:5432,h2:5433/db", &u, &err), 0, "hosts with numeric ports are hosts");
  CHECK_STR(u.safe, "postgresql://h:5432,h2:5433/db", "... shown as they are");
  db_url_free(&u);

  static const char *const hostile[] = {
    "postgresql://todo_user:50%offSECRET@127.0.0.1:5432/x",      /* bad percent-encoding */
    "postgresql://todo_user:SECRET@[::1/db",                     /* unterminated IPv6 */
    "postgresql://todo_user:ab@SECRET@127.0.0.1:5432/x",         /* unencoded '@' */
    "postgresql://u:abc/SECRET@127.0.0.1:5432/x",                /* unencoded '/' */
    "postgresql://u:abc#SECRET@127.0.0.1:5432/x",                /* '#' */
    "postgresql://u:abc?SECRET@127.0.0.1:5432/x",                /* '?' */
    "postgresql://u:my SECRET@127.0.0.1:5432/x",                 /* a space */
    "postgresql://u:[SECRET]@127.0.0.1:5432/x",                  /* brackets */
    "postgresql://u:a/b?c=SECRET@h:5432/db",                     /* '/', '?' and '=' */
    "postgresql://u@127.0.0.1:5432/x?password=SECRET&bad",       /* query password, bad query */
    "postgresql://u@127.0.0.1:5432/x?password=SEC@RET%zz",       /* query password with '@', bad % */
    "postgresql://u@h:1/x?%70assword=SECRET&nosuch=1",           /* encoded key */
    "postgresql://u@h:1/x?sslpassword=SECRET&port=x",
    "postgresql+psycopg2://u:SECRET@h:5432/db?nosuch=1",
    "postgres://u:SECRET%@h/db",
    "sqlite://u:SECRET@h/db",
    "sqlite:u:SECRET@h",
    "mysql://u:SECRET@h/db",
    "postgresql:/u:SE://CRET@h/db",
  };
  for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
    const char *url = hostile[i];
    memset(&err, 0, sizeof err);
    int rc = db_url_parse(url, &u, &err);
    if (rc == 0) {
      CHECK(strstr(u.safe, "SECRET") == NULL && strstr(u.safe, "CRET") == NULL,
            "masked URL hides the password: %s -> %s", url, u.safe);
      for (char **p = u.params; p && *p; p++)
        CHECK(strstr(*p, "CRET") == NULL, "libpq's reading holds no password: %s: %s", url, *p);
      db_url_free(&u);
    } else {
      CHECK(strstr(err.message, "CRET") == NULL && strstr(err.hint, "CRET") == NULL,
            "the error hides the password: %s -> %s", url, err.message);
    }
    char *m = db_mask_url(url);
    CHECK(m && strstr(m, "CRET") == NULL, "db_mask_url: %s -> %s", url, m ? m : "NULL");
    free(m);
    char text[512], masked[512];
    snprintf(text, sizeof text, "cannot open \"%s\": refused\nnext line", url);
    db_mask_text(text, masked, sizeof masked);
    CHECK(strstr(masked, "CRET") == NULL && strstr(masked, "next line") != NULL,
          "db_mask_text: %s", masked);
  }

  CHECK_INT(db_url_parse("postgresql://todo_user:50%offSECRET@127.0.0.1:5432/x", &u, &err), -1,
            "a password that is not valid percent-encoding is refused");
  CHECK(strstr(err.message, "postgresql://todo_user:***@127.0.0.1:5432/x") != NULL &&
        strstr(err.message, "password is not valid") != NULL, "says the password is the problem: %s", err.message);
  CHECK(strstr(err.hint, "%40") != NULL, "the hint says how to encode: %s", err.hint);
  CHECK_INT(db_url_parse("postgresql://todo_user:ab@SECRET@127.0.0.1:5432/x", &u, &err), -1,
            "an unencoded '@' in the password is refused before libpq reads it as a host");
  CHECK(strstr(err.message, "must be percent-encoded") != NULL, "says percent-encode: %s", err.message);
  CHECK_INT(db_url_parse("postgresql://todo_user:SECRET@[::1/db", &u, &err), -1, "unterminated IPv6");
  CHECK(strstr(err.message, "IPv6") != NULL, "libpq's reason, for the masked URL: %s", err.message);

  CHECK_INT(db_url_parse("postgresql://h:5432/db?user=me@example.org&sslmode=disable", &u, &err), 0,
            "an '@' in a query value after a plain host is libpq's to read");
  CHECK_STR(u.safe, "postgresql://h:***@example.org&sslmode=disable", "... and masked conservatively");
  CHECK_STR(u.params[1], "me@example.org", "libpq's reading");
  db_url_free(&u);
  CHECK_INT(db_url_parse("postgresql://h:5432/db?user=me@example.org", &u, &err), -1,
            "ambiguous: is it user:password@host? refused, saying percent-encode");
  CHECK_INT(db_url_parse("postgresql://u@h/d@b", &u, &err), 0, "no password anywhere: an '@' in the database name is libpq's to read");
  db_url_free(&u);
  CHECK_INT(db_url_parse("postgresql://u:p@h:5432/db?sslmode=disable&application_name=a", &u, &err), 0, "params");
  const char *want[] = {"user", "u", "host", "h", "port", "5432", "dbname", "db", "sslmode", "disable",
                        "application_name", "a"};
  int found = 0;
  for (char **p = u.params; *p; p += 2)
    for (size_t i = 0; i < sizeof want / sizeof *want; i += 2)
      if (strcmp(p[0], want[i]) == 0 && strcmp(p[1], want[i + 1]) == 0) found++;
  CHECK_INT(found, 6, "libpq's reading of the URL, as key/value pairs");
  for (char **p = u.params; *p; p += 2) CHECK(strcmp(*p, "password") != 0, "without the password");
  CHECK_STR(u.password, "p", "the password on its own");
  db_url_free(&u);

  char *m = db_mask_url("postgresql://u@h/db?password=a&b&sslmode=require");
  CHECK_STR(m, "postgresql://u@h/db?password=***&sslmode=require", "an '&' not starting a parameter stays in the value");
  free(m);
  m = db_mask_url("postgresql://u@h:1/db?password=ab@cdSECRET");
  CHECK(strstr(m, "cdSECRET") == NULL, "an '@' in a query password: %s", m);
  free(m);
  char out[256];
  db_mask_text("host=h password='a b' dbname=x and postgresql://u:my pw@h/db, PGPASSWORD=zz", out, sizeof out);
  CHECK_STR(out, "host=h password=*** dbname=x and postgresql://u:***@h/db, PGPASSWORD=***", "db_mask_text");
  db_mask_text("a long line that does not fit", out, 8);
  CHECK_STR(out, "a long ", "db_mask_text truncates");

  /* SQLite: the ASan report of issue 10 */
  CHECK_INT(db_url_parse("sqlite:///uri=true?uri=true", &u, &err), 0, "sqlite:///uri=true?uri=true");
  CHECK_STR(u.target, "file:uri=true", "uri=true only counts as a whole query parameter");
  db_url_free(&u);
  db_url_parse("sqlite:///x.db?uri=true&mode=ro", &u, &err);
  CHECK_STR(u.target, "file:x.db?mode=ro", "uri=true first");
  CHECK_STR(u.file, "x.db", "the file name");
  db_url_free(&u);
  db_url_parse("sqlite:///:memory:", &u, &err);
  CHECK(u.file == NULL, "no file in memory");
  db_url_free(&u);
  char buf[128] = "password is abc123 and again abc123";
  db_scrub(buf, sizeof buf, "abc123");
  CHECK_STR(buf, "password is *** and again ***", "scrub replaces every occurrence");
  char small[32] = "pw=ab!";
  db_scrub(small, sizeof small, "ab");
  CHECK_STR(small, "pw=***!", "scrub grows short secrets within the buffer");
  check_linear_times();
  return check_summary();
}
