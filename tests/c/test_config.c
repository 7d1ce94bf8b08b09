/* test_config.c: dotenv parsing and the settings order (env > .env > defaults). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"

struct seen { int n; char keys[16][64]; char vals[16][256]; };

static void collect(const char *key, const char *value, void *ud) {
  struct seen *s = ud;
  if (s->n >= 16) return;
  snprintf(s->keys[s->n], sizeof s->keys[0], "%s", key);
  snprintf(s->vals[s->n], sizeof s->vals[0], "%s", value);
  s->n++;
}

static int parse(const char *text, struct seen *s, int *bad) {
  memset(s, 0, sizeof *s);
  *bad = 0;
  return th_dotenv_parse(text, strlen(text), collect, s, bad);
}

int main(void) {
  struct seen s;
  int bad;

  CHECK_INT(parse("# comment\n\nA=1\n  B = two words  \n", &s, &bad), 0, "plain entries parse");
  CHECK_INT(s.n, 2, "comments and blank lines are skipped");
  CHECK_STR(s.keys[1], "B", "key is trimmed");
  CHECK_STR(s.vals[1], "two words", "unquoted value is trimmed");

  parse("export URL=postgresql://u:p@h/db\n", &s, &bad);
  CHECK_STR(s.keys[0], "URL", "export prefix is dropped");
  CHECK_STR(s.vals[0], "postgresql://u:p@h/db", "value keeps ':' '@' '/'");

  parse("A='single # not a comment'\nB=\"dq \\\"in\\\" \\n end\"\nC=x # comment\nD=a#b\n", &s, &bad);
  CHECK_STR(s.vals[0], "single # not a comment", "single quotes are literal");
  CHECK_STR(s.vals[1], "dq \"in\" \n end", "double quotes take escapes");
  CHECK_STR(s.vals[2], "x", "inline comment after a blank");
  CHECK_STR(s.vals[3], "a#b", "# inside a word is kept");

  parse("EMPTY=\nQ=\"\"\n", &s, &bad);
  CHECK_INT(s.n, 2, "empty values are entries");
  CHECK_STR(s.vals[0], "", "empty unquoted value");
  CHECK_STR(s.vals[1], "", "empty quoted value");

  parse("M=\"line1\nline2\"\nN=after\n", &s, &bad);
  CHECK_STR(s.vals[0], "line1\nline2", "double-quoted value spans lines");
  CHECK_STR(s.vals[1], "after", "parsing continues after a multi-line value");

  parse("A=1\r\nB=2\r\n", &s, &bad);
  CHECK_STR(s.vals[0], "1", "CRLF line endings");

  CHECK_INT(parse("A=1\nnot a pair\n", &s, &bad), -1, "a line without = is refused");
  CHECK_INT(bad, 2, "the bad line is named");
  CHECK_INT(parse("A=\"open\n", &s, &bad), -1, "an unterminated quote is refused");
  CHECK_INT(parse("A=\"x\" junk\n", &s, &bad), -1, "junk after a closing quote is refused");

  CHECK_INT(th_truthy("TRUE"), 1, "TRUE is true");
  CHECK_INT(th_truthy("1"), 1, "1 is true");
  CHECK_INT(th_truthy("on"), 1, "on is true");
  CHECK_INT(th_truthy("false"), 0, "false is false");
  CHECK_INT(th_truthy(NULL), 0, "unset is false");

  /* the order: environment, then .env, then defaults */
  const char *dir = getenv("TEST_TMPDIR");
  char path[512], err[256];
  snprintf(path, sizeof path, "%s/test_config.env", dir ? dir : "/tmp");
  FILE *f = fopen(path, "w");
  fputs("TH_FROM_FILE=file\nTH_BOTH=file\n", f);
  fclose(f);
  setenv("TH_BOTH", "environment", 1);
  unsetenv("DATABASE_URL");
  setenv("DEBUG", "true", 1);
  CHECK_INT(th_config_load(path, err, sizeof err), 0, "load a .env file");
  CHECK_STR(getenv("TH_FROM_FILE"), "file", ".env sets what the environment lacks");
  CHECK_STR(getenv("TH_BOTH"), "environment", "the environment wins over .env");
  CHECK_STR(getenv("DATABASE_URL"), "sqlite:///./database.db", "default DATABASE_URL");
  CHECK_STR(getenv("DEBUG"), "true", "defaults never override");
  CHECK_INT(th_config_load("/nonexistent/.env", err, sizeof err), 0, "a missing .env is fine");
  remove(path);
  return check_summary();
}
