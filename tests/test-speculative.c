/* test-speculative.c: speculative decoding in the engine. Prompt lookup by
 * hand. Greedy output with drafts (lookup; a draft model that agrees with the
 * target: the target itself; one that does not: random weights) is token for
 * token the output without drafts, with the same log-probabilities, resident
 * and streamed, io_uring and mmap; a stop string, an end-of-turn token and
 * max_tokens end a run of kept drafts exactly where they end generation
 * without drafts. A draft model with another vocabulary is refused, and its
 * weights are counted in the budget. Sampled output keeps the target's
 * distribution: chi-square tests of homogeneity between speculative and plain
 * sampling, at significance ALPHA, with fixed seeds (so a run is
 * deterministic and cannot flake), and a control that the same test does
 * reject a small change of temperature. Synthesized models; stories260K too
 * when ../shared is there. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/generate.h"
#include "gguf/gguf.h"
#include "kernels/types.h"
#include "tests/tap.h"
#include "tools/synth.h"
#include "weights/weights.h"

/* The significance level of the distribution tests: a correct implementation
 * fails one with probability 0.001 over the choice of seeds; the seeds are
 * fixed, so the outcome is too. */
#define ALPHA 0.001

#define GEN_TOKENS 40

/* ---- prompt lookup by hand ---- */

static void test_lookup(void)
{
	int32_t out[16];
	const int32_t a[] = { 5, 6, 7, 8, 9, 5, 6, 7 };
	uint32_t n = draft_lookup(a, 8, 4, out);
	tap_ok(n == 4 && out[0] == 8 && out[1] == 9 && out[2] == 5 && out[3] == 6,
	       "lookup: the 3-gram 5 6 7 seen before proposes what followed it (8 9 5 6)");
	const int32_t b[] = { 1, 2, 3, 9, 2, 3, 4, 7, 2, 3 };
	n = draft_lookup(b, 10, 2, out);
	tap_ok(n == 2 && out[0] == 4 && out[1] == 7, "lookup: the latest earlier occurrence wins (4 7)");
	const int32_t c[] = { 1, 2, 3, 1, 9, 9, 2, 3 };
	n = draft_lookup(c, 8, 3, out);
	tap_ok(n == 3 && out[0] == 1 && out[1] == 9 && out[2] == 9,
	       "lookup: the longest n-gram that matches wins over a later shorter one (1 9 9)");
	const int32_t d[] = { 4, 4, 4 };
	n = draft_lookup(d, 3, 5, out);
	tap_ok(n == 5 && out[0] == 4 && out[4] == 4, "lookup: a repeating pattern repeats past the context's end");
	const int32_t e[] = { 1, 2, 3, 4 };
	tap_is_int(draft_lookup(e, 4, 4, out), 0, "lookup: no n-gram seen before, no draft");
	tap_is_int(draft_lookup(e, 1, 4, out), 0, "lookup: one token, no draft");
}

/* ---- models ---- */

static char path_t[4096], path_rand[4096], path_other[4096], path_small[4096], path_noisy[4096];

static void synth(const char *path, const struct synth_params *p)
{
	struct st_err err = { "" };
	if (synth_write(path, p, &err) < 0)
		tap_bail("synth %s: %s", path, err.msg);
}

/* A copy of `src` whose output head has uniform noise of amplitude `amp`
 * added (f32 head): a draft that agrees with the target often, not always. */
static void noisy_copy(const char *src, const char *dst, float amp)
{
	struct gguf *g = NULL;
	struct st_err err = { "" };
	if (gguf_open(src, &g, &err) < 0)
		tap_bail("%s", err.msg);
	const struct gguf_tensor *t = gguf_find_tensor(g, "output.weight");
	if (!t || t->type != ST_F32)
		tap_bail("%s: no f32 output.weight", src);
	size_t size = gguf_file_size(g);
	uint8_t *bytes = tap_xmalloc(size);
	memcpy(bytes, gguf_base(g), size);
	float *w = (float *)(bytes + t->offset);
	tap_srand(77);
	for (uint64_t i = 0; i < t->n_elems; i++)
		w[i] += amp * tap_frand();
	gguf_close(g);
	FILE *f = fopen(dst, "wb");
	if (!f || fwrite(bytes, 1, size, f) != size || fclose(f) != 0)
		tap_bail("cannot write %s", dst);
	free(bytes);
}

