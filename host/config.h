/*
 * config.h: settings the way pydantic-settings reads them for the app we
 * replace: the environment first, then a .env file in the working directory,
 * then built-in defaults (DATABASE_URL=sqlite:///./database.db, DEBUG=false).
 *
 * th_config_load() runs once at start-up, before any thread exists: it copies
 * .env entries that the environment does not already set into the
 * environment, then the defaults, so every later reader (Lua's os.getenv,
 * child processes such as psql) sees one consistent view.
 */
#ifndef TODOHOST_CONFIG_H
#define TODOHOST_CONFIG_H

#include <stddef.h>

/* The largest .env read (bytes): settings, not data. */
#define TH_DOTENV_MAX (1024 * 1024)

/* Loads path (".env" when NULL) if it exists, then applies defaults.
 * Returns 0, or -1 with a one-line reason in err (a malformed line, a file
 * over TH_DOTENV_MAX). Time linear in the file. */
int th_config_load(const char *path, char *err, size_t errsize);

/* Parses dotenv text, calling fn(key, value, ud) for each entry in order.
 * Handles comments, blank lines, 'single' and "double" quotes (with \n, \t,
 * \" and \\ escapes inside double quotes), inline " #" comments on unquoted
 * values and an `export ` prefix. Returns 0, or -1 with the line number of
 * the first malformed line in *badline. */
int th_dotenv_parse(const char *text, size_t len,
                    void (*fn)(const char *key, const char *value, void *ud),
                    void *ud, int *badline);

/* pydantic's boolean reading: 1/true/yes/on (any case) are true. */
int th_truthy(const char *s);

/* The value of a setting after loading: getenv(name). */
const char *th_setting(const char *name);

#endif
