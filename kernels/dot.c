/* dot.c: the scalar reference dot products (the definition each SIMD kernel
 * is tested against), activation preparation, and the lookup of the kernel
 * for the instruction set in use (isa.h). The SIMD kernels live in
 * dot_avx2.c and dot_avx512.c; nothing here knows about matrices or threads. */
#include "kernels/dot.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/quant.h"

/* ---- references: plain loops, read them as the definition ---- */

/* The float types sum in double (as ggml's generic code does): the reference
 * should be closer to the true value than any kernel it judges. */
static float dot_f32_ref(const void *vw, const void *vx, int64_t n)
{
	const float *w = vw, *x = vx;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)w[i] * x[i];
	return (float)sum;
}

static float dot_f16_ref(const void *vw, const void *vx, int64_t n)
{
	const uint16_t *w = vw;
	const float *x = vx;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)st_fp16_to_f32(w[i]) * x[i];
	return (float)sum;
}

static float dot_bf16_ref(const void *vw, const void *vx, int64_t n)
{
	const uint16_t *w = vw;
	const float *x = vx;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)st_bf16_to_f32(w[i]) * x[i];
	return (float)sum;
}

/* Q8_0 and Q4_0: an exact integer sum per block, then one float step per
 * block, (float)sumi * (d_w * d_x), as ggml's generic code; but where ggml
 * adds every block's term to one sum, block b's goes to partial sum b mod
 * DOT_PARTIALS, in block order, and the partials are added in a fixed
 * pairwise tree (dot_partials_sum). One sum would be a chain of n/32
 * dependent additions per pair: a kernel that reads a weight row front to
 * back (decode, from DRAM) would wait on it; sixteen partials are one vector
 * add per 16 blocks there, and still one accumulator per pair in the
 * multi-row kernels (qgemm.h), which must give these bits exactly. */
#define DOT_PARTIALS 16

/* ((p0 + p1) + (p2 + p3)) + ... : pairs, then pairs of pairs. */
static float dot_partials_sum(const float p[DOT_PARTIALS])
{
	float q[DOT_PARTIALS];
	memcpy(q, p, sizeof q);
	for (int w = DOT_PARTIALS / 2; w >= 1; w /= 2)
		for (int i = 0; i < w; i++)
			q[i] = q[2 * i] + q[2 * i + 1];
	return q[0];
}

static float dot_q8_0_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q8_0 *w = vw, *x = vx;
	float part[DOT_PARTIALS] = { 0 };
	assert(n % QK8_0 == 0);
	for (int64_t b = 0; b < n / QK8_0; b++) {
		int32_t sumi = 0;
		for (int j = 0; j < QK8_0; j++)
			sumi += w[b].qs[j] * x[b].qs[j];
		part[b % DOT_PARTIALS] += (float)sumi * (st_fp16_to_f32(w[b].d) * st_fp16_to_f32(x[b].d));
	}
	return dot_partials_sum(part);
}

static float dot_q4_0_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q4_0 *w = vw;
	const struct block_q8_0 *x = vx;
	float part[DOT_PARTIALS] = { 0 };
	assert(n % QK4_0 == 0);
	for (int64_t b = 0; b < n / QK4_0; b++) {
		int32_t sumi = 0;
		for (int j = 0; j < QK4_0 / 2; j++) {
			sumi += ((w[b].qs[j] & 0x0f) - 8) * x[b].qs[j];
			sumi += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + QK4_0 / 2];
		}
		part[b % DOT_PARTIALS] += (float)sumi * (st_fp16_to_f32(w[b].d) * st_fp16_to_f32(x[b].d));
	}
	return dot_partials_sum(part);
}

/* Q4_1 x Q8_1: the minimum rides on the activations' s = d_x * sum q_x. */
static float dot_q4_1_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q4_1 *w = vw;
	const struct block_q8_1 *x = vx;
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK4_1; b++) {
		int32_t sumi = 0;
		for (int j = 0; j < QK4_1 / 2; j++) {
			sumi += (w[b].qs[j] & 0x0f) * x[b].qs[j];
			sumi += (w[b].qs[j] >> 4) * x[b].qs[j + QK4_1 / 2];
		}
		sum += (st_fp16_to_f32(w[b].d) * st_fp16_to_f32(x[b].d)) * (float)sumi +
		       st_fp16_to_f32(w[b].m) * st_fp16_to_f32(x[b].s);
	}
	return sum;
}

