/* dot_avx2.c: the AVX2+FMA+F16C kernels (dot products, dequantization, Q8_0
 * activation quantization). Built without global -m flags: each function
 * carries its target, and dot.c calls them only on a CPU that has it.
 * Not here: the definitions (the references in dot.c and quant.c). */
#include "kernels/isa.h"
#include "kernels/qgemm_impl.h"
#include "kernels/quant_kref.h"
#include "kernels/quant_ref.h"
#include "kernels/simd_x86.h"

#if defined(__x86_64__)

#include <assert.h>
#include <float.h>
#include <immintrin.h>
#include <string.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))
/* For helpers of the exact one-row kernels that GCC stopped inlining once
 * they shared q4k_pairs (a call per super-block in the hottest loop). */
#define ALWAYS_INLINE __attribute__((always_inline))

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

/* ---- the other 32-weight types ---- */

/* Per 4-byte group, sum of u*s for unsigned u (< 128) and signed s, as 8
 * int32; exact while each byte pair sums below 2^15 (all our quants do). */
static inline TARGET __m256i mul_sum_u8_i8(__m256i u, __m256i s)
{
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* The 32 nibbles of a Q4_0-layout block as bytes 0..15, in element order. */
static inline TARGET __m256i nibbles32(const uint8_t *qs)
{
	const __m128i b = _mm_loadu_si128((const __m128i *)qs);
	const __m256i both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
	return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

/* Byte j is 0xff where bit j of the 32 bits at p is set (ggml's
 * bytes_from_bits_32): the fifth bits of Q5_0/Q5_1. */
static inline TARGET __m256i bits32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
					       0x0101010101010101, 0x0000000000000000);
	const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
	const __m256i bit = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
	return _mm256_cmpeq_epi8(bit, _mm256_set1_epi64x(-1));
}

/* Q4_1 x Q8_1: the quants 0..15 times the activations, the minimum
 * through s = d_x sum q_x. */
static TARGET float dot_q4_1(const void *vw, const void *vx, int64_t n)
{
	const struct block_q4_1 *w = vw;
	const struct block_q8_1 *x = vx;
	__m256 acc = _mm256_setzero_ps();
	float mins = 0.0f;
	assert(n % QK4_1 == 0);
	for (int64_t b = 0; b < n / QK4_1; b++) {
		const __m256i s = mul_sum_u8_i8(nibbles32(w[b].qs), _mm256_loadu_si256((const __m256i *)x[b].qs));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * f16(x[b].d)), _mm256_cvtepi32_ps(s), acc);
		mins += f16(w[b].m) * f16(x[b].s);
	}
	return simd_hsum256(acc) + mins;
}

static TARGET float dot_q5_0(const void *vw, const void *vx, int64_t n)
{
	const struct block_q5_0 *w = vw;
	const struct block_q8_0 *x = vx;
	__m256 acc = _mm256_setzero_ps();
	assert(n % QK5_0 == 0);
	for (int64_t b = 0; b < n / QK5_0; b++) {
		/* nibble | 0xf0 where the fifth bit is clear: q - 16 as int8 */
		const __m256i hi = _mm256_andnot_si256(bits32(w[b].qh), _mm256_set1_epi8((char)0xf0));
		const __m256i q = _mm256_or_si256(nibbles32(w[b].qs), hi);
		const __m256i s = mul_sum_i8(q, _mm256_loadu_si256((const __m256i *)x[b].qs));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * f16(x[b].d)), _mm256_cvtepi32_ps(s), acc);
	}
	return simd_hsum256(acc);
}

static TARGET float dot_q5_1(const void *vw, const void *vx, int64_t n)
{
	const struct block_q5_1 *w = vw;
	const struct block_q8_1 *x = vx;
	__m256 acc = _mm256_setzero_ps();
	float mins = 0.0f;
	assert(n % QK5_1 == 0);
	for (int64_t b = 0; b < n / QK5_1; b++) {
		const __m256i hi = _mm256_and_si256(bits32(w[b].qh), _mm256_set1_epi8(0x10));
		const __m256i q = _mm256_or_si256(nibbles32(w[b].qs), hi);
		const __m256i s = mul_sum_u8_i8(q, _mm256_loadu_si256((const __m256i *)x[b].qs));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * f16(x[b].d)), _mm256_cvtepi32_ps(s), acc);
		mins += f16(w[b].m) * f16(x[b].s);
	}
	return simd_hsum256(acc) + mins;
}

/* The IQ4_NL values of 32 indexes (Q4_0 layout) as int8, element order. */
static inline TARGET __m256i iq4_values32(const uint8_t *qs)
{
	const __m128i table = _mm_loadu_si128((const __m128i *)st_iq4nl_values);
	const __m128i b = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0x0f);
	const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(b, m));
	const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(b, 4), m));
	return _mm256_set_m128i(hi, lo);
}

static TARGET float dot_iq4_nl(const void *vw, const void *vx, int64_t n)
{
	const struct block_iq4_nl *w = vw;
	const struct block_q8_0 *x = vx;
	__m256 acc = _mm256_setzero_ps();
	assert(n % QK4_NL == 0);
	for (int64_t b = 0; b < n / QK4_NL; b++) {
		const __m256i s = mul_sum_i8(iq4_values32(w[b].qs), _mm256_loadu_si256((const __m256i *)x[b].qs));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * f16(x[b].d)), _mm256_cvtepi32_ps(s), acc);
	}
	return simd_hsum256(acc);
}

/* ---- super-blocks x Q8_K. Per 256 weights the integer sums are exact:
 * quant x activation pairs in int16 (maddubs), times the sub-block scale
 * into int32 (madd); then one float multiply-add per super-block by
 * d_x * d_w, and for the types with minimums (or an offset: Q6_K's -32,
 * Q3_K's -4) one exact integer term from the activations' 16-sums (bsums),
 * as ggml's AVX2 kernels do for the minimums. The per-group helpers take
 * constant indexes, so inlined calls unroll the super-block. ---- */

/* [v's word a x8 | v's word b x8], where v holds the same 8 int16 in both
 * 128-bit lanes: the scales of two 16-weight sub-blocks for one maddubs
 * register (a == b: one 32-weight sub-block). */