static void make_models(void)
{
	const char *tmp = tap_tmpdir();
	snprintf(path_t, sizeof path_t, "%s/target.gguf", tmp);
	snprintf(path_rand, sizeof path_rand, "%s/draft-random.gguf", tmp);
	snprintf(path_other, sizeof path_other, "%s/draft-other-vocab.gguf", tmp);
	snprintf(path_small, sizeof path_small, "%s/small.gguf", tmp);
	snprintf(path_noisy, sizeof path_noisy, "%s/small-noisy.gguf", tmp);
	/* Q8_0: rows of up to 64 go through the same dot kernels, so a verifying
	 * pass computes each row exactly as a pass of one row does */
	synth(path_t, &(struct synth_params){ .n_embd = 128, .n_layer = 4, .n_head = 4, .n_head_kv = 2,
					      .n_ff = 256, .n_ctx = 256, .type = ST_Q8_0,
					      .vocab_path = "builtin", .seed = 21 });
	synth(path_rand, &(struct synth_params){ .n_embd = 32, .n_layer = 2, .n_head = 2, .n_head_kv = 2,
						 .n_ff = 64, .n_ctx = 256, .type = ST_F32,
						 .vocab_path = "builtin", .seed = 22 });
	synth(path_other, &(struct synth_params){ .n_embd = 32, .n_layer = 1, .n_head = 2, .n_head_kv = 2,
						  .n_ff = 64, .n_ctx = 256, .type = ST_F32,
						  .vocab_path = "builtin", .n_vocab = 600, .seed = 23 });
	synth(path_small, &(struct synth_params){ .n_embd = 32, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
						  .n_ff = 64, .n_ctx = 256, .type = ST_F32,
						  .vocab_path = "builtin", .seed = 7 });
	noisy_copy(path_small, path_noisy, 0.08f);
}

/* ---- running sequences ---- */

static int n_threads = 2;
/* --memory-budget bounds weights, KV cache and scratch: a budgeted engine gets
 * this KV cache (one sequence's, as the unbudgeted plan gives it), so a budget
 * of WEIGHTS + overhead() leaves the weights exactly WEIGHTS */
static uint64_t kv_fixed;

static struct engine *open_engine(const char *model, const char *draft, uint64_t budget,
				  enum engine_io io, struct st_err *err)
{
	struct engine_config cfg;
	struct engine *e = NULL;
	engine_config_default(&cfg);
	cfg.model_path = model;
	cfg.ctx_size = 256;
	cfg.batch_size = 64;
	cfg.threads = n_threads;
	cfg.memory_budget = budget;
	cfg.kv_budget = budget ? kv_fixed : 0;
	cfg.io = io;
	cfg.kv_type = ST_F32;
	if (draft) {
		cfg.draft = DRAFT_MODEL;
		snprintf(cfg.draft_path, sizeof cfg.draft_path, "%s", draft);
	}
	if (engine_open(&cfg, &e, err) < 0)
		return NULL;
	return e;
}

/* What a sequence reported. */
struct run {
	char text[4096];
	size_t len;
	int32_t ids[256];
	float lp[256];
	uint32_t n, n_pieces;
	enum seq_finish finish;
	char stop[64];
	struct seq_stats st;
};

static void on_piece(void *user, struct seq *s, const struct seq_piece *p)
{
	struct run *r = user;
	(void)s;
	if (r->len + p->len < sizeof r->text) {
		memcpy(r->text + r->len, p->text, p->len);
		r->len += p->len;
		r->text[r->len] = '\0';
	}
	for (uint32_t i = 0; i < p->n_ids && r->n < 256; i++, r->n++) {
		r->ids[r->n] = p->ids[i];
		r->lp[r->n] = p->logprobs ? p->logprobs[i].logprob : NAN;
	}
	r->n_pieces++;
}

struct job {
	const int32_t *prompt;
	uint32_t n_prompt;
	uint32_t max_tokens;
	enum draft_source draft;
	struct sampler_params sp;
	const char *stop;
	int32_t end_of_turn; /* -1: none */
	bool logprobs;
	uint32_t draft_max;
	bool stop_at_eos; /* else end-of-generation tokens are ignored */
};

