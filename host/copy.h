/*
 * copy.h: the bulk copy engine: every row of one SQLite table into one
 * PostgreSQL table, each value converted exactly by the TARGET column's type,
 * streamed through COPY ... FROM STDIN (FORMAT binary), and the checksum that
 * proves what arrived; the pre-flight (copy_check_table), which runs
 * every value through the same conversion without writing anything; and
 * the other direction (copy_reverse_table): one PostgreSQL table streamed
 * with COPY ... TO STDOUT (FORMAT binary) into a SQLite table, each field
 * decoded into the value the app stores (COPY_TYPES' decoders), checksummed
 * with the same scheme on both sides; plus the snapshot file's lock and its
 * installation (copy_snapshot_lock, copy_snapshot_install).
 *
 * The engine works on native handles (sqlite3 *, PGconn *) and knows nothing
 * of Lua; transactions belong to the caller: it runs one COPY per table and
 * leaves BEGIN / COMMIT / ROLLBACK (and the source's read snapshot) to whoever
 * orchestrates the copy (scripts/copy.lua through lua_copy.c, or a C test).
 *
 * The checksum ("canonical typed values"): each row is encoded as a tuple of
 * PostgreSQL's binary COPY format (int16 field count, then per field an int32
 * length, -1 for NULL, and the type's binary representation); the row's hash
 * is XXH3-128 of those bytes; the table's checksum is the sum of the row
 * hashes (two 64-bit lanes, each modulo 2^64), so row order does not matter.
 * The source side hashes what it sends; the target side hashes what the
 * server sends back from the table (COPY ... TO STDOUT (FORMAT binary)): the
 * two agree only when every stored value is exactly the converted one.
 *
 * Conventions: functions return 0 on success and -1 on error, with err filled
 * (message naming table, column, row id and value for a value that cannot be
 * converted; sqlstate 22xxx for bad data). Nothing here allocates anything
 * that outlives a call.
 */
#ifndef TODOHOST_COPY_H
#define TODOHOST_COPY_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "db.h"

/* Every target column type the engine converts to, one entry each:
 *   X(NAME, encoder, "typnames")
 * NAME gives copy_type's COPY_NAME; encoder names copy.c's encode_<encoder>,
 * which converts a SQLite value into the type's binary COPY field (the
 * bytes sent, and the bytes both sides' checksums hash), and its
 * decode_<encoder>, the way back (a field into the SQLite value the app
 * stores, which encode_<encoder> turns into the same bytes); typnames are the
 * pg_catalog type names (pg_type.typname, domains resolved to their base)
 * that detect it in the target's catalog, space-separated. Enum types
 * (typtype 'e', any schema) are COPY_ENUM, sent as their label, which
 * must be one of copy_column.labels. Arrays (typcategory 'A') are
 * COPY_ARRAY, of the element type COPY_TYPES finds for their element
 * (copy_column.elem; an enum too). A new type is one entry
 * here, its encoder and decoder in copy.c, and its test. */
#define COPY_TYPES(X)                                                  \
  X(BOOL, bool, "bool")                                                \
  X(INT2, int, "int2")                                                 \
  X(INT4, int, "int4")                                                 \
  X(INT8, int, "int8")                                                 \
  X(FLOAT4, float, "float4")                                           \
  X(FLOAT8, float, "float8")                                           \
  X(TEXT, text, "text varchar json") /* UTF-8, no NUL; varchar(n) */   \
  X(BYTEA, bytea, "bytea")                                             \
  X(DATE, date, "date")                                                \
  X(TIMESTAMP, datetime, "timestamp")                                  \
  X(TIMESTAMPTZ, datetime, "timestamptz")                              \
  X(UUID, uuid, "uuid")                                                \
  X(NUMERIC, numeric, "numeric") /* exact; numeric(p, s) checked */    \
  X(TIME, time, "time")          /* microseconds since midnight */    \
  X(CHAR, char, "bpchar")        /* char(n): padded with spaces */    \
  X(JSONB, jsonb, "jsonb")       /* version 1, PostgreSQL's own form */ \
  X(ARRAY, array, "")            /* any T[] of an element type here  */ \
  X(ENUM, enum, "")              /* any enum type: one of its labels */

