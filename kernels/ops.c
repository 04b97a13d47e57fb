/* ops.c: rmsnorm, rope, softmax, swiglu, add (see ops.h). Scalar on purpose:
 * these are O(n) per row beside O(n²) matmuls, and their float behaviour is
 * pinned to ggml's CPU ops so logits match llama.cpp. Not a place for matmuls. */
#include "kernels/ops.h"

#include <assert.h>
#include <math.h>

void ops_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
	/* As ggml: squares in float, summed in double, mean and scale in float,
	 * then (x * scale) * w, the order of its rms_norm followed by mul. */
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)(x[i] * x[i]);
	const float mean = (float)(sum / (double)n);
	const float scale = 1.0f / sqrtf(mean + eps);
	for (int64_t i = 0; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

/* Pairs whose cos/sin are computed at once and then applied to every head. */
#define ROPE_CHUNK 64

void ops_rope(float *x, int64_t n_heads, int64_t head_dim, int64_t pos, float freq_base,
	      float freq_scale, const float *freq_factors)
{
	float cs[ROPE_CHUNK], sn[ROPE_CHUNK];
	assert(head_dim % 2 == 0);
	/* ggml's recurrence, in float: theta_0 = pos, theta_{i+1} = theta_i *
	 * base^(-2/head_dim); the angle of pair i is freq_scale * theta_i / ff_i.
	 * Computing base^(-2i/d) directly differs in the last bits, and those
	 * bits move the logits at 1e-5. */
	const float theta_scale = powf(freq_base, -2.0f / (float)head_dim);
	float theta = (float)pos;
	const int64_t n_pairs = head_dim / 2;

	for (int64_t p0 = 0; p0 < n_pairs; p0 += ROPE_CHUNK) {
		int64_t np = n_pairs - p0 < ROPE_CHUNK ? n_pairs - p0 : ROPE_CHUNK;
		for (int64_t j = 0; j < np; j++) {
			const float ff = freq_factors ? freq_factors[p0 + j] : 1.0f;
			const float angle = freq_scale * (theta / ff);
			cs[j] = cosf(angle);
			sn[j] = sinf(angle);
			theta *= theta_scale;
		}
		for (int64_t h = 0; h < n_heads; h++) {
			float *xp = x + h * head_dim + 2 * p0;
			for (int64_t j = 0; j < np; j++) {
				const float x0 = xp[2 * j], x1 = xp[2 * j + 1];
				xp[2 * j] = x0 * cs[j] - x1 * sn[j];
				xp[2 * j + 1] = x0 * sn[j] + x1 * cs[j];
			}
		}
	}
}

void ops_softmax(float *x, int64_t n)
{
	/* As ggml: exp in float, sum in double, one float scale by 1/sum. */
	float max = -INFINITY;
	for (int64_t i = 0; i < n; i++)
		max = x[i] > max ? x[i] : max;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++) {
		x[i] = expf(x[i] - max);
		sum += (double)x[i];
	}
	const float inv = (float)(1.0 / sum);
	for (int64_t i = 0; i < n; i++)
		x[i] *= inv;
}

void ops_swiglu(float *out, const float *gate, const float *up, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		const float g = gate[i];
		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

void ops_add(float *y, const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] += x[i];
}
