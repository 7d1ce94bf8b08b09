/*
 * copy.c: the bulk copy engine (see copy.h): reads a SQLite table with typed
 * column accessors, converts each value by the target column's type, and
 * streams the rows into PostgreSQL's binary COPY; reads them back to prove it.
 *
 * No Lua here. Memory stays flat whatever the table size: one send buffer of
 * COPY_BUFSIZE bytes, values larger than half of it are sent straight from
 * SQLite's memory.
 */
#include "copy.h"
#include "db_int.h"
#include "hex.h"
#include "strbuf.h"

#include "clock.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define COPY_BUFSIZE (256 * 1024)
#define PG_EPOCH_DAYS 10957            /* 2000-01-01 in days since 1970-01-01 */
#define USEC_PER_DAY INT64_C(86400000000)

static const char COPY_SIGNATURE[11] = "PGCOPY\n\377\r\n";  /* 11 bytes, NUL included */
static const char HINT_FIX_SOURCE[] =
    "fix that value in the source database (the copy never changes it) and run the copy "
    "again; nothing was committed to the target";

/* ---- small helpers ----------------------------------------------------- */

/* Fills err from a failed PostgreSQL result (res may be NULL: the
 * connection's message is used). what says which step failed. */
static void fail_pg(db_error *err, PGconn *pg, const PGresult *res, const char *what) {
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
  const char *context = res ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;
  const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
  char conn_msg[512];
  if (!primary) {
    snprintf(conn_msg, sizeof conn_msg, "%s", PQerrorMessage(pg));
    size_t n = strlen(conn_msg);
    while (n && (conn_msg[n - 1] == '\n' || conn_msg[n - 1] == ' ')) conn_msg[--n] = '\0';
    primary = n ? conn_msg : "unknown error";
  }
  int lost = PQstatus(pg) == CONNECTION_BAD;
  int full = state && strcmp(state, "53100") == 0;
  if (full) {
    what = "the PostgreSQL server's disk is full (53100)";
    hint = "free space where PostgreSQL keeps the target's data (or its tablespace), then run "
           "the copy again; nothing was committed";
  }
  db_error_set(err, state ? state : (lost ? "08006" : "XX000"),
       hint ? hint : (lost ? "the connection to PostgreSQL was lost; nothing was committed: "
                             "check the server and run the copy again" : NULL),
       "%s: %s%s%s%s", what, primary, detail ? " (" : "", detail ? detail : "",
       detail ? ")" : "");
  if (context) {
    size_t n = strlen(err->message);
    snprintf(err->message + n, sizeof err->message - n, " [%s]", context);
  }
  /* one line: libpq's multi-line texts become single spaces */
  char *w = err->message;
  for (const char *r = err->message; *r; r++) {
    if (*r == '\n' || *r == '\t' || *r == '\r') {
      if (w > err->message && w[-1] != ' ') *w++ = ' ';
    } else {
      *w++ = *r;
    }
  }
  while (w > err->message && w[-1] == ' ') w--;
  *w = '\0';
}

/* Sends sql, a COPY, on pg: 0 when the server answers with want (COPY IN
 * or OUT), else -1 with err (what says which step failed). */
static int start_copy(PGconn *pg, const char *sql, ExecStatusType want, const char *what, db_error *err) {
  PGresult *r = PQexec(pg, sql);
  int ok = PQresultStatus(r) == want;
  if (!ok) fail_pg(err, pg, r, what);
  PQclear(r);
  return ok ? 0 : -1;
}

static void sb_ident(strbuf *b, const char *name) {
  strbuf_add(b, "\"", 1);
  for (const char *q; (q = strchr(name, '"')) != NULL; name = q + 1) {
    strbuf_add(b, name, (size_t)(q - name) + 1);
    strbuf_add(b, "\"", 1);
  }
  strbuf_str(b, name);
  strbuf_add(b, "\"", 1);
}

static void sb_column_list(strbuf *b, const char *const *cols, int n) {
  for (int i = 0; i < n; i++) {
    if (i) strbuf_add(b, ", ", 2);
    sb_ident(b, cols[i]);
  }
}

static void put_be16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }
static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}
static void put_be64(unsigned char *p, uint64_t v) {
  put_be32(p, (uint32_t)(v >> 32));
  put_be32(p + 4, (uint32_t)v);
}
static uint32_t get_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint16_t get_be16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* ---- conversions ------------------------------------------------------- */

int64_t copy_utf8_check(const unsigned char *s, size_t n, const char **why, size_t *at) {
  size_t i = 0;
  int64_t chars = 0;
  while (i < n) {
    if (n - i >= 8) {  /* fast path: 8 ASCII bytes, none of them NUL */
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (!(w & UINT64_C(0x8080808080808080)) &&
          !((w - UINT64_C(0x0101010101010101)) & ~w & UINT64_C(0x8080808080808080))) {
        i += 8;
        chars += 8;
        continue;
      }
    }
    unsigned c = s[i];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c == 0) { *why = "a NUL byte (PostgreSQL text cannot hold one)"; *at = i; return -1; }
    if (c < 0x80) { i++; chars++; continue; }
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;  /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;  /* nothing past U+10FFFF */
    } else { *why = "invalid UTF-8"; *at = i; return -1; }
    if (n - i <= need) { *why = "invalid UTF-8 (truncated sequence)"; *at = i; return -1; }
    unsigned c1 = s[i + 1];
    if (c1 < lo || c1 > hi) { *why = "invalid UTF-8"; *at = i; return -1; }
    for (size_t k = 2; k <= need; k++)
      if ((s[i + k] & 0xC0) != 0x80) { *why = "invalid UTF-8"; *at = i; return -1; }
    i += need + 1;
    chars++;
  }
  return chars;
}

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static int days_in_month(int y, int m) {
  static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return dim[m - 1];
}

/* Reads exactly count digits at s[*i]; -1 when they are not there. */
static int read_digits(const char *s, size_t n, size_t *i, int count, int *out) {
  int v = 0;
  if (n - *i < (size_t)count) return -1;
  for (int k = 0; k < count; k++) {
    char c = s[*i + (size_t)k];
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  *i += (size_t)count;
  *out = v;
  return 0;
}

static const char WHY_DATETIME[] =
    "not a datetime (expected YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM])";

/* The date part; leaves *i after it. */
static int parse_ymd(const char *s, size_t n, size_t *i, int64_t *days, const char **why) {
  int y, m, d;
  if (read_digits(s, n, i, 4, &y) || *i >= n || s[(*i)++] != '-' ||
      read_digits(s, n, i, 2, &m) || *i >= n || s[(*i)++] != '-' ||
      read_digits(s, n, i, 2, &d)) {
    *why = WHY_DATETIME;
    return -1;
  }
  if (y < 1) { *why = "year 0000 is not a valid date"; return -1; }
  if (m < 1 || m > 12) { *why = "month out of range"; return -1; }
  if (d < 1 || d > days_in_month(y, m)) { *why = "day out of range for its month"; return -1; }
  *days = days_from_civil(y, (unsigned)m, (unsigned)d) - PG_EPOCH_DAYS;
  return 0;
}

int copy_parse_date(const char *s, size_t n, int32_t *days, const char **why) {
  size_t i = 0;
  int64_t d;
  if (parse_ymd(s, n, &i, &d, why)) {
    if (*why == WHY_DATETIME) *why = "not a date (expected YYYY-MM-DD)";
    return -1;
  }
  if (i != n) { *why = "not a date (expected YYYY-MM-DD, without a time)"; return -1; }
  *days = (int32_t)d;
  return 0;
}

int copy_parse_datetime(const char *s, size_t n, int64_t *usec, const char **why) {
  size_t i = 0;
  int64_t days;
  int hh = 0, mi = 0, ss = 0;
  int64_t frac = 0, offset_sec = 0;
  if (parse_ymd(s, n, &i, &days, why)) return -1;
  if (i < n) {
    if (s[i] != ' ' && s[i] != 'T') { *why = WHY_DATETIME; return -1; }
    i++;
    if (read_digits(s, n, &i, 2, &hh) || i >= n || s[i++] != ':' ||
        read_digits(s, n, &i, 2, &mi)) {
      *why = WHY_DATETIME;
      return -1;
    }
    if (i < n && s[i] == ':') {
      i++;
      if (read_digits(s, n, &i, 2, &ss)) { *why = WHY_DATETIME; return -1; }
      if (i < n && s[i] == '.') {
        int ndig = 0;
        i++;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, ndig++) {
          if (ndig < 6) frac = frac * 10 + (s[i] - '0');
          else if (s[i] != '0') { *why = "more precision than microseconds (it would be rounded)"; return -1; }
        }
        if (ndig == 0) { *why = WHY_DATETIME; return -1; }
        for (; ndig < 6; ndig++) frac *= 10;
      }
    }
    if (hh > 23 || mi > 59 || ss > 59) { *why = "time of day out of range"; return -1; }
    while (i < n && s[i] == ' ' && i + 1 < n) i++;  /* spaces only before an offset */
    if (i < n) {
      if (s[i] == 'Z' || s[i] == 'z') i++;
      else if (s[i] == '+' || s[i] == '-') {
        int sign = s[i++] == '-' ? -1 : 1, oh, om = 0;
        if (read_digits(s, n, &i, 2, &oh)) { *why = "bad time zone offset"; return -1; }
        if (i < n && s[i] == ':') i++;
        if (i < n && read_digits(s, n, &i, 2, &om)) { *why = "bad time zone offset"; return -1; }
        if (oh > 15 || om > 59) { *why = "time zone offset out of range"; return -1; }
        offset_sec = sign * (oh * 3600 + om * 60);
      } else { *why = WHY_DATETIME; return -1; }
    }
    if (i != n) { *why = WHY_DATETIME; return -1; }
  }
  *usec = days * USEC_PER_DAY + ((int64_t)hh * 3600 + mi * 60 + ss - offset_sec) * 1000000 + frac;
  return 0;
}

/* ---- the copier: send buffer and row hashing --------------------------- */

typedef struct copier {
  PGconn *pg;
  unsigned char *buf;
  size_t n;
  size_t row_start;        /* offset of the current row in buf */
  int streaming;           /* the current row's hash is in `hs` */
  XXH3_state_t *hs;
  uint64_t sum_hi, sum_lo;
  int64_t bytes;           /* sent to the server so far */
} copier;

static void sum_add(uint64_t *hi, uint64_t *lo, XXH128_hash_t h) {
  *lo += h.low64;
  *hi += h.high64 + (*lo < h.low64);
}

/* Moves the buffered part of the current row into the streaming hash. */
static void hash_handoff(copier *cp) {
  if (!cp->streaming) {
    XXH3_128bits_reset(cp->hs);
    cp->streaming = 1;
  }
  XXH3_128bits_update(cp->hs, cp->buf + cp->row_start, cp->n - cp->row_start);
  cp->row_start = cp->n;
}

/* Sends p[0..len) as COPY data: 0, or -1 (the COPY stopped: see the result). */
static int send_data(copier *cp, const void *p, size_t len) {
  while (len) {  /* PQputCopyData takes an int length */
    int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
    if (PQputCopyData(cp->pg, p, chunk) != 1) return -1;
    p = (const char *)p + chunk;
    len -= (size_t)chunk;
    cp->bytes += chunk;
  }
  return 0;
}

static int flush(copier *cp) {
  hash_handoff(cp);
  int rc = send_data(cp, cp->buf, cp->n);
  cp->n = cp->row_start = 0;
  return rc;
}

/* Makes room for k bytes (k <= COPY_BUFSIZE). */
static int reserve(copier *cp, size_t k) {
  return COPY_BUFSIZE - cp->n >= k ? 0 : flush(cp);
}

static void end_row(copier *cp) {
  if (cp->streaming) {
    XXH3_128bits_update(cp->hs, cp->buf + cp->row_start, cp->n - cp->row_start);
    sum_add(&cp->sum_hi, &cp->sum_lo, XXH3_128bits_digest(cp->hs));
    cp->streaming = 0;
  } else {
    sum_add(&cp->sum_hi, &cp->sum_lo, XXH3_128bits(cp->buf + cp->row_start, cp->n - cp->row_start));
  }
  cp->row_start = cp->n;
}

/* One field: its length then its bytes; large values go out unbuffered. */
static int put_field(copier *cp, const void *p, size_t len) {
  if (len > COPY_BUFSIZE / 2) {
    if (reserve(cp, 4)) return -1;
    put_be32(cp->buf + cp->n, (uint32_t)len);
    cp->n += 4;
    if (flush(cp)) return -1;
    XXH3_128bits_update(cp->hs, p, len);
    return send_data(cp, p, len);
  }
  if (reserve(cp, len + 4)) return -1;
  put_be32(cp->buf + cp->n, (uint32_t)len);
  if (len) memcpy(cp->buf + cp->n + 4, p, len);  /* an empty blob may be NULL */
  cp->n += len + 4;
  return 0;
}

/* ---- error messages for values ----------------------------------------- */

static const char *storage_name(int t) {
  switch (t) {
    case SQLITE_INTEGER: return "integer";
    case SQLITE_FLOAT: return "real";
    case SQLITE_TEXT: return "text";
    case SQLITE_BLOB: return "blob";
    default: return "null";
  }
}

/* Renders the value of column i of st for an error message: text quoted,
 * control characters and bytes that are not UTF-8 escaped as \xNN, cut
 * after about 60 bytes. */
static void render_value(sqlite3_stmt *st, int i, char *out, size_t size) {
  int t = sqlite3_column_type(st, i);
  if (t == SQLITE_NULL) { snprintf(out, size, "NULL"); return; }
  if (t == SQLITE_INTEGER) { snprintf(out, size, "%lld", (long long)sqlite3_column_int64(st, i)); return; }
  if (t == SQLITE_FLOAT) { snprintf(out, size, "%.17g", sqlite3_column_double(st, i)); return; }
  const unsigned char *p = t == SQLITE_BLOB ? sqlite3_column_blob(st, i) : sqlite3_column_text(st, i);
  size_t n = (size_t)sqlite3_column_bytes(st, i), o, k = 0;
  o = (size_t)snprintf(out, size, t == SQLITE_BLOB ? "x'" : "'");
  while (k < n && k < 60 && o + 32 < size) {
    unsigned c = p[k];
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    const char *why;
    size_t at;
    if (t == SQLITE_BLOB) {
      o += (size_t)snprintf(out + o, size - o, "%02x", c);
      k++;
    } else if (c == '\n' || c == '\t') {
      o += (size_t)snprintf(out + o, size - o, c == '\n' ? "\\n" : "\\t");
      k++;
    } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && (len > n - k || copy_utf8_check(p + k, len, &why, &at) != 1))) {
      o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
      k++;
    } else {
      memcpy(out + o, p + k, len);
      o += len;
      k += len;
    }
  }
  if (k < n) snprintf(out + o, size - o, "...' (%zu bytes)", n);
  else snprintf(out + o, size - o, "'");
}

