/* seq.h: the generation core: one sequence's life, from its prompt to the
 * reason it finished. It holds the tokens (prompt, then generated), the
 * sampler, the streaming detokenizer, the stop strings and the text held back
 * because it may start one, the finish reason and the timings. It does not
 * run passes: a driver (the daemon's scheduler for many sequences at once,
 * generate.c for one) asks each sequence for its rows, runs the pass, and
 * hands the logits back. So stratad, strata-model and strata-bench generate
 * with the same code. */
#ifndef STRATA_ENGINE_SEQ_H
#define STRATA_ENGINE_SEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/batch.h"
#include "engine/draft.h"
#include "engine/logprob.h"
#include "engine/sampler.h"

struct engine;
struct seq;

enum seq_state {
	SEQ_PROMPT,	/* its prompt is not all in the KV cache yet */
	SEQ_GENERATING, /* one token per pass, or more with drafts */
	SEQ_FINISHED,	/* seq_finish_reason() says why */
};

enum seq_finish {
	SEQ_FINISH_NONE,      /* not finished */
	SEQ_FINISH_LENGTH,    /* max_tokens generated, or the context is full */
	SEQ_FINISH_EOG,	      /* an end-of-generation token */
	SEQ_FINISH_STOP,      /* the text contained a stop string */
	SEQ_FINISH_CANCELLED, /* the driver cancelled it (a client's Cancel, a hang-up) */
	SEQ_FINISH_ERROR,     /* a pass failed, or the logits were not finite */
	SEQ_FINISH_SHUTDOWN,  /* the driver is stopping */
};

/* Limits on stop strings: enough for chat templates, bounded for the matcher. */
#define SEQ_MAX_STOPS 16
#define SEQ_MAX_STOP_BYTES 256

struct seq_params {
	const int32_t *prompt;	  /* (n_prompt) token ids, BOS included if wanted; copied */
	uint32_t n_prompt;	  /* 1 .. context - 1 */
	uint32_t max_tokens;	  /* >= 1; also bounded by the context */
	struct sampler_params sampling;
	const char *const *stops; /* (n_stops) non-empty UTF-8 strings; copied */
	uint32_t n_stops;	  /* <= SEQ_MAX_STOPS, each <= SEQ_MAX_STOP_BYTES bytes */
	bool ignore_eos;	  /* an end-of-generation token does not end it */
	bool has_end_of_turn;	  /* end_of_turn ends it like an end-of-generation token */
	int32_t end_of_turn;	  /* (a chat template's end-of-turn token) */
	bool logprobs;		  /* each sampled token's log-probability (seq_piece) ... */
	uint32_t top_logprobs;	  /* ... with that many alternatives (<= LOGPROB_MAX_TOP) */
	bool echo_logprobs;	  /* the prompt tokens' too (seq_prompt_logprobs) */
	enum draft_source draft;  /* speculative decoding; DEFAULT: the engine's (--draft) */
	uint32_t draft_max;	  /* most drafts verified per pass; 0: the engine's */
	uint32_t draft_min;	  /* fewest, when drafts are rejected; 0: the engine's */
};

/* Check p against the engine (prompt fits the context, sampling values in
 * range, stop strings within the limits): 0 or -EINVAL with a message for
 * the person who sent it. seq_create checks the same. */
int seq_params_check(const struct engine *e, const struct seq_params *p, struct st_err *err);

/* What a sequence produced since the last report: whole UTF-8 characters
 * (never a split one; text held back for a possible stop string comes later)
 * and the token ids sampled that made them. Valid during the callback only. */
struct seq_piece {
	const char *text;     /* (len) bytes; may be empty */
	size_t len;
	const int32_t *ids;   /* (n_ids) ids; 0 when only held-back text is flushed */
	uint32_t n_ids;
	const struct logprob_token *logprobs; /* (n_ids) with params.logprobs, else NULL */
};

/* Where a sequence's output goes; every member may be NULL. */
struct seq_sink {
	void (*piece)(void *user, struct seq *s, const struct seq_piece *p);
	/* each sampled token with the logits it was sampled from ((n_vocab) f32,
	 * before any penalty) */
	void (*logits)(void *user, struct seq *s, int32_t token, const float *logits,
		       uint32_t n_vocab);
	void *user;
};

/* Measurements of one sequence, in CLOCK_MONOTONIC ns (common/clock.h);
 * 0 = not happened yet. A pass shared by several sequences counts in full
 * for each. */
struct seq_stats {
	uint32_t n_prompt;
	uint32_t n_past;	    /* tokens in the KV cache (progress through the prompt) */
	uint32_t n_cached;	    /* of the prompt, tokens whose KV came from the cache (an
				     * earlier sequence's prefix) instead of being computed */
	uint32_t n_generated;	    /* sampled, a final end-of-generation token included */
	uint32_t passes;	    /* passes it took part in */
	uint32_t gen_passes;	    /* of which gave it tokens (with drafts, up to k + 1 each) */
	uint32_t drafted;	    /* draft tokens its passes verified */
	uint32_t accepted;	    /* of which the target kept */
	uint64_t t_created;
	uint64_t t_first_pass;
	uint64_t t_first_token;
	uint64_t t_last_token;
	uint64_t bytes_read;	    /* weight bytes read from disk during its passes */
	uint64_t stall_ns;	    /* its passes' time waiting for the disk */
	uint64_t compute_ns;	    /* its passes' wall time minus that stall */
};

