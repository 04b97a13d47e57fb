/* seq.c: the generation core (see seq.h). A sequence owns its tokens, its
 * sampler and its text; it never runs a pass or touches another sequence. */
#include "engine/seq.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "engine/engine.h"
#include "tokenizer/detok.h"
#include "tokenizer/tokenizer.h"

struct seq {
	struct engine *e;
	const struct tokenizer *tok;
	uint32_t slot;
	uint32_t n_vocab, n_ctx;
	enum seq_state state;
	enum seq_finish finish;

	int32_t *tokens;	 /* (n_prompt + max_tokens) prompt, then generated ids */
	uint32_t n_tokens;
	uint32_t max_tokens;
	bool ignore_eos;
	struct sampler *smp;
	uint64_t seed;

	/* the rows of the pass in flight: its rows that want logits are
	 * consecutive, positions want_pos.. at logits rows want_row.. */
	uint32_t rows_added;	 /* rows it put in the pass */
	uint32_t n_want;	 /* of which want logits */
	uint32_t want_pos, want_row;

	int32_t end_of_turn;	 /* -1: none */
	bool logprobs;
	uint32_t top_logprobs;
	bool echo;
	uint32_t n_prompt;
	struct logprob_token *prompt_lp; /* (n_prompt) with echo */
	struct logprob_token lp;	 /* the last sampled token's, for its piece */

	struct detok dt;
	char *piece;		 /* (detok_out_max) text of one token */
	float *raw;		 /* (n_vocab) the logits as sampled from, for sink->logits */
	size_t piece_cap;
	char *hold;		 /* text held back: it may be the start of a stop string */
	size_t hold_len, hold_cap;
	char **stops;		 /* (n_stops) owned */
	uint32_t n_stops;
	int stop_index;		 /* STOP: which one matched, else -1 */

	/* drafts (speculative decoding): a pass's drafts sit in tokens[n_tokens ..
	 * n_tokens + n_draft), past the sequence's end, until verified */
	enum draft_source draft_src; /* NONE, LOOKUP or MODEL */
	uint32_t draft_max, draft_min;
	uint32_t draft_k;	 /* drafts asked for next (adapts to acceptance) */
	uint32_t n_draft;	 /* drafts of the pass being prepared or run */
	uint32_t draft_cap;	 /* at most this many this pass (seq_draft_begin) */
	bool draft_open;	 /* the draft may grow */
	bool draft_has_q;	 /* the q_* below hold each draft's distribution (MODEL, sampled) */
	struct sampler *dsmp;	 /* MODEL: draws the drafts (its own generator) */
	/* MODEL, sampled: the distribution q each draft was drawn from, kept sparse
	 * (the tokens the filters left: a few dozen, where n_vocab may be 256,000):
	 * draft i's are entries q_off[i] .. q_off[i + 1] of q_id and q_pr */
	float *q_dense;		 /* (n_vocab) scratch */
	int32_t *q_id;		 /* (q_cap) */
	float *q_pr;		 /* (q_cap) */
	size_t q_len, q_cap;
	uint32_t q_off[DRAFT_MAX_TOKENS + 1];
	float q_d[DRAFT_MAX_TOKENS]; /* q of the draft itself */
	float *p;		 /* (n_vocab) the target's distribution at a draft (sampled) */
	struct detok draft_dt;	 /* the detokenizer run ahead over the drafts ... */
	char *draft_text;	 /* ... and the text it gave, after the held text (stops) */
	size_t draft_text_len, draft_text_cap;

	int error;		 /* ERROR: -errno */
	char message[256];	 /* ERROR: for the person */

	struct seq_stats st;
};

