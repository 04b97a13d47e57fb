/* quant_kref.c: reference conversions of the super-block types (Q2_K, Q3_K,
 * Q4_K, Q5_K, Q6_K, the Q8_K activations, IQ4_XS) and IQ4_NL, after ggml's
 * ggml-quants.c (build 4748): the dequantizers operation for operation (the
 * SIMD versions must match them bit for bit), and the quantizers llama.cpp
 * uses without an importance matrix, search and rounding included, so a
 * tensor quantized here is the tensor llama-quantize writes. The float
 * expressions keep ggml's order; the library is built with
 * -ffp-contract=off so no compiler fuses them differently.
 * Not here: the 32-weight legacy types (quant_ref.c), dot products (dot.c). */
#include "kernels/quant_kref.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#define F16_NAN 0x7e00
/* ggml's threshold below which a group counts as all zero */
#define GROUP_MAX_EPS 1e-15f

static inline int imin(int a, int b)
{
	return a < b ? a : b;
}

static inline int imax(int a, int b)
{
	return a > b ? a : b;
}

/* Round to nearest, ties to even, for |f| <= 2^22: add 1.5 * 2^23 so the
 * integer lands in the mantissa (ggml's nearest_int). A NaN or a huge value
 * gives some integer, never undefined behaviour; callers clamp. */
static inline int nearest_int(float f)
{
	float v = f + 12582912.0f;
	int32_t i;
	memcpy(&i, &v, sizeof i);
	return (i & 0x007fffff) - 0x00400000;
}

static bool all_finite(const float *x, int n)
{
	for (int i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return false;
	return true;
}

/* ---- dequantization ---- */

static void dequant_q2_K(const struct block_q2_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const float d = st_fp16_to_f32(x[i].d), min = st_fp16_to_f32(x[i].dmin);
		const uint8_t *q = x[i].qs;
		int is = 0;
		for (int n = 0; n < QK_K; n += 128) {
			for (int shift = 0; shift < 8; shift += 2) {
				for (int half = 0; half < 2; half++) {
					const uint8_t sc = x[i].scales[is++];
					const float dl = d * (float)(sc & 0xf), ml = min * (float)(sc >> 4);
					for (int l = 0; l < 16; l++)
						*y++ = dl * (float)((q[l + 16 * half] >> shift) & 3) - ml;
				}
			}
			q += 32;
		}
	}
}

/* The 16 Q3_K scales, unpacked to 0..63 (still + 32). */
static void q3_K_scales(const uint8_t *packed, int8_t *sc)
{
	for (int j = 0; j < 16; j++) {
		const int lo = j < 8 ? packed[j] & 0xf : packed[j - 8] >> 4;
		const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
		sc[j] = (int8_t)(lo | hi << 4);
	}
}

static void dequant_q3_K(const struct block_q3_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const float d_all = st_fp16_to_f32(x[i].d);
		const uint8_t *q = x[i].qs, *hm = x[i].hmask;
		int8_t sc[16];
		uint8_t m = 1;
		int is = 0;
		q3_K_scales(x[i].scales, sc);
		for (int n = 0; n < QK_K; n += 128) {
			for (int shift = 0; shift < 8; shift += 2) {
				for (int half = 0; half < 2; half++) {
					const float dl = d_all * (float)(sc[is++] - 32);
					for (int l = 16 * half; l < 16 * half + 16; l++) {
						const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
						*y++ = dl * (float)v;
					}
				}
				m <<= 1;
			}
			q += 32;
		}
	}
}

static void dequant_q4_K(const struct block_q4_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *q = x[i].qs;
		const float d = st_fp16_to_f32(x[i].d), min = st_fp16_to_f32(x[i].dmin);
		for (int j = 0; j < 8; j += 2) {
			uint8_t sc, m;
			st_q4k_scale_min(j, x[i].scales, &sc, &m);
			const float d1 = d * (float)sc, m1 = min * (float)m;
			st_q4k_scale_min(j + 1, x[i].scales, &sc, &m);
			const float d2 = d * (float)sc, m2 = min * (float)m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (float)(q[l] & 0xf) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (float)(q[l] >> 4) - m2;
			q += 32;
		}
	}
}

