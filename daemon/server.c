/* server.c: the event loop (see server.h): connections, frames, replies,
 * systemd, drain. What a request means is requests.c's business.
 *
 * One epoll set watches the listening socket, every connection, the signal
 * pipe (SIGTERM, SIGINT; see signals.h), the scheduler's eventfd and a
 * timerfd that ticks every second (watchdog, STATUS=, drain deadline). Each
 * watched thing embeds a struct watch, its fd and the function that handles
 * its events (as redis's ae.c stores a handler with each fd), and epoll hands
 * that struct back: the loop only calls the handler. Connections are
 * level-triggered: a readable connection gets a turn of at most
 * FRAMES_PER_TURN frames; one that had more (frames already in its reader,
 * which no epoll event announces) waits in a list of turns served round-robin
 * after each batch of events, epoll_wait not sleeping while it is non-empty.
 * Output is queued per connection and written when the socket accepts it;
 * past CONN_OUT_HIGH unread, the connection's requests wait. The timer closes
 * connections idle or stuck in a half-sent frame (--idle-timeout,
 * --frame-timeout); a connection refused or ended after an error lingers
 * briefly, dropping its input, so its error frame is not lost to a reset. A
 * connection that goes away mid-way is freed only after the current batch of
 * epoll events, so no event ever points at freed memory. */
#include "config.h"

#include "daemon/server.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "daemon/notify.h"
#include "daemon/requests.h"
#include "daemon/sched.h"
#include "daemon/signals.h"
#include "engine/engine.h"
#include "common/log.h"
#include "proto/frame.h"

/* Output queued for a connection above this: stratad stops reading its
 * requests (and so answering them) until the client has read enough. */
#define CONN_OUT_HIGH (4u << 20)
/* The hard cap on a connection's output queue: the high-water mark plus one
 * maximal reply, so a reply to a request read below the mark always fits.
 * Only streamed replies (the Pieces of Generates already running) can pass
 * it, and only when the client does not read them: then it is closed. */
#define CONN_OUT_MAX ((size_t)CONN_OUT_HIGH + FRAME_HEADER_BYTES + FRAME_RESPONSE_CAP)
/* The first allocation of a connection's output queue; it doubles from there. */
#define CONN_OUT_INITIAL 4096
/* Events taken from epoll per wake-up. */
#define EPOLL_BATCH 64
/* Frames one connection may have served per turn before the others get theirs. */
#define FRAMES_PER_TURN 64
/* The timerfd's period: watchdog pings (or faster when the watchdog asks),
 * STATUS= lines, the drain deadline. */
#define TICK_SEC 1
/* While draining, epoll_wait wakes at least this often to check the deadline. */
#define DRAIN_POLL_MS 200
/* After SIGTERM, clients get this long past --shutdown-timeout to read their replies. */
#define DRAIN_SLACK_NS 5000000000ull
/* The watchdog ping is withheld once the scheduler made no progress for two
 * watchdog intervals plus this. */
#define WATCHDOG_SLACK_NS 2000000000ull
/* A connection closed by the server after an error (or refused at accept)
 * first sends its last frame, then reads and drops what the client still
 * sends, for at most this long, so that the close does not reset the
 * connection under the unread error frame. */
#define LINGER_NS 2000000000ull
/* Connections lingering at once; past this, one is closed outright. */
#define LINGER_MAX 64
/* Bytes a lingering connection may have dropped per wake-up. */
#define LINGER_READ_MAX (64u << 10)

struct server;

/* One thing epoll watches: its fd and what to do when epoll reports it.
 * Embedded in the thing itself; epoll's data.ptr points at it. */
