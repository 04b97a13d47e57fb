/* dot_avx512.c: the AVX-512 kernels, in two sets: F/BW/VL (Skylake-X and
 * later) and the same plus VNNI for the integer dots. What neither set has
 * comes from the AVX2 set (kernel_set.lower): so far the K-quants, IQ4_XS
 * and the other legacy types. 512-bit versions of the Q4_K, Q5_K, Q6_K and
 * IQ4_XS dots (maddubs + madd, or VNNI's dpwssd) were written and measured
 * on this project's AMD EPYC (family 26), in cache: 0.9-1.0x the AVX2
 * kernels for Q6_K and 0.6-0.85x for the others, the shuffles that put 64
 * weights in one register's element order costing more than the wider
 * registers save. They were dropped; another core, or another layout of
 * the work, may change that. Built without global
 * -m flags: each function names its target and dot.c calls it only on a CPU
 * that has it. Not here: the definitions (references in dot.c, quant.c).
 *
 * AVX512_BF16 is not used: its dot (vdpbf16ps) wants both sides in bf16,
 * and our activations are f32 by contract; widening bf16 weights is two
 * cheap integer ops and the kernel is bound by memory, not arithmetic
 * (bench/kernels-bench.c measures it). */
#include "kernels/isa.h"
#include "kernels/qgemm_impl.h"
#include "kernels/quant_ref.h"
#include "kernels/simd_x86.h"

#if defined(__x86_64__)

#include <assert.h>
#include <float.h>
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

static inline TARGET float f16(uint16_t h)
{
	return _cvtsh_ss(h);
}

/* 16 bf16 -> 16 f32: a bf16 is the top half of the f32 with the same bits. */
static inline TARGET __m512 load_bf16(const uint16_t *p)
{
	const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
	return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

static inline TARGET __m512 load_f16(const uint16_t *p)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* ---- float weights, f32 activations: 64 per step in 4 accumulators (FMA
 * latency), then one 32 step; n is a multiple of 32 by contract ---- */

#define FLOAT_DOT(name, LOADW)                                                           \
	static TARGET float name(const void *vw, const void *vx, int64_t n)              \
	{                                                                                \
		const float *x = vx;                                                     \
		__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;              \
		int64_t i = 0;                                                           \
		assert(n % 32 == 0);                                                     \
		for (; i + 64 <= n; i += 64) {                                           \
			a0 = _mm512_fmadd_ps(LOADW(vw, i), _mm512_loadu_ps(x + i), a0);  \
			a1 = _mm512_fmadd_ps(LOADW(vw, i + 16), _mm512_loadu_ps(x + i + 16), a1); \
			a2 = _mm512_fmadd_ps(LOADW(vw, i + 32), _mm512_loadu_ps(x + i + 32), a2); \
			a3 = _mm512_fmadd_ps(LOADW(vw, i + 48), _mm512_loadu_ps(x + i + 48), a3); \
		}                                                                        \
		if (i < n) {                                                             \
			a0 = _mm512_fmadd_ps(LOADW(vw, i), _mm512_loadu_ps(x + i), a0);  \
			a1 = _mm512_fmadd_ps(LOADW(vw, i + 16), _mm512_loadu_ps(x + i + 16), a1); \
		}                                                                        \
		return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1),        \
							  _mm512_add_ps(a2, a3)));      \
	}

#define LOAD_F32(p, i) _mm512_loadu_ps((const float *)(p) + (i))
#define LOAD_F16(p, i) load_f16((const uint16_t *)(p) + (i))
#define LOAD_BF16(p, i) load_bf16((const uint16_t *)(p) + (i))

FLOAT_DOT(dot_f32, LOAD_F32)
FLOAT_DOT(dot_f16, LOAD_F16)
FLOAT_DOT(dot_bf16, LOAD_BF16)