static inline TARGET __m256i words2(__m256i v, int a, int b)
{
	const __m256i ctl = _mm256_set_m128i(_mm_set1_epi16((short)(2 * b | (2 * b + 1) << 8)),
					     _mm_set1_epi16((short)(2 * a | (2 * a + 1) << 8)));
	return _mm256_shuffle_epi8(v, ctl);
}

/* Q4_K/Q5_K: 8 scales (low lane) and 8 minimums (high lane) as int16,
 * unpacked from their 12 bytes with 32-bit operations (ggml's utmp). */
static inline TARGET __m256i q4k_scales_mins(const uint8_t *packed)
{
	uint32_t u[3], sc[2], mn[2];
	memcpy(u, packed, 12);
	sc[0] = u[0] & 0x3f3f3f3f;
	sc[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
	mn[0] = u[1] & 0x3f3f3f3f;
	mn[1] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
	return _mm256_cvtepu8_epi16(_mm_set_epi32((int)mn[1], (int)mn[0], (int)sc[1], (int)sc[0]));
}

/* sum over j of m[j] * (bsums[2j] + bsums[2j+1]), as 4 int32; mins16 the 8
 * minimums as int16 */
static inline TARGET __m128i k4_mins(__m128i mins16, const int16_t *bsums)
{
	const __m256i q8sums = _mm256_loadu_si256((const __m256i *)bsums);
	const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
	return _mm_madd_epi16(mins16, q8s);
}

/* Sum of the 8 lanes of an int32 vector. */
static inline TARGET int32_t hsum_i32(__m256i v)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
	return _mm_cvtsi128_si32(s);
}

/* Q4_K group j (weights 64j..64j+63): the quant x activation pair sums
 * (int16) of sub-blocks 2j (low nibbles, .lo) and 2j+1 (high, .hi), before
 * their scales. */
struct q4k_pairs {
	__m256i lo, hi;
};

static inline ALWAYS_INLINE TARGET struct q4k_pairs q4k_pairs(const uint8_t *qs, const int8_t *q8, int j)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
	return (struct q4k_pairs){
		.lo = _mm256_maddubs_epi16(_mm256_and_si256(bits, m4),
					   _mm256_loadu_si256((const __m256i *)(q8 + 64 * j))),
		.hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
					   _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32))),
	};
}

/* Q4_K group j's scaled sums (8 lanes to add). */
static inline TARGET __m256i q4k_group(const uint8_t *qs, const int8_t *q8, __m256i sc, int j)
{
	const struct q4k_pairs p = q4k_pairs(qs, q8, j);
	return _mm256_add_epi32(_mm256_madd_epi16(words2(sc, 2 * j, 2 * j), p.lo),
				_mm256_madd_epi16(words2(sc, 2 * j + 1, 2 * j + 1), p.hi));
}

/* Super-block w's 8 scales as int16 in both lanes, and in *mins the
 * minimums' sums against x's 16-sums (4 lanes to add). */
static inline TARGET __m256i q4k_scales(const struct block_q4_K *w, const struct block_q8_K *x, __m128i *mins)
{
	const __m256i sm = q4k_scales_mins(w->scales);
	const __m256i sc = _mm256_permute2x128_si256(sm, sm, 0x00);
	*mins = k4_mins(_mm256_extracti128_si256(sm, 1), x->bsums);
	return sc;
}

/* Q4_K super-block b's integer sums: the weights' (sumi: 8 lanes to add)
 * and the minimums' (4 lanes). */
static inline TARGET __m256i q4k_sums(const struct block_q4_K *w, const struct block_q8_K *x, __m128i *mins)
{
	const __m256i sc = q4k_scales(w, x, mins);
	return _mm256_add_epi32(_mm256_add_epi32(q4k_group(w->qs, x->qs, sc, 0), q4k_group(w->qs, x->qs, sc, 1)),
				_mm256_add_epi32(q4k_group(w->qs, x->qs, sc, 2), q4k_group(w->qs, x->qs, sc, 3)));
}

/* The exact one-row kernels below run only in the AVX-512 VNNI set (their
 * caller is its qgemm), so they may take VNNI's vpdpwssd, which multiplies
 * int16 pairs and adds them to int32 lanes in one instruction: the madd and
 * add of the AVX2 helpers above, with the same exact integer sums. */
#define TARGET_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))

/* The vpshufb controls that spread scale j (an int16 of a q4k_scales_mins
 * lane) over a register. Made once per row and kept in registers: built
 * inside the loop, each cost a broadcast and an insert (AVX-512 code builds
 * such constants instead of loading them), 20% of the row's speed. */
static inline TARGET_VNNI void q4k_scale_ctls(__m256i ctl[8])
{
	for (int j = 0; j < 8; j++)
		ctl[j] = _mm256_set1_epi16((short)(2 * j | (2 * j + 1) << 8));
}

/* q4k_group with vpdpwssd, added to the accumulators lo (sub-block 2j, low
 * nibbles) and hi (2j+1): two chains of dependent vpdpwssd, four long. */
static inline ALWAYS_INLINE TARGET_VNNI void q4k_group_vnni(const uint8_t *qs, const int8_t *q8, __m256i sc,
							    const __m256i *ctl, int j, __m256i *lo, __m256i *hi)
{
	const struct q4k_pairs p = q4k_pairs(qs, q8, j);
	*lo = _mm256_dpwssd_epi32(*lo, _mm256_shuffle_epi8(sc, ctl[2 * j]), p.lo);
	*hi = _mm256_dpwssd_epi32(*hi, _mm256_shuffle_epi8(sc, ctl[2 * j + 1]), p.hi);
}

/* q4k_sums with vpdpwssd. */
static inline ALWAYS_INLINE TARGET_VNNI __m256i q4k_sums_vnni(const struct block_q4_K *w, const struct block_q8_K *x,
							       const __m256i *ctl, __m128i *mins)
{
	const __m256i sc = q4k_scales(w, x, mins);
	__m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
	q4k_group_vnni(w->qs, x->qs, sc, ctl, 0, &lo, &hi);
	q4k_group_vnni(w->qs, x->qs, sc, ctl, 1, &lo, &hi);
	q4k_group_vnni(w->qs, x->qs, sc, ctl, 2, &lo, &hi);
	q4k_group_vnni(w->qs, x->qs, sc, ctl, 3, &lo, &hi);
	return _mm256_add_epi32(lo, hi);
}

