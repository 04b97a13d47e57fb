/* dot_avx2.c: the AVX2+FMA+F16C kernels (dot products, dequantization, Q8_0
 * activation quantization). Built without global -m flags: each function
 * carries its target, and dot.c calls them only on a CPU that has it.
 * Not here: the definitions (the references in dot.c and quant.c). */
#include "kernels/isa.h"
#include "kernels/quant_ref.h"
#include "kernels/simd_x86.h"

#if defined(__x86_64__)

#include <assert.h>
#include <float.h>
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))

static inline TARGET float f16(uint16_t h)
{
	return _cvtsh_ss(h);
}

/* 8 bf16 -> 8 f32: a bf16 is the top half of the f32 with the same bits. */
static inline TARGET __m256 load_bf16(const uint16_t *p)
{
	__m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
	return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* ---- float weights, f32 activations: 4 independent accumulators keep the
 * FMA latency hidden; n is a multiple of 32 by contract ---- */

static TARGET float dot_f32(const void *vw, const void *vx, int64_t n)
{
	const float *w = vw, *x = vx;
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	assert(n % 32 == 0);
	for (int64_t i = 0; i < n; i += 32) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
		a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
		a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
	}
	return simd_hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static TARGET float dot_f16(const void *vw, const void *vx, int64_t n)
{
	const uint16_t *w = vw;
	const float *x = vx;
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	assert(n % 32 == 0);
	for (int64_t i = 0; i < n; i += 32) {
#define W(k) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + (k))))
		a0 = _mm256_fmadd_ps(W(0), _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(W(8), _mm256_loadu_ps(x + i + 8), a1);
		a2 = _mm256_fmadd_ps(W(16), _mm256_loadu_ps(x + i + 16), a2);
		a3 = _mm256_fmadd_ps(W(24), _mm256_loadu_ps(x + i + 24), a3);
#undef W
	}
	return simd_hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static TARGET float dot_bf16(const void *vw, const void *vx, int64_t n)
{
	const uint16_t *w = vw;
	const float *x = vx;
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	assert(n % 32 == 0);
	for (int64_t i = 0; i < n; i += 32) {
		a0 = _mm256_fmadd_ps(load_bf16(w + i), _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(load_bf16(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
		a2 = _mm256_fmadd_ps(load_bf16(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
		a3 = _mm256_fmadd_ps(load_bf16(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
	}
	return simd_hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

/* ---- quantized weights, Q8_0 activations ---- */

/* Per 4-byte group, sum of w*x for signed bytes, as 8 int32 (exact).
 * maddubs wants one unsigned operand: |w| with w's sign moved onto x. Exact
 * for quants in [-127, 127], which is all any ggml quantizer writes. */
static inline TARGET __m256i mul_sum_i8(__m256i w, __m256i x)
{
	const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
	return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

/* Weights 0..31 of a Q4_0 block as bytes in [-8, 7], in element order. */
static inline TARGET __m256i q4_0_bytes(const uint8_t *qs)
{
	const __m128i b = _mm_loadu_si128((const __m128i *)qs);
	const __m256i both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
	const __m256i nib = _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
	return _mm256_sub_epi8(nib, _mm256_set1_epi8(8));
}

/* As ggml: per block, the exact integer sums of 8 lanes, turned to float and
 * multiply-added by d_w*d_x. Two accumulators alternate blocks. */
static TARGET float dot_q8_0(const void *vw, const void *vx, int64_t n)
{
	const struct block_q8_0 *w = vw, *x = vx;
	const int64_t nb = n / QK8_0;
	__m256 a0 = _mm256_setzero_ps(), a1 = a0;
	int64_t b = 0;
	assert(n % QK8_0 == 0);
	for (; b + 1 < nb; b += 2) {
		const __m256i s0 = mul_sum_i8(_mm256_loadu_si256((const __m256i *)w[b].qs),
					      _mm256_loadu_si256((const __m256i *)x[b].qs));
		const __m256i s1 = mul_sum_i8(_mm256_loadu_si256((const __m256i *)w[b + 1].qs),
					      _mm256_loadu_si256((const __m256i *)x[b + 1].qs));
		a0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * f16(x[b].d)), _mm256_cvtepi32_ps(s0), a0);
		a1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b + 1].d) * f16(x[b + 1].d)),
				     _mm256_cvtepi32_ps(s1), a1);
	}
	if (b < nb) {
		const __m256i s0 = mul_sum_i8(_mm256_loadu_si256((const __m256i *)w[b].qs),
					      _mm256_loadu_si256((const __m256i *)x[b].qs));
		a0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * f16(x[b].d)), _mm256_cvtepi32_ps(s0), a0);
	}
	return simd_hsum256(_mm256_add_ps(a0, a1));
}

static TARGET float dot_q4_0(const void *vw, const void *vx, int64_t n)
{
	const struct block_q4_0 *w = vw;
	const struct block_q8_0 *x = vx;
	const int64_t nb = n / QK4_0;
	__m256 a0 = _mm256_setzero_ps(), a1 = a0;
	int64_t b = 0;
	assert(n % QK4_0 == 0);
	for (; b + 1 < nb; b += 2) {
		const __m256i s0 = mul_sum_i8(q4_0_bytes(w[b].qs), _mm256_loadu_si256((const __m256i *)x[b].qs));
		const __m256i s1 = mul_sum_i8(q4_0_bytes(w[b + 1].qs),
					      _mm256_loadu_si256((const __m256i *)x[b + 1].qs));
		a0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * f16(x[b].d)), _mm256_cvtepi32_ps(s0), a0);
		a1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b + 1].d) * f16(x[b + 1].d)),
				     _mm256_cvtepi32_ps(s1), a1);
	}
	if (b < nb) {
		const __m256i s0 = mul_sum_i8(q4_0_bytes(w[b].qs), _mm256_loadu_si256((const __m256i *)x[b].qs));
		a0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * f16(x[b].d)), _mm256_cvtepi32_ps(s0), a0);
	}
	return simd_hsum256(_mm256_add_ps(a0, a1));
}

