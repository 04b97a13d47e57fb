/* logprob.h: log-probabilities from a row of logits, as Generate's logprobs,
 * echo and the Score request report them: log_softmax(logits / temperature)
 * of chosen tokens, the most likely alternatives, and the greedy choice.
 * Sums in double so a row of 256,000 logits loses nothing that matters. */
#ifndef STRATA_ENGINE_LOGPROB_H
#define STRATA_ENGINE_LOGPROB_H

#include <stdbool.h>
#include <stdint.h>

/* The most alternatives a request may ask for (OpenAI's limit too). */
#define LOGPROB_MAX_TOP 20

struct logprob_alt {
	int32_t id;
	float logprob;
};

/* A token at its place: its log-probability, whether it was the most likely
 * token there, and the n_top most likely tokens (most likely first; equal
 * logits: lower id first). */
struct logprob_token {
	int32_t id;
	float logprob;
	bool greedy;
	uint32_t n_top;
	struct logprob_alt top[LOGPROB_MAX_TOP];
};

/* log(sum(exp(logits / temp))) over n logits (temp > 0), computed with the
 * maximum factored out, in double. */
double logprob_lse(const float *logits, uint32_t n, float temp);

/* Fill t for token `id` from the row: logprob = logits[id] / temp - lse, the
 * greedy flag (id is the first index of the maximum) and n_top alternatives
 * (0..LOGPROB_MAX_TOP). temp <= 0 is taken as 1 (greedy requests report the
 * model's own distribution). */
void logprob_token(const float *logits, uint32_t n, float temp, int32_t id, uint32_t n_top,
		   struct logprob_token *t);

#endif