static TARGET float dot_q4_K(const void *vw, const void *vx, int64_t n)
{
	const struct block_q4_K *w = vw;
	const struct block_q8_K *x = vx;
	__m256 acc = _mm256_setzero_ps();
	__m128 acc_m = _mm_setzero_ps();
	assert(n % QK_K == 0);
	for (int64_t b = 0; b < n / QK_K; b++) {
		__m128i mins;
		const __m256i sumi = q4k_sums(&w[b], &x[b], &mins);
		acc_m = _mm_fmadd_ps(_mm_set1_ps(-x[b].d * f16(w[b].dmin)), _mm_cvtepi32_ps(mins), acc_m);
		acc = _mm256_fmadd_ps(_mm256_set1_ps(x[b].d * f16(w[b].d)), _mm256_cvtepi32_ps(sumi), acc);
	}
	acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
	acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
	return simd_hsum256(acc) + _mm_cvtss_f32(acc_m);
}

/* The 8 lanes' sums of v[0..7], in that order: an exact integer reduction
 * of 8 vectors at once (3 shuffling adds a vector instead of 5). */
static inline TARGET __m256i hsum8_i32(const __m256i *v)
{
	const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]), h23 = _mm256_hadd_epi32(v[2], v[3]);
	const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]), h67 = _mm256_hadd_epi32(v[6], v[7]);
	const __m256i lo = _mm256_hadd_epi32(h01, h23), hi = _mm256_hadd_epi32(h45, h67);
	return _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20), _mm256_permute2x128_si256(lo, hi, 0x31));
}

/* The reference's float products for 8 super-blocks, into t[0..7]:
 * (xd * wd) * sumi - (xd * wm) * summ (without wm, NULL: (xd * wd) * sumi),
 * each rounded as the scalar code rounds it (the kernels are built with
 * -ffp-contract=off), the 8 at once. The reference then adds them to its sum
 * one after another, in block order: the callers do those additions during
 * the next 8 super-blocks' integer work, one a block, so their chain of
 * dependent adds hides behind independent work. Done after each group, the
 * chain stalled the row: matmul-bench, 2 threads, from DRAM, Q4_K rows of
 * 14336 (a FFN's down projection) 86 -> 110 GFLOP/s, rows of 4096 109 -> 113. */
static inline TARGET void k_products8(float *t, const float *xd, const float *wd, const float *wm, __m256i sumi,
				      __m256i summ)
{
	const __m256 vxd = _mm256_loadu_ps(xd);
	__m256 p = _mm256_mul_ps(_mm256_mul_ps(vxd, _mm256_loadu_ps(wd)), _mm256_cvtepi32_ps(sumi));
	if (wm)
		p = _mm256_sub_ps(p, _mm256_mul_ps(_mm256_mul_ps(vxd, _mm256_loadu_ps(wm)), _mm256_cvtepi32_ps(summ)));
	_mm256_storeu_ps(t, p);
}

/* The one-row path of the VNNI K-quant multi-row kernels (qgemm.h): this
 * dot with the reference's float steps (dot.c: one per super-block, in
 * order) after the exact integer sums of the lanes, so dot_q4_K_ref's bits.
 * 256-bit registers are enough: a decode streams the row from DRAM, and this
 * reads it front to back as the dot above does (the tiles' 16 rows side by
 * side read 0.6x as fast). Eight super-blocks at a time: their lanes reduced
 * together and their float products computed together (one super-block at a
 * time, the reductions and scalar steps made this 0.78x the dot above from
 * DRAM). With vpdpwssd and the scale controls kept in registers, a 7B Q4_K_M
 * decode runs 4-6% faster (8.7 -> 9.2 tok/s, interleaved); in matmul-bench
 * rows of 4096 gain (120 -> 127-140 GFLOP/s, 2 threads, from DRAM) and rows
 * of 14336 lose (111 -> 90), an effect of code layout as far as measured:
 * the AVX2 sums chosen for long rows inside this same function ran slower
 * on both lengths. */
TARGET_VNNI float dot_q4_K_exact(const void *vw, const void *vx, int64_t n)
{
	const struct block_q4_K *w = vw;
	const struct block_q8_K *x = vx;
	const int64_t nb = n / QK_K;
	float sum = 0.0f, t[8] = { 0 }; /* t: the previous group's products, not yet added */
	__m256i ctl[8];
	assert(n % QK_K == 0);
	q4k_scale_ctls(ctl);
	int64_t b = 0;
	for (; b + 8 <= nb; b += 8) {
		__m256i si[8], mn[4];
		__m128i m[8];
		float xd[8], wd[8], wm[8];
		for (int i = 0; i < 8; i++) {
			si[i] = q4k_sums_vnni(&w[b + i], &x[b + i], ctl, &m[i]);
			xd[i] = x[b + i].d;
			wd[i] = f16(w[b + i].d);
			wm[i] = f16(w[b + i].dmin);
			sum += t[i]; /* the first group adds +0.0f to +0.0f: no bit moves */
		}
		for (int i = 0; i < 4; i++) /* block i in the low half, i + 4 in the high */
			mn[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(m[i]), m[i + 4], 1);
		const __m256i h01 = _mm256_hadd_epi32(mn[0], mn[1]), h23 = _mm256_hadd_epi32(mn[2], mn[3]);
		k_products8(t, xd, wd, wm, hsum8_i32(si), _mm256_hadd_epi32(h01, h23));
	}
	for (int i = 0; b >= 8 && i < 8; i++)
		sum += t[i];
	for (; b < nb; b++) {
		__m128i m4;
		const int32_t sumi = hsum_i32(q4k_sums_vnni(&w[b], &x[b], ctl, &m4));
		const int32_t summ = hsum_i32(_mm256_zextsi128_si256(m4));
		sum += (x[b].d * f16(w[b].d)) * (float)sumi - (x[b].d * f16(w[b].dmin)) * (float)summ;
	}
	return sum;
}

/* Q5_K group j: Q4_K's, plus bit 2j (2j+1) of qh[l] as the fifth bit of
 * weight l (32 + l). */
