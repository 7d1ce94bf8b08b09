/*
 * config.c: every setting todohost knows (the table below), read from the
 * environment, then .env, then the defaults. See config.h for the rules;
 * this file has no Lua and no database.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "textsafe.h"

/* Every setting todohost knows: the one place each default is written. */
const th_setting_def th_settings[] = {
  {"DATABASE_URL", TH_STRING, "sqlite:///./database.db", 0, 0,
   "the database: sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DB",
   TH_EMPTY_IS_SET | TH_EXPORTED},
  {"DEBUG", TH_BOOL, "false", 0, 0,
   "echo each SQL statement with its parameters and duration; tracebacks for errors",
   TH_EXPORTED},
  {"HOST", TH_STRING, "127.0.0.1", 0, 0, "the address make run serves on", 0},
  {"PORT", TH_INT, "8080", 0, 65535, "the port make run serves on (0: any free port)", 0},
  {"WORKERS", TH_INT, NULL, 1, 256, "server worker threads (unset: the number of cores)", 0},
  {"RELOAD", TH_BOOL, "false", 0, 0,
   "load fresh workers after a change in scripts/, seeds/ or migrations/", 0},
  {"ACCESS_LOG", TH_STRING, "true", 0, 0,
   "the access log on stderr: true (one line per request), false, or json (one JSON object a line)", 0},
  {"HTTP_TIMEOUT", TH_INT, "30", 1, 3600, "seconds an idle connection is kept", 0},
  {"MAX_BODY", TH_INT, "1048576", 1024, 1073741824, "the largest request body (bytes)", 0},
  {"MAX_CONNECTIONS", TH_INT, "10000", 1, 1000000, "connections the server holds at once", 0},
  {"MAX_CONNECTIONS_PER_IP", TH_INT, NULL, 0, 1000000,
   "connections from one address (unset: a quarter of MAX_CONNECTIONS; 0: no limit)", 0},
  {"DB_POOL_SIZE", TH_INT, "16", 1, 10000,
   "PostgreSQL connections per server worker at most (keep WORKERS x DB_POOL_SIZE x instances "
   "within the server's max_connections)", 0},
  {"DB_POOL_TIMEOUT", TH_INT, "5000", 1, 600000,
   "ms a request waits for a free PostgreSQL connection before its 503", 0},
  {"DB_POOL_RESET", TH_STRING, "rollback", 0, 0,
   "what a PostgreSQL connection gets when a request gives it back: rollback (an open "
   "transaction only) or full (also settings, locks, temporary tables, lastval)", 0},
  {"MIGRATE_ON_START", TH_BOOL, "false", 0, 0,
   "serve.lua upgrades the database to the head at start, under the migrator's lock "
   "(instances started at once migrate once)", 0},
  {"API_TOKEN", TH_STRING, NULL, 0, 0,
   "the token the API requires (Authorization: Bearer TOKEN); required when HOST is not a "
   "loopback address; never printed", 0},
  {"API_TOKEN_EXEMPT", TH_STRING, "/health", 0, 0,
   "paths answered without the token, comma-separated (e.g. /health,/metrics)", 0},
  {"ALLOW_NO_TOKEN", TH_BOOL, "false", 0, 0,
   "serve on a non-loopback HOST without API_TOKEN, the API open to anyone who reaches it", 0},
  {"MIGRATE_LOCK_TIMEOUT", TH_INT, "5000", 0, 3600000,
   "ms a migration waits for a table lock on PostgreSQL before failing (0: no limit)", 0},
  {"MIGRATIONS_DIR", TH_STRING, NULL, 0, 0,
   "the migrations directory (unset: the project's migrations/)", 0},
  {"SQLITE_FILE", TH_STRING, "database.db", 0, 0, "the SQLite data make copy reads (doctor)", 0},
  {"DB_PORT", TH_INT, "5432", 1, 65535, "the port of make db-start's native PostgreSQL", 0},
  {"DB_DATA_DIR", TH_STRING, "localdev/data/personal_todo_pgdata", 0, 0,
   "the data folder of make db-start's native PostgreSQL", 0},
  {"SWAGGER_UI_DIST", TH_STRING, NULL, 0, 0, "where /docs finds Swagger UI's files", 0},
  {"NO_COLOR", TH_STRING, NULL, 0, 0, "set (to anything): doctor prints no colours", 0},
  {"TODOHOST_HOME", TH_STRING, NULL, 0, 0,
   "the installation, holding scripts/ (unset: PREFIX/share/todohost, or the checkout)", 0},
  {NULL, TH_STRING, NULL, 0, 0, NULL, 0},
};

