/* test-logprob.c: log-probabilities and scoring. logprob_token against hand
 * cases; stories260K's greedy continuation of "Once upon a time" against
 * log_softmax of llama.cpp's logits (within 1e-4, F32 KV cache); the prompt's
 * log-probabilities (echo) against the same tokens generated; a Score of four
 * continuations against four echo runs, in one pass with four slots and in
 * four with one. The last two run on a synthesized model, so they need no
 * ../shared. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/generate.h"
#include "kernels/types.h"
#include "tests/tap.h"
#include "tools/synth.h"

static void test_hand(void)
{
	/* p = (1/4, 3/4): logits (0, ln 3) */
	const float two[] = { 0.0f, logf(3.0f) };
	struct logprob_token t;
	logprob_token(two, 2, 1.0f, 1, 2, &t);
	tap_ok(fabs(t.logprob - log(0.75)) < 1e-6 && t.greedy, "logprob of the likely token: ln 3/4, greedy");
	tap_ok(t.n_top == 2 && t.top[0].id == 1 && t.top[1].id == 0 &&
	       fabs(t.top[1].logprob - log(0.25)) < 1e-6, "top 2: (1, ln 3/4), (0, ln 1/4)");
	logprob_token(two, 2, 1.0f, 0, 0, &t);
	tap_ok(fabs(t.logprob - log(0.25)) < 1e-6 && !t.greedy && t.n_top == 0,
	       "logprob of the other: ln 1/4, not greedy, no alternatives asked");
	/* temperature 2: logits halved, p = (1, sqrt 3) / (1 + sqrt 3) */
	logprob_token(two, 2, 2.0f, 1, 0, &t);
	tap_ok(fabs(t.logprob - log(sqrt(3.0) / (1 + sqrt(3.0)))) < 1e-6, "temperature 2 divides the logits");
	logprob_token(two, 2, 0.0f, 1, 0, &t);
	tap_ok(fabs(t.logprob - log(0.75)) < 1e-6, "temperature 0 (greedy) reports the model's own distribution");
	/* ties: lower id first; more alternatives asked than tokens */
	const float tie[] = { 1.0f, 2.0f, 2.0f, 0.5f, 2.0f };
	logprob_token(tie, 5, 1.0f, 4, 20, &t);
	tap_ok(t.n_top == 5 && t.top[0].id == 1 && t.top[1].id == 2 && t.top[2].id == 4 &&
	       t.top[3].id == 0 && t.top[4].id == 3, "ties rank the lower id first; 20 asked of 5 gives 5");
	tap_ok(!t.greedy, "a tied token after the first maximum is not the greedy one");
	double sum = 0;
	for (uint32_t k = 0; k < t.n_top; k++)
		sum += exp(t.top[k].logprob);
	tap_ok(fabs(sum - 1.0) < 1e-6, "the probabilities sum to 1 (%.9f)", sum);
}

/* ---- running the engine ---- */

struct capture {
	int32_t ids[64];
	struct logprob_token lp[64];
	uint32_t n;
};

static void on_piece(void *user, struct seq *s, const struct seq_piece *p)
{
	struct capture *c = user;
	(void)s;
	for (uint32_t i = 0; i < p->n_ids && c->n < 64; i++, c->n++) {
		c->ids[c->n] = p->ids[i];
		if (p->logprobs)
			c->lp[c->n] = p->logprobs[i];
	}
}

/* Greedy, n tokens from prompt, with logprobs (top k): into cap. */
static int greedy(struct engine *e, const int32_t *prompt, uint32_t n_prompt, uint32_t n, uint32_t k,
		  struct capture *cap)
{
	struct seq_params p = { .prompt = prompt, .n_prompt = n_prompt, .max_tokens = n,
				.ignore_eos = true, .logprobs = true, .top_logprobs = k };
	sampler_params_default(&p.sampling);
	p.sampling.temperature = 0;
	struct seq *sq = NULL;
	struct st_err err = { "" };
	struct seq_sink sink = { .piece = on_piece, .user = cap };
	int rc = seq_create(e, &p, 0, &sq, &err);
	if (rc == 0)
		rc = generate_run(e, sq, &sink, &err);
	if (rc < 0)
		tap_diag("%s", err.msg);
	seq_free(sq);
	return rc;
}

