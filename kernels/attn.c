/* attn.c: single-query grouped-query attention over an F32/F16 KV cache (see
 * attn.h): scores = q·k * scale, softmax, weighted sum of v. The q·k loop and
 * the v accumulation have AVX2 and AVX-512 versions (target attributes, run
 * on the instruction set isa_name() names); attn_ref is the double-precision
 * scalar definition. Not a place for masks, ALiBi or batched queries. */
#include "kernels/attn.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/ops.h"
#include "kernels/simd_x86.h"
#include "kernels/types.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define ATTN_X86 1
#endif

/* One head's work: scores s (n_kv) from q (head_dim) against the keys at
 * column offset `off` (elements), and out (head_dim) += p · V at that offset
 * (the caller zeroes out first; accumulating lets a shared prefix and the
 * sequence's own rows sum in exactly the order one contiguous cache would). */
typedef void (*scores_fn)(const struct attn_args *a, const float *q, int64_t off, float *s);
typedef void (*wsum_fn)(const struct attn_args *a, const float *p, int64_t off, float *out);

static const char *kv_row(const void *base, const struct attn_args *a, int64_t t)
{
	return (const char *)base + (size_t)t * a->kv_row_bytes;
}

/* ---- scalar (the fallback; float accumulation like the SIMD paths) ---- */

static void scores_f32_scalar(const struct attn_args *a, const float *q, int64_t off, float *s)
{
	for (int64_t t = 0; t < a->n_kv; t++) {
		const float *k = (const float *)kv_row(a->k, a, t) + off;
		float acc = 0.0f;
		for (int64_t i = 0; i < a->head_dim; i++)
			acc += q[i] * k[i];
		s[t] = acc * a->scale;
	}
}

static void scores_f16_scalar(const struct attn_args *a, const float *q, int64_t off, float *s)
{
	for (int64_t t = 0; t < a->n_kv; t++) {
		const uint16_t *k = (const uint16_t *)kv_row(a->k, a, t) + off;
		float acc = 0.0f;
		for (int64_t i = 0; i < a->head_dim; i++)
			acc += q[i] * st_fp16_to_f32(k[i]);
		s[t] = acc * a->scale;
	}
}

static void wsum_f32_scalar(const struct attn_args *a, const float *p, int64_t off, float *out)
{
	for (int64_t t = 0; t < a->n_kv; t++) {
		const float *v = (const float *)kv_row(a->v, a, t) + off;
		for (int64_t i = 0; i < a->head_dim; i++)
			out[i] += p[t] * v[i];
	}
}

static void wsum_f16_scalar(const struct attn_args *a, const float *p, int64_t off, float *out)
{
	for (int64_t t = 0; t < a->n_kv; t++) {
		const uint16_t *v = (const uint16_t *)kv_row(a->v, a, t) + off;
		for (int64_t i = 0; i < a->head_dim; i++)
			out[i] += p[t] * st_fp16_to_f32(v[i]);
	}
}

#ifdef ATTN_X86

/* ---- AVX2 + FMA + F16C: 8 lanes ---- */

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))

T_AVX2 static inline __m256 load8_f16(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* The two key types differ only in the load; one body, two instances. */
#define SCORES_AVX2(NAME, ELEM, LOAD8, TO_F32)                                           \
	T_AVX2 static void NAME(const struct attn_args *a, const float *q, int64_t off,  \
				float *s)                                                \
	{                                                                                \
		const int64_t n = a->head_dim, n8 = n & ~(int64_t)7;                     \
		for (int64_t t = 0; t < a->n_kv; t++) {                                  \
			const ELEM *k = (const ELEM *)kv_row(a->k, a, t) + off;          \
			__m256 acc = _mm256_setzero_ps();                                \
			for (int64_t i = 0; i < n8; i += 8)                              \
				acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), LOAD8(k + i), acc); \
			float r = simd_hsum256(acc);                                          \
			for (int64_t i = n8; i < n; i++)                                 \
				r += q[i] * TO_F32(k[i]);                                \
			s[t] = r * a->scale;                                             \
		}                                                                        \
	}