int seq_params_check(const struct engine *e, const struct seq_params *p, struct st_err *err)
{
	uint32_t n_ctx = engine_n_ctx(e);
	uint32_t n_vocab = (uint32_t)tokenizer_n_vocab(engine_tokenizer(e));

	if (p->n_prompt == 0)
		return st_errf(err, -EINVAL, "the prompt is empty: there is nothing to continue");
	if (p->n_prompt >= n_ctx)
		return st_errf(err, -EINVAL, "the prompt has %u tokens but the context holds %u "
			       "(with room for at least one generated token)", p->n_prompt, n_ctx);
	for (uint32_t i = 0; i < p->n_prompt; i++)
		if (p->prompt[i] < 0 || (uint32_t)p->prompt[i] >= n_vocab)
			return st_errf(err, -EINVAL, "prompt token %u is %d, outside the vocabulary (%u)",
				       i, p->prompt[i], n_vocab);
	if (p->max_tokens == 0)
		return st_errf(err, -EINVAL, "max_tokens must be at least 1");
	if (p->top_logprobs > LOGPROB_MAX_TOP)
		return st_errf(err, -EINVAL, "top_logprobs is %u; at most %d alternatives are given",
			       p->top_logprobs, LOGPROB_MAX_TOP);
	if (p->n_stops > SEQ_MAX_STOPS)
		return st_errf(err, -EINVAL, "%u stop strings given; at most %d are allowed", p->n_stops,
			       SEQ_MAX_STOPS);
	for (uint32_t i = 0; i < p->n_stops; i++) {
		size_t n = strlen(p->stops[i]);
		if (n == 0 || n > SEQ_MAX_STOP_BYTES)
			return st_errf(err, -EINVAL, "stop string %u is %s (1 to %d bytes allowed)", i + 1,
				       n == 0 ? "empty" : "too long", SEQ_MAX_STOP_BYTES);
	}
	const struct engine_info *in = engine_info(e);
	if (p->draft == DRAFT_MODEL && !in->draft_model)
		return st_errf(err, -EINVAL, "drafts from a draft model were asked for, but none is loaded "
			       "(start with --draft FILE)");
	if (p->draft > DRAFT_MODEL)
		return st_errf(err, -EINVAL, "unknown draft source %d", (int)p->draft);
	if (p->draft_max > DRAFT_MAX_TOKENS || p->draft_min > DRAFT_MAX_TOKENS)
		return st_errf(err, -EINVAL, "at most %d drafts are verified per pass (draft_max %u, "
			       "draft_min %u)", DRAFT_MAX_TOKENS, p->draft_max, p->draft_min);
	uint32_t dmax = p->draft_max ? p->draft_max : in->draft_max;
	uint32_t dmin = p->draft_min ? p->draft_min : in->draft_min;
	if (p->draft_min && dmin > dmax)
		return st_errf(err, -EINVAL, "draft_min %u is more than draft_max %u", dmin, dmax);
	return sampler_params_check(&p->sampling, err);
}

int seq_create(struct engine *e, const struct seq_params *p, uint32_t slot, struct seq **out,
	       struct st_err *err)
{
	struct seq *s;
	int rc = seq_params_check(e, p, err);