/* ---- copy_encode_value ----------------------------------------------------- */

static int bad(copy_refusal *ve, const char *sqlstate, const char *why) {
  ve->sqlstate = sqlstate;
  ve->why = why;
  return 1;
}

static int fixed(copy_field *out, int32_t len, uint64_t v) {
  out->len = len;
  out->data = out->fixed;
  if (len == 1) out->fixed[0] = (unsigned char)v;
  else if (len == 2) put_be16(out->fixed, (uint16_t)v);
  else if (len == 4) put_be32(out->fixed, (uint32_t)v);
  else put_be64(out->fixed, v);
  return 0;
}

static int bytes_field(copy_field *out, const unsigned char *p, size_t n, copy_refusal *ve) {
  if (n > INT32_MAX) return bad(ve, "54000", "longer than a PostgreSQL field can be");
  out->len = (int32_t)n;
  out->data = p;
  return 0;
}

/* The encoders of COPY_TYPES (copy.h): each converts a non-NULL v exactly
 * into col's type, as copy_encode_value says. */

static int encode_bool(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  (void)col;
  if (v->storage != SQLITE_INTEGER || (v->i != 0 && v->i != 1)) return bad(ve, "22P02", "expected 0 or 1");
  return fixed(out, 1, (uint64_t)v->i);
}

static int encode_int(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  if (v->storage != SQLITE_INTEGER) return bad(ve, "22P02", "expected an integer");
  if (col->type == COPY_INT2 && (v->i < INT16_MIN || v->i > INT16_MAX))
    return bad(ve, "22003", "out of range for smallint");
  if (col->type == COPY_INT4 && (v->i < INT32_MIN || v->i > INT32_MAX))
    return bad(ve, "22003", "out of range for integer");
  return fixed(out, col->type == COPY_INT2 ? 2 : col->type == COPY_INT4 ? 4 : 8, (uint64_t)v->i);
}

static int encode_float(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  double d;
  if (v->storage == SQLITE_FLOAT) {
    d = v->f;
  } else if (v->storage == SQLITE_INTEGER) {
    d = (double)v->i;
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || (int64_t)d != v->i)
      return bad(ve, "22003", "integer not exactly representable as a floating-point number");
  } else {
    return bad(ve, "22P02", "expected a number");
  }
  if (col->type == COPY_FLOAT8) {
    uint64_t bits;
    memcpy(&bits, &d, 8);
    return fixed(out, 8, bits);
  }
  if (!isinf(d) && fabs(d) > FLT_MAX) return bad(ve, "22003", "out of range for real");
  float f = (float)d;
  if ((double)f != d) return bad(ve, "22003", "not exactly representable as real (float4)");
  uint32_t bits;
  memcpy(&bits, &f, 4);
  return fixed(out, 4, bits);
}

static int encode_text(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  const unsigned char *p = v->p;
  size_t n = v->n, at;
  if (v->storage == SQLITE_INTEGER) {   /* its decimal text, as SQLite gives it */
    n = (size_t)snprintf((char *)out->fixed, sizeof out->fixed, "%lld", (long long)v->i);
    p = out->fixed;
  } else if (v->storage != SQLITE_TEXT) {
    return bad(ve, "22P02", "expected text");
  }
  int64_t chars = copy_utf8_check(p, n, &ve->why, &at);
  if (chars < 0) return bad(ve, "22021", ve->why);
  if (col->max_chars >= 0 && chars > col->max_chars) {
    snprintf(ve->buf, sizeof ve->buf, "%lld characters, the column holds at most %d",
             (long long)chars, (int)col->max_chars);
    return bad(ve, "22001", ve->buf);
  }
  return bytes_field(out, p, n, ve);
}

static int encode_bytea(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  (void)col;
  if (v->storage != SQLITE_BLOB && v->storage != SQLITE_TEXT) return bad(ve, "22P02", "expected a blob");
  return bytes_field(out, v->p, v->n, ve);
}

static int encode_date(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  (void)col;
  int32_t days;
  if (v->storage != SQLITE_TEXT) return bad(ve, "22007", "expected a date text YYYY-MM-DD");
  if (copy_parse_date((const char *)v->p, v->n, &days, &ve->why)) return bad(ve, "22007", ve->why);
  return fixed(out, 4, (uint32_t)days);
}

/* timestamp and timestamptz: the same instant (a naive text is UTC). */
static int encode_datetime(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  (void)col;
  int64_t us;
  if (v->storage != SQLITE_TEXT)
    return bad(ve, "22007", "expected a datetime text like 2024-01-31 12:00:00[.ffffff][+HH:MM]");
  if (copy_parse_datetime((const char *)v->p, v->n, &us, &ve->why)) return bad(ve, "22007", ve->why);
  return fixed(out, 8, (uint64_t)us);
}

static int encode_uuid(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  (void)col;
  unsigned char *u = out->fixed;
  if (v->storage == SQLITE_BLOB) {
    if (v->n != 16) return bad(ve, "22P02", "a uuid blob must be 16 bytes");
    memcpy(u, v->p, 16);
  } else if (v->storage == SQLITE_TEXT) {
    const unsigned char *p = v->p;
    size_t n = v->n, k = 0;
    int nib = 0;
    for (; k < n && nib < 32; k++) {
      unsigned char c = p[k];
      int d = hex_digit(c);
      if (d < 0) {
        if (n == 36 && c == '-' && (k == 8 || k == 13 || k == 18 || k == 23)) continue;
        return bad(ve, "22P02", "not a uuid");
      }
      if (nib % 2 == 0) u[nib / 2] = (unsigned char)(d << 4);
      else u[nib / 2] |= (unsigned char)d;
      nib++;
    }
    if (nib != 32 || k != n || (n != 32 && n != 36)) return bad(ve, "22P02", "not a uuid");
  } else {
    return bad(ve, "22P02", "expected a uuid");
  }
  out->len = 16;
  out->data = u;
  return 0;
}

/* The decoders of COPY_TYPES: each turns one non-NULL binary COPY field of
 * col's type (as PostgreSQL sends it) into the SQLite value the app stores
 * for it, such that the type's encoder gives back exactly the same bytes
 * (copy_decode_field says more). */

static int field_size(int32_t len, int32_t want, copy_refusal *ve) {
  if (len != want) return bad(ve, "08P01", "a binary COPY field of the wrong size");
  return 0;
}

static int decode_bool(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                       copy_refusal *ve) {
  (void)col;
  if (field_size(len, 1, ve)) return 1;
  if (p[0] > 1) return bad(ve, "08P01", "a boolean that is neither 0 nor 1");
  out->v.storage = SQLITE_INTEGER;
  out->v.i = p[0];
  return 0;
}

static int decode_int(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                      copy_refusal *ve) {
  int32_t want = col->type == COPY_INT2 ? 2 : col->type == COPY_INT4 ? 4 : 8;
  if (field_size(len, want, ve)) return 1;
  out->v.storage = SQLITE_INTEGER;
  if (want == 2) out->v.i = (int16_t)get_be16(p);
  else if (want == 4) out->v.i = (int32_t)get_be32(p);
  else out->v.i = (int64_t)((uint64_t)get_be32(p) << 32 | get_be32(p + 4));
  return 0;
}

