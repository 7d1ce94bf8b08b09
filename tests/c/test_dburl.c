/* test_dburl.c: URL forms, password masking and scrubbing. */
#include <string.h>

#include "check.h"
#include "dburl.h"

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

  char buf[128] = "password is abc123 and again abc123";
  db_scrub(buf, sizeof buf, "abc123");
  CHECK_STR(buf, "password is *** and again ***", "scrub replaces every occurrence");
  char small[32] = "pw=ab!";
  db_scrub(small, sizeof small, "ab");
  CHECK_STR(small, "pw=***!", "scrub grows short secrets within the buffer");
  return check_summary();
}