	*out = NULL;
	if (rc < 0)
		return rc;
	s = calloc(1, sizeof *s);
	if (!s)
		return st_errf(err, -ENOMEM, "out of memory");
	s->e = e;
	s->tok = engine_tokenizer(e);
	s->slot = slot;
	s->n_vocab = (uint32_t)tokenizer_n_vocab(s->tok);
	s->n_ctx = engine_n_ctx(e);
	s->state = SEQ_PROMPT;
	s->finish = SEQ_FINISH_NONE;
	s->max_tokens = p->max_tokens;
	s->ignore_eos = p->ignore_eos;
	s->seed = p->sampling.seed;
	s->stop_index = -1;
	s->end_of_turn = p->has_end_of_turn ? p->end_of_turn : -1;
	s->logprobs = p->logprobs;
	s->top_logprobs = p->top_logprobs;
	s->echo = p->echo_logprobs;
	s->n_prompt = p->n_prompt;
	s->piece_cap = detok_out_max(s->tok);
	s->piece = malloc(s->piece_cap);
	s->tokens = malloc(((size_t)p->n_prompt + p->max_tokens) * sizeof *s->tokens);
	s->stops = p->n_stops ? calloc(p->n_stops, sizeof *s->stops) : NULL;
	if (p->echo_logprobs && !(s->prompt_lp = calloc(p->n_prompt, sizeof *s->prompt_lp)))
		goto nomem;
	if (!s->piece || !s->tokens || (p->n_stops && !s->stops) ||
	    sampler_new(&p->sampling, s->n_vocab, &s->smp) < 0)
		goto nomem;
	for (uint32_t i = 0; i < p->n_stops; i++) {
		s->stops[i] = strdup(p->stops[i]);
		if (!s->stops[i])
			goto nomem;
		s->n_stops++;
	}
	const struct engine_info *in = engine_info(e);
	s->draft_src = p->draft == DRAFT_DEFAULT ? in->draft : p->draft;
	s->draft_max = p->draft_max ? p->draft_max : in->draft_max;
	s->draft_min = p->draft_min ? p->draft_min : in->draft_min;
	if (s->draft_min > s->draft_max)
		s->draft_min = s->draft_max; /* a request's max under the engine's min */
	s->draft_k = s->draft_max;
	if (s->draft_src != DRAFT_NONE) {
		bool sampled = p->sampling.temperature > 0.0f;
		if (sampled && !(s->p = malloc((size_t)s->n_vocab * sizeof *s->p)))
			goto nomem;
		if (s->draft_src == DRAFT_MODEL) {
			struct sampler_params dp = p->sampling;
			dp.seed = p->sampling.seed ^ 0x5bd1e9955bd1e995ull; /* a generator of its own */
			if (sampler_new(&dp, s->n_vocab, &s->dsmp) < 0)
				goto nomem;
			if (sampled && !(s->q_dense = malloc((size_t)s->n_vocab * sizeof *s->q_dense)))
				goto nomem;
		}
	}
	memcpy(s->tokens, p->prompt, p->n_prompt * sizeof *s->tokens);
	s->n_tokens = p->n_prompt;
	s->st.n_prompt = p->n_prompt;
	s->st.t_created = clock_now_ns();
	detok_init(&s->dt, s->tok, false);
	/* The slot starts with whatever prefix of the prompt the KV cache holds
	 * from earlier sequences (not with echo: every prompt row's logits are
	 * wanted then). The last prompt token is always computed: its logits
	 * give the first sampled token. */
	if (p->echo_logprobs)
		engine_slot_reset(e, slot);
	else
		s->st.n_cached = engine_slot_reuse(e, slot, p->prompt, p->n_prompt, p->n_prompt - 1);
	s->st.n_past = s->st.n_cached;
	*out = s;
	return 0;
nomem:
	seq_free(s);
	return st_errf(err, -ENOMEM, "out of memory");
}

void seq_free(struct seq *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->n_stops; i++)
		free(s->stops[i]);
	free(s->stops);
	sampler_free(s->smp);
	sampler_free(s->dsmp);
	free(s->q_dense);
	free(s->q_id);
	free(s->q_pr);
	free(s->p);
	free(s->draft_text);
	free(s->tokens);
	free(s->piece);
	free(s->raw);
	free(s->prompt_lp);
	free(s->hold);
	free(s);
}

enum seq_state seq_state(const struct seq *s)
{
	return s->state;
}

uint32_t seq_slot(const struct seq *s)
{
	return s->slot;
}

uint32_t seq_rows_pending(const struct seq *s)
{
	if (s->state == SEQ_FINISHED)
		return 0;
	return s->n_tokens - s->st.n_past + (s->state == SEQ_GENERATING ? s->n_draft : 0);
}

/* Its last token and its drafts, every row wanting logits: the pass that
 * verifies them. Drafts that do not fit are dropped. */