static int decode_float(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                        copy_refusal *ve) {
  double d;
  if (col->type == COPY_FLOAT4) {
    if (field_size(len, 4, ve)) return 1;
    uint32_t bits = get_be32(p);
    float f;
    memcpy(&f, &bits, 4);
    d = f;
  } else {
    if (field_size(len, 8, ve)) return 1;
    uint64_t bits = (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
    memcpy(&d, &bits, 8);
  }
  if (isnan(d)) return bad(ve, "22003", "NaN (SQLite stores a NaN as NULL)");
  out->v.storage = SQLITE_FLOAT;
  out->v.f = d;
  return 0;
}

static int decode_text(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                       copy_refusal *ve) {
  size_t at;
  int64_t chars = copy_utf8_check(p, (size_t)len, &ve->why, &at);
  if (chars < 0) return bad(ve, "22021", ve->why);
  if (col->max_chars >= 0 && chars > col->max_chars) return bad(ve, "22001", "longer than its varchar(n)");
  out->v.storage = SQLITE_TEXT;
  out->v.p = p;
  out->v.n = (size_t)len;
  return 0;
}

static int decode_bytea(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                        copy_refusal *ve) {
  (void)col, (void)ve;
  out->v.storage = SQLITE_BLOB;
  out->v.p = p;
  out->v.n = (size_t)len;
  return 0;
}

/* Writes day (since 2000-01-01) as YYYY-MM-DD into out->buf; 1 with ve when
 * it is outside the years 0001-9999 a SQLite date text holds. */
static int format_day(int64_t day, copy_decoded *out, copy_refusal *ve) {
  /* (db.c's text: ten characters exactly for the years 0001-9999) */
  if (db_format_pg_date(day, (char *)out->buf, sizeof out->buf) != 10)
    return bad(ve, "22008", "outside the years 0001-9999 (or infinity)");
  out->v.storage = SQLITE_TEXT;
  out->v.p = out->buf;
  out->v.n = 10;
  return 0;
}

static int decode_date(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                       copy_refusal *ve) {
  (void)col;
  if (field_size(len, 4, ve)) return 1;
  return format_day((int32_t)get_be32(p), out, ve);
}

/* timestamp and timestamptz: SQLAlchemy's text, YYYY-MM-DD HH:MM:SS.ffffff,
 * in UTC (the encoder reads a naive text as UTC). */
static int decode_datetime(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                           copy_refusal *ve) {
  (void)col;
  if (field_size(len, 8, ve)) return 1;
  int64_t us = (int64_t)((uint64_t)get_be32(p) << 32 | get_be32(p + 4));
  int64_t day = us / USEC_PER_DAY, rest = us % USEC_PER_DAY;
  if (rest < 0) { day--; rest += USEC_PER_DAY; }
  if (format_day(day, out, ve)) return 1;
  int64_t secs = rest / 1000000;
  snprintf((char *)out->buf + 10, sizeof out->buf - 10, " %02d:%02d:%02d.%06d", (int)(secs / 3600),
           (int)(secs / 60 % 60), (int)(secs % 60), (int)(rest % 1000000));
  out->v.n = 26;
  return 0;
}

/* uuid: 32 lowercase hex digits, SQLAlchemy's Uuid on SQLite. */
static int decode_uuid(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                       copy_refusal *ve) {
  (void)col;
  if (field_size(len, 16, ve)) return 1;
  hex_put((char *)out->buf, p, 16);
  out->v.storage = SQLITE_TEXT;
  out->v.p = out->buf;
  out->v.n = 32;
  return 0;
}


/* ---- numeric, time, char(n) ------------------------------------------- */

#define NUMERIC_MAX_DIGITS 1000
#define NUMERIC_POS 0x0000
#define NUMERIC_NEG 0x4000
#define NUMERIC_NAN 0xC000
#define NUMERIC_PINF 0xD000
#define NUMERIC_NINF 0xF000

/* A decimal number: 0.d[0]d[1]...d[len-1] x 10^point, without leading or
 * trailing zero digits (zero: len 0); digits are 0-9, not characters. */
typedef struct decimal {
  int neg;
  int len;
  int point;
  unsigned char d[NUMERIC_MAX_DIGITS];
} decimal;

/* Appends digit c (0-9) at the end of x, leading zeros skipped (moving the
 * point). 0, or -1 when there are too many digits. */
static int dec_push(decimal *x, int c, int before_point) {
  if (x->len == 0 && c == 0) {
    if (!before_point) x->point--;
    return 0;
  }
  if (x->len >= NUMERIC_MAX_DIGITS) return -1;
  x->d[x->len++] = (unsigned char)c;
  if (before_point) x->point++;
  return 0;
}

static void dec_trim(decimal *x) {
  while (x->len && x->d[x->len - 1] == 0) x->len--;
  if (!x->len) x->point = 0, x->neg = 0;
}

/* The fraction digits x needs: 0 for an integer. */
static int dec_frac(const decimal *x) { return x->len - x->point > 0 ? x->len - x->point : 0; }

/* The shortest decimal digits that read back as d (finite) into x. */
static void dec_from_double(double d, decimal *x) {
  char s[40];
  memset(x, 0, sizeof *x);
  for (int prec = 0; prec < 17; prec++) {
    snprintf(s, sizeof s, "%.*e", prec, d);
    if (strtod(s, NULL) == d) break;
  }
  const char *e = strchr(s, 'e');
  x->neg = s[0] == '-';
  x->point = atoi(e + 1) + 1;   /* d.ddd x 10^E = 0.dddd x 10^(E+1) */
  for (const char *c = s + x->neg; c < e; c++)
    if (*c != '.') x->d[x->len++] = (unsigned char)(*c - '0');
  dec_trim(x);
}

static void dec_from_int(int64_t i, decimal *x) {
  char s[24];
  int n = snprintf(s, sizeof s, "%lld", (long long)i);
  memset(x, 0, sizeof *x);
  x->neg = s[0] == '-';
  for (int k = x->neg; k < n; k++) dec_push(x, s[k] - '0', 1);
  dec_trim(x);
}

static int word_is(const unsigned char *p, size_t n, const char *w) {
  size_t k = 0;
  for (; k < n && w[k]; k++)
    if ((p[k] | 0x20) != w[k]) return 0;
  return k == n && !w[k];
}

/* The numeric's 8-byte header and its base-10000 digits, written to out. */
static int numeric_field(copy_field *out, const decimal *x, int sign, int dscale) {
  unsigned char *b = out->fixed;
  int ndig = 0, weight = 0;
  if (x->len) {
    /* decimal exponent of digit i: point - 1 - i; its group: floor(e / 4) */
    int first = x->point - 1, last = x->point - x->len;
    weight = first >= 0 ? first / 4 : -((-first + 3) / 4);
    int lastg = last >= 0 ? last / 4 : -((-last + 3) / 4);
    ndig = weight - lastg + 1;
    memset(b + 8, 0, (size_t)ndig * 2);
    for (int i = 0; i < x->len; i++) {
      int e = x->point - 1 - i, g = e >= 0 ? e / 4 : -((-e + 3) / 4), pos = e - 4 * g;
      static const int pow10[4] = {1, 10, 100, 1000};
      unsigned char *q = b + 8 + 2 * (weight - g);
      put_be16(q, (uint16_t)(get_be16(q) + x->d[i] * pow10[pos]));
    }
  }
  put_be16(b, (uint16_t)ndig);
  put_be16(b + 2, (uint16_t)(int16_t)weight);
  put_be16(b + 4, (uint16_t)sign);
  put_be16(b + 6, (uint16_t)dscale);
  out->len = 8 + 2 * ndig;
  out->data = b;
  return 0;
}

static int encode_numeric(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  decimal x;
  int dscale = 0, special = 0;
  memset(&x, 0, sizeof x);
  if (v->storage == SQLITE_INTEGER) {
    dec_from_int(v->i, &x);
  } else if (v->storage == SQLITE_FLOAT) {
    if (isnan(v->f)) special = NUMERIC_NAN;
    else if (isinf(v->f)) special = v->f > 0 ? NUMERIC_PINF : NUMERIC_NINF;
    else dec_from_double(v->f, &x);
    dscale = dec_frac(&x);
  } else if (v->storage == SQLITE_TEXT) {
    const unsigned char *p = v->p;
    size_t n = v->n, k = 0;
    if (word_is(p, n, "nan")) special = NUMERIC_NAN;
    else if (word_is(p, n, "infinity") || word_is(p, n, "+infinity") || word_is(p, n, "inf")) special = NUMERIC_PINF;
    else if (word_is(p, n, "-infinity") || word_is(p, n, "-inf")) special = NUMERIC_NINF;
    else {
      int digits = 0, dot = 0;
      if (k < n && (p[k] == '+' || p[k] == '-')) x.neg = p[k++] == '-';
      for (; k < n; k++) {
        if (p[k] == '.' && !dot) { dot = 1; continue; }
        if (p[k] < '0' || p[k] > '9') return bad(ve, "22P02", "not a decimal number (expected [-]digits[.digits])");
        digits++;
        if (dot) dscale++;
        if (dec_push(&x, p[k] - '0', !dot)) return bad(ve, "22003", "more than 1000 significant digits");
      }
      if (!digits) return bad(ve, "22P02", "not a decimal number (expected [-]digits[.digits])");
      dec_trim(&x);
    }
  } else {
    return bad(ve, "22P02", "expected a number");
  }
  if (special) {
    if (special != NUMERIC_NAN && col->precision >= 0)
      return bad(ve, "22003", "infinity does not fit a numeric(p, s) column");
    memset(&x, 0, sizeof x);
    return numeric_field(out, &x, special, 0);
  }
  if (x.len > NUMERIC_MAX_DIGITS) return bad(ve, "22003", "more than 1000 significant digits");
  if (col->precision >= 0) {
    if (dec_frac(&x) > col->scale) {
      snprintf(ve->buf, sizeof ve->buf, "more decimal places than numeric(%d, %d) keeps: it would be rounded",
               (int)col->precision, (int)col->scale);
      return bad(ve, "22003", ve->buf);
    }
    if (x.len && x.point > col->precision - col->scale) {
      snprintf(ve->buf, sizeof ve->buf, "does not fit numeric(%d, %d): at most %d digits before the point",
               (int)col->precision, (int)col->scale, (int)(col->precision - col->scale));
      return bad(ve, "22003", ve->buf);
    }
    dscale = col->scale;
  }
  if (dscale > 0x3FFF || x.point > 131072) return bad(ve, "22003", "out of range for numeric");
  return numeric_field(out, &x, x.neg ? NUMERIC_NEG : NUMERIC_POS, dscale);
}

static int decimal_value(const copy_column *col, const decimal *xp, int dscale, copy_decoded *out,
                         copy_refusal *ve);

/* numeric: an integer when it is one (and fits 64 bits), a real when the
 * double's shortest text is exactly the number, NaN as the text 'NaN',
 * infinities as reals; refused when SQLite's NUMERIC column cannot hold it
 * exactly (more digits than a double keeps, or trailing zeros after the
 * point in an unconstrained numeric, which SQLite's affinity drops). Only
 * PostgreSQL's own form (no leading or trailing zero groups) is taken. */
static int decode_numeric(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                          copy_refusal *ve) {
  static const char NOT_NUMERIC[] = "not a numeric in PostgreSQL's binary form";
  if (len < 8) return bad(ve, "08P01", NOT_NUMERIC);
  int ndig = (int16_t)get_be16(p), weight = (int16_t)get_be16(p + 2);
  unsigned sign = get_be16(p + 4), dscale = get_be16(p + 6);
  if (ndig < 0 || len != 8 + 2 * ndig) return bad(ve, "08P01", NOT_NUMERIC);
  if (sign == NUMERIC_NAN || sign == NUMERIC_PINF || sign == NUMERIC_NINF) {
    if (ndig || weight || dscale) return bad(ve, "08P01", NOT_NUMERIC);
    if (sign != NUMERIC_NAN && col->precision >= 0) return bad(ve, "22003", "infinity in a numeric(p, s) column");
    if (sign == NUMERIC_NAN) {
      out->v.storage = SQLITE_TEXT;
      out->v.p = (const unsigned char *)"NaN";
      out->v.n = 3;
    } else {
      out->v.storage = SQLITE_FLOAT;
      out->v.f = sign == NUMERIC_PINF ? HUGE_VAL : -HUGE_VAL;
    }
    return 0;
  }
  if ((sign != NUMERIC_POS && sign != NUMERIC_NEG) || dscale > 0x3FFF) return bad(ve, "08P01", NOT_NUMERIC);
  if (ndig == 0 && (weight || sign != NUMERIC_POS)) return bad(ve, "08P01", NOT_NUMERIC);
  if (ndig && (get_be16(p + 8) == 0 || get_be16(p + 8 + 2 * (ndig - 1)) == 0))
    return bad(ve, "08P01", NOT_NUMERIC);
  decimal x;
  memset(&x, 0, sizeof x);
  x.neg = sign == NUMERIC_NEG;
  x.point = 4 * (weight + 1);
  for (int g = 0; g < ndig; g++) {
    unsigned dg = get_be16(p + 8 + 2 * g);
    if (dg > 9999) return bad(ve, "08P01", NOT_NUMERIC);
    for (int k = 3; k >= 0; k--) {
      static const unsigned pow10[4] = {1, 10, 100, 1000};
      int c = (int)(dg / pow10[k] % 10);
      if (x.len == 0 && c == 0) { x.point--; continue; }
      if (x.len >= NUMERIC_MAX_DIGITS) return bad(ve, "22003", "more than 1000 significant digits");
      x.d[x.len++] = (unsigned char)c;
    }
  }
  dec_trim(&x);
  return decimal_value(col, &x, (int)dscale, out, ve);
}

/* The SQLite value of decimal x with dscale fraction digits in col (a
 * numeric): as decode_numeric says. */
static int decimal_value(const copy_column *col, const decimal *xp, int dscale, copy_decoded *out,
                         copy_refusal *ve) {
  const decimal x = *xp;
  if (x.point > 131072) return bad(ve, "22003", "out of range for numeric");
  int frac = dec_frac(&x);
  if (col->precision >= 0) {
    if (dscale != col->scale || frac > col->scale || (x.len && x.point > col->precision - col->scale))
      return bad(ve, "22003", "does not fit the column's numeric(p, s)");
  } else if (dscale != frac) {
    return bad(ve, "22003", "trailing zeros after the point, which SQLite's NUMERIC column drops "
                            "(1.50 becomes 1.5): declare the column numeric(p, s)");
  }
  if (x.point >= x.len && x.point <= 18) {   /* an integer of at most 18 digits */
    int64_t i = 0;
    for (int k = 0; k < x.point; k++) i = i * 10 + (k < x.len ? x.d[k] : 0);
    out->v.storage = SQLITE_INTEGER;
    out->v.i = x.neg ? -i : i;
    return 0;
  }
  char s[NUMERIC_MAX_DIGITS + 40];
  int n = snprintf(s, sizeof s, "%s0.", x.neg ? "-" : "");
  for (int k = 0; k < x.len; k++) s[n++] = (char)('0' + x.d[k]);
  snprintf(s + n, sizeof s - (size_t)n, "e%d", x.point);
  double d = strtod(s, NULL);
  decimal back;
  if (isinf(d)) return bad(ve, "22003", "more digits than SQLite's NUMERIC column keeps exactly (a double)");
  dec_from_double(d, &back);
  if (back.len != x.len || back.point != x.point || back.neg != x.neg || memcmp(back.d, x.d, (size_t)x.len))
    return bad(ve, "22003", "more digits than SQLite's NUMERIC column keeps exactly (a double)");
  out->v.storage = SQLITE_FLOAT;
  out->v.f = d;
  return 0;
}

/* time: HH:MM[:SS[.ffffff]] (24:00:00 too, as PostgreSQL takes it). */
static int encode_time(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  (void)col;
  static const char WHY[] = "not a time of day (expected HH:MM:SS[.ffffff])";
  if (v->storage != SQLITE_TEXT) return bad(ve, "22007", WHY);
  const char *s = (const char *)v->p;
  size_t n = v->n, i = 0;
  int hh, mi, ss = 0;
  int64_t frac = 0;
  if (read_digits(s, n, &i, 2, &hh) || i >= n || s[i++] != ':' || read_digits(s, n, &i, 2, &mi))
    return bad(ve, "22007", WHY);
  if (i < n && s[i] == ':') {
    i++;
    if (read_digits(s, n, &i, 2, &ss)) return bad(ve, "22007", WHY);
    if (i < n && s[i] == '.') {
      int ndig = 0;
      for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, ndig++) {
        if (ndig < 6) frac = frac * 10 + (s[i] - '0');
        else if (s[i] != '0') return bad(ve, "22007", "more precision than microseconds (it would be rounded)");
      }
      if (ndig == 0) return bad(ve, "22007", WHY);
      for (; ndig < 6; ndig++) frac *= 10;
    }
  }
  if (i != n) return bad(ve, "22007", WHY);
  if (mi > 59 || ss > 59 || hh > 24 || (hh == 24 && (mi || ss || frac))) return bad(ve, "22008", "time of day out of range");
  return fixed(out, 8, (uint64_t)(((int64_t)hh * 3600 + mi * 60 + ss) * 1000000 + frac));
}

/* time: SQLAlchemy's text on SQLite, HH:MM:SS.ffffff. */
static int decode_time(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                       copy_refusal *ve) {
  (void)col;
  if (field_size(len, 8, ve)) return 1;
  int64_t us = (int64_t)((uint64_t)get_be32(p) << 32 | get_be32(p + 4));
  if (us < 0 || us > USEC_PER_DAY) return bad(ve, "22008", "time of day out of range");
  int64_t secs = us / 1000000;
  snprintf((char *)out->buf, sizeof out->buf, "%02d:%02d:%02d.%06d", (int)(secs / 3600), (int)(secs / 60 % 60),
           (int)(secs % 60), (int)(us % 1000000));
  out->v.storage = SQLITE_TEXT;
  out->v.p = out->buf;
  out->v.n = 15;
  return 0;
}

void copy_field_release(copy_field *f) {
  free(f->own);
  f->own = NULL;
  f->own_cap = 0;
}

void copy_decoded_release(copy_decoded *d) {
  free(d->own);
  d->own = NULL;
}

/* char(n): the text padded with spaces to n characters, as PostgreSQL
 * stores it (spaces past n are cut, as PostgreSQL cuts them; any other
 * character past n is refused). */
static int encode_char(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  copy_column unlimited = *col;
  unlimited.max_chars = -1;
  if (encode_text(&unlimited, v, out, ve)) return 1;
  const unsigned char *p = out->data;
  size_t n = (size_t)out->len, at;
  const char *why;
  int64_t chars = copy_utf8_check(p, n, &why, &at);
  if (col->max_chars < 0) return 0;
  while (chars > col->max_chars && n && p[n - 1] == ' ') n--, chars--;
  if (chars > col->max_chars) {
    snprintf(ve->buf, sizeof ve->buf, "%lld characters, the column holds %d", (long long)chars, (int)col->max_chars);
    return bad(ve, "22001", ve->buf);
  }
  size_t pad = (size_t)(col->max_chars - chars), need = n + pad;
  unsigned char *b = out->fixed;
  if (need > sizeof out->fixed) {
    if (need > out->own_cap) {
      unsigned char *nb = realloc(out->own, need);
      if (!nb) return bad(ve, "53200", "out of memory");
      out->own = nb;
      out->own_cap = need;
    }
    b = out->own;
  }
  if (b != p) memmove(b, p, n);   /* p may be the integer's text in out->fixed */
  memset(b + n, ' ', pad);
  out->data = b;
  out->len = (int32_t)need;
  return 0;
}

/* char(n): the padded text as PostgreSQL sends it. */
static int decode_char(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                       copy_refusal *ve) {
  copy_column unlimited = *col;
  const char *why;
  size_t at;
  unlimited.max_chars = -1;
  if (decode_text(&unlimited, p, len, out, ve)) return 1;
  if (col->max_chars >= 0 && copy_utf8_check(p, (size_t)len, &why, &at) != col->max_chars)
    return bad(ve, "22001", "not padded to its char(n)");
  return 0;
}

/* ---- jsonb: JSON text in PostgreSQL's own form ------------------------ */

#define JSON_MAX_DEPTH 256

/* A JSON text being read: s[0..n), at i. */
typedef struct json_reader {
  const unsigned char *s;
  size_t n, i;
  int depth;
  const char *why;    /* set on the first error */
} json_reader;

static int json_fail(json_reader *r, const char *why) {
  if (!r->why) r->why = why;
  return -1;
}

static void json_space(json_reader *r) {
  while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' || r->s[r->i] == '\r'))
    r->i++;
}

/* Appends s[0..n) as PostgreSQL's escape_json writes a string. */
static void json_put_string(strbuf *b, const unsigned char *s, size_t n) {
  strbuf_add(b, "\"", 1);
  size_t run = 0;
  for (size_t k = 0; k < n; k++) {
    unsigned char c = s[k];
    const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f"
                    : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
    if (!esc && c >= 0x20) continue;
    strbuf_add(b, (const char *)s + run, k - run);
    if (esc) {
      strbuf_str(b, esc);
    } else {
      char u[8];
      snprintf(u, sizeof u, "\\u%04x", c);
      strbuf_str(b, u);
    }
    run = k + 1;
  }
  strbuf_add(b, (const char *)s + run, n - run);
  strbuf_add(b, "\"", 1);
}

