/*
 * fuzz_copy_decode.c: the way back of the copy (PostgreSQL -> SQLite):
 * copy_next_tuple, which splits a binary COPY TO STDOUT message as the
 * server sends it, and copy_decode_field, which turns each field into the
 * SQLite value the app stores.
 *
 * Input: byte 0 picks the column type (every copy_type, unsupported too),
 * byte 1 the column's NOT NULL flag and varchar(n) limit, byte 2 whether
 * the message must start with the COPY header (bit 0 set) or is a later
 * message; the rest is the message.
 * Properties: the reader never reads out of bounds (the message is an exact
 * allocation), moves forward at every tuple, and hands out fields that lie
 * inside the message with lengths -1 or more; a stream it accepts has the
 * header once, then tuples, then at most a trailer. Every field decoded
 * (NULL included) is a value that copy_encode_value, the forward copy's
 * conversion and the verification's, turns back into exactly the same
 * bytes: the snapshot's checksum equals the server's only then. A refused
 * field gets a SQLSTATE and a one-line reason.
 */
#include <sqlite3.h>

#include "fuzz.h"
#include "copy.h"
#include "fuzz_copy.h"

#define MAX_FIELDS 64

static void check_refusal(const copy_refusal *ve) {
  FUZZ_REQUIRE(ve->sqlstate && strlen(ve->sqlstate) == 5, "a refusal without a SQLSTATE");
  FUZZ_REQUIRE(ve->why && ve->why[0] && !strchr(ve->why, '\n'), "a refusal without a one-line reason");
}

/* The field decodes to a value that encodes back to the same bytes. */
static void check_field(const copy_column *col, const copy_field *f) {
  copy_decoded d;
  copy_refusal ve = {0};
  memset(&d, 0xAA, sizeof d);
  d.own = NULL;
  int rc = copy_decode_field(col, f->data, f->len, &d, &ve);
  FUZZ_REQUIRE(rc == 0 || rc == 1, "returned %d", rc);
  if (rc == 1) {
    check_refusal(&ve);
    copy_decoded_release(&d);
    return;
  }
  FUZZ_REQUIRE(d.v.storage >= SQLITE_INTEGER && d.v.storage <= SQLITE_NULL, "storage %d", d.v.storage);
  FUZZ_REQUIRE((d.v.storage == SQLITE_NULL) == (f->len < 0), "NULL decoded from a value, or the reverse");
  copy_field back;
  copy_refusal ve2 = {0};
  back.own = NULL;
  int rc2 = copy_encode_value(col, &d.v, &back, &ve2);
  FUZZ_REQUIRE(rc2 == 0, "decoded (type %d, storage %d) but refused on the way back: %s", (int)col->type,
               d.v.storage, ve2.why ? ve2.why : "?");
  FUZZ_REQUIRE(back.len == f->len, "type %d: %d bytes came back as %d", (int)col->type, (int)f->len, (int)back.len);
  FUZZ_REQUIRE(f->len <= 0 || memcmp(back.data, f->data, (size_t)f->len) == 0, "type %d: the bytes changed",
               (int)col->type);
  copy_field_release(&back);
  copy_decoded_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3 || size > 65536) return 0;
  copy_column col;
  fuzz_column(&col, data[0], data[1]);
  copy_stream s = {.header_done = !(data[2] & 1)};
  size_t n = size - 3;
  unsigned char *msg = malloc(n ? n : 1);   /* exactly n bytes: reading past them is caught */
  if (!msg) abort();
  memcpy(msg, data + 3, n);

  copy_field fields[MAX_FIELDS];
  size_t off = 0, start = 0, last = 0;
  int nf = 0, got, tuples = 0;
  while ((got = copy_next_tuple(&s, msg, n, &off, &start, fields, MAX_FIELDS, &nf)) == 1) {
    FUZZ_REQUIRE(s.header_done, "a tuple before the header");
    FUZZ_REQUIRE(start >= last && off > start && off <= n, "tuple at %zu..%zu after %zu of %zu", start, off, last, n);
    FUZZ_REQUIRE(nf >= 0, "%d fields", nf);
    for (int k = 0; k < nf && k < MAX_FIELDS; k++) {
      const copy_field *f = &fields[k];
      FUZZ_REQUIRE(f->len >= -1, "field length %d", (int)f->len);
      if (f->len >= 0)
        FUZZ_REQUIRE(f->data >= msg + start && f->data + f->len <= msg + off, "field %d outside its tuple", k);
      check_field(&col, f);
    }
    last = off;
    tuples++;
    FUZZ_REQUIRE(tuples <= (int)n, "more tuples than bytes");
  }
  FUZZ_REQUIRE(got == 0 || got == -1, "returned %d", got);
  if (got == 0 && n > 0) FUZZ_REQUIRE(s.header_done && (off >= n || s.trailer), "stopped early at %zu of %zu", off, n);
  free(msg);
  return 0;
}
