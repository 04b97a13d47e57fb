/* quant_ref.c: whole-row conversions between f32 and the weight types, as
 * plain loops after ggml's quantize_row_*_ref/dequantize_row_*: the
 * definition the SIMD versions (dot_avx2.c, dot_avx512.c) are tested against
 * and fall back to. The 32-weight legacy types live here; the super-block
 * types and IQ4_NL in quant_kref.c. Not here: choosing a SIMD version
 * (quant.c), dot products. */
#include "kernels/quant_ref.h"

#include "kernels/quant_kref.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#define F16_NAN 0x7e00 /* the d of a block that held a NaN or an infinity */

/* ---- dequantize: w = d * q, one rounding per element, as ggml ---- */

static void dequant_f16_ref(const uint16_t *src, float *dst, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		dst[i] = st_fp16_to_f32(src[i]);
}

static void dequant_bf16_ref(const uint16_t *src, float *dst, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		dst[i] = st_bf16_to_f32(src[i]);
}

static void dequant_q8_0_ref(const struct block_q8_0 *src, float *dst, int64_t n)
{
	for (int64_t b = 0; b < n / QK8_0; b++) {
		const float d = st_fp16_to_f32(src[b].d);
		for (int j = 0; j < QK8_0; j++)
			dst[b * QK8_0 + j] = src[b].qs[j] * d;
	}
}

/* Byte j of a Q4_0 block holds weight j (low nibble) and j+16 (high). */
static void dequant_q4_0_ref(const struct block_q4_0 *src, float *dst, int64_t n)
{
	for (int64_t b = 0; b < n / QK4_0; b++) {
		const float d = st_fp16_to_f32(src[b].d);
		for (int j = 0; j < QK4_0 / 2; j++) {
			dst[b * QK4_0 + j] = ((src[b].qs[j] & 0x0f) - 8) * d;
			dst[b * QK4_0 + j + QK4_0 / 2] = ((src[b].qs[j] >> 4) - 8) * d;
		}
	}
}

/* Q4_1: as Q4_0's nibbles, w = q * d + m (ggml: x0*d + m). */
static void dequant_q4_1_ref(const struct block_q4_1 *src, float *dst, int64_t n)
{
	for (int64_t b = 0; b < n / QK4_1; b++) {
		const float d = st_fp16_to_f32(src[b].d), m = st_fp16_to_f32(src[b].m);
		for (int j = 0; j < QK4_1 / 2; j++) {
			dst[b * QK4_1 + j] = (float)(src[b].qs[j] & 0x0f) * d + m;
			dst[b * QK4_1 + j + QK4_1 / 2] = (float)(src[b].qs[j] >> 4) * d + m;
		}
	}
}

