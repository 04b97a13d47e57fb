/* sse.h: a streamed reply (stream: true) as server-sent events: the state
 * that libmicrohttpd's content reader pulls from, one strata.v1 event at a
 * time, shaped by openai.c into "data: {...}" chunks and ended by
 * "data: [DONE]" (or by an error event). Not the routing. */
#ifndef STRATA_HTTP_SSE_H
#define STRATA_HTTP_SSE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "http/apierr.h"
#include "http/buf.h"
#include "http/job.h"
#include "http/openai.h"
#include "http/request.h"

struct sse {
	struct api_request req; /* owned */
	struct job job;         /* owned; started */
	struct oa *oa;          /* owned */
	struct buf out;         /* formatted bytes not yet handed over */
	size_t off;             /* bytes of out already handed over */
	bool finished;          /* the end ([DONE] or an error event) is in out */
	bool hung_up;           /* the client went away: the generations were cancelled */
	bool streaming;         /* set by the caller once the response is queued */
};

/* Take over req and the started job (both are owned by s from now, also on
 * failure), make the first chunks and wait for the first event, so that a
 * request stratad refuses at once (429, 400) still gets its HTTP status.
 * Returns 0, or -errno with e filled (nothing was sent: answer with e; then
 * sse_free). model: the name the chunks carry (copied by reference: static
 * or outliving s). */
int sse_begin(struct sse *s, struct api_request *req, struct job *job, const char *model, struct apierr *e);

/* libmicrohttpd's content reader (MHD_ContentReaderCallback): fills buf with
 * up to max bytes of events, blocking until stratad sends the next. */
ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max);

/* libmicrohttpd's free callback: closes the stratad connection (cancelling
 * what still runs), counts the tokens, frees s (malloc'd by the caller). */
void sse_free(void *cls);

#endif
