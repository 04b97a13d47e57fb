/* err.h: an error message that travels with a -errno code.
 * Functions that can fail for reasons a person must act on (a corrupt file,
 * a bad request) take a `struct st_err *` and fill it; the return value stays
 * the usual `>= 0` success / `-errno` failure. Not a logging facility. */
#ifndef STRATA_COMMON_ERR_H
#define STRATA_COMMON_ERR_H

#define ST_ERR_MAX 512

struct st_err {
	char msg[ST_ERR_MAX]; /* NUL-terminated; empty when no error was set */
};

/* Format `fmt` into err (when err is non-NULL) and return `code` (a negative
 * errno), so a failure site reads `return st_errf(err, -EINVAL, "...", ...);`. */
int st_errf(struct st_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepend "prefix: " to an existing message (adds context on the way up). */
int st_err_prefix(struct st_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
