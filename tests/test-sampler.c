/* test-sampler.c: the sampling chain: greedy, each filter's effect on which
 * tokens can be drawn, draw frequencies against the softmax they should
 * follow, the repetition penalty rule, seeds that reproduce, the whole
 * distribution (sampler_dist) against the draws, and parameter
 * checks. Frequencies use 20,000 draws and bounds of about 5 standard
 * deviations, so a correct sampler fails with negligible probability. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/sampler.h"
#include "tests/tap.h"

#define DRAWS 20000

/* Draw DRAWS tokens from fixed logits; counts[] per id. */
static void draw_many(const struct sampler_params *p, const float *logits, uint32_t n, uint32_t *counts)
{
	struct sampler *s = NULL;
	float buf[16];
	memset(counts, 0, n * sizeof *counts);
	if (sampler_new(p, n, &s) < 0)
		tap_bail("sampler_new");
	for (int i = 0; i < DRAWS; i++) {
		memcpy(buf, logits, n * sizeof *buf);
		int32_t t = sampler_sample(s, buf, NULL, 0);
		if (t >= 0 && (uint32_t)t < n)
			counts[t]++;
	}
	sampler_free(s);
}

/* |observed frequency - p| within 5 sigma of a binomial */
static int freq_ok(uint32_t count, double p)
{
	double f = (double)count / DRAWS, sigma = sqrt(p * (1 - p) / DRAWS);
	return fabs(f - p) <= 5 * sigma + 1e-9;
}

