/* conn.c: one client connection to stratad (see conn.h). */
#include "client/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int conn_open(struct conn *c, const char *path)
{
	struct sockaddr_un sa;
	int fd, fl, rc;

	c->fd = -1;
	c->rd = NULL;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Blocking connect: on a Unix socket it completes or fails at once. */
	while (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (errno == EINTR)
			continue;
		rc = -errno;
		goto err_fd;
	}
	/* Non-blocking from here: conn_next polls the socket together with
	 * the wake-up pipe, and frame_reader_fill wants EAGAIN. */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		rc = -errno;
		goto err_fd;
	}
	c->rd = malloc(sizeof *c->rd);
	if (!c->rd) {
		rc = -ENOMEM;
		goto err_fd;
	}
	frame_reader_init(c->rd, FRAME_RESPONSE_CAP);
	c->fd = fd;
	return 0;

err_fd:
	close(fd);
	return rc;
}

void conn_close(struct conn *c)
{
	if (c->rd) {
		frame_reader_release(c->rd);
		free(c->rd);
		c->rd = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

int conn_send(struct conn *c, Strata__V1__Request *req)
{
	req->protocol_version = STRATA_PROTOCOL_VERSION;
	/* The server's own cap (--max-frame) decides; ours only refuses what
	 * no server would take. */
	return frame_send(c->fd, &req->base, FRAME_RESPONSE_CAP);
}

int conn_try_next(struct conn *c, Strata__V1__Response **out)
{
	*out = NULL;
	int rc = frame_reader_fill(c->rd, c->fd);
	if (rc == FRAME_AGAIN)
		return 0;
	if (rc == FRAME_EOF)
		return -ECONNRESET;
	if (rc < 0)
		return rc;
	Strata__V1__Response *resp;
	uint8_t *buf;
	size_t len;
	frame_reader_take(c->rd, &buf, &len);
	resp = strata__v1__response__unpack(NULL, len, buf);
	free(buf);
	if (!resp)
		return -EBADMSG;
	if (frame_check_utf8(&resp->base, NULL) < 0) {
		strata__v1__response__free_unpacked(resp, NULL);
		return -EILSEQ;
	}
	*out = resp;
	return 1;
}

int conn_next(struct conn *c, int wake_fd, Strata__V1__Response **out)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->fd, .events = POLLIN },
			{ .fd = wake_fd, .events = POLLIN },
		};
		int rc = conn_try_next(c, out);
		if (rc != 0)
			return rc;
		if (poll(p, wake_fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue; /* the handler's byte is in the pipe: next poll sees it */
			return -errno;
		}
		if (wake_fd >= 0 && p[1].revents)
			return 0;
	}
}
