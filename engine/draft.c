/* draft.c: the proposals of speculative decoding (see draft.h). Lookup is a
 * scan of the sequence's context; model drafts run the draft model's engine
 * on the caller's thread, one batch for every sequence that drafts, pass
 * after pass, on the target's threads. Whether a draft is kept is seq.c's. */
#include "engine/draft.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/engine.h"
#include "engine/seq.h"

const char *draft_source_name(enum draft_source d)
{
	switch (d) {
	case DRAFT_NONE: return "none";
	case DRAFT_LOOKUP: return "lookup";
	case DRAFT_MODEL: return "model";
	case DRAFT_DEFAULT: break;
	}
	return "default";
}

uint32_t draft_lookup(const int32_t *ctx, uint32_t n, uint32_t max, int32_t *out)
{
	uint32_t g = n > DRAFT_LOOKUP_NGRAM_MAX ? DRAFT_LOOKUP_NGRAM_MAX : n - (n > 0);
	for (; g >= DRAFT_LOOKUP_NGRAM_MIN && g > 0; g--) {
		const int32_t *suffix = ctx + n - g;
		/* the latest earlier occurrence: text being repeated is repeated
		 * from where it was last seen */
		for (uint32_t start = n - g; start-- > 0;) {
			if (memcmp(ctx + start, suffix, g * sizeof *ctx) != 0)
				continue;
			/* what followed it; past the end of the context the draft
			 * continues from itself (a repeating pattern repeats on) */
			uint32_t m = 0;
			for (uint32_t j = start + g; m < max; j++, m++)
				out[m] = j < n ? ctx[j] : out[j - n];
			return m;
		}
	}
	return 0;
}

/* A sequence drafting from the model in this run. */
struct active {
	struct seq *s;
	uint32_t slot;
	int32_t row;	/* its logits row in the pass being run, or -1 */
	uint32_t fed;	/* positions the draft cache holds once the pass ran */
	bool open;	/* wants more drafts */
};

struct drafter {
	struct engine *e;   /* the target */
	struct engine *de;  /* its draft model, or NULL */
	uint32_t n_slots, n_ctx, n_vocab;
	int32_t *fed;	    /* (n_slots, n_ctx) tokens whose K/V the draft cache holds */
	uint32_t *n_fed;    /* (n_slots) how many, from position 0 */
	struct batch b;	    /* a draft pass: at most one logits row per sequence */
	float *logits;	    /* (n_slots, n_vocab) f32 */
	struct active *act; /* (n_slots) */
};

int drafter_create(struct engine *e, struct drafter **out)
{
	struct drafter *d = calloc(1, sizeof *d);
	*out = NULL;
	if (!d)
		return -ENOMEM;
	d->e = e;
	d->de = engine_draft_model(e);
	d->n_slots = engine_n_slots(e);
	d->n_ctx = engine_n_ctx(e);
	d->n_vocab = engine_n_vocab(e);
	if (d->de) {
		d->fed = malloc((size_t)d->n_slots * d->n_ctx * sizeof *d->fed);
		d->n_fed = calloc(d->n_slots, sizeof *d->n_fed);
		d->logits = malloc((size_t)d->n_slots * d->n_vocab * sizeof *d->logits);
		d->act = calloc(d->n_slots, sizeof *d->act);
		if (!d->fed || !d->n_fed || !d->logits || !d->act ||
		    batch_init(&d->b, engine_max_batch(d->de), d->n_slots) < 0) {
			drafter_free(d);
			return -ENOMEM;
		}
	}
	*out = d;
	return 0;
}

void drafter_free(struct drafter *d)
{
	if (!d)
		return;
	batch_free(&d->b);
	free(d->fed);
	free(d->n_fed);
	free(d->logits);
	free(d->act);
	free(d);
}

static void run_lookup(struct seq *s)
{
	int32_t prop[DRAFT_MAX_TOKENS];
	uint32_t n;
	const int32_t *ctx = seq_tokens(s, &n);
	uint32_t m = draft_lookup(ctx, n, seq_draft_room(s), prop);
	for (uint32_t i = 0; i < m && seq_draft_push(s, prop[i]); i++)
		;
}

/* Append a's rows to the pass: the positions its draft cache lacks (the
 * context it has not seen, then its drafts but the newest), the last one
 * wanting logits. Its catch-up may take several passes. */
static void add_rows(struct drafter *d, struct active *a)
{
	uint32_t nt, nd;
	const int32_t *toks = seq_tokens(a->s, &nt);
	const int32_t *dr = seq_draft(a->s, &nd);
	uint32_t end = nt + nd, pos = d->n_fed[a->slot];
	int32_t *fed = d->fed + (size_t)a->slot * d->n_ctx;
	a->row = -1;
	for (; pos < end && d->b.n < d->b.cap; pos++) {
		int32_t t = pos < nt ? toks[pos] : dr[pos - nt];
		int32_t row = batch_add(&d->b, t, pos, a->slot, pos == end - 1);
		if (row >= 0)
			a->row = row;
		fed[pos] = t;
	}
	a->fed = pos;
}

int drafter_run(struct drafter *d, struct seq *const *seqs, uint32_t n, struct st_err *err)
{
	uint32_t n_act = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct seq *s = seqs[i];
		if (seq_draft_room(s) == 0)
			continue;
		if (seq_draft_source(s) == DRAFT_LOOKUP)
			run_lookup(s);
		else if (seq_draft_source(s) == DRAFT_MODEL && d->de && n_act < d->n_slots)
			d->act[n_act++] = (struct active){ .s = s, .slot = seq_slot(s), .open = true };
	}
	/* What the draft cache holds for a slot stays valid as far as it agrees
	 * with the sequence's tokens (K/V at a position depend on the tokens up to
	 * it): usually all but the drafts the target rejected. The last token is
	 * fed again in any case: its logits give the first draft. */
	for (uint32_t i = 0; i < n_act; i++) {
		struct active *a = &d->act[i];
		uint32_t nt, keep = 0;
		const int32_t *toks = seq_tokens(a->s, &nt);
		const int32_t *fed = d->fed + (size_t)a->slot * d->n_ctx;
		while (keep < d->n_fed[a->slot] && keep + 1 < nt && fed[keep] == toks[keep])
			keep++;
		d->n_fed[a->slot] = keep;
		engine_slot_truncate(d->de, a->slot, keep);
	}
	for (;;) {
		bool any = false;
		batch_clear(&d->b);
		for (uint32_t i = 0; i < n_act; i++) {
			if (d->act[i].open) {
				add_rows(d, &d->act[i]);
				any = true;
			}
		}
		if (!any || d->b.n == 0)
			return 0;
		int rc = engine_decode(d->de, &d->b, d->logits, err);
		for (uint32_t i = 0; i < n_act; i++) {
			struct active *a = &d->act[i];
			if (!a->open)
				continue;
			if (rc < 0) {
				d->n_fed[a->slot] = 0; /* its rows are partial now: start over next time */
				continue;
			}
			d->n_fed[a->slot] = a->fed;
			int32_t t;
			if (a->row >= 0)
				a->open = seq_draft_push_logits(a->s, d->logits + (size_t)a->row * d->n_vocab, &t);
		}
		if (rc < 0)
			return rc;
	}
}