static void dequant_q5_K(const struct block_q5_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *ql = x[i].qs, *qh = x[i].qh;
		const float d = st_fp16_to_f32(x[i].d), min = st_fp16_to_f32(x[i].dmin);
		uint8_t u1 = 1, u2 = 2;
		for (int j = 0; j < 8; j += 2) {
			uint8_t sc, m;
			st_q4k_scale_min(j, x[i].scales, &sc, &m);
			const float d1 = d * (float)sc, m1 = min * (float)m;
			st_q4k_scale_min(j + 1, x[i].scales, &sc, &m);
			const float d2 = d * (float)sc, m2 = min * (float)m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (float)((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
			ql += 32;
			u1 <<= 2;
			u2 <<= 2;
		}
	}
}

static void dequant_q6_K(const struct block_q6_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const float d = st_fp16_to_f32(x[i].d);
		const uint8_t *ql = x[i].ql, *qh = x[i].qh;
		const int8_t *sc = x[i].scales;
		for (int n = 0; n < QK_K; n += 128) {
			for (int l = 0; l < 32; l++) {
				const int is = l / 16;
				const int q1 = ((ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4) - 32;
				const int q2 = ((ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4) - 32;
				const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
				const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
				/* ggml: d * sc * q, i.e. (d * sc) * q: two roundings */
				y[l] = d * (float)sc[is] * (float)q1;
				y[l + 32] = d * (float)sc[is + 2] * (float)q2;
				y[l + 64] = d * (float)sc[is + 4] * (float)q3;
				y[l + 96] = d * (float)sc[is + 6] * (float)q4;
			}
			y += 128;
			ql += 64;
			qh += 32;
			sc += 8;
		}
	}
}

static void dequant_q8_K(const struct block_q8_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
		for (int j = 0; j < QK_K; j++)
			*y++ = x[i].d * (float)x[i].qs[j];
}

static void dequant_iq4_nl(const struct block_iq4_nl *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const float d = st_fp16_to_f32(x[i].d);
		for (int j = 0; j < QK4_NL / 2; j++) {
			y[j] = d * (float)st_iq4nl_values[x[i].qs[j] & 0xf];
			y[j + QK4_NL / 2] = d * (float)st_iq4nl_values[x[i].qs[j] >> 4];
		}
		y += QK4_NL;
	}
}

static void dequant_iq4_xs(const struct block_iq4_xs *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *qs = x[i].qs;
		const float d = st_fp16_to_f32(x[i].d);
		for (int ib = 0; ib < QK_K / 32; ib++) {
			const int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) |
				       (((x[i].scales_h >> 2 * ib) & 3) << 4);
			const float dl = d * (float)(ls - 32);
			for (int j = 0; j < 16; j++) {
				y[j] = dl * (float)st_iq4nl_values[qs[j] & 0xf];
				y[j + 16] = dl * (float)st_iq4nl_values[qs[j] >> 4];
			}
			y += 32;
			qs += 16;
		}
	}
}

int kquant_dequantize_row_ref(uint32_t type, const void *src, float *dst, int64_t n)
{
	switch (type) {
	case ST_Q2_K: dequant_q2_K(src, dst, n / QK_K); return 0;
	case ST_Q3_K: dequant_q3_K(src, dst, n / QK_K); return 0;
	case ST_Q4_K: dequant_q4_K(src, dst, n / QK_K); return 0;
	case ST_Q5_K: dequant_q5_K(src, dst, n / QK_K); return 0;
	case ST_Q6_K: dequant_q6_K(src, dst, n / QK_K); return 0;
	case ST_Q8_K: dequant_q8_K(src, dst, n / QK_K); return 0;
	case ST_IQ4_NL: dequant_iq4_nl(src, dst, n / QK4_NL); return 0;
	case ST_IQ4_XS: dequant_iq4_xs(src, dst, n / QK_K); return 0;
	default: return -ENOTSUP;
	}
}

/* ---- the searches behind the quantizers (ggml's, unchanged in effect) ---- */

