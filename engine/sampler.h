/* sampler.h: turns a step's logits into the next token. The chain and its
 * order follow llama.cpp's defaults: repetition penalty, top-k, top-p, min-p,
 * temperature, then a draw from a seeded generator, so a seed reproduces a
 * run exactly. Temperature <= 0 is greedy (argmax, first index on ties). */
#ifndef STRATA_ENGINE_SAMPLER_H
#define STRATA_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct sampler_params {
	float temperature;	/* <= 0: greedy */
	int32_t top_k;		/* <= 0: off */
	float top_p;		/* >= 1: off */
	float min_p;		/* <= 0: off; keep tokens with p >= min_p * p_max */
	float repeat_penalty;	/* 1: off; logits of recent tokens: >0 divided, <0 multiplied */
	int32_t repeat_last_n;	/* how many recent tokens the penalty looks at */
	uint64_t seed;
};

/* Defaults as llama.cpp's CLI: temperature 0.8, top-k 40, top-p 0.95,
 * min-p 0.05, no repetition penalty (1.0, last 64), seed 0. */
void sampler_params_default(struct sampler_params *p);
/* -EINVAL with a message when a value is out of range (e.g. top_p > 1, NaN). */
int sampler_params_check(const struct sampler_params *p, struct st_err *err);

struct sampler;

/* Caller owns *out; sampler_free(NULL) is a no-op. -ENOMEM on failure. */
int sampler_new(const struct sampler_params *p, uint32_t n_vocab, struct sampler **out);
void sampler_free(struct sampler *s);

/* Pick a token from logits (n_vocab f32; modified in place by the penalty).
 * history: the last tokens of the sequence (prompt and generated), oldest first. */
int32_t sampler_sample(struct sampler *s, float *logits, const int32_t *history, size_t n_history);

/* The distribution sampler_sample draws from (speculative sampling needs it
 * whole): the penalty applied to logits in place, as sampler_sample does,
 * then top-k, top-p, min-p and the temperature. probs: (n_vocab) f32, zero
 * outside the kept tokens, summing to 1; greedy puts all of it on the argmax.
 * Draws nothing from the generator. */
void sampler_dist(struct sampler *s, float *logits, const int32_t *history, size_t n_history,
		  float *probs);

/* A token drawn with probability weights[i] / sum(weights) (n_vocab
 * non-negative f32; they need not sum to 1) from the sampler's generator;
 * -1 when every weight is 0. */
int32_t sampler_draw(struct sampler *s, const float *weights);

/* A uniform draw in [0, 1) from the sampler's generator (speculative
 * sampling's acceptance test). */
double sampler_uniform(struct sampler *s);

/* The temperature it samples at (<= 0: greedy). */
float sampler_temperature(const struct sampler *s);

/* The generator behind draws (exposed for tests): splitmix64-seeded xoshiro256**. */
struct rng {
	uint64_t s[4];
};
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, 1). */
double rng_uniform(struct rng *r);

#endif
