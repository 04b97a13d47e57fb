/* listen.c: see listen.h. */
#include "config.h"

#include "daemon/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/unixsock.h"

static int take_activated(struct listener *l, struct st_err *err)
{
	int n = sd_listen_fds(1); /* 1: unset LISTEN_FDS so children do not inherit it */
	if (n < 0)
		return st_errf(err, n, "socket activation: %s", strerror(-n));
	if (n == 0)
		return 0;
	if (n > 1)
		log_warn("socket activation passed %d sockets; using the first", n);
	int fd = SD_LISTEN_FDS_START;
	if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0)
		return st_errf(err, -EINVAL, "socket activation: fd %d is not a listening Unix stream "
			       "socket (check ListenStream= in stratad.socket)", fd);
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return st_errf(err, -errno, "socket activation: fcntl: %s", strerror(errno));
	l->fd = fd;
	l->activated = true;
	return 1;
}

int listener_open(struct listener *l, const char *path, struct st_err *err)
{
	int rc;

	l->fd = -1;
	l->activated = false;
	l->path[0] = '\0';
	rc = take_activated(l, err);
	if (rc != 0)
		return rc < 0 ? rc : 0;

	int fd = unixsock_listen(path, true, err);
	if (fd < 0)
		return fd;
	l->fd = fd;
	snprintf(l->path, sizeof l->path, "%s", path);
	return 0;
}

void listener_close(struct listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	if (!l->activated && l->path[0])
		unlink(l->path);
	l->path[0] = '\0';
}
