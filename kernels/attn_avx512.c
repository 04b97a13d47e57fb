/* attn_avx512.c: the attention kernels on AVX-512 (F and BW), 16 lanes: the
 * scores of one head against a run of K rows and the weighted sum of a run of
 * V rows, for F32, F16, Q8_0 and Q4_0 caches (attn_impl.h). Quantized rows
 * are widened in registers, a block of 32 at a time. Built without global -m
 * flags: each function names its target, and attn.c calls them only when
 * isa_name() says this CPU runs them. Not here: the definitions (attn.c). */
#include "kernels/attn_impl.h"
#include "kernels/types.h"

#if defined(__x86_64__)

#include <immintrin.h>

#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

T_AVX512 static inline float f16(uint16_t h)
{
	return _cvtsh_ss(h);
}

T_AVX512 static inline __m512 load16_f16(const uint16_t *p)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* 16 int8 -> 16 f32 */
T_AVX512 static inline __m512 load16_i8(const int8_t *p)
{
	return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

/* 16 bytes, each a nibble 0..15, -> 16 f32 of (nibble - 8) */
T_AVX512 static inline __m512 nib16(__m128i b)
{
	return _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(b), _mm512_set1_epi32(8)));
}

/* ---- float rows: one body, two loads ---- */

#define SCORES_FLOAT(NAME, ELEM, LOAD16, TO_F32)                                             \
	T_AVX512 static void NAME(const char *k, int64_t n, size_t stride, const float *q,    \
				  int64_t hd, float scale, float *s)                          \
	{                                                                                     \
		const int64_t n16 = hd & ~(int64_t)15;                                        \
		for (int64_t t = 0; t < n; t++) {                                             \
			const ELEM *r = (const ELEM *)(k + (size_t)t * stride);               \
			__m512 acc = _mm512_setzero_ps();                                     \
			for (int64_t i = 0; i < n16; i += 16)                                 \
				acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), LOAD16(r + i), acc); \
			float sum = _mm512_reduce_add_ps(acc);                                \
			for (int64_t i = n16; i < hd; i++)                                    \
				sum += q[i] * TO_F32(r[i]);                                   \
			s[t] = sum * scale;                                                   \
		}                                                                             \
	}

/* Accumulators for 64 columns stay in registers across all rows of the run. */
#define WSUM_FLOAT(NAME, ELEM, LOAD16, TO_F32)                                               \
	T_AVX512 static void NAME(const char *v, int64_t n, size_t stride, const float *p,    \
				  int64_t hd, float *out)                                     \
	{                                                                                     \
		const int64_t n16 = hd & ~(int64_t)15;                                        \
		int64_t c = 0;                                                                \
		for (; c + 64 <= n16; c += 64) {                                              \
			__m512 a0 = _mm512_loadu_ps(out + c), a1 = _mm512_loadu_ps(out + c + 16); \
			__m512 a2 = _mm512_loadu_ps(out + c + 32), a3 = _mm512_loadu_ps(out + c + 48); \
			for (int64_t t = 0; t < n; t++) {                                     \
				const ELEM *r = (const ELEM *)(v + (size_t)t * stride) + c;   \
				const __m512 w = _mm512_set1_ps(p[t]);                        \
				a0 = _mm512_fmadd_ps(w, LOAD16(r), a0);                       \
				a1 = _mm512_fmadd_ps(w, LOAD16(r + 16), a1);                  \
				a2 = _mm512_fmadd_ps(w, LOAD16(r + 32), a2);                  \
				a3 = _mm512_fmadd_ps(w, LOAD16(r + 48), a3);                  \
			}                                                                     \
			_mm512_storeu_ps(out + c, a0);                                        \
			_mm512_storeu_ps(out + c + 16, a1);                                   \
			_mm512_storeu_ps(out + c + 32, a2);                                   \
			_mm512_storeu_ps(out + c + 48, a3);                                   \
		}                                                                             \
		for (; c < n16; c += 16) {                                                    \
			__m512 a0 = _mm512_loadu_ps(out + c);                                 \
			for (int64_t t = 0; t < n; t++) {                                     \
				const ELEM *r = (const ELEM *)(v + (size_t)t * stride) + c;   \
				a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[t]), LOAD16(r), a0);    \
			}                                                                     \
			_mm512_storeu_ps(out + c, a0);                                        \
		}                                                                             \
		for (; c < hd; c++) {                                                         \
			float sum = out[c];                                                   \
			for (int64_t t = 0; t < n; t++)                                       \
				sum += p[t] * TO_F32(((const ELEM *)(v + (size_t)t * stride))[c]); \
			out[c] = sum;                                                         \
		}                                                                             \
	}