static int run_job(struct engine *e, const struct job *j, struct run *r)
{
	const char *stops[1] = { j->stop };
	struct seq_params p = {
		.prompt = j->prompt, .n_prompt = j->n_prompt, .max_tokens = j->max_tokens,
		.sampling = j->sp, .stops = stops, .n_stops = j->stop ? 1 : 0,
		.ignore_eos = !j->stop_at_eos, .has_end_of_turn = j->end_of_turn >= 0,
		.end_of_turn = j->end_of_turn, .logprobs = j->logprobs, .top_logprobs = j->logprobs ? 2 : 0,
		.draft = j->draft, .draft_max = j->draft_max,
	};
	struct seq *sq = NULL;
	struct st_err err = { "" };
	struct seq_sink sink = { .piece = on_piece, .user = r };
	memset(r, 0, sizeof *r);
	int rc = seq_create(e, &p, 0, &sq, &err);
	if (rc == 0)
		rc = generate_run(e, sq, &sink, &err);
	if (rc < 0) {
		tap_diag("run: %s", err.msg);
	} else {
		r->finish = seq_finish_reason(sq);
		r->st = *seq_stats(sq);
		if (seq_stop_string(sq))
			snprintf(r->stop, sizeof r->stop, "%s", seq_stop_string(sq));
	}
	seq_free(sq);
	return rc;
}

/* Same ids, text, finish, stop string and log-probabilities. */
static bool same_run(const struct run *a, const struct run *b, const char *what)
{
	bool ok = a->n == b->n && memcmp(a->ids, b->ids, a->n * sizeof *a->ids) == 0 &&
		  a->len == b->len && memcmp(a->text, b->text, a->len) == 0 && a->finish == b->finish &&
		  strcmp(a->stop, b->stop) == 0;
	for (uint32_t i = 0; ok && i < a->n; i++)
		if (!(isnan(a->lp[i]) && isnan(b->lp[i])) && fabsf(a->lp[i] - b->lp[i]) > 1e-5f) {
			tap_diag("%s: token %u's log-probability %.7f against %.7f", what, i,
				 (double)b->lp[i], (double)a->lp[i]);
			ok = false;
		}
	if (!ok) {
		tap_diag("%s: %u ids, finish %d: '%s'", what, b->n, b->finish, b->text);
		tap_diag("without drafts: %u ids, finish %d: '%s'", a->n, a->finish, a->text);
	}
	return ok;
}

static struct sampler_params greedy_params(void)
{
	struct sampler_params sp;
	sampler_params_default(&sp);
	sp.temperature = 0.0f;
	return sp;
}

/* What a budget holds besides the weights (the KV cache and scratch, as the
 * plan counts them for this model); sets kv_fixed. */
static uint64_t overhead(const char *model)
{
	struct st_err err = { "" };
	struct engine *e = open_engine(model, NULL, 0, ENGINE_IO_URING, &err);
	uint64_t o = 0;
	if (e) {
		kv_fixed = engine_info(e)->kv_bytes;
		o = kv_fixed + engine_info(e)->scratch_bytes;
	}
	engine_close(e);
	return o;
}

/* All a draft model holds (weights, KV cache, scratch), which the budget
 * holds too. 0 when it does not open. */
static uint64_t draft_footprint(const char *model, const char *draft)
{
	struct st_err err = { "" };
	struct engine *e = open_engine(model, draft, 0, ENGINE_IO_URING, &err);
	uint64_t b = e && engine_info(e)->draft_model ? engine_info(e)->draft_model->memory_bound : 0;
	engine_close(e);
	return b;
}

/* The weights' smallest budget that streams everything it can, with a draft
 * model of `draft_bytes`: from the plan's own error message (after
 * overhead(model)). 0 when unknown. */
static uint64_t min_budget(const char *model, uint64_t draft_bytes)
{
	struct st_err err = { "" };
	struct engine *e = open_engine(model, NULL, overhead(model) + 4096, ENGINE_IO_URING, &err);
	engine_close(e);
	const char *m = strstr(err.msg, "the minimum is ");
	const char *paren = m ? strchr(m, '(') : NULL;
	unsigned long long v = 0;
	if (!paren || sscanf(paren, "(%llu bytes", &v) != 1)
		return 0;
	return v + draft_bytes;
}

/* ---- greedy: the same tokens with drafts ---- */

struct setting {
	const char *name;
	uint64_t budget;
	enum engine_io io;
};