/* ---- dequantization: the same single rounding (q * d) as the reference,
 * so the output is bit-identical ---- */

static TARGET void dequant_f16(const void *vsrc, float *dst, int64_t n)
{
	const uint16_t *src = vsrc;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
	for (; i < n; i++)
		dst[i] = st_fp16_to_f32(src[i]);
}

static TARGET void dequant_bf16(const void *vsrc, float *dst, int64_t n)
{
	const uint16_t *src = vsrc;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, load_bf16(src + i));
	for (; i < n; i++)
		dst[i] = st_bf16_to_f32(src[i]);
}

static TARGET void dequant_q8_0(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q8_0 *src = vsrc;
	for (int64_t b = 0; b < n / QK8_0; b++) {
		const __m256 d = _mm256_set1_ps(f16(src[b].d));
		for (int k = 0; k < QK8_0; k += 8) {
			const __m128i q = _mm_loadl_epi64((const __m128i *)(src[b].qs + k));
			const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
			_mm256_storeu_ps(dst + b * QK8_0 + k, _mm256_mul_ps(f, d));
		}
	}
}

static TARGET void dequant_q4_0(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q4_0 *src = vsrc;
	for (int64_t b = 0; b < n / QK4_0; b++) {
		const __m256 d = _mm256_set1_ps(f16(src[b].d));
		const __m256i q = q4_0_bytes(src[b].qs); /* 32 x int8, element order */
		const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
		float *o = dst + b * QK4_0;
		_mm256_storeu_ps(o, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
		_mm256_storeu_ps(o + 8, _mm256_mul_ps(
			_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
		_mm256_storeu_ps(o + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
		_mm256_storeu_ps(o + 24, _mm256_mul_ps(
			_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
	}
}

/* ---- Q8_0 activations, bit-identical to quant_act_q8_0_block_ref:
 * q = round-to-nearest-even(x * (127/amax)), d = amax/127 in f16 ---- */

static TARGET void act_q8_0(const float *x, void *vdst, int64_t n)
{
	struct block_q8_0 *y = vdst;
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
		__m256 v[4], amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
		for (int k = 0; k < 4; k++) {
			v[k] = _mm256_loadu_ps(x + 8 * k);
			const __m256 a = _mm256_andnot_ps(sign, v[k]);
			/* NaN or infinity: unordered, or above the largest float */
			bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, _mm256_set1_ps(FLT_MAX), _CMP_NLE_UQ));
			amax = _mm256_max_ps(amax, a);
		}
		__m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
		m = _mm_max_ps(m, _mm_movehl_ps(m, m));
		m = _mm_max_ss(m, _mm_movehdup_ps(m));
		const float am = _mm_cvtss_f32(m);
		const float id = am != 0.0f ? 127.0f / am : 0.0f;
		/* the rare blocks with special rules go to the reference */
		if (_mm256_movemask_ps(bad) != 0 || id > FLT_MAX) {
			quant_act_q8_0_block_ref(x, &y[b], NULL);
			continue;
		}
		y[b].d = st_f32_to_fp16(am / 127.0f);
		const __m256 vid = _mm256_set1_ps(id);
		__m256i q[4];
		for (int k = 0; k < 4; k++)
			q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], vid),
								  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
		/* pack 32 x int32 -> 32 x int8; the packs work per 128-bit lane,
		 * the permute puts the 4-byte groups back in order */
		const __m256i q16a = _mm256_packs_epi32(q[0], q[1]);
		const __m256i q16b = _mm256_packs_epi32(q[2], q[3]);
		const __m256i q8 = _mm256_packs_epi16(q16a, q16b);
		const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
		_mm256_storeu_si256((__m256i *)y[b].qs, _mm256_permutevar8x32_epi32(q8, perm));
	}
}

const struct kernel_set kernels_avx2 = {
	.name = "avx2",
	.dot = {
		[ST_F32] = dot_f32,
		[ST_F16] = dot_f16,
		[ST_BF16] = dot_bf16,
		[ST_Q8_0] = dot_q8_0,
		[ST_Q4_0] = dot_q4_0,
	},
	.dequant = {
		[ST_F16] = dequant_f16,
		[ST_BF16] = dequant_bf16,
		[ST_Q8_0] = dequant_q8_0,
		[ST_Q4_0] = dequant_q4_0,
	},
	.act_q8_0 = act_q8_0,
};

#endif /* __x86_64__ */
