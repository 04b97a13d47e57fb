/* conn.h: the client's end of one connection to stratad: connect to the Unix
 * socket, send Requests, wait for the next Response or for a wake-up (the
 * Ctrl-C handler's pipe). Knows the framing, not what the commands mean. */
#ifndef STRATA_CLIENT_CONN_H
#define STRATA_CLIENT_CONN_H

#include "proto/frame.h"

struct conn {
	int fd;                  /* non-blocking stream socket, -1 when closed */
	struct frame_reader *rd; /* owned; responses are capped at FRAME_RESPONSE_CAP */
};

/* Connect to the socket at path. Returns 0 or -errno (-ENAMETOOLONG when the
 * path does not fit in sockaddr_un). On failure nothing is left open. */
int conn_open(struct conn *c, const char *path);

/* Close the socket and free the reader. Safe on a closed or failed conn. */
void conn_close(struct conn *c);

/* Send req, stamping it with STRATA_PROTOCOL_VERSION (stratad requires the
 * version on the first request and accepts it on every one). 0 or -errno;
 * -EPIPE/-ECONNRESET when the server has gone (it may have left an Error to
 * read first: call conn_next). */
int conn_send(struct conn *c, Strata__V1__Request *req);

/* Wait for the next Response, or for wake_fd (if >= 0) to become readable.
 * Returns 1 with *out (free with strata__v1__response__free_unpacked(*out,
 * NULL)); 0 when woken (wake_fd is left for the caller to drain);
 * -ECONNRESET when the server closed the connection between frames; -EPROTO
 * when it closed inside a frame; -EMSGSIZE for a frame above the cap;
 * -EBADMSG for bytes that are not a Response; -EILSEQ for a string that is
 * not UTF-8; other -errno. */
int conn_next(struct conn *c, int wake_fd, Strata__V1__Response **out);

/* The same without waiting: 1 with *out when a whole Response is there, 0
 * when the socket has none yet (poll it for POLLIN, then call again), or the
 * errors above. For callers that wait on more descriptors (strata-http). */
int conn_try_next(struct conn *c, Strata__V1__Response **out);

#endif
