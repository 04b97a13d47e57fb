/* generate.h: the single-sequence generation loop (prompt in batches, then
 * one token per pass) used by strata-model and the benchmark. The daemon does
 * not use it: its scheduler interleaves many sequences in each pass. */
#ifndef STRATA_ENGINE_GENERATE_H
#define STRATA_ENGINE_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/sampler.h"

struct engine;

enum gen_finish {
	GEN_FINISH_LENGTH,   /* max_tokens reached, or the context is full */
	GEN_FINISH_EOG,	     /* the model produced an end-of-generation token */
	GEN_FINISH_STOPPED,  /* the callback asked to stop */
};

struct gen_request {
	const int32_t *prompt;	 /* (n_prompt) token ids, BOS included if wanted */
	uint32_t n_prompt;	 /* >= 1 */
	uint32_t max_tokens;	 /* tokens to generate */
	struct sampler_params sampling;
	uint32_t slot;		 /* KV slot to use (reset first) */
	bool stop_at_eog;	 /* stop on an end-of-generation token (true for people) */
};

struct gen_result {
	uint32_t n_prompt;
	uint32_t n_generated;
	enum gen_finish finish;
	uint64_t prompt_ns;	 /* prompt processing, up to the first sampled token */
	uint64_t gen_ns;	 /* everything after the first token */
};

/* Called with each sampled token and the logits it was sampled from
 * ((n_vocab) f32, before any penalty). Return non-zero to stop. */
typedef int (*gen_token_fn)(void *user, int32_t token, const float *logits, uint32_t n_vocab);

/* Run one generation. -EINVAL if the prompt does not fit the context
 * (message says both sizes), or the engine's error. */
int generate(struct engine *e, const struct gen_request *req, gen_token_fn on_token, void *user,
	     struct gen_result *res, struct st_err *err);

#endif
