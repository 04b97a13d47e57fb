/* apierr.h: an error as strata-http answers it: the HTTP status and the
 * fields of OpenAI's error object ({"error":{"message","type","param","code"}}).
 * Every module that can refuse a request fills one; openai.c writes it out.
 * Not a logging facility. */
#ifndef STRATA_HTTP_APIERR_H
#define STRATA_HTTP_APIERR_H

#define APIERR_MSG_MAX 512

struct apierr {
	int status;                 /* HTTP status: 400, 401, 404, 405, 413, 429, 500, 503 */
	const char *type;           /* static: "invalid_request_error", "server_error", ... */
	const char *code;           /* static, or NULL for JSON null */
	char param[64];             /* the offending request field; empty for JSON null */
	char message[APIERR_MSG_MAX]; /* one sentence for a person */
	unsigned retry_after;       /* seconds, for a Retry-After header (429, 503); 0: none */
};

/* Fill e (status, type, code, param) with a printf-style message; returns -EINVAL
 * for status 4xx and -EIO otherwise, so a failure site reads
 * `return apierr_set(e, 400, "invalid_request_error", NULL, "max_tokens", "...")`.
 * param and code may be NULL. */
int apierr_set(struct apierr *e, int status, const char *type, const char *code, const char *param,
	       const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* The common case: 400 invalid_request_error about `param`. Returns -EINVAL. */
int apierr_bad(struct apierr *e, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
