/* listen.c: see listen.h. */
#include "config.h"

#include "daemon/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/log.h"

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
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int rc;

	l->fd = -1;
	l->activated = false;
	l->path[0] = '\0';
	rc = take_activated(l, err);
	if (rc != 0)
		return rc < 0 ? rc : 0;

	if (strlen(path) >= sizeof addr.sun_path)
		return st_errf(err, -ENAMETOOLONG, "socket path '%s' is too long", path);
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return st_errf(err, -errno, "socket: %s", strerror(errno));

	/* A socket file may be left by a daemon that died. Replace it only if
	 * nobody answers on it: two daemons must not fight over one path. */
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			close(fd);
			return st_errf(err, -EEXIST, "%s exists and is not a socket", path);
		}
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof addr) == 0) {
			close(probe);
			close(fd);
			return st_errf(err, -EADDRINUSE, "%s: another stratad is already listening", path);
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}

	/* Create it 0660 from the start: no window where others could connect. */
	mode_t old = umask(0117);
	rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
	int e = errno;
	umask(old);
	if (rc < 0) {
		close(fd);
		return st_errf(err, -e, "bind %s: %s", path, strerror(e));
	}
	if (chmod(path, 0660) < 0)
		log_warn("chmod 0660 %s: %s", path, strerror(errno));
	if (listen(fd, 128) < 0) {
		e = errno;
		close(fd);
		unlink(path);
		return st_errf(err, -e, "listen %s: %s", path, strerror(e));
	}
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
