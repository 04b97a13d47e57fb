/* score.c: see score.h. Continuations are taken in groups of as many as the
 * scorer has slots: group g's continuation k runs in slots[k] at positions
 * n_context.., so later groups reuse the slots (their positions past the
 * context are simply written again). The context's last row predicts every
 * continuation's first token, so all first tokens are scored the moment that
 * row's logits arrive, whatever group they belong to. */
#include "engine/score.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "engine/engine.h"

/* What one logits row of the pass in flight is for. */
struct want {
	int32_t cont;	/* -1: the context's last row; else the continuation ... */
	uint32_t tok;	/* ... and the index of the token the row predicts */
};

struct cont {
	int32_t *ids;		 /* (n) */
	uint32_t n;
	uint32_t fed;		 /* its rows in the KV cache (or in the pass in flight) */
	struct score_result *res;/* its entry of score.results */
};

struct score {
	struct engine *e;
	uint32_t n_vocab;
	uint32_t *slots;	 /* (n_slots) slots[0] holds the context */
	uint32_t n_slots;
	int32_t *context;	 /* (n_context) */
	uint32_t n_context;
	uint32_t ctx_done;	 /* context rows in the KV cache (or in flight) */
	bool ctx_scored;	 /* the context's last row came: every first token is scored */
	struct cont *conts;	 /* (n_conts) */
	struct score_result *results; /* (n_conts) */
	uint32_t n_conts;
	uint32_t group;		 /* first continuation of the group being evaluated */
	uint32_t top_logprobs;
	bool token_logprobs;

	struct want *wants;	 /* (want_cap of a batch) the pass in flight's logits rows */
	uint32_t n_wants, cap_wants;
	uint32_t first_row;	 /* its first logits row in the pass */
	uint32_t rows_in_pass;

	bool done;
	int error;
	char message[256];
	uint32_t rows_done, rows_total;
	struct seq_stats st;
};

int score_params_check(const struct engine *e, const struct score_params *p, struct st_err *err)
{
	uint32_t n_ctx = engine_n_ctx(e), n_vocab = engine_n_vocab(e);
	if (p->n_context == 0)
		return st_errf(err, -EINVAL, "the context is empty and no BOS was added: nothing "
			       "predicts the first token of a continuation");
	if (p->n_conts == 0 || p->n_conts > SCORE_MAX_CONTINUATIONS)
		return st_errf(err, -EINVAL, "%u continuations given; 1 to %d are allowed", p->n_conts,
			       SCORE_MAX_CONTINUATIONS);
	if (p->top_logprobs > LOGPROB_MAX_TOP)
		return st_errf(err, -EINVAL, "top_logprobs is %u; at most %d alternatives are given",
			       p->top_logprobs, LOGPROB_MAX_TOP);
	for (uint32_t i = 0; i < p->n_context; i++)
		if (p->context[i] < 0 || (uint32_t)p->context[i] >= n_vocab)
			return st_errf(err, -EINVAL, "context token %u is %d, outside the vocabulary (%u)",
				       i, p->context[i], n_vocab);
	for (uint32_t c = 0; c < p->n_conts; c++) {
		if (p->n_cont[c] == 0)
			return st_errf(err, -EINVAL, "continuation %u has no tokens", c + 1);
		if ((uint64_t)p->n_context + p->n_cont[c] > n_ctx)
			return st_errf(err, -EINVAL, "context and continuation %u are %u + %u tokens; the "
				       "context window holds %u", c + 1, p->n_context, p->n_cont[c], n_ctx);
		for (uint32_t i = 0; i < p->n_cont[c]; i++)
			if (p->conts[c][i] < 0 || (uint32_t)p->conts[c][i] >= n_vocab)
				return st_errf(err, -EINVAL, "token %u of continuation %u is %d, outside the "
					       "vocabulary (%u)", i, c + 1, p->conts[c][i], n_vocab);
	}
	return 0;
}

void score_free(struct score *sc)
{
	if (!sc)
		return;
	for (uint32_t c = 0; c < sc->n_conts; c++) {
		free(sc->conts[c].ids);
		free(sc->results[c].tokens);
	}
	free(sc->conts);
	free(sc->results);
	free(sc->context);
	free(sc->slots);
	free(sc->wants);
	free(sc);
}

