/* auth.h: the optional bearer tokens of strata-http (--api-key-file): the
 * keys, read once at start, and the check of an Authorization header in time
 * that does not depend on how much of a key matched. Not user management. */
#ifndef STRATA_HTTP_AUTH_H
#define STRATA_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Most keys one file may hold, and the longest key in bytes. */
#define AUTH_MAX_KEYS 64
#define AUTH_MAX_KEY_LEN 256

struct auth {
	size_t n;                          /* keys; 0: no authentication */
	char keys[AUTH_MAX_KEYS][AUTH_MAX_KEY_LEN + 1]; /* NUL-terminated */
};

/* Read one key per line from path (blank lines and lines starting with '#'
 * are skipped; surrounding spaces are trimmed). A file with no key is an
 * error: an empty file must not mean "no authentication". 0 or -errno with a
 * message. */
int auth_load(struct auth *a, const char *path, struct st_err *err);

/* Whether a request with this Authorization header (NULL when absent) may
 * pass: always when no keys are set, else only "Bearer KEY" with one of the
 * keys. Every key is compared in full, in constant time per byte. */
bool auth_check(const struct auth *a, const char *authorization);

#endif