static int hex4(const unsigned char *s, unsigned *v) {
  *v = 0;
  for (int k = 0; k < 4; k++) {
    int d = hex_digit(s[k]);
    if (d < 0) return -1;
    *v = *v << 4 | (unsigned)d;
  }
  return 0;
}

/* Reads a JSON string at r (at its opening quote) into out, unescaped
 * (UTF-8, as jsonb stores it). */
static int json_read_string(json_reader *r, strbuf *out) {
  r->i++;
  size_t run = r->i;
  while (r->i < r->n) {
    unsigned char c = r->s[r->i];
    if (c == '"') {
      strbuf_add(out, (const char *)r->s + run, r->i - run);
      r->i++;
      return 0;
    }
    if (c < 0x20) return json_fail(r, "a control character inside a JSON string");
    if (c != '\\') { r->i++; continue; }
    strbuf_add(out, (const char *)r->s + run, r->i - run);
    if (r->n - r->i < 2) return json_fail(r, "a JSON string that does not end");
    unsigned char e = r->s[r->i + 1];
    const char *plain = e == '"' ? "\"" : e == '\\' ? "\\" : e == '/' ? "/" : e == 'b' ? "\b" : e == 'f' ? "\f"
                      : e == 'n' ? "\n" : e == 'r' ? "\r" : e == 't' ? "\t" : NULL;
    if (plain) {
      strbuf_add(out, plain, 1);
      r->i += 2;
    } else if (e == 'u') {
      unsigned cp, lo;
      if (r->n - r->i < 6 || hex4(r->s + r->i + 2, &cp)) return json_fail(r, "a bad \\u escape in a JSON string");
      r->i += 6;
      if (cp >= 0xDC00 && cp <= 0xDFFF) return json_fail(r, "a lone low surrogate \\u escape in a JSON string");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (r->n - r->i < 6 || r->s[r->i] != '\\' || r->s[r->i + 1] != 'u' || hex4(r->s + r->i + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF)
          return json_fail(r, "a high surrogate \\u escape not followed by a low one");
        r->i += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      if (cp == 0) return json_fail(r, "\\u0000, which PostgreSQL's jsonb cannot hold");
      char u[4];
      size_t k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      if (k == 1) u[0] = (char)cp;
      else if (k == 2) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); }
      else if (k == 3) { u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | (cp >> 6 & 63)); u[2] = (char)(0x80 | (cp & 63)); }
      else { u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | (cp >> 12 & 63)); u[2] = (char)(0x80 | (cp >> 6 & 63)); u[3] = (char)(0x80 | (cp & 63)); }
      strbuf_add(out, u, k);
    } else {
      return json_fail(r, "a bad escape in a JSON string");
    }
    run = r->i;
  }
  return json_fail(r, "a JSON string that does not end");
}

/* Appends decimal x of dscale fraction digits as numeric_out writes it. */
static void put_decimal(strbuf *b, const decimal *x, int dscale) {
  char c;
  if (x->neg) strbuf_add(b, "-", 1);
  if (x->point <= 0) strbuf_add(b, "0", 1);
  for (int k = 0; k < x->point; k++) {
    c = (char)('0' + (k < x->len ? x->d[k] : 0));
    strbuf_add(b, &c, 1);
  }
  if (dscale > 0) strbuf_add(b, ".", 1);
  for (int k = 0; k < dscale; k++) {
    int at = x->point + k;
    c = (char)('0' + (at >= 0 && at < x->len ? x->d[at] : 0));
    strbuf_add(b, &c, 1);
  }
}

/* Reads a JSON number at r as jsonb stores it (a numeric: the exponent
 * applied, the fraction digits written kept) into x and *dscale. */
static int json_read_number(json_reader *r, decimal *x, int *dscale) {
  const unsigned char *s = r->s;
  size_t n = r->n, i = r->i;
  int frac = 0;
  long exp10 = 0;
  memset(x, 0, sizeof *x);
  if (i < n && s[i] == '-') x->neg = 1, i++;
  if (i >= n || s[i] < '0' || s[i] > '9') return json_fail(r, "not JSON");
  if (s[i] == '0' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') return json_fail(r, "a JSON number with a leading zero");
  for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
    if (dec_push(x, s[i] - '0', 1)) return json_fail(r, "a JSON number of more than 1000 digits");
  if (i < n && s[i] == '.') {
    i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return json_fail(r, "a JSON number without digits after its point");
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, frac++)
      if (dec_push(x, s[i] - '0', 0)) return json_fail(r, "a JSON number of more than 1000 digits");
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    int neg = 0;
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i >= n || s[i] < '0' || s[i] > '9') return json_fail(r, "a JSON number without exponent digits");
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
      if ((exp10 = exp10 * 10 + (s[i] - '0')) > 100000) return json_fail(r, "a JSON number out of range");
    if (neg) exp10 = -exp10;
  }
  dec_trim(x);
  if (x->len) x->point += (int)exp10;
  long ds = frac - exp10;
  *dscale = ds > 0 ? (int)ds : 0;
  if (*dscale > 16383 || x->point > 131072) return json_fail(r, "a JSON number out of range for PostgreSQL's numeric");
  r->i = i;
  return 0;
}

typedef struct json_member { size_t key, key_len, val, val_len; } json_member;

/* jsonb's key order: shorter keys first, then bytewise (keys in base). */
static int member_before(const unsigned char *base, const json_member *x, const json_member *y) {
  if (x->key_len != y->key_len) return x->key_len < y->key_len;
  return memcmp(base + x->key, base + y->key, x->key_len) < 0;
}

/* Sorts m[0..n) by key, stably (equal keys stay in the order written, so
 * the last one is kept), with tmp of n entries. */
static void sort_members(const unsigned char *base, json_member *m, json_member *tmp, size_t n) {
  if (n < 2) return;
  size_t h = n / 2, i = 0, j = h, k = 0;
  sort_members(base, m, tmp, h);
  sort_members(base, m + h, tmp, n - h);
  while (i < h && j < n) tmp[k++] = member_before(base, &m[j], &m[i]) ? m[j++] : m[i++];
  while (i < h) tmp[k++] = m[i++];
  while (j < n) tmp[k++] = m[j++];
  memcpy(m, tmp, n * sizeof *m);
}

/* Reads one JSON value at r and appends it to out in jsonb's output form. */
static int json_value(json_reader *r, strbuf *out) {
  json_space(r);
  if (r->i >= r->n) return json_fail(r, "not JSON (it ends early)");
  unsigned char c = r->s[r->i];
  if (c == '"') {
    strbuf str = {0};
    int rc = json_read_string(r, &str);
    if (rc == 0) json_put_string(out, (const unsigned char *)str.p, str.len);
    if (str.oom) rc = json_fail(r, "out of memory");
    free(str.p);
    return rc;
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    decimal x;
    int dscale;
    if (json_read_number(r, &x, &dscale)) return -1;
    put_decimal(out, &x, dscale);
    return 0;
  }
  static const char *const words[] = {"true", "false", "null"};
  for (int w = 0; w < 3; w++) {
    size_t len = strlen(words[w]);
    if (r->n - r->i >= len && memcmp(r->s + r->i, words[w], len) == 0) {
      strbuf_str(out, words[w]);
      r->i += len;
      return 0;
    }
  }
  if (c != '[' && c != '{') return json_fail(r, "not JSON");
  if (++r->depth > JSON_MAX_DEPTH) return json_fail(r, "JSON nested more than 256 deep");
  r->i++;
  json_space(r);
  int rc = 0;
  if (c == '[') {
    strbuf_add(out, "[", 1);
    for (int first = 1; r->i < r->n && r->s[r->i] != ']'; first = 0) {
      if (!first) {
        if (r->s[r->i] != ',') return json_fail(r, "not JSON (expected , or ])");
        r->i++;
        strbuf_add(out, ", ", 2);
      }
      if (json_value(r, out)) return -1;
      json_space(r);
    }
    if (r->i >= r->n) return json_fail(r, "not JSON (an array that does not end)");
    strbuf_add(out, "]", 1);
  } else {
    strbuf parts = {0};
    json_member *m = NULL;
    size_t count = 0, cap = 0;
    for (int first = 1; rc == 0 && r->i < r->n && r->s[r->i] != '}'; first = 0) {
      if (!first) {
        if (r->s[r->i] != ',') { rc = json_fail(r, "not JSON (expected , or })"); break; }
        r->i++;
        json_space(r);
      }
      if (r->i >= r->n || r->s[r->i] != '"') { rc = json_fail(r, "not JSON (expected a key)"); break; }
      if (count == cap) {
        json_member *nm = realloc(m, (cap = cap ? cap * 2 : 8) * sizeof *m);
        if (!nm) { rc = json_fail(r, "out of memory"); break; }
        m = nm;
      }
      json_member *e = &m[count];
      e->key = parts.len;
      if ((rc = json_read_string(r, &parts))) break;
      e->key_len = parts.len - e->key;
      json_space(r);
      if (r->i >= r->n || r->s[r->i] != ':') { rc = json_fail(r, "not JSON (expected :)"); break; }
      r->i++;
      e->val = parts.len;
      if ((rc = json_value(r, &parts))) break;
      e->val_len = parts.len - e->val;
      count++;
      json_space(r);
    }
    if (rc == 0 && r->i >= r->n) rc = json_fail(r, "not JSON (an object that does not end)");
    if (rc == 0 && parts.oom) rc = json_fail(r, "out of memory");
    if (rc == 0) {
      json_member *tmp = count > 1 ? malloc(count * sizeof *tmp) : NULL;
      if (count > 1 && !tmp) rc = json_fail(r, "out of memory");
      else sort_members((const unsigned char *)parts.p, m, tmp, count);
      free(tmp);
    }
    if (rc == 0) {
      strbuf_add(out, "{", 1);
      int written = 0;
      for (size_t k = 0; k < count; k++) {
        if (k + 1 < count && m[k].key_len == m[k + 1].key_len &&
            memcmp(parts.p + m[k].key, parts.p + m[k + 1].key, m[k].key_len) == 0) continue;  /* the last wins */
        if (written++) strbuf_add(out, ", ", 2);
        json_put_string(out, (const unsigned char *)parts.p + m[k].key, m[k].key_len);
        strbuf_add(out, ": ", 2);
        strbuf_add(out, parts.p + m[k].val, m[k].val_len);
      }
      strbuf_add(out, "}", 1);
    }
    free(m);
    free(parts.p);
    if (rc) return -1;
  }
  r->i++;
  r->depth--;
  return 0;
}

/* Makes b (taken over) the field out, in out->own; 1 when it could not be
 * built (oom, or b.oom) or is too long for a field. */
static int field_from(copy_field *out, strbuf *b, int oom, copy_refusal *ve) {
  if (oom || b->oom || b->len > INT32_MAX) {
    free(b->p);
    return bad(ve, "54000", "out of memory, or longer than a PostgreSQL field can be");
  }
  free(out->own);
  out->own = (unsigned char *)b->p;
  out->own_cap = b->cap;
  out->data = out->own;
  out->len = (int32_t)b->len;
  return 0;
}

/* jsonb: the JSON text (a SQLite text, or a number SQLite's JSON column
 * turned into one) as PostgreSQL stores and sends it: format version 1,
 * then the text in its own form (keys sorted by length then bytes, the
 * last of duplicate keys kept, ", " and ": " between items, numbers as
 * numerics with the exponent applied, strings re-escaped). */
static int encode_jsonb(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  (void)col;
  strbuf b = {0};
  size_t at;
  if (v->storage == SQLITE_FLOAT && !isfinite(v->f)) return bad(ve, "22P02", "NaN and infinities are not JSON");
  if (v->storage == SQLITE_TEXT && copy_utf8_check(v->p, v->n, &ve->why, &at) < 0) return bad(ve, "22021", ve->why);
  strbuf_add(&b, "\1", 1);
  if (v->storage == SQLITE_INTEGER || v->storage == SQLITE_FLOAT) {
    decimal x;
    if (v->storage == SQLITE_INTEGER) dec_from_int(v->i, &x);
    else dec_from_double(v->f, &x);
    put_decimal(&b, &x, dec_frac(&x));
  } else if (v->storage == SQLITE_TEXT) {
    json_reader r = {v->p, v->n, 0, 0, NULL};
    int rc = json_value(&r, &b);
    json_space(&r);
    if (rc == 0 && r.i != r.n) rc = json_fail(&r, "not JSON (text after the value)");
    if (rc) {
      free(b.p);
      return bad(ve, "22P02", r.why);
    }
  } else {
    free(b.p);
    return bad(ve, "22P02", "expected JSON text");
  }
  return field_from(out, &b, 0, ve);
}

/* jsonb: the text after the format version byte, which must be in
 * PostgreSQL's own form (the encoder's, so that it gives back the same
 * bytes); a number alone is stored as a numeric is (SQLite's JSON column
 * turns a numeric text into a number). */
static int decode_jsonb(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                        copy_refusal *ve) {
  if (len < 1 || p[0] != 1) return bad(ve, "08P01", "not jsonb of format version 1");
  if (decode_text(col, p + 1, len - 1, out, ve)) return 1;
  copy_field again = {0};
  copy_refusal why;
  int same = encode_jsonb(col, &out->v, &again, &why) == 0 && again.len == len && memcmp(again.data, p, (size_t)len) == 0;
  copy_field_release(&again);
  if (!same) return bad(ve, "08P01", "jsonb not in PostgreSQL's own form");
  if (len > 1 && (p[1] == '-' || (p[1] >= '0' && p[1] <= '9'))) {
    json_reader r = {p + 1, (size_t)len - 1, 0, 0, NULL};
    decimal x;
    int dscale;
    copy_column plain = *col;
    plain.precision = -1;
    if (json_read_number(&r, &x, &dscale) || r.i != r.n) return bad(ve, "08P01", "jsonb not in PostgreSQL's own form");
    return decimal_value(&plain, &x, (int)dscale, out, ve);
  }
  return 0;
}

/* ---- enums: a label of the type --------------------------------------- */

/* p[0..n) is one of col's labels, byte for byte (as PostgreSQL compares them). */
static int is_label(const copy_column *col, const unsigned char *p, size_t n) {
  const char *label = col->labels;
  for (int k = 0; k < col->nlabels; k++, label += strlen(label) + 1)
    if (strlen(label) == n && (n == 0 || memcmp(label, p, n) == 0)) return 1;
  return 0;
}

/* enums: the label as text (as encode_text takes it), one of col's labels. */
static int encode_enum(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  if (encode_text(col, v, out, ve)) return 1;
  if (!is_label(col, out->data, (size_t)out->len)) return bad(ve, "22P02", "not one of the enum type's labels");
  return 0;
}