/* The value of x[0..n-1] with the largest magnitude (the first of equals; 0
 * when all are 0 or n is 0), its magnitude in *amax. */
static float signed_absmax(int n, const float *x, float *amax)
{
	float max = 0;
	*amax = 0;
	for (int i = 0; i < n; i++) {
		const float ax = fabsf(x[i]);
		if (ax > *amax) {
			*amax = ax;
			max = x[i];
		}
	}
	return max;
}

/* Symmetric: a scale for n values with quants in -nmax..nmax-1 (stored +
 * nmax in L), minimizing the error weighted by x^2 (rmse_type 1) over 19
 * trial scales around -nmax/max. Returns the scale (0 for an all-zero group). */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
	float amax;
	const float max = signed_absmax(n, x, &amax);
	if (amax < GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0.0f;
	}
	float iscale = -(float)nmax / max;
	float sumlx = 0, suml2 = 0;
	for (int i = 0; i < n; i++) {
		int l = nearest_int(iscale * x[i]);
		l = imax(-nmax, imin(nmax - 1, l));
		L[i] = (int8_t)(l + nmax);
		const float w = x[i] * x[i];
		sumlx += w * x[i] * (float)l;
		suml2 += w * (float)l * (float)l;
	}
	float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
	float best = scale * sumlx;
	for (int is = -9; is <= 9; is++) {
		if (is == 0)
			continue;
		iscale = -((float)nmax + 0.1f * (float)is) / max;
		sumlx = suml2 = 0;
		for (int i = 0; i < n; i++) {
			int l = nearest_int(iscale * x[i]);
			l = imax(-nmax, imin(nmax - 1, l));
			const float w = x[i] * x[i];
			sumlx += w * x[i] * (float)l;
			suml2 += w * (float)l * (float)l;
		}
		if (suml2 > 0 && sumlx * sumlx > best * suml2) {
			for (int i = 0; i < n; i++) {
				int l = nearest_int(iscale * x[i]);
				L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
			}
			scale = sumlx / suml2;
			best = scale * sumlx;
		}
	}
	return scale;
}