typedef enum copy_type {
  COPY_UNSUPPORTED = 0,
#define COPY_TYPE_ENUM(name, encoder, typnames) COPY_##name,
  COPY_TYPES(COPY_TYPE_ENUM)
#undef COPY_TYPE_ENUM
  COPY_TYPE_COUNT
} copy_type;

/* One target column, as read from the PostgreSQL catalog. */
typedef struct copy_column {
  char name[64];        /* NAMEDATALEN */
  char type_name[64];   /* format_type(): "character varying(200)", ... */
  copy_type type;
  int32_t max_chars;    /* varchar(n), char(n): n characters; -1 when unlimited */
  int32_t precision;    /* numeric(p, s): p, or -1 when unconstrained */
  int32_t scale;        /* numeric(p, s): s */
  copy_type elem;       /* arrays (COPY_ARRAY): the element type; the fields
                           above then describe an element */
  uint32_t elem_oid;    /* arrays: the element type's oid */
  int not_null;
  uint32_t enum_oid;    /* enums and arrays of one: the enum type's oid */
  int nlabels;          /* and its labels, in their order: nlabels texts */
  char *labels;         /* each NUL-terminated, one after the other; owned:
                           malloc'ed by copy_describe, freed by
                           copy_columns_release (NULL: none) */
} copy_column;

/* Frees what copy_describe allocated in cols[0..n) (their labels); the
 * columns stay usable, without labels. */
void copy_columns_release(copy_column *cols, int n);

/* Called every spec->progress_every rows and once at the end; a non-zero
 * return stops the copy (the error is "copy cancelled"; the callback keeps
 * its own reason). */
typedef int (*copy_progress_fn)(void *ud, int64_t rows, int64_t bytes);

typedef struct copy_spec {
  const char *table;              /* same name on both sides */
  const char *const *columns;     /* the columns to copy, same names */
  int ncolumns;
  const char *id_column;          /* names a row in errors; NULL: SQLite rowid */
  int freeze;                     /* COPY ... FREEZE: the table was created or
                                     truncated in the current transaction */
  int64_t progress_every;         /* rows between callbacks; 0: 16384 */
  copy_progress_fn on_progress;   /* may be NULL */
  void *ud;
} copy_spec;

typedef struct copy_stats {
  int64_t rows;
  int64_t bytes;                  /* COPY data bytes (binary tuples) */
  uint64_t sum_hi, sum_lo;        /* the checksum, see above */
  double seconds;
} copy_stats;

/* Reads the columns of `table` in the target catalog (pg_attribute), domains
 * resolved to their base type. columns/ncolumns select and order them; with
 * columns == NULL every column is described. Writes at most max entries to
 * out and returns the number of columns (which may exceed max), or -1 (table
 * or a selected column missing, SQL error). A type the engine cannot convert
 * is reported with type COPY_UNSUPPORTED, not as an error. An enum's labels
 * are read too (one more query per enum column): release the columns
 * written with copy_columns_release (on error nothing is left to release). */
int copy_describe(PGconn *dst, const char *table, const char *const *columns,
                  int ncolumns, copy_column *out, int max, db_error *err);

/* Copies every row of spec->table from src into dst with one COPY. On error
 * the COPY is aborted (the caller's transaction is then failed and must be
 * rolled back) and -1 returned. stats (never NULL) gets rows, bytes, the
 * source-side checksum and the elapsed time. */
int copy_table(sqlite3 *src, PGconn *dst, const copy_spec *spec,
               copy_stats *stats, db_error *err);

/* The target-side count and checksum of the same columns of `table`, read
 * back with COPY ... TO STDOUT (FORMAT binary). */