/* enums: the label PostgreSQL sends (one of the type's, or the stream is wrong). */
static int decode_enum(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                       copy_refusal *ve) {
  if (decode_text(col, p, len, out, ve)) return 1;
  if (!is_label(col, p, (size_t)len)) return bad(ve, "08P01", "not one of the enum type's labels");
  return 0;
}

void copy_columns_release(copy_column *cols, int n) {
  for (int k = 0; k < n; k++) {
    free(cols[k].labels);
    cols[k].labels = NULL;
    cols[k].nlabels = 0;
  }
}

/* ---- arrays: PostgreSQL's binary array, JSON text on SQLite ----------- */

#define ARRAY_MAX_DIMS 6

static int encode_element(const copy_column *ecol, const copy_value *v, strbuf *b, copy_refusal *ve);

static const char HEX_ELEMENT[] = "expected a bytea's hex text, \"\\\\x0102ff\" in JSON";

/* A bytea element: v, the JSON string \x and pairs of hex digits (either
 * case), as PostgreSQL writes a bytea, made the blob of those bytes (in
 * bytes, which v then points into); NULL stays NULL. 1 with ve otherwise. */
static int hex_element(copy_value *v, strbuf *bytes, copy_refusal *ve) {
  if (v->storage == SQLITE_NULL) return 0;
  if (v->storage != SQLITE_TEXT || v->n < 2 || v->p[0] != '\\' || v->p[1] != 'x' || v->n % 2)
    return bad(ve, "22P02", HEX_ELEMENT);
  for (size_t k = 2; k < v->n; k += 2) {
    int hi = hex_digit(v->p[k]), lo = hex_digit(v->p[k + 1]);
    if (hi < 0 || lo < 0) return bad(ve, "22P02", HEX_ELEMENT);
    char c = (char)(hi << 4 | lo);
    strbuf_add(bytes, &c, 1);
  }
  if (bytes->oom) return bad(ve, "53200", "out of memory");
  v->storage = SQLITE_BLOB;
  v->p = (const unsigned char *)bytes->p;
  v->n = bytes->len;
  return 0;
}

/* An array's elements as read from JSON: per dimension its size (the
 * first array seen at each depth fixes it), and the encoded elements. */
typedef struct array_build {
  copy_column elem;
  int ndim, dims[ARRAY_MAX_DIMS], dim_set[ARRAY_MAX_DIMS], hasnull;
  strbuf items;
  int64_t count;
} array_build;

/* Reads the JSON array (or, below the first level, element) at r, at depth. */
static int array_read(json_reader *r, array_build *a, int depth, copy_refusal *ve) {
  json_space(r);
  if (r->i >= r->n) return json_fail(r, "not a JSON array (it ends early)");
  unsigned char c = r->s[r->i];
  if (c == '[') {
    if (depth >= ARRAY_MAX_DIMS) return json_fail(r, "an array of more than 6 dimensions");
    r->i++;
    json_space(r);
    int size = 0;
    while (r->i < r->n && r->s[r->i] != ']') {
      if (size) {
        if (r->s[r->i] != ',') return json_fail(r, "not JSON (expected , or ])");
        r->i++;
      }
      if (array_read(r, a, depth + 1, ve)) return -1;
      size++;
      json_space(r);
    }
    if (r->i >= r->n) return json_fail(r, "not JSON (an array that does not end)");
    r->i++;
    if (size == 0 && depth > 0) return json_fail(r, "an empty inner array (PostgreSQL has none)");
    if (!a->dim_set[depth]) a->dim_set[depth] = 1, a->dims[depth] = size;
    else if (a->dims[depth] != size) return json_fail(r, "a JSON array that is not rectangular");
    return 0;
  }
  if (depth == 0) return json_fail(r, "not a JSON array");
  if (a->ndim == 0) a->ndim = depth;
  else if (a->ndim != depth) return json_fail(r, "a JSON array that is not rectangular");
  copy_value v = {.storage = SQLITE_NULL};
  strbuf str = {0};
  if (c == '"') {
    if (json_read_string(r, &str)) {
      free(str.p);
      return -1;
    }
    v.storage = SQLITE_TEXT;
    v.p = (const unsigned char *)(str.p ? str.p : "");
    v.n = str.len;
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    size_t start = r->i;
    decimal x;
    int dscale;
    if (json_read_number(r, &x, &dscale)) return -1;
    char num[64];
    size_t len = r->i - start;
    if (len >= sizeof num) return json_fail(r, "a number too long for an array element");
    memcpy(num, r->s + start, len);
    num[len] = '\0';
    char *end;
    errno = 0;
    long long i = strtoll(num, &end, 10);
    if (*end == '\0' && errno == 0) {
      v.storage = SQLITE_INTEGER;
      v.i = i;
    } else {
      v.storage = SQLITE_FLOAT;
      v.f = strtod(num, NULL);
    }
  } else if (r->n - r->i >= 4 && memcmp(r->s + r->i, "true", 4) == 0) {
    v.storage = SQLITE_INTEGER, v.i = 1, r->i += 4;
  } else if (r->n - r->i >= 5 && memcmp(r->s + r->i, "false", 5) == 0) {
    v.storage = SQLITE_INTEGER, v.i = 0, r->i += 5;
  } else if (r->n - r->i >= 4 && memcmp(r->s + r->i, "null", 4) == 0) {
    r->i += 4;
  } else {
    return json_fail(r, "not JSON");
  }
  a->hasnull |= v.storage == SQLITE_NULL;
  a->count++;
  strbuf bytes = {0};
  int rc = (a->elem.type == COPY_BYTEA && hex_element(&v, &bytes, ve)) || encode_element(&a->elem, &v, &a->items, ve);
  free(bytes.p);
  free(str.p);
  return rc ? -1 : 0;
}

/* Appends element v of ecol's type as a field (length, bytes) to b. */
static int encode_element(const copy_column *ecol, const copy_value *v, strbuf *b, copy_refusal *ve) {
  copy_field f;
  unsigned char len[4];
  f.own = NULL;
  if (copy_encode_value(ecol, v, &f, ve)) {
    copy_field_release(&f);
    return -1;
  }
  put_be32(len, (uint32_t)f.len);
  strbuf_add(b, (const char *)len, 4);
  if (f.len > 0) strbuf_add(b, (const char *)f.data, (size_t)f.len);
  copy_field_release(&f);
  return 0;
}

/* The element column of array column col. */
static copy_column element_column(const copy_column *col) {
  copy_column e = *col;
  e.type = col->elem;
  e.not_null = 0;
  return e;
}

/* arrays: a JSON array text (nested for more dimensions; null, numbers,
 * strings, true/false) as PostgreSQL's binary array of col's element type
 * (lower bounds 1). */
static int encode_array(const copy_column *col, const copy_value *v, copy_field *out, copy_refusal *ve) {
  size_t at;
  if (v->storage != SQLITE_TEXT) return bad(ve, "22P02", "expected a JSON array text");
  if (copy_utf8_check(v->p, v->n, &ve->why, &at) < 0) return bad(ve, "22021", ve->why);
  array_build a = {.elem = element_column(col)};
  json_reader r = {v->p, v->n, 0, 0, NULL};
  copy_refusal ev = {0};
  int rc = array_read(&r, &a, 0, &ev);
  json_space(&r);
  if (rc == 0 && r.i != r.n) rc = json_fail(&r, "not JSON (text after the array)");
  if (rc) {
    free(a.items.p);
    if (ev.why) {   /* an element its type refused */
      snprintf(ve->buf, sizeof ve->buf, "an element: %s", ev.why);
      return bad(ve, ev.sqlstate, ve->buf);
    }
    return bad(ve, "22P02", r.why);
  }
  for (int d = a.ndim; d < ARRAY_MAX_DIMS && rc == 0; d++)
    if (a.dim_set[d] && (a.ndim || a.dims[0])) rc = json_fail(&r, "a JSON array that is not rectangular");
  strbuf b = {0};
  unsigned char h[12];
  put_be32(h, (uint32_t)a.ndim);
  put_be32(h + 4, (uint32_t)a.hasnull);
  put_be32(h + 8, col->elem_oid);
  strbuf_add(&b, (const char *)h, 12);
  for (int d = 0; d < a.ndim; d++) {
    put_be32(h, (uint32_t)a.dims[d]);
    put_be32(h + 4, 1);
    strbuf_add(&b, (const char *)h, 8);
  }
  if (a.items.len) strbuf_add(&b, a.items.p, a.items.len);
  int oom = a.items.oom;
  free(a.items.p);
  return field_from(out, &b, oom, ve);
}

/* Appends decoded element v (of elem's type) to b as JSON. */
static int put_json_element(strbuf *b, const copy_column *elem, const copy_value *v, copy_refusal *ve) {
  char num[40];
  switch (v->storage) {
    case SQLITE_NULL: strbuf_str(b, "null"); return 0;
    case SQLITE_INTEGER:
      if (elem->type == COPY_BOOL) strbuf_str(b, v->i ? "true" : "false");
      else { snprintf(num, sizeof num, "%lld", (long long)v->i); strbuf_str(b, num); }
      return 0;
    case SQLITE_FLOAT:
      if (!isfinite(v->f)) return bad(ve, "22003", "an infinite element, which JSON cannot hold");
      for (int prec = 0; prec < 17; prec++) {
        snprintf(num, sizeof num, "%.*g", prec + 1, v->f);
        if (strtod(num, NULL) == v->f) break;
      }
      strbuf_str(b, num);
      if (!strpbrk(num, ".e")) strbuf_str(b, ".0");   /* a real stays a real (-0.0 too) */
      return 0;
    case SQLITE_TEXT: json_put_string(b, v->p, v->n); return 0;
    case SQLITE_BLOB: {   /* bytea: its hex text, as hex_element reads it */
      char hex[64];
      strbuf_str(b, "\"\\\\x");
      for (size_t k = 0; k < v->n; k += sizeof hex / 2) {
        size_t part = v->n - k < sizeof hex / 2 ? v->n - k : sizeof hex / 2;
        hex_put(hex, v->p + k, part);
        strbuf_add(b, hex, 2 * part);
      }
      strbuf_str(b, "\"");
      return 0;
    }
    default: return bad(ve, "0A000", "an element type JSON cannot hold");
  }
}

/* arrays: the JSON text encode_array reads ([] for an empty array). Only
 * lower bounds 1 and a null flag that says whether there is a NULL (as
 * PostgreSQL builds them). */
static int decode_array(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                        copy_refusal *ve) {
  static const char NOT_ARRAY[] = "not an array of the column's type in PostgreSQL's binary form";
  if (len < 12) return bad(ve, "08P01", NOT_ARRAY);
  int32_t ndim = (int32_t)get_be32(p), flag = (int32_t)get_be32(p + 4);
  if (ndim < 0 || ndim > ARRAY_MAX_DIMS || (flag != 0 && flag != 1) || get_be32(p + 8) != col->elem_oid ||
      (size_t)len < 12 + 8 * (size_t)ndim)
    return bad(ve, "08P01", NOT_ARRAY);
  int64_t total = ndim ? 1 : 0;
  int dims[ARRAY_MAX_DIMS];
  for (int d = 0; d < ndim; d++) {
    dims[d] = (int32_t)get_be32(p + 12 + 8 * d);
    if (dims[d] <= 0 || (int32_t)get_be32(p + 16 + 8 * d) != 1) return bad(ve, "22P02", "an array whose lower bound is not 1 (JSON cannot say so)");
    total *= dims[d];
    if (total > len) return bad(ve, "08P01", NOT_ARRAY);
  }
  size_t o = 12 + 8 * (size_t)ndim;
  copy_column elem = element_column(col);
  strbuf b = {0};
  int nulls = 0, rc = 0;
  int64_t idx[ARRAY_MAX_DIMS] = {0};
  if (ndim == 0) strbuf_str(&b, "[]");
  for (int64_t k = 0; k < total && rc == 0; k++) {
    int opened = 0;   /* how many brackets open before this element */
    for (int d = ndim - 1; d >= 0 && idx[d] == 0; d--) opened++;
    if (k) strbuf_add(&b, ", ", 2);
    for (int d = 0; d < opened; d++) strbuf_add(&b, "[", 1);
    if ((size_t)len - o < 4) { rc = bad(ve, "08P01", NOT_ARRAY); break; }
    int32_t el = (int32_t)get_be32(p + o);
    o += 4;
    if (el < -1 || (el > 0 && (size_t)el > (size_t)len - o)) { rc = bad(ve, "08P01", NOT_ARRAY); break; }
    copy_decoded d;
    copy_refusal ev = {0};
    d.own = NULL;
    nulls |= el < 0;
    int refused = copy_decode_field(&elem, el >= 0 ? p + o : NULL, el, &d, &ev) || put_json_element(&b, &elem, &d.v, &ev);
    copy_decoded_release(&d);
    if (refused) {
      snprintf(ve->buf, sizeof ve->buf, "an element: %s", ev.why);
      rc = bad(ve, ev.sqlstate, ve->buf);
      break;
    }
    if (el > 0) o += (size_t)el;
    for (int dd = ndim - 1; dd >= 0; dd--) {   /* the next index; close what ends */
      if (++idx[dd] < dims[dd]) break;
      idx[dd] = 0;
      strbuf_add(&b, "]", 1);
    }
  }
  if (rc == 0 && (o != (size_t)len || nulls != flag)) rc = bad(ve, "08P01", NOT_ARRAY);
  if (rc) {
    free(b.p);
    return 1;
  }
  if (b.oom) {
    free(b.p);
    return bad(ve, "53200", "out of memory");
  }
  free(out->own);
  out->own = (unsigned char *)b.p;
  out->v.storage = SQLITE_TEXT;
  out->v.p = out->own;
  out->v.n = b.len;
  return 0;
}
static int decode_unsupported(const copy_column *col, const unsigned char *p, int32_t len,
                              copy_decoded *out, copy_refusal *ve) {
  (void)col, (void)p, (void)len, (void)out;
  return bad(ve, "0A000", "type not supported");
}

static int encode_unsupported(const copy_column *col, const copy_value *v, copy_field *out,
                              copy_refusal *ve) {
  (void)col, (void)v, (void)out;
  return bad(ve, "0A000", "type not supported");
}

typedef int (*encode_fn)(const copy_column *col, const copy_value *v, copy_field *out,
                         copy_refusal *ve);
typedef int (*decode_fn)(const copy_column *col, const unsigned char *p, int32_t len,
                         copy_decoded *out, copy_refusal *ve);