static inline TARGET __m256i q5k_group(const uint8_t *qs, __m256i hbits, const int8_t *q8, __m256i sc, int j)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
	const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
	const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one);
	const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one);
	const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), _mm256_slli_epi16(h0, 4));
	const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), _mm256_slli_epi16(h1, 4));
	const __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j)));
	const __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32)));
	return _mm256_add_epi32(_mm256_madd_epi16(words2(sc, 2 * j, 2 * j), pl),
				_mm256_madd_epi16(words2(sc, 2 * j + 1, 2 * j + 1), ph));
}

static TARGET float dot_q5_K(const void *vw, const void *vx, int64_t n)
{
	const struct block_q5_K *w = vw;
	const struct block_q8_K *x = vx;
	__m256 acc = _mm256_setzero_ps();
	__m128 acc_m = _mm_setzero_ps();
	assert(n % QK_K == 0);
	for (int64_t b = 0; b < n / QK_K; b++) {
		const __m256i sm = q4k_scales_mins(w[b].scales);
		const __m256i sc = _mm256_permute2x128_si256(sm, sm, 0x00);
		acc_m = _mm_fmadd_ps(_mm_set1_ps(-x[b].d * f16(w[b].dmin)),
				     _mm_cvtepi32_ps(k4_mins(_mm256_extracti128_si256(sm, 1), x[b].bsums)), acc_m);
		const __m256i hb = _mm256_loadu_si256((const __m256i *)w[b].qh);
		const __m256i s01 = _mm256_add_epi32(q5k_group(w[b].qs, hb, x[b].qs, sc, 0),
						     q5k_group(w[b].qs, hb, x[b].qs, sc, 1));
		const __m256i s23 = _mm256_add_epi32(q5k_group(w[b].qs, hb, x[b].qs, sc, 2),
						     q5k_group(w[b].qs, hb, x[b].qs, sc, 3));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(x[b].d * f16(w[b].d)),
				      _mm256_cvtepi32_ps(_mm256_add_epi32(s01, s23)), acc);
	}
	acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
	acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
	return simd_hsum256(acc) + _mm_cvtss_f32(acc_m);
}

/* Q6_K group g (128 weights): quants 0..63 (the -32 is taken once per
 * super-block from bsums), sub-blocks 8g..8g+7; sc holds the group's 8
 * scales as int16 in both lanes. */
static inline TARGET __m256i q6k_group(const uint8_t *ql, const uint8_t *qh, const int8_t *q8, __m256i sc)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
	const __m256i l1 = _mm256_loadu_si256((const __m256i *)ql);
	const __m256i l2 = _mm256_loadu_si256((const __m256i *)(ql + 32));
	const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
	const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
	const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l2, m4),
					   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
	const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
					   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
	const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
					   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
	const __m256i p0 = _mm256_madd_epi16(words2(sc, 0, 1),
					     _mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)q8)));
	const __m256i p1 = _mm256_madd_epi16(words2(sc, 2, 3),
					     _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(q8 + 32))));
	const __m256i p2 = _mm256_madd_epi16(words2(sc, 4, 5),
					     _mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(q8 + 64))));
	const __m256i p3 = _mm256_madd_epi16(words2(sc, 6, 7),
					     _mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(q8 + 96))));
	return _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3));
}

/* Q6_K super-block b's integer sums: the weights' (8 lanes to add) and, in
 * *off, the scales times the activations' 16-sums (8 lanes to add, then
 * times 32: the quants' offset). */
static inline TARGET __m256i q6k_sums(const struct block_q6_K *w, const struct block_q8_K *x, __m256i *off)
{
	const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales));
	*off = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)x->bsums));
	return _mm256_add_epi32(
		q6k_group(w->ql, w->qh, x->qs, _mm256_permute2x128_si256(sc16, sc16, 0x00)),
		q6k_group(w->ql + 64, w->qh + 32, x->qs + 128, _mm256_permute2x128_si256(sc16, sc16, 0x11)));
}

static TARGET float dot_q6_K(const void *vw, const void *vx, int64_t n)
{
	const struct block_q6_K *w = vw;
	const struct block_q8_K *x = vx;
	__m256 acc = _mm256_setzero_ps();
	assert(n % QK_K == 0);
	for (int64_t b = 0; b < n / QK_K; b++) {
		/* sum_s sc[s] (q - 32) . a = sum_s sc[s] q . a - 32 sum_s sc[s] bsums[s] */
		__m256i offv;
		const __m256i sumi = q6k_sums(&w[b], &x[b], &offv);
		const int32_t off = hsum_i32(offv);
		const __m256i total = _mm256_sub_epi32(sumi, _mm256_zextsi128_si256(_mm_cvtsi32_si128(32 * off)));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(x[b].d * f16(w[b].d)), _mm256_cvtepi32_ps(total), acc);
	}
	return simd_hsum256(acc);
}

/* As dot_q4_K_exact: Q6_K with dot_q6_K_ref's bits (sum += (xd * wd) * sumi
 * per super-block, in order), eight super-blocks at a time. */
TARGET float dot_q6_K_exact(const void *vw, const void *vx, int64_t n)
{
	const struct block_q6_K *w = vw;
	const struct block_q8_K *x = vx;
	const int64_t nb = n / QK_K;
	float sum = 0.0f, t[8] = { 0 }; /* as dot_q4_K_exact */
	assert(n % QK_K == 0);
	int64_t b = 0;
	for (; b + 8 <= nb; b += 8) {
		__m256i si[8], off[8];
		float xd[8], wd[8];
		for (int i = 0; i < 8; i++) {
			si[i] = q6k_sums(&w[b + i], &x[b + i], &off[i]);
			xd[i] = x[b + i].d;
			wd[i] = f16(w[b + i].d);
			sum += t[i];
		}
		const __m256i sumi = _mm256_sub_epi32(hsum8_i32(si), _mm256_slli_epi32(hsum8_i32(off), 5));
		k_products8(t, xd, wd, NULL, sumi, sumi);
	}
	for (int i = 0; b >= 8 && i < 8; i++)
		sum += t[i];
	for (; b < nb; b++) {
		__m256i off;
		const int32_t sumi = hsum_i32(q6k_sums(&w[b], &x[b], &off)) - 32 * hsum_i32(off);
		sum += (x[b].d * f16(w[b].d)) * (float)sumi;
	}
	return sum;
}

