/*
 * config.h: every setting todohost knows, read the way pydantic-settings
 * reads them for the app we replace: the environment first, then a .env file
 * in the working directory, then the built-in default. The table in
 * config.c is the one place a setting's name, kind, range, default and
 * meaning are written; Lua reads it as `todohost.settings`.
 *
 * th_config_load() runs once at start-up, before any thread exists: it copies
 * .env entries that the environment does not already set into the
 * environment, then the defaults of DATABASE_URL and DEBUG (when unset or
 * empty), so every later
 * reader (Lua's os.getenv, child processes such as psql) sees one view, and
 * remembers where each setting came from.
 *
 * One reading of values: true/false settings take pydantic's words, any case
 * (1 true yes on t y / 0 false no off f n); numbers are whole decimal numbers
 * within the setting's range; anything else is an error naming the setting.
 * An empty value counts as unset (the default applies).
 */
#ifndef TODOHOST_CONFIG_H
#define TODOHOST_CONFIG_H

#include <stddef.h>

/* The largest .env read (bytes): settings, not data. */
#define TH_DOTENV_MAX (1024 * 1024)

/* Loads path (".env" when NULL) if it exists, then applies defaults.
 * Returns 0, or -1 with a one-line reason in err (a malformed line, a file
 * over TH_DOTENV_MAX, a DEBUG that is not a true/false word: every command
 * reads it, as the app's Settings() did at start). Time linear in the file. */
int th_config_load(const char *path, char *err, size_t errsize);

/* Parses dotenv text, calling fn(key, value, ud) for each entry in order.
 * Handles comments, blank lines, 'single' and "double" quotes (with \n, \t,
 * \" and \\ escapes inside double quotes), inline " #" comments on unquoted
 * values and an `export ` prefix. Returns 0, or -1 with the line number of
 * the first malformed line in *badline. */
int th_dotenv_parse(const char *text, size_t len,
                    void (*fn)(const char *key, const char *value, void *ud),
                    void *ud, int *badline);

/* ---- the settings table ---------------------------------------------- */

typedef enum { TH_STRING, TH_BOOL, TH_INT } th_kind;

/* th_setting_def.flags */
enum {
  TH_EMPTY_IS_SET = 1,   /* an empty value is the value (an error to report),
                            not "unset" (DATABASE_URL: never the default
                            database by mistake) */
  TH_EXPORTED = 2        /* its default goes into the environment too, for
                            child processes (psql) and os.getenv readers */
};
typedef enum { TH_FROM_DEFAULT, TH_FROM_ENV, TH_FROM_DOTENV } th_source;

typedef struct th_setting_def {
  const char *name;
  th_kind kind;
  const char *def;      /* the default as text; NULL: none (doc says what applies) */
  long long min, max;   /* TH_INT: the accepted range */
  const char *doc;      /* one line: what it does */
  unsigned flags;       /* TH_EMPTY_IS_SET, TH_EXPORTED */
} th_setting_def;

/* Every setting, in the order doctor lists them; ends with name NULL. */
extern const th_setting_def th_settings[];

/* The entry for name, or NULL when todohost has no such setting. */
const th_setting_def *th_setting_find(const char *name);

/* "environment", ".env" or "default". */
const char *th_source_name(th_source src);

/* A setting's value after th_config_load. text is the raw text (the
 * environment's, .env's or the default; NULL when unset with no default),
 * borrowed from the environment or the table; b and i hold a TH_BOOL's or a
 * TH_INT's value when text is not NULL. */
typedef struct th_value {
  th_source source;
  const char *text;
  int b;
  long long i;
} th_value;

/* Reads text (NULL: unset), which came from src, as d's kind into out.
 * Returns 0, or -1 with one line in err (as th_setting_read). */
int th_setting_parse(const th_setting_def *d, const char *text, th_source src, th_value *out,
                     char *err, size_t errsize);

/* Reads d's current value into out. Returns 0, or -1 with one line in err
 * naming the setting, the text (control characters escaped), where it came
 * from and the accepted values. */
int th_setting_read(const th_setting_def *d, th_value *out, char *err, size_t errsize);

/* pydantic's reading of a true/false word (any case): 1 for 1 true yes on
 * t y, 0 for 0 false no off f n, -1 for anything else (NULL included). */
int th_parse_bool(const char *s);

/* The text of the setting name (its default when unset; NULL when it has
 * none), borrowed from the environment or the table. */
const char *th_setting_text(const char *name);

/* The value of the TH_BOOL setting name: its default when unset, and false
 * when it is not valid (th_config_load has refused an invalid DEBUG). */
int th_setting_bool(const char *name);

#endif