int copy_checksum(PGconn *dst, const char *table, const char *const *columns,
                  int ncolumns, copy_stats *stats, db_error *err);

/* The checksum as 32 lowercase hex digits in buf (33 bytes). */
void copy_checksum_hex(const copy_stats *stats, char buf[33]);


/* ---- the pre-flight: every value through the same conversion ----------- */

/* Why the copy would refuse a value, by what a user fixes in the source. */
typedef enum copy_problem {
  COPY_PROBLEM_OTHER = 0,    /* anything else: the sample's reason says */
  COPY_PROBLEM_NULL,         /* NULL in a NOT NULL column */
  COPY_PROBLEM_TOO_LONG,     /* text longer than the column's varchar(n) */
  COPY_PROBLEM_UTF8,         /* text that is not UTF-8, or holds a NUL byte */
  COPY_PROBLEM_TIME_NUMBER,  /* a number (or a numeric text) in a date/timestamp column */
  COPY_PROBLEM_TEXT_BOOL,    /* 'true', 'yes', 'f', 'off'... in a boolean column */
  COPY_PROBLEM_RANGE,        /* a number the column's type cannot hold (numeric(p, s), int2...) */
  COPY_PROBLEM_COUNT
} copy_problem;

/* The name of a problem kind ("other", "null", "too_long", "utf8",
 * "time_number", "text_bool"); static. */
const char *copy_problem_name(copy_problem p);

#define COPY_CHECK_SAMPLES 10

/* One refused value, rendered as the copy's own error message renders it
 * (quoted, control characters and bytes that are not UTF-8 as \xNN, cut
 * after about 60 bytes). */
typedef struct copy_check_sample {
  char id[96];             /* the row id (spec->id_column, or the rowid) */
  char value[160];
  int storage;             /* the value's SQLite storage class */
  copy_problem problem;
  const char *sqlstate;    /* static */
  char why[96];
} copy_check_sample;

/* What the pre-flight found in one column. */
typedef struct copy_check_column {
  copy_column col;                       /* the target column, as described */
  int64_t storage[6];                    /* values per SQLite storage class:
                                            index SQLITE_INTEGER (1) to SQLITE_NULL (5) */
  int64_t refused;                       /* values the copy would refuse */
  int64_t problems[COPY_PROBLEM_COUNT];  /* the refused values by kind */
  int64_t retyped;                       /* accepted, stored as another kind: an
                                            integer in a text column (its decimal
                                            text), a text in a bytea column (its bytes) */
  int nsamples;                          /* the first refused values, in row order */
  copy_check_sample samples[COPY_CHECK_SAMPLES];
} copy_check_column;

/* The pre-flight of copy_table: reads every row of spec->table from src
 * (the same SELECT) and runs every value through copy_encode_value for the
 * target's column types (described from dst; nothing is written to dst),
 * without stopping at a refused value. out (spec->ncolumns entries) gets
 * what each column holds; stats gets rows, bytes (what the copy would send)
 * and seconds, no checksum. spec->freeze is ignored; on_progress as for
 * copy_table. Returns 0 when every row was read (refused values are in out,
 * not an error; out[].col has no labels any more), or -1 with err (the
 * target's column missing or of a type the copy cannot convert, the source
 * unreadable, cancelled). Memory stays
 * flat: nothing is kept per row beyond the samples. */
int copy_check_table(sqlite3 *src, PGconn *dst, const copy_spec *spec,
                     copy_check_column *out, copy_stats *stats, db_error *err);

/* ---- conversions, exposed for tests ----------------------------------- */

/* One source value, as SQLite stores it. */
typedef struct copy_value {
  int storage;                 /* SQLITE_NULL, _INTEGER, _FLOAT, _TEXT or _BLOB */
  int64_t i;                   /* INTEGER */
  double f;                    /* FLOAT */
  const unsigned char *p;      /* TEXT (UTF-8 expected) and BLOB: n bytes */
  size_t n;
} copy_value;