static void test_greedy(const char *model, const char *what, const char *prompt_text,
			const char *random_draft)
{
	struct st_err err = { "" };
	struct engine *base = open_engine(model, NULL, 0, ENGINE_IO_URING, &err);
	if (!tap_ok(base != NULL, "%s opens", what))
		return tap_diag("%s", err.msg);
	int32_t *prompt = NULL;
	uint32_t n_prompt = 0;
	engine_tokenize(base, prompt_text, strlen(prompt_text), 1, false, &prompt, &n_prompt);
	struct job j = { .prompt = prompt, .n_prompt = n_prompt, .max_tokens = GEN_TOKENS,
			 .draft = DRAFT_NONE, .sp = greedy_params(), .end_of_turn = -1, .logprobs = true };
	struct run *ref = tap_xmalloc(sizeof *ref), *r = tap_xmalloc(sizeof *r);
	run_job(base, &j, ref);
	struct engine_stats es;
	engine_get_stats(base, &es);
	uint64_t model_bytes = es.bytes_resident;
	engine_close(base);

	/* the draft models' footprints, for the budgets, which hold them too */
	uint64_t self_bytes = draft_footprint(model, model);
	uint64_t rand_bytes = draft_footprint(model, random_draft);
	uint64_t min = min_budget(model, 0), over = overhead(model);
	tap_ok(self_bytes > 0 && rand_bytes > 0 && min > 0, "%s: sizes for the budgets (model %llu, "
	       "minimum %llu, drafts %llu and %llu bytes)", what, (unsigned long long)model_bytes,
	       (unsigned long long)min, (unsigned long long)self_bytes, (unsigned long long)rand_bytes);

	const struct setting settings[] = {
		{ "resident", 0, ENGINE_IO_URING },
		{ "all streamed, io_uring", min + over, ENGINE_IO_URING },
		{ "half streamed, io_uring", min + model_bytes / 3 + over, ENGINE_IO_URING },
		{ "all streamed, mmap", min + over, ENGINE_IO_MMAP },
	};
	for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
		const struct setting *st = &settings[i];
		/* each engine holds a draft model or not; its budget grows by the draft's size */
		struct { const char *draft; uint64_t bytes; const char *name; } engines[] = {
			{ NULL, 0, "no draft model" },
			{ model, self_bytes, "the model as its own draft" },
			{ random_draft, rand_bytes, "a random draft model" },
		};
		for (size_t k = 0; k < 3; k++) {
			uint64_t budget = st->budget ? st->budget + engines[k].bytes : 0;
			struct engine *e = open_engine(model, engines[k].draft, budget, st->io, &err);
			if (!tap_ok(e != NULL, "%s, %s, %s: opens", what, st->name, engines[k].name)) {
				tap_diag("%s", err.msg);
				continue;
			}
			struct job jj = j;
			jj.draft = engines[k].draft ? DRAFT_MODEL : DRAFT_NONE;
			run_job(e, &jj, r);
			tap_ok(same_run(ref, r, "drafts"), "%s, %s, %s: the same %u tokens (%u drafted, %u "
			       "kept, %u passes)", what, st->name, engines[k].name, r->n, r->st.drafted,
			       r->st.accepted, r->st.gen_passes);
			if (k == 0) {
				jj.draft = DRAFT_LOOKUP;
				run_job(e, &jj, r);
				tap_ok(same_run(ref, r, "lookup"), "%s, %s, lookup drafts: the same %u tokens "
				       "(%u drafted, %u kept, %u passes)", what, st->name, r->n, r->st.drafted,
				       r->st.accepted, r->st.gen_passes);
			}
			if (k == 1 && i == 0)
				tap_ok(r->st.accepted == r->st.drafted && r->st.gen_passes * 3 < r->n,
				       "%s: its own draft is always kept: %u of %u, %.2f tokens per pass",
				       what, r->st.accepted, r->st.drafted, (double)r->n / r->st.gen_passes);
			engine_close(e);
		}
	}
	free(prompt);
	free(ref);
	free(r);
}

/* A stop string, an end-of-turn token and max_tokens in the middle of a run
 * of kept drafts end it where they end generation without drafts. */
