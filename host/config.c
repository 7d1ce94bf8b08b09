/*
 * config.c: settings from the environment, then .env, then defaults.
 * See config.h for the rules; this file has no Lua and no database.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct { const char *name, *value; } defaults[] = {
  {"DATABASE_URL", "sqlite:///./database.db"},
  {"DEBUG", "false"},
};

int th_truthy(const char *s) {
  if (!s) return 0;
  static const char *const yes[] = {"1", "true", "yes", "on", "y", "t"};
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
    if (strcasecmp(s, yes[i]) == 0) return 1;
  return 0;
}

const char *th_setting(const char *name) { return getenv(name); }

/* Appends c to the growing value; returns -1 when the value is too long. */
static int put(char *v, size_t *n, size_t cap, char c) {
  if (*n + 1 >= cap) return -1;
  v[(*n)++] = c;
  return 0;
}

int th_dotenv_parse(const char *text, size_t len,
                    void (*fn)(const char *key, const char *value, void *ud),
                    void *ud, int *badline) {
  char key[256], val[8192];
  const char *p = text, *end = text + len;
  int line = 0;
  while (p < end) {
    line++;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *stop = eol ? eol : end;
    const char *q = p;
    while (q < stop && isspace((unsigned char)*q)) q++;
    if (q == stop || *q == '#') { p = eol ? eol + 1 : end; continue; }
    if ((size_t)(stop - q) > 7 && strncmp(q, "export", 6) == 0 &&
        (q[6] == ' ' || q[6] == '\t')) {
      q += 7;
      while (q < stop && (*q == ' ' || *q == '\t')) q++;
    }
    size_t kn = 0;
    while (q < stop && (isalnum((unsigned char)*q) || *q == '_' || *q == '.' || *q == '-')) {
      if (kn + 1 >= sizeof key) goto bad;
      key[kn++] = *q++;
    }
    key[kn] = '\0';
    while (q < stop && (*q == ' ' || *q == '\t')) q++;
    if (kn == 0 || q == stop || *q != '=') goto bad;
    q++;
    while (q < stop && (*q == ' ' || *q == '\t')) q++;
    size_t vn = 0;
    if (q < end && (*q == '"' || *q == '\'')) {
      /* quoted: may span lines; double quotes take escapes */
      char quote = *q++;
      for (;;) {
        if (q >= end) goto bad;             /* unterminated quote */
        char c = *q++;
        if (c == quote) break;
        if (c == '\n') line++;
        if (quote == '"' && c == '\\' && q < end) {
          char e = *q++;
          c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
          if (e != 'n' && e != 't' && e != 'r' && e != '"' && e != '\\' && e != '$') {
            if (put(val, &vn, sizeof val, '\\') < 0) goto bad;
          }
        }
        if (put(val, &vn, sizeof val, c) < 0) goto bad;
      }
      eol = memchr(q, '\n', (size_t)(end - q));
      stop = eol ? eol : end;
      while (q < stop && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
      if (q < stop && *q != '#') goto bad;  /* junk after the closing quote */
    } else {
      /* unquoted: up to an inline " #" comment, trailing blanks trimmed */
      while (q < stop) {
        if (*q == '#' && vn > 0 && (val[vn - 1] == ' ' || val[vn - 1] == '\t')) break;
        if (put(val, &vn, sizeof val, *q++) < 0) goto bad;
      }
      while (vn > 0 && isspace((unsigned char)val[vn - 1])) vn--;
    }
    val[vn] = '\0';
    fn(key, val, ud);
    p = eol ? eol + 1 : end;
  }
  return 0;
bad:
  if (badline) *badline = line;
  return -1;
}

static void set_if_unset(const char *key, const char *value, void *ud) {
  (void)ud;
  setenv(key, value, 0);   /* the environment wins over .env */
}

int th_config_load(const char *path, char *err, size_t errsize) {
  if (!path) path = ".env";
  FILE *f = fopen(path, "rb");
  if (f) {
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
      if (len + 4096 > cap) {
        cap = cap ? cap * 2 : 8192;
        char *t = realloc(text, cap);
        if (!t) { free(text); fclose(f); snprintf(err, errsize, "out of memory reading %s", path); return -1; }
        text = t;
      }
      size_t got = fread(text + len, 1, cap - len, f);
      len += got;
      if (got == 0) break;
    }
    fclose(f);
    int bad = 0;
    int rc = th_dotenv_parse(text ? text : "", len, set_if_unset, NULL, &bad);
    free(text);
    if (rc < 0) {
      snprintf(err, errsize,
               "%s line %d is not KEY=value (or has an unclosed quote): fix or comment it out",
               path, bad);
      return -1;
    }
  } else if (errno != ENOENT) {
    snprintf(err, errsize, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
    setenv(defaults[i].name, defaults[i].value, 0);
  return 0;
}
