/*
 * textsafe.h: outside text made safe to write to a log or a terminal.
 */
#ifndef TODOHOST_TEXTSAFE_H
#define TODOHOST_TEXTSAFE_H

#include <stddef.h>

/* Copies s[0..len) into out (size >= 8 bytes), always NUL-terminated, for a
 * log line or a terminal: printable ASCII and well-formed UTF-8 are kept;
 * every other byte (control characters such as CR, LF, ESC and NUL, DEL,
 * C1 controls U+0080..U+009F, the bidi controls U+061C, U+200E/F,
 * U+202A..E and U+2066..9, the separators U+2028/9, bytes of invalid UTF-8)
 * and the backslash are
 * written as \xNN, so outside text (a method, a path, a library message, a
 * table name) can neither forge a log line nor send an escape sequence.
 * Text that does not fit ends in "..." (never a cut escape or character).
 * Returns out. Thread-safe; no allocation. */
char *text_safe(const char *s, size_t len, char *out, size_t size);

/* text_safe for a message whose own escapes must survive (the copy engine
 * shows a NUL in a value as \x00): the backslash is kept as it is. */
char *text_safe_message(const char *s, size_t len, char *out, size_t size);

#endif