static void test_endings(void)
{
	struct st_err err = { "" };
	struct engine *e = open_engine(path_t, path_t, 0, ENGINE_IO_URING, &err);
	if (!tap_ok(e != NULL, "the target with itself as its draft opens"))
		return tap_diag("%s", err.msg);
	int32_t *prompt = NULL;
	uint32_t n_prompt = 0;
	engine_tokenize(e, "Once upon a time", 16, 1, false, &prompt, &n_prompt);
	struct job j = { .prompt = prompt, .n_prompt = n_prompt, .max_tokens = GEN_TOKENS,
			 .draft = DRAFT_NONE, .sp = greedy_params(), .end_of_turn = -1, .logprobs = true };
	struct run *ref = tap_xmalloc(sizeof *ref), *a = tap_xmalloc(sizeof *a), *b = tap_xmalloc(sizeof *b);
	run_job(e, &j, ref);

	/* a stop string: a few bytes from the middle of the text */
	char stop[8] = "";
	if (ref->len > 40)
		memcpy(stop, ref->text + ref->len / 2, 3);
	struct job js = j;
	js.stop = stop;
	run_job(e, &js, a);
	js.draft = DRAFT_MODEL;
	run_job(e, &js, b);
	tap_ok(stop[0] && a->finish == SEQ_FINISH_STOP && same_run(a, b, "stop string") &&
		       b->st.drafted > b->st.gen_passes,
	       "a stop string ('%s') inside a run of kept drafts: the same text, ids and finish (%u "
	       "tokens, %u drafts kept in %u passes)", stop, b->n, b->st.accepted, b->st.gen_passes);

	/* an end-of-turn token: the 15th generated one */
	struct job jt = j;
	jt.end_of_turn = ref->ids[14];
	jt.stop_at_eos = true;
	run_job(e, &jt, a);
	jt.draft = DRAFT_MODEL;
	run_job(e, &jt, b);
	tap_ok(a->finish == SEQ_FINISH_EOG && a->n <= 15 && same_run(a, b, "end of turn"),
	       "an end-of-turn token (%d) inside a run of kept drafts ends it there (%u tokens)",
	       jt.end_of_turn, b->n);

	/* max_tokens */
	struct job jm = j;
	jm.max_tokens = 13;
	jm.draft = DRAFT_MODEL;
	run_job(e, &jm, b);
	tap_ok(b->n == 13 && b->finish == SEQ_FINISH_LENGTH && memcmp(b->ids, ref->ids, 13 * sizeof *b->ids) == 0,
	       "max_tokens 13 with drafts of up to 8: exactly 13 tokens, the first 13 of the run");

	/* draft_max per sequence */
	struct job jk = j;
	jk.draft = DRAFT_MODEL;
	jk.draft_max = 3;
	run_job(e, &jk, b);
	tap_ok(same_run(ref, b, "draft_max 3") && b->st.accepted <= 3 * b->st.gen_passes &&
		       b->st.accepted > 2 * b->st.gen_passes - 4,
	       "draft_max 3: at most 3 drafts per pass (%u kept in %u passes)", b->st.accepted,
	       b->st.gen_passes);
	engine_close(e);
	free(prompt);
	free(ref);
	free(a);
	free(b);
}

/* Drafting stops at a token that ends generation and at one that completes a
 * stop string: what follows could never be kept. */
static void test_draft_stops(void)
{
	struct st_err err = { "" };
	struct engine *e = open_engine(path_t, NULL, 0, ENGINE_IO_URING, &err);
	if (!tap_ok(e != NULL, "the target opens"))
		return tap_diag("%s", err.msg);
	int32_t *prompt = NULL, *upon = NULL;
	uint32_t n_prompt = 0, n_upon = 0;
	engine_tokenize(e, "Once", 4, 1, false, &prompt, &n_prompt);
	engine_tokenize(e, " upon a time", 12, 0, false, &upon, &n_upon);
	const char *stops[] = { "upon" };
	struct seq_params p = { .prompt = prompt, .n_prompt = n_prompt, .max_tokens = 32,
				.stops = stops, .n_stops = 1, .draft = DRAFT_LOOKUP };
	p.sampling = greedy_params();
	struct seq *sq = NULL;
	struct batch b;
	float *logits = tap_xmalloc((size_t)engine_max_logits_rows(e) * engine_n_vocab(e) * sizeof *logits);
	batch_init(&b, engine_max_batch(e), engine_max_logits_rows(e));
	seq_create(e, &p, 0, &sq, &err);
	/* the prompt's pass, by hand: then it generates */
	seq_add_rows(sq, &b, b.cap);
	struct seq_pass pass = { 0 };
	if (sq && engine_decode(e, &b, logits, &err) == 0)
		seq_pass_done(sq, logits, &pass, NULL);
	bool gen = sq && seq_state(sq) == SEQ_GENERATING && seq_draft_wanted(sq) == 8;
	uint32_t pushed = 0, n = 0;
	if (gen) {
		seq_draft_begin(sq, 8);
		while (pushed < n_upon && seq_draft_push(sq, upon[pushed]))
			pushed++;
		seq_draft(sq, &n);
	}
	tap_ok(gen && n_upon >= 2 && pushed < n_upon && n == pushed + 1 && seq_draft_room(sq) == 0,
	       "a draft ends with the token that completes a stop string ('upon': %u of %u tokens "
	       "drafted)", n, n_upon);
	uint32_t n2 = 0;
	if (gen) {
		seq_draft_begin(sq, 8);
		seq_draft_push(sq, upon[n_upon - 1]);
		seq_draft_push(sq, 2); /* the builtin vocabulary's EOS */
		seq_draft_push(sq, upon[n_upon - 1]);
		seq_draft(sq, &n2);
	}
	tap_ok(gen && n2 == 2, "a draft ends with an end-of-generation token (%u drafted)", n2);
	uint32_t n3 = 0;
	if (gen) {
		seq_draft_begin(sq, 3);
		for (int i = 0; i < 5; i++)
			seq_draft_push(sq, upon[n_upon - 1]);
		seq_draft(sq, &n3);
	}
	tap_ok(gen && n3 == 3, "a draft ends at the k it was allowed (3)");
	seq_free(sq);
	batch_free(&b);
	free(logits);
	free(prompt);
	free(upon);
	engine_close(e);
}