/* What one pass cost, for the sequences that were in it. */
struct seq_pass {
	uint64_t t_start, t_end;    /* ns */
	uint64_t bytes_read;
	uint64_t stall_ns;
};

/* A new sequence on KV slot `slot`, which starts with the longest prefix of
 * the prompt the KV cache holds from earlier sequences (engine_slot_reuse;
 * stats n_cached). The caller owns *out (seq_free; NULL is a no-op).
 * -EINVAL (seq_params_check) or -ENOMEM. */
int seq_create(struct engine *e, const struct seq_params *p, uint32_t slot, struct seq **out,
	       struct st_err *err);
void seq_free(struct seq *s);

enum seq_state seq_state(const struct seq *s);
uint32_t seq_slot(const struct seq *s);
/* Rows it would put in a pass now: the rest of its prompt, 1 + its drafts
 * while generating, 0 when finished. */
uint32_t seq_rows_pending(const struct seq *s);

/* Append up to `room` of its pending rows to b (prompt chunks: at most room;
 * the last prompt row and every generated row want logits, and with
 * echo_logprobs every prompt row; it stops early when b has no logits row
 * left). While generating: its last token and its drafts, every row wanting
 * logits (drafts that do not fit are dropped). Only the rows whose KV blocks
 * fit in memory beside the pass's others are added (engine_plan_rows, after
 * the driver's engine_plan_begin). Returns the rows added (0: it waits for
 * this pass). A sequence must not be added twice to one pass. */
uint32_t seq_add_rows(struct seq *s, struct batch *b, uint32_t room);

/* The pass with its rows ran; `logits` are the pass's logits ((b->n_want,
 * n_vocab) f32, rows in batch order). The sequence advances its KV position,
 * samples when it had a logits row, reports pieces to sink and may finish.
 * With drafts it verifies them in order: greedy keeps a draft when it is the
 * target's choice; sampling keeps draft d with probability min(1, p(d)/q(d))
 * (p the target's distribution, q the draft's; a point mass for lookup) and
 * otherwise draws from the normalized max(0, p - q). The first draft not kept
 * is replaced by that choice, the rest are dropped (engine_slot_truncate),
 * and when every draft is kept the last row gives one token more. Each token
 * is then taken as without drafts: end-of-generation, stop strings,
 * max_tokens and log-probabilities apply to it in turn, and the sequence may
 * finish in the middle of a kept run (nothing after is reported). */
void seq_pass_done(struct seq *s, const float *logits, const struct seq_pass *pass,
		   const struct seq_sink *sink);

/* ---- speculative decoding: draft.h proposes, the sequence verifies ---- */

/* Its drafts' source: NONE, LOOKUP or MODEL. */
enum draft_source seq_draft_source(const struct seq *s);
/* How many drafts it would like its next pass to verify: 0 unless it is
 * generating with drafts; its adaptive k (within draft_min..draft_max, up
 * after a pass that kept every draft, down after one that did not), bounded
 * by the tokens and positions it has left. */
uint32_t seq_draft_wanted(const struct seq *s);
/* Start the draft for its next pass, of at most k tokens (the driver's
 * share of the pass; 0: none this time). */
void seq_draft_begin(struct seq *s, uint32_t k);
/* How many more draft tokens it takes now (0 once the draft is closed). */
uint32_t seq_draft_room(const struct seq *s);
/* The draft so far: (*n) ids owned by s, valid until the next pass. */
const int32_t *seq_draft(const struct seq *s, uint32_t *n);
/* Append a draft token proposed with certainty (lookup: q is a point mass).
 * Returns true while another may follow: room is left, the token does not
 * end generation and the text drafted so far contains no stop string. */
bool seq_draft_push(struct seq *s, int32_t token);
/* The draft model's logits at the next draft position ((n_vocab) f32,
 * modified): the sequence draws the token with a draft sampler of its own
 * (its parameters, another generator; greedy: the argmax) and keeps the
 * distribution it came from for the verification; *token gets it. Returns
 * as seq_draft_push. */
bool seq_draft_push_logits(struct seq *s, float *logits, int32_t *token);

/* End it now (CANCELLED, SHUTDOWN, or ERROR with `code` (-errno) and a
 * message); text still held back goes to sink first. No-op when finished. */
void seq_finish(struct seq *s, enum seq_finish why, int code, const char *message,
		const struct seq_sink *sink);

enum seq_finish seq_finish_reason(const struct seq *s);
/* ERROR: the -errno of the failure (-EIO for unreadable weights) and its
 * message; "" otherwise. */
int seq_error(const struct seq *s, const char **message);
/* STOP: the stop string that matched; NULL otherwise. */
const char *seq_stop_string(const struct seq *s);
const struct seq_stats *seq_stats(const struct seq *s);
/* The sampler's seed (the one given). */
uint64_t seq_seed(const struct seq *s);
/* Every token so far, prompt first: (*n) ids owned by s. */
const int32_t *seq_tokens(const struct seq *s, uint32_t *n);
/* With echo_logprobs: the prompt's tokens with their log-probabilities ((*n)
 * entries owned by s; entry 0, which nothing predicts, has logprob NAN), once
 * the prompt is evaluated; else NULL. */
const struct logprob_token *seq_prompt_logprobs(const struct seq *s, uint32_t *n);

#endif