#define F32_ID(x) (x)
SCORES_FLOAT(scores_f32, float, _mm512_loadu_ps, F32_ID)
SCORES_FLOAT(scores_f16, uint16_t, load16_f16, f16)
WSUM_FLOAT(wsum_f32, float, _mm512_loadu_ps, F32_ID)
WSUM_FLOAT(wsum_f16, uint16_t, load16_f16, f16)

/* ---- Q8_0 rows: per block of 32, a float dot then one multiply-add by d ---- */

T_AVX512 static void scores_q8_0(const char *k, int64_t n, size_t stride, const float *q,
				 int64_t hd, float scale, float *s)
{
	const int64_t nb = hd / QK8_0;
	for (int64_t t = 0; t < n; t++) {
		const struct block_q8_0 *b = (const struct block_q8_0 *)(k + (size_t)t * stride);
		__m512 acc = _mm512_setzero_ps();
		for (int64_t j = 0; j < nb; j++) {
			const float *qq = q + j * QK8_0;
			__m512 d = _mm512_mul_ps(_mm512_loadu_ps(qq), load16_i8(b[j].qs));
			d = _mm512_fmadd_ps(_mm512_loadu_ps(qq + 16), load16_i8(b[j].qs + 16), d);
			acc = _mm512_fmadd_ps(_mm512_set1_ps(f16(b[j].d)), d, acc);
		}
		s[t] = _mm512_reduce_add_ps(acc) * scale;
	}
}

/* Two blocks (64 columns, 4 accumulators) at a time across the rows, then one. */
T_AVX512 static void wsum_q8_0(const char *v, int64_t n, size_t stride, const float *p,
			       int64_t hd, float *out)
{
	const int64_t nb = hd / QK8_0;
	int64_t j = 0;
	for (; j + 2 <= nb; j += 2) {
		float *o = out + j * QK8_0;
		__m512 a0 = _mm512_loadu_ps(o), a1 = _mm512_loadu_ps(o + 16);
		__m512 a2 = _mm512_loadu_ps(o + 32), a3 = _mm512_loadu_ps(o + 48);
		for (int64_t t = 0; t < n; t++) {
			const struct block_q8_0 *b = (const struct block_q8_0 *)(v + (size_t)t * stride) + j;
			const __m512 w0 = _mm512_set1_ps(p[t] * f16(b[0].d));
			const __m512 w1 = _mm512_set1_ps(p[t] * f16(b[1].d));
			a0 = _mm512_fmadd_ps(w0, load16_i8(b[0].qs), a0);
			a1 = _mm512_fmadd_ps(w0, load16_i8(b[0].qs + 16), a1);
			a2 = _mm512_fmadd_ps(w1, load16_i8(b[1].qs), a2);
			a3 = _mm512_fmadd_ps(w1, load16_i8(b[1].qs + 16), a3);
		}
		_mm512_storeu_ps(o, a0);
		_mm512_storeu_ps(o + 16, a1);
		_mm512_storeu_ps(o + 32, a2);
		_mm512_storeu_ps(o + 48, a3);
	}
	for (; j < nb; j++) {
		float *o = out + j * QK8_0;
		__m512 a0 = _mm512_loadu_ps(o), a1 = _mm512_loadu_ps(o + 16);
		for (int64_t t = 0; t < n; t++) {
			const struct block_q8_0 *b = (const struct block_q8_0 *)(v + (size_t)t * stride) + j;
			const __m512 w = _mm512_set1_ps(p[t] * f16(b->d));
			a0 = _mm512_fmadd_ps(w, load16_i8(b->qs), a0);
			a1 = _mm512_fmadd_ps(w, load16_i8(b->qs + 16), a1);
		}
		_mm512_storeu_ps(o, a0);
		_mm512_storeu_ps(o + 16, a1);
	}
}

/* ---- Q4_0 rows: byte i holds element i (low nibble) and i + 16 (high) ---- */

