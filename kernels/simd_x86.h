/* simd_x86.h: small x86 vector helpers the per-instruction-set kernel files
 * share (dot_avx2.c, dot_avx512.c, attn_avx2.c). Header-only: each helper carries
 * the narrowest target it needs, so it inlines into any wider one. Private
 * to kernels/; not an API. */
#ifndef STRATA_KERNELS_SIMD_X86_H
#define STRATA_KERNELS_SIMD_X86_H

#if defined(__x86_64__)

#include <immintrin.h>

/* The sum of the 8 lanes, pairwise (the order the kernels' tolerances assume). */
static inline __attribute__((target("avx"))) float simd_hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

#endif /* __x86_64__ */

#endif