/* Accumulators for 32 columns stay in registers across all positions; the
 * block is then stored and the next 32 columns start. */
#define WSUM_AVX2(NAME, ELEM, LOAD8, TO_F32)                                             \
	T_AVX2 static void NAME(const struct attn_args *a, const float *p, int64_t off,  \
				float *out)                                              \
	{                                                                                \
		const int64_t n = a->head_dim, n8 = n & ~(int64_t)7;                     \
		int64_t c = 0;                                                           \
		for (; c + 32 <= n8; c += 32) {                                          \
			__m256 a0 = _mm256_loadu_ps(out + c), a1 = _mm256_loadu_ps(out + c + 8); \
			__m256 a2 = _mm256_loadu_ps(out + c + 16), a3 = _mm256_loadu_ps(out + c + 24); \
			for (int64_t t = 0; t < a->n_kv; t++) {                          \
				const ELEM *v = (const ELEM *)kv_row(a->v, a, t) + off + c; \
				const __m256 w = _mm256_set1_ps(p[t]);                   \
				a0 = _mm256_fmadd_ps(w, LOAD8(v), a0);                   \
				a1 = _mm256_fmadd_ps(w, LOAD8(v + 8), a1);               \
				a2 = _mm256_fmadd_ps(w, LOAD8(v + 16), a2);              \
				a3 = _mm256_fmadd_ps(w, LOAD8(v + 24), a3);              \
			}                                                                \
			_mm256_storeu_ps(out + c, a0);                                   \
			_mm256_storeu_ps(out + c + 8, a1);                               \
			_mm256_storeu_ps(out + c + 16, a2);                              \
			_mm256_storeu_ps(out + c + 24, a3);                              \
		}                                                                        \
		for (; c < n8; c += 8) {                                                 \
			__m256 a0 = _mm256_loadu_ps(out + c);                            \
			for (int64_t t = 0; t < a->n_kv; t++) {                          \
				const ELEM *v = (const ELEM *)kv_row(a->v, a, t) + off + c; \
				a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), LOAD8(v), a0); \
			}                                                                \
			_mm256_storeu_ps(out + c, a0);                                   \
		}                                                                        \
		for (; c < n; c++) {                                                     \
			float r = out[c];                                                \
			for (int64_t t = 0; t < a->n_kv; t++)                            \
				r += p[t] * TO_F32(((const ELEM *)kv_row(a->v, a, t))[off + c]); \
			out[c] = r;                                                      \
		}                                                                        \
	}

#define F32_ID(x) (x)
SCORES_AVX2(scores_f32_avx2, float, _mm256_loadu_ps, F32_ID)
SCORES_AVX2(scores_f16_avx2, uint16_t, load8_f16, st_fp16_to_f32)
WSUM_AVX2(wsum_f32_avx2, float, _mm256_loadu_ps, F32_ID)
WSUM_AVX2(wsum_f16_avx2, uint16_t, load8_f16, st_fp16_to_f32)

/* ---- AVX-512F: 16 lanes (F16 conversion is part of AVX-512F) ---- */

#define T_AVX512 __attribute__((target("avx512f")))

T_AVX512 static inline __m512 load16_f16(const uint16_t *p)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

#define SCORES_AVX512(NAME, ELEM, LOAD16, TO_F32)                                        \
	T_AVX512 static void NAME(const struct attn_args *a, const float *q, int64_t off, \
				  float *s)                                              \
	{                                                                                \
		const int64_t n = a->head_dim, n16 = n & ~(int64_t)15;                   \
		for (int64_t t = 0; t < a->n_kv; t++) {                                  \
			const ELEM *k = (const ELEM *)kv_row(a->k, a, t) + off;          \
			__m512 acc = _mm512_setzero_ps();                                \
			for (int64_t i = 0; i < n16; i += 16)                            \
				acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), LOAD16(k + i), acc); \
			float r = _mm512_reduce_add_ps(acc);                             \
			for (int64_t i = n16; i < n; i++)                                \
				r += q[i] * TO_F32(k[i]);                                \
			s[t] = r * a->scale;                                             \
		}                                                                        \
	}

