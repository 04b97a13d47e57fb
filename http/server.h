/* server.h: strata-http's HTTP server (libmicrohttpd, a thread per
 * connection): routing, the bearer-token check, the body cap, and the
 * handlers of each endpoint, which turn requests into strata.v1 over a
 * connection to stratad of their own. Not the listening socket (listen.c),
 * not the JSON (request.c, openai.c). */
#ifndef STRATA_HTTP_SERVER_H
#define STRATA_HTTP_SERVER_H

#include <stdint.h>

#include "common/err.h"
#include "http/auth.h"

struct http_config {
	uint64_t max_body;         /* request bodies above this get 413, bytes */
	const char *model_name;    /* the model's name in replies; NULL: stratad's */
	unsigned max_connections;  /* HTTP connections at once (a thread each) */
	unsigned idle_timeout;     /* seconds an idle connection is kept */
	const struct auth *auth;   /* keys for /v1/ (none: open) */
};

struct http_server;

/* Serve on listen_fd (listening; not closed by the server). cfg and what it
 * points to must outlive the server. 0 with *out, or -errno with a message. */
int http_server_start(struct http_server **out, const struct http_config *cfg, int listen_fd,
		      struct st_err *err);
/* Stop accepting connections; those open go on. */
void http_server_quiesce(struct http_server *s);
/* Requests being answered now. */
unsigned http_server_busy(const struct http_server *s);
/* Close every connection (after they return: set the stop fd of
 * upstream_configure first so that waits end) and free. NULL is a no-op. */
void http_server_stop(struct http_server *s);

#endif
