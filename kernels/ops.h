/* ops.h: the element-wise and per-row pieces of a llama layer. Pure functions
 * on f32 arrays; each has a plain form that is also its reference. */
#ifndef STRATA_KERNELS_OPS_H
#define STRATA_KERNELS_OPS_H

#include <stdint.h>

/* out (n) = x / sqrt(mean(x²) + eps) * w; out may equal x. */
void ops_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

/* Rotary embedding in place on x (n_heads, head_dim) at position pos, llama's
 * "normal" form as GGUF stores Q and K: pairs (x[2i], x[2i+1]) rotate by
 * pos * freq_scale * base^(-2i/head_dim), divided by freq_factors[i] when
 * freq_factors (head_dim/2 floats, Llama 3's rope_freqs) is non-NULL. */
void ops_rope(float *x, int64_t n_heads, int64_t head_dim, int64_t pos, float freq_base,
	      float freq_scale, const float *freq_factors);

/* In-place softmax over n (max-subtracted). */
void ops_softmax(float *x, int64_t n);

/* out (n) = silu(gate) * up, silu(g) = g / (1 + exp(-g)); out may alias gate. */
void ops_swiglu(float *out, const float *gate, const float *up, int64_t n);

/* y (n) += x (n) */
void ops_add(float *y, const float *x, int64_t n);

#endif