/* The prompt's log-probabilities (echo), generating one token. out: n_prompt entries. */
static int echo(struct engine *e, const int32_t *prompt, uint32_t n_prompt, struct logprob_token *out)
{
	struct seq_params p = { .prompt = prompt, .n_prompt = n_prompt, .max_tokens = 1,
				.ignore_eos = true, .echo_logprobs = true };
	sampler_params_default(&p.sampling);
	p.sampling.temperature = 0;
	struct seq *sq = NULL;
	struct st_err err = { "" };
	int rc = seq_create(e, &p, 0, &sq, &err);
	if (rc == 0)
		rc = generate_run(e, sq, NULL, &err);
	uint32_t n = 0;
	const struct logprob_token *lp = rc == 0 ? seq_prompt_logprobs(sq, &n) : NULL;
	if (lp && n == n_prompt)
		memcpy(out, lp, n * sizeof *lp);
	else
		rc = rc < 0 ? rc : -EINVAL;
	if (rc < 0)
		tap_diag("echo: %s", err.msg);
	seq_free(sq);
	return rc;
}

static void test_stories(void)
{
	const char *shared = tap_shared_dir();
	if (!shared) {
		tap_skip("../shared is absent: no llama.cpp logits to compare log-probabilities with");
		return;
	}
	char model[4096], path[4096];
	snprintf(model, sizeof model, "%s/models/stories260K.gguf", shared);
	snprintf(path, sizeof path, "%s/models/reference/stories260K.llamacpp-logits.f32", shared);
	struct engine_config cfg;
	struct engine *e = NULL;
	struct st_err err = { "" };
	engine_config_default(&cfg);
	cfg.model_path = model;
	cfg.kv_type = ST_F32; /* llama.cpp's reference run used an F32 cache */
	cfg.ctx_size = 512;
	cfg.threads = 2;
	if (!tap_ok(engine_open(&cfg, &e, &err) == 0, "stories260K opens"))
		return tap_diag("%s", err.msg);
	FILE *f = fopen(path, "rb");
	uint32_t V = engine_n_vocab(e), steps = 32;
	float *ref = tap_xmalloc((size_t)steps * V * sizeof *ref);
	size_t got = f ? fread(ref, sizeof *ref, (size_t)steps * V, f) : 0;
	if (f)
		fclose(f);
	int32_t *prompt;
	uint32_t n_prompt;
	engine_tokenize(e, "Once upon a time", 16, 1, false, &prompt, &n_prompt);
	struct capture cap = { .n = 0 };
	int rc = greedy(e, prompt, n_prompt, steps, 5, &cap);
	double worst = 0, worst_top = 0;
	for (uint32_t st = 0; rc == 0 && got == (size_t)steps * V && st < cap.n; st++) {
		const float *row = ref + (size_t)st * V;
		double max = row[0], sum = 0;
		for (uint32_t i = 1; i < V; i++)
			max = row[i] > max ? row[i] : max;
		for (uint32_t i = 0; i < V; i++)
			sum += exp(row[i] - max);
		double lse = max + log(sum);
		worst = fmax(worst, fabs(cap.lp[st].logprob - (row[cap.ids[st]] - lse)));
		for (uint32_t k = 0; k < cap.lp[st].n_top; k++)
			worst_top = fmax(worst_top, fabs(cap.lp[st].top[k].logprob -
							 (row[cap.lp[st].top[k].id] - lse)));
	}
	tap_ok(rc == 0 && cap.n == steps && worst <= 1e-4,
	       "stories260K: the greedy tokens' log-probabilities are log_softmax of llama.cpp's logits "
	       "within 1e-4 (worst %.2g over %u steps)", worst, cap.n);
	tap_ok(rc == 0 && worst_top <= 1e-4, "... and so are their top-5 alternatives' (worst %.2g)",
	       worst_top);
	free(prompt);
	free(ref);
	engine_close(e);
}

/* ---- echo and Score, on a model of our own ---- */