/* The fifth bits of a Q5 block: bit j of the little-endian u32 qh. */
static uint32_t q5_high_bits(const uint8_t qh[4])
{
	return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void dequant_q5_0_ref(const struct block_q5_0 *src, float *dst, int64_t n)
{
	for (int64_t b = 0; b < n / QK5_0; b++) {
		const float d = st_fp16_to_f32(src[b].d);
		const uint32_t qh = q5_high_bits(src[b].qh);
		for (int j = 0; j < QK5_0 / 2; j++) {
			const int x0 = ((src[b].qs[j] & 0x0f) | ((qh >> j) & 1) << 4) - 16;
			const int x1 = ((src[b].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16;
			dst[b * QK5_0 + j] = (float)x0 * d;
			dst[b * QK5_0 + j + QK5_0 / 2] = (float)x1 * d;
		}
	}
}

static void dequant_q5_1_ref(const struct block_q5_1 *src, float *dst, int64_t n)
{
	for (int64_t b = 0; b < n / QK5_1; b++) {
		const float d = st_fp16_to_f32(src[b].d), m = st_fp16_to_f32(src[b].m);
		const uint32_t qh = q5_high_bits(src[b].qh);
		for (int j = 0; j < QK5_1 / 2; j++) {
			const int x0 = (src[b].qs[j] & 0x0f) | ((qh >> j) & 1) << 4;
			const int x1 = (src[b].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
			dst[b * QK5_1 + j] = (float)x0 * d + m;
			dst[b * QK5_1 + j + QK5_1 / 2] = (float)x1 * d + m;
		}
	}
}

/* Q8_1 is an activation format; read back for tests: w = q * d. */
static void dequant_q8_1_ref(const struct block_q8_1 *src, float *dst, int64_t n)
{
	for (int64_t b = 0; b < n / QK8_1; b++) {
		const float d = st_fp16_to_f32(src[b].d);
		for (int j = 0; j < QK8_1; j++)
			dst[b * QK8_1 + j] = (float)src[b].qs[j] * d;
	}
}

int quant_row_check(uint32_t type, int64_t n)
{
	const struct st_type_info *ti = st_type_info(type);
	/* the activation formats convert too, though no weight is stored so */
	if (!ti || !(ti->supported || type == ST_Q8_1 || type == ST_Q8_K))
		return -ENOTSUP;
	if (n < 0 || n % ti->block_elems != 0)
		return -EINVAL;
	return 0;
}

int quant_dequantize_row_ref(uint32_t type, const void *src, float *dst, int64_t n)
{
	int rc = quant_row_check(type, n);
	if (rc < 0)
		return rc;
	switch (type) {
	case ST_F32:
		memcpy(dst, src, (size_t)n * sizeof(float));
		return 0;
	case ST_F16:
		dequant_f16_ref(src, dst, n);
		return 0;
	case ST_BF16:
		dequant_bf16_ref(src, dst, n);
		return 0;
	case ST_Q8_0:
		dequant_q8_0_ref(src, dst, n);
		return 0;
	case ST_Q4_0:
		dequant_q4_0_ref(src, dst, n);
		return 0;
	case ST_Q4_1:
		dequant_q4_1_ref(src, dst, n);
		return 0;
	case ST_Q5_0:
		dequant_q5_0_ref(src, dst, n);
		return 0;
	case ST_Q5_1:
		dequant_q5_1_ref(src, dst, n);
		return 0;
	case ST_Q8_1:
		dequant_q8_1_ref(src, dst, n);
		return 0;
	default:
		return kquant_dequantize_row_ref(type, src, dst, n);
	}
}

/* ---- quantize ---- */

static void quant_q8_0_block_ref(const float *x, struct block_q8_0 *y)
{
	float amax = 0.0f;
	bool finite = true;
	for (int j = 0; j < QK8_0; j++) {
		if (!isfinite(x[j]))
			finite = false;
		else if (fabsf(x[j]) > amax)
			amax = fabsf(x[j]);
	}
	/* ggml would cast NaN to int8 (undefined); a NaN scale keeps the
	 * block poisoned instead, so a broken activation shows as NaN. */
	if (!finite) {
		y->d = F16_NAN;
		memset(y->qs, 0, sizeof y->qs);
		return;
	}
	const float d = amax / 127.0f;
	y->d = st_f32_to_fp16(d);
	/* A scale that is zero in f16 zeroes every weight whatever q is; store
	 * q = 0 then, which also keeps 1/d finite below (ggml divides anyway). */
	if (y->d == 0) {
		memset(y->qs, 0, sizeof y->qs);
		return;
	}
	/* ggml multiplies by 1/d computed from the f32 d, not the stored f16 d,
	 * and rounds ties away from zero (roundf): both matter for equality. */
	const float id = 1.0f / d;
	for (int j = 0; j < QK8_0; j++)
		y->qs[j] = (int8_t)roundf(x[j] * id);
}

static void quant_q4_0_block_ref(const float *x, struct block_q4_0 *y)
{
	float amax = 0.0f, max = 0.0f;
	bool finite = true;
	/* The signed value of largest magnitude (the first one on a tie) maps
	 * to q = 0, so the block uses all of -8 * d; its opposite clamps at 7. */
	for (int j = 0; j < QK4_0; j++) {
		if (!isfinite(x[j])) {
			finite = false;
		} else if (amax < fabsf(x[j])) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	}
	if (!finite) {
		y->d = F16_NAN;
		memset(y->qs, 0x88, sizeof y->qs);
		return;
	}
	const float d = max / -8.0f;
	/* Kept bit for bit as ggml stores it: an all-zero block has d = -0. */
	y->d = st_f32_to_fp16(d);
	if ((y->d & 0x7fff) == 0) {
		memset(y->qs, 0x88, sizeof y->qs); /* 8 is zero in Q4_0 */
		return;
	}
	const float id = 1.0f / d;
	for (int j = 0; j < QK4_0 / 2; j++) {
		/* x*id is in [-8, 8]; +8.5 then truncation rounds half up */
		const uint8_t lo = (uint8_t)(int8_t)(x[j] * id + 8.5f);
		const uint8_t hi = (uint8_t)(int8_t)(x[j + QK4_0 / 2] * id + 8.5f);
		y->qs[j] = (uint8_t)((lo < 15 ? lo : 15) | ((hi < 15 ? hi : 15) << 4));
	}
}

/* The finite min and max of a block, or false if it holds a NaN or an
 * infinity. The order of the comparisons is ggml's (Q4_1, Q5_1). */
static bool block_min_max(const float *x, int n, float *min, float *max)
{
	*min = FLT_MAX;
	*max = -FLT_MAX;
	for (int j = 0; j < n; j++) {
		if (!isfinite(x[j]))
			return false;
		if (x[j] < *min)
			*min = x[j];
		if (x[j] > *max)
			*max = x[j];
	}
	return true;
}

/* The signed value of largest magnitude (the first on a tie), or false for
 * a non-finite block (Q4_0, Q5_0). */
static bool block_signed_max(const float *x, int n, float *max)
{
	float amax = 0.0f;
	*max = 0.0f;
	for (int j = 0; j < n; j++) {
		if (!isfinite(x[j]))
			return false;
		if (amax < fabsf(x[j])) {
			amax = fabsf(x[j]);
			*max = x[j];
		}
	}
	return true;
}

/* Q4_1: d = (max - min)/15, m = min, q = min(15, trunc((x - min)/d + 0.5)). */
static void quant_q4_1_block_ref(const float *x, struct block_q4_1 *y)
{
	float min, max;
	if (!block_min_max(x, QK4_1, &min, &max)) {
		y->d = y->m = F16_NAN;
		memset(y->qs, 0, sizeof y->qs);
		return;
	}
	const float d = (max - min) / 15.0f;
	const float id = d != 0.0f ? 1.0f / d : 0.0f;
	y->d = st_f32_to_fp16(d);
	y->m = st_f32_to_fp16(min);
	for (int j = 0; j < QK4_1 / 2; j++) {
		/* (x - min)*id is in [0, 15]: the int8 conversion is defined */
		const int8_t lo = (int8_t)((x[j] - min) * id + 0.5f);
		const int8_t hi = (int8_t)((x[j + QK4_1 / 2] - min) * id + 0.5f);
		y->qs[j] = (uint8_t)((lo < 15 ? lo : 15) | (hi < 15 ? hi : 15) << 4);
	}
}

/* Q5_0: d = max/-16 by the signed max, q = min(31, trunc(x/d + 16.5)). */
static void quant_q5_0_block_ref(const float *x, struct block_q5_0 *y)
{
	float max;
	uint32_t qh = 0;
	if (!block_signed_max(x, QK5_0, &max)) {
		y->d = F16_NAN;
		memset(y->qh, 0, sizeof y->qh);
		memset(y->qs, 0, sizeof y->qs);
		return;
	}
	const float d = max / -16.0f;
	const float id = d != 0.0f ? 1.0f / d : 0.0f;
	y->d = st_f32_to_fp16(d);
	for (int j = 0; j < QK5_0 / 2; j++) {
		const int8_t a = (int8_t)(x[j] * id + 16.5f);
		const int8_t b = (int8_t)(x[j + QK5_0 / 2] * id + 16.5f);
		const uint8_t lo = (uint8_t)(a < 31 ? a : 31), hi = (uint8_t)(b < 31 ? b : 31);
		y->qs[j] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
		qh |= (uint32_t)(lo >> 4) << j;
		qh |= (uint32_t)(hi >> 4) << (j + QK5_0 / 2);
	}
	for (int k = 0; k < 4; k++)
		y->qh[k] = (uint8_t)(qh >> (8 * k));
}

/* Q5_1: d = (max - min)/31, m = min, q = trunc((x - min)/d + 0.5). */
static void quant_q5_1_block_ref(const float *x, struct block_q5_1 *y)
{
	float min, max;
	uint32_t qh = 0;
	if (!block_min_max(x, QK5_1, &min, &max)) {
		y->d = y->m = F16_NAN;
		memset(y->qh, 0, sizeof y->qh);
		memset(y->qs, 0, sizeof y->qs);
		return;
	}
	const float d = (max - min) / 31.0f;
	const float id = d != 0.0f ? 1.0f / d : 0.0f;
	y->d = st_f32_to_fp16(d);
	y->m = st_f32_to_fp16(min);
	for (int j = 0; j < QK5_1 / 2; j++) {
		const uint8_t lo = (uint8_t)((x[j] - min) * id + 0.5f);
		const uint8_t hi = (uint8_t)((x[j + QK5_1 / 2] - min) * id + 0.5f);
		y->qs[j] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
		qh |= (uint32_t)((lo & 0x10) >> 4) << j;
		qh |= (uint32_t)((hi & 0x10) >> 4) << (j + QK5_1 / 2);
	}
	for (int k = 0; k < 4; k++)
		y->qh[k] = (uint8_t)(qh >> (8 * k));
}

/* Q8_1 (activations of Q4_1/Q5_1): Q8_0's rule, plus s = f16(d * sum q)
 * with the f32 d, as ggml's quantize_row_q8_1_ref. */
static void quant_q8_1_block_ref(const float *x, struct block_q8_1 *y)
{
	float amax = 0.0f;
	for (int j = 0; j < QK8_1; j++) {
		if (!isfinite(x[j])) {
			y->d = y->s = F16_NAN;
			memset(y->qs, 0, sizeof y->qs);
			return;
		}
		if (fabsf(x[j]) > amax)
			amax = fabsf(x[j]);
	}
	const float d = amax / 127.0f;
	const float id = d != 0.0f ? 1.0f / d : 0.0f;
	int sum = 0;
	y->d = st_f32_to_fp16(d);
	for (int j = 0; j < QK8_1; j++) {
		y->qs[j] = (int8_t)roundf(x[j] * id);
		sum += y->qs[j];
	}
	y->s = st_f32_to_fp16((float)sum * d);
}

/* ---- activations: what ggml's x86 CPU backend does before a dot ---- */

/* Q8_0 and Q8_1 as ggml's AVX2 quantize_row_q8_0/q8_1 (ggml-cpu-quants.c):
 * d = amax/127 stored in f16, q = round-to-nearest-even(x * (127/amax)),
 * and for Q8_1 s = f16(d * sum q) with the f32 d. Its reference quantizers
 * differ in two ways (roundf's ties away from zero, and 1/d for 127/amax)
 * that flip a quant now and then: on the Q5_0 model of test-kquants that
 * alone moved logits by 2e-2. A NaN or an infinity poisons the block (d =
 * NaN, zero quants), as everywhere here. */
void quant_act_q8_0_block_ref(const float *x, struct block_q8_0 *y, uint16_t *s)
{
	float amax = 0.0f;
	for (int j = 0; j < QK8_0; j++) {
		if (!isfinite(x[j])) {
			y->d = F16_NAN;
			if (s)
				*s = F16_NAN;
			memset(y->qs, 0, sizeof y->qs);
			return;
		}
		if (fabsf(x[j]) > amax)
			amax = fabsf(x[j]);
	}
	const float d = amax / 127.0f;
	float id = amax != 0.0f ? 127.0f / amax : 0.0f;
	int sum = 0;
	/* amax below 127/FLT_MAX: 1/d overflows, and d is 0 in f16 anyway */
	if (isinf(id))
		id = 0.0f;
	y->d = st_f32_to_fp16(d);
	for (int j = 0; j < QK8_0; j++) {
		y->qs[j] = (int8_t)nearbyintf(x[j] * id);
		sum += y->qs[j];
	}
	if (s)
		*s = st_f32_to_fp16(d * (float)sum);
}

int quant_act_row_ref(uint32_t act_type, const float *src, void *dst, int64_t n)
{
	int rc = quant_row_check(act_type, n);
	if (rc < 0)
		return rc;
	switch (act_type) {
	case ST_F32:
		memcpy(dst, src, (size_t)n * sizeof(float));
		return 0;
	case ST_Q8_0: {
		struct block_q8_0 *y = dst;
		for (int64_t b = 0; b < n / QK8_0; b++)
			quant_act_q8_0_block_ref(src + b * QK8_0, &y[b], NULL);
		return 0;
	}
	case ST_Q8_1: {
		/* block_q8_1 is block_q8_0 with s between d and qs */
		struct block_q8_1 *y = dst;
		for (int64_t b = 0; b < n / QK8_1; b++) {
			struct block_q8_0 t;
			quant_act_q8_0_block_ref(src + b * QK8_1, &t, &y[b].s);
			y[b].d = t.d;
			memcpy(y[b].qs, t.qs, sizeof t.qs);
		}
		return 0;
	}
	case ST_Q8_K: /* ggml's x86 code is its reference here */
		return kquant_quantize_row_ref(ST_Q8_K, src, dst, n);
	default:
		return -ENOTSUP;
	}
}

int quant_quantize_row_ref(uint32_t type, const float *src, void *dst, int64_t n)
{
	int rc = quant_row_check(type, n);
	if (rc < 0)
		return rc;
	switch (type) {
	case ST_F32:
		memcpy(dst, src, (size_t)n * sizeof(float));
		return 0;
	case ST_F16: {
		uint16_t *h = dst;
		for (int64_t i = 0; i < n; i++)
			h[i] = st_f32_to_fp16(src[i]);
		return 0;
	}
	case ST_BF16: {
		uint16_t *h = dst;
		for (int64_t i = 0; i < n; i++)
			h[i] = st_f32_to_bf16(src[i]);
		return 0;
	}
	case ST_Q8_0: {
		struct block_q8_0 *y = dst;
		for (int64_t b = 0; b < n / QK8_0; b++)
			quant_q8_0_block_ref(src + b * QK8_0, &y[b]);
		return 0;
	}
	case ST_Q4_0: {
		struct block_q4_0 *y = dst;
		for (int64_t b = 0; b < n / QK4_0; b++)
			quant_q4_0_block_ref(src + b * QK4_0, &y[b]);
		return 0;
	}
	case ST_Q4_1: {
		struct block_q4_1 *y = dst;
		for (int64_t b = 0; b < n / QK4_1; b++)
			quant_q4_1_block_ref(src + b * QK4_1, &y[b]);
		return 0;
	}
	case ST_Q5_0: {
		struct block_q5_0 *y = dst;
		for (int64_t b = 0; b < n / QK5_0; b++)
			quant_q5_0_block_ref(src + b * QK5_0, &y[b]);
		return 0;
	}
	case ST_Q5_1: {
		struct block_q5_1 *y = dst;
		for (int64_t b = 0; b < n / QK5_1; b++)
			quant_q5_1_block_ref(src + b * QK5_1, &y[b]);
		return 0;
	}
	case ST_Q8_1: {
		struct block_q8_1 *y = dst;
		for (int64_t b = 0; b < n / QK8_1; b++)
			quant_q8_1_block_ref(src + b * QK8_1, &y[b]);
		return 0;
	}
	default:
		return kquant_quantize_row_ref(type, src, dst, n);
	}
}