/* Q3_K's search: start from -nmax/max, then up to 5 passes moving single
 * quants while the x^2-weighted fit improves. L holds -nmax..nmax-1, + nmax
 * on return. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L)
{
	float amax;
	const float max = signed_absmax(n, x, &amax);
	if (amax < GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0.0f;
	}
	const float iscale = -(float)nmax / max;
	float sumlx = 0, suml2 = 0;
	for (int i = 0; i < n; i++) {
		int l = nearest_int(iscale * x[i]);
		l = imax(-nmax, imin(nmax - 1, l));
		L[i] = (int8_t)l;
		const float w = x[i] * x[i];
		sumlx += w * x[i] * (float)l;
		suml2 += w * (float)l * (float)l;
	}
	for (int itry = 0; itry < 5; itry++) {
		int n_changed = 0;
		for (int i = 0; i < n; i++) {
			const float w = x[i] * x[i];
			float slx = sumlx - w * x[i] * (float)L[i];
			if (slx > 0) {
				float sl2 = suml2 - w * (float)L[i] * (float)L[i];
				int new_l = nearest_int(x[i] * sl2 / slx);
				new_l = imax(-nmax, imin(nmax - 1, new_l));
				if (new_l != L[i]) {
					slx += w * x[i] * (float)new_l;
					sl2 += w * (float)new_l * (float)new_l;
					if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
						L[i] = (int8_t)new_l;
						sumlx = slx;
						suml2 = sl2;
						n_changed++;
					}
				}
			}
		}
		if (!n_changed)
			break;
	}
	for (int i = 0; i < n; i++)
		L[i] = (int8_t)(L[i] + nmax);
	return sumlx / suml2;
}

/* Asymmetric: scale and minimum for n values with quants 0..nmax, fitted by
 * weighted least squares over nstep+1 trial scales (ggml's
 * make_qkx2_quants). Returns the scale; *the_min gets -minimum (>= 0). */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
			      float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
			      bool use_mad)
{
	float min = x[0], max = x[0];
	float sum_w = weights[0];
	float sum_x = sum_w * x[0];
	for (int i = 1; i < n; i++) {
		if (x[i] < min)
			min = x[i];
		if (x[i] > max)
			max = x[i];
		const float w = weights[i];
		sum_w += w;
		sum_x += w * x[i];
	}
	if (min > 0)
		min = 0;
	if (max == min) {
		memset(L, 0, (size_t)n);
		*the_min = -min;
		return 0.0f;
	}
	float iscale = (float)nmax / (max - min);
	float scale = 1 / iscale;
	float best_mad = 0;
	for (int i = 0; i < n; i++) {
		const int l = nearest_int(iscale * (x[i] - min));
		L[i] = (uint8_t)imax(0, imin(nmax, l));
		float diff = scale * (float)L[i] + min - x[i];
		diff = use_mad ? fabsf(diff) : diff * diff;
		best_mad += weights[i] * diff;
	}
	if (nstep < 1) {
		*the_min = -min;
		return scale;
	}
	for (int is = 0; is <= nstep; is++) {
		iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
		float sum_l = 0, sum_l2 = 0, sum_xl = 0;
		for (int i = 0; i < n; i++) {
			int l = nearest_int(iscale * (x[i] - min));
			l = imax(0, imin(nmax, l));
			Laux[i] = (uint8_t)l;
			const float w = weights[i];
			sum_l += w * (float)l;
			sum_l2 += w * (float)l * (float)l;
			sum_xl += w * (float)l * x[i];
		}
		const float D = sum_w * sum_l2 - sum_l * sum_l;
		if (D > 0) {
			float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
			float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
			if (this_min > 0) {
				this_min = 0;
				this_scale = sum_xl / sum_l2;
			}
			float mad = 0;
			for (int i = 0; i < n; i++) {
				float diff = this_scale * (float)Laux[i] + this_min - x[i];
				diff = use_mad ? fabsf(diff) : diff * diff;
				mad += weights[i] * diff;
			}
			if (mad < best_mad) {
				memcpy(L, Laux, (size_t)n);
				best_mad = mad;
				scale = this_scale;
				min = this_min;
			}
		}
	}
	*the_min = -min;
	return scale;
}

/* ---- quantizers, one super-block at a time ---- */

static void quant_q2_K_block(const float *x, struct block_q2_K *y)
{
	uint8_t L[QK_K], Laux[16];
	float weights[16], mins[QK_K / 16], scales[QK_K / 16];
	const float q4scale = 15.0f;
	float max_scale = 0, max_min = 0;

	for (int j = 0; j < QK_K / 16; j++) {
		for (int l = 0; l < 16; l++)
			weights[l] = fabsf(x[16 * j + l]);
		scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
					     0.1f, 15, true);
		if (scales[j] > max_scale)
			max_scale = scales[j];
		if (mins[j] > max_min)
			max_min = mins[j];
	}
	if (max_scale > 0) {
		const float iscale = q4scale / max_scale;
		for (int j = 0; j < QK_K / 16; j++)
			y->scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
		y->d = st_f32_to_fp16(max_scale / q4scale);
	} else {
		memset(y->scales, 0, sizeof y->scales);
		y->d = st_f32_to_fp16(0.0f);
	}
	if (max_min > 0) {
		const float iscale = q4scale / max_min;
		for (int j = 0; j < QK_K / 16; j++)
			y->scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
		y->dmin = st_f32_to_fp16(max_min / q4scale);
	} else {
		y->dmin = st_f32_to_fp16(0.0f);
	}
	for (int j = 0; j < QK_K / 16; j++) {
		const float d = st_fp16_to_f32(y->d) * (float)(y->scales[j] & 0xf);
		if (d == 0.0f)
			continue;
		const float dm = st_fp16_to_f32(y->dmin) * (float)(y->scales[j] >> 4);
		for (int ii = 0; ii < 16; ii++) {
			const int l = nearest_int((x[16 * j + ii] + dm) / d);
			L[16 * j + ii] = (uint8_t)imax(0, imin(3, l));
		}
	}
	for (int j = 0; j < QK_K; j += 128)
		for (int l = 0; l < 32; l++)
			y->qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
						     (L[j + l + 96] << 6));
}