#define NSETTINGS (sizeof th_settings / sizeof *th_settings - 1)

/* Where each setting came from, set by th_config_load; before it, a value
 * in the environment counts as the environment's. */
static th_source sources[NSETTINGS];
static int loaded;

const th_setting_def *th_setting_find(const char *name) {
  for (const th_setting_def *d = th_settings; name && d->name; d++)
    if (strcmp(d->name, name) == 0) return d;
  return NULL;
}

const char *th_source_name(th_source src) {
  return src == TH_FROM_ENV ? "environment" : src == TH_FROM_DOTENV ? ".env" : "default";
}

int th_parse_bool(const char *s) {
  static const char *const words[2][6] = {
    {"0", "false", "no", "off", "f", "n"},
    {"1", "true", "yes", "on", "t", "y"},
  };
  for (int v = 0; s && v < 2; v++)
    for (int i = 0; i < 6; i++)
      if (strcasecmp(s, words[v][i]) == 0) return v;
  return -1;
}

/* A whole decimal number (sign allowed) in [min, max] into *out: 0, or -1. */
static int parse_int(const char *s, long long min, long long max, long long *out) {
  const char *p = s + (*s == '-' || *s == '+');
  if (!isdigit((unsigned char)*p)) return -1;
  for (const char *q = p; *q; q++)
    if (!isdigit((unsigned char)*q)) return -1;
  errno = 0;
  long long v = strtoll(s, NULL, 10);
  if (errno || v < min || v > max) return -1;
  *out = v;
  return 0;
}

int th_setting_parse(const th_setting_def *d, const char *text, th_source src, th_value *out,
                     char *err, size_t errsize) {
  memset(out, 0, sizeof *out);
  out->source = src;
  out->text = text;
  if (!text || d->kind == TH_STRING) return 0;
  int ok;
  if (d->kind == TH_BOOL) ok = (out->b = th_parse_bool(text)) >= 0;
  else ok = parse_int(text, d->min, d->max, &out->i) == 0;
  if (ok) return 0;
  char shown[160];
  text_safe(text, strlen(text), shown, sizeof shown);
  const char *from = src == TH_FROM_ENV ? "the environment" : src == TH_FROM_DOTENV ? ".env" : "the default";
  if (d->kind == TH_BOOL)
    snprintf(err, errsize, "%s must be true or false (1, true, yes, on, t, y / 0, false, no, off, f, n; "
             "any case), got \"%s\" (from %s)", d->name, shown, from);
  else
    snprintf(err, errsize, "%s must be a whole number from %lld to %lld, got \"%s\" (from %s)",
             d->name, d->min, d->max, shown, from);
  return -1;
}

int th_setting_read(const th_setting_def *d, th_value *out, char *err, size_t errsize) {
  size_t idx = (size_t)(d - th_settings);
  const char *text = getenv(d->name);
  th_source src = loaded ? sources[idx] : TH_FROM_ENV;
  /* an empty value stands for unset, unless the setting says otherwise */
  if (!text || (!*text && !(d->flags & TH_EMPTY_IS_SET)) || src == TH_FROM_DEFAULT) {
    text = d->def;
    src = TH_FROM_DEFAULT;
  }
  return th_setting_parse(d, text, src, out, err, errsize);
}

const char *th_setting_text(const char *name) {
  const th_setting_def *d = th_setting_find(name);
  th_value v;
  char err[8];
  if (!d) return NULL;
  th_setting_read(d, &v, err, sizeof err);
  return v.text;
}

int th_setting_bool(const char *name) {
  const th_setting_def *d = th_setting_find(name);
  th_value v;
  char err[8];
  return d && d->kind == TH_BOOL && th_setting_read(d, &v, err, sizeof err) == 0 && v.text && v.b;
}

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

/* ---- loading .env into the environment -------------------------------- */

extern char **environ;

/* "KEY=value" strings parsed from .env, in order. */
typedef struct pending {
  char **kv;
  size_t n, cap;
  int oom;
} pending;

static void collect(const char *key, const char *value, void *ud) {
  pending *p = ud;
  if (p->oom) return;
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    char **kv = realloc(p->kv, cap * sizeof *kv);
    if (!kv) { p->oom = 1; return; }
    p->kv = kv;
    p->cap = cap;
  }
  size_t kn = strlen(key), vn = strlen(value);
  char *s = malloc(kn + vn + 2);
  if (!s) { p->oom = 1; return; }
  memcpy(s, key, kn);
  s[kn] = '=';
  memcpy(s + kn + 1, value, vn + 1);
  p->kv[p->n++] = s;
}