static uint32_t q5_bits(const uint8_t qh[4])
{
	return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static float dot_q5_0_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q5_0 *w = vw;
	const struct block_q8_0 *x = vx;
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK5_0; b++) {
		const uint32_t qh = q5_bits(w[b].qh);
		int32_t sumi = 0;
		for (int j = 0; j < QK5_0 / 2; j++) {
			const int q0 = ((w[b].qs[j] & 0x0f) | ((qh >> j) & 1) << 4) - 16;
			const int q1 = ((w[b].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16;
			sumi += q0 * x[b].qs[j] + q1 * x[b].qs[j + QK5_0 / 2];
		}
		sum += (float)sumi * (st_fp16_to_f32(w[b].d) * st_fp16_to_f32(x[b].d));
	}
	return sum;
}

static float dot_q5_1_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q5_1 *w = vw;
	const struct block_q8_1 *x = vx;
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK5_1; b++) {
		const uint32_t qh = q5_bits(w[b].qh);
		int32_t sumi = 0;
		for (int j = 0; j < QK5_1 / 2; j++) {
			const int q0 = (w[b].qs[j] & 0x0f) | ((qh >> j) & 1) << 4;
			const int q1 = (w[b].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
			sumi += q0 * x[b].qs[j] + q1 * x[b].qs[j + QK5_1 / 2];
		}
		sum += (st_fp16_to_f32(w[b].d) * st_fp16_to_f32(x[b].d)) * (float)sumi +
		       st_fp16_to_f32(w[b].m) * st_fp16_to_f32(x[b].s);
	}
	return sum;
}

static float dot_iq4_nl_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_iq4_nl *w = vw;
	const struct block_q8_0 *x = vx;
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK4_NL; b++) {
		int32_t sumi = 0;
		for (int j = 0; j < QK4_NL / 2; j++) {
			sumi += st_iq4nl_values[w[b].qs[j] & 0x0f] * x[b].qs[j];
			sumi += st_iq4nl_values[w[b].qs[j] >> 4] * x[b].qs[j + QK4_NL / 2];
		}
		sum += (float)sumi * (st_fp16_to_f32(w[b].d) * st_fp16_to_f32(x[b].d));
	}
	return sum;
}

/* ---- super-blocks x Q8_K: per 256 weights an exact integer sum of
 * scale * (quant . activation) over the sub-blocks, and for the types with
 * minimums an exact sum of minimum * (the activations' 16-sums, bsums);
 * then, in a float accumulator, sum += (d_x d_w) * sumi - (d_x dmin_w) * summ
 * (ggml's vec_dot_*_q8_K, with one accumulator instead of eight). */

/* Weight j of a Q2_K/Q3_K/Q6_K group of 128: byte j % 32, 2 bits at j / 32. */
static float dot_q2_K_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q2_K *w = vw;
	const struct block_q8_K *x = vx;
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK_K; b++) {
		int32_t sumi = 0, summ = 0;
		for (int j = 0; j < QK_K / 16; j++)
			summ += (w[b].scales[j] >> 4) * x[b].bsums[j];
		for (int i = 0; i < QK_K; i++) {
			const int g = i / 128, k = (i % 128) / 32, l = i % 32;
			const int q = (w[b].qs[32 * g + l] >> (2 * k)) & 3;
			sumi += (w[b].scales[i / 16] & 0x0f) * q * x[b].qs[i];
		}
		sum += (x[b].d * st_fp16_to_f32(w[b].d)) * (float)sumi -
		       (x[b].d * st_fp16_to_f32(w[b].dmin)) * (float)summ;
	}
	return sum;
}

static float dot_q3_K_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q3_K *w = vw;
	const struct block_q8_K *x = vx;
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK_K; b++) {
		int8_t sc[16];
		for (int j = 0; j < 16; j++) {
			const int lo = j < 8 ? w[b].scales[j] & 0xf : w[b].scales[j - 8] >> 4;
			const int hi = (w[b].scales[8 + j % 4] >> (2 * (j / 4))) & 3;
			sc[j] = (int8_t)((lo | hi << 4) - 32);
		}
		int32_t sumi = 0;
		for (int i = 0; i < QK_K; i++) {
			const int g = i / 128, k = (i % 128) / 32, l = i % 32;
			int q = (w[b].qs[32 * g + l] >> (2 * k)) & 3;
			if (!(w[b].hmask[l] & (1 << (4 * g + k))))
				q -= 4;
			sumi += sc[i / 16] * q * x[b].qs[i];
		}
		sum += (x[b].d * st_fp16_to_f32(w[b].d)) * (float)sumi;
	}
	return sum;
}

/* Weight j of a Q4_K/Q5_K group of 64: byte j % 32, low nibble for j < 32. */
static float dot_q4_K_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q4_K *w = vw;
	const struct block_q8_K *x = vx;
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK_K; b++) {
		int32_t sumi = 0, summ = 0;
		for (int j = 0; j < QK_K / 32; j++) {
			uint8_t sc, m;
			st_q4k_scale_min(j, w[b].scales, &sc, &m);
			summ += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
			int32_t s = 0;
			for (int l = 0; l < 32; l++) {
				const uint8_t byte = w[b].qs[32 * (j / 2) + l];
				s += ((j % 2) ? byte >> 4 : byte & 0x0f) * x[b].qs[32 * j + l];
			}
			sumi += sc * s;
		}
		sum += (x[b].d * st_fp16_to_f32(w[b].d)) * (float)sumi -
		       (x[b].d * st_fp16_to_f32(w[b].dmin)) * (float)summ;
	}
	return sum;
}