/* One field of a binary COPY tuple: its int32 length (-1 for NULL) and the
 * len bytes of the type's binary representation. */
typedef struct copy_field {
  int32_t len;
  const unsigned char *data;   /* fixed[] below, or the value's own bytes */
  unsigned char fixed[520];    /* fixed sizes, and numerics up to 1000 digits */
  unsigned char *own;          /* longer encodings (a padded char(n)): grown by the
                                  encoder, freed by copy_field_release; NULL at first */
  size_t own_cap;
} copy_field;

/* Frees what an encoder grew in f (f->own); f stays usable. */
void copy_field_release(copy_field *f);

/* Why a value cannot be stored: a SQLSTATE (22xxx bad data, 23502 NULL in
 * a NOT NULL column, 54000 too long, 0A000 unsupported type) and a short
 * reason, a static text or buf. */
typedef struct copy_refusal {
  const char *sqlstate;
  const char *why;
  char buf[96];
} copy_refusal;

/* The conversion copy_table applies to every value: v converted exactly
 * into col's type (col->type, max_chars, not_null), as the field binary
 * COPY sends for it. Returns 0 with *out filled (out->data may point into
 * v->p: it lives as long as v does, and as out), or 1 with *ve filled when
 * the value cannot be stored in that column without changing it. Pure: no
 * I/O, no state; the one allocation is out->own, for a char(n) value longer
 * than out->fixed once padded (out must start with own NULL, and be
 * released with copy_field_release). Numerics: exact decimal text, an
 * integer or a real (its shortest decimal text), NaN, Infinity; more than
 * 1000 significant digits are refused. */
int copy_encode_value(const copy_column *col, const copy_value *v, copy_field *out,
                      copy_refusal *ve);

/* Parses a SQLite datetime text: YYYY-MM-DD, optionally followed by ' ' or
 * 'T' and HH:MM[:SS[.fraction]], optionally followed by Z or +HH[:MM] /
 * -HH[:MM] (naive means UTC). Fraction digits past the sixth must be zero.
 * Writes microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's epoch) and
 * returns 0, or returns -1 and a short reason in *why. */
int copy_parse_datetime(const char *s, size_t n, int64_t *usec, const char **why);

/* Parses YYYY-MM-DD into days since 2000-01-01; 0, or -1 and *why. */
int copy_parse_date(const char *s, size_t n, int32_t *days, const char **why);

/* Checks that s[0..n) is UTF-8 without NUL bytes (no overlong forms, no
 * surrogates, nothing past U+10FFFF). Returns the number of characters, or
 * -1 with *why and the byte offset of the first bad byte in *at. */
int64_t copy_utf8_check(const unsigned char *s, size_t n, const char **why, size_t *at);

/* The kind of problem of a value copy_encode_value refused for col (ve as
 * it filled it): NULL for a NULL, TOO_LONG for 22001, UTF8 for 22021,
 * TIME_NUMBER for an integer, real or decimal text in a date or timestamp
 * column, TEXT_BOOL for a word such as 'true', 'No', 'f', 'on' in a boolean
 * column, OTHER otherwise. Pure. */
copy_problem copy_classify(const copy_column *col, const copy_value *v, const copy_refusal *ve);


/* ---- PostgreSQL -> SQLite ---------------------------------------------- */

/* A field decoded into a SQLite value: v.p points into the field's bytes
 * (text, bytea) or into buf (dates, timestamps, uuids). */
typedef struct copy_decoded {
  copy_value v;
  unsigned char buf[48];
  unsigned char *own;   /* an array's JSON text: NULL at first, grown by the
                           decoder, freed by copy_decoded_release */
} copy_decoded;

/* Frees what a decoder grew in d (d->own). */
void copy_decoded_release(copy_decoded *d);