int score_create(struct engine *e, const struct score_params *p, const uint32_t *slots,
		 uint32_t n_slots, struct score **out, struct st_err *err)
{
	*out = NULL;
	int rc = score_params_check(e, p, err);
	if (rc < 0)
		return rc;
	if (n_slots == 0)
		return st_errf(err, -EINVAL, "a scorer needs a KV slot");
	struct score *sc = calloc(1, sizeof *sc);
	if (!sc)
		return st_errf(err, -ENOMEM, "out of memory");
	sc->e = e;
	sc->n_vocab = engine_n_vocab(e);
	sc->token_logprobs = p->token_logprobs;
	sc->top_logprobs = p->top_logprobs;
	sc->n_slots = n_slots < p->n_conts ? n_slots : p->n_conts;
	sc->slots = malloc(n_slots * sizeof *sc->slots);
	sc->context = malloc(p->n_context * sizeof *sc->context);
	sc->conts = calloc(p->n_conts, sizeof *sc->conts);
	sc->results = calloc(p->n_conts, sizeof *sc->results);
	sc->cap_wants = engine_max_logits_rows(e);
	sc->wants = malloc(sc->cap_wants * sizeof *sc->wants);
	if (!sc->slots || !sc->context || !sc->conts || !sc->results || !sc->wants)
		goto nomem;
	memcpy(sc->slots, slots, n_slots * sizeof *slots);
	memcpy(sc->context, p->context, p->n_context * sizeof *sc->context);
	sc->n_context = p->n_context;
	sc->rows_total = p->n_context;
	for (uint32_t c = 0; c < p->n_conts; c++) {
		struct cont *ct = &sc->conts[c];
		sc->n_conts++;
		ct->n = p->n_cont[c];
		ct->res = &sc->results[c];
		ct->ids = malloc(ct->n * sizeof *ct->ids);
		if (!ct->ids || (p->token_logprobs &&
				 !(ct->res->tokens = calloc(ct->n, sizeof *ct->res->tokens))))
			goto nomem;
		memcpy(ct->ids, p->conts[c], ct->n * sizeof *ct->ids);
		ct->res->n_tokens = ct->n;
		ct->res->greedy = true;
		sc->rows_total += ct->n - 1; /* its last token predicts nothing we score */
	}
	/* Every slot's blocks are in memory together (continuations read the
	 * context's): with a small KV cache, fewer continuations side by side. */
	uint32_t bp = engine_kv_block_pos(), longest = 0;
	for (uint32_t c = 0; c < sc->n_conts; c++)
		longest = sc->conts[c].n > longest ? sc->conts[c].n : longest;
	uint64_t ctx_blocks = (sc->n_context + bp - 1) / bp;
	uint64_t per_slot = (bp + longest + bp - 1) / bp + 1; /* own blocks, one copied */
	while (sc->n_slots > 1 && ctx_blocks + sc->n_slots * per_slot > engine_kv_blocks(e))
		sc->n_slots--;
	/* The context starts with what the KV cache holds of it (its last token is
	 * always computed: its logits score every first token); the other slots
	 * share the context's positions. */
	sc->ctx_done = engine_slot_reuse(e, sc->slots[0], sc->context, sc->n_context,
					 sc->n_context - 1);
	sc->st.n_cached = sc->rows_done = sc->st.n_past = sc->ctx_done;
	for (uint32_t k = 1; k < sc->n_slots; k++) {
		if (engine_slot_link(e, sc->slots[k], sc->slots[0], sc->n_context) < 0) {
			score_free(sc);
			return st_errf(err, -EINVAL, "cannot share slot %u's context with slot %u",
				       sc->slots[0], sc->slots[k]);
		}
	}
	sc->st.n_prompt = sc->rows_total;
	sc->st.t_created = clock_now_ns();
	*out = sc;
	return 0;
nomem:
	score_free(sc);
	return st_errf(err, -ENOMEM, "out of memory");
}

/* The continuations of the group being evaluated: [group, end). */
static uint32_t group_end(const struct score *sc)
{
	uint32_t end = sc->group + sc->n_slots;
	return end < sc->n_conts ? end : sc->n_conts;
}

/* Past the groups that have nothing left to evaluate (continuations of one
 * token need only the context's last row); done after the last one. */
static void advance(struct score *sc)
{
	while (sc->ctx_scored && sc->group < sc->n_conts) {
		for (uint32_t c = sc->group; c < group_end(sc); c++)
			if (sc->conts[c].fed + 1 < sc->conts[c].n)
				return;
		sc->group = group_end(sc);
	}
	if (sc->ctx_scored && sc->group >= sc->n_conts) {
		sc->done = true;
		sc->st.t_first_token = sc->st.t_last_token = clock_now_ns();
	}
}

static bool want_room(const struct batch *b)
{
	return b->n_want < b->want_cap;
}

