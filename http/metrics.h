/* metrics.h: strata-http's counters and the GET /metrics page (Prometheus
 * text exposition format 0.0.4): HTTP requests by endpoint and status, tokens,
 * requests in flight and cancelled by a hang-up, and stratad's own counters
 * from a Status reply (bytes streamed, stall and compute time, queue depth,
 * active requests, passes). Counters are atomic: any thread may count. */
#ifndef STRATA_HTTP_METRICS_H
#define STRATA_HTTP_METRICS_H

#include <stdint.h>

#include "http/buf.h"
#include "proto/strata.pb-c.h"

/* The endpoints, as the "endpoint" label names them (a fixed set, so a client
 * probing random paths cannot grow the page). */
enum metrics_endpoint {
	EP_COMPLETIONS, /* /v1/completions */
	EP_CHAT,        /* /v1/chat/completions */
	EP_MODELS,      /* /v1/models */
	EP_HEALTH,      /* /health */
	EP_METRICS,     /* /metrics */
	EP_OTHER,       /* anything else (404) */
	EP_COUNT
};

/* A request answered with `status` (499: the client hung up first). */
void metrics_request(enum metrics_endpoint ep, int status);
/* Tokens of a finished completion or chat request. */
void metrics_tokens(uint64_t prompt, uint64_t generated);
/* A generation cancelled because its client hung up. */
void metrics_cancelled(void);
/* Requests being answered now: +1 when one starts, -1 when it ends. */
void metrics_in_flight(int delta);

/* Append the page. st: stratad's Status, or NULL when it did not answer
 * (strata_stratad_up is then 0 and its counters are left out). 0 or -ENOMEM. */
int metrics_render(struct buf *out, const Strata__V1__StatusReply *st);

#endif