struct watch {
	int fd;
	void (*on_event)(struct server *s, struct watch *w, uint32_t events);
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct conn {
	struct watch w;	    /* w.fd is the socket; -1 once closed */
	struct conn *next, *prev;
	/* In the server's turn list: its turn ended at FRAMES_PER_TURN, so more
	 * frames may wait in its reader, where no epoll event will announce them. */
	struct conn *turn_next, *turn_prev;
	bool in_turns;
	uint64_t id;
	struct frame_reader rd;
	uid_t uid;	    /* the peer's user (SO_PEERCRED), for --max-clients-per-uid */
	bool have_uid;
	bool greeted;	    /* a request with our protocol version arrived */
	bool closing;	    /* linger, then close, once the output is written */
	bool lingering;	    /* output shut down; input dropped until EOF or linger_deadline */
	bool paused;	    /* output above CONN_OUT_HIGH: its requests are not read */
	bool dead;	    /* closed; freed after this batch of events */
	uint64_t last_active; /* ns: accepted, bytes came or went, a Generate ended */
	uint64_t frame_t0;  /* ns: when the frame being received began; 0 = none */
	uint64_t linger_deadline; /* ns */
	uint32_t events;    /* the epoll mask registered now */
	uint8_t *out;	    /* (out_cap) queued frames; [out_off, out_len) unsent */
	size_t out_off, out_len, out_cap;
	struct gen_ids gens; /* its unfinished Generates */
	struct server *srv;  /* for replies sent through struct reply_to */
};

struct server {
	const struct daemon_config *cfg;
	struct engine *e;
	struct sched *sched;
	struct listener *lis;
	int ep;
	struct watch w_listen, w_signal, w_wake, w_timer;
	struct conn *conns;
	struct conn *turns_head, *turns_tail; /* served round-robin, after the epoll events */
	uint32_t n_turns;
	struct conn *graveyard;
	uint32_t n_conns;     /* open and served (lingering ones not counted) */
	uint32_t n_lingering;
	uint64_t next_conn_id;
	uint64_t t_start;
	bool draining;
	uint64_t drain_deadline; /* hard stop even if a client never reads */
	uint64_t wd_interval_us;
	uint64_t wd_last_ping;
	uint64_t wd_progress;
	uint64_t wd_progress_at;
	char status_line[256];
};

/* ---- the turn list ---- */

/* Queue c for another turn (a no-op when it is queued already). */
static void turns_push(struct server *s, struct conn *c)
{
	if (c->in_turns)
		return;
	c->in_turns = true;
	c->turn_next = NULL;
	c->turn_prev = s->turns_tail;
	if (s->turns_tail)
		s->turns_tail->turn_next = c;
	else
		s->turns_head = c;
	s->turns_tail = c;
	s->n_turns++;
}

static void turns_remove(struct server *s, struct conn *c)
{
	if (!c->in_turns)
		return;
	if (c->turn_prev)
		c->turn_prev->turn_next = c->turn_next;
	else
		s->turns_head = c->turn_next;
	if (c->turn_next)
		c->turn_next->turn_prev = c->turn_prev;
	else
		s->turns_tail = c->turn_prev;
	c->turn_next = c->turn_prev = NULL;
	c->in_turns = false;
	s->n_turns--;
}

/* ---- output ---- */

static void conn_close(struct server *s, struct conn *c);
static struct reply_to conn_to(struct conn *c);

static void conn_linger(struct server *s, struct conn *c);

/* Watch for input unless we are closing (then only for room to write). */
static void conn_update_poll(struct server *s, struct conn *c)
{
	uint32_t want = c->lingering ? EPOLLIN :
		(c->closing || c->paused ? 0 : EPOLLIN) | (c->out_len > c->out_off ? EPOLLOUT : 0);
	if (want == c->events || c->dead)
		return;
	struct epoll_event ev = { .events = want, .data.ptr = &c->w };
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->w.fd, &ev) == 0)
		c->events = want;
}

/* Write what the socket takes now; close when asked to and done. */
static void conn_flush(struct server *s, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->w.fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			log_debug("client %" PRIu64 ": send: %s", c->id, strerror(errno));
			conn_close(s, c);
			return;
		}
		c->out_off += (size_t)n;
		c->last_active = clock_now_ns();
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		if (c->closing && !c->lingering) {
			conn_linger(s, c);
			return;
		}
	}
	if (c->paused && c->out_len - c->out_off <= CONN_OUT_HIGH) {
		/* read requests again; some may already wait in its reader */
		c->paused = false;
		turns_push(s, c);
	}
	conn_update_poll(s, c);
}