static uint32_t add_verify_rows(struct seq *s, struct batch *b, uint32_t room)
{
	uint32_t want_room = b->want_cap - b->n_want;
	if (room == 0 || want_room == 0)
		return 0;
	if (s->n_draft + 1 > room)
		s->n_draft = room - 1;
	if (s->n_draft + 1 > want_room)
		s->n_draft = want_room - 1;
	s->draft_open = false;
	uint32_t p0 = s->n_tokens - 1;
	s->want_pos = p0;
	s->n_want = s->n_draft + 1;
	for (uint32_t k = 0; k <= s->n_draft; k++) {
		int32_t row = batch_add(b, s->tokens[p0 + k], p0 + k, s->slot, true);
		if (k == 0)
			s->want_row = (uint32_t)row;
	}
	s->rows_added = s->n_draft + 1;
	return s->rows_added;
}

uint32_t seq_add_rows(struct seq *s, struct batch *b, uint32_t room)
{
	uint32_t todo = seq_rows_pending(s);
	uint32_t take = todo < room ? todo : room;
	/* no more rows than the KV cache's memory holds with the pass's others
	 * (while generating they start at the last token: n_past) */
	take = engine_plan_rows(s->e, s->slot, s->st.n_past, take);
	if (s->state == SEQ_GENERATING) {
		s->rows_added = s->n_want = 0;
		return take ? add_verify_rows(s, b, take) : 0;
	}

	s->rows_added = 0;
	s->n_want = 0;
	for (uint32_t k = 0; k < take; k++) {
		uint32_t p = s->st.n_past + k;
		bool want = p == s->n_tokens - 1 || (s->echo && p < s->n_prompt);
		if (want && b->n_want >= b->want_cap)
			break; /* no logits row left in this pass: the rest next time */
		int32_t row = batch_add(b, s->tokens[p], p, s->slot, want);
		if (row >= 0 && s->n_want++ == 0) {
			s->want_row = (uint32_t)row;
			s->want_pos = p;
		}
		s->rows_added++;
	}
	return s->rows_added;
}

/* ---- text: held back while it may grow into a stop string ---- */

/* Append n bytes to a growing buffer: 0 or -ENOMEM. */
static int buf_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (n == 0)
		return 0; /* p may be NULL (an empty hold) */
	if (*len + n > *cap) {
		size_t c = *cap ? *cap : 256;
		while (c < *len + n)
			c *= 2;
		char *h = realloc(*buf, c);
		if (!h)
			return -ENOMEM;
		*buf = h;
		*cap = c;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	return 0;
}

static int hold_append(struct seq *s, const char *p, size_t n)
{
	return buf_append(&s->hold, &s->hold_len, &s->hold_cap, p, n);
}

/* Where a stop string first occurs in text[0..len), or -1; *which says which. */
static long find_stop(const struct seq *s, const char *text, size_t len, int *which)
{
	long best = -1;
	for (uint32_t i = 0; i < s->n_stops; i++) {
		size_t n = strlen(s->stops[i]);
		for (size_t at = 0; n <= len && at + n <= len; at++) {
			if (memcmp(text + at, s->stops[i], n) == 0) {
				if (best < 0 || (long)at < best) {
					best = (long)at;
					*which = (int)i;
				}
				break;
			}
		}
	}
	return best;
}

/* Bytes at the end of the held text that could still grow into a stop string. */
static size_t stop_prefix_tail(const struct seq *s)
{
	size_t keep = 0;
	for (uint32_t i = 0; i < s->n_stops; i++) {
		size_t n = strlen(s->stops[i]);
		for (size_t k = n > 0 ? n - 1 : 0; k > keep; k--) {
			if (k <= s->hold_len && memcmp(s->hold + s->hold_len - k, s->stops[i], k) == 0) {
				keep = k;
				break;
			}
		}
	}
	return keep;
}