static void test_echo_and_score(void)
{
	char model[4096];
	snprintf(model, sizeof model, "%s/score.gguf", tap_tmpdir());
	struct synth_params sp = { .n_embd = 128, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
				   .n_ff = 256, .type = ST_Q8_0, .vocab_path = "builtin", .seed = 5,
				   .n_ctx = 256 };
	struct st_err err = { "" };
	if (!tap_ok(synth_write(model, &sp, &err) == 0, "synthesize a 2-layer Q8_0 model"))
		return tap_diag("%s", err.msg);

	for (int slots = 4; slots >= 1; slots -= 3) {
		struct engine_config cfg;
		struct engine *e = NULL;
		engine_config_default(&cfg);
		cfg.model_path = model;
		cfg.kv_type = ST_F32;
		cfg.n_slots = (uint32_t)slots;
		cfg.threads = 2;
		if (!tap_ok(engine_open(&cfg, &e, &err) == 0, "%d slots: the model opens", slots))
			return tap_diag("%s", err.msg);

		/* echo: the prompt's log-probabilities are those of the same tokens generated */
		int32_t *prompt;
		uint32_t n_prompt;
		engine_tokenize(e, "Once upon a time there was", 26, 1, false, &prompt, &n_prompt);
		struct capture cap = { .n = 0 };
		int rc = greedy(e, prompt, n_prompt, 8, 0, &cap);
		int32_t whole[64];
		memcpy(whole, prompt, n_prompt * sizeof *whole);
		memcpy(whole + n_prompt, cap.ids, cap.n * sizeof *whole);
		struct logprob_token lp[64];
		rc |= echo(e, whole, n_prompt + cap.n, lp);
		double worst = 0;
		for (uint32_t i = 0; rc == 0 && i < cap.n; i++)
			worst = fmax(worst, fabs(lp[n_prompt + i].logprob - cap.lp[i].logprob));
		tap_ok(rc == 0 && cap.n == 8 && worst <= 1e-4 && isnan(lp[0].logprob),
		       "%d slots: echo gives the prompt tokens the log-probabilities they had when "
		       "generated (worst %.2g), and none to the first", slots, worst);
		bool all_greedy = true;
		for (uint32_t i = 0; rc == 0 && i < cap.n; i++)
			all_greedy &= lp[n_prompt + i].greedy;
		tap_ok(rc == 0 && all_greedy, "%d slots: echo flags greedily generated tokens greedy", slots);

		/* Score of four continuations against four echo runs of context + continuation */
		static const int32_t conts_ids[4][5] = {
			{ 300, 301, 302, 0, 0 }, { 77, 0, 0, 0, 0 }, { 400, 12, 250, 251, 252 }, { 9, 8, 0, 0, 0 } };
		static const uint32_t n_cont[4] = { 3, 1, 5, 2 };
		const int32_t *conts[4] = { conts_ids[0], conts_ids[1], conts_ids[2], conts_ids[3] };
		struct score_params p = { .context = prompt, .n_context = n_prompt, .conts = conts,
					  .n_cont = n_cont, .n_conts = 4, .token_logprobs = true,
					  .top_logprobs = 3 };
		uint32_t slot_ids[4] = { 0, 1, 2, 3 };
		struct score *sc = NULL;
		rc = score_create(e, &p, slot_ids, (uint32_t)slots, &sc, &err);
		if (rc == 0)
			rc = score_run(e, sc, &err);
		const struct score_result *res = rc == 0 ? score_results(sc) : NULL;
		tap_ok(res != NULL, "%d slots: the score runs", slots);
		if (!res) {
			tap_diag("%s", err.msg);
			score_free(sc);
			free(prompt);
			engine_close(e);
			continue;
		}
		/* one slot: the context with the first continuation, then one pass for
		 * each other one but the one-token one (the context's last row scores it) */
		tap_is_int(score_stats(sc)->passes, slots == 4 ? 1 : 3,
			   "%d slots: the context and four continuations take %d pass(es)", slots,
			   slots == 4 ? 1 : 3);
		double worst_sum = 0, worst_tok = 0;
		bool greedy_same = true;
		for (int c = 0; c < 4; c++) {
			int32_t seqv[64];
			memcpy(seqv, prompt, n_prompt * sizeof *seqv);
			memcpy(seqv + n_prompt, conts[c], n_cont[c] * sizeof *seqv);
			rc = echo(e, seqv, n_prompt + n_cont[c], lp);
			double sum = 0;
			bool g = true;
			for (uint32_t t = 0; rc == 0 && t < n_cont[c]; t++) {
				sum += lp[n_prompt + t].logprob;
				g = g && lp[n_prompt + t].greedy;
				worst_tok = fmax(worst_tok, fabs(lp[n_prompt + t].logprob - res[c].tokens[t].logprob));
			}
			worst_sum = fmax(worst_sum, fabs(sum - res[c].logprob));
			greedy_same &= g == res[c].greedy;
		}
		tap_ok(worst_sum <= 1e-4 && worst_tok <= 1e-4,
		       "%d slots: each continuation's score equals an echo run of context + continuation "
		       "(sums within %.2g, tokens within %.2g)", slots, worst_sum, worst_tok);
		tap_ok(greedy_same, "%d slots: and so do the greedy flags", slots);
		score_free(sc);
		free(prompt);
		engine_close(e);
	}
}

int main(void)
{
	test_hand();
	test_stories();
	test_echo_and_score();
	return tap_done();
}