/* ---- quantized weights, Q8_0 activations ----
 * Two blocks share a 512-bit register (block b in lanes 0-7, b+1 in 8-15);
 * each lane's integer sum is exact, turned to float and multiply-added by
 * its block's d_w*d_x (ggml's per-block float scaling). An odd last block
 * takes the 256-bit path. Q8_0 quants are in [-127, 127], as every ggml
 * quantizer writes (the sign trick below needs it). */

/* Two 32-byte rows (a in the low half, b in the high) as one register. */
static inline TARGET __m512i load2x32(const int8_t *a, const int8_t *b)
{
	const __m256i lo = _mm256_loadu_si256((const __m256i *)a);
	return _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)b), 1);
}

/* The Q4_0 nibbles of two blocks as unsigned bytes 0..15, element order:
 * lanes of 16 bytes = [a low, a high, b low, b high]. */
static inline TARGET __m512i nibbles2(const uint8_t *a, const uint8_t *b)
{
	const __m256i aa = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)a));
	const __m256i bb = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b));
	const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(aa), bb, 1);
	const __m512i shift = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
	return _mm512_and_si512(_mm512_srlv_epi64(v, shift), _mm512_set1_epi8(0x0f));
}

static inline TARGET __m256i nibbles1(const uint8_t *a)
{
	const __m128i b = _mm_loadu_si128((const __m128i *)a);
	const __m256i both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
	return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

/* The scale of blocks b (lanes 0-7) and b+1 (lanes 8-15). */
static inline TARGET __m512 scale2(float s0, float s1)
{
	return _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(s0), _mm512_set1_ps(s1));
}

/* Integer sums of products of 4-byte groups, exact, one per int32 lane:
 * sdot for signed w * signed x (Q8_0), q4dot for (u - 8) * signed x with
 * u the unsigned nibble 0..15 (Q4_0). The BW versions go through int16
 * pairs (maddubs, which wants one operand unsigned: for sdot, |w| with w's
 * sign moved onto x); VNNI's dpbusd does a 4-byte group in one op. */
static inline TARGET __m512i sdot512_bw(__m512i w, __m512i x)
{
	const __m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
	const __m512i p16 = _mm512_maddubs_epi16(_mm512_abs_epi8(w), sx);
	return _mm512_madd_epi16(p16, _mm512_set1_epi16(1));
}

static inline TARGET_VNNI __m512i sdot512_vnni(__m512i w, __m512i x)
{
	const __m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
	return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sx);
}

/* sum (u - 8) * x = sum u*x - sum 8*x: no sign juggling for Q4_0. */
static inline TARGET __m512i q4dot512_bw(__m512i u, __m512i x)
{
	const __m512i p16 = _mm512_sub_epi16(_mm512_maddubs_epi16(u, x),
					     _mm512_maddubs_epi16(_mm512_set1_epi8(8), x));
	return _mm512_madd_epi16(p16, _mm512_set1_epi16(1));
}

static inline TARGET_VNNI __m512i q4dot512_vnni(__m512i u, __m512i x)
{
	const __m512i z = _mm512_setzero_si512();
	return _mm512_sub_epi32(_mm512_dpbusd_epi32(z, u, x), _mm512_dpbusd_epi32(z, _mm512_set1_epi8(8), x));
}

