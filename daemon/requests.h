/* requests.h: what each strata.v1 request means. It checks a request's
 * fields, answers Tokenize, Detokenize and Status at once, turns a Generate
 * into a scheduler request, and turns the scheduler's events into replies.
 * It never touches a socket: the server checks framing, UTF-8, version and
 * id first, and replies go to a callback. */
#ifndef STRATA_DAEMON_REQUESTS_H
#define STRATA_DAEMON_REQUESTS_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/frame.h"

struct daemon_config;
struct engine;
struct sched;
struct sched_event;

/* Where replies go. send() gets each Response, which lives only for the call. */
struct reply_to {
	void (*send)(void *user, Strata__V1__Response *r);
	void *user;
	uint64_t conn_id; /* the connection, as the scheduler and the log name it */
};

/* The ids of a connection's Generates that have not finished; owned by the
 * connection (zero-initialize; gen_ids_free when it closes). */
struct gen_ids {
	uint64_t *ids; /* (n) */
	uint32_t n, cap;
};
bool gen_ids_has(const struct gen_ids *g, uint64_t id);
int gen_ids_add(struct gen_ids *g, uint64_t id); /* 0 or -ENOMEM */
void gen_ids_remove(struct gen_ids *g, uint64_t id);
void gen_ids_free(struct gen_ids *g);

/* What the handlers read of the daemon. */
struct request_env {
	const struct daemon_config *cfg;
	struct engine *e;
	struct sched *sched;
	bool draining;	   /* SIGTERM came: no new Generates */
	uint32_t n_conns;  /* connections open now */
	uint64_t uptime_ms;
};

/* An Error reply. */
void request_error(const struct reply_to *to, uint64_t id, Strata__V1__ErrorCode code,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Answer or start `req` (id non-zero, version checked). */
void request_handle(const struct request_env *env, struct gen_ids *gens,
		    const Strata__V1__Request *req, const struct reply_to *to);

/* A scheduler event as its Response: a Piece, the Done that ends a Generate,
 * or the ScoreReply (or Error) that ends a Score. */
void request_event_reply(const struct engine *e, const struct sched_event *ev,
			 const struct reply_to *to);

/* One log line for a finished Generate. */
void request_log_done(uint64_t conn_id, const struct sched_event *ev);

#endif