static void quant_q3_K_block(const float *x, struct block_q3_K *y)
{
	int8_t L[QK_K];
	float scales[QK_K / 16];
	float max_scale = 0, amax = 0;

	for (int j = 0; j < QK_K / 16; j++) {
		scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
		const float scale = fabsf(scales[j]);
		if (scale > amax) {
			amax = scale;
			max_scale = scales[j];
		}
	}
	memset(y->scales, 0, sizeof y->scales);
	if (max_scale != 0.0f) {
		const float iscale = -32.0f / max_scale;
		for (int j = 0; j < QK_K / 16; j++) {
			int8_t l = (int8_t)nearest_int(iscale * scales[j]);
			l = (int8_t)(imax(-32, imin(31, l)) + 32);
			if (j < 8)
				y->scales[j] = (uint8_t)(l & 0xf);
			else
				y->scales[j - 8] |= (uint8_t)((l & 0xf) << 4);
			l >>= 4;
			y->scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
		}
		y->d = st_f32_to_fp16(1 / iscale);
	} else {
		y->d = st_f32_to_fp16(0.0f);
	}
	int8_t sc[16];
	q3_K_scales(y->scales, sc);
	for (int j = 0; j < QK_K / 16; j++) {
		const float d = st_fp16_to_f32(y->d) * (float)(sc[j] - 32);
		if (d == 0.0f)
			continue;
		for (int ii = 0; ii < 16; ii++) {
			const int l = nearest_int(x[16 * j + ii] / d);
			L[16 * j + ii] = (int8_t)(imax(-4, imin(3, l)) + 4);
		}
	}
	/* the high bit of the first 32 quants goes to bit 0 of hmask[0..31],
	 * of the next 32 to bit 1, and so on */
	memset(y->hmask, 0, sizeof y->hmask);
	int m = 0;
	uint8_t hm = 1;
	for (int j = 0; j < QK_K; j++) {
		if (L[j] > 3) {
			y->hmask[m] |= hm;
			L[j] -= 4;
		}
		if (++m == QK_K / 8) {
			m = 0;
			hm <<= 1;
		}
	}
	for (int j = 0; j < QK_K; j += 128)
		for (int l = 0; l < 32; l++)
			y->qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
						     (L[j + l + 96] << 6));
}

/* Q4_K and Q5_K share everything but the quant width (nmax 15 or 31) and
 * their search parameters: the 8 sub-block fits, then 6-bit scales and
 * minimums relative to the largest, then the quants again against the
 * rounded scales. Fills scales, d, dmin and L (0..nmax). */
static void quant_qk_scales(const float *x, int nmax, float rmin, int nstep, uint8_t *packed,
			    uint16_t *dh, uint16_t *dminh, uint8_t *L)
{
	uint8_t Laux[32];
	float weights[32], mins[QK_K / 32], scales[QK_K / 32];
	float max_scale = 0, max_min = 0;

	for (int j = 0; j < QK_K / 32; j++) {
		float sum_x2 = 0;
		for (int l = 0; l < 32; l++)
			sum_x2 += x[32 * j + l] * x[32 * j + l];
		const float av_x = sqrtf(sum_x2 / 32);
		for (int l = 0; l < 32; l++)
			weights[l] = av_x + fabsf(x[32 * j + l]);
		scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin,
					     0.1f, nstep, false);
		if (scales[j] > max_scale)
			max_scale = scales[j];
		if (mins[j] > max_min)
			max_min = mins[j];
	}
	const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
	const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
	for (int j = 0; j < QK_K / 32; j++) {
		/* ggml stores nearest_int in a uint8_t before clamping */
		uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
		uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
		ls = ls < 63 ? ls : 63;
		lm = lm < 63 ? lm : 63;
		if (j < 4) {
			packed[j] = ls;
			packed[j + 4] = lm;
		} else {
			packed[j + 4] = (uint8_t)((ls & 0xf) | ((lm & 0xf) << 4));
			packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
			packed[j] |= (uint8_t)((lm >> 4) << 6);
		}
	}
	*dh = st_f32_to_fp16(max_scale / 63.0f);
	*dminh = st_f32_to_fp16(max_min / 63.0f);
	for (int j = 0; j < QK_K / 32; j++) {
		uint8_t sc, m;
		st_q4k_scale_min(j, packed, &sc, &m);
		const float d = st_fp16_to_f32(*dh) * (float)sc;
		if (d == 0.0f)
			continue;
		const float dm = st_fp16_to_f32(*dminh) * (float)m;
		for (int ii = 0; ii < 32; ii++) {
			const int l = nearest_int((x[32 * j + ii] + dm) / d);
			L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, l));
		}
	}
}