T_AVX512 static void scores_q4_0(const char *k, int64_t n, size_t stride, const float *q,
				 int64_t hd, float scale, float *s)
{
	const int64_t nb = hd / QK4_0;
	const __m128i m4 = _mm_set1_epi8(0x0f);
	for (int64_t t = 0; t < n; t++) {
		const struct block_q4_0 *b = (const struct block_q4_0 *)(k + (size_t)t * stride);
		__m512 acc = _mm512_setzero_ps();
		for (int64_t j = 0; j < nb; j++) {
			const float *qq = q + j * QK4_0;
			const __m128i x = _mm_loadu_si128((const __m128i *)b[j].qs);
			__m512 d = _mm512_mul_ps(_mm512_loadu_ps(qq), nib16(_mm_and_si128(x, m4)));
			d = _mm512_fmadd_ps(_mm512_loadu_ps(qq + 16),
					    nib16(_mm_and_si128(_mm_srli_epi16(x, 4), m4)), d);
			acc = _mm512_fmadd_ps(_mm512_set1_ps(f16(b[j].d)), d, acc);
		}
		s[t] = _mm512_reduce_add_ps(acc) * scale;
	}
}

T_AVX512 static void wsum_q4_0(const char *v, int64_t n, size_t stride, const float *p,
			       int64_t hd, float *out)
{
	const int64_t nb = hd / QK4_0;
	const __m128i m4 = _mm_set1_epi8(0x0f);
	int64_t j = 0;
	for (; j + 2 <= nb; j += 2) {
		float *o = out + j * QK4_0;
		__m512 a0 = _mm512_loadu_ps(o), a1 = _mm512_loadu_ps(o + 16);
		__m512 a2 = _mm512_loadu_ps(o + 32), a3 = _mm512_loadu_ps(o + 48);
		for (int64_t t = 0; t < n; t++) {
			const struct block_q4_0 *b = (const struct block_q4_0 *)(v + (size_t)t * stride) + j;
			const __m512 w0 = _mm512_set1_ps(p[t] * f16(b[0].d));
			const __m512 w1 = _mm512_set1_ps(p[t] * f16(b[1].d));
			const __m128i x0 = _mm_loadu_si128((const __m128i *)b[0].qs);
			const __m128i x1 = _mm_loadu_si128((const __m128i *)b[1].qs);
			a0 = _mm512_fmadd_ps(w0, nib16(_mm_and_si128(x0, m4)), a0);
			a1 = _mm512_fmadd_ps(w0, nib16(_mm_and_si128(_mm_srli_epi16(x0, 4), m4)), a1);
			a2 = _mm512_fmadd_ps(w1, nib16(_mm_and_si128(x1, m4)), a2);
			a3 = _mm512_fmadd_ps(w1, nib16(_mm_and_si128(_mm_srli_epi16(x1, 4), m4)), a3);
		}
		_mm512_storeu_ps(o, a0);
		_mm512_storeu_ps(o + 16, a1);
		_mm512_storeu_ps(o + 32, a2);
		_mm512_storeu_ps(o + 48, a3);
	}
	for (; j < nb; j++) {
		float *o = out + j * QK4_0;
		__m512 a0 = _mm512_loadu_ps(o), a1 = _mm512_loadu_ps(o + 16);
		for (int64_t t = 0; t < n; t++) {
			const struct block_q4_0 *b = (const struct block_q4_0 *)(v + (size_t)t * stride) + j;
			const __m512 w = _mm512_set1_ps(p[t] * f16(b->d));
			const __m128i x = _mm_loadu_si128((const __m128i *)b->qs);
			a0 = _mm512_fmadd_ps(w, nib16(_mm_and_si128(x, m4)), a0);
			a1 = _mm512_fmadd_ps(w, nib16(_mm_and_si128(_mm_srli_epi16(x, 4), m4)), a1);
		}
		_mm512_storeu_ps(o, a0);
		_mm512_storeu_ps(o + 16, a1);
	}
}

const struct attn_kernels attn_kernels_avx512 = {
	.scores = { scores_f32, scores_f16, scores_q8_0, scores_q4_0 },
	.wsum = { wsum_f32, wsum_f16, wsum_q8_0, wsum_q4_0 },
};

#endif /* __x86_64__ */