/* COPY_TYPES as a table indexed by copy_type. */
static const struct type_entry {
  const char *typnames;
  encode_fn encode;
  decode_fn decode;
} TYPES[COPY_TYPE_COUNT] = {
  [COPY_UNSUPPORTED] = {"", encode_unsupported, decode_unsupported},
#define COPY_TYPE_ENTRY(name, encoder, names) \
  [COPY_##name] = {names, encode_##encoder, decode_##encoder},
  COPY_TYPES(COPY_TYPE_ENTRY)
#undef COPY_TYPE_ENTRY
};

int copy_encode_value(const copy_column *col, const copy_value *v, copy_field *out,
                      copy_refusal *ve) {
  if (v->storage == SQLITE_NULL) {
    if (col->not_null) return bad(ve, "23502", "NULL in a NOT NULL column");
    out->len = -1;
    out->data = NULL;
    return 0;
  }
  unsigned t = (unsigned)col->type;
  return TYPES[t < COPY_TYPE_COUNT ? t : COPY_UNSUPPORTED].encode(col, v, out, ve);
}

int copy_decode_field(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                      copy_refusal *ve) {
  memset(&out->v, 0, sizeof out->v);
  if (len < 0) {
    if (col->not_null) return bad(ve, "23502", "NULL in a NOT NULL column");
    out->v.storage = SQLITE_NULL;
    return 0;
  }
  unsigned t = (unsigned)col->type;
  return TYPES[t < COPY_TYPE_COUNT ? t : COPY_UNSUPPORTED].decode(col, p, len, out, ve);
}

/* ---- describing the target -------------------------------------------- */

/* The copy_type of a column whose (base) type is typname, of typtype, in
 * pg_catalog when builtin; COPY_UNSUPPORTED when COPY_TYPES has none. */
static copy_type type_of(const char *typname, char typtype, int builtin) {
  if (typtype == 'e') return COPY_ENUM;  /* any enum: sent as its label */
  if (!builtin) return COPY_UNSUPPORTED;
  size_t len = strlen(typname);
  for (int t = 1; t < COPY_TYPE_COUNT; t++)
    for (const char *w = TYPES[t].typnames; *w; w += strspn(w, " ")) {
      size_t n = strcspn(w, " ");
      if (n == len && strncmp(w, typname, n) == 0) return (copy_type)t;
      w += n;
    }
  return COPY_UNSUPPORTED;
}

static const char DESCRIBE_SQL[] =
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
    " coalesce(b.typname, t.typname), coalesce(b.typtype, t.typtype),"
    " coalesce(b.typnamespace, t.typnamespace) = 'pg_catalog'::regnamespace,"
    " CASE WHEN b.oid IS NULL THEN a.atttypmod ELSE t.typtypmod END,"
    " a.attnotnull OR (b.oid IS NOT NULL AND t.typnotnull),"
    " CASE WHEN coalesce(b.typcategory, t.typcategory) = 'A' THEN coalesce(b.typelem, t.typelem) ELSE 0 END,"
    " (SELECT e.typname FROM pg_type e WHERE e.oid = coalesce(b.typelem, t.typelem)"
    "   AND (e.typnamespace = 'pg_catalog'::regnamespace AND e.typtype = 'b' OR e.typtype = 'e')),"
    " (SELECT e.typtype FROM pg_type e WHERE e.oid = coalesce(b.typelem, t.typelem)),"
    " CASE WHEN coalesce(b.typtype, t.typtype) = 'e' THEN coalesce(b.oid, t.oid) ELSE 0 END"
    " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
    " LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype"
    " WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped"
    " ORDER BY a.attnum";

static void fill_column(copy_column *c, const PGresult *r, int row) {
  snprintf(c->name, sizeof c->name, "%s", PQgetvalue(r, row, 0));
  snprintf(c->type_name, sizeof c->type_name, "%s", PQgetvalue(r, row, 1));
  c->type = type_of(PQgetvalue(r, row, 2), PQgetvalue(r, row, 3)[0],
                    PQgetvalue(r, row, 4)[0] == 't');
  long typmod = strtol(PQgetvalue(r, row, 5), NULL, 10);
  const char *base = PQgetvalue(r, row, 2);
  c->elem_oid = (uint32_t)strtoul(PQgetvalue(r, row, 7), NULL, 10);
  c->elem = COPY_UNSUPPORTED;
  c->enum_oid = (uint32_t)strtoul(PQgetvalue(r, row, 10), NULL, 10);
  c->nlabels = 0;
  c->labels = NULL;
  if (c->elem_oid) {   /* an array: of an element type the copy converts */
    base = PQgetvalue(r, row, 8);
    c->elem = base[0] ? type_of(base, PQgetvalue(r, row, 9)[0], 1) : COPY_UNSUPPORTED;
    c->type = c->elem == COPY_UNSUPPORTED ? COPY_UNSUPPORTED : COPY_ARRAY;
    if (c->elem == COPY_ENUM) c->enum_oid = c->elem_oid;
  }
  c->max_chars = (strcmp(base, "varchar") == 0 || strcmp(base, "bpchar") == 0) && typmod >= 4
                     ? (int32_t)(typmod - 4) : -1;
  c->precision = strcmp(base, "numeric") == 0 && typmod >= 4 ? (int32_t)(((typmod - 4) >> 16) & 0xffff) : -1;
  c->scale = c->precision >= 0 ? (int32_t)((((typmod - 4) & 0x7ff) ^ 1024) - 1024) : 0;
  c->not_null = PQgetvalue(r, row, 6)[0] == 't';
}

/* Reads the labels of c's enum (c->enum_oid) into c->labels (malloc'ed);
 * 0, or -1 with err. */
static int read_labels(PGconn *dst, copy_column *c, db_error *err) {
  char oid[16];
  snprintf(oid, sizeof oid, "%u", (unsigned)c->enum_oid);
  const char *params[1] = {oid};
  PGresult *r = PQexecParams(dst, "SELECT enumlabel FROM pg_enum WHERE enumtypid = $1::oid ORDER BY enumsortorder",
                             1, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    fail_pg(err, dst, r, "cannot read the labels of an enum type of the target");
    PQclear(r);
    return -1;
  }
  size_t size = 1;
  int n = PQntuples(r);
  for (int k = 0; k < n; k++) size += (size_t)PQgetlength(r, k, 0) + 1;
  char *labels = malloc(size), *w = labels;
  if (!labels) {
    PQclear(r);
    db_error_set(err, "53200", NULL, "out of memory");
    return -1;
  }
  for (int k = 0; k < n; k++) {
    size_t len = (size_t)PQgetlength(r, k, 0);
    memcpy(w, PQgetvalue(r, k, 0), len + 1);
    w += len + 1;
  }
  PQclear(r);
  c->labels = labels;
  c->nlabels = n;
  return 0;
}

int copy_describe(PGconn *dst, const char *table, const char *const *columns,
                  int ncolumns, copy_column *out, int max, db_error *err) {
  const char *params[1] = {table};
  PGresult *r = PQexecParams(dst, DESCRIBE_SQL, 1, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    fail_pg(err, dst, r, "cannot read the target's columns");
    PQclear(r);
    return -1;
  }
  int rows = PQntuples(r);
  if (rows == 0) {
    PQclear(r);
    db_error_set(err, "42P01", "run `make migrate` against the target so its schema matches the source",
         "table \"%s\" does not exist in the target database", table);
    return -1;
  }
  int count;
  if (!columns) {
    count = rows;
    for (int i = 0; i < rows && i < max; i++) fill_column(&out[i], r, i);
  } else {
    count = ncolumns;
    for (int k = 0; k < ncolumns; k++) {
      int found = -1;
      for (int i = 0; i < rows && found < 0; i++)
        if (strcmp(PQgetvalue(r, i, 0), columns[k]) == 0) found = i;
      if (found < 0) {
        PQclear(r);
        db_error_set(err, "42703", "run `make migrate` against the target so its schema matches the source",
             "column %s.%s does not exist in the target database", table, columns[k]);
        return -1;
      }
      if (k < max) fill_column(&out[k], r, found);
    }
  }
  PQclear(r);
  int filled = count < max ? count : max;
  for (int k = 0; k < filled; k++)
    if ((out[k].type == COPY_ENUM || out[k].elem == COPY_ENUM) && read_labels(dst, &out[k], err)) {
      copy_columns_release(out, k);
      return -1;
    }
  return count;
}

/* Column i of st's current row as a copy_value (pointing into SQLite's
 * memory: valid until the next step). */
static void read_value(sqlite3_stmt *st, int i, copy_value *v) {
  v->storage = sqlite3_column_type(st, i);
  switch (v->storage) {
    case SQLITE_INTEGER: v->i = sqlite3_column_int64(st, i); break;
    case SQLITE_FLOAT: v->f = sqlite3_column_double(st, i); break;
    case SQLITE_TEXT: v->p = sqlite3_column_text(st, i); v->n = (size_t)sqlite3_column_bytes(st, i); break;
    case SQLITE_BLOB: v->p = sqlite3_column_blob(st, i); v->n = (size_t)sqlite3_column_bytes(st, i); break;
  }
}

/* Converts column i of the current row into a field. Returns 0 when done, 1
 * when the value cannot be converted (ve says why), -1 when sending failed. */
static int convert(copier *cp, sqlite3_stmt *st, int i, const copy_column *col, copy_refusal *ve) {
  copy_value v;
  read_value(st, i, &v);
  copy_field f;
  f.own = NULL;
  f.own_cap = 0;
  if (copy_encode_value(col, &v, &f, ve)) return copy_field_release(&f), 1;
  if (f.len >= 0) {
    int rc = put_field(cp, f.data, (size_t)f.len);
    copy_field_release(&f);
    return rc;
  }
  if (reserve(cp, 4)) return -1;
  put_be32(cp->buf + cp->n, UINT32_MAX);
  cp->n += 4;
  return 0;
}

/* ---- copy_table --------------------------------------------------------- */


/* Ends a COPY IN that failed or is being abandoned and drains its results,
 * keeping the first error: err is filled from the server's error unless
 * have_err says it already holds the reason. reason (may be NULL when the
 * COPY already stopped) is sent as the client's CopyFail message. */
static void abort_copy(PGconn *pg, const char *reason, db_error *err, int have_err) {
  if (reason) PQputCopyEnd(pg, reason);
  PGresult *r;
  while ((r = PQgetResult(pg)) != NULL) {
    ExecStatusType s = PQresultStatus(r);
    if (!have_err && s == PGRES_FATAL_ERROR) {
      fail_pg(err, pg, r, "the copy failed");
      have_err = 1;
    }
    PQclear(r);
    if (s == PGRES_COPY_IN && PQputCopyEnd(pg, "copy aborted") != 1) break;
  }
  if (!have_err) fail_pg(err, pg, NULL, "the copy failed");
}

/* Frees cols (n of them, from describe_columns; NULL: none) and their labels. */
static void free_columns(copy_column *cols, int n) {
  if (cols) copy_columns_release(cols, n);
  free(cols);
}

/* The PostgreSQL session fit for binary COPY (integer timestamps, UTF-8)
 * and spec's columns described from its catalog, each of a type the copy
 * converts. Returns them (spec->ncolumns, calloc'ed: the caller frees
 * them), or NULL with err. */
static copy_column *describe_columns(PGconn *pg, const copy_spec *spec, db_error *err) {
  int ncol = spec->ncolumns;
  if (ncol <= 0) {
    db_error_set(err, "42601", NULL, "table %s: no columns to copy", spec->table);
    return NULL;
  }
  const char *idt = PQparameterStatus(pg, "integer_datetimes");
  if (!idt || strcmp(idt, "on") != 0) {
    db_error_set(err, "0A000", NULL, "the PostgreSQL server does not use integer timestamps; copy needs it");
    return NULL;
  }
  const char *enc = PQparameterStatus(pg, "client_encoding");
  if ((!enc || strcmp(enc, "UTF8") != 0) && PQsetClientEncoding(pg, "UTF8")) {
    fail_pg(err, pg, NULL, "cannot set client_encoding to UTF8");
    return NULL;
  }
  copy_column *cols = calloc((size_t)ncol, sizeof *cols);
  if (!cols) { db_error_set(err, "53200", NULL, "out of memory"); return NULL; }
  if (copy_describe(pg, spec->table, spec->columns, ncol, cols, ncol, err) < 0) goto failed;
  for (int k = 0; k < ncol; k++)
    if (cols[k].type == COPY_UNSUPPORTED) {
      db_error_set(err, "0A000", "leave the column out of the copy (--tables) or change its type",
           "column %s.%s has type %s, which the copy cannot convert yet", spec->table,
           cols[k].name, cols[k].type_name);
      goto failed;
    }
  return cols;
failed:
  free_columns(cols, ncol);
  return NULL;
}

/* What copy_table and copy_check_table do first: the target's session fit
 * for binary COPY (integer timestamps, UTF-8), the columns described (each
 * of a type the copy converts), and the source's statement, SELECT <row id>,
 * columns FROM table (rowid order). Returns the described columns
 * (spec->ncolumns, calloc'ed: the caller frees them and finalizes *st), or
 * NULL with err (nothing to free, *st NULL). */
static copy_column *open_source(sqlite3 *src, PGconn *dst, const copy_spec *spec,
                                sqlite3_stmt **st, db_error *err) {
  int ncol = spec->ncolumns;
  *st = NULL;
  copy_column *cols = describe_columns(dst, spec, err);
  if (!cols) return NULL;
  strbuf sql = {0};
  strbuf_str(&sql, "SELECT ");
  if (spec->id_column) sb_ident(&sql, spec->id_column);
  else strbuf_str(&sql, "rowid");
  strbuf_str(&sql, ", ");
  sb_column_list(&sql, spec->columns, ncol);
  strbuf_str(&sql, " FROM ");
  sb_ident(&sql, spec->table);
  if (sql.oom) { db_error_set(err, "53200", NULL, "out of memory"); goto failed; }
  if (sqlite3_prepare_v2(src, sql.p, (int)sql.len, st, NULL) != SQLITE_OK) {
    db_error_set(err, "42P01", "check the table and column names in the source database",
         "cannot read table %s from the source: %s", spec->table, sqlite3_errmsg(src));
    sqlite3_finalize(*st);
    *st = NULL;
    goto failed;
  }
  free(sql.p);
  return cols;
failed:
  free(sql.p);
  free_columns(cols, ncol);
  return NULL;
}

/* The error for a source statement that stopped before SQLITE_DONE. */
static void fail_source_read(db_error *err, sqlite3 *src, const char *table) {
  db_error_set(err, "58030", "check the source database file (sqlite3 FILE 'PRAGMA integrity_check')",
       "cannot read table %s from the source: %s", table, sqlite3_errmsg(src));
}

int copy_table(sqlite3 *src, PGconn *dst, const copy_spec *spec, copy_stats *stats,
               db_error *err) {
  double t0 = th_clock_seconds();
  int rc = -1, ncol = spec->ncolumns, copying = 0;
  copy_column *cols = NULL;
  sqlite3_stmt *st = NULL;
  copier cp = {0};
  strbuf sql = {0};
  memset(stats, 0, sizeof *stats);

  cols = open_source(src, dst, spec, &st, err);
  if (!cols) return -1;
  cp.buf = malloc(COPY_BUFSIZE);
  cp.hs = XXH3_createState();
  if (!cp.buf || !cp.hs) { db_error_set(err, "53200", NULL, "out of memory"); goto done; }

  /* the target: COPY table (columns) FROM STDIN (FORMAT binary) */
  strbuf_str(&sql, "COPY ");
  sb_ident(&sql, spec->table);
  strbuf_str(&sql, " (");
  sb_column_list(&sql, spec->columns, ncol);
  strbuf_str(&sql, spec->freeze ? ") FROM STDIN (FORMAT binary, FREEZE)" : ") FROM STDIN (FORMAT binary)");
  if (sql.oom) { db_error_set(err, "53200", NULL, "out of memory"); goto done; }
  if (start_copy(dst, sql.p, PGRES_COPY_IN, "cannot start the copy", err)) goto done;
  copying = 1;
  cp.pg = dst;
  PGresult *r;

  memcpy(cp.buf, COPY_SIGNATURE, 11);
  put_be32(cp.buf + 11, 0);  /* flags */
  put_be32(cp.buf + 15, 0);  /* header extension length */
  cp.n = cp.row_start = 19;

  int64_t every = spec->progress_every > 0 ? spec->progress_every : 16384, rows = 0;
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    if (reserve(&cp, 2)) goto send_failed;
    put_be16(cp.buf + cp.n, (uint16_t)ncol);
    cp.n += 2;
    for (int k = 0; k < ncol; k++) {
      copy_refusal ve = {0};
      int c = convert(&cp, st, k + 1, &cols[k], &ve);
      if (c < 0) goto send_failed;
      if (c > 0) {
        char id[96], val[160];
        render_value(st, 0, id, sizeof id);
        render_value(st, k + 1, val, sizeof val);
        db_error_set(err, ve.sqlstate, HINT_FIX_SOURCE,
             "%s.%s, row %s %s: value %s (%s) cannot be stored in %s: %s", spec->table,
             cols[k].name, spec->id_column ? spec->id_column : "rowid", id, val,
             storage_name(sqlite3_column_type(st, k + 1)), cols[k].type_name, ve.why);
        abort_copy(dst, "value cannot be converted", err, 1);
        copying = 0;
        goto done;
      }
    }
    end_row(&cp);
    rows++;
    if (spec->on_progress && rows % every == 0 &&
        spec->on_progress(spec->ud, rows, cp.bytes + (int64_t)cp.n)) {
      db_error_set(err, "57014", NULL, "copy of %s cancelled", spec->table);
      abort_copy(dst, "copy cancelled", err, 1);
      copying = 0;
      goto done;
    }
  }
  if (s != SQLITE_DONE) {
    fail_source_read(err, src, spec->table);
    abort_copy(dst, "source read failed", err, 1);
    copying = 0;
    goto done;
  }
  if (reserve(&cp, 2)) goto send_failed;
  put_be16(cp.buf + cp.n, UINT16_MAX);  /* trailer: -1 */
  cp.n += 2;
  cp.row_start = cp.n;
  if (flush(&cp) || PQputCopyEnd(dst, NULL) != 1) goto send_failed;
  copying = 0;
  r = PQgetResult(dst);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    fail_pg(err, dst, r, "the copy failed");
    PQclear(r);
    while ((r = PQgetResult(dst)) != NULL) PQclear(r);
    goto done;
  }
  int64_t stored = strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  while ((r = PQgetResult(dst)) != NULL) PQclear(r);
  if (stored != rows) {
    db_error_set(err, "XX000", NULL, "table %s: %lld rows sent but the server stored %lld",
         spec->table, (long long)rows, (long long)stored);
    goto done;
  }
  if (spec->on_progress) spec->on_progress(spec->ud, rows, cp.bytes);
  stats->rows = rows;
  stats->bytes = cp.bytes;
  stats->sum_hi = cp.sum_hi;
  stats->sum_lo = cp.sum_lo;
  rc = 0;
  goto done;

