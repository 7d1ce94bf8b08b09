/*
 * fuzz_copy_convert.c: the copy engine's value conversion
 * (copy_encode_value), for every target type.
 *
 * Input: byte 0 picks the target type (every copy_type, unsupported too),
 * byte 1 the SQLite storage class, byte 2 the column's NOT NULL flag and
 * varchar(n) limit; the rest is the value: 8 bytes of an integer or a
 * double (big-endian), or the bytes of a text or blob.
 * Properties: it never crashes or reads out of bounds; a value accepted is
 * encoded with the length framing of its type (fixed sizes; text and bytea
 * their own bytes; -1 only for a NULL in a nullable column); a value
 * refused gets a SQLSTATE and a one-line reason; and what was accepted
 * decodes back to the value (integers, booleans, floats, text, bytea,
 * uuids, dates; timestamps re-formatted and parsed again give the same
 * instant). A refused value is classified (copy_classify, the pre-flight's
 * kinds) consistently with the refusal: NULL exactly for a NULL, TOO_LONG
 * exactly for 22001, UTF8 exactly for 22021, TIME_NUMBER only in a date or
 * timestamp column, TEXT_BOOL only for a short text in a boolean column.
 */
#include <math.h>
#include <sqlite3.h>

#include "fuzz.h"
#include "copy.h"
#include "fuzz_copy.h"
#include "db_int.h"

static uint64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int k = 0; k < n; k++) v = v << 8 | p[k];
  return v;
}

static int fixed_length(copy_type t) {
  switch (t) {
    case COPY_BOOL: return 1;
    case COPY_INT2: return 2;
    case COPY_INT4: case COPY_FLOAT4: case COPY_DATE: return 4;
    case COPY_INT8: case COPY_FLOAT8: case COPY_TIMESTAMP: case COPY_TIMESTAMPTZ: case COPY_TIME: return 8;
    case COPY_UUID: return 16;
    default: return -1;
  }
}

static void check_refusal(const copy_refusal *ve) {
  FUZZ_REQUIRE(ve->sqlstate && strlen(ve->sqlstate) == 5, "a refusal without a SQLSTATE");
  for (int k = 0; k < 5; k++)
    FUZZ_REQUIRE((ve->sqlstate[k] >= '0' && ve->sqlstate[k] <= '9') ||
                 (ve->sqlstate[k] >= 'A' && ve->sqlstate[k] <= 'Z'), "SQLSTATE %s", ve->sqlstate);
  FUZZ_REQUIRE(ve->why && ve->why[0] && !strchr(ve->why, '\n'), "a refusal without a one-line reason");
}

static void check_classify(const copy_column *col, const copy_value *v, const copy_refusal *ve) {
  copy_problem p = copy_classify(col, v, ve);
  FUZZ_REQUIRE(p >= COPY_PROBLEM_OTHER && p < COPY_PROBLEM_COUNT, "problem %d", (int)p);
  FUZZ_REQUIRE(strcmp(copy_problem_name(p), "other") != 0 || p == COPY_PROBLEM_OTHER, "problem name");
  FUZZ_REQUIRE((p == COPY_PROBLEM_NULL) == (v->storage == SQLITE_NULL), "NULL kind");
  if (v->storage == SQLITE_NULL) return;
  FUZZ_REQUIRE((p == COPY_PROBLEM_TOO_LONG) == (strcmp(ve->sqlstate, "22001") == 0), "too-long kind");
  FUZZ_REQUIRE((p == COPY_PROBLEM_UTF8) == (strcmp(ve->sqlstate, "22021") == 0), "UTF-8 kind");
  if (p == COPY_PROBLEM_TIME_NUMBER)
    FUZZ_REQUIRE(col->type == COPY_DATE || col->type == COPY_TIMESTAMP || col->type == COPY_TIMESTAMPTZ ||
                 col->type == COPY_TIME,
                 "a time number in type %d", (int)col->type);
  if (p == COPY_PROBLEM_TEXT_BOOL)
    FUZZ_REQUIRE(col->type == COPY_BOOL && v->storage == SQLITE_TEXT && v->n >= 1 && v->n <= 5,
                 "a text boolean of %zu bytes in type %d", v->n, (int)col->type);
}

