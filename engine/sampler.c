/* sampler.c: see sampler.h. Candidates are kept as (id, logit) pairs; the
 * filters shrink that list, then probabilities are computed once. */
#include "engine/sampler.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct cand {
	int32_t id;
	float logit;
	float p;
};

struct sampler {
	struct sampler_params params;
	struct rng rng;
	uint32_t n_vocab;
	struct cand *cands; /* (n_vocab) scratch */
};

void sampler_params_default(struct sampler_params *p)
{
	p->temperature = 0.8f;
	p->top_k = 40;
	p->top_p = 0.95f;
	p->min_p = 0.05f;
	p->repeat_penalty = 1.0f;
	p->repeat_last_n = 64;
	p->seed = 0;
}

int sampler_params_check(const struct sampler_params *p, struct st_err *err)
{
	if (!isfinite(p->temperature))
		return st_errf(err, -EINVAL, "temperature must be a finite number");
	if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
		return st_errf(err, -EINVAL, "top-p must be in (0, 1] (got %g)", (double)p->top_p);
	if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
		return st_errf(err, -EINVAL, "min-p must be in [0, 1] (got %g)", (double)p->min_p);
	if (!(p->repeat_penalty > 0.0f && isfinite(p->repeat_penalty)))
		return st_errf(err, -EINVAL, "repetition penalty must be positive (got %g)",
			       (double)p->repeat_penalty);
	if (p->repeat_last_n < 0)
		return st_errf(err, -EINVAL, "repetition window must not be negative");
	return 0;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double rng_uniform(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

int sampler_new(const struct sampler_params *p, uint32_t n_vocab, struct sampler **out)
{
	struct sampler *s = calloc(1, sizeof *s);
	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
	if (!s->cands) {
		free(s);
		return -ENOMEM;
	}
	s->params = *p;
	s->n_vocab = n_vocab;
	rng_seed(&s->rng, p->seed);
	*out = s;
	return 0;
}

void sampler_free(struct sampler *s)
{
	if (!s)
		return;
	free(s->cands);
	free(s);
}

static int32_t argmax(const float *logits, uint32_t n)
{
	int32_t best = 0;
	for (uint32_t i = 1; i < n; i++)
		if (logits[i] > logits[best])
			best = (int32_t)i;
	return best;
}

/* Each distinct recent token is penalized once, as llama.cpp does. */
static void apply_repeat_penalty(float *logits, uint32_t n_vocab, float penalty,
				 const int32_t *hist, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int32_t id = hist[i];
		if (id < 0 || (uint32_t)id >= n_vocab)
			continue;
		bool seen = false;
		for (size_t j = 0; j < i; j++)
			if (hist[j] == id) {
				seen = true;
				break;
			}
		if (seen)
			continue;
		logits[id] = logits[id] > 0.0f ? logits[id] / penalty : logits[id] * penalty;
	}
}

static int cand_desc(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->logit != y->logit)
		return x->logit < y->logit ? 1 : -1;
	return x->id - y->id; /* stable order for equal logits: reproducible */
}

/* Min-heap on the descending order: the root is the worst of the best k. */
static void heap_sift_down(struct cand *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, worst = i;
		if (l < n && cand_desc(&h[l], &h[worst]) > 0)
			worst = l;
		if (r < n && cand_desc(&h[r], &h[worst]) > 0)
			worst = r;
		if (worst == i)
			return;
		struct cand t = h[i];
		h[i] = h[worst];
		h[worst] = t;
		i = worst;
	}
}

/* Move the k best candidates to c[0..k), sorted best first: O(n log k). */
static void top_k_select(struct cand *c, size_t n, size_t k)
{
	if (k < n) {
		for (size_t i = k / 2; i-- > 0;)
			heap_sift_down(c, k, i);
		for (size_t i = k; i < n; i++) {
			if (cand_desc(&c[i], &c[0]) < 0) {
				c[0] = c[i];
				heap_sift_down(c, k, 0);
			}
		}
	}
	qsort(c, k, sizeof *c, cand_desc);
}

