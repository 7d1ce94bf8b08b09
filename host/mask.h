/*
 * mask.h: keeping passwords out of every message. The one password masker of
 * todohost, for any layer: the drivers, the HTTP server's log and every
 * script (through todohost.db: db.mask_url, db.mask_text) use these.
 *
 * Implemented in dburl.c, which shares its reading of a URL with the URL
 * parser (so a URL is never masked one way and connected to another); this
 * header names only what a layer that knows nothing of databases needs.
 * The masking rule is described in dburl.h.
 */
#ifndef TODOHOST_MASK_H
#define TODOHOST_MASK_H

#include <stddef.h>

/* url with every password masked (see dburl.h); malloc'ed, NULL when out of
 * memory. The whole string is one URL (spaces included). */
char *db_mask_url(const char *url);

/* Copies text into out (capacity size > 0, always NUL-terminated,
 * truncated to fit) with the password of every URL in it (a run of text
 * from scheme:// to a blank; when that run has no '@', to the line's last
 * '@') and every password=VALUE (also libpq's key=value form, quoted or not)
 * replaced by "***". Returns out. */
char *db_mask_text(const char *text, char *out, size_t size);

/* Replaces every occurrence of secret in buf (NUL-terminated, capacity size)
 * by "***". A NULL or empty secret does nothing. Time linear in the text. */
void db_scrub(char *buf, size_t size, const char *secret);

#endif
