/* generate.c: see generate.h. */
#include "engine/generate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "tokenizer/tokenizer.h"

int generate(struct engine *e, const struct gen_request *req, gen_token_fn on_token, void *user,
	     struct gen_result *res, struct st_err *err)
{
	const struct tokenizer *tok = engine_tokenizer(e);
	uint32_t n_vocab = engine_model(e)->hp.n_vocab;
	uint32_t n_ctx = engine_n_ctx(e), max_batch = engine_max_batch(e);
	uint32_t n_hist = 0, cap = req->n_prompt + req->max_tokens;
	int32_t *hist = NULL, *tokens = NULL;
	uint32_t *pos = NULL, *slot = NULL;
	uint8_t *want = NULL;
	float *logits = NULL, *raw = NULL;
	struct sampler *smp = NULL;
	uint64_t t0 = clock_now_ns(), t_first = 0;
	int rc;

	memset(res, 0, sizeof *res);
	res->n_prompt = req->n_prompt;
	if (req->n_prompt == 0)
		return st_errf(err, -EINVAL, "the prompt is empty");
	if (req->n_prompt >= n_ctx)
		return st_errf(err, -EINVAL, "the prompt has %u tokens but the context holds %u",
			       req->n_prompt, n_ctx);
	rc = sampler_params_check(&req->sampling, err);
	if (rc < 0)
		return rc;

	hist = malloc(cap * sizeof *hist);
	tokens = malloc(max_batch * sizeof *tokens);
	pos = malloc(max_batch * sizeof *pos);
	slot = malloc(max_batch * sizeof *slot);
	want = calloc(max_batch, 1);
	logits = malloc((size_t)n_vocab * sizeof *logits);
	raw = malloc((size_t)n_vocab * sizeof *raw);
	if (!hist || !tokens || !pos || !slot || !want || !logits || !raw ||
	    sampler_new(&req->sampling, n_vocab, &smp) < 0) {
		rc = st_errf(err, -ENOMEM, "out of memory");
		goto out;
	}
	engine_slot_reset(e, req->slot);
	memcpy(hist, req->prompt, req->n_prompt * sizeof *hist);
	n_hist = req->n_prompt;

	/* Prompt in chunks of up to max_batch tokens; logits only for its last token. */
	for (uint32_t done = 0; done < req->n_prompt;) {
		uint32_t n = req->n_prompt - done < max_batch ? req->n_prompt - done : max_batch;
		for (uint32_t i = 0; i < n; i++) {
			tokens[i] = req->prompt[done + i];
			pos[i] = done + i;
			slot[i] = req->slot;
			want[i] = done + i == req->n_prompt - 1;
		}
		struct forward_batch b = { n, tokens, pos, slot, want };
		rc = engine_decode(e, &b, logits, err);
		if (rc < 0)
			goto out;
		done += n;
	}

	res->finish = GEN_FINISH_LENGTH;
	for (uint32_t g = 0; g < req->max_tokens; g++) {
		memcpy(raw, logits, (size_t)n_vocab * sizeof *raw);
		int32_t t = sampler_sample(smp, logits, hist, n_hist);
		if (g == 0) {
			t_first = clock_now_ns();
			res->prompt_ns = t_first - t0;
		}
		hist[n_hist++] = t;
		res->n_generated++;
		if (on_token && on_token(user, t, raw, n_vocab)) {
			res->finish = GEN_FINISH_STOPPED;
			break;
		}
		if (req->stop_at_eog && tokenizer_is_eog(tok, t)) {
			res->finish = GEN_FINISH_EOG;
			break;
		}
		if (g + 1 == req->max_tokens || n_hist >= n_ctx)
			break; /* no pass needed for a token nobody will sample after */
		uint32_t p = n_hist - 1, s = req->slot;
		uint8_t w = 1;
		struct forward_batch b = { 1, &t, &p, &s, &w };
		rc = engine_decode(e, &b, logits, err);
		if (rc < 0)
			goto out;
	}
	if (t_first)
		res->gen_ns = clock_now_ns() - t_first;
	rc = 0;
out:
	sampler_free(smp);
	free(hist);
	free(tokens);
	free(pos);
	free(slot);
	free(want);
	free(logits);
	free(raw);
	return rc;
}
