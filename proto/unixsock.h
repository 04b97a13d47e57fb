/* unixsock.h: the server side of the transport: a listening Unix stream
 * socket at a path, made safely, for stratad and strata-http alike. (Socket
 * activation is each program's own: it is systemd's business, not the
 * transport's.) */
#ifndef STRATA_PROTO_UNIXSOCK_H
#define STRATA_PROTO_UNIXSOCK_H

#include <stdbool.h>

#include "common/err.h"

/* Listen on `path` with mode 0660 from the moment it exists (no window where
 * others could connect). A socket file left by a program that died is
 * replaced; one that answers is not (-EADDRINUSE: two servers must not fight
 * over one path), nor is a file that is not a socket (-EEXIST). The socket is
 * close-on-exec, and non-blocking when asked. Returns the descriptor, or
 * -errno with a message naming the path. */
int unixsock_listen(const char *path, bool nonblock, struct st_err *err);

#endif