static void check_uuid(const copy_value *v, const unsigned char *u) {
  if (v->storage == SQLITE_BLOB) {
    FUZZ_REQUIRE(memcmp(u, v->p, 16) == 0, "uuid blob changed");
    return;
  }
  static const char hex[] = "0123456789abcdef";
  size_t k = 0;
  for (int b = 0; b < 32; b++) {
    while (v->p[k] == '-') k++;
    char c = (char)v->p[k++];
    if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
    FUZZ_REQUIRE(c == hex[(u[b / 2] >> (b % 2 ? 0 : 4)) & 15], "uuid digit %d", b);
  }
}

/* Decoded as todohost reads it back from PostgreSQL (db_pg.c), the
 * instant parses again to itself. */
static void check_datetime(const copy_column *col, const copy_field *f) {
  int64_t us = (int64_t)be(f->data, 8);
  char text[64];
  int n = db_format_pg_timestamp(us, col->type == COPY_TIMESTAMPTZ, text, sizeof text);
  if (strstr(text, " BC") || n > 32) return;   /* an offset moved it out of the four-digit years */
  int64_t again;
  const char *why;
  FUZZ_REQUIRE(copy_parse_datetime(text, (size_t)n, &again, &why) == 0 && again == us,
               "%s does not read back as the same instant", text);
}

static void check_date(const copy_value *v, const copy_field *f) {
  int32_t days = (int32_t)be(f->data, 4);
  char text[32];
  db_format_pg_date(days, text, sizeof text);
  FUZZ_REQUIRE(v->n == 10 && memcmp(text, v->p, 10) == 0, "date %.*s came back as %s",
               (int)v->n, (const char *)v->p, text);
}

/* numeric, time, char(n), jsonb, arrays: the field, when the way back takes it, decodes
 * to a value that encodes to the very same bytes. */
static void check_decodes_back(const copy_column *col, const copy_field *f) {
  copy_decoded d;
  copy_refusal ve = {0};
  d.own = NULL;
  if (copy_decode_field(col, f->data, f->len, &d, &ve)) {
    copy_decoded_release(&d);
    return;
  }
  copy_field back;
  back.own = NULL;
  FUZZ_REQUIRE(copy_encode_value(col, &d.v, &back, &ve) == 0, "type %d: decoded but refused: %s", (int)col->type, ve.why);
  FUZZ_REQUIRE(back.len == f->len && memcmp(back.data, f->data, (size_t)f->len) == 0, "type %d: bytes changed", (int)col->type);
  copy_field_release(&back);
  copy_decoded_release(&d);
}

/* The field is one of col's labels. */
static int is_label(const copy_column *col, const copy_field *f) {
  const char *label = col->labels;
  for (int k = 0; k < col->nlabels; k++, label += strlen(label) + 1)
    if (strlen(label) == (size_t)f->len && (f->len == 0 || memcmp(label, f->data, (size_t)f->len) == 0)) return 1;
  return 0;
}

