/* draft.h: speculative decoding's proposals: for each generating sequence,
 * up to k tokens its next pass over the target's weights verifies at once.
 * Two sources: a small draft model with the target's vocabulary (its own
 * engine, resident, sharing the target's threads: its passes run on the
 * driver's thread just before the target's pass, never beside it), and
 * prompt lookup (the continuation of the latest earlier occurrence of the
 * context's last n-gram). It only proposes: which tokens are kept, and with
 * what probability, is the generation core's (seq.h), so greedy output stays
 * the target's own and sampled output keeps the target's distribution. */
#ifndef STRATA_ENGINE_DRAFT_H
#define STRATA_ENGINE_DRAFT_H

#include <stdint.h>

#include "common/err.h"

struct engine;
struct seq;

/* Where a sequence's drafts come from. */
enum draft_source {
	DRAFT_DEFAULT = 0, /* not said: the engine's (--draft), for a sequence */
	DRAFT_NONE,	   /* no drafts: one token per pass */
	DRAFT_LOOKUP,	   /* n-grams of the sequence's own context */
	DRAFT_MODEL,	   /* the engine's draft model (--draft FILE) */
};

/* "default", "none", "lookup", "model": static. */
const char *draft_source_name(enum draft_source d);

/* The longest draft one pass verifies (--draft-max is checked against it). */
#define DRAFT_MAX_TOKENS 64

/* Prompt lookup matches the context's last n tokens, n from the first to
 * the second, longest first. */
#define DRAFT_LOOKUP_NGRAM_MAX 4
#define DRAFT_LOOKUP_NGRAM_MIN 1

struct drafter;

/* A drafter for the sequences a driver runs on e (the target engine; its
 * draft model, if any, is engine_draft_model(e)). It remembers what the draft
 * model's cache holds for each slot, so one drafter per engine at a time.
 * The caller owns *out (drafter_free; NULL is a no-op). 0 or -ENOMEM. */
int drafter_create(struct engine *e, struct drafter **out);
void drafter_free(struct drafter *d);

/* Draft for seqs[0..n): each that seq_draft_begin() allowed k > 0 gets up to
 * k tokens (seq_draft_push*): lookup sequences from their context, model
 * sequences from draft-model passes they share (first catching the draft
 * model's cache up with tokens it has not seen, then one row per sequence
 * per drafted token, until each has its k or stops at an end-of-generation
 * token or a stop string). 0, or the -errno of a failed draft pass (message
 * in err): the sequences keep the drafts they have, which may be none, and
 * the target's pass goes on. */
int drafter_run(struct drafter *d, struct seq *const *seqs, uint32_t n, struct st_err *err);

/* The lookup itself, for tests: propose up to max tokens for the context
 * ctx[0..n) into out, returns how many. */
uint32_t draft_lookup(const int32_t *ctx, uint32_t n, uint32_t max, int32_t *out);

#endif