/* p = softmax(logit / temp) over c[0..n) (already sorted descending). */
static void softmax_cands(struct cand *c, size_t n, float temp)
{
	double sum = 0.0;
	float max = c[0].logit;
	for (size_t i = 0; i < n; i++) {
		c[i].p = expf((c[i].logit - max) / temp);
		sum += c[i].p;
	}
	for (size_t i = 0; i < n; i++)
		c[i].p = (float)(c[i].p / sum);
}

/* The chain's filters after the penalty, shared by sampler_sample and
 * sampler_dist: top-k, top-p, min-p, then the temperature. Leaves
 * the kept candidates in s->cands[0..n), best first, with their
 * probabilities, and returns n (>= 1). Not for greedy sampling. */
static size_t filter(struct sampler *s, const float *logits)
{
	const struct sampler_params *p = &s->params;
	uint32_t n_vocab = s->n_vocab;
	struct cand *c = s->cands;
	size_t n = n_vocab;
	for (uint32_t i = 0; i < n_vocab; i++) {
		c[i].id = (int32_t)i;
		c[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
	}
	size_t k = p->top_k > 0 && (size_t)p->top_k < n ? (size_t)p->top_k : n;
	top_k_select(c, n, k);
	n = k;

	/* top-p and min-p are defined on the untempered distribution, as in llama.cpp's chain
	 * where they run before the temperature. */
	softmax_cands(c, n, 1.0f);
	if (p->top_p < 1.0f) {
		double cum = 0.0;
		size_t keep = n;
		for (size_t i = 0; i < n; i++) {
			cum += c[i].p;
			if (cum >= p->top_p) {
				keep = i + 1;
				break;
			}
		}
		n = keep;
	}
	if (p->min_p > 0.0f) {
		float threshold = c[0].p * p->min_p;
		size_t keep = 1;
		while (keep < n && c[keep].p >= threshold)
			keep++;
		n = keep;
	}
	softmax_cands(c, n, p->temperature);
	return n;
}

static void penalize(struct sampler *s, float *logits, const int32_t *history, size_t n_history)
{
	const struct sampler_params *p = &s->params;
	if (p->repeat_penalty != 1.0f && p->repeat_last_n > 0 && n_history > 0) {
		size_t n = n_history < (size_t)p->repeat_last_n ? n_history : (size_t)p->repeat_last_n;
		apply_repeat_penalty(logits, s->n_vocab, p->repeat_penalty, history + n_history - n, n);
	}
}

int32_t sampler_sample(struct sampler *s, float *logits, const int32_t *history, size_t n_history)
{
	penalize(s, logits, history, n_history);
	if (s->params.temperature <= 0.0f)
		return argmax(logits, s->n_vocab);

	struct cand *c = s->cands;
	size_t n = filter(s, logits);
	double r = rng_uniform(&s->rng), cum = 0.0;
	for (size_t i = 0; i < n; i++) {
		cum += c[i].p;
		if (r < cum)
			return c[i].id;
	}
	return c[n - 1].id;
}

void sampler_dist(struct sampler *s, float *logits, const int32_t *history, size_t n_history,
		  float *probs)
{
	penalize(s, logits, history, n_history);
	memset(probs, 0, (size_t)s->n_vocab * sizeof *probs);
	if (s->params.temperature <= 0.0f) {
		probs[argmax(logits, s->n_vocab)] = 1.0f;
		return;
	}
	size_t n = filter(s, logits);
	for (size_t i = 0; i < n; i++)
		probs[s->cands[i].id] = s->cands[i].p;
}

int32_t sampler_draw(struct sampler *s, const float *weights)
{
	double sum = 0.0;
	int32_t last = -1;
	for (uint32_t i = 0; i < s->n_vocab; i++) {
		if (weights[i] > 0.0f) {
			sum += weights[i];
			last = (int32_t)i;
		}
	}
	if (last < 0)
		return -1;
	double r = rng_uniform(&s->rng) * sum, cum = 0.0;
	for (uint32_t i = 0; i < s->n_vocab; i++) {
		if (weights[i] > 0.0f) {
			cum += weights[i];
			if (r < cum)
				return (int32_t)i;
		}
	}
	return last; /* r landed on the rounding error at the top */
}

double sampler_uniform(struct sampler *s)
{
	return rng_uniform(&s->rng);
}

float sampler_temperature(const struct sampler *s)
{
	return s->params.temperature;
}
