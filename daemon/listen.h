/* listen.h: the listening socket: the one systemd passes (socket
 * activation) or, failing that, one we bind ourselves. */
#ifndef STRATA_DAEMON_LISTEN_H
#define STRATA_DAEMON_LISTEN_H

#include <stdbool.h>

#include "common/err.h"

struct listener {
	int fd;		   /* non-blocking, close-on-exec, listening */
	bool activated;	   /* passed by systemd: we neither bind nor unlink it */
	char path[108];	   /* the path we bound (when !activated) */
};

/* Take the activated socket if there is one, else bind `path` with mode 0660
 * (a stale socket file left by a dead daemon is replaced; a live one is an
 * error). 0 or -errno with a message. */
int listener_open(struct listener *l, const char *path, struct st_err *err);
/* Close, and remove the socket file if we created it. */
void listener_close(struct listener *l);

#endif