/* A draft model must have the target's vocabulary; its weights come out of the budget. */
static void test_refusals(void)
{
	struct st_err err = { "" };
	struct engine *e = open_engine(path_t, path_other, 0, ENGINE_IO_URING, &err);
	tap_ok(!e && strstr(err.msg, "vocabulary") && strstr(err.msg, "draft-other-vocab.gguf"),
	       "a draft model with another vocabulary is refused: %s", err.msg);
	engine_close(e);
	const char *shared = tap_shared_dir();
	char stories[4096];
	if (shared) {
		snprintf(stories, sizeof stories, "%s/models/stories260K.gguf", shared);
		e = open_engine(stories, path_rand, 0, ENGINE_IO_URING, &err);
		tap_ok(!e && strstr(err.msg, "token") && strstr(err.msg, "vocabulary"),
		       "a draft with as many tokens, but other ones, is refused: %s", err.msg);
		engine_close(e);
	} else {
		tap_skip("../shared is absent: no second 512-token vocabulary");
	}

	e = open_engine(path_t, path_t, 0, ENGINE_IO_URING, &err);
	struct engine_stats es;
	uint64_t dweights = 0;
	if (e) {
		engine_get_stats(e, &es);
		dweights = es.draft_bytes;
	}
	engine_close(e);
	/* all the draft holds (weights, KV cache, scratch) comes out of the budget */
	uint64_t dbytes = draft_footprint(path_t, path_t), over = overhead(path_t);
	e = open_engine(path_t, path_t, dbytes, ENGINE_IO_URING, &err);
	tap_ok(!e && strstr(err.msg, "draft model"), "a budget the draft model fills is refused: %s",
	       err.msg);
	engine_close(e);
	uint64_t min = min_budget(path_t, 0);
	e = open_engine(path_t, path_t, min + dbytes + over - 4096, ENGINE_IO_URING, &err);
	tap_ok(!e && strstr(err.msg, "draft model"), "a budget that holds the model's minimum, but not "
	       "the draft's share as well, is refused: %s", err.msg);
	engine_close(e);
	e = open_engine(path_t, path_t, min + dbytes + over, ENGINE_IO_URING, &err);
	struct weights_stats ws = { 0 };
	if (e) {
		engine_get_stats(e, &es);
		engine_weights_stats(e, &ws);
	}
	uint64_t held = ws.bytes_resident + (uint64_t)ws.n_slots * ws.slot_bytes;
	tap_ok(e && es.draft_bytes == dweights && held <= min && ws.n_streamed > 0,
	       "with the draft model, the model plans within the budget minus the draft's %llu bytes "
	       "(it holds %llu, streams %u units)", (unsigned long long)dbytes,
	       (unsigned long long)held, ws.n_streamed);
	if (e) {
		char plan[4096];
		engine_describe(e, plan, sizeof plan);
		tap_ok(strstr(plan, "draft model") && strstr(plan, "budget") != NULL,
		       "the plan says what the draft model costs");
	} else {
		tap_skip("no engine");
	}
	engine_close(e);
}

/* ---- sampling: the distribution is the target's ---- */

/* Regularized upper incomplete gamma Q(a, x) (Numerical Recipes' gammq):
 * the chi-square p-value of statistic x with 2a degrees of freedom. */
static double gamma_q(double a, double x)
{
	if (x <= 0)
		return 1.0;
	double gln = lgamma(a);
	if (x < a + 1) { /* series for P */
		double ap = a, sum = 1.0 / a, del = sum;
		for (int n = 0; n < 1000; n++) {
			ap += 1;
			del *= x / ap;
			sum += del;
			if (fabs(del) < fabs(sum) * 1e-15)
				break;
		}
		return 1.0 - sum * exp(-x + a * log(x) - gln);
	}
	/* continued fraction for Q (Lentz) */
	double b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
	for (int i = 1; i < 1000; i++) {
		double an = -i * (i - a);
		b += 2;
		d = an * d + b;
		if (fabs(d) < 1e-300)
			d = 1e-300;
		c = b + an / c;
		if (fabs(c) < 1e-300)
			c = 1e-300;
		d = 1 / d;
		double del = d * c;
		h *= del;
		if (fabs(del - 1) < 1e-15)
			break;
	}
	return exp(-x + a * log(x) - gln) * h;
}