/* Report the first n held bytes (and the ids that completed them, with their
 * log-probabilities when asked), then drop them. */
static void emit(struct seq *s, size_t n, const int32_t *ids, uint32_t n_ids,
		 const struct seq_sink *sink)
{
	if (sink && sink->piece && (n > 0 || n_ids > 0)) {
		struct seq_piece p = { .text = s->hold, .len = n, .ids = ids, .n_ids = n_ids,
				       .logprobs = n_ids && s->logprobs ? &s->lp : NULL };
		sink->piece(sink->user, s, &p);
	}
	if (n > 0) { /* hold is NULL until the first text arrives */
		memmove(s->hold, s->hold + n, s->hold_len - n);
		s->hold_len -= n;
	}
}

/* The detokenizer's tail and every held byte, before the end. */
static void flush_text(struct seq *s, const struct seq_sink *sink)
{
	char tail[16];
	int n = detok_flush(&s->dt, tail, sizeof tail);
	if (n > 0)
		hold_append(s, tail, (size_t)n);
	emit(s, s->hold_len, NULL, 0, sink);
}

static void finish(struct seq *s, enum seq_finish why, const struct seq_sink *sink)
{
	flush_text(s, sink);
	s->finish = why;
	s->state = SEQ_FINISHED;
}

void seq_finish(struct seq *s, enum seq_finish why, int code, const char *message,
		const struct seq_sink *sink)
{
	if (s->state == SEQ_FINISHED)
		return;
	if (why == SEQ_FINISH_ERROR) {
		s->error = code < 0 ? code : -EIO;
		snprintf(s->message, sizeof s->message, "%s", message ? message : "");
	}
	finish(s, why, sink);
}

/* A sampled token: extend the sequence, emit text, decide whether it ends. */
static void on_token(struct seq *s, int32_t t, const struct seq_sink *sink)
{
	uint64_t now = clock_now_ns();
	if (!s->st.t_first_token)
		s->st.t_first_token = now;
	s->st.t_last_token = now;
	s->tokens[s->n_tokens++] = t;
	s->st.n_generated++;
	s->state = SEQ_GENERATING;

	if (!s->ignore_eos && (tokenizer_is_eog(s->tok, t) || t == s->end_of_turn)) {
		finish(s, SEQ_FINISH_EOG, sink);
		return;
	}
	int n = detok_push(&s->dt, t, s->piece, s->piece_cap);
	if (n > 0 && hold_append(s, s->piece, (size_t)n) < 0) {
		seq_finish(s, SEQ_FINISH_ERROR, -ENOMEM, "out of memory", sink);
		return;
	}
	int which = -1;
	long stop = s->n_stops ? find_stop(s, s->hold, s->hold_len, &which) : -1;
	if (stop >= 0) {
		emit(s, (size_t)stop, &t, 1, sink);
		s->hold_len = 0; /* the stop string and what follows are not sent */
		s->stop_index = which;
		finish(s, SEQ_FINISH_STOP, sink);
		return;
	}
	size_t keep = s->n_stops ? stop_prefix_tail(s) : 0;
	emit(s, s->hold_len - keep, &t, 1, sink);
	if (s->st.n_generated >= s->max_tokens || s->n_tokens >= s->n_ctx)
		finish(s, SEQ_FINISH_LENGTH, sink);
}

/* Weights that are corrupt (or a file changed under us) give NaN or infinite
 * logits; sampling would then pick token 0 forever without a word. */
static bool all_finite(const float *v, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return false;
	return true;
}

/* The token a row of the target's logits gives ((n_vocab) f32, penalized in
 * place): with a draft d (>= 0, the i-th of the pass) the verification's
 * choice, d itself when kept (*kept); without, a plain sample. The row goes
 * to sink->logits and to the token's log-probability as without drafts.
 * -1 when the row is not finite (the sequence then ends with ERROR). */