static float dot_q5_K_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q5_K *w = vw;
	const struct block_q8_K *x = vx;
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK_K; b++) {
		int32_t sumi = 0, summ = 0;
		for (int j = 0; j < QK_K / 32; j++) {
			uint8_t sc, m;
			st_q4k_scale_min(j, w[b].scales, &sc, &m);
			summ += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
			int32_t s = 0;
			for (int l = 0; l < 32; l++) {
				const uint8_t byte = w[b].qs[32 * (j / 2) + l];
				int q = (j % 2) ? byte >> 4 : byte & 0x0f;
				if (w[b].qh[l] & (1 << j))
					q += 16;
				s += q * x[b].qs[32 * j + l];
			}
			sumi += sc * s;
		}
		sum += (x[b].d * st_fp16_to_f32(w[b].d)) * (float)sumi -
		       (x[b].d * st_fp16_to_f32(w[b].dmin)) * (float)summ;
	}
	return sum;
}

static float dot_q6_K_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q6_K *w = vw;
	const struct block_q8_K *x = vx;
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK_K; b++) {
		int32_t sumi = 0;
		for (int i = 0; i < QK_K; i++) {
			const int g = i / 128, k = (i % 128) / 32, l = i % 32;
			/* 128 weights: ql bytes 64g + l (+32 for k odd), low nibble for k < 2 */
			const uint8_t lo = w[b].ql[64 * g + l + 32 * (k % 2)];
			const int q = ((k < 2 ? lo & 0x0f : lo >> 4) | ((w[b].qh[32 * g + l] >> (2 * k)) & 3) << 4) - 32;
			sumi += w[b].scales[i / 16] * q * x[b].qs[i];
		}
		sum += (x[b].d * st_fp16_to_f32(w[b].d)) * (float)sumi;
	}
	return sum;
}

static float dot_iq4_xs_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_iq4_xs *w = vw;
	const struct block_q8_K *x = vx;
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK_K; b++) {
		int32_t sumi = 0;
		for (int ib = 0; ib < QK_K / 32; ib++) {
			const int ls = ((w[b].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) |
				       (((w[b].scales_h >> 2 * ib) & 3) << 4);
			int32_t s = 0;
			for (int j = 0; j < 16; j++) {
				const uint8_t byte = w[b].qs[16 * ib + j];
				s += st_iq4nl_values[byte & 0x0f] * x[b].qs[32 * ib + j];
				s += st_iq4nl_values[byte >> 4] * x[b].qs[32 * ib + j + 16];
			}
			sumi += (ls - 32) * s;
		}
		sum += (x[b].d * st_fp16_to_f32(w[b].d)) * (float)sumi;
	}
	return sum;
}

/* The references by weight type: what a NULL entry of a kernel set means. */
static const dot_fn dot_refs[ST_TYPE_COUNT] = {
	[ST_F32] = dot_f32_ref,
	[ST_F16] = dot_f16_ref,
	[ST_BF16] = dot_bf16_ref,
	[ST_Q8_0] = dot_q8_0_ref,
	[ST_Q4_0] = dot_q4_0_ref,
	[ST_Q4_1] = dot_q4_1_ref,
	[ST_Q5_0] = dot_q5_0_ref,
	[ST_Q5_1] = dot_q5_1_ref,
	[ST_IQ4_NL] = dot_iq4_nl_ref,
	[ST_Q2_K] = dot_q2_K_ref,
	[ST_Q3_K] = dot_q3_K_ref,
	[ST_Q4_K] = dot_q4_K_ref,
	[ST_Q5_K] = dot_q5_K_ref,
	[ST_Q6_K] = dot_q6_K_ref,
	[ST_IQ4_XS] = dot_iq4_xs_ref,
};

/* ---- the public lookups ---- */

dot_fn dot_get(uint32_t wtype)
{
	if (wtype >= ST_TYPE_COUNT)
		return NULL;
	for (const struct kernel_set *set = isa_active(); set; set = set->lower)
		if (set->dot[wtype])
			return set->dot[wtype];
	return dot_refs[wtype];
}

dot_fn dot_get_ref(uint32_t wtype)
{
	return wtype < ST_TYPE_COUNT ? dot_refs[wtype] : NULL;
}

/* As ggml's vec_dot_type of each weight type. */
uint32_t dot_act_type(uint32_t wtype)
{
	switch (wtype) {
	case ST_Q8_0:
	case ST_Q4_0:
	case ST_Q5_0:
	case ST_IQ4_NL:
		return ST_Q8_0;
	case ST_Q4_1:
	case ST_Q5_1:
		return ST_Q8_1;
	case ST_Q2_K:
	case ST_Q3_K:
	case ST_Q4_K:
	case ST_Q5_K:
	case ST_Q6_K:
	case ST_IQ4_XS:
		return ST_Q8_K;
	default:
		return ST_F32;
	}
}

size_t dot_act_bytes(uint32_t wtype, int64_t n)
{
	return st_row_bytes(dot_act_type(wtype), (uint64_t)n);
}

void dot_prepare_act(uint32_t wtype, const float *x, void *out, int64_t n)
{
	int rc = quant_act_row(dot_act_type(wtype), x, out, n);
	assert(rc == 0); /* only fails for n not whole blocks of the weights: a caller bug */
	(void)rc;
}
