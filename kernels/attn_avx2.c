/* attn_avx2.c: the attention kernels on AVX2+FMA+F16C, 8 lanes: the scores
 * of one head against a run of K rows and the weighted sum of a run of V
 * rows, for F32, F16, Q8_0 and Q4_0 caches (attn_impl.h). Quantized rows are
 * widened in registers, a block of 32 at a time. Built without global -m
 * flags: each function names its target, and attn.c calls them only when
 * isa_name() says this CPU runs them. Not here: the definitions (attn.c). */
#include "kernels/attn_impl.h"
#include "kernels/simd_x86.h"
#include "kernels/types.h"

#if defined(__x86_64__)

#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))

T_AVX2 static inline float f16(uint16_t h)
{
	return _cvtsh_ss(h);
}

T_AVX2 static inline __m256 load8_f16(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* 8 int8 -> 8 f32 */
T_AVX2 static inline __m256 load8_i8(const int8_t *p)
{
	return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* The low 8 bytes of b, each a nibble 0..15, -> 8 f32 of (nibble - 8) */
T_AVX2 static inline __m256 nib8(__m128i b)
{
	return _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(b), _mm256_set1_epi32(8)));
}

/* ---- float rows: one body, two loads ---- */

#define SCORES_FLOAT(NAME, ELEM, LOAD8, TO_F32)                                              \
	T_AVX2 static void NAME(const char *k, int64_t n, size_t stride, const float *q,      \
				int64_t hd, float scale, float *s)                            \
	{                                                                                     \
		const int64_t n8 = hd & ~(int64_t)7;                                          \
		for (int64_t t = 0; t < n; t++) {                                             \
			const ELEM *r = (const ELEM *)(k + (size_t)t * stride);               \
			__m256 acc = _mm256_setzero_ps();                                     \
			for (int64_t i = 0; i < n8; i += 8)                                   \
				acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), LOAD8(r + i), acc);     \
			float sum = simd_hsum256(acc);                                        \
			for (int64_t i = n8; i < hd; i++)                                     \
				sum += q[i] * TO_F32(r[i]);                                   \
			s[t] = sum * scale;                                                   \
		}                                                                             \
	}

/* Accumulators for 32 columns stay in registers across all rows of the run;
 * the block is then stored and the next 32 columns start. */
#define WSUM_FLOAT(NAME, ELEM, LOAD8, TO_F32)                                                \
	T_AVX2 static void NAME(const char *v, int64_t n, size_t stride, const float *p,      \
				int64_t hd, float *out)                                       \
	{                                                                                     \
		const int64_t n8 = hd & ~(int64_t)7;                                          \
		int64_t c = 0;                                                                \
		for (; c + 32 <= n8; c += 32) {                                               \
			__m256 a0 = _mm256_loadu_ps(out + c), a1 = _mm256_loadu_ps(out + c + 8); \
			__m256 a2 = _mm256_loadu_ps(out + c + 16), a3 = _mm256_loadu_ps(out + c + 24); \
			for (int64_t t = 0; t < n; t++) {                                     \
				const ELEM *r = (const ELEM *)(v + (size_t)t * stride) + c;   \
				const __m256 w = _mm256_set1_ps(p[t]);                        \
				a0 = _mm256_fmadd_ps(w, LOAD8(r), a0);                        \
				a1 = _mm256_fmadd_ps(w, LOAD8(r + 8), a1);                    \
				a2 = _mm256_fmadd_ps(w, LOAD8(r + 16), a2);                   \
				a3 = _mm256_fmadd_ps(w, LOAD8(r + 24), a3);                   \
			}                                                                     \
			_mm256_storeu_ps(out + c, a0);                                        \
			_mm256_storeu_ps(out + c + 8, a1);                                    \
			_mm256_storeu_ps(out + c + 16, a2);                                   \
			_mm256_storeu_ps(out + c + 24, a3);                                   \
		}                                                                             \
		for (; c < n8; c += 8) {                                                      \
			__m256 a0 = _mm256_loadu_ps(out + c);                                 \
			for (int64_t t = 0; t < n; t++) {                                     \
				const ELEM *r = (const ELEM *)(v + (size_t)t * stride) + c;   \
				a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), LOAD8(r), a0);     \
			}                                                                     \
			_mm256_storeu_ps(out + c, a0);                                        \
		}                                                                             \
		for (; c < hd; c++) {                                                         \
			float sum = out[c];                                                   \
			for (int64_t t = 0; t < n; t++)                                       \
				sum += p[t] * TO_F32(((const ELEM *)(v + (size_t)t * stride))[c]); \
			out[c] = sum;                                                         \
		}                                                                             \
	}

#define F32_ID(x) (x)
SCORES_FLOAT(scores_f32, float, _mm256_loadu_ps, F32_ID)
SCORES_FLOAT(scores_f16, uint16_t, load8_f16, f16)
WSUM_FLOAT(wsum_f32, float, _mm256_loadu_ps, F32_ID)
WSUM_FLOAT(wsum_f16, uint16_t, load8_f16, f16)

/* ---- Q8_0 rows: per block of 32, a float dot then one multiply-add by d ---- */