/* The way back of copy_encode_value: the binary COPY field p[0..len) of
 * col's type (len -1: NULL) as the SQLite value the app stores (booleans 0
 * and 1, integers, reals, UTF-8 text, blobs, dates YYYY-MM-DD, timestamps
 * in UTC as SQLAlchemy writes them, YYYY-MM-DD HH:MM:SS.ffffff, uuids as 32
 * hex digits), such that copy_encode_value(col, &out->v) gives back
 * exactly p[0..len). Returns 0, or 1 with *ve when SQLite (or that text)
 * cannot hold it: NaN, a date outside 0001-9999 or infinite, a field of the
 * wrong size, text that is not UTF-8. Pure. */
int copy_decode_field(const copy_column *col, const unsigned char *p, int32_t len, copy_decoded *out,
                      copy_refusal *ve);

/* Reading a binary COPY ... TO STDOUT stream, one CopyData message at a
 * time (the server sends whole tuples per message; the first one starts
 * with the header). Zero-initialize, then call copy_next_tuple on each
 * message. */
typedef struct copy_stream {
  int header_done;
  int trailer;          /* the end marker (-1 field count) was seen */
} copy_stream;

/* Reads the next tuple of message p[0..n) at *off (0 at a new message):
 * returns 1 with nfields and fields[0..min(nfields, max_fields)) filled
 * (data pointing into p) and *off past the tuple (the tuple's bytes are
 * p[start..*off), start being *off at the call, after the header for the
 * first tuple: *start says where), 0 at the end of the message (or after
 * the trailer), -1 when the bytes are not a well-formed binary COPY
 * stream (truncated field, bad header, data after the trailer). Pure. */
int copy_next_tuple(copy_stream *s, const unsigned char *p, size_t n, size_t *off, size_t *start,
                    copy_field *fields, int max_fields, int *nfields);

/* Copies every row of spec->table (spec->columns) from src, read with one
 * COPY ... TO STDOUT (FORMAT binary) in the caller's transaction (a
 * REPEATABLE READ snapshot, say), into the same table of dst with one
 * prepared INSERT per row, inside the caller's SQLite transaction. Types
 * come from src's catalog; a column of a type the copy cannot convert is
 * an error naming it (0A000). stats gets rows, bytes, and the source-side
 * checksum: the hash of the tuples as the server sent them, the same
 * checksum copy_checksum gives. spec->freeze is ignored. On error the COPY
 * is drained, nothing is rolled back (the caller does), -1. */
int copy_reverse_table(PGconn *src, sqlite3 *dst, const copy_spec *spec, copy_stats *stats,
                       db_error *err);

/* The SQLite side's count and checksum of spec->table's spec->columns in
 * db: every value encoded by the type of the same column in pg's catalog
 * (as copy_table would send it) and hashed as copy_checksum hashes what
 * the server sends, so that it equals the PostgreSQL table's checksum
 * exactly when every value is the same. A value that does not encode is
 * an error (it cannot be the one that was copied). */
int copy_sqlite_checksum(sqlite3 *db, PGconn *pg, const copy_spec *spec, copy_stats *stats,
                         db_error *err);

/* Takes the existing SQLite file at path for replacement: opens it with
 * an exclusive lock that is kept (locking_mode EXCLUSIVE, BEGIN
 * EXCLUSIVE), after folding its -wal into it and leaving WAL mode (which
 * SQLite refuses while another connection has the file open), so that the
 * file alone holds every committed row and no -wal is needed any more.
 * Returns 0 with *held (close it with sqlite3_close after
 * copy_snapshot_install, or to give up), or -1 with err: 55006 when
 * another process has it open or locked, 26000 when it is not a SQLite
 * database. */
int copy_snapshot_lock(const char *path, sqlite3 **held, db_error *err);

/* Puts the finished snapshot tmp in place of path: fsyncs tmp (which must
 * have no -wal left: its connections closed), removes path's -wal, -shm and
 * -journal (so none is applied to the new file), renames tmp over path and
 * fsyncs the directory. Returns 0, or -1 with err (nothing renamed). */
int copy_snapshot_install(const char *tmp, const char *path, db_error *err);

#endif