/* What was accepted decodes back to v. */
static void check_round_trip(const copy_column *col, const copy_value *v, const copy_field *f) {
  switch (col->type) {
    case COPY_BOOL: FUZZ_REQUIRE(f->data[0] == (unsigned char)v->i && v->i >= 0 && v->i <= 1, "bool"); break;
    case COPY_INT2: FUZZ_REQUIRE((int16_t)be(f->data, 2) == v->i, "int2"); break;
    case COPY_INT4: FUZZ_REQUIRE((int32_t)be(f->data, 4) == v->i, "int4"); break;
    case COPY_INT8: FUZZ_REQUIRE((int64_t)be(f->data, 8) == v->i, "int8"); break;
    case COPY_FLOAT4: case COPY_FLOAT8: {
      double want = v->storage == SQLITE_FLOAT ? v->f : (double)v->i, got;
      if (col->type == COPY_FLOAT8) {
        uint64_t bits = be(f->data, 8);
        memcpy(&got, &bits, 8);
      } else {
        uint32_t bits = (uint32_t)be(f->data, 4);
        float g;
        memcpy(&g, &bits, 4);
        got = g;
      }
      FUZZ_REQUIRE(got == want || (isnan(got) && isnan(want)), "float came back as %.17g, not %.17g", got, want);
      if (v->storage == SQLITE_INTEGER) FUZZ_REQUIRE((int64_t)got == v->i, "integer in a float column");
      break;
    }
    case COPY_TEXT:
    case COPY_ENUM:
      if (col->type == COPY_ENUM) FUZZ_REQUIRE(is_label(col, f), "an enum value that is not a label accepted");
      if (v->storage == SQLITE_INTEGER) {
        char num[32];
        int n = snprintf(num, sizeof num, "%lld", (long long)v->i);
        FUZZ_REQUIRE(f->len == n && memcmp(f->data, num, (size_t)n) == 0, "integer as text");
      } else {
        FUZZ_REQUIRE((size_t)f->len == v->n && (v->n == 0 || memcmp(f->data, v->p, v->n) == 0), "text changed");
        FUZZ_REQUIRE(memchr(v->p, 0, v->n) == NULL, "text with a NUL byte accepted");
      }
      if (col->max_chars >= 0) {
        int64_t chars = 0;
        for (int32_t k = 0; k < f->len; k++) chars += (f->data[k] & 0xc0) != 0x80;
        FUZZ_REQUIRE(chars <= col->max_chars, "%lld characters in varchar(%d)", (long long)chars, (int)col->max_chars);
      }
      break;
    case COPY_BYTEA:
      FUZZ_REQUIRE((size_t)f->len == v->n && (v->n == 0 || memcmp(f->data, v->p, v->n) == 0), "bytea changed");
      break;
    case COPY_UUID: check_uuid(v, f->data); break;
    case COPY_DATE: check_date(v, f); break;
    case COPY_TIMESTAMP: case COPY_TIMESTAMPTZ: check_datetime(col, f); break;
    case COPY_NUMERIC: case COPY_TIME: case COPY_CHAR: case COPY_JSONB: case COPY_ARRAY: check_decodes_back(col, f); break;
    default: FUZZ_REQUIRE(0, "type %d accepted", (int)col->type);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3 || size > 4096) return 0;
  copy_column col;
  fuzz_column(&col, data[0], data[2]);
  copy_value v = {.storage = 1 + data[1] % 5};
  const uint8_t *rest = data + 3;
  size_t n = size - 3;
  unsigned char *copy = NULL;
  if (v.storage == SQLITE_INTEGER || v.storage == SQLITE_FLOAT) {
    unsigned char b[8] = {0};
    memcpy(b, rest, n < 8 ? n : 8);
    uint64_t bits = be(b, 8);
    if (v.storage == SQLITE_INTEGER) v.i = (int64_t)bits;
    else memcpy(&v.f, &bits, 8);
  } else if (v.storage == SQLITE_TEXT || v.storage == SQLITE_BLOB) {
    copy = malloc(n ? n : 1);   /* exactly n bytes: reading past them is caught */
    if (!copy) abort();
    memcpy(copy, rest, n);
    v.p = copy;
    v.n = n;
  }
  copy_field f;
  copy_refusal ve;
  memset(&f, 0xAA, sizeof f);
  f.own = NULL;
  memset(&ve, 0, sizeof ve);
  int rc = copy_encode_value(&col, &v, &f, &ve);
  FUZZ_REQUIRE(rc == 0 || rc == 1, "returned %d", rc);
  if (rc == 1) {
    check_refusal(&ve);
    check_classify(&col, &v, &ve);
  } else if (v.storage == SQLITE_NULL) {
    FUZZ_REQUIRE(f.len == -1 && !col.not_null, "NULL framing");
  } else {
    int want = fixed_length(col.type);
    FUZZ_REQUIRE(f.len >= 0 && (want < 0 || f.len == want), "type %d framed with length %d", (int)col.type, (int)f.len);
    FUZZ_REQUIRE(f.len == 0 || f.data != NULL, "no data");
    check_round_trip(&col, &v, &f);
  }
  copy_field_release(&f);
  free(copy);
  return 0;
}