/* Q3_K's 16 scales minus 32 as int16 (ggml's aux unpacking). */
static inline TARGET __m256i q3k_scales(const uint8_t *packed)
{
	uint32_t a[3];
	memcpy(a, packed, 12);
	const uint32_t m2 = 0x0f0f0f0f, m1 = 0x03030303;
	const __m128i s = _mm_set_epi32((int)(((a[1] >> 4) & m2) | (((a[2] >> 6) & m1) << 4)),
					(int)(((a[0] >> 4) & m2) | (((a[2] >> 4) & m1) << 4)),
					(int)((a[1] & m2) | (((a[2] >> 2) & m1) << 4)),
					(int)((a[0] & m2) | (((a[2] >> 0) & m1) << 4)));
	return _mm256_cvtepi8_epi16(_mm_sub_epi8(s, _mm_set1_epi8(32)));
}

/* Q3_K, 32 weights of group g at bit pair k: q + 4 = the 2 low bits | the
 * high bit << 2, 0..7 (the -4 is taken once per super-block from bsums);
 * sc holds the group's 8 scales in both lanes. */
static inline TARGET __m256i q3k_sub(__m256i bits, __m256i hbits, const int8_t *q8, __m256i sc, int g, int k)
{
	const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), _mm256_set1_epi8(3));
	const __m256i hi = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(hbits, 4 * g + k), 2),
					    _mm256_set1_epi8(4));
	const __m256i p = _mm256_maddubs_epi16(_mm256_or_si256(lo, hi),
					       _mm256_loadu_si256((const __m256i *)(q8 + 128 * g + 32 * k)));
	return _mm256_madd_epi16(words2(sc, 2 * k, 2 * k + 1), p);
}

static inline TARGET __m256i q3k_group(const uint8_t *qs, __m256i hbits, const int8_t *q8, __m256i sc, int g)
{
	const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
	return _mm256_add_epi32(_mm256_add_epi32(q3k_sub(bits, hbits, q8, sc, g, 0), q3k_sub(bits, hbits, q8, sc, g, 1)),
				_mm256_add_epi32(q3k_sub(bits, hbits, q8, sc, g, 2), q3k_sub(bits, hbits, q8, sc, g, 3)));
}

static TARGET float dot_q3_K(const void *vw, const void *vx, int64_t n)
{
	const struct block_q3_K *w = vw;
	const struct block_q8_K *x = vx;
	__m256 acc = _mm256_setzero_ps();
	assert(n % QK_K == 0);
	for (int64_t b = 0; b < n / QK_K; b++) {
		const __m256i sc16 = q3k_scales(w[b].scales);
		const int32_t off = hsum_i32(_mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)x[b].bsums)));
		const __m256i hb = _mm256_loadu_si256((const __m256i *)w[b].hmask);
		const __m256i sumi = _mm256_add_epi32(
			q3k_group(w[b].qs, hb, x[b].qs, _mm256_permute2x128_si256(sc16, sc16, 0x00), 0),
			q3k_group(w[b].qs, hb, x[b].qs, _mm256_permute2x128_si256(sc16, sc16, 0x11), 1));
		const __m256i total = _mm256_sub_epi32(sumi, _mm256_zextsi128_si256(_mm_cvtsi32_si128(4 * off)));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(x[b].d * f16(w[b].d)), _mm256_cvtepi32_ps(total), acc);
	}
	return simd_hsum256(acc);
}

/* Q2_K, 32 weights of group g at bit pair k (sub-blocks 8g+2k, 8g+2k+1). */
static inline TARGET __m256i q2k_sub(__m256i bits, const int8_t *q8, __m256i sc, int g, int k)
{
	const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), _mm256_set1_epi8(3));
	const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)(q8 + 128 * g + 32 * k)));
	return _mm256_madd_epi16(words2(sc, 2 * k, 2 * k + 1), p);
}

static inline TARGET __m256i q2k_group(const uint8_t *qs, const int8_t *q8, __m256i sc, int g)
{
	const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
	return _mm256_add_epi32(_mm256_add_epi32(q2k_sub(bits, q8, sc, g, 0), q2k_sub(bits, q8, sc, g, 1)),
				_mm256_add_epi32(q2k_sub(bits, q8, sc, g, 2), q2k_sub(bits, q8, sc, g, 3)));
}

static TARGET float dot_q2_K(const void *vw, const void *vx, int64_t n)
{
	const struct block_q2_K *w = vw;
	const struct block_q8_K *x = vx;
	__m256 acc = _mm256_setzero_ps(), acc_m = _mm256_setzero_ps();
	assert(n % QK_K == 0);
	for (int64_t b = 0; b < n / QK_K; b++) {
		const __m128i packed = _mm_loadu_si128((const __m128i *)w[b].scales);
		const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0f)));
		const __m256i prod = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)x[b].bsums));
		acc_m = _mm256_fmadd_ps(_mm256_set1_ps(-x[b].d * f16(w[b].dmin)), _mm256_cvtepi32_ps(prod), acc_m);
		const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, _mm_set1_epi8(0x0f)));
		const __m256i sumi = _mm256_add_epi32(
			q2k_group(w[b].qs, x[b].qs, _mm256_permute2x128_si256(sc16, sc16, 0x00), 0),
			q2k_group(w[b].qs, x[b].qs, _mm256_permute2x128_si256(sc16, sc16, 0x11), 1));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(x[b].d * f16(w[b].d)), _mm256_cvtepi32_ps(sumi), acc);
	}
	return simd_hsum256(_mm256_add_ps(acc, acc_m));
}