static int32_t choose(struct seq *s, float *row, int32_t d, uint32_t i, const struct seq_sink *sink,
		      bool *kept)
{
	*kept = false;
	if (!all_finite(row, s->n_vocab)) {
		char msg[160];
		snprintf(msg, sizeof msg, "the model produced non-finite logits (NaN or infinity) at "
			 "position %u: its weights are corrupt, or the model file changed while in use",
			 s->n_tokens - 1);
		seq_finish(s, SEQ_FINISH_ERROR, -EIO, msg, sink);
		return -1;
	}
	if (sink && sink->logits) {
		/* keep a copy: the repetition penalty modifies the row in place */
		if (!s->raw && !(s->raw = malloc((size_t)s->n_vocab * sizeof *s->raw))) {
			seq_finish(s, SEQ_FINISH_ERROR, -ENOMEM, "out of memory", sink);
			return -1;
		}
		memcpy(s->raw, row, (size_t)s->n_vocab * sizeof *s->raw);
	}
	int32_t t;
	if (d < 0 || sampler_temperature(s->smp) <= 0.0f) {
		/* greedy keeps a draft that is the target's own choice: the output is
		 * what it would be without drafts */
		t = sampler_sample(s->smp, row, s->tokens, s->n_tokens);
		*kept = d >= 0 && t == d;
	} else {
		/* speculative sampling: keep d with probability min(1, p(d) / q(d)),
		 * else draw from max(0, p - q) normalized; t is then distributed as p */
		float *p = s->p;
		float qd = s->draft_has_q ? s->q_d[i] : 1.0f;
		sampler_dist(s->smp, row, s->tokens, s->n_tokens, p);
		if (sampler_uniform(s->smp) * qd < p[d]) {
			t = d;
			*kept = true;
		} else {
			if (s->draft_has_q) { /* q is zero outside its entries */
				for (uint32_t j = s->q_off[i]; j < s->q_off[i + 1]; j++) {
					float *pv = &p[s->q_id[j]];
					*pv = *pv > s->q_pr[j] ? *pv - s->q_pr[j] : 0.0f;
				}
			} else {
				p[d] = 0.0f;
			}
			t = sampler_draw(s->smp, p);
			if (t < 0) { /* p == q but for rounding: nothing is left to draw */
				t = d;
				*kept = true;
			}
		}
	}
	if (sink && sink->logits)
		sink->logits(sink->user, s, t, s->raw, s->n_vocab);
	if (s->logprobs) /* the row as sampled from: penalized, at its temperature */
		logprob_token(row, s->n_vocab, sampler_temperature(s->smp), t, s->top_logprobs, &s->lp);
	return t;
}

/* A generating sequence's pass: its last token's row, then a row per draft. */
static void verify(struct seq *s, const float *logits, const struct seq_sink *sink)
{
	uint32_t k = s->n_draft, kept = 0, n0 = s->n_tokens;
	s->n_draft = 0;
	s->n_want = 0;
	s->st.gen_passes++;
	s->st.drafted += k;
	for (uint32_t i = 0; i <= k; i++) {
		float *row = (float *)logits + (size_t)(s->want_row + i) * s->n_vocab;
		bool ok;
		int32_t t = choose(s, row, i < k ? s->tokens[n0 + i] : -1, i, sink, &ok);
		if (t < 0)
			return;
		kept += ok;
		on_token(s, t, sink); /* may end it: the rest of the run is not reported */
		if (!ok || s->state == SEQ_FINISHED)
			break;
	}
	s->st.accepted += kept;
	/* the cache holds the old last token and the kept drafts; the token just
	 * chosen goes in with the next pass */
	s->st.n_past = n0 + kept;
	if (kept < k)
		engine_slot_truncate(s->e, s->slot, s->st.n_past);
	if (k > 0) {
		/* k adapts: a longer draft after a pass that kept all of it, a
		 * shorter one after a rejection */
		if (kept == k)
			s->draft_k = s->draft_k + 2 < s->draft_max ? s->draft_k + 2 : s->draft_max;
		else if (s->draft_k > s->draft_min)
			s->draft_k--;
	}
}