static inline TARGET __m256i sdot256_bw(__m256i w, __m256i x)
{
	const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
	return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

static inline TARGET_VNNI __m256i sdot256_vnni(__m256i w, __m256i x)
{
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

static inline TARGET __m256i q4dot256_bw(__m256i u, __m256i x)
{
	const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(u, x),
					     _mm256_maddubs_epi16(_mm256_set1_epi8(8), x));
	return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

static inline TARGET_VNNI __m256i q4dot256_vnni(__m256i u, __m256i x)
{
	const __m256i z = _mm256_setzero_si256();
	return _mm256_sub_epi32(_mm256_dpbusd_epi32(z, u, x), _mm256_dpbusd_epi32(z, _mm256_set1_epi8(8), x));
}

/* The f16 scales of 8 consecutive blocks as 8 words, picked out of the
 * block bytes with word permutes: far fewer instructions than 8 scalar
 * loads and inserts (the per-block scale was a third of the kernel's time).
 * Q4_0: the scales sit at words 0, 9, ..., 63, all in the first 128 bytes.
 * Q8_0: at words 0, 17, 34, 51 of the first 128 bytes and again of the
 * 128 bytes from block 4 on. Loads stay inside the 8 blocks. */
static inline TARGET __m128i d8_q4_0(const struct block_q4_0 *w)
{
	const uint8_t *p = (const uint8_t *)w;
	const __m512i idx = _mm512_zextsi128_si512(_mm_setr_epi16(0, 9, 18, 27, 36, 45, 54, 63));
	const __m512i d = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx, _mm512_loadu_si512(p + 64));
	return _mm512_castsi512_si128(d);
}

static inline TARGET __m128i d8_q8_0(const struct block_q8_0 *x)
{
	const uint8_t *p = (const uint8_t *)x, *q = (const uint8_t *)(x + 4);
	const __m512i idx = _mm512_zextsi128_si512(_mm_setr_epi16(0, 17, 34, 51, 0, 17, 34, 51));
	const __m512i d0 = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx, _mm512_loadu_si512(p + 64));
	const __m512i d1 = _mm512_permutex2var_epi16(_mm512_loadu_si512(q), idx, _mm512_loadu_si512(q + 64));
	return _mm_blend_epi16(_mm512_castsi512_si128(d0), _mm512_castsi512_si128(d1), 0xf0);
}

static inline TARGET __m512 scales8_q8_0(const struct block_q8_0 *w, const struct block_q8_0 *x)
{
	const __m256 s = _mm256_mul_ps(_mm256_cvtph_ps(d8_q8_0(w)), _mm256_cvtph_ps(d8_q8_0(x)));
	return _mm512_castps256_ps512(s);
}

static inline TARGET __m512 scales8_q4_0(const struct block_q4_0 *w, const struct block_q8_0 *x)
{
	const __m256 s = _mm256_mul_ps(_mm256_cvtph_ps(d8_q4_0(w)), _mm256_cvtph_ps(d8_q8_0(x)));
	return _mm512_castps256_ps512(s);
}

/* Lanes 0-7 = scale k, lanes 8-15 = scale k+1, from 8 scales. */
static inline TARGET __m512 pick2(__m512 s8, int k)
{
	const __m512i idx = _mm512_set_epi32(k + 1, k + 1, k + 1, k + 1, k + 1, k + 1, k + 1, k + 1,
					     k, k, k, k, k, k, k, k);
	return _mm512_permutexvar_ps(idx, s8);
}

/* One generic kernel for both weight types and both integer-dot flavours:
 * a macro rather than an inline function because the VNNI instructions
 * may only appear in functions compiled for VNNI. 8 blocks a step (their
 * scales converted together) in 2 accumulators, then pairs, then one. */