T_AVX2 static void scores_q8_0(const char *k, int64_t n, size_t stride, const float *q,
			       int64_t hd, float scale, float *s)
{
	const int64_t nb = hd / QK8_0;
	for (int64_t t = 0; t < n; t++) {
		const struct block_q8_0 *b = (const struct block_q8_0 *)(k + (size_t)t * stride);
		__m256 acc = _mm256_setzero_ps();
		for (int64_t j = 0; j < nb; j++) {
			const float *qq = q + j * QK8_0;
			__m256 d = _mm256_mul_ps(_mm256_loadu_ps(qq), load8_i8(b[j].qs));
			d = _mm256_fmadd_ps(_mm256_loadu_ps(qq + 8), load8_i8(b[j].qs + 8), d);
			d = _mm256_fmadd_ps(_mm256_loadu_ps(qq + 16), load8_i8(b[j].qs + 16), d);
			d = _mm256_fmadd_ps(_mm256_loadu_ps(qq + 24), load8_i8(b[j].qs + 24), d);
			acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b[j].d)), d, acc);
		}
		s[t] = simd_hsum256(acc) * scale;
	}
}

/* One block of 32 columns at a time, its 4 accumulators across the rows. */
T_AVX2 static void wsum_q8_0(const char *v, int64_t n, size_t stride, const float *p,
			     int64_t hd, float *out)
{
	for (int64_t j = 0; j < hd / QK8_0; j++) {
		float *o = out + j * QK8_0;
		__m256 a0 = _mm256_loadu_ps(o), a1 = _mm256_loadu_ps(o + 8);
		__m256 a2 = _mm256_loadu_ps(o + 16), a3 = _mm256_loadu_ps(o + 24);
		for (int64_t t = 0; t < n; t++) {
			const struct block_q8_0 *b = (const struct block_q8_0 *)(v + (size_t)t * stride) + j;
			const __m256 w = _mm256_set1_ps(p[t] * f16(b->d));
			a0 = _mm256_fmadd_ps(w, load8_i8(b->qs), a0);
			a1 = _mm256_fmadd_ps(w, load8_i8(b->qs + 8), a1);
			a2 = _mm256_fmadd_ps(w, load8_i8(b->qs + 16), a2);
			a3 = _mm256_fmadd_ps(w, load8_i8(b->qs + 24), a3);
		}
		_mm256_storeu_ps(o, a0);
		_mm256_storeu_ps(o + 8, a1);
		_mm256_storeu_ps(o + 16, a2);
		_mm256_storeu_ps(o + 24, a3);
	}
}

/* ---- Q4_0 rows: byte i holds element i (low nibble) and i + 16 (high) ---- */

T_AVX2 static void scores_q4_0(const char *k, int64_t n, size_t stride, const float *q,
			       int64_t hd, float scale, float *s)
{
	const int64_t nb = hd / QK4_0;
	const __m128i m4 = _mm_set1_epi8(0x0f);
	for (int64_t t = 0; t < n; t++) {
		const struct block_q4_0 *b = (const struct block_q4_0 *)(k + (size_t)t * stride);
		__m256 acc = _mm256_setzero_ps();
		for (int64_t j = 0; j < nb; j++) {
			const float *qq = q + j * QK4_0;
			const __m128i x = _mm_loadu_si128((const __m128i *)b[j].qs);
			const __m128i lo = _mm_and_si128(x, m4);
			const __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), m4);
			__m256 d = _mm256_mul_ps(_mm256_loadu_ps(qq), nib8(lo));
			d = _mm256_fmadd_ps(_mm256_loadu_ps(qq + 8), nib8(_mm_srli_si128(lo, 8)), d);
			d = _mm256_fmadd_ps(_mm256_loadu_ps(qq + 16), nib8(hi), d);
			d = _mm256_fmadd_ps(_mm256_loadu_ps(qq + 24), nib8(_mm_srli_si128(hi, 8)), d);
			acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b[j].d)), d, acc);
		}
		s[t] = simd_hsum256(acc) * scale;
	}
}

T_AVX2 static void wsum_q4_0(const char *v, int64_t n, size_t stride, const float *p,
			     int64_t hd, float *out)
{
	const __m128i m4 = _mm_set1_epi8(0x0f);
	for (int64_t j = 0; j < hd / QK4_0; j++) {
		float *o = out + j * QK4_0;
		__m256 a0 = _mm256_loadu_ps(o), a1 = _mm256_loadu_ps(o + 8);
		__m256 a2 = _mm256_loadu_ps(o + 16), a3 = _mm256_loadu_ps(o + 24);
		for (int64_t t = 0; t < n; t++) {
			const struct block_q4_0 *b = (const struct block_q4_0 *)(v + (size_t)t * stride) + j;
			const __m256 w = _mm256_set1_ps(p[t] * f16(b->d));
			const __m128i x = _mm_loadu_si128((const __m128i *)b->qs);
			const __m128i lo = _mm_and_si128(x, m4);
			const __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), m4);
			a0 = _mm256_fmadd_ps(w, nib8(lo), a0);
			a1 = _mm256_fmadd_ps(w, nib8(_mm_srli_si128(lo, 8)), a1);
			a2 = _mm256_fmadd_ps(w, nib8(hi), a2);
			a3 = _mm256_fmadd_ps(w, nib8(_mm_srli_si128(hi, 8)), a3);
		}
		_mm256_storeu_ps(o, a0);
		_mm256_storeu_ps(o + 8, a1);
		_mm256_storeu_ps(o + 16, a2);
		_mm256_storeu_ps(o + 24, a3);
	}
}

const struct attn_kernels attn_kernels_avx2 = {
	.scores = { scores_f32, scores_f16, scores_q8_0, scores_q4_0 },
	.wsum = { wsum_f32, wsum_f16, wsum_q8_0, wsum_q4_0 },
};

#endif /* __x86_64__ */