send_failed:
  abort_copy(dst, NULL, err, 0);
  copying = 0;
done:
  if (copying) abort_copy(dst, "copy aborted", err, 1);
  sqlite3_finalize(st);
  XXH3_freeState(cp.hs);
  free(cp.buf);
  free_columns(cols, ncol);
  free(sql.p);
  stats->seconds = th_clock_seconds() - t0;
  return rc;
}

/* ---- copy_check_table: the pre-flight ---------------------------------- */

const char *copy_problem_name(copy_problem p) {
  static const char *const names[COPY_PROBLEM_COUNT] = {
    "other", "null", "too_long", "utf8", "time_number", "text_bool", "out_of_range",
  };
  return (unsigned)p < COPY_PROBLEM_COUNT ? names[p] : "other";
}

/* s[0..n) is a decimal number: [+-]digits[.digits] (at least one digit). */
static int numeric_text(const unsigned char *s, size_t n) {
  size_t k = 0, digits = 0;
  int dot = 0;
  if (k < n && (s[k] == '+' || s[k] == '-')) k++;
  for (; k < n; k++) {
    if (s[k] >= '0' && s[k] <= '9') digits++;
    else if (s[k] == '.' && !dot) dot = 1;
    else return 0;
  }
  return digits > 0;
}

/* s[0..n) is a word people store for a boolean ('true', 'No', 'f', 'on'...). */
static int boolean_word(const unsigned char *s, size_t n) {
  static const char *const words[] = {"true", "false", "yes", "no", "t", "f", "y", "n",
                                      "on", "off", "1", "0"};
  char low[8];
  if (n == 0 || n >= sizeof low) return 0;
  for (size_t k = 0; k < n; k++)
    low[k] = (char)(s[k] >= 'A' && s[k] <= 'Z' ? s[k] - 'A' + 'a' : s[k]);
  for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)  /* (s may hold a NUL byte) */
    if (strlen(words[w]) == n && memcmp(low, words[w], n) == 0) return 1;
  return 0;
}

copy_problem copy_classify(const copy_column *col, const copy_value *v, const copy_refusal *ve) {
  int t = v->storage;
  if (t == SQLITE_NULL) return COPY_PROBLEM_NULL;
  if (strcmp(ve->sqlstate, "22001") == 0) return COPY_PROBLEM_TOO_LONG;
  if (strcmp(ve->sqlstate, "22021") == 0) return COPY_PROBLEM_UTF8;
  if (strcmp(ve->sqlstate, "22003") == 0) return COPY_PROBLEM_RANGE;
  if ((col->type == COPY_DATE || col->type == COPY_TIMESTAMP || col->type == COPY_TIMESTAMPTZ ||
       col->type == COPY_TIME) &&
      (t == SQLITE_INTEGER || t == SQLITE_FLOAT || (t == SQLITE_TEXT && numeric_text(v->p, v->n))))
    return COPY_PROBLEM_TIME_NUMBER;
  if (col->type == COPY_BOOL && t == SQLITE_TEXT && boolean_word(v->p, v->n))
    return COPY_PROBLEM_TEXT_BOOL;
  return COPY_PROBLEM_OTHER;
}

/* Counts a refused value of column i (out) and keeps it while there is room
 * for another sample. */
static void note_refusal(copy_check_column *out, sqlite3_stmt *st, int i, const copy_value *v,
                         const copy_refusal *ve) {
  copy_problem p = copy_classify(&out->col, v, ve);
  out->refused++;
  out->problems[p]++;
  if (out->nsamples >= COPY_CHECK_SAMPLES) return;
  copy_check_sample *s = &out->samples[out->nsamples++];
  render_value(st, 0, s->id, sizeof s->id);
  render_value(st, i, s->value, sizeof s->value);
  s->storage = v->storage;
  s->problem = p;
  s->sqlstate = ve->sqlstate;
  snprintf(s->why, sizeof s->why, "%s", ve->why);
}

int copy_check_table(sqlite3 *src, PGconn *dst, const copy_spec *spec,
                     copy_check_column *out, copy_stats *stats, db_error *err) {
  double t0 = th_clock_seconds();
  int ncol = spec->ncolumns, rc = -1;
  sqlite3_stmt *st;
  memset(stats, 0, sizeof *stats);
  copy_column *cols = open_source(src, dst, spec, &st, err);
  if (!cols) return -1;
  for (int k = 0; k < ncol; k++) {
    memset(&out[k], 0, sizeof out[k]);
    out[k].col = cols[k];   /* its labels with it, released at the end */
  }
  free(cols);

  int64_t every = spec->progress_every > 0 ? spec->progress_every : 16384, rows = 0, bytes = 21;
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    bytes += 2;
    for (int k = 0; k < ncol; k++) {
      copy_check_column *c = &out[k];
      copy_value v;
      copy_field f;
      copy_refusal ve;
      f.own = NULL;
      read_value(st, k + 1, &v);
      c->storage[v.storage]++;
      int refused = copy_encode_value(&c->col, &v, &f, &ve);
      copy_field_release(&f);
      if (refused) {
        note_refusal(c, st, k + 1, &v, &ve);
        continue;
      }
      bytes += 4 + (f.len > 0 ? f.len : 0);
      c->retyped += ((c->col.type == COPY_TEXT || c->col.type == COPY_ENUM) && v.storage == SQLITE_INTEGER) ||
                    (c->col.type == COPY_BYTEA && v.storage == SQLITE_TEXT);
    }
    rows++;
    if (spec->on_progress && rows % every == 0 && spec->on_progress(spec->ud, rows, bytes)) {
      db_error_set(err, "57014", NULL, "check of %s cancelled", spec->table);
      goto done;
    }
  }
  if (s != SQLITE_DONE) {
    fail_source_read(err, src, spec->table);
    goto done;
  }
  if (spec->on_progress) spec->on_progress(spec->ud, rows, bytes);
  stats->rows = rows;
  stats->bytes = bytes;
  rc = 0;
done:
  sqlite3_finalize(st);
  for (int k = 0; k < ncol; k++) copy_columns_release(&out[k].col, 1);
  stats->seconds = th_clock_seconds() - t0;
  return rc;
}

/* ---- reading binary COPY TO STDOUT ------------------------------------- */

int copy_next_tuple(copy_stream *s, const unsigned char *p, size_t n, size_t *off, size_t *start,
                    copy_field *fields, int max_fields, int *nfields) {
  if (!s->header_done) {
    if (*off != 0 || n < 19 || memcmp(p, COPY_SIGNATURE, 11) != 0) return -1;
    uint32_t ext = get_be32(p + 15);
    if (ext > n - 19) return -1;
    *off = 19 + (size_t)ext;
    s->header_done = 1;
  }
  if (*off >= n) return 0;
  if (s->trailer || n - *off < 2) return -1;
  size_t o = *off;
  int16_t nf = (int16_t)get_be16(p + o);
  o += 2;
  if (nf == -1) {
    s->trailer = 1;
    *off = o;
    return o == n ? 0 : -1;
  }
  if (nf < 0) return -1;
  for (int k = 0; k < nf; k++) {
    if (n - o < 4) return -1;
    int32_t fl = (int32_t)get_be32(p + o);
    o += 4;
    if (fl < -1 || (fl > 0 && (size_t)fl > n - o)) return -1;
    if (k < max_fields) {
      fields[k].len = fl;
      fields[k].data = fl >= 0 ? p + o : NULL;
    }
    if (fl > 0) o += (size_t)fl;
  }
  *start = *off;
  *off = o;
  *nfields = nf;
  return 1;
}

/* After the last PQgetCopyData of a COPY OUT (len its result: -1 done, -2
 * failed): reads the COPY's results. 0 when it ended well, else -1 with err
 * (what says which step failed). */
static int end_copy_out(PGconn *pg, int len, const char *what, db_error *err) {
  int failed = 0;
  PGresult *r;
  if (len == -2) {
    fail_pg(err, pg, NULL, what);
    failed = 1;
  }
  while ((r = PQgetResult(pg)) != NULL) {
    if (!failed && PQresultStatus(r) != PGRES_COMMAND_OK) {
      fail_pg(err, pg, r, what);
      failed = 1;
    }
    PQclear(r);
  }
  return failed ? -1 : 0;
}

/* ---- copy_checksum ------------------------------------------------------ */

int copy_checksum(PGconn *dst, const char *table, const char *const *columns, int ncolumns,
                  copy_stats *stats, db_error *err) {
  double t0 = th_clock_seconds();
  strbuf sql = {0};
  memset(stats, 0, sizeof *stats);
  strbuf_str(&sql, "COPY ");
  sb_ident(&sql, table);
  strbuf_str(&sql, " (");
  sb_column_list(&sql, columns, ncolumns);
  strbuf_str(&sql, ") TO STDOUT (FORMAT binary)");
  if (sql.oom) { free(sql.p); db_error_set(err, "53200", NULL, "out of memory"); return -1; }
  int started = start_copy(dst, sql.p, PGRES_COPY_OUT, "cannot read the target table back", err);
  free(sql.p);
  if (started) return -1;
  copy_stream cs = {0};
  int bad_layout = 0;
  char *msg;
  int len;
  while ((len = PQgetCopyData(dst, &msg, 0)) > 0) {
    const unsigned char *p = (const unsigned char *)msg;
    size_t off = 0, start;
    int nf, got = 0;
    while (!bad_layout && (got = copy_next_tuple(&cs, p, (size_t)len, &off, &start, NULL, 0, &nf)) == 1) {
      sum_add(&stats->sum_hi, &stats->sum_lo, XXH3_128bits(p + start, off - start));
      stats->rows++;
      stats->bytes += (int64_t)(off - start);
    }
    if (!bad_layout && got < 0) bad_layout = 1;
    PQfreemem(msg);
  }
  if (end_copy_out(dst, len, "cannot read the target table back", err)) return -1;
  if (bad_layout || !cs.trailer) {
    db_error_set(err, "XX000", NULL, "table %s: unexpected COPY data from the server", table);
    return -1;
  }
  stats->seconds = th_clock_seconds() - t0;
  return 0;
}

