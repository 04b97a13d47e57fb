/* unixsock.c: see unixsock.h. */
#include "proto/unixsock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

/* Connections waiting to be accepted. */
#define UNIXSOCK_BACKLOG 128

int unixsock_listen(const char *path, bool nonblock, struct st_err *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;

	if (!*path || strlen(path) >= sizeof addr.sun_path)
		return st_errf(err, -ENAMETOOLONG, "socket path '%s' is empty or too long (at most %zu "
			       "bytes)", path, sizeof addr.sun_path - 1);
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return st_errf(err, -errno, "socket: %s", strerror(errno));

	/* A socket file may be left by a server that died. Replace it only if
	 * nobody answers on it. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			close(fd);
			return st_errf(err, -EEXIST, "%s exists and is not a socket", path);
		}
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof addr) == 0) {
			close(probe);
			close(fd);
			return st_errf(err, -EADDRINUSE, "%s: another server is already listening there",
				       path);
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}

	mode_t old = umask(0117); /* 0660 from the start */
	int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
	int e = errno;
	umask(old);
	if (rc < 0) {
		close(fd);
		return st_errf(err, -e, "bind %s: %s", path, strerror(e));
	}
	if (chmod(path, 0660) < 0) /* umask made it so; a setgid directory may not */
		log_warn("chmod 0660 %s: %s", path, strerror(errno));
	if (listen(fd, UNIXSOCK_BACKLOG) < 0) {
		e = errno;
		close(fd);
		unlink(path);
		return st_errf(err, -e, "listen %s: %s", path, strerror(e));
	}
	return fd;
}
