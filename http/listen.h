/* listen.h: strata-http's listening socket: the one systemd passes (socket
 * activation, TCP or Unix), else a TCP address ("127.0.0.1:8080",
 * "[::1]:8080", port 0 for any free port) or a Unix socket ("unix:PATH") that
 * we bind ourselves. Not the HTTP server. */
#ifndef STRATA_HTTP_LISTEN_H
#define STRATA_HTTP_LISTEN_H

#include <stdbool.h>

#include "common/err.h"

struct http_listener {
	int fd;         /* listening, close-on-exec */
	bool activated; /* passed by systemd: we neither bound it nor remove it */
	char path[108]; /* the Unix socket path we bound, or "" */
	char where[160]; /* what it listens on, for the log: "127.0.0.1:8080", "unix:/run/x" */
};

/* Take the activated socket if there is one, else bind spec. 0 or -errno
 * with a message. */
int http_listen_open(struct http_listener *l, const char *spec, struct st_err *err);
/* Close, and remove a Unix socket file we created. */
void http_listen_close(struct http_listener *l);

#endif