void copy_checksum_hex(const copy_stats *stats, char buf[33]) {
  snprintf(buf, 33, "%016llx%016llx", (unsigned long long)stats->sum_hi,
           (unsigned long long)stats->sum_lo);
}

/* ---- PostgreSQL -> SQLite: copy_reverse_table ----------------------- */

/* The COPY ... TO STDOUT statement of spec's columns. */
static char *copy_out_sql(const copy_spec *spec) {
  strbuf sql = {0};
  strbuf_str(&sql, "COPY ");
  sb_ident(&sql, spec->table);
  strbuf_str(&sql, " (");
  sb_column_list(&sql, spec->columns, spec->ncolumns);
  strbuf_str(&sql, ") TO STDOUT (FORMAT binary)");
  if (sql.oom) { free(sql.p); return NULL; }
  return sql.p;
}

/* Binds the decoded value v as parameter i of st. */
static int bind_decoded(sqlite3_stmt *st, int i, const copy_value *v) {
  switch (v->storage) {
    case SQLITE_INTEGER: return sqlite3_bind_int64(st, i, v->i);
    case SQLITE_FLOAT: return sqlite3_bind_double(st, i, v->f);
    case SQLITE_TEXT: return sqlite3_bind_text(st, i, (const char *)v->p, (int)v->n, SQLITE_STATIC);
    case SQLITE_BLOB:   /* a NULL pointer would bind NULL: an empty blob is a zeroblob */
      return v->n ? sqlite3_bind_blob(st, i, v->p, (int)v->n, SQLITE_STATIC) : sqlite3_bind_zeroblob(st, i, 0);
    default: return sqlite3_bind_null(st, i);
  }
}

/* The row's id for an error message: the decoded id column (integer or
 * text), else its number in the stream. */
static void reverse_row_id(const copy_column *cols, const copy_field *fields, int idk, int64_t row,
                           char *out, size_t size) {
  copy_decoded d;
  copy_refusal ve;
  d.own = NULL;
  snprintf(out, size, "%lld", (long long)row);
  if (idk >= 0 && copy_decode_field(&cols[idk], fields[idk].data, fields[idk].len, &d, &ve) == 0) {
    if (d.v.storage == SQLITE_INTEGER) snprintf(out, size, "%lld", (long long)d.v.i);
    if (d.v.storage == SQLITE_TEXT) snprintf(out, size, "'%.*s'", (int)(d.v.n > 60 ? 60 : d.v.n), (const char *)d.v.p);
  }
  copy_decoded_release(&d);
}

/* Stops a COPY OUT early: asks the server to cancel and reads what is left. */
static void cancel_copy_out(PGconn *pg) {
  PGcancel *c = PQgetCancel(pg);
  char buf[256];
  if (c) { PQcancel(c, buf, sizeof buf); PQfreeCancel(c); }
  char *msg;
  while (PQgetCopyData(pg, &msg, 0) > 0) PQfreemem(msg);
  PGresult *r;
  while ((r = PQgetResult(pg)) != NULL) PQclear(r);
}

int copy_reverse_table(PGconn *src, sqlite3 *dst, const copy_spec *spec, copy_stats *stats,
                       db_error *err) {
  double t0 = th_clock_seconds();
  int rc = -1, ncol = spec->ncolumns, copying = 0, idk = -1;
  sqlite3_stmt *ins = NULL;
  strbuf sql = {0};
  char *out_sql = NULL;
  copy_field *fields = NULL;
  copy_decoded *dec = NULL;   /* one per column: bound values live until the step */
  memset(stats, 0, sizeof *stats);

  copy_column *cols = describe_columns(src, spec, err);
  if (!cols) return -1;
  fields = calloc((size_t)ncol, sizeof *fields);
  dec = calloc((size_t)ncol, sizeof *dec);
  strbuf_str(&sql, "INSERT INTO ");
  sb_ident(&sql, spec->table);
  strbuf_str(&sql, " (");
  sb_column_list(&sql, spec->columns, ncol);
  strbuf_str(&sql, ") VALUES (");
  for (int k = 0; k < ncol; k++) strbuf_str(&sql, k ? ", ?" : "?");
  strbuf_str(&sql, ")");
  out_sql = copy_out_sql(spec);
  if (!fields || !dec || sql.oom || !out_sql) { db_error_set(err, "53200", NULL, "out of memory"); goto done; }
  for (int k = 0; k < ncol && spec->id_column; k++)
    if (strcmp(spec->columns[k], spec->id_column) == 0) idk = k;
  if (sqlite3_prepare_v2(dst, sql.p, (int)sql.len, &ins, NULL) != SQLITE_OK) {
    db_error_set(err, "42P01", "the snapshot is built by the migrations: check that they create this table",
         "cannot write table %s into the snapshot: %s", spec->table, sqlite3_errmsg(dst));
    goto done;
  }
  if (start_copy(src, out_sql, PGRES_COPY_OUT, "cannot read the source table", err)) goto done;
  copying = 1;

  copy_stream cs = {0};
  int64_t every = spec->progress_every > 0 ? spec->progress_every : 16384, rows = 0, bytes = 0;
  char *msg;
  int len;
  while ((len = PQgetCopyData(src, &msg, 0)) > 0) {
    const unsigned char *p = (const unsigned char *)msg;
    size_t off = 0, start;
    int nf, got;
    while ((got = copy_next_tuple(&cs, p, (size_t)len, &off, &start, fields, ncol, &nf)) == 1) {
      if (nf != ncol) { got = -1; break; }
      for (int k = 0; k < ncol; k++) {
        copy_refusal ve = {0};
        if (copy_decode_field(&cols[k], fields[k].data, fields[k].len, &dec[k], &ve) ||
            bind_decoded(ins, k + 1, &dec[k].v) != SQLITE_OK) {
          char id[96];
          reverse_row_id(cols, fields, idk, rows + 1, id, sizeof id);
          db_error_set(err, ve.why ? ve.sqlstate : "XX000", "fix that value in the source, or leave the table out (--tables); nothing was written",
               "%s.%s, row %s %s: the %s value cannot be stored in SQLite: %s", spec->table, cols[k].name,
               spec->id_column ? spec->id_column : "number", id, cols[k].type_name,
               ve.why ? ve.why : sqlite3_errmsg(dst));
          PQfreemem(msg);
          goto done;
        }
      }
      if (sqlite3_step(ins) != SQLITE_DONE) {
        char id[96];
        reverse_row_id(cols, fields, idk, rows + 1, id, sizeof id);
        db_error_set(err, "58030", "check the free space where the snapshot is written; nothing was replaced",
             "cannot write row %s %s of %s into the snapshot: %s",
             spec->id_column ? spec->id_column : "number", id, spec->table, sqlite3_errmsg(dst));
        PQfreemem(msg);
        goto done;
      }
      sqlite3_reset(ins);
      sum_add(&stats->sum_hi, &stats->sum_lo, XXH3_128bits(p + start, off - start));
      bytes += (int64_t)(off - start);
      rows++;
      if (spec->on_progress && rows % every == 0 && spec->on_progress(spec->ud, rows, bytes)) {
        db_error_set(err, "57014", NULL, "copy of %s cancelled", spec->table);
        PQfreemem(msg);
        goto done;
      }
    }
    PQfreemem(msg);
    if (got < 0) {
      db_error_set(err, "08P01", NULL, "table %s: unexpected COPY data from the server", spec->table);
      goto done;
    }
  }
  copying = 0;
  if (end_copy_out(src, len, "cannot read the source table", err)) goto done;
  if (!cs.trailer) {
    db_error_set(err, "08P01", NULL, "table %s: the server's COPY data ended early", spec->table);
    goto done;
  }
  if (spec->on_progress) spec->on_progress(spec->ud, rows, bytes);
  stats->rows = rows;
  stats->bytes = bytes;
  rc = 0;
done:
  if (copying) cancel_copy_out(src);
  sqlite3_finalize(ins);
  free_columns(cols, ncol);
  free(fields);
  for (int k = 0; dec && k < ncol; k++) copy_decoded_release(&dec[k]);
  free(dec);
  free(sql.p);
  free(out_sql);
  stats->seconds = th_clock_seconds() - t0;
  if (rc) stats->sum_hi = stats->sum_lo = 0;
  return rc;
}

int copy_sqlite_checksum(sqlite3 *db, PGconn *pg, const copy_spec *spec, copy_stats *stats,
                         db_error *err) {
  double t0 = th_clock_seconds();
  int rc = -1, ncol = spec->ncolumns, s;
  sqlite3_stmt *st = NULL;
  strbuf sql = {0};
  XXH3_state_t *hs = XXH3_createState();
  memset(stats, 0, sizeof *stats);
  copy_column *cols = describe_columns(pg, spec, err);
  if (!cols) goto done;
  strbuf_str(&sql, "SELECT ");
  sb_column_list(&sql, spec->columns, ncol);
  strbuf_str(&sql, " FROM ");
  sb_ident(&sql, spec->table);
  if (sql.oom || !hs) { db_error_set(err, "53200", NULL, "out of memory"); goto done; }
  if (sqlite3_prepare_v2(db, sql.p, (int)sql.len, &st, NULL) != SQLITE_OK) {
    db_error_set(err, "42P01", NULL, "cannot read table %s back from the snapshot: %s", spec->table,
                 sqlite3_errmsg(db));
    goto done;
  }
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    unsigned char head[4];
    XXH3_128bits_reset(hs);
    put_be16(head, (uint16_t)ncol);
    XXH3_128bits_update(hs, head, 2);
    int64_t bytes = 2;
    for (int k = 0; k < ncol; k++) {
      copy_value v;
      copy_field f;
      copy_refusal ve;
      f.own = NULL;
      read_value(st, k, &v);
      if (copy_encode_value(&cols[k], &v, &f, &ve)) {
        copy_field_release(&f);
        db_error_set(err, "XX000", NULL, "table %s did not verify: the snapshot's %s of row %lld does not convert back (%s)",
                     spec->table, cols[k].name, (long long)stats->rows + 1, ve.why);
        goto done;
      }
      put_be32(head, (uint32_t)f.len);
      XXH3_128bits_update(hs, head, 4);
      if (f.len > 0) XXH3_128bits_update(hs, f.data, (size_t)f.len);
      copy_field_release(&f);
      bytes += 4 + (f.len > 0 ? f.len : 0);
    }
    sum_add(&stats->sum_hi, &stats->sum_lo, XXH3_128bits_digest(hs));
    stats->rows++;
    stats->bytes += bytes;
  }
  if (s != SQLITE_DONE) {
    db_error_set(err, "58030", NULL, "cannot read table %s back from the snapshot: %s", spec->table,
                 sqlite3_errmsg(db));
    goto done;
  }
  rc = 0;
done:
  sqlite3_finalize(st);
  XXH3_freeState(hs);
  free_columns(cols, ncol);
  free(sql.p);
  stats->seconds = th_clock_seconds() - t0;
  return rc;
}

/* ---- the snapshot file ------------------------------------------------ */

/* Runs sql on db; 0, or the SQLite result code. */
static int exec_quiet(sqlite3 *db, const char *sql) {
  return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

int copy_snapshot_lock(const char *path, sqlite3 **held, db_error *err) {
  sqlite3 *db = NULL;
  *held = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
  if (rc == SQLITE_OK) rc = exec_quiet(db, "PRAGMA locking_mode=EXCLUSIVE");
  /* leaving WAL folds the -wal into the file, and needs every other
   * connection gone; BEGIN EXCLUSIVE then holds the file until closed */
  if (rc == SQLITE_OK) rc = exec_quiet(db, "PRAGMA journal_mode=DELETE");
  if (rc == SQLITE_OK) rc = exec_quiet(db, "BEGIN EXCLUSIVE");
  if (rc == SQLITE_OK) rc = exec_quiet(db, "SELECT count(*) FROM sqlite_master");
  if (rc == SQLITE_OK) {
    sqlite3_stmt *st = NULL;   /* still in WAL: another connection kept it there */
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    if (st && sqlite3_step(st) == SQLITE_ROW &&
        strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0) rc = SQLITE_BUSY;
    sqlite3_finalize(st);
  }
  if (rc == SQLITE_OK) {
    *held = db;
    return 0;
  }
  int code = db ? sqlite3_errcode(db) : rc;
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED || code == SQLITE_BUSY || code == SQLITE_LOCKED)
    db_error_set(err, "55006", "stop the program using it (the app? sqlite3?) and run the copy again",
                 "the target %s is open in another process: it was not replaced", path);
  else if (rc == SQLITE_NOTADB || code == SQLITE_NOTADB)
    db_error_set(err, "26000", "choose another --to file, or move this one away yourself",
                 "the target %s is not a SQLite database: it was not replaced", path);
  else
    db_error_set(err, "58030", NULL, "cannot lock the target %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  sqlite3_close(db);
  return -1;
}

/* fsyncs the file or directory at path: 0, or -1 (errno). */
static int fsync_path(const char *path, int flags) {
  int fd = open(path, flags);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

int copy_snapshot_install(const char *tmp, const char *path, db_error *err) {
  static const char *const sides[] = {"-wal", "-shm", "-journal"};
  char side[4096], dir[4096];
  struct stat sb;
  if (strlen(path) + 10 > sizeof side || strlen(tmp) + 10 > sizeof side) {
    db_error_set(err, "58030", NULL, "the target's path is too long");
    return -1;
  }
  snprintf(side, sizeof side, "%s-wal", tmp);
  if (stat(side, &sb) == 0 && sb.st_size > 0) {
    db_error_set(err, "55000", NULL, "the snapshot %s still has a -wal file: a connection to it is open", tmp);
    return -1;
  }
  for (int k = 0; k < 2; k++) {
    snprintf(side, sizeof side, "%s%s", tmp, sides[k]);
    unlink(side);
  }
  if (fsync_path(tmp, O_RDONLY)) {
    db_error_set(err, "58030", NULL, "cannot write the snapshot %s to disk: %s", tmp, strerror(errno));
    return -1;
  }
  for (int k = 0; k < 3; k++) {
    snprintf(side, sizeof side, "%s%s", path, sides[k]);
    if (unlink(side) && errno != ENOENT) {
      db_error_set(err, "58030", NULL, "cannot remove %s: %s; the target was not replaced", side, strerror(errno));
      return -1;
    }
  }
  if (rename(tmp, path)) {
    db_error_set(err, "58030", NULL, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    return -1;
  }
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == dir) dir[1] = '\0';
  else *slash = '\0';
  fsync_path(dir, O_RDONLY | O_DIRECTORY);  /* best effort: the rename is done */
  return 0;
}