uint32_t score_add_rows(struct score *sc, struct batch *b, uint32_t room)
{
	uint32_t added = 0;
	sc->n_wants = 0;
	sc->first_row = b->n_want;
	if (sc->done)
		return 0;
	/* the context, the last row wanting logits, as many rows as the KV
	 * cache's memory takes beside the pass's others */
	uint32_t ctx_room = sc->n_context - sc->ctx_done < room ? sc->n_context - sc->ctx_done : room;
	ctx_room = engine_plan_rows(sc->e, sc->slots[0], sc->ctx_done, ctx_room);
	while (sc->ctx_done < sc->n_context && added < ctx_room) {
		uint32_t p = sc->ctx_done;
		bool want = p == sc->n_context - 1;
		if (want && !want_room(b))
			break;
		batch_add(b, sc->context[p], p, sc->slots[0], want);
		if (want)
			sc->wants[sc->n_wants++] = (struct want){ -1, 0 };
		sc->ctx_done++;
		added++;
	}
	/* the group's continuations, once the context is in (this pass counts:
	 * within a layer every row's keys are stored before any attends) */
	if (sc->ctx_done == sc->n_context) {
		for (uint32_t c = sc->group; c < group_end(sc); c++) {
			struct cont *ct = &sc->conts[c];
			uint32_t slot = sc->slots[c - sc->group];
			uint32_t todo = ct->fed + 1 < ct->n ? ct->n - 1 - ct->fed : 0;
			uint32_t lim = added + engine_plan_rows(sc->e, slot, sc->n_context + ct->fed,
								todo < room - added ? todo : room - added);
			while (ct->fed + 1 < ct->n && added < lim && want_room(b)) {
				batch_add(b, ct->ids[ct->fed], sc->n_context + ct->fed, slot, true);
				sc->wants[sc->n_wants++] = (struct want){ (int32_t)c, ct->fed + 1 };
				ct->fed++;
				added++;
			}
		}
	}
	sc->rows_in_pass = added;
	return added;
}

static void take(struct score *sc, struct cont *ct, uint32_t tok, const float *row)
{
	struct logprob_token t;
	logprob_token(row, sc->n_vocab, 1.0f, ct->ids[tok], sc->token_logprobs ? sc->top_logprobs : 0, &t);
	ct->res->logprob += t.logprob;
	ct->res->greedy = ct->res->greedy && t.greedy;
	if (ct->res->tokens)
		ct->res->tokens[tok] = t;
}

void score_pass_done(struct score *sc, const float *logits, const struct seq_pass *pass)
{
	if (sc->done || sc->rows_in_pass == 0)
		return;
	if (!sc->st.t_first_pass)
		sc->st.t_first_pass = pass->t_start;
	sc->st.passes++;
	sc->st.bytes_read += pass->bytes_read;
	sc->st.stall_ns += pass->stall_ns;
	uint64_t wall = pass->t_end > pass->t_start ? pass->t_end - pass->t_start : 0;
	sc->st.compute_ns += wall > pass->stall_ns ? wall - pass->stall_ns : 0;
	sc->st.n_past += sc->rows_in_pass;
	sc->rows_done += sc->rows_in_pass;
	sc->rows_in_pass = 0;

	for (uint32_t r = 0; r < sc->n_wants; r++) {
		const float *row = logits + (size_t)(sc->first_row + r) * sc->n_vocab;
		const struct want *w = &sc->wants[r];
		for (uint32_t i = 0; i < sc->n_vocab; i++) {
			if (!isfinite(row[i])) {
				score_fail(sc, -EIO, "the model produced non-finite logits (NaN or "
					   "infinity): its weights are corrupt, or the model file changed "
					   "while in use");
				return;
			}
		}
		if (w->cont < 0) {
			for (uint32_t c = 0; c < sc->n_conts; c++)
				take(sc, &sc->conts[c], 0, row);
			sc->ctx_scored = true;
		} else {
			take(sc, &sc->conts[w->cont], w->tok, row);
		}
	}
	sc->n_wants = 0;
	advance(sc);
}

void score_fail(struct score *sc, int code, const char *message)
{
	if (sc->done)
		return;
	sc->done = true;
	sc->error = code < 0 ? code : -EIO;
	snprintf(sc->message, sizeof sc->message, "%s", message ? message : "");
}

bool score_done(const struct score *sc)
{
	return sc->done;
}

int score_error(const struct score *sc, const char **message)
{
	*message = sc->message;
	return sc->error;
}

const struct score_result *score_results(const struct score *sc)
{
	return sc->done && !sc->error ? sc->results : NULL;
}

void score_progress(const struct score *sc, uint32_t *done, uint32_t *total)
{
	*done = sc->rows_done;
	*total = sc->rows_total;
}

const struct seq_stats *score_stats(const struct score *sc)
{
	return &sc->st;
}

uint32_t score_n_continuations(const struct score *sc)
{
	return sc->n_conts;
}

uint32_t score_n_context(const struct score *sc)
{
	return sc->n_context;
}
