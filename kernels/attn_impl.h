/* attn_impl.h: what attn.c asks of each instruction set's attention file
 * (attn_avx2.c, attn_avx512.c): for every cache type, the scores of one head
 * against a run of rows and the weighted sum of a run of value rows. Private
 * to kernels/; attn.h is the API. */
#ifndef STRATA_KERNELS_ATTN_IMPL_H
#define STRATA_KERNELS_ATTN_IMPL_H

#include <stddef.h>
#include <stdint.h>

/* The cache types attention reads, as table indices. */
enum attn_kv { ATTN_KV_F32, ATTN_KV_F16, ATTN_KV_Q8_0, ATTN_KV_Q4_0, ATTN_KV_COUNT };

/* s[t] = scale * (q · k_t) for t < n: k points at row 0's slice of this head
 * (head_dim elements of the type), rows `stride` bytes apart; q (head_dim) f32. */
typedef void (*attn_scores_fn)(const char *k, int64_t n, size_t stride, const float *q,
			       int64_t head_dim, float scale, float *s);
/* out[i] += sum over t < n of p[t] * v_t[i], t in order (so a run cut in two
 * and summed piece by piece gives the same bits as one run): v points at row
 * 0's slice of this head, out (head_dim) f32. */
typedef void (*attn_wsum_fn)(const char *v, int64_t n, size_t stride, const float *p,
			     int64_t head_dim, float *out);

struct attn_kernels {
	attn_scores_fn scores[ATTN_KV_COUNT];
	attn_wsum_fn wsum[ATTN_KV_COUNT];
};

#if defined(__x86_64__)
extern const struct attn_kernels attn_kernels_avx2;   /* attn_avx2.c: AVX2+FMA+F16C */
extern const struct attn_kernels attn_kernels_avx512; /* attn_avx512.c: AVX-512F/BW */
#endif

#endif