void seq_pass_done(struct seq *s, const float *logits, const struct seq_pass *pass,
		   const struct seq_sink *sink)
{
	if (s->state == SEQ_FINISHED || s->rows_added == 0)
		return;
	if (!s->st.t_first_pass)
		s->st.t_first_pass = pass->t_start;
	s->st.passes++;
	s->st.bytes_read += pass->bytes_read;
	s->st.stall_ns += pass->stall_ns;
	uint64_t wall = pass->t_end > pass->t_start ? pass->t_end - pass->t_start : 0;
	s->st.compute_ns += wall > pass->stall_ns ? wall - pass->stall_ns : 0;
	if (s->state == SEQ_GENERATING) {
		s->rows_added = 0;
		verify(s, logits, sink);
		return;
	}
	s->st.n_past += s->rows_added;
	s->rows_added = 0;

	float *lg = NULL; /* the row to sample from, if this pass gave it */
	for (uint32_t r = 0; r < s->n_want; r++) {
		uint32_t pos = s->want_pos + r;
		float *row = (float *)logits + (size_t)(s->want_row + r) * s->n_vocab;
		if (s->echo && pos + 1 < s->n_prompt) /* the prompt's own tokens: the model as it is */
			logprob_token(row, s->n_vocab, 1.0f, s->tokens[pos + 1], s->top_logprobs,
				      &s->prompt_lp[pos + 1]);
		if (pos == s->n_tokens - 1)
			lg = row;
	}
	s->n_want = 0;
	if (s->echo && s->prompt_lp && s->st.n_past >= s->n_prompt) {
		s->prompt_lp[0] = (struct logprob_token){ .id = s->tokens[0], .logprob = NAN };
	}
	if (!lg)
		return; /* a prompt chunk that is not the last */
	bool kept;
	int32_t t = choose(s, lg, -1, 0, sink, &kept);
	if (t < 0)
		return;
	s->st.gen_passes++;
	on_token(s, t, sink);
}

/* ---- drafts ---- */

enum draft_source seq_draft_source(const struct seq *s)
{
	return s->draft_src;
}

uint32_t seq_draft_wanted(const struct seq *s)
{
	if (s->state != SEQ_GENERATING || s->draft_src == DRAFT_NONE)
		return 0;
	/* while generating, a token and a position are left: the k drafts and
	 * the token after them must fit both */
	uint32_t k = s->draft_k;
	uint32_t tokens_left = s->max_tokens - s->st.n_generated;
	uint32_t positions_left = s->n_ctx - s->n_tokens;
	if (k > tokens_left - 1)
		k = tokens_left - 1;
	if (k > positions_left - 1)
		k = positions_left - 1;
	return k;
}

void seq_draft_begin(struct seq *s, uint32_t k)
{
	uint32_t w = seq_draft_wanted(s);
	s->n_draft = 0;
	s->draft_cap = k < w ? k : w;
	s->draft_open = s->draft_cap > 0;
	s->draft_has_q = false;
	s->q_len = 0;
	s->q_off[0] = 0;
	/* the text so far, to see a stop string coming in the drafts */
	s->draft_dt = s->dt;
	s->draft_text_len = 0;
	if (s->draft_open && s->n_stops &&
	    buf_append(&s->draft_text, &s->draft_text_len, &s->draft_text_cap, s->hold,
		       s->hold_len) < 0)
		s->draft_open = false;
}

uint32_t seq_draft_room(const struct seq *s)
{
	return s->draft_open ? s->draft_cap - s->n_draft : 0;
}

const int32_t *seq_draft(const struct seq *s, uint32_t *n)
{
	*n = s->n_draft;
	return s->tokens + s->n_tokens;
}