static size_t name_len(const char *kv) { return strcspn(kv, "="); }

static size_t name_hash(const char *kv, size_t n) {
  size_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)kv[i]) * 16777619u;
  return h;
}

/* Inserts kv's name into the set (open addressing, cap a power of two);
 * returns 0 when it was there already. */
static int set_add(const char **set, size_t cap, const char *kv) {
  size_t n = name_len(kv);
  for (size_t i = name_hash(kv, n) & (cap - 1);; i = (i + 1) & (cap - 1)) {
    if (!set[i]) { set[i] = kv; return 1; }
    if (name_len(set[i]) == n && memcmp(set[i], kv, n) == 0) return 0;
  }
}

/* The environment array this file made (kept reachable: its strings are
 * the process's environment until exit). */
static char **own_environ;

/* Adds the entries of p whose name the environment lacks (the first of
 * each name wins, as with setenv(..., 0)) in one new environment array:
 * time linear in the entries, where one setenv each would be quadratic.
 * Takes the strings of p. Returns 0, or -1 when out of memory. */
static int add_to_environment(pending *p) {
  size_t e = 0;
  while (environ && environ[e]) e++;
  size_t cap = 16;
  while (cap < 2 * (e + p->n)) cap *= 2;
  const char **set = calloc(cap, sizeof *set);
  char **env = malloc((e + p->n + 1) * sizeof *env);
  if (!set || !env) { free(set); free(env); return -1; }
  size_t m = 0;
  for (size_t i = 0; i < e; i++) {
    set_add(set, cap, environ[i]);
    env[m++] = environ[i];
  }
  for (size_t i = 0; i < p->n; i++) {
    if (set_add(set, cap, p->kv[i])) env[m++] = p->kv[i];
    else free(p->kv[i]);
    p->kv[i] = NULL;
  }
  env[m] = NULL;
  free(set);
  char **old = own_environ;
  environ = own_environ = env;
  free(old);
  return 0;
}

static void pending_free(pending *p) {
  for (size_t i = 0; i < p->n; i++) free(p->kv[i]);
  free(p->kv);
}

int th_config_load(const char *path, char *err, size_t errsize) {
  if (!path) path = ".env";
  for (size_t i = 0; i < NSETTINGS; i++)
    sources[i] = getenv(th_settings[i].name) ? TH_FROM_ENV : TH_FROM_DEFAULT;
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
      if (got == 0 || len > TH_DOTENV_MAX) break;
    }
    fclose(f);
    if (len > TH_DOTENV_MAX) {
      free(text);
      snprintf(err, errsize, "%s is larger than %d KiB: is it a .env file? keep KEY=value settings in it",
               path, TH_DOTENV_MAX / 1024);
      return -1;
    }
    int bad = 0;
    pending p = {0};
    int rc = th_dotenv_parse(text ? text : "", len, collect, &p, &bad);
    free(text);
    if (rc < 0) {
      pending_free(&p);
      snprintf(err, errsize,
               "%s line %d is not KEY=value (or has an unclosed quote): fix or comment it out",
               path, bad);
      return -1;
    }
    if (p.oom || add_to_environment(&p) < 0) {
      pending_free(&p);
      snprintf(err, errsize, "out of memory reading %s", path);
      return -1;
    }
    pending_free(&p);
  } else if (errno != ENOENT) {
    snprintf(err, errsize, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  /* TH_EXPORTED settings (DATABASE_URL, DEBUG) go into the environment
   * too, for child processes (psql) and scripts that read os.getenv */
  for (size_t i = 0; i < NSETTINGS; i++) {
    if (sources[i] != TH_FROM_ENV)
      sources[i] = getenv(th_settings[i].name) ? TH_FROM_DOTENV : TH_FROM_DEFAULT;
    const char *name = th_settings[i].name, *now = getenv(name);
    /* only when unset: an empty DATABASE_URL stays empty (an error, never
     * the default database), an empty DEBUG reads as its default; and a
     * value of ours in the environment is never overwritten (it would leak) */
    if (!now && (th_settings[i].flags & TH_EXPORTED))
      setenv(name, th_settings[i].def, 0);
  }
  loaded = 1;
  th_value debug;
  return th_setting_read(th_setting_find("DEBUG"), &debug, err, errsize);
}
