/* err.c: see err.h. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int st_errf(struct st_err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return code;
}

int st_err_prefix(struct st_err *err, int code, const char *fmt, ...)
{
	if (err) {
		char prefix[ST_ERR_MAX], old[ST_ERR_MAX];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(prefix, sizeof prefix, fmt, ap);
		va_end(ap);
		size_t n = strlen(prefix);
		memcpy(old, err->msg, sizeof old);
		/* prefix, then as much of the old message as still fits */
		if (n > sizeof err->msg - 3)
			n = sizeof err->msg - 3;
		memcpy(err->msg, prefix, n);
		memcpy(err->msg + n, ": ", 2);
		size_t room = sizeof err->msg - n - 3;
		size_t m = strnlen(old, room);
		memcpy(err->msg + n + 2, old, m);
		err->msg[n + 2 + m] = '\0';
	}
	return code;
}
