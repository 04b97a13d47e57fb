/* quant_ref.c: whole-row conversions between f32 and the weight types, as
 * plain loops after ggml's quantize_row_*_ref/dequantize_row_*: the
 * definition the SIMD versions (dot_avx2.c, dot_avx512.c) are tested against
 * and fall back to. Not here: choosing a SIMD version (quant.c), dot products. */
#include "kernels/quant_ref.h"

#include <errno.h>
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

int quant_row_check(uint32_t type, int64_t n)
{
	const struct st_type_info *ti = st_type_info(type);
	if (!ti || !ti->supported)
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
	default:
		return -ENOTSUP;
	}
}

/* ---- quantize ---- */

void quant_q8_0_block_ref(const float *x, struct block_q8_0 *y)
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
	default:
		return -ENOTSUP;
	}
}