static void conn_queue(struct server *s, struct conn *c, Strata__V1__Response *r);

static void conn_send(struct server *s, struct conn *c, Strata__V1__Response *r)
{
	if (c->dead)
		return;
	r->protocol_version = STRATA_PROTOCOL_VERSION;
	/* Every string sent is UTF-8, whatever a handler put in it (a model's
	 * path or name, text from the model): proto3 says so, and clients in
	 * other languages refuse the frame otherwise. */
	struct frame_utf8_fixes fixes = { 0 };
	if (frame_sanitize_utf8(&r->base, &fixes) < 0) {
		frame_utf8_fixes_undo(&fixes);
		log_err("client %" PRIu64 ": out of memory for a reply; closing it", c->id);
		conn_close(s, c);
		return;
	}
	if (fixes.n)
		log_debug("client %" PRIu64 ": %zu string(s) of a reply were not UTF-8; sent with U+FFFD",
			  c->id, fixes.n);
	conn_queue(s, c, r);
	frame_utf8_fixes_undo(&fixes);
}

/* Pack r at the end of c's output and start writing it. */
static void conn_queue(struct server *s, struct conn *c, Strata__V1__Response *r)
{
	size_t need = frame_size(&r->base);
	if (need > FRAME_HEADER_BYTES + FRAME_RESPONSE_CAP) {
		/* the proto's promise: no frame above 64 MiB, an error instead */
		log_info("client %" PRIu64 " request %" PRIu64 ": a reply of %zu bytes is over the %u a "
			 "response may hold; refused", c->id, r->id, need - FRAME_HEADER_BYTES,
			 FRAME_RESPONSE_CAP);
		struct reply_to to = conn_to(c);
		request_error(&to, r->id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			      "the reply would be %zu bytes, over the %u MiB a response may hold; "
			      "ask for less at a time", need - FRAME_HEADER_BYTES, FRAME_RESPONSE_CAP >> 20);
		return;
	}
	if (c->out_len - c->out_off + need > CONN_OUT_MAX) {
		log_warn("client %" PRIu64 " does not read the replies streamed to it (%zu bytes queued, "
			 "%zu allowed); closing it", c->id, c->out_len - c->out_off, (size_t)CONN_OUT_MAX);
		conn_close(s, c);
		return;
	}
	if (c->out_len + need > c->out_cap) {
		if (c->out_off > 0) { /* reuse the space already sent */
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		size_t cap = c->out_cap ? c->out_cap : CONN_OUT_INITIAL;
		while (cap < c->out_len + need)
			cap *= 2;
		uint8_t *p = realloc(c->out, cap);
		if (!p) {
			log_err("client %" PRIu64 ": out of memory for a reply; closing it", c->id);
			conn_close(s, c);
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	ssize_t n = frame_pack_into(&r->base, FRAME_RESPONSE_CAP, c->out + c->out_len,
				    c->out_cap - c->out_len);
	if (n < 0) {
		log_err("client %" PRIu64 ": cannot pack a reply: %s", c->id, strerror((int)-n));
		return;
	}
	c->out_len += (size_t)n;
	if (c->out_len - c->out_off > CONN_OUT_HIGH && !c->paused) {
		log_debug("client %" PRIu64 ": %zu bytes of replies unread; reading its requests again "
			  "once it has read them", c->id, c->out_len - c->out_off);
		c->paused = true;
		turns_remove(s, c);
	}
	conn_flush(s, c);
}

static void conn_reply(void *user, Strata__V1__Response *r)
{
	struct conn *c = user;
	conn_send(c->srv, c, r);
}

/* Where requests.c sends this connection's replies. */
static struct reply_to conn_to(struct conn *c)
{
	struct reply_to to = { .send = conn_reply, .user = c, .conn_id = c->id };
	return to;
}

/* ---- connection bookkeeping ---- */

static struct conn *conn_find(struct server *s, uint64_t id)
{
	for (struct conn *c = s->conns; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

/* Close now: cancel its requests, stop watching it, free it after the batch. */
static void conn_close(struct server *s, struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	turns_remove(s, c);
	if (c->lingering)
		s->n_lingering--;
	else
		s->n_conns--;
	if (c->gens.n > 0) {
		log_info("client %" PRIu64 " went away; cancelling its %u request(s)", c->id, c->gens.n);
		sched_cancel(s->sched, c->id, 0, true);
	} else {
		log_debug("client %" PRIu64 " disconnected", c->id);
	}
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->w.fd, NULL);
	close(c->w.fd);
	c->w.fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = s->graveyard;
	c->prev = NULL;
	s->graveyard = c;
}

/* The last frame is out: shut down our side for writing, then read and drop
 * what the client still sends until it closes or LINGER_NS pass. Closing a
 * socket with unread input resets the connection, and on a Unix socket the
 * client then sees ECONNRESET (or EPIPE on its write) instead of the error
 * frame that explained why. The slot is free from here; lingering has its own
 * bound (LINGER_MAX), past which the connection is closed outright. */
static void conn_linger(struct server *s, struct conn *c)
{
	if (s->n_lingering >= LINGER_MAX) {
		conn_close(s, c);
		return;
	}
	if (c->gens.n > 0) {
		log_info("client %" PRIu64 " is being closed; cancelling its %u request(s)", c->id, c->gens.n);
		sched_cancel(s->sched, c->id, 0, true);
		gen_ids_free(&c->gens);
	}
	turns_remove(s, c);
	frame_reader_release(&c->rd);
	shutdown(c->w.fd, SHUT_WR);
	c->lingering = true;
	s->n_conns--;
	s->n_lingering++;
	c->linger_deadline = clock_now_ns() + LINGER_NS;
	conn_update_poll(s, c);
}

/* Read and drop a lingering connection's input; close it at its EOF. */
static void conn_discard(struct server *s, struct conn *c)
{
	uint8_t buf[4096];
	for (size_t got = 0; got < LINGER_READ_MAX;) {
		ssize_t n = recv(c->w.fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_close(s, c); /* EOF, or the client reset it: nothing left to protect */
		return;
	}
}

/* Connections of this user now, lingering ones excepted. */
static uint32_t conns_of_uid(const struct server *s, uid_t uid)
{
	uint32_t n = 0;
	for (const struct conn *c = s->conns; c; c = c->next)
		if (!c->lingering && c->have_uid && c->uid == uid)
			n++;
	return n;
}

static void bury_dead(struct server *s)
{
	while (s->graveyard) {
		struct conn *c = s->graveyard;
		s->graveyard = c->next;
		frame_reader_release(&c->rd);
		free(c->out);
		gen_ids_free(&c->gens);
		free(c);
	}
}

static void conn_event(struct server *s, struct watch *w, uint32_t events);

static void accept_clients(struct server *s)
{
	for (;;) {
		int fd = accept4(s->lis->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		struct conn *c = calloc(1, sizeof *c);
		if (!c) {
			log_err("out of memory for a new connection");
			close(fd);
			continue;
		}
		c->id = ++s->next_conn_id;
		c->w.fd = fd;
		c->w.on_event = conn_event;
		c->srv = s;
		c->last_active = clock_now_ns();
		frame_reader_init(&c->rd, s->cfg->max_frame);
		struct ucred cred;
		socklen_t len = sizeof cred;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
			c->uid = cred.uid;
			c->have_uid = true;
			log_debug("client %" PRIu64 " connected (pid %d, uid %u)", c->id, (int)cred.pid,
				  (unsigned)cred.uid);
		}
		/* counted before it joins, so that it does not count itself */
		uint32_t of_uid = c->have_uid ? conns_of_uid(s, c->uid) : 0;
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->n_conns++;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c->w };
		c->events = EPOLLIN;
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			log_err("epoll_ctl: %s", strerror(errno));
			conn_close(s, c);
			continue;
		}
		struct reply_to to = conn_to(c);
		if (s->n_conns > s->cfg->max_clients) {
			log_info("client %" PRIu64 " refused: %u connections already (--max-clients)", c->id,
				 s->cfg->max_clients);
			request_error(&to, 0, STRATA__V1__ERROR_CODE__ERROR_CODE_OVERLOADED,
				     "too many connections (%u, --max-clients); try again later",
				     s->cfg->max_clients);
		} else if (of_uid >= s->cfg->max_clients_per_uid) {
			log_info("client %" PRIu64 " refused: uid %u has %u connections already "
				 "(--max-clients-per-uid)", c->id, (unsigned)c->uid, of_uid);
			request_error(&to, 0, STRATA__V1__ERROR_CODE__ERROR_CODE_OVERLOADED,
				     "uid %u already has %u connections, its share of the %u slots "
				     "(--max-clients-per-uid); try again later",
				     (unsigned)c->uid, of_uid, s->cfg->max_clients);
		} else {
			continue;
		}
		c->closing = true;
		conn_flush(s, c);
	}
}

/* ---- requests ---- */

static void handle_frame(struct server *s, struct conn *c, const uint8_t *buf, size_t len)
{
	Strata__V1__Request *req = strata__v1__request__unpack(NULL, len, buf);
	const char *field = NULL;
	struct reply_to to = conn_to(c);

	if (!req) {
		request_error(&to, 0, STRATA__V1__ERROR_CODE__ERROR_CODE_MALFORMED,
			     "a %zu-byte frame is not a strata.v1.Request", len);
		c->closing = true;
		conn_flush(s, c);
		return;
	}
	uint64_t id = req->id;
	/* the bytes themselves: unpacked strings stop at a NUL, and a repeated
	 * sub-message is already replaced */
	const char *problem = NULL;
	if (frame_check_wire(&strata__v1__request__descriptor, buf, len, &field, &problem) < 0) {
		request_error(&to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_MALFORMED, "field '%s' %s",
			      field ? field : "?", problem ? problem : "is malformed");
		c->closing = true;
		conn_flush(s, c);
		goto out;
	}
	if (!c->greeted ? req->protocol_version != STRATA_PROTOCOL_VERSION
			: req->protocol_version != 0 && req->protocol_version != STRATA_PROTOCOL_VERSION) {
		if (req->protocol_version == 0)
			request_error(&to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_BAD_VERSION,
				     "the first request must carry protocol_version; this server speaks "
				     "version %d", STRATA_PROTOCOL_VERSION);
		else
			request_error(&to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_BAD_VERSION,
				     "client speaks protocol version %u, this server speaks version %d",
				     req->protocol_version, STRATA_PROTOCOL_VERSION);
		c->closing = true;
		conn_flush(s, c);
		goto out;
	}
	c->greeted = true;
	if (id == 0) {
		request_error(&to, 0, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			     "request id must be non-zero");
		goto out;
	}
	struct request_env env = {
		.cfg = s->cfg, .e = s->e, .sched = s->sched, .draining = s->draining,
		.n_conns = s->n_conns, .uptime_ms = (clock_now_ns() - s->t_start) / 1000000,
	};
	request_handle(&env, &c->gens, req, &to);
out:
	strata__v1__request__free_unpacked(req, NULL);
}

/* One turn: serve up to FRAMES_PER_TURN frames of c, reading as needed. When
 * the limit ends the turn, c joins the turn list: frames it sent in the same
 * read already sit in its reader, and epoll will not announce them again. */
static void conn_readable(struct server *s, struct conn *c)
{
	for (int frames = 0; !c->dead && !c->closing && !c->paused; frames++) {
		if (frames == FRAMES_PER_TURN) {
			turns_push(s, c);
			return;
		}
		int rc = frame_reader_fill(&c->rd, c->w.fd);
		if (rc == FRAME_AGAIN) {
			/* the frame timeout runs from the first byte of a frame */
			if (!frame_reader_started(&c->rd))
				c->frame_t0 = 0;
			else if (!c->frame_t0)
				c->frame_t0 = clock_now_ns();
			return;
		}
		if (rc == FRAME_READY) {
			uint8_t *buf;
			size_t len;
			if (frame_reader_take(&c->rd, &buf, &len) == 0) {
				c->frame_t0 = 0;
				handle_frame(s, c, buf, len);
				free(buf);
			}
			continue;
		}
		if (rc == FRAME_EOF) {
			conn_close(s, c);
			return;
		}
		if (rc == -EMSGSIZE) {
			struct reply_to to = conn_to(c);
			request_error(&to, 0, STRATA__V1__ERROR_CODE__ERROR_CODE_FRAME_TOO_LARGE,
				     "a frame of %u bytes is over this server's limit of %u bytes (--max-frame)",
				     c->rd.length, s->cfg->max_frame);
			c->closing = true;
			conn_flush(s, c);
			return;
		}
		if (rc == -EPROTO)
			log_debug("client %" PRIu64 " hung up in the middle of a frame", c->id);
		else if (rc != -ECONNRESET)
			log_debug("client %" PRIu64 ": read: %s", c->id, strerror(-rc));
		conn_close(s, c);
		return;
	}
}

/* One more turn for each connection queued before this call, in order;
 * those that again use their whole turn go to the back of the list. */
static void serve_turns(struct server *s)
{
	for (uint32_t n = s->n_turns; n > 0 && s->turns_head; n--) {
		struct conn *c = s->turns_head;
		turns_remove(s, c);
		conn_readable(s, c);
	}
}

static void conn_event(struct server *s, struct watch *w, uint32_t events)
{
	struct conn *c = container_of(w, struct conn, w);
	if (c->dead)
		return; /* closed earlier in this batch of events */
	if (c->lingering) {
		conn_discard(s, c);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		c->last_active = clock_now_ns();
	if (events & EPOLLOUT)
		conn_flush(s, c);
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		conn_readable(s, c);
}

static void listen_event(struct server *s, struct watch *w, uint32_t events)
{
	(void)w;
	(void)events;
	if (!s->draining)
		accept_clients(s);
}

/* ---- scheduler events ---- */

static void drain_events(struct server *s)
{
	uint64_t counter;
	if (read(s->w_wake.fd, &counter, sizeof counter) < 0) {
		/* EAGAIN: nothing new; events are taken below anyway */
	}
	struct sched_event *list = sched_take_events(s->sched);
	for (struct sched_event *ev = list; ev; ev = ev->next) {
		struct conn *c = conn_find(s, ev->client_id);
		if (!c || c->dead || c->lingering)
			continue; /* the client left or is being closed; its requests were cancelled */
		if (ev->kind == SCHED_EV_DONE) {
			gen_ids_remove(&c->gens, ev->request_id);
			c->last_active = clock_now_ns(); /* the idle time starts now */
			request_log_done(c->id, ev);
		}
		struct reply_to to = conn_to(c);
		request_event_reply(s->e, ev, &to);
	}
	sched_event_free(list);
}

static void wake_event(struct server *s, struct watch *w, uint32_t events)
{
	(void)w;
	(void)events;
	drain_events(s);
}

/* ---- timer: watchdog, STATUS=, drain ---- */

/* Close what waits too long: lingering connections past their deadline, a
 * frame begun more than --frame-timeout ago, and connections with no request
 * running, no frame begun, that neither sent nor received anything for
 * --idle-timeout (a client that does not read its replies included). Without
 * these, connections that send nothing hold --max-clients for ever. */
static void check_timeouts(struct server *s, uint64_t now)
{
	uint64_t frame_ns = (uint64_t)s->cfg->frame_timeout * 1000000000ull;
	uint64_t idle_ns = (uint64_t)s->cfg->idle_timeout * 1000000000ull;
	for (struct conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (c->lingering) {
			if (now >= c->linger_deadline)
				conn_close(s, c);
		} else if (frame_ns && c->frame_t0 && !c->paused && now - c->frame_t0 >= frame_ns) {
			log_info("client %" PRIu64 ": a request frame begun %u s ago is still incomplete "
				 "(--frame-timeout); closing it", c->id, s->cfg->frame_timeout);
			conn_close(s, c);
		} else if (idle_ns && c->gens.n == 0 && (!c->frame_t0 || c->paused) &&
			   now - c->last_active >= idle_ns) {
			log_info("client %" PRIu64 ": idle for %u s (--idle-timeout); closing it", c->id,
				 s->cfg->idle_timeout);
			conn_close(s, c);
		}
	}
}

static void timer_event(struct server *s, struct watch *w, uint32_t events)
{
	(void)events;
	uint64_t expirations;
	if (read(w->fd, &expirations, sizeof expirations) < 0) {
		/* EAGAIN on a spurious wake-up */
	}
	uint64_t now = clock_now_ns();
	check_timeouts(s, now);
	struct sched_stats st;
	sched_get_stats(s->sched, &st);

	if (st.progress != s->wd_progress) {
		s->wd_progress = st.progress;
		s->wd_progress_at = now;
	}
	if (s->wd_interval_us && now - s->wd_last_ping >= s->wd_interval_us * 1000ull) {
		/* Ping only while the scheduler is alive: it advances its counter every
		 * layer of a pass and every second when idle. A stuck engine stops the
		 * pings and systemd restarts us. */
		uint64_t stale = 2 * s->wd_interval_us * 1000ull + WATCHDOG_SLACK_NS;
		if (now - s->wd_progress_at < stale) {
			notify_watchdog();
			s->wd_last_ping = now;
		} else {
			log_err("the scheduler made no progress for %.1f s; withholding the watchdog ping",
				(double)(now - s->wd_progress_at) / 1e9);
		}
	}

	char line[256];
	const struct engine_info *m = engine_info(s->e);
	if (s->draining)
		snprintf(line, sizeof line, "Stopping: %u request(s) finishing", st.active);
	else
		snprintf(line, sizeof line, "Serving %s: %u active, %u queued, %.1f tok/s, %" PRIu64
			 " requests done", m->name, st.active, st.queued, st.active ? st.recent_tok_s : 0.0,
			 st.requests_total);
	if (strcmp(line, s->status_line) != 0) {
		snprintf(s->status_line, sizeof s->status_line, "%s", line);
		notify_status("%s", line);
	}
}

static void begin_drain(struct server *s, int signo)
{
	if (s->draining)
		return;
	s->draining = true;
	struct sched_stats st;
	sched_get_stats(s->sched, &st);
	log_notice("%s: stopping; %u running request(s) get %u s to finish, %u queued are refused",
		   strsignal(signo), st.active, s->cfg->shutdown_timeout, st.queued);
	notify_stopping("Stopping: finishing running requests");
	if (s->lis->fd >= 0) {
		epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lis->fd, NULL);
		listener_close(s->lis);
	}
	uint64_t grace = (uint64_t)s->cfg->shutdown_timeout * 1000000000ull;
	sched_drain(s->sched, grace);
	s->drain_deadline = clock_now_ns() + grace + DRAIN_SLACK_NS;
}

static void signal_event(struct server *s, struct watch *w, uint32_t events)
{
	(void)w;
	(void)events;
	for (int signo; (signo = signals_next()) != 0;) {
		if (signo == SIGHUP)
			log_notice("SIGHUP ignored: restart stratad to change its settings");
		else
			begin_drain(s, signo);
	}
}

static bool all_flushed(const struct server *s)
{
	for (const struct conn *c = s->conns; c; c = c->next)
		if (c->out_len > c->out_off)
			return false;
	return true;
}

/* ---- setup and loop ---- */

/* Start watching w (its fd, for input) with its handler. */
static int watch_add(struct server *s, struct watch *w, int fd,
		     void (*on_event)(struct server *, struct watch *, uint32_t))
{
	w->fd = fd;
	w->on_event = on_event;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };
	return epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int server_run(const struct daemon_config *cfg, struct engine *e, struct listener *l)
{
	struct server srv = { .cfg = cfg, .e = e, .lis = l, .ep = -1 };
	struct server *s = &srv;
	int rc = 0;

	s->t_start = clock_now_ns();
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->w_wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->w_timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->ep < 0 || s->w_wake.fd < 0 || s->w_timer.fd < 0) {
		rc = -errno;
		log_err("cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	struct itimerspec its = { .it_interval = { TICK_SEC, 0 }, .it_value = { TICK_SEC, 0 } };
	s->wd_interval_us = notify_watchdog_interval_usec();
	if (s->wd_interval_us && s->wd_interval_us < TICK_SEC * 1000000ull) {
		/* tick at least as often as the watchdog wants a ping */
		its.it_interval.tv_sec = 0;
		its.it_interval.tv_nsec = (long)s->wd_interval_us * 1000;
		its.it_value = its.it_interval;
	}
	timerfd_settime(s->w_timer.fd, 0, &its, NULL);

	struct sched_config sc = { .max_queue = cfg->max_queue, .wake_fd = s->w_wake.fd };
	rc = sched_start(e, &sc, &s->sched);
	if (rc < 0) {
		log_err("cannot start the scheduler: %s", strerror(-rc));
		goto out;
	}
	if ((rc = watch_add(s, &s->w_listen, l->fd, listen_event)) < 0 ||
	    (rc = watch_add(s, &s->w_signal, signals_fd(), signal_event)) < 0 ||
	    (rc = watch_add(s, &s->w_wake, s->w_wake.fd, wake_event)) < 0 ||
	    (rc = watch_add(s, &s->w_timer, s->w_timer.fd, timer_event)) < 0) {
		log_err("epoll_ctl: %s", strerror(-rc));
		goto out;
	}
	/* SIGTERM now drains through the loop; a signal that came just before
	 * this ended the process in the handler */
	signals_loop_started();

	const struct engine_info *m = engine_info(e);
	if (l->activated)
		log_notice("listening on the socket systemd passed (socket activation)");
	else
		log_notice("listening on %s", l->path);
	snprintf(s->status_line, sizeof s->status_line, "Serving %s: ready", m->name);
	notify_ready(s->status_line);
	s->wd_progress_at = clock_now_ns();
	if (s->wd_interval_us) {
		notify_watchdog();
		s->wd_last_ping = clock_now_ns();
	}

	while (!s->draining || !sched_drained(s->sched) || !all_flushed(s)) {
		if (s->draining && clock_now_ns() > s->drain_deadline) {
			log_warn("stopping with replies still unsent to slow clients");
			break;
		}
		struct epoll_event evs[EPOLL_BATCH];
		/* Queued turns: look for events without sleeping, then serve them. */
		int timeout = s->turns_head ? 0 : s->draining ? DRAIN_POLL_MS : -1;
		int n = epoll_wait(s->ep, evs, EPOLL_BATCH, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			log_err("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct watch *w = evs[i].data.ptr;
			w->on_event(s, w, evs[i].events);
		}
		serve_turns(s);
		bury_dead(s);
	}
	drain_events(s);
	log_notice("stopped");
out:
	sched_stop(s->sched);
	while (s->conns)
		conn_close(s, s->conns);
	bury_dead(s);
	if (s->w_timer.fd >= 0)
		close(s->w_timer.fd);
	if (s->w_wake.fd >= 0)
		close(s->w_wake.fd);
	if (s->ep >= 0)
		close(s->ep);
	listener_close(l);
	return rc;
}