/* IQ4_XS: two 32-weight sub-blocks a step, in two accumulators (ggml's). */
static TARGET float dot_iq4_xs(const void *vw, const void *vx, int64_t n)
{
	const struct block_iq4_xs *w = vw;
	const struct block_q8_K *x = vx;
	__m256 acc = _mm256_setzero_ps();
	assert(n % QK_K == 0);
	for (int64_t b = 0; b < n / QK_K; b++) {
		__m256i s1 = _mm256_setzero_si256(), s2 = _mm256_setzero_si256();
		uint32_t sh = w[b].scales_h;
		for (int ib = 0; ib < QK_K / 32; ib += 2, sh >>= 4) {
			const int ls1 = ((w[b].scales_l[ib / 2] & 0xf) | ((sh << 4) & 0x30)) - 32;
			const int ls2 = ((w[b].scales_l[ib / 2] >> 4) | ((sh << 2) & 0x30)) - 32;
			const __m256i v1 = iq4_values32(w[b].qs + 16 * ib), v2 = iq4_values32(w[b].qs + 16 * ib + 16);
			const __m256i a1 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * ib));
			const __m256i a2 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * ib + 32));
			/* |v| <= 127: v's sign moved onto a, pairs exact in int16 */
			const __m256i p1 = _mm256_maddubs_epi16(_mm256_sign_epi8(v1, v1), _mm256_sign_epi8(a1, v1));
			const __m256i p2 = _mm256_maddubs_epi16(_mm256_sign_epi8(v2, v2), _mm256_sign_epi8(a2, v2));
			s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, _mm256_set1_epi16((short)ls1)));
			s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(p2, _mm256_set1_epi16((short)ls2)));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(x[b].d * f16(w[b].d)), _mm256_cvtepi32_ps(_mm256_add_epi32(s1, s2)),
				      acc);
	}
	return simd_hsum256(acc);
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

/* Sixteen int8 quants to f32 with the reference's roundings: d * q (one
 * rounding), d * q - m or q * d + m (two, never fused: the library is built
 * with -ffp-contract=off). */
static inline TARGET void put16_mul(float *dst, __m128i q, __m256 d)
{
	_mm256_storeu_ps(dst, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
	_mm256_storeu_ps(dst + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)))));
}

static inline TARGET void put16_mul_sub(float *dst, __m128i q, __m256 d, __m256 m)
{
	const __m256 a = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
	const __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
	_mm256_storeu_ps(dst, _mm256_sub_ps(_mm256_mul_ps(d, a), m));
	_mm256_storeu_ps(dst + 8, _mm256_sub_ps(_mm256_mul_ps(d, b), m));
}

static inline TARGET void put16_mul_add(float *dst, __m128i q, __m256 d, __m256 m)
{
	const __m256 a = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
	const __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
	_mm256_storeu_ps(dst, _mm256_add_ps(_mm256_mul_ps(a, d), m));
	_mm256_storeu_ps(dst + 8, _mm256_add_ps(_mm256_mul_ps(b, d), m));
}

/* The scales (and minimums) of a super-block as plain numbers: the
 * dequantizers need each as a float anyway. */
static inline void q4k_unpack(const uint8_t *packed, uint8_t *sc, uint8_t *m)
{
	for (int j = 0; j < 8; j++)
		st_q4k_scale_min(j, packed, &sc[j], &m[j]);
}

static inline void q3k_unpack(const uint8_t *packed, int8_t *sc) /* minus 32 */
{
	for (int j = 0; j < 16; j++) {
		const int lo = j < 8 ? packed[j] & 0xf : packed[j - 8] >> 4;
		const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
		sc[j] = (int8_t)((lo | hi << 4) - 32);
	}
}

#define LO128(v) _mm256_castsi256_si128(v)
#define HI128(v) _mm256_extracti128_si256(v, 1)

static TARGET void dequant_q4_1(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q4_1 *src = vsrc;
	for (int64_t b = 0; b < n / QK4_1; b++, dst += QK4_1) {
		const __m256 d = _mm256_set1_ps(f16(src[b].d)), m = _mm256_set1_ps(f16(src[b].m));
		const __m256i q = nibbles32(src[b].qs);
		put16_mul_add(dst, LO128(q), d, m);
		put16_mul_add(dst + 16, HI128(q), d, m);
	}
}

static TARGET void dequant_q5_0(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q5_0 *src = vsrc;
	for (int64_t b = 0; b < n / QK5_0; b++, dst += QK5_0) {
		const __m256 d = _mm256_set1_ps(f16(src[b].d));
		const __m256i hi = _mm256_andnot_si256(bits32(src[b].qh), _mm256_set1_epi8((char)0xf0));
		const __m256i q = _mm256_or_si256(nibbles32(src[b].qs), hi);
		put16_mul(dst, LO128(q), d);
		put16_mul(dst + 16, HI128(q), d);
	}
}

static TARGET void dequant_q5_1(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q5_1 *src = vsrc;
	for (int64_t b = 0; b < n / QK5_1; b++, dst += QK5_1) {
		const __m256 d = _mm256_set1_ps(f16(src[b].d)), m = _mm256_set1_ps(f16(src[b].m));
		const __m256i hi = _mm256_and_si256(bits32(src[b].qh), _mm256_set1_epi8(0x10));
		const __m256i q = _mm256_or_si256(nibbles32(src[b].qs), hi);
		put16_mul_add(dst, LO128(q), d, m);
		put16_mul_add(dst + 16, HI128(q), d, m);
	}
}

static TARGET void dequant_iq4_nl(const void *vsrc, float *dst, int64_t n)
{
	const struct block_iq4_nl *src = vsrc;
	for (int64_t b = 0; b < n / QK4_NL; b++, dst += QK4_NL) {
		const __m256 d = _mm256_set1_ps(f16(src[b].d));
		const __m256i v = iq4_values32(src[b].qs);
		put16_mul(dst, LO128(v), d);
		put16_mul(dst + 16, HI128(v), d);
	}
}

static TARGET void dequant_q2_K(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q2_K *src = vsrc;
	const __m256i m3 = _mm256_set1_epi8(3);
	for (int64_t b = 0; b < n / QK_K; b++) {
		const float d = f16(src[b].d), min = f16(src[b].dmin);
		const uint8_t *s = src[b].scales;
		for (int g = 0; g < QK_K / 128; g++) {
			const __m256i bits = _mm256_loadu_si256((const __m256i *)(src[b].qs + 32 * g));
			for (int k = 0; k < 4; k++, dst += 32, s += 2) {
				const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
				put16_mul_sub(dst, LO128(q), _mm256_set1_ps(d * (float)(s[0] & 0xf)),
					      _mm256_set1_ps(min * (float)(s[0] >> 4)));
				put16_mul_sub(dst + 16, HI128(q), _mm256_set1_ps(d * (float)(s[1] & 0xf)),
					      _mm256_set1_ps(min * (float)(s[1] >> 4)));
			}
		}
	}
}