static void quant_q4_K_block(const float *x, struct block_q4_K *y)
{
	uint8_t L[QK_K];
	memset(y->scales, 0, sizeof y->scales);
	quant_qk_scales(x, 15, -1.0f, 20, y->scales, &y->d, &y->dmin, L);
	uint8_t *q = y->qs;
	for (int j = 0; j < QK_K; j += 64) {
		for (int l = 0; l < 32; l++)
			q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
		q += 32;
	}
}

static void quant_q5_K_block(const float *x, struct block_q5_K *y)
{
	uint8_t L[QK_K];
	memset(y->scales, 0, sizeof y->scales);
	quant_qk_scales(x, 31, -0.5f, 15, y->scales, &y->d, &y->dmin, L);
	uint8_t *qh = y->qh, *ql = y->qs;
	uint8_t m1 = 1, m2 = 2;
	memset(qh, 0, QK_K / 8);
	for (int n = 0; n < QK_K; n += 64) {
		for (int j = 0; j < 32; j++) {
			int l1 = L[n + j], l2 = L[n + j + 32];
			if (l1 > 15) {
				l1 -= 16;
				qh[j] |= m1;
			}
			if (l2 > 15) {
				l2 -= 16;
				qh[j] |= m2;
			}
			ql[j] = (uint8_t)(l1 | (l2 << 4));
		}
		m1 <<= 2;
		m2 <<= 2;
		ql += 32;
	}
}