#define MAX_CELLS 4096
#define SEQ_LEN 4

/* How often each generated sequence occurred: cells keyed by their ids. */
struct counts {
	int32_t key[MAX_CELLS][SEQ_LEN];
	uint32_t n[MAX_CELLS];
	uint32_t cells;
	uint32_t total;
	uint64_t drafted, accepted;
};

static void count(struct counts *c, const int32_t *ids)
{
	for (uint32_t i = 0; i < c->cells; i++) {
		if (memcmp(c->key[i], ids, sizeof c->key[i]) == 0) {
			c->n[i]++;
			c->total++;
			return;
		}
	}
	if (c->cells < MAX_CELLS) {
		memcpy(c->key[c->cells], ids, sizeof c->key[0]);
		c->n[c->cells++] = 1;
		c->total++;
	}
}

static uint32_t count_of(const struct counts *c, const int32_t *key)
{
	for (uint32_t i = 0; i < c->cells; i++)
		if (memcmp(c->key[i], key, sizeof c->key[i]) == 0)
			return c->n[i];
	return 0;
}

/* The chi-square test of homogeneity of a and b over their cells (cells with
 * fewer than 10 occurrences in both together pooled into one): the p-value. */
static double homogeneity(const struct counts *a, const struct counts *b, uint32_t *df, double *x2)
{
	double na = a->total, nb = b->total, stat = 0;
	uint32_t used = 0;
	uint64_t pool_a = 0, pool_b = 0;
	const struct counts *both[2] = { a, b };
	for (int s = 0; s < 2; s++) {
		for (uint32_t i = 0; i < both[s]->cells; i++) {
			const int32_t *key = both[s]->key[i];
			if (s == 1 && count_of(a, key) > 0)
				continue; /* seen from a's side */
			double oa = count_of(a, key), ob = count_of(b, key);
			if (oa + ob < 10) {
				pool_a += (uint64_t)oa;
				pool_b += (uint64_t)ob;
				continue;
			}
			double ea = na * (oa + ob) / (na + nb), eb = nb * (oa + ob) / (na + nb);
			stat += (oa - ea) * (oa - ea) / ea + (ob - eb) * (ob - eb) / eb;
			used++;
		}
	}
	if (pool_a + pool_b > 0) {
		double oa = (double)pool_a, ob = (double)pool_b;
		double ea = na * (oa + ob) / (na + nb), eb = nb * (oa + ob) / (na + nb);
		stat += (oa - ea) * (oa - ea) / ea + (ob - eb) * (ob - eb) / eb;
		used++;
	}
	*df = used > 1 ? used - 1 : 1;
	*x2 = stat;
	return gamma_q(*df / 2.0, stat / 2.0);
}

/* n sequences of SEQ_LEN tokens, seeds first_seed.. */
static void sample_many(struct engine *e, const struct job *j, uint32_t n, uint64_t first_seed,
			struct counts *c)
{
	struct run *r = tap_xmalloc(sizeof *r);
	memset(c, 0, sizeof *c);
	for (uint32_t i = 0; i < n; i++) {
		struct job jj = *j;
		jj.sp.seed = first_seed + i;
		if (run_job(e, &jj, r) < 0 || r->n != SEQ_LEN)
			tap_bail("a sampled run failed (%u tokens)", r->n);
		count(c, r->ids);
		c->drafted += r->st.drafted;
		c->accepted += r->st.accepted;
	}
	free(r);
}