#define WSUM_AVX512(NAME, ELEM, LOAD16, TO_F32)                                          \
	T_AVX512 static void NAME(const struct attn_args *a, const float *p, int64_t off, \
				  float *out)                                            \
	{                                                                                \
		const int64_t n = a->head_dim, n16 = n & ~(int64_t)15;                   \
		int64_t c = 0;                                                           \
		for (; c + 64 <= n16; c += 64) {                                         \
			__m512 a0 = _mm512_loadu_ps(out + c), a1 = _mm512_loadu_ps(out + c + 16); \
			__m512 a2 = _mm512_loadu_ps(out + c + 32), a3 = _mm512_loadu_ps(out + c + 48); \
			for (int64_t t = 0; t < a->n_kv; t++) {                          \
				const ELEM *v = (const ELEM *)kv_row(a->v, a, t) + off + c; \
				const __m512 w = _mm512_set1_ps(p[t]);                   \
				a0 = _mm512_fmadd_ps(w, LOAD16(v), a0);                  \
				a1 = _mm512_fmadd_ps(w, LOAD16(v + 16), a1);             \
				a2 = _mm512_fmadd_ps(w, LOAD16(v + 32), a2);             \
				a3 = _mm512_fmadd_ps(w, LOAD16(v + 48), a3);             \
			}                                                                \
			_mm512_storeu_ps(out + c, a0);                                   \
			_mm512_storeu_ps(out + c + 16, a1);                              \
			_mm512_storeu_ps(out + c + 32, a2);                              \
			_mm512_storeu_ps(out + c + 48, a3);                              \
		}                                                                        \
		for (; c < n16; c += 16) {                                               \
			__m512 a0 = _mm512_loadu_ps(out + c);                            \
			for (int64_t t = 0; t < a->n_kv; t++) {                          \
				const ELEM *v = (const ELEM *)kv_row(a->v, a, t) + off + c; \
				a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[t]), LOAD16(v), a0); \
			}                                                                \
			_mm512_storeu_ps(out + c, a0);                                   \
		}                                                                        \
		for (; c < n; c++) {                                                     \
			float r = out[c];                                                \
			for (int64_t t = 0; t < a->n_kv; t++)                            \
				r += p[t] * TO_F32(((const ELEM *)kv_row(a->v, a, t))[off + c]); \
			out[c] = r;                                                      \
		}                                                                        \
	}

SCORES_AVX512(scores_f32_avx512, float, _mm512_loadu_ps, F32_ID)
SCORES_AVX512(scores_f16_avx512, uint16_t, load16_f16, st_fp16_to_f32)
WSUM_AVX512(wsum_f32_avx512, float, _mm512_loadu_ps, F32_ID)
WSUM_AVX512(wsum_f16_avx512, uint16_t, load16_f16, st_fp16_to_f32)

enum attn_isa { ISA_SCALAR, ISA_AVX2, ISA_AVX512 };

/* Follow the one choice of instruction set (isa.h), so one isa_force()
 * moves every kernel of the process and tests can run each path on one CPU. */
static enum attn_isa attn_isa(void)
{
	const char *isa = isa_name();
	if (strncmp(isa, "avx512", 6) == 0)
		return ISA_AVX512;
	if (strcmp(isa, "avx2") == 0)
		return ISA_AVX2;
	return ISA_SCALAR;
}

#endif /* ATTN_X86 */

