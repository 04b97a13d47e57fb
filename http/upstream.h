/* upstream.h: strata-http's connection to stratad, one per HTTP request: the
 * blocking client connection of client/conn.c, plus waiting that also watches
 * the HTTP client's socket (a client that hangs up ends the wait, and closing
 * this connection then cancels its generations in stratad) and the server's
 * stop signal. Knows frames and Responses, not what the requests mean. */
#ifndef STRATA_HTTP_UPSTREAM_H
#define STRATA_HTTP_UPSTREAM_H

#include <stdbool.h>

#include "client/conn.h"

struct upstream {
	struct conn c;  /* the socket and its frame reader */
	int client_fd;  /* the HTTP client's socket to watch for a hang-up, or -1 */
	const char *path; /* the socket it is connected to (static) */
};

/* Where stratad listens: socket_path (--socket) when not NULL, else
 * $STRATA_SOCKET, else $XDG_RUNTIME_DIR/strata.sock and then
 * /run/strata/strata.sock (as strata(1) looks). stop_fd: an fd that becomes
 * readable, and stays so, when strata-http stops (every wait then ends), or -1.
 * Call once at start-up, before any thread (the settings are copied). */
void upstream_configure(const char *socket_path, int stop_fd);
/* The socket paths tried, for messages: "A" or "A or B" (static). */
const char *upstream_where(void);

/* Connect. client_fd (or -1) is watched by upstream_next. 0 or -errno. */
int upstream_open(struct upstream *u, int client_fd);
/* Close; stratad cancels whatever still runs on the connection. Idempotent. */
void upstream_close(struct upstream *u);

/* Send a request (stamped with the protocol version). 0 or -errno. */
int upstream_send(struct upstream *u, Strata__V1__Request *req);

/* Wait up to timeout_ms (-1: no limit) for the next Response. Returns 1 with
 * *out (free with strata__v1__response__free_unpacked(*out, NULL));
 * -ECONNABORTED when the HTTP client hung up; -ESHUTDOWN when strata-http
 * is stopping; -ETIMEDOUT; -ECONNRESET/-EPROTO/-EBADMSG/-EILSEQ/-EMSGSIZE
 * as conn_next (stratad went away or broke the protocol). */
int upstream_next(struct upstream *u, int timeout_ms, Strata__V1__Response **out);

/* One Status round trip on a new connection: 0 with *out (free with
 * strata__v1__status_reply__free_unpacked), or -errno with a sentence in
 * msg[0..cap). */
int upstream_status(int timeout_ms, Strata__V1__StatusReply **out, char *msg, size_t cap);

#endif