static void test_distribution(void)
{
	enum { N = 4000 };
	struct st_err err = { "" };
	n_threads = 1; /* a tiny model: waking a second thread costs more than it computes */
	struct engine *e = open_engine(path_small, path_noisy, 0, ENGINE_IO_URING, &err);
	if (!tap_ok(e != NULL, "the small model with its noisy copy as draft opens"))
		return tap_diag("%s", err.msg);
	struct counts *plain = tap_xmalloc(sizeof *plain), *spec = tap_xmalloc(sizeof *spec);
	/* a prompt whose tail was seen before, so lookup has drafts to offer */
	int32_t *p0 = NULL;
	uint32_t n0 = 0;
	engine_tokenize(e, "Once upon a time there was", 26, 1, false, &p0, &n0);
	struct job g = { .prompt = p0, .n_prompt = n0, .max_tokens = 16, .draft = DRAFT_NONE,
			 .sp = greedy_params(), .end_of_turn = -1 };
	struct run *gr = tap_xmalloc(sizeof *gr);
	run_job(e, &g, gr);
	int32_t prompt[64];
	uint32_t np = 0;
	for (uint32_t i = 0; i < n0; i++)
		prompt[np++] = p0[i];
	for (uint32_t i = 0; i < 6 && i < gr->n; i++)
		prompt[np++] = gr->ids[i];
	for (uint32_t i = 1; i < n0; i++)
		prompt[np++] = p0[i];

	struct {
		const char *name;
		float temperature, top_p, min_p, penalty;
		int32_t top_k, window;
	} cfgs[] = {
		{ "temperature 1, top-k 2", 1.0f, 1.0f, 0.0f, 1.0f, 2, 0 },
		{ "temperature 0.8, top-k 3, top-p 0.9, min-p 0.05, repetition penalty 1.5 over 8",
		  0.8f, 0.9f, 0.05f, 1.5f, 3, 8 },
	};
	for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
		struct job j = { .prompt = prompt, .n_prompt = np, .max_tokens = SEQ_LEN,
				 .draft = DRAFT_NONE, .end_of_turn = -1, .draft_max = 4 };
		sampler_params_default(&j.sp);
		j.sp.temperature = cfgs[c].temperature;
		j.sp.top_k = cfgs[c].top_k;
		j.sp.top_p = cfgs[c].top_p;
		j.sp.min_p = cfgs[c].min_p;
		j.sp.repeat_penalty = cfgs[c].penalty;
		j.sp.repeat_last_n = cfgs[c].window;
		sample_many(e, &j, N, 1000000, plain);
		const enum draft_source srcs[] = { DRAFT_MODEL, DRAFT_LOOKUP };
		for (size_t s = 0; s < 2; s++) {
			struct job js = j;
			js.draft = srcs[s];
			sample_many(e, &js, N, 2000000 + 100000 * s, spec);
			uint32_t df;
			double x2, pv = homogeneity(plain, spec, &df, &x2);
			tap_ok(pv > ALPHA && spec->accepted > 200 && spec->drafted - spec->accepted > 200,
			       "%s, %s drafts: %u sequences of %d tokens sampled speculatively follow the "
			       "plain distribution (chi-square %.1f, %u df, p = %.3f > %g; %llu of %llu "
			       "drafts kept)", cfgs[c].name, draft_source_name(srcs[s]), N, SEQ_LEN, x2, df,
			       pv, ALPHA, (unsigned long long)spec->accepted,
			       (unsigned long long)spec->drafted);
		}
		if (c == 0) {
			/* the control: the same test tells the target's distribution from
			 * the draft model's, which is what keeping every draft would give */
			struct engine *de = open_engine(path_noisy, NULL, 0, ENGINE_IO_URING, &err);
			if (de) {
				sample_many(de, &j, N, 3000000, spec);
				uint32_t df;
				double x2, pv = homogeneity(plain, spec, &df, &x2);
				tap_ok(pv < ALPHA, "control: the test tells the draft model's own distribution "
				       "(every draft kept) from the target's (chi-square %.1f, %u df, p = %.2g)",
				       x2, df, pv);
			} else {
				tap_ok(0, "the draft model opens alone: %s", err.msg);
			}
			engine_close(de);
		}
	}
	free(p0);
	free(gr);
	free(plain);
	free(spec);
	engine_close(e);
}

int main(void)
{
	test_lookup();
	make_models();
	test_greedy(path_t, "Q8_0 target", "Once upon a time", path_rand);
	const char *shared = tap_shared_dir();
	if (shared) {
		char stories[4096], rand_stories[4096];
		snprintf(stories, sizeof stories, "%s/models/stories260K.gguf", shared);
		snprintf(rand_stories, sizeof rand_stories, "%s/draft-stories-vocab.gguf", tap_tmpdir());
		synth(rand_stories, &(struct synth_params){ .n_embd = 32, .n_layer = 2, .n_head = 2,
							    .n_head_kv = 2, .n_ff = 64, .n_ctx = 256,
							    .type = ST_F32, .vocab_path = stories,
							    .seed = 24 });
		test_greedy(stories, "stories260K", "Once upon a time, there was a little girl named Lily. "
			    "She loved to play outside.", rand_stories);
	} else {
		tap_skip("../shared is absent: stories260K not run");
	}
	test_endings();
	test_draft_stops();
	test_refusals();
	test_distribution();
	return tap_done();
}
