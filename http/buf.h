/* buf.h: a growable byte buffer for what strata-http writes (JSON bodies,
 * event-stream chunks, the metrics page). Not a string library. */
#ifndef STRATA_HTTP_BUF_H
#define STRATA_HTTP_BUF_H

#include <stddef.h>

struct buf {
	char *p;    /* (len) bytes, NUL-terminated when len > 0; NULL when empty */
	size_t len; /* bytes held */
	size_t cap; /* bytes allocated */
};

/* Append n bytes. 0 or -ENOMEM (the buffer is unchanged then). */
int buf_add(struct buf *b, const void *data, size_t n);
/* Append a NUL-terminated string. */
int buf_adds(struct buf *b, const char *s);
/* Append printf-style. 0 or -ENOMEM. */
int buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand the bytes over: returns b->p (the caller frees it with free()) and
 * empties b. NULL when empty. */
char *buf_take(struct buf *b);
/* Free and empty. */
void buf_free(struct buf *b);

#endif
