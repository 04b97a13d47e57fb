/* score.h: scoring continuations of a context (the Score request, and how
 * lm-evaluation-harness asks multiple-choice questions): for each
 * continuation, the sum of its tokens' log-probabilities given the context
 * and the tokens before them, and whether each was the model's greedy choice.
 * The context is evaluated once, in the first of the scorer's KV slots; the
 * continuations run in the other slots, which share the context's positions
 * (engine_slot_link), so as many continuations as there are slots go through
 * the same pass as the end of the context. Like a sequence (seq.h) it only
 * adds rows to a pass and takes its logits; a driver runs the passes. */
#ifndef STRATA_ENGINE_SCORE_H
#define STRATA_ENGINE_SCORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/batch.h"
#include "engine/logprob.h"
#include "engine/seq.h"

struct engine;
struct score;

/* Limits of one request. */
#define SCORE_MAX_CONTINUATIONS 64

struct score_params {
	const int32_t *context;		/* (n_context) ids, BOS included if wanted; >= 1 */
	uint32_t n_context;
	const int32_t *const *conts;	/* (n_conts) continuations: conts[i] has n_cont[i] >= 1 ids */
	const uint32_t *n_cont;
	uint32_t n_conts;		/* 1..SCORE_MAX_CONTINUATIONS */
	bool token_logprobs;		/* keep each token's logprob (score_result.tokens) */
	uint32_t top_logprobs;		/* ... with that many alternatives */
};

struct score_result {
	double logprob;			/* sum over its tokens */
	bool greedy;			/* every token was the most likely */
	uint32_t n_tokens;
	struct logprob_token *tokens;	/* (n_tokens) with token_logprobs, else NULL; owned */
};

/* Check p against the engine (sizes, ids, context + continuation within the
 * context window): 0 or -EINVAL with a message. score_create checks the same. */
int score_params_check(const struct engine *e, const struct score_params *p, struct st_err *err);

/* A scorer on KV slots slots[0..n_slots) (n_slots >= 1; it resets and links
 * them). The caller owns *out (score_free; NULL is a no-op). */
int score_create(struct engine *e, const struct score_params *p, const uint32_t *slots,
		 uint32_t n_slots, struct score **out, struct st_err *err);
void score_free(struct score *sc);

/* Append up to `room` rows (and no more logits rows than b has left); returns
 * the rows added. */
uint32_t score_add_rows(struct score *sc, struct batch *b, uint32_t room);
/* The pass with its rows ran: take its logits ((b->n_want, n_vocab) f32). */
void score_pass_done(struct score *sc, const float *logits, const struct seq_pass *pass);
/* A pass failed, or the driver ends it: it is done, with that error. */
void score_fail(struct score *sc, int code, const char *message);

bool score_done(const struct score *sc);
/* 0, or the failure's -errno and its message. */
int score_error(const struct score *sc, const char **message);
/* The results, once done without error: (n_conts) in the request's order. */
const struct score_result *score_results(const struct score *sc);
/* The request's sizes. */
uint32_t score_n_continuations(const struct score *sc);
uint32_t score_n_context(const struct score *sc);
/* Rows evaluated so far, and in all (context + every continuation but its
 * last token), for progress. */
void score_progress(const struct score *sc, uint32_t *done, uint32_t *total);
/* Counts and times, as a sequence's (n_prompt: the rows it evaluates). */
const struct seq_stats *score_stats(const struct score *sc);

#endif
