/* apierr.c: see apierr.h. */
#include "config.h"

#include "http/apierr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

__attribute__((format(printf, 6, 0))) static int vset(struct apierr *e, int status, const char *type,
							  const char *code, const char *param,
							  const char *fmt, va_list ap)
{
	e->status = status;
	e->type = type;
	e->code = code;
	snprintf(e->param, sizeof e->param, "%s", param ? param : "");
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	e->retry_after = 0;
	return status < 500 ? -EINVAL : -EIO;
}

int apierr_set(struct apierr *e, int status, const char *type, const char *code, const char *param,
	       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vset(e, status, type, code, param, fmt, ap);
	va_end(ap);
	return rc;
}

int apierr_bad(struct apierr *e, const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vset(e, 400, "invalid_request_error", NULL, param, fmt, ap);
	va_end(ap);
	return rc;
}
