/* test_config.c: dotenv parsing, the settings order (env > .env > defaults), the settings table: sources, typed values, one truthiness rule, one-line errors. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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


/* Seconds th_config_load takes on text, in a child process (each run gets
 * the same environment to add to). */
static double load_seconds(const char *path, const char *text, size_t len) {
  FILE *f = fopen(path, "wb");
  fwrite(text, 1, len, f);
  fclose(f);
  int fd[2];
  if (pipe(fd) < 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    char err[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = th_config_load(path, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = rc == 0 ? (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 : -1;
    if (write(fd[1], &s, sizeof s) != (ssize_t)sizeof s) _exit(1);
    _exit(0);
  }
  close(fd[1]);
  double s = -1;
  if (read(fd[0], &s, sizeof s) != (ssize_t)sizeof s) s = -1;
  close(fd[0]);
  waitpid(pid, NULL, 0);
  return s;
}

/* Issue 10: loading the largest .env allowed, made of the most entries
 * (one setenv each was quadratic), takes about as long as a plain one of
 * the same size. */
static void check_linear_time(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/test_config_big.env", dir);
  size_t max = TH_DOTENV_MAX - 64;
  char *worst = malloc(max + 64), *plain = malloc(max + 64), *line = malloc(9000);
  size_t w = 0, p = 0, entries = 0;
  for (; w + 16 < max; entries++) w += (size_t)sprintf(worst + w, "K%zu=\n", entries);
  memset(line, 'a', 8000);
  line[8000] = '\0';
  for (int i = 0; p + 8020 < w; i++) p += (size_t)sprintf(plain + p, "PLAIN%d=%s\n", i, line);
  while (p < w) plain[p++] = '\n';
  double tp = load_seconds(path, plain, p), tw = load_seconds(path, worst, w);
  CHECK(tp >= 0 && tw >= 0, "both .env files load");
  CHECK(tw < 30 * tp + 0.25, ".env with %zu entries loads in linear time: %.3fs vs %.3fs for %zu bytes of plain values",
        entries, tw, tp, p);
  free(worst); free(plain); free(line);
  /* one byte more is refused */
  FILE *f = fopen(path, "wb");
  for (size_t i = 0; i <= TH_DOTENV_MAX; i++) fputc('\n', f);
  fclose(f);
  char err[256];
  CHECK_INT(th_config_load(path, err, sizeof err), -1, "a .env over %d bytes is refused", TH_DOTENV_MAX);
  CHECK(strstr(err, "larger than") != NULL, "saying so: %s", err);
  remove(path);
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

  /* one truthiness rule: pydantic's twelve words, any case, nothing else */
  static const char *const yes[] = {"1", "true", "TRUE", "yes", "On", "t", "Y"};
  static const char *const no[] = {"0", "false", "False", "NO", "off", "f", "n"};
  static const char *const neither[] = {"", "2", "tru", " true", "enabled", "yes!"};
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) CHECK_INT(th_parse_bool(yes[i]), 1, "%s is true", yes[i]);
  for (size_t i = 0; i < sizeof no / sizeof *no; i++) CHECK_INT(th_parse_bool(no[i]), 0, "%s is false", no[i]);
  for (size_t i = 0; i < sizeof neither / sizeof *neither; i++)
    CHECK_INT(th_parse_bool(neither[i]), -1, "'%s' is neither", neither[i]);
  CHECK_INT(th_parse_bool(NULL), -1, "NULL is neither");

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
  /* where each setting came from, its typed value, one-line errors */
  f = fopen(path, "w");
  fputs("PORT=9001\nHOST=0.0.0.0\nRELOAD=yes\nMAX_BODY=12\n", f);
  fclose(f);
  setenv("HOST", "::1", 1);
  unsetenv("PORT");
  unsetenv("RELOAD");
  unsetenv("MAX_BODY");
  unsetenv("HTTP_TIMEOUT");
  setenv("WORKERS", "", 1);
  CHECK_INT(th_config_load(path, err, sizeof err), 0, "load settings");
  th_value v;
  CHECK_INT(th_setting_read(th_setting_find("PORT"), &v, err, sizeof err), 0, "PORT reads");
  CHECK_INT((int)v.i, 9001, "PORT from .env");
  CHECK_STR(th_source_name(v.source), ".env", "PORT's source");
  CHECK_INT(th_setting_read(th_setting_find("HOST"), &v, err, sizeof err), 0, "HOST reads");
  CHECK_STR(v.text, "::1", "the environment wins");
  CHECK_STR(th_source_name(v.source), "environment", "HOST's source");
  CHECK_INT(th_setting_bool("RELOAD"), 1, "RELOAD=yes from .env");
  CHECK_INT(th_setting_read(th_setting_find("HTTP_TIMEOUT"), &v, err, sizeof err), 0, "HTTP_TIMEOUT reads");
  CHECK_INT((int)v.i, 30, "HTTP_TIMEOUT's default");
  CHECK_STR(th_source_name(v.source), "default", "HTTP_TIMEOUT's source");
  CHECK_INT(th_setting_read(th_setting_find("WORKERS"), &v, err, sizeof err), 0, "empty WORKERS reads");
  CHECK(v.text == NULL && v.source == TH_FROM_DEFAULT, "empty is unset: no default for WORKERS");
  CHECK_INT(th_setting_read(th_setting_find("MAX_BODY"), &v, err, sizeof err), -1, "MAX_BODY=12 is refused");
  CHECK_STR(err, "MAX_BODY must be a whole number from 1024 to 1073741824, got \"12\" (from .env)", "one line");
  CHECK_STR(th_setting_text("DATABASE_URL"), "sqlite:///./database.db", "DATABASE_URL's default");
  CHECK(th_setting_find("NOPE") == NULL, "no such setting");
  unsetenv("WORKERS");
  remove(path);

  /* DEBUG is read by every command: a bad one stops the load */
  setenv("DEBUG", "maybe", 1);
  CHECK_INT(th_config_load("/nonexistent/.env", err, sizeof err), -1, "a bad DEBUG is refused");
  CHECK(strstr(err, "DEBUG must be true or false") != NULL, "names DEBUG: %s", err);
  setenv("DEBUG", "true", 1);
  CHECK_INT(th_config_load("/nonexistent/.env", err, sizeof err), 0, "a missing .env is fine");
  remove(path);

  /* duplicates: the first wins, like the environment over .env */
  f = fopen(path, "w");
  fputs("TH_DUP=first\nTH_DUP=second\n", f);
  fclose(f);
  CHECK_INT(th_config_load(path, err, sizeof err), 0, "load duplicates");
  CHECK_STR(getenv("TH_DUP"), "first", "the first of two entries wins");
  remove(path);
  check_linear_time(dir ? dir : "/tmp");
  return check_summary();
}
