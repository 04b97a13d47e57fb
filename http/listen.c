/* listen.c: see listen.h. */
#include "config.h"

#include "http/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/unixsock.h"

/* Describe a bound socket as host:port or unix:path. */
static void describe(struct http_listener *l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char host[INET6_ADDRSTRLEN] = "?";

	if (getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0) {
		snprintf(l->where, sizeof l->where, "fd %d", l->fd);
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
		snprintf(l->where, sizeof l->where, "%s:%u", host, ntohs(a->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
		snprintf(l->where, sizeof l->where, "[%s]:%u", host, ntohs(a->sin6_port));
	} else if (ss.ss_family == AF_UNIX) {
		struct sockaddr_un *a = (struct sockaddr_un *)&ss;
		snprintf(l->where, sizeof l->where, "unix:%s", len > sizeof(sa_family_t) ? a->sun_path : "?");
	}
}

static int take_activated(struct http_listener *l, struct st_err *err)
{
	int n = sd_listen_fds(1);
	if (n < 0)
		return st_errf(err, n, "socket activation: %s", strerror(-n));
	if (n == 0)
		return 0;
	if (n > 1)
		log_warn("socket activation passed %d sockets; using the first", n);
	int fd = SD_LISTEN_FDS_START;
	if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
		return st_errf(err, -EINVAL, "socket activation: fd %d is not a listening stream socket "
			       "(check ListenStream= in strata-http.socket)", fd);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return st_errf(err, -errno, "socket activation: fcntl: %s", strerror(errno));
	l->fd = fd;
	l->activated = true;
	return 1;
}

static int open_unix(struct http_listener *l, const char *path, struct st_err *err)
{
	int fd = unixsock_listen(path, false, err);
	if (fd < 0)
		return fd;
	l->fd = fd;
	snprintf(l->path, sizeof l->path, "%s", path);
	return 0;
}

static int open_tcp(struct http_listener *l, const char *spec, struct st_err *err)
{
	char host[256];
	const char *port;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res, *ai;
	int rc, e = 0;

	if (spec[0] == '[') { /* [v6]:port */
		const char *close_br = strchr(spec, ']');
		if (!close_br || close_br[1] != ':' || (size_t)(close_br - spec - 1) >= sizeof host)
			return st_errf(err, -EINVAL, "--listen %s: expected [ADDRESS]:PORT", spec);
		memcpy(host, spec + 1, (size_t)(close_br - spec - 1));
		host[close_br - spec - 1] = '\0';
		port = close_br + 2;
	} else {
		const char *colon = strrchr(spec, ':');
		if (!colon || (size_t)(colon - spec) >= sizeof host)
			return st_errf(err, -EINVAL, "--listen %s: expected HOST:PORT or unix:PATH", spec);
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
		port = colon + 1;
	}
	if (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 || atoi(port) > 65535)
		return st_errf(err, -EINVAL, "--listen %s: '%s' is not a port number", spec, port);
	rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
	if (rc != 0)
		return st_errf(err, -EINVAL, "--listen %s: %s", spec, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		int one = 1;
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
			l->fd = fd;
			break;
		}
		e = errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (l->fd < 0)
		return st_errf(err, -e, "cannot listen on %s: %s", spec, strerror(e));
	return 0;
}

int http_listen_open(struct http_listener *l, const char *spec, struct st_err *err)
{
	int rc;

	l->fd = -1;
	l->activated = false;
	l->path[0] = '\0';
	l->where[0] = '\0';
	rc = take_activated(l, err);
	if (rc == 0)
		rc = strncmp(spec, "unix:", 5) == 0 ? open_unix(l, spec + 5, err) : open_tcp(l, spec, err);
	if (rc < 0)
		return rc;
	describe(l);
	return 0;
}

void http_listen_close(struct http_listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	if (!l->activated && l->path[0])
		unlink(l->path);
	l->path[0] = '\0';
}
