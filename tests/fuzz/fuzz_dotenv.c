/*
 * fuzz_dotenv.c: .env parsing (th_dotenv_parse, host/config.c).
 *
 * Input: a .env text. Properties:
 * 1. parsing the input never crashes or reads out of bounds; every entry
 *    has a key of [A-Za-z0-9_.-] (1 to 255 bytes) and a value under 8192
 *    bytes; a refusal names a line of the text;
 * 2. a value survives quoting: the input, as a value, written as
 *    K='value' (when it has no ') and as K="value" with \\, \" and \n
 *    escaped, parses back to exactly that value (values are where the
 *    password of DATABASE_URL lives: it must arrive unchanged, or the
 *    file must be refused);
 * 3. a line that is not KEY=value makes the parse fail with its number
 *    (the error then says only "line N", never the line);
 * 4. the input, as the value of every setting (th_setting_parse), is
 *    accepted within the setting's range (a number) or as 0/1 (true/false),
 *    or refused with one line that names the setting and holds no control
 *    character (the value is shown escaped).
 */
#include "fuzz.h"
#include "config.h"

struct seen {
  int n;
  char value[8192];
};

static void check_entry(const char *key, const char *value, void *ud) {
  struct seen *s = ud;
  size_t kn = strlen(key);
  FUZZ_REQUIRE(kn >= 1 && kn <= 255, "key length %zu", kn);
  for (const char *k = key; *k; k++)
    FUZZ_REQUIRE((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
                     *k == '_' || *k == '.' || *k == '-',
                 "key character %d", *k);
  FUZZ_REQUIRE(strlen(value) < 8192, "value length");
  if (s) {
    s->n++;
    snprintf(s->value, sizeof s->value, "%s", value);
  }
}

static int lines_of(const char *t, size_t n) {
  int lines = 1;
  for (size_t i = 0; i < n; i++) lines += t[i] == '\n';
  return lines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  const char *text = (const char *)data;
  int bad = 0;
  if (th_dotenv_parse(text, size, check_entry, NULL, &bad) < 0)
    FUZZ_REQUIRE(bad >= 1 && bad <= lines_of(text, size), "bad line %d", bad);

  /* the input as a value: NUL ends a C string, so up to the first NUL */
  char *v = fuzz_cstring(data, size);
  size_t vn = strlen(v);
  if (vn < 8000) {
    char *line = malloc(2 * vn + 16);
    if (!line) abort();
    struct seen s;
    if (!strchr(v, '\'')) {
      int n = snprintf(line, 2 * vn + 16, "K='%s'\n", v);
      memset(&s, 0, sizeof s);
      FUZZ_REQUIRE(th_dotenv_parse(line, (size_t)n, check_entry, &s, &bad) == 0, "single-quoted value refused");
      FUZZ_REQUIRE(s.n == 1 && strcmp(s.value, v) == 0, "single-quoted value changed");
    }
    size_t n = 0;
    line[n++] = 'K'; line[n++] = '='; line[n++] = '"';
    for (size_t i = 0; i < vn; i++) {
      if (v[i] == '\\' || v[i] == '"') line[n++] = '\\';
      if (v[i] == '\n') { line[n++] = '\\'; line[n++] = 'n'; continue; }
      line[n++] = v[i];
    }
    line[n++] = '"';
    memset(&s, 0, sizeof s);
    FUZZ_REQUIRE(th_dotenv_parse(line, n, check_entry, &s, &bad) == 0, "double-quoted value refused");
    FUZZ_REQUIRE(s.n == 1 && strcmp(s.value, v) == 0, "double-quoted value changed");

    /* a line without '=' after a good one */
    if (!strchr(v, '\n') && !strchr(v, '=') && !strchr(v, '#') && vn > 0) {
      n = (size_t)snprintf(line, 2 * vn + 16, "A=1\n%s\n", v);
      int rc = th_dotenv_parse(line, n, check_entry, NULL, &bad);
      int blank = 1;
      for (size_t i = 0; i < vn; i++) if (v[i] != ' ' && v[i] != '\t' && v[i] != '\r' && v[i] != '\v' && v[i] != '\f') blank = 0;
      if (!blank) FUZZ_REQUIRE(rc < 0 && bad == 2, "a line without '=' is refused with its number");
    }
    free(line);
  }
  for (const th_setting_def *d = th_settings; d->name; d++) {
    th_value out;
    char err[512];
    if (th_setting_parse(d, v, TH_FROM_DOTENV, &out, err, sizeof err) == 0) {
      if (d->kind == TH_INT) FUZZ_REQUIRE(out.i >= d->min && out.i <= d->max, "%s out of range", d->name);
      if (d->kind == TH_BOOL) FUZZ_REQUIRE(out.b == 0 || out.b == 1, "%s not 0/1", d->name);
      FUZZ_REQUIRE(out.text == v, "the text is the input");
    } else {
      FUZZ_REQUIRE(d->kind != TH_STRING, "a string setting refused");
      FUZZ_REQUIRE(strncmp(err, d->name, strlen(d->name)) == 0, "the error names the setting");
      for (const char *e = err; *e; e++)
        FUZZ_REQUIRE((unsigned char)*e >= 0x20 && *e != 0x7f, "control character %d in the error", *e);
      FUZZ_REQUIRE(strlen(err) < sizeof err - 1, "the error fits");
    }
  }
  free(v);
  return 0;
}
