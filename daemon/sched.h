/* sched.h: the scheduler: decides which sequences step together and runs
 * the engine on its own thread. Every forward pass carries the decode rows of
 * every generating sequence (its last token, and the drafts it verifies when
 * it drafts: the pass's rows are shared out among them) plus prompt chunks of
 * sequences still reading their prompt (continuous batching), so concurrent
 * requests share each pass over the weights. It keeps the queue, the cancels and the composition of
 * each pass; what a sequence does with its logits is the generation core's
 * (engine/seq.h). It never touches sockets: the server hands it requests and
 * collects events (pieces of text, final results) that it turns into
 * replies. Communication is by message: requests and events change owner. */
#ifndef STRATA_DAEMON_SCHED_H
#define STRATA_DAEMON_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

enum sched_kind { SCHED_GENERATE, SCHED_SCORE };

struct sched_request {
	enum sched_kind kind;
	uint64_t client_id;	/* the server's name for the connection */
	uint64_t request_id;	/* the client's name for the request */
	uint64_t received_ns;	/* CLOCK_MONOTONIC when the request arrived */
	/* GENERATE: the sequence's parameters; prompt and stops point into the
	 * owned arrays below (seq_create copies them). */
	struct seq_params gen;
	int32_t *prompt;	/* (gen.n_prompt) ids, owned (malloc) */
	char **stops;		/* (gen.n_stops) strings, owned (malloc each and the array) */
	/* SCORE: the scorer's parameters; context and conts point into owned
	 * arrays (context: malloc; conts: malloc each and the arrays). */
	struct score_params score;
	int32_t *context;
	int32_t **conts;
	uint32_t *n_cont;
};

/* Free a request and everything it owns (NULL is a no-op). */
void sched_request_free(struct sched_request *r);

enum sched_event_kind { SCHED_EV_PIECE, SCHED_EV_DONE };

struct sched_event {
	struct sched_event *next;
	enum sched_event_kind kind;
	enum sched_kind req_kind;	 /* what the request was */
	uint64_t client_id;
	uint64_t request_id;
	/* PIECE: whole UTF-8 characters (never a split one) and the token ids
	 * that completed them. text may be empty (a token whose bytes are held
	 * back, or a control token). */
	char *text;	  /* (text_len) bytes, owned */
	size_t text_len;
	int32_t *ids;	  /* (n_ids), owned */
	uint32_t n_ids;
	/* DONE */
	enum seq_finish finish;
	int error;		 /* ERROR: -errno (-EIO: the weights could not be read) */
	char message[256];	 /* ERROR, SHUTDOWN: for the person */
	struct seq_stats st;	 /* its counts and times (all 0 when it never ran) */
	/* PIECE: each id's log-probability (when asked); DONE: the prompt's (echo) */
	struct logprob_token *logprobs; /* (n_logprobs) owned */
	uint32_t n_logprobs;
	struct score *score;	 /* a Score's results (score_results), owned */
	uint64_t received_ns;
	uint64_t done_ns;
	uint64_t seed;		 /* the sampler's seed */
	char *stop_string;	 /* STOP: the stop string that matched, owned */
};

void sched_event_free(struct sched_event *ev);

struct sched_config {
	uint32_t max_queue;	/* requests waiting for a slot (beyond those that get a free
				 * slot at once); more are refused */
	int wake_fd;		/* eventfd the scheduler writes when events are ready */
};

struct sched_stats {
	uint32_t active;	   /* sequences with a slot */
	uint32_t queued;	   /* waiting for a slot */
	uint64_t requests_total;   /* finished, any reason */
	uint64_t prompt_tokens_total;
	uint64_t generated_tokens_total;
	uint64_t passes;	   /* forward passes */
	uint64_t gen_passes;	   /* of which generated tokens ... */
	uint64_t gen_pass_tokens;  /* ... this many (every sequence's, drafts kept included) */
	uint64_t drafted_total;	   /* draft tokens the passes verified */
	uint64_t accepted_total;   /* of which kept */
	uint64_t pass_ns;	   /* their wall time */
	uint64_t stall_ns;	   /* of which waiting for the disk */
	double recent_tok_s;	   /* generated tokens/s over the last passes */
	uint64_t progress;	   /* advances while the scheduler makes progress (watchdog) */
	bool busy;		   /* inside a forward pass right now */
	struct engine_stats engine; /* as of the last pass (the engine itself is the thread's) */
};

/* Where one request stands, for Status. */
enum sched_req_state {
	SCHED_REQ_QUEUED,
	SCHED_REQ_PROMPT,
	SCHED_REQ_GENERATING,
	SCHED_REQ_WAITING,	/* left out of the last pass for want of KV memory */
};
struct sched_req_info {
	uint64_t client_id, request_id;
	enum sched_req_state state;
	uint32_t prompt_tokens;	   /* in its prompt (a Score: the rows it evaluates) */
	uint32_t prompt_done;	   /* of which in the KV cache */
	uint32_t generated;	   /* tokens sampled */
	uint32_t max_tokens;
	uint64_t received_ns;
};

struct sched;

/* Start the scheduler thread over `e` (borrowed). 0 or -errno. */
int sched_start(struct engine *e, const struct sched_config *cfg, struct sched **out);
/* Stop the thread (ending every request with SHUTDOWN) and free. NULL is a no-op. */
void sched_stop(struct sched *s);

/* Hand over a request. 0: owned by the scheduler now. -EAGAIN: the queue is
 * full (overloaded), -ESHUTDOWN: draining; in both cases the caller still owns it. */
int sched_submit(struct sched *s, struct sched_request *r);
/* Cancel a request (request_id) or every request of a client (request_id 0
 * and all = true). Unknown ids are ignored; returns whether one was found. */
bool sched_cancel(struct sched *s, uint64_t client_id, uint64_t request_id, bool all);

/* Take every pending event, oldest first (a list the caller frees). */
struct sched_event *sched_take_events(struct sched *s);

/* Begin draining: queued requests end now (SHUTDOWN); running ones may go on
 * until `grace_ns` has passed, then end with SHUTDOWN. New submits fail. */
void sched_drain(struct sched *s, uint64_t grace_ns);
/* True once draining and nothing is queued or running. */
bool sched_drained(struct sched *s);

void sched_get_stats(struct sched *s, struct sched_stats *out);
/* Running requests (slot order), then queued ones (arrival order), at most
 * cap into out; returns how many there are in all (may exceed cap). */
uint32_t sched_list(struct sched *s, struct sched_req_info *out, uint32_t cap);

#endif