static TARGET void dequant_q3_K(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q3_K *src = vsrc;
	const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
	for (int64_t b = 0; b < n / QK_K; b++) {
		const float d = f16(src[b].d);
		int8_t sc[16];
		q3k_unpack(src[b].scales, sc);
		const __m256i hbits = _mm256_loadu_si256((const __m256i *)src[b].hmask);
		for (int g = 0; g < QK_K / 128; g++) {
			const __m256i bits = _mm256_loadu_si256((const __m256i *)(src[b].qs + 32 * g));
			for (int k = 0; k < 4; k++, dst += 32) {
				const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
				const __m256i h = _mm256_and_si256(_mm256_srli_epi16(hbits, 4 * g + k), one);
				const __m256i q = _mm256_sub_epi8(lo, _mm256_andnot_si256(_mm256_slli_epi16(h, 2), four));
				const int s = 8 * g + 2 * k;
				put16_mul(dst, LO128(q), _mm256_set1_ps(d * (float)sc[s]));
				put16_mul(dst + 16, HI128(q), _mm256_set1_ps(d * (float)sc[s + 1]));
			}
		}
	}
}

static TARGET void dequant_q4_K(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q4_K *src = vsrc;
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	for (int64_t b = 0; b < n / QK_K; b++) {
		const float d = f16(src[b].d), min = f16(src[b].dmin);
		uint8_t sc[8], m[8];
		q4k_unpack(src[b].scales, sc, m);
		for (int j = 0; j < QK_K / 64; j++, dst += 64) {
			const __m256i bits = _mm256_loadu_si256((const __m256i *)(src[b].qs + 32 * j));
			const __m256i lo = _mm256_and_si256(bits, m4);
			const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
			const __m256 d1 = _mm256_set1_ps(d * (float)sc[2 * j]), m1 = _mm256_set1_ps(min * (float)m[2 * j]);
			const __m256 d2 = _mm256_set1_ps(d * (float)sc[2 * j + 1]);
			const __m256 m2 = _mm256_set1_ps(min * (float)m[2 * j + 1]);
			put16_mul_sub(dst, LO128(lo), d1, m1);
			put16_mul_sub(dst + 16, HI128(lo), d1, m1);
			put16_mul_sub(dst + 32, LO128(hi), d2, m2);
			put16_mul_sub(dst + 48, HI128(hi), d2, m2);
		}
	}
}

static TARGET void dequant_q5_K(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q5_K *src = vsrc;
	const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
	for (int64_t b = 0; b < n / QK_K; b++) {
		const float d = f16(src[b].d), min = f16(src[b].dmin);
		uint8_t sc[8], m[8];
		q4k_unpack(src[b].scales, sc, m);
		const __m256i hbits = _mm256_loadu_si256((const __m256i *)src[b].qh);
		for (int j = 0; j < QK_K / 64; j++, dst += 64) {
			const __m256i bits = _mm256_loadu_si256((const __m256i *)(src[b].qs + 32 * j));
			const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one);
			const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one);
			const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), _mm256_slli_epi16(h0, 4));
			const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
							   _mm256_slli_epi16(h1, 4));
			const __m256 d1 = _mm256_set1_ps(d * (float)sc[2 * j]), m1 = _mm256_set1_ps(min * (float)m[2 * j]);
			const __m256 d2 = _mm256_set1_ps(d * (float)sc[2 * j + 1]);
			const __m256 m2 = _mm256_set1_ps(min * (float)m[2 * j + 1]);
			put16_mul_sub(dst, LO128(lo), d1, m1);
			put16_mul_sub(dst + 16, HI128(lo), d1, m1);
			put16_mul_sub(dst + 32, LO128(hi), d2, m2);
			put16_mul_sub(dst + 48, HI128(hi), d2, m2);
		}
	}
}

static TARGET void dequant_q6_K(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q6_K *src = vsrc;
	const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3), m32 = _mm256_set1_epi8(32);
	for (int64_t b = 0; b < n / QK_K; b++) {
		const float d = f16(src[b].d);
		const uint8_t *ql = src[b].ql, *qh = src[b].qh;
		const int8_t *sc = src[b].scales;
		for (int g = 0; g < QK_K / 128; g++, ql += 64, qh += 32, sc += 8) {
			const __m256i l1 = _mm256_loadu_si256((const __m256i *)ql);
			const __m256i l2 = _mm256_loadu_si256((const __m256i *)(ql + 32));
			const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
			const __m256i q[4] = {
				_mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4)),
				_mm256_or_si256(_mm256_and_si256(l2, m4),
						_mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4)),
				_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
						_mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4)),
				_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
						_mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4)),
			};
			for (int k = 0; k < 4; k++, dst += 32) {
				const __m256i v = _mm256_sub_epi8(q[k], m32);
				/* the reference's (d * sc) * q */
				put16_mul(dst, LO128(v), _mm256_set1_ps(d * (float)sc[2 * k]));
				put16_mul(dst + 16, HI128(v), _mm256_set1_ps(d * (float)sc[2 * k + 1]));
			}
		}
	}
}

static TARGET void dequant_iq4_xs(const void *vsrc, float *dst, int64_t n)
{
	const struct block_iq4_xs *src = vsrc;
	for (int64_t b = 0; b < n / QK_K; b++) {
		const float d = f16(src[b].d);
		for (int ib = 0; ib < QK_K / 32; ib++, dst += 32) {
			const int ls = ((src[b].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) |
				       (((src[b].scales_h >> 2 * ib) & 3) << 4);
			const __m256 dl = _mm256_set1_ps(d * (float)(ls - 32));
			const __m256i v = iq4_values32(src[b].qs + 16 * ib);
			put16_mul(dst, LO128(v), dl);
			put16_mul(dst + 16, HI128(v), dl);
		}
	}
}

/* The largest |x[j]| of x[0..n-1] (n a multiple of 8), and in *nonfinite
 * whether any x[j] is NaN or infinite: the scan both activation quantizers
 * start a block with. */
static inline TARGET float abs_max(const float *x, int n, int *nonfinite)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
	for (int k = 0; k < n / 8; k++) {
		const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k));
		/* NaN or infinity: unordered, or above the largest float */
		bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, _mm256_set1_ps(FLT_MAX), _CMP_NLE_UQ));
		amax = _mm256_max_ps(amax, a);
	}
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_movehdup_ps(m));
	*nonfinite = _mm256_movemask_ps(bad) != 0;
	return _mm_cvtss_f32(m);
}