/* Add t to the draft; false when the draft must end with it. */
static bool draft_append(struct seq *s, int32_t t)
{
	s->tokens[s->n_tokens + s->n_draft++] = t;
	if (s->n_draft >= s->draft_cap ||
	    (!s->ignore_eos && (tokenizer_is_eog(s->tok, t) || t == s->end_of_turn)))
		return s->draft_open = false;
	if (s->n_stops) {
		int which, n = detok_push(&s->draft_dt, t, s->piece, s->piece_cap);
		if ((n > 0 && buf_append(&s->draft_text, &s->draft_text_len, &s->draft_text_cap, s->piece,
					 (size_t)n) < 0) ||
		    find_stop(s, s->draft_text, s->draft_text_len, &which) >= 0)
			return s->draft_open = false;
	}
	return true;
}

bool seq_draft_push(struct seq *s, int32_t token)
{
	if (!s->draft_open || token < 0 || (uint32_t)token >= s->n_vocab)
		return false;
	return draft_append(s, token);
}

/* Keep the distribution q ((n_vocab) f32) the next draft, t, was drawn from:
 * its non-zero entries. 0 or -ENOMEM. */
static int keep_q(struct seq *s, const float *q, int32_t t)
{
	uint32_t i = s->n_draft;
	for (uint32_t v = 0; v < s->n_vocab; v++) {
		if (q[v] <= 0.0f)
			continue;
		if (s->q_len == s->q_cap) {
			size_t cap = s->q_cap ? 2 * s->q_cap : 256;
			int32_t *id = realloc(s->q_id, cap * sizeof *id);
			if (id)
				s->q_id = id;
			float *pr = id ? realloc(s->q_pr, cap * sizeof *pr) : NULL;
			if (!pr)
				return -ENOMEM;
			s->q_pr = pr;
			s->q_cap = cap;
		}
		s->q_id[s->q_len] = (int32_t)v;
		s->q_pr[s->q_len++] = q[v];
	}
	s->q_off[i + 1] = (uint32_t)s->q_len;
	s->q_d[i] = q[t];
	return 0;
}

bool seq_draft_push_logits(struct seq *s, float *logits, int32_t *token)
{
	*token = -1;
	if (!s->draft_open || !s->dsmp)
		return false;
	uint32_t n_hist = s->n_tokens + s->n_draft; /* the drafts so far count for the penalty */
	int32_t t;
	if (s->q_dense) {
		float *q = s->q_dense;
		sampler_dist(s->dsmp, logits, s->tokens, n_hist, q);
		t = sampler_draw(s->dsmp, q);
		if (t >= 0 && keep_q(s, q, t) < 0)
			t = -1; /* out of memory: the draft ends here */
		s->draft_has_q = true;
	} else {
		t = sampler_sample(s->dsmp, logits, s->tokens, n_hist);
	}
	if (t < 0)
		return s->draft_open = false;
	*token = t;
	return draft_append(s, t);
}

enum seq_finish seq_finish_reason(const struct seq *s)
{
	return s->finish;
}

int seq_error(const struct seq *s, const char **message)
{
	*message = s->message;
	return s->finish == SEQ_FINISH_ERROR ? s->error : 0;
}

const char *seq_stop_string(const struct seq *s)
{
	return s->stop_index >= 0 ? s->stops[s->stop_index] : NULL;
}

const struct seq_stats *seq_stats(const struct seq *s)
{
	return &s->st;
}

uint64_t seq_seed(const struct seq *s)
{
	return s->seed;
}

const int32_t *seq_tokens(const struct seq *s, uint32_t *n)
{
	*n = s->n_tokens;
	return s->tokens;
}

const struct logprob_token *seq_prompt_logprobs(const struct seq *s, uint32_t *n)
{
	*n = s->prompt_lp && s->st.n_past >= s->n_prompt ? s->n_prompt : 0;
	return *n ? s->prompt_lp : NULL;
}