static void quant_q6_K_block(const float *x, struct block_q6_K *y)
{
	int8_t L[QK_K];
	float scales[QK_K / 16];
	float max_scale = 0, max_abs_scale = 0;

	for (int ib = 0; ib < QK_K / 16; ib++) {
		const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
		scales[ib] = scale;
		if (fabsf(scale) > max_abs_scale) {
			max_abs_scale = fabsf(scale);
			max_scale = scale;
		}
	}
	if (max_abs_scale < GROUP_MAX_EPS) {
		memset(y, 0, sizeof *y);
		return;
	}
	const float iscale = -128.0f / max_scale;
	y->d = st_f32_to_fp16(1 / iscale);
	for (int ib = 0; ib < QK_K / 16; ib++)
		y->scales[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
	for (int j = 0; j < QK_K / 16; j++) {
		const float d = st_fp16_to_f32(y->d) * (float)y->scales[j];
		if (d == 0.0f)
			continue;
		for (int ii = 0; ii < 16; ii++) {
			const int l = nearest_int(x[16 * j + ii] / d);
			L[16 * j + ii] = (int8_t)(imax(-32, imin(31, l)) + 32);
		}
	}
	uint8_t *ql = y->ql, *qh = y->qh;
	for (int j = 0; j < QK_K; j += 128) {
		for (int l = 0; l < 32; l++) {
			const uint8_t q1 = L[j + l] & 0xf, q2 = L[j + l + 32] & 0xf;
			const uint8_t q3 = L[j + l + 64] & 0xf, q4 = L[j + l + 96] & 0xf;
			ql[l] = (uint8_t)(q1 | (q3 << 4));
			ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
			qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
					  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
		}
		ql += 64;
		qh += 32;
	}
}

void kquant_q8_K_block_ref(const float *x, struct block_q8_K *y)
{
	float max = 0, amax = 0;
	bool finite = true;
	for (int j = 0; j < QK_K; j++) {
		const float ax = fabsf(x[j]);
		if (!isfinite(x[j])) {
			finite = false;
		} else if (ax > amax) {
			amax = ax;
			max = x[j];
		}
	}
	memset(y->qs, 0, sizeof y->qs);
	memset(y->bsums, 0, sizeof y->bsums);
	if (!finite) { /* a NaN scale keeps the whole block poisoned */
		y->d = NAN;
		return;
	}
	if (amax == 0.0f) {
		y->d = 0.0f;
		return;
	}
	/* -127, not -128: the largest value maps to -127 exactly (ggml chose
	 * this for its IQ2 kernels; every kernel relies on |q| <= 127) */
	const float iscale = -127.0f / max;
	for (int j = 0; j < QK_K; j++)
		y->qs[j] = (int8_t)imin(127, nearest_int(iscale * x[j]));
	for (int j = 0; j < QK_K / 16; j++) {
		int sum = 0;
		for (int ii = 0; ii < 16; ii++)
			sum += y->qs[16 * j + ii];
		y->bsums[j] = (int16_t)sum;
	}
	y->d = 1 / iscale;
}

/* ---- IQ4_NL and IQ4_XS: quants are indexes into st_iq4nl_values ---- */

/* The index of the table value nearest x (ggml's best_index_int8). */
static int best_index_iq4(float x)
{
	const int8_t *val = st_iq4nl_values;
	if (x <= val[0])
		return 0;
	if (x >= val[15])
		return 15;
	int ml = 0, mu = 15;
	while (mu - ml > 1) {
		const int mav = (ml + mu) / 2;
		if (x < val[mav])
			mu = mav;
		else
			ml = mav;
	}
	return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/* ggml's quantize_row_iq4_nl_impl with no importance matrix and ntry = 7
 * (what quantize_iq4_nl and quantize_iq4_xs pass): per block of 32, the
 * x^2-weighted best of 15 trial scales; for a super-block (IQ4_XS) the 8
 * scales are then rounded to 6 bits of d = -max_scale/32 and the indexes
 * found again. */
static void quant_iq4_impl(int super_block_size, const float *x, uint16_t *dh, uint8_t *q4,
			   uint16_t *scales_h, uint8_t *scales_l)
{
	const int8_t *values = st_iq4nl_values;
	const int block_size = 32, ntry = 7;
	float scales[QK_K / 32], weight[32];
	uint8_t L[QK_K];
	float max_scale = 0, amax_scale = 0;

	memset(q4, 0, (size_t)super_block_size / 2);
	memset(L, 0, sizeof L);
	*dh = st_f32_to_fp16(0.0f);
	for (int ib = 0; ib < super_block_size / block_size; ib++) {
		const float *xb = x + ib * block_size;
		uint8_t *Lb = L + ib * block_size;
		for (int j = 0; j < block_size; j++)
			weight[j] = xb[j] * xb[j];
		float amax;
		const float max = signed_absmax(block_size, xb, &amax);
		if (amax < GROUP_MAX_EPS) {
			scales[ib] = 0;
			continue;
		}
		float d = -max / (float)values[0];
		float id = 1 / d;
		float sumqx = 0, sumq2 = 0;
		for (int j = 0; j < block_size; j++) {
			const int l = best_index_iq4(id * xb[j]);
			Lb[j] = (uint8_t)l;
			const float q = (float)values[l], w = weight[j];
			sumqx += w * q * xb[j];
			sumq2 += w * q * q;
		}
		d = sumqx / sumq2;
		float best = d * sumqx;
		for (int itry = -ntry; itry <= ntry; itry++) {
			id = ((float)itry + (float)values[0]) / max;
			sumqx = sumq2 = 0;
			for (int j = 0; j < block_size; j++) {
				const int l = best_index_iq4(id * xb[j]);
				const float q = (float)values[l], w = weight[j];
				sumqx += w * q * xb[j];
				sumq2 += w * q * q;
			}
			if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
				d = sumqx / sumq2;
				best = d * sumqx;
			}
		}
		scales[ib] = d;
		if (fabsf(d) > amax_scale) {
			amax_scale = fabsf(d);
			max_scale = d;
		}
	}
	if (super_block_size / block_size > 1) {
		const int nb = super_block_size / block_size;
		*scales_h = 0;
		const float d = -max_scale / 32;
		*dh = st_f32_to_fp16(d);
		const float id = d != 0.0f ? 1 / d : 0.0f;
		for (int ib = 0; ib < nb; ib++) {
			int l = nearest_int(id * scales[ib]);
			l = imax(-32, imin(31, l));
			const float dl = d * (float)l;
			const float idl = dl != 0.0f ? 1 / dl : 0.0f;
			uint8_t *Lb = L + ib * block_size;
			const float *xb = x + ib * block_size;
			for (int j = 0; j < block_size; j++)
				Lb[j] = (uint8_t)best_index_iq4(idl * xb[j]);
			l += 32;
			const uint8_t l_l = (uint8_t)(l & 0xf), l_h = (uint8_t)(l >> 4);
			if (ib % 2 == 0)
				scales_l[ib / 2] = l_l;
			else
				scales_l[ib / 2] |= (uint8_t)(l_l << 4);
			*scales_h |= (uint16_t)(l_h << 2 * (ib % 8));
		}
	} else {
		*dh = st_f32_to_fp16(scales[0]);
		const float id = scales[0] != 0.0f ? 1 / scales[0] : 0.0f;
		for (int j = 0; j < super_block_size; j++)
			L[j] = (uint8_t)best_index_iq4(id * x[j]);
	}
	for (int i = 0; i < super_block_size / 32; i++)
		for (int j = 0; j < 16; j++)
			q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

/* ---- the row quantizer ---- */

int kquant_quantize_row_ref(uint32_t type, const float *src, void *dst, int64_t n)
{
	const struct st_type_info *ti = st_type_info(type);
	if (!ti)
		return -ENOTSUP;
	const int64_t nb = n / ti->block_elems;
	for (int64_t b = 0; b < nb; b++) {
		const float *x = src + b * ti->block_elems;
		void *y = (char *)dst + b * ti->block_bytes;
		/* Q8_K has its own rule (a float NaN scale); for the weight
		 * types a block with a NaN or an infinity gets NaN f16 scales,
		 * zero quants: every weight reads back as NaN, never a number */
		if (type != ST_Q8_K && !all_finite(x, (int)ti->block_elems)) {
			memset(y, 0, ti->block_bytes);
			uint16_t nan = F16_NAN;
			switch (type) {
			case ST_Q2_K: ((struct block_q2_K *)y)->d = ((struct block_q2_K *)y)->dmin = nan; break;
			case ST_Q3_K: ((struct block_q3_K *)y)->d = nan; break;
			case ST_Q4_K: ((struct block_q4_K *)y)->d = ((struct block_q4_K *)y)->dmin = nan; break;
			case ST_Q5_K: ((struct block_q5_K *)y)->d = ((struct block_q5_K *)y)->dmin = nan; break;
			case ST_Q6_K: ((struct block_q6_K *)y)->d = nan; break;
			case ST_IQ4_NL: ((struct block_iq4_nl *)y)->d = nan; break;
			case ST_IQ4_XS: ((struct block_iq4_xs *)y)->d = nan; break;
			default: return -ENOTSUP;
			}
			continue;
		}
		switch (type) {
		case ST_Q2_K: quant_q2_K_block(x, y); break;
		case ST_Q3_K: quant_q3_K_block(x, y); break;
		case ST_Q4_K: quant_q4_K_block(x, y); break;
		case ST_Q5_K: quant_q5_K_block(x, y); break;
		case ST_Q6_K: quant_q6_K_block(x, y); break;
		case ST_Q8_K: kquant_q8_K_block_ref(x, y); break;
		case ST_IQ4_NL: {
			struct block_iq4_nl *q = y;
			quant_iq4_impl(QK4_NL, x, &q->d, q->qs, NULL, NULL);
			break;
		}
		case ST_IQ4_XS: {
			struct block_iq4_xs *q = y;
			quant_iq4_impl(QK_K, x, &q->d, q->qs, &q->scales_h, q->scales_l);
			break;
		}
		default:
			return -ENOTSUP;
		}
	}
	return 0;
}