#define QDOT(name, TGT, WBLOCK, SCALES8, WLOAD2, WLOAD1, DOT512, DOT256)                \
	static TGT float name(const void *vw, const void *vx, int64_t n)                         \
	{                                                                                        \
		const WBLOCK *w = vw;                                                            \
		const struct block_q8_0 *x = vx;                                                 \
		const int64_t nb = n / 32;                                                       \
		__m512 a0 = _mm512_setzero_ps(), a1 = a0;                                        \
		int64_t b = 0;                                                                   \
		assert(n % 32 == 0);                                                             \
		for (; b + 8 <= nb; b += 8) {                                                    \
			const __m512 s = SCALES8(w + b, x + b);                                  \
			for (int k = 0; k < 8; k += 4) {                                         \
				const __m512i i0 = DOT512(WLOAD2(w[b + k].qs, w[b + k + 1].qs),  \
							  load2x32(x[b + k].qs, x[b + k + 1].qs)); \
				const __m512i i1 = DOT512(WLOAD2(w[b + k + 2].qs, w[b + k + 3].qs), \
							  load2x32(x[b + k + 2].qs, x[b + k + 3].qs)); \
				a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0), pick2(s, k), a0);   \
				a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1), pick2(s, k + 2), a1); \
			}                                                                        \
		}                                                                                \
		for (; b + 2 <= nb; b += 2) {                                                    \
			const __m512i i0 = DOT512(WLOAD2(w[b].qs, w[b + 1].qs),                  \
						  load2x32(x[b].qs, x[b + 1].qs));                 \
			a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0),                             \
					     scale2(f16(w[b].d) * f16(x[b].d),                    \
						    f16(w[b + 1].d) * f16(x[b + 1].d)), a0);        \
		}                                                                                \
		float sum = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                         \
		if (b < nb) {                                                                    \
			const __m256i i0 = DOT256(WLOAD1(w[b].qs),                               \
						  _mm256_loadu_si256((const __m256i *)x[b].qs));   \
			sum += simd_hsum256(_mm256_mul_ps(_mm256_cvtepi32_ps(i0),                     \
						     _mm256_set1_ps(f16(w[b].d) * f16(x[b].d))));  \
		}                                                                                \
		return sum;                                                                      \
	}

#define LOAD_Q8_2(a, b) load2x32(a, b)
#define LOAD_Q8_1(a) _mm256_loadu_si256((const __m256i *)(a))

QDOT(dot_q8_0_bw, TARGET, struct block_q8_0, scales8_q8_0, LOAD_Q8_2, LOAD_Q8_1, sdot512_bw, sdot256_bw)
QDOT(dot_q8_0_vnni, TARGET_VNNI, struct block_q8_0, scales8_q8_0, LOAD_Q8_2, LOAD_Q8_1, sdot512_vnni, sdot256_vnni)
QDOT(dot_q4_0_bw, TARGET, struct block_q4_0, scales8_q4_0, nibbles2, nibbles1, q4dot512_bw, q4dot256_bw)
QDOT(dot_q4_0_vnni, TARGET_VNNI, struct block_q4_0, scales8_q4_0, nibbles2, nibbles1, q4dot512_vnni, q4dot256_vnni)

/* ---- dequantization: the same single rounding (q * d) as the reference,
 * so the output is bit-identical ---- */

static TARGET void dequant_f16(const void *vsrc, float *dst, int64_t n)
{
	const uint16_t *src = vsrc;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(dst + i, load_f16(src + i));
	for (; i < n; i++)
		dst[i] = st_fp16_to_f32(src[i]);
}

static TARGET void dequant_bf16(const void *vsrc, float *dst, int64_t n)
{
	const uint16_t *src = vsrc;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(dst + i, load_bf16(src + i));
	for (; i < n; i++)
		dst[i] = st_bf16_to_f32(src[i]);
}

static TARGET void dequant_q8_0(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q8_0 *src = vsrc;
	for (int64_t b = 0; b < n / QK8_0; b++) {
		const __m512 d = _mm512_set1_ps(f16(src[b].d));
		const __m128i q0 = _mm_loadu_si128((const __m128i *)src[b].qs);
		const __m128i q1 = _mm_loadu_si128((const __m128i *)(src[b].qs + 16));
		float *o = dst + b * QK8_0;
		_mm512_storeu_ps(o, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d));
		_mm512_storeu_ps(o + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d));
	}
}

static TARGET void dequant_q4_0(const void *vsrc, float *dst, int64_t n)
{
	const struct block_q4_0 *src = vsrc;
	const __m128i mask = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
	for (int64_t b = 0; b < n / QK4_0; b++) {
		const __m512 d = _mm512_set1_ps(f16(src[b].d));
		const __m128i q = _mm_loadu_si128((const __m128i *)src[b].qs);
		const __m128i lo = _mm_sub_epi8(_mm_and_si128(q, mask), eight);
		const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), mask), eight);
		float *o = dst + b * QK4_0;
		_mm512_storeu_ps(o, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), d));
		_mm512_storeu_ps(o + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), d));
	}
}

