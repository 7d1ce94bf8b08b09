/*
 * fuzz_copy.h: what the copy engine's fuzz targets (fuzz_copy_convert,
 * fuzz_copy_decode) share: a target column described by two input bytes.
 */
#ifndef TODOHOST_FUZZ_COPY_H
#define TODOHOST_FUZZ_COPY_H

#include <stdint.h>
#include <string.h>

#include "copy.h"

/* Fills col from kind (its type; for arrays also the element type, for
 * numeric the scale) and flags (NOT NULL, and a length or precision). */
static inline void fuzz_column(copy_column *col, uint8_t kind, uint8_t flags) {
  memset(col, 0, sizeof *col);
  col->type = (copy_type)(kind % COPY_TYPE_COUNT);
  col->not_null = flags & 1;
  col->max_chars = flags & 2 ? (int32_t)(flags >> 2) : -1;
  col->precision = flags & 2 ? (int32_t)(flags >> 2) : -1;   /* numeric(p, s): s from p */
  col->scale = col->precision > 0 ? kind / COPY_TYPE_COUNT % (col->precision + 1) : 0;
  col->elem = (copy_type)(kind / COPY_TYPE_COUNT % COPY_TYPE_COUNT);   /* arrays: of what */
  if (col->elem == COPY_ARRAY || col->elem == COPY_BYTEA || col->elem == COPY_UNSUPPORTED)
    col->elem = COPY_INT4;
  col->elem_oid = 23;
}

#endif
