/*
 * replay.c: runs a libFuzzer target over its corpus without libFuzzer.
 *
 * `make test` links each tests/fuzz/fuzz_*.c with this main() and the build's
 * libtodohost.a (plain, then ASan+UBSan, with gcc), and runs it over
 * tests/fuzz/corpus/<name>/: every input the fuzzer ever found interesting is
 * fed once more to LLVMFuzzerTestOneInput. A crash, a sanitizer report or a
 * property check that aborts fails the run; otherwise it prints one TAP line
 * per directory or file argument and "# N inputs".
 *
 *     replay PATH...      PATH: a corpus directory or a single input file
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Reads a whole file into a malloc'ed buffer (with a spare NUL the target
 * must not rely on). Returns NULL on error, with errno set. */
static uint8_t *slurp(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += got;
    if (n == cap) {
      uint8_t *bigger = realloc(buf, cap *= 2);
      if (!bigger) { free(buf); buf = NULL; }
      else buf = bigger;
    }
  }
  fclose(f);
  if (!buf) return NULL;
  /* an exact-size copy, so ASan sees reads past the input's end */
  uint8_t *exact = malloc(n ? n : 1);
  if (exact) memcpy(exact, buf, n);
  free(buf);
  *size = n;
  return exact;
}

static int run_file(const char *path) {
  size_t n = 0;
  uint8_t *data = slurp(path, &n);
  if (!data) { perror(path); return -1; }
  LLVMFuzzerTestOneInput(data, n);
  free(data);
  return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  int failed = 0;
  long total = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      printf("not ok - %s exists\n", argv[i]);
      failed++;
      continue;
    }
    long count = 0, errors = 0;
    if (S_ISDIR(st.st_mode)) {
      struct dirent **names;
      int n = scandir(argv[i], &names, NULL, by_name);
      for (int k = 0; k < n; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
        struct stat fs;
        if (names[k]->d_name[0] != '.' && stat(path, &fs) == 0 && S_ISREG(fs.st_mode)) {
          if (run_file(path) == 0) count++;
          else errors++;
        }
        free(names[k]);
      }
      if (n >= 0) free(names);
      else errors++;
    } else {
      if (run_file(argv[i]) == 0) count++;
      else errors++;
    }
    total += count;
    if (errors || count == 0) {
      printf("not ok - replay %s (%ld inputs, %ld unreadable)\n", argv[i], count, errors);
      failed++;
    } else {
      printf("ok - replay %s (%ld inputs)\n", argv[i], count);
    }
  }
  printf("# %ld inputs\n", total);
  return failed ? 1 : 0;
}