/* ---- Q8_0 activations, bit-identical to quant_act_q8_0_block_ref:
 * q = round-to-nearest-even(x * (127/amax)), d = amax/127 in f16 ---- */

static TARGET void act_q8_0(const float *x, void *vdst, int64_t n)
{
	struct block_q8_0 *y = vdst;
	const __m512 fmax = _mm512_set1_ps(FLT_MAX);
	for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
		const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
		const __m512 a0 = _mm512_abs_ps(v0), a1 = _mm512_abs_ps(v1);
		/* NaN or infinity: unordered, or above the largest float */
		const __mmask16 bad = _mm512_cmp_ps_mask(a0, fmax, _CMP_NLE_UQ) |
				      _mm512_cmp_ps_mask(a1, fmax, _CMP_NLE_UQ);
		const float am = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
		const float id = am != 0.0f ? 127.0f / am : 0.0f;
		/* the rare blocks with special rules go to the reference */
		if (bad != 0 || id > FLT_MAX) {
			quant_act_q8_0_block_ref(x, &y[b], NULL);
			continue;
		}
		y[b].d = st_f32_to_fp16(am / 127.0f);
		const __m512 vid = _mm512_set1_ps(id);
		const __m512i q0 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v0, vid),
									   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
		const __m512i q1 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v1, vid),
									   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
		/* |q| <= 127, so narrowing by truncation is exact */
		_mm_storeu_si128((__m128i *)y[b].qs, _mm512_cvtepi32_epi8(q0));
		_mm_storeu_si128((__m128i *)(y[b].qs + 16), _mm512_cvtepi32_epi8(q1));
	}
}

#define COMMON_ENTRIES                           \
	.dequant = {                             \
		[ST_F16] = dequant_f16,          \
		[ST_BF16] = dequant_bf16,        \
		[ST_Q8_0] = dequant_q8_0,        \
		[ST_Q4_0] = dequant_q4_0,        \
	},                                       \
	.act_q8_0 = act_q8_0

const struct kernel_set kernels_avx512 = {
	.name = "avx512",
	.lower = &kernels_avx2,
	.dot = {
		[ST_F32] = dot_f32,
		[ST_F16] = dot_f16,
		[ST_BF16] = dot_bf16,
		[ST_Q8_0] = dot_q8_0_bw,
		[ST_Q4_0] = dot_q4_0_bw,
	},
	COMMON_ENTRIES,
	.qgemm = {
		[ST_Q8_0] = qgemm_q8_0_avx512,
		[ST_Q4_0] = qgemm_q4_0_avx512,
	},
	.qgemm_rows = 16,
	.qgemm_nt = QGEMM_NT,
};

const struct kernel_set kernels_avx512vnni = {
	.name = "avx512vnni",
	.lower = &kernels_avx512,
	.dot = {
		[ST_F32] = dot_f32,
		[ST_F16] = dot_f16,
		[ST_BF16] = dot_bf16,
		[ST_Q8_0] = dot_q8_0_vnni,
		[ST_Q4_0] = dot_q4_0_vnni,
	},
	COMMON_ENTRIES,
	.qgemm = {
		[ST_Q8_0] = qgemm_q8_0_vnni,
		[ST_Q4_0] = qgemm_q4_0_vnni,
		[ST_Q4_K] = qgemm_q4_K_vnni,
		[ST_Q6_K] = qgemm_q6_K_vnni,
	},
	.qgemm_rows = 16,
	.qgemm_nt = QGEMM_NT,
	.qgemm_row_types = 1ull << ST_Q8_0 | 1ull << ST_Q4_0 | 1ull << ST_Q4_K | 1ull << ST_Q6_K,
};

#endif /* __x86_64__ */
