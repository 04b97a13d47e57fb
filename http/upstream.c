/* upstream.c: see upstream.h. */
#include "config.h"

#include "http/upstream.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

static char paths[2][4096]; /* candidates, in order */
static int n_paths;
static char where[2 * 4096 + 8];
static int stop_fd = -1;

void upstream_configure(const char *socket_path, int stop)
{
	const char *env = getenv("STRATA_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	stop_fd = stop;
	n_paths = 0;
	if (socket_path || (env && *env)) {
		snprintf(paths[n_paths++], sizeof paths[0], "%s", socket_path ? socket_path : env);
	} else {
		if (xdg && *xdg)
			snprintf(paths[n_paths++], sizeof paths[0], "%s/strata.sock", xdg);
		snprintf(paths[n_paths++], sizeof paths[0], "%s", "/run/strata/strata.sock");
	}
	snprintf(where, sizeof where, "%s%s%s", paths[0], n_paths > 1 ? " or " : "",
		 n_paths > 1 ? paths[1] : "");
}

const char *upstream_where(void)
{
	return where;
}

int upstream_open(struct upstream *u, int client_fd)
{
	int rc = -ENOENT;

	u->client_fd = client_fd;
	u->path = NULL;
	u->c.fd = -1;
	u->c.rd = NULL;
	for (int i = 0; i < n_paths; i++) {
		rc = conn_open(&u->c, paths[i]);
		if (rc == 0) {
			u->path = paths[i];
			return 0;
		}
		/* only "nobody is there" moves on to the next candidate */
		if (rc != -ENOENT && rc != -ECONNREFUSED)
			break;
	}
	return rc;
}

void upstream_close(struct upstream *u)
{
	conn_close(&u->c);
}

int upstream_send(struct upstream *u, Strata__V1__Request *req)
{
	return conn_send(&u->c, req);
}

int upstream_next(struct upstream *u, int timeout_ms, Strata__V1__Response **out)
{
	uint64_t deadline = timeout_ms >= 0 ? clock_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;

	for (;;) {
		int rc = conn_try_next(&u->c, out);
		if (rc != 0)
			return rc;

		/* Only POLLRDHUP on the client: bytes it pipelines are not a
		 * hang-up, and POLLIN would wake us for them forever. */
		struct pollfd p[3] = {
			{ .fd = u->c.fd, .events = POLLIN },
			{ .fd = stop_fd, .events = POLLIN },
			{ .fd = u->client_fd, .events = POLLRDHUP },
		};
		int wait = -1;
		if (timeout_ms >= 0) {
			uint64_t now = clock_now_ns();
			if (now >= deadline)
				return -ETIMEDOUT;
			wait = (int)((deadline - now + 999999) / 1000000);
		}
		rc = poll(p, 3, wait); /* negative fds are ignored by poll */
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (rc == 0)
			return -ETIMEDOUT;
		if (p[1].revents)
			return -ESHUTDOWN;
		if (p[2].revents & (POLLRDHUP | POLLHUP | POLLERR))
			return -ECONNABORTED;
	}
}

int upstream_status(int timeout_ms, Strata__V1__StatusReply **out, char *msg, size_t cap)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	Strata__V1__Status st = STRATA__V1__STATUS__INIT;
	Strata__V1__Response *resp = NULL;
	struct upstream u;
	int rc;

	*out = NULL;
	rc = upstream_open(&u, -1);
	if (rc < 0) {
		snprintf(msg, cap, "cannot connect to stratad at %s: %s", upstream_where(), strerror(-rc));
		return rc;
	}
	req.id = 1;
	req.body_case = STRATA__V1__REQUEST__BODY_STATUS;
	req.status = &st;
	rc = upstream_send(&u, &req);
	if (rc == 0)
		rc = upstream_next(&u, timeout_ms, &resp);
	if (rc < 0) {
		snprintf(msg, cap, "stratad at %s did not answer Status: %s", u.path, strerror(-rc));
		goto out;
	}
	if (resp->body_case == STRATA__V1__RESPONSE__BODY_STATUS) {
		/* hand the reply over: protobuf-c allocated it on its own */
		*out = resp->status;
		resp->status = NULL;
		resp->body_case = STRATA__V1__RESPONSE__BODY__NOT_SET;
		rc = 0;
	} else if (resp->body_case == STRATA__V1__RESPONSE__BODY_ERROR) {
		snprintf(msg, cap, "stratad at %s refused Status: %s", u.path, resp->error->message);
		rc = resp->error->code == STRATA__V1__ERROR_CODE__ERROR_CODE_OVERLOADED ? -EBUSY : -EIO;
	} else {
		snprintf(msg, cap, "stratad at %s answered Status with something else", u.path);
		rc = -EBADMSG;
	}
out:
	if (resp)
		strata__v1__response__free_unpacked(resp, NULL);
	upstream_close(&u);
	return rc;
}
