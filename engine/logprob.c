/* logprob.c: see logprob.h. */
#include "engine/logprob.h"

#include <math.h>

double logprob_lse(const float *logits, uint32_t n, float temp)
{
	float max = -INFINITY;
	for (uint32_t i = 0; i < n; i++)
		if (logits[i] > max)
			max = logits[i];
	double sum = 0.0;
	for (uint32_t i = 0; i < n; i++)
		sum += exp(((double)logits[i] - max) / temp);
	return (double)max / temp + log(sum);
}

/* Does (la, ia) rank before (lb, ib)? Higher logit first, then lower id. */
static bool before(float la, int32_t ia, float lb, int32_t ib)
{
	return la > lb || (la == lb && ia < ib);
}

void logprob_token(const float *logits, uint32_t n, float temp, int32_t id, uint32_t n_top,
		   struct logprob_token *t)
{
	if (!(temp > 0.0f))
		temp = 1.0f;
	if (n_top > LOGPROB_MAX_TOP)
		n_top = LOGPROB_MAX_TOP;
	double lse = logprob_lse(logits, n, temp);
	int32_t best = 0;
	for (uint32_t i = 1; i < n; i++)
		if (logits[i] > logits[best])
			best = (int32_t)i;
	t->id = id;
	t->logprob = (float)((double)logits[id] / temp - lse);
	t->greedy = id == best;
	/* the n_top best by insertion into a short sorted list: almost every
	 * logit loses its first comparison, so this is one pass over the row */
	uint32_t k = 0;
	for (uint32_t i = 0; i < n && n_top > 0; i++) {
		float l = logits[i];
		if (k == n_top && !before(l, (int32_t)i, logits[t->top[k - 1].id], t->top[k - 1].id))
			continue;
		uint32_t at = k < n_top ? k++ : k - 1;
		while (at > 0 && before(l, (int32_t)i, logits[t->top[at - 1].id], t->top[at - 1].id)) {
			t->top[at] = t->top[at - 1];
			at--;
		}
		t->top[at].id = (int32_t)i;
	}
	for (uint32_t j = 0; j < k; j++)
		t->top[j].logprob = (float)((double)logits[t->top[j].id] / temp - lse);
	t->n_top = k;
}