/* 32 int32 (q[0..3], each in -128..127) as 32 int8 in order: the packs work
 * per 128-bit lane, the permute puts the 4-byte groups back in order. */
static inline TARGET __m256i pack_i8(const __m256i q[4])
{
	const __m256i q8 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
	return _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* ---- Q8_0 activations, bit-identical to quant_act_q8_0_block_ref:
 * q = round-to-nearest-even(x * (127/amax)), d = amax/127 in f16 ---- */

static TARGET void act_q8_0(const float *x, void *vdst, int64_t n)
{
	struct block_q8_0 *y = vdst;
	for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
		int bad;
		const float am = abs_max(x, QK8_0, &bad);
		const float id = am != 0.0f ? 127.0f / am : 0.0f;
		/* the rare blocks with special rules go to the reference */
		if (bad || id > FLT_MAX) {
			quant_act_q8_0_block_ref(x, &y[b], NULL);
			continue;
		}
		y[b].d = st_f32_to_fp16(am / 127.0f);
		const __m256 vid = _mm256_set1_ps(id);
		__m256i q[4];
		for (int k = 0; k < 4; k++)
			q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid),
								  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
		_mm256_storeu_si256((__m256i *)y[b].qs, pack_i8(q));
	}
}

/* ---- Q8_K activations (the K-quant dots'), bit-identical to
 * kquant_q8_K_block_ref: max = the first value of largest magnitude,
 * q = min(127, round-to-nearest-even(x * (-127 / max))), d = 1 / (-127 / max),
 * bsums the sums of 16. A decode quantizes each activation row on one thread
 * while the others wait, so its speed is the pool's idle time too (the
 * scalar reference was 0.9% of a 7B Q4_K_M decode's profile, this 0.2%). ---- */

static TARGET void act_q8_K(const float *x, void *vdst, int64_t n)
{
	struct block_q8_K *y = vdst;
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
		int bad;
		const float am = abs_max(x, QK_K, &bad);
		/* the rare blocks with special rules (non-finite, all zero) go to the reference */
		if (bad || am == 0.0f) {
			kquant_q8_K_block_ref(x, &y[b]);
			continue;
		}
		/* the sign of the first value of that magnitude, as the reference's
		 * strict `>` scan keeps it */
		const __m256 vam = _mm256_set1_ps(am);
		float max = am;
		for (int k = 0; k < QK_K / 8; k++) {
			const __m256 v = _mm256_loadu_ps(x + 8 * k);
			const int eq = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), vam, _CMP_EQ_OQ));
			if (eq) {
				max = x[8 * k + __builtin_ctz((unsigned)eq)];
				break;
			}
		}
		const float iscale = -127.0f / max;
		const __m256 vis = _mm256_set1_ps(iscale);
		const __m256i q127 = _mm256_set1_epi32(127);
		__m256i g[16]; /* g[j]: lanes summing to bsums[j] */
		for (int c = 0; c < QK_K / 32; c++) { /* 32 quants at a time */
			__m256i q[4];
			for (int k = 0; k < 4; k++)
				q[k] = _mm256_min_epi32(q127, _mm256_cvtps_epi32(_mm256_round_ps(
					_mm256_mul_ps(_mm256_loadu_ps(x + 32 * c + 8 * k), vis),
					_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
			g[2 * c] = _mm256_add_epi32(q[0], q[1]);
			g[2 * c + 1] = _mm256_add_epi32(q[2], q[3]);
			_mm256_storeu_si256((__m256i *)(y[b].qs + 32 * c), pack_i8(q));
		}
		/* 16 sums of 16 (|sum| <= 2032) as int16, in order */
		const __m256i s16 = _mm256_packs_epi32(hsum8_i32(g), hsum8_i32(g + 8));
		_mm256_storeu_si256((__m256i *)y[b].bsums, _mm256_permute4x64_epi64(s16, _MM_SHUFFLE(3, 1, 2, 0)));
		y[b].d = 1 / iscale;
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
		[ST_Q4_1] = dot_q4_1,
		[ST_Q5_0] = dot_q5_0,
		[ST_Q5_1] = dot_q5_1,
		[ST_IQ4_NL] = dot_iq4_nl,
		[ST_Q2_K] = dot_q2_K,
		[ST_Q3_K] = dot_q3_K,
		[ST_Q4_K] = dot_q4_K,
		[ST_Q5_K] = dot_q5_K,
		[ST_Q6_K] = dot_q6_K,
		[ST_IQ4_XS] = dot_iq4_xs,
	},
	.dequant = {
		[ST_F16] = dequant_f16,
		[ST_BF16] = dequant_bf16,
		[ST_Q8_0] = dequant_q8_0,
		[ST_Q4_0] = dequant_q4_0,
		[ST_Q4_1] = dequant_q4_1,
		[ST_Q5_0] = dequant_q5_0,
		[ST_Q5_1] = dequant_q5_1,
		[ST_IQ4_NL] = dequant_iq4_nl,
		[ST_Q2_K] = dequant_q2_K,
		[ST_Q3_K] = dequant_q3_K,
		[ST_Q4_K] = dequant_q4_K,
		[ST_Q5_K] = dequant_q5_K,
		[ST_Q6_K] = dequant_q6_K,
		[ST_IQ4_XS] = dequant_iq4_xs,
	},
	.act_q8_0 = act_q8_0,
	.act_q8_K = act_q8_K,
	.qgemm = {
		[ST_Q8_0] = qgemm_q8_0_avx2,
		[ST_Q4_0] = qgemm_q4_0_avx2,
	},
	.qgemm_rows = 8,
	.qgemm_nt = 4,
};

#endif /* __x86_64__ */