void attn_heads(const struct attn_args *a, int64_t head_begin, int64_t head_end)
{
	assert(a->kv_type == ST_F32 || a->kv_type == ST_F16);
	assert(a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0);
	assert(a->n_kv >= 1);
	const bool f16 = a->kv_type == ST_F16;
	scores_fn scores = f16 ? scores_f16_scalar : scores_f32_scalar;
	wsum_fn wsum = f16 ? wsum_f16_scalar : wsum_f32_scalar;
#ifdef ATTN_X86
	switch (attn_isa()) {
	case ISA_AVX512:
		scores = f16 ? scores_f16_avx512 : scores_f32_avx512;
		wsum = f16 ? wsum_f16_avx512 : wsum_f32_avx512;
		break;
	case ISA_AVX2:
		scores = f16 ? scores_f16_avx2 : scores_f32_avx2;
		wsum = f16 ? wsum_f16_avx2 : wsum_f32_avx2;
		break;
	case ISA_SCALAR:
		break;
	}
#endif
	const int64_t group = a->n_head / a->n_head_kv; /* query heads per K/V head */
	const int64_t np = a->n_prefix < a->n_kv ? a->n_prefix : a->n_kv;
	/* With a shared prefix the kernels run on two segments: the prefix's
	 * rows (from k0/v0), then the rest (from k/v, as an args whose base is
	 * row np); one softmax over both, and out accumulates both in the order
	 * of one contiguous cache, so the result is the same to the bit. */
	struct attn_args pre = *a, own = *a;
	pre.k = a->k0;
	pre.v = a->v0;
	pre.n_kv = np;
	own.k = kv_row(a->k, a, np);
	own.v = kv_row(a->v, a, np);
	own.n_kv = a->n_kv - np;
	for (int64_t h = head_begin; h < head_end; h++) {
		const int64_t off = (h / group) * a->head_dim;
		const float *q = a->q + h * a->head_dim;
		float *out = a->out + h * a->head_dim;
		if (np > 0)
			scores(&pre, q, off, a->scores);
		if (own.n_kv > 0)
			scores(&own, q, off, a->scores + np);
		ops_softmax(a->scores, a->n_kv);
		memset(out, 0, (size_t)a->head_dim * sizeof *out);
		if (np > 0)
			wsum(&pre, a->scores, off, out);
		if (own.n_kv > 0)
			wsum(&own, a->scores + np, off, out);
	}
}

/* Position t's element col of K (or V: base selects), through the shared prefix. */
static double kv_at(const struct attn_args *a, const void *base, int64_t t, int64_t col)
{
	if (t < a->n_prefix)
		base = base == a->k ? a->k0 : a->v0;
	const char *row = kv_row(base, a, t);
	if (a->kv_type == ST_F16)
		return st_fp16_to_f32(((const uint16_t *)row)[col]);
	return ((const float *)row)[col];
}

void attn_ref(const struct attn_args *a)
{
	assert(a->kv_type == ST_F32 || a->kv_type == ST_F16);
	assert(a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0);
	const int64_t group = a->n_head / a->n_head_kv;
	for (int64_t h = 0; h < a->n_head; h++) {
		const float *q = a->q + h * a->head_dim;
		const int64_t off = (h / group) * a->head_dim;
		double max = -1e300, sum = 0.0;
		/* Scores are kept in the float scratch (a 1e-7 relative rounding,
		 * far below what the tests allow); everything else is double. */
		for (int64_t t = 0; t < a->n_kv; t++) {
			double d = 0.0;
			for (int64_t i = 0; i < a->head_dim; i++)
				d += (double)q[i] * kv_at(a, a->k, t, off + i);
			a->scores[t] = (float)(d * a->scale);
			max = a->scores[t] > max ? a->scores[t] : max;
		}
		for (int64_t t = 0; t < a->n_kv; t++)
			sum += exp((double)a->scores[t] - max);
		for (int64_t i = 0; i < a->head_dim; i++) {
			double o = 0.0;
			for (int64_t t = 0; t < a->n_kv; t++)
				o += exp((double)a->scores[t] - max) / sum * kv_at(a, a->v, t, off + i);
			a->out[h * a->head_dim + i] = (float)o;
		}
	}
}