int main(void)
{
	struct sampler_params p;
	struct sampler *s = NULL;
	uint32_t counts[16];
	/* p = softmax: exp(log p) gives back p exactly */
	const double probs[4] = { 0.5, 0.3, 0.15, 0.05 };
	float logits[4];
	for (int i = 0; i < 4; i++)
		logits[i] = (float)log(probs[i]);

	/* greedy */
	sampler_params_default(&p);
	p.temperature = 0.0f;
	sampler_new(&p, 4, &s);
	float buf[8] = { 0.1f, 2.0f, 2.0f, -1.0f };
	tap_is_int(sampler_sample(s, buf, NULL, 0), 1, "greedy picks the largest logit, the first on ties");
	sampler_free(s);

	/* plain sampling follows the softmax */
	sampler_params_default(&p);
	p.temperature = 1.0f;
	p.top_k = 0;
	p.top_p = 1.0f;
	p.min_p = 0.0f;
	p.seed = 42;
	draw_many(&p, logits, 4, counts);
	int all = 1;
	for (int i = 0; i < 4; i++)
		all &= freq_ok(counts[i], probs[i]);
	tap_ok(all, "temperature 1, no filters: frequencies follow the softmax (%u %u %u %u)", counts[0],
	       counts[1], counts[2], counts[3]);

	/* temperature 2 flattens: p_i ∝ p_i^(1/2) */
	p.temperature = 2.0f;
	draw_many(&p, logits, 4, counts);
	double z = 0.0;
	for (int i = 0; i < 4; i++)
		z += sqrt(probs[i]);
	all = 1;
	for (int i = 0; i < 4; i++)
		all &= freq_ok(counts[i], sqrt(probs[i]) / z);
	tap_ok(all, "temperature 2: frequencies follow softmax(logits / 2)");

	/* top-k 2: only the two best, renormalized */
	p.temperature = 1.0f;
	p.top_k = 2;
	draw_many(&p, logits, 4, counts);
	tap_ok(counts[2] == 0 && counts[3] == 0 && freq_ok(counts[0], 0.5 / 0.8) && freq_ok(counts[1], 0.3 / 0.8),
	       "top-k 2 keeps the two most likely tokens, renormalized");

	/* top-p 0.7: the smallest set reaching 0.7 is {0, 1} */
	p.top_k = 0;
	p.top_p = 0.7f;
	draw_many(&p, logits, 4, counts);
	tap_ok(counts[2] == 0 && counts[3] == 0 && freq_ok(counts[0], 0.5 / 0.8),
	       "top-p 0.7 keeps the smallest set whose mass reaches 0.7");
	p.top_p = 0.85f;
	draw_many(&p, logits, 4, counts);
	tap_ok(counts[2] > 0 && counts[3] == 0, "top-p 0.85 keeps three tokens");

	/* min-p 0.5: keep p >= 0.25 */
	p.top_p = 1.0f;
	p.min_p = 0.5f;
	draw_many(&p, logits, 4, counts);
	tap_ok(counts[0] > 0 && counts[1] > 0 && counts[2] == 0 && counts[3] == 0,
	       "min-p 0.5 drops tokens below half the best one's probability");

	/* the same seed reproduces, another seed differs */
	p.min_p = 0.0f;
	int32_t a[64], b[64], c[64];
	for (int run = 0; run < 3; run++) {
		struct sampler_params q = p;
		q.seed = run == 2 ? 7 : 1234;
		sampler_new(&q, 4, &s);
		for (int i = 0; i < 64; i++) {
			memcpy(buf, logits, sizeof logits);
			(run == 0 ? a : run == 1 ? b : c)[i] = sampler_sample(s, buf, NULL, 0);
		}
		sampler_free(s);
	}
	tap_ok(memcmp(a, b, sizeof a) == 0, "the same seed draws the same tokens");
	tap_ok(memcmp(a, c, sizeof a) != 0, "another seed draws other tokens");

	/* repetition penalty: positive logits divided, negative multiplied, once per token */
	sampler_params_default(&p);
	p.temperature = 0.0f;
	p.repeat_penalty = 1.1f;
	p.repeat_last_n = 4;
	sampler_new(&p, 4, &s);
	float pen[4] = { 2.0f, 1.9f, -1.0f, 0.5f };
	int32_t hist[3] = { 0, 2, 0 };
	int32_t t = sampler_sample(s, pen, hist, 3);
	tap_ok(t == 1 && fabsf(pen[0] - 2.0f / 1.1f) < 1e-6f && fabsf(pen[2] + 1.1f) < 1e-6f &&
		       pen[1] == 1.9f && pen[3] == 0.5f,
	       "repetition penalty divides positive, multiplies negative logits, once per token");
	float pen2[4] = { 2.0f, 1.9f, -1.0f, 0.5f };
	int32_t old[6] = { 0, 3, 3, 3, 3, 3 }; /* token 0 is outside the last 4 */
	tap_is_int(sampler_sample(s, pen2, old, 6), 0, "only the last repeat_last_n tokens count");
	sampler_free(s);

	/* sampler_dist: the distribution sampler_sample draws from, whole */
	float dist[8];
	sampler_params_default(&p);
	p.temperature = 1.0f;
	p.top_k = 0;
	p.top_p = 0.85f;
	p.min_p = 0.0f;
	sampler_new(&p, 4, &s);
	memcpy(buf, logits, sizeof logits);
	sampler_dist(s, buf, NULL, 0, dist);
	tap_ok(fabs(dist[0] - 0.5 / 0.95) < 1e-6 && fabs(dist[1] - 0.3 / 0.95) < 1e-6 &&
		       fabs(dist[2] - 0.15 / 0.95) < 1e-6 && dist[3] == 0.0f,
	       "sampler_dist with top-p 0.85: three tokens renormalized, the fourth 0 (%g %g %g %g)",
	       (double)dist[0], (double)dist[1], (double)dist[2], (double)dist[3]);
	sampler_free(s);
	p.top_p = 1.0f;
	p.temperature = 2.0f;
	p.top_k = 3;
	sampler_new(&p, 4, &s);
	memcpy(buf, logits, sizeof logits);
	sampler_dist(s, buf, NULL, 0, dist);
	z = sqrt(probs[0]) + sqrt(probs[1]) + sqrt(probs[2]);
	tap_ok(fabs(dist[0] - sqrt(probs[0]) / z) < 1e-6 && fabs(dist[2] - sqrt(probs[2]) / z) < 1e-6 &&
		       dist[3] == 0.0f, "sampler_dist with top-k 3 at temperature 2: softmax(logits / 2) "
	       "over the three best");
	sampler_free(s);
	p.temperature = 0.0f;
	sampler_new(&p, 4, &s);
	float g[4] = { 0.1f, 2.0f, 2.0f, -1.0f };
	sampler_dist(s, g, NULL, 0, dist);
	tap_ok(dist[1] == 1.0f && dist[0] == 0.0f && dist[2] == 0.0f, "greedy sampler_dist: all mass on the "
	       "argmax (the first on ties)");
	sampler_free(s);

	/* every filter and the penalty at once: sampler_dist against sampler_sample's
	 * frequencies, on 8 tokens */
	{
		const float lg8[8] = { 1.2f, 0.9f, 0.8f, -0.3f, 0.7f, 0.2f, -2.0f, 0.75f };
		const int32_t h8[3] = { 4, 1, 4 };
		uint32_t c8[8] = { 0 };
		sampler_params_default(&p);
		p.temperature = 0.7f;
		p.top_k = 6;
		p.top_p = 0.9f;
		p.min_p = 0.1f;
		p.repeat_penalty = 1.3f;
		p.repeat_last_n = 2;
		p.seed = 99;
		sampler_new(&p, 8, &s);
		memcpy(buf, lg8, sizeof lg8);
		sampler_dist(s, buf, h8, 3, dist);
		for (int i = 0; i < DRAWS; i++) {
			memcpy(buf, lg8, sizeof lg8);
			int32_t k = sampler_sample(s, buf, h8, 3);
			if (k >= 0 && k < 8)
				c8[k]++;
		}
		sampler_free(s);
		double sum = 0.0;
		all = 1;
		for (int i = 0; i < 8; i++) {
			sum += dist[i];
			all &= freq_ok(c8[i], dist[i]) && (dist[i] > 0.0f || c8[i] == 0);
		}
		tap_ok(all && fabs(sum - 1.0) < 1e-6, "penalty, top-k, top-p, min-p and temperature: "
		       "sampler_dist matches what sampler_sample draws (%g %g %g %g %g %g %g %g)",
		       (double)dist[0], (double)dist[1], (double)dist[2], (double)dist[3], (double)dist[4],
		       (double)dist[5], (double)dist[6], (double)dist[7]);
	}

	/* sampler_draw: weights need not be normalized; all zero is -1 */
	{
		const float w[4] = { 2.0f, 0.0f, 1.0f, 1.0f };
		const float none[4] = { 0 };
		uint32_t cw[4] = { 0 };
		sampler_params_default(&p);
		p.seed = 5;
		sampler_new(&p, 4, &s);
		for (int i = 0; i < DRAWS; i++) {
			int32_t k = sampler_draw(s, w);
			if (k >= 0 && k < 4)
				cw[k]++;
		}
		tap_ok(freq_ok(cw[0], 0.5) && cw[1] == 0 && freq_ok(cw[2], 0.25) && freq_ok(cw[3], 0.25) &&
			       sampler_draw(s, none) == -1,
		       "sampler_draw follows unnormalized weights (%u %u %u %u); all zero gives -1", cw[0],
		       cw[1], cw[2], cw[3]);
		sampler_free(s);
	}

	/* parameter checks */
	struct st_err err = { "" };
	sampler_params_default(&p);
	tap_ok(sampler_params_check(&p, &err) == 0, "defaults are valid");
	p.top_p = 1.5f;
	tap_ok(sampler_params_check(&p, &err) < 0 && strstr(err.msg, "top-p"), "top-p 1.5 is refused: %s",
	       err.msg);
	sampler_params_default(&p);
	p.temperature = NAN;
	tap_ok(sampler_params_check(&p, &err) < 0, "a NaN temperature is refused: %s", err.msg);
	sampler_params_default(&p);
	p.repeat_penalty = 0.0f;
	tap_ok(sampler_params_check(&p, &err) < 0, "a zero repetition penalty is refused: %s", err.msg);
	sampler_params_default(&p);
	p.min_p = -0.1f;
	tap_ok(sampler_params_check(&p, &err) < 0, "a negative min-p is refused: %s", err.msg);
	return tap_done();
}
