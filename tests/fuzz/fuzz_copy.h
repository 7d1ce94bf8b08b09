/*
 * fuzz_copy.h: what the copy engine's fuzz targets (fuzz_copy_convert,
 * fuzz_copy_decode) share: a target column described by two input bytes.
 */
#ifndef TODOHOST_FUZZ_COPY_H
#define TODOHOST_FUZZ_COPY_H

#include <stdint.h>
#include <string.h>

#include "copy.h"

/* The labels of the enum columns and elements: one with a quote, one not
 * ASCII, one a prefix of another. */
static char fuzz_labels[] = "open\0done\0it's \"q\"\0\xc3\xa9t\xc3\xa9\0do";
#define FUZZ_NLABELS 5

/* Fills col from kind (its type; for arrays also the element type, for
 * numeric the scale) and flags (NOT NULL, and a length or precision). The
 * type is kind % 18 (the types before COPY_ENUM, so that the seeds keep
 * their meaning), an enum instead of unsupported when kind / 18 is odd;
 * the element kind / 18 % 18, an enum for 0 (int4 for what cannot be one). */
static inline void fuzz_column(copy_column *col, uint8_t kind, uint8_t flags) {
  memset(col, 0, sizeof *col);
  int pick = kind / 18 % 18;
  col->type = (copy_type)(kind % 18);
  if (col->type == COPY_UNSUPPORTED && pick % 2) col->type = COPY_ENUM;
  col->not_null = flags & 1;
  col->max_chars = flags & 2 ? (int32_t)(flags >> 2) : -1;
  col->precision = flags & 2 ? (int32_t)(flags >> 2) : -1;   /* numeric(p, s): s from p */
  col->scale = col->precision > 0 ? pick % (col->precision + 1) : 0;
  col->elem = pick == 0 ? COPY_ENUM : (copy_type)pick;   /* arrays: of what */
  if (col->elem == COPY_ARRAY || col->elem == COPY_UNSUPPORTED) col->elem = COPY_INT4;
  col->elem_oid = col->elem == COPY_BYTEA ? 17 : col->elem == COPY_ENUM ? 16385 : 23;
  if (col->type == COPY_ENUM || col->elem == COPY_ENUM) {
    col->max_chars = -1;   /* (as copy_describe has it for an enum) */
    col->labels = fuzz_labels;
    col->nlabels = FUZZ_NLABELS;
  }
}

#endif
