/* test-quant.c: kernels/quant.h. The references against hand-computed
 * blocks (layout, ggml's rounding, special values) and the error each format
 * allows; then every SIMD set this CPU runs against the references, bit for
 * bit. Not here: dot products (test-dot.c). */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"
#include "kernels/isa.h"
#include "kernels/quant.h"
#include "kernels/quant_ref.h"
#include "tests/tap.h"

static const char *const isas[] = { "scalar", "avx2", "avx512", "avx512vnni" };
#define N_ISAS (sizeof isas / sizeof isas[0])
/* Row lengths: one block, two, odd block counts, and model-sized rows. */
static const int64_t lengths[] = { 32, 64, 96, 160, 480, 4096, 8192 + 32, 11008 };
#define N_LENGTHS (sizeof lengths / sizeof lengths[0])
#define MAX_N 11008

static const uint32_t types[] = { ST_F32, ST_F16, ST_BF16, ST_Q8_0, ST_Q4_0 };
#define N_TYPES (sizeof types / sizeof types[0])

/* ---- helpers ---- */

static float rnd_unit(void) /* uniform in [-1, 1) */
{
	return (float)((double)(tap_rand() >> 40) / (double)(1ull << 23) - 1.0);
}

/* Activations/weights with a different magnitude per block (10^-3..10^3)
 * and an occasional outlier, as real rows have. */
static void fill_random(float *x, int64_t n)
{
	for (int64_t b = 0; b < n; b += 32) {
		const float scale = powf(10.0f, 6.0f * (rnd_unit() + 1.0f) / 2.0f - 3.0f);
		for (int64_t j = b; j < b + 32 && j < n; j++)
			x[j] = rnd_unit() * scale * (tap_rand() % 64 == 0 ? 8.0f : 1.0f);
	}
}

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

/* Elements of a and b that differ in bits (two NaNs count as equal: the
 * hardware may quiet a signalling NaN the reference passes through). */
static int64_t count_bit_diffs(const float *a, const float *b, int64_t n)
{
	int64_t bad = 0;
	for (int64_t i = 0; i < n; i++)
		if (f32_bits(a[i]) != f32_bits(b[i]) && !(isnan(a[i]) && isnan(b[i])))
			bad++;
	return bad;
}

/* ---- the references: layout, rounding, special values ---- */

static void test_hand_blocks(void)
{
	float x[32];
	struct block_q8_0 q8;
	struct block_q4_0 q4;
	float y[32];

	/* Q8_0: amax 127 makes d = 1 (f16 0x3c00) and id = 1, so q = roundf(x):
	 * ties go away from zero (2.5 -> 3, not the 2 of round-half-even). */
	static const float in8[16] = { 127, -127, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -1.5f,
				       1.4999f, -1.4999f, 0, -0.0f, 3.7f, -3.2f, 126.5f, 100 };
	static const int8_t want8[16] = { 127, -127, 3, -3, 1, -1, 2, -2, 1, -1, 0, 0, 4, -3, 127, 100 };
	for (int j = 0; j < 32; j++)
		x[j] = j < 16 ? in8[j] : (float)(j - 16);
	quant_quantize_row_ref(ST_Q8_0, x, &q8, 32);
	tap_is_int(q8.d, 0x3c00, "q8_0 hand block: d = amax/127 = 1.0 is f16 0x3c00");
	int bad = 0;
	for (int j = 0; j < 32; j++)
		if (q8.qs[j] != (j < 16 ? want8[j] : j - 16))
			bad++;
	tap_is_int(bad, 0, "q8_0 hand block: q = roundf(x/d), ties away from zero, element j in byte j");

	/* Q4_0: the first element of largest magnitude is -8 so d = -8/-8 = 1,
	 * q = x + 8. Element j sits in the low nibble of byte j and element
	 * j+16 in the high nibble: elements j = 0..15 hold j-8 and elements
	 * 16..31 hold 7-j', so byte j must be j | (15-j) << 4. */
	for (int j = 0; j < 16; j++) {
		x[j] = (float)(j - 8);
		x[j + 16] = (float)(7 - j);
	}
	quant_quantize_row_ref(ST_Q4_0, x, &q4, 32);
	tap_is_int(q4.d, 0x3c00, "q4_0 hand block: d = max/-8 = 1.0");
	bad = 0;
	for (int j = 0; j < 16; j++)
		if (q4.qs[j] != (uint8_t)(j | (15 - j) << 4))
			bad++;
	tap_is_int(bad, 0, "q4_0 hand block: byte j = element j (low nibble) | element j+16 (high)");
	tap_is_int(q4.qs[0], 0xf0, "q4_0 hand block: byte 0 is 0xf0");
	quant_dequantize_row_ref(ST_Q4_0, &q4, y, 32);
	tap_is_int(count_bit_diffs(x, y, 32), 0, "q4_0 hand block dequantizes back exactly");

	/* Q4_0 ties and the sign of max: the first of equal magnitudes wins,
	 * here +5 at element 3 over -5 at element 10, so d = 5/-8 = -0.625
	 * (f16 0xb900), x = 5 maps to q = 0 and x = -5 clamps at 15 (-7 d). */
	memset(x, 0, sizeof x);
	x[3] = 5;
	x[10] = -5;
	quant_quantize_row_ref(ST_Q4_0, x, &q4, 32);
	tap_is_int(q4.d, 0xb900, "q4_0 signed max: d = +5/-8 = -0.625 (first of equal |x|)");
	bad = 0;
	for (int j = 0; j < 16; j++)
		if (q4.qs[j] != (j == 3 ? 0x80 : j == 10 ? 0x8f : 0x88))
			bad++;
	tap_is_int(bad, 0, "q4_0 signed max: q(5) = 0, q(-5) = 15 (clamped), zeros = 8");

	/* Q4_0 rounding is x*id + 8.5 truncated: halves go up, not away from 0
	 * (d = 1: 2.5 -> q 11 = +3, -2.5 -> q 6 = -2). */
	memset(x, 0, sizeof x);
	x[0] = -8;
	x[1] = 2.5f;
	x[2] = -2.5f;
	x[3] = 0.5f;
	x[4] = -0.5f;
	quant_quantize_row_ref(ST_Q4_0, x, &q4, 32);
	tap_ok(q4.qs[1] == 0x8b && q4.qs[2] == 0x86 && q4.qs[3] == 0x89 && q4.qs[4] == 0x88,
	       "q4_0 ties round half up (+2.5 -> 3, -2.5 -> -2, +0.5 -> 1, -0.5 -> 0): %02x %02x %02x %02x",
	       q4.qs[1], q4.qs[2], q4.qs[3], q4.qs[4]);
}

static void test_special_blocks(void)
{
	float x[64], y[64];
	struct block_q8_0 q8[2];
	struct block_q4_0 q4[2];

	/* All-zero blocks: d = 0, no NaN from 0 * (1/0). ggml stores -0 for
	 * Q4_0 (0 / -8); we keep its bytes. */
	memset(x, 0, sizeof x);
	quant_quantize_row_ref(ST_Q8_0, x, q8, 64);
	quant_dequantize_row_ref(ST_Q8_0, q8, y, 64);
	tap_ok(q8[0].d == 0 && q8[0].qs[5] == 0, "q8_0 zero block: d = 0, q = 0");
	tap_is_int(count_bit_diffs(x, y, 64), 0, "q8_0 zero block dequantizes to +0, no NaN");
	quant_quantize_row_ref(ST_Q4_0, x, q4, 64);
	quant_dequantize_row_ref(ST_Q4_0, q4, y, 64);
	tap_ok(q4[0].d == 0x8000 && q4[0].qs[5] == 0x88, "q4_0 zero block: d = -0 (as ggml), q = 8");
	int nonzero = 0;
	for (int j = 0; j < 64; j++)
		if (y[j] != 0 || isnan(y[j]))
			nonzero++;
	tap_is_int(nonzero, 0, "q4_0 zero block dequantizes to zeros, no NaN");

	/* Values so small that d is zero in f16: the block reads back as 0. */
	for (int j = 0; j < 32; j++)
		x[j] = (j % 2 ? 1e-30f : -3e-31f);
	quant_quantize_row_ref(ST_Q8_0, x, q8, 32);
	quant_dequantize_row_ref(ST_Q8_0, q8, y, 32);
	tap_ok(q8[0].d == 0 && y[1] == 0 && !isnan(y[0]), "q8_0 tiny block: d underflows to 0, reads 0");
	quant_quantize_row_ref(ST_Q4_0, x, q4, 32);
	quant_dequantize_row_ref(ST_Q4_0, q4, y, 32);
	tap_ok((q4[0].d & 0x7fff) == 0 && y[1] == 0 && !isnan(y[0]), "q4_0 tiny block reads 0");

	/* A NaN or an infinity poisons its own block (d = NaN) and no other. */
	const float bad_vals[3] = { NAN, INFINITY, -INFINITY };
	for (int k = 0; k < 3; k++) {
		fill_random(x, 64);
		x[40] = bad_vals[k];
		quant_quantize_row_ref(ST_Q8_0, x, q8, 64);
		quant_dequantize_row_ref(ST_Q8_0, q8, y, 64);
		int nan_in_1 = 0, nan_in_0 = 0;
		for (int j = 0; j < 32; j++) {
			nan_in_0 += isnan(y[j]) != 0;
			nan_in_1 += isnan(y[32 + j]) != 0;
		}
		tap_ok(q8[1].d == 0x7e00 && nan_in_1 == 32 && nan_in_0 == 0 && isfinite(st_fp16_to_f32(q8[0].d)),
		       "q8_0 block with %g: d = NaN, all 32 read NaN, the other block is untouched", bad_vals[k]);
		quant_quantize_row_ref(ST_Q4_0, x, q4, 64);
		quant_dequantize_row_ref(ST_Q4_0, q4, y, 64);
		nan_in_0 = nan_in_1 = 0;
		for (int j = 0; j < 32; j++) {
			nan_in_0 += isnan(y[j]) != 0;
			nan_in_1 += isnan(y[32 + j]) != 0;
		}
		tap_ok(q4[1].d == 0x7e00 && nan_in_1 == 32 && nan_in_0 == 0,
		       "q4_0 block with %g: d = NaN, the other block is untouched", bad_vals[k]);
	}

	/* Contract errors. */
	tap_is_int(quant_quantize_row(ST_IQ2_XXS, x, q8, 256), -ENOTSUP, "quantize iq2_xxs: -ENOTSUP");
	tap_is_int(quant_dequantize_row(ST_TQ1_0, q8, y, 256), -ENOTSUP, "dequantize tq1_0: -ENOTSUP");
	tap_is_int(quant_dequantize_row(77, q8, y, 32), -ENOTSUP, "dequantize unknown type: -ENOTSUP");
	tap_is_int(quant_quantize_row(ST_Q8_0, x, q8, 33), -EINVAL, "quantize q8_0 of 33: -EINVAL");
	tap_is_int(quant_dequantize_row_ref(ST_Q4_0, q4, y, 48), -EINVAL, "dequantize q4_0 of 48: -EINVAL");
}

/* quantize -> dequantize stays within what the format allows, per element.
 * u is the f32 unit roundoff; the terms name where each error comes from. */
static void test_error_bounds(void)
{
	const double u = 0x1p-24;
	float *x = tap_xmalloc(MAX_N * sizeof *x), *y = tap_xmalloc(MAX_N * sizeof *y);
	void *q = tap_xmalloc(MAX_N * sizeof(float));

	for (size_t li = 0; li < N_LENGTHS; li++) {
		const int64_t n = lengths[li];
		fill_random(x, n);

		/* Q8_0: |x - q d16| <= d (1/2 + 256 u)   the rounding to q (x*id is
		 *   itself rounded), + 127 |d - d16|      the scale stored as f16,
		 *   + 128 u d16                            the product q*d16. */
		double worst = 0;
		int64_t over = 0;
		quant_quantize_row_ref(ST_Q8_0, x, q, n);
		quant_dequantize_row_ref(ST_Q8_0, q, y, n);
		for (int64_t b = 0; b < n / 32; b++) {
			float amax = 0;
			for (int j = 0; j < 32; j++)
				amax = fmaxf(amax, fabsf(x[b * 32 + j]));
			const double d = amax / 127.0f;
			const double d16 = st_fp16_to_f32(((struct block_q8_0 *)q)[b].d);
			const double bound = d * (0.5 + 256 * u) + 127 * fabs(d - d16) + 128 * u * d16;
			for (int j = 0; j < 32; j++) {
				const double err = fabs((double)x[b * 32 + j] - y[b * 32 + j]);
				if (err > bound)
					over++;
				if (d > 0 && err / d > worst)
					worst = err / d;
			}
		}
		tap_ok(over == 0, "q8_0 n=%lld: |x - deq| <= d/2 + 127|d - f16(d)| (+ulps) everywhere; max %.4f d",
		       (long long)n, worst);

		/* Q4_0: with v = x*id in [-8, 8]: |x - (q-8) d16| <=
		 *   |d| (1/2 + 32 u)   rounding v + 8.5 down, when v < 7.5,
		 *   |d| (1 + 16 u)     when v >= 7.5 clamps at q = 15 (the side
		 *                      opposite the max: 8 steps, only 7 exist),
		 *   + 8 |d - d16| + 8 u |d16|   the f16 scale and the product. */
		worst = 0;
		over = 0;
		int64_t clamped = 0;
		quant_quantize_row_ref(ST_Q4_0, x, q, n);
		quant_dequantize_row_ref(ST_Q4_0, q, y, n);
		for (int64_t b = 0; b < n / 32; b++) {
			float amax = 0, max = 0;
			for (int j = 0; j < 32; j++) {
				if (amax < fabsf(x[b * 32 + j])) {
					amax = fabsf(x[b * 32 + j]);
					max = x[b * 32 + j];
				}
			}
			const float d = max / -8.0f;
			const float id = 1.0f / d;
			const double d16 = st_fp16_to_f32(((struct block_q4_0 *)q)[b].d);
			for (int j = 0; j < 32; j++) {
				const double v = (double)(x[b * 32 + j] * id);
				const int clamp = v >= 7.5;
				const double bound = fabs(d) * (clamp ? 1 + 16 * u : 0.5 + 32 * u) +
						     8 * fabs(d - d16) + 8 * u * fabs(d16);
				const double err = fabs((double)x[b * 32 + j] - y[b * 32 + j]);
				clamped += clamp;
				if (err > bound)
					over++;
				if (!clamp && err / fabs(d) > worst)
					worst = err / fabs(d);
			}
		}
		tap_ok(over == 0,
		       "q4_0 n=%lld: |x - deq| <= |d|/2 (|d| where clamped: %lld) + 8|d - f16(d)|; max %.4f |d|",
		       (long long)n, (long long)clamped, worst);

		/* F16 and BF16 round to nearest: half an ulp, relative 2^-11 and
		 * 2^-8 for normal values (fill_random stays in f16's normal range
		 * except for rare tiny values, allowed half a subnormal step). */
		int64_t over16 = 0, overb = 0;
		quant_quantize_row_ref(ST_F16, x, q, n);
		quant_dequantize_row_ref(ST_F16, q, y, n);
		for (int64_t i = 0; i < n; i++)
			if (fabs((double)x[i] - y[i]) > fmax(0x1p-11 * fabs(x[i]), 0x1p-25))
				over16++;
		quant_quantize_row_ref(ST_BF16, x, q, n);
		quant_dequantize_row_ref(ST_BF16, q, y, n);
		for (int64_t i = 0; i < n; i++)
			if (fabs((double)x[i] - y[i]) > 0x1p-8 * fabs(x[i]))
				overb++;
		tap_ok(over16 == 0 && overb == 0, "f16/bf16 n=%lld: within half an ulp (%lld, %lld over)",
		       (long long)n, (long long)over16, (long long)overb);
	}

	/* Requantizing a dequantized block whose extreme quant is used (Q8_0:
	 * |q| = 127; Q4_0: q = 0) reproduces its bytes: d comes back exactly. */
	struct block_q8_0 *b8 = q, b8_again[64];
	struct block_q4_0 *b4 = q, b4_again[64];
	for (int b = 0; b < 64; b++) {
		b8[b].d = st_f32_to_fp16(powf(2.0f, (float)(b % 16) - 8) * (1.0f + rnd_unit() / 4));
		for (int j = 0; j < 32; j++)
			b8[b].qs[j] = (int8_t)(tap_rand() % 255 - 127);
		b8[b].qs[tap_rand() % 32] = (b % 2) ? 127 : -127;
	}
	quant_dequantize_row_ref(ST_Q8_0, b8, y, 64 * 32);
	quant_quantize_row_ref(ST_Q8_0, y, b8_again, 64 * 32);
	tap_ok(memcmp(b8, b8_again, sizeof b8_again) == 0, "q8_0 dequantize -> quantize is the identity");
	for (int b = 0; b < 64; b++) {
		b4[b].d = st_f32_to_fp16(powf(2.0f, (float)(b % 16) - 8) * (1.0f + rnd_unit() / 4));
		for (int j = 0; j < 16; j++)
			b4[b].qs[j] = (uint8_t)tap_rand();
		const int at = (int)(tap_rand() % 32);
		b4[b].qs[at % 16] &= at < 16 ? 0xf0 : 0x0f; /* a q = 0: the block's max */
	}
	quant_dequantize_row_ref(ST_Q4_0, b4, y, 64 * 32);
	quant_quantize_row_ref(ST_Q4_0, y, b4_again, 64 * 32);
	tap_ok(memcmp(b4, b4_again, sizeof b4_again) == 0, "q4_0 dequantize -> quantize is the identity");

	free(q);
	free(y);
	free(x);
}

/* ---- each SIMD set against the references, bit for bit ---- */

/* Random raw rows of each type (any bytes a file may hold, finite scales
 * and a few NaN/inf scales for the quantized ones). */
static void fill_raw(uint32_t type, void *dst, int64_t n)
{
	uint8_t *p = dst;
	const size_t bytes = st_row_bytes(type, (uint64_t)n);
	for (size_t i = 0; i < bytes; i++)
		p[i] = (uint8_t)tap_rand();
	if (type == ST_Q8_0 || type == ST_Q4_0) {
		const size_t bb = st_type_info(type)->block_bytes;
		for (size_t b = 0; b < bytes / bb; b++) {
			uint16_t d = st_f32_to_fp16(rnd_unit() * 4);
			if (tap_rand() % 50 == 0)
				d = (tap_rand() % 2) ? 0x7c00 : 0x7e01;
			memcpy(p + b * bb, &d, sizeof d);
		}
	}
}

static void test_isa(const char *isa)
{
	float *x = tap_xmalloc((MAX_N + 7) * sizeof *x);
	float *y_ref = tap_xmalloc((MAX_N + 7) * sizeof *y_ref), *y = tap_xmalloc((MAX_N + 7) * sizeof *y);
	uint8_t *raw = tap_xmalloc((MAX_N + 7) * sizeof(float)), *q_ref = tap_xmalloc(MAX_N * sizeof(float));
	uint8_t *q = tap_xmalloc(MAX_N * sizeof(float));

	/* Every f16 and every bf16 bit pattern. */
	uint16_t *all = tap_xmalloc(65536 * sizeof *all);
	float *all_ref = tap_xmalloc(65536 * sizeof *all_ref), *all_got = tap_xmalloc(65536 * sizeof *all_got);
	for (uint32_t i = 0; i < 65536; i++)
		all[i] = (uint16_t)i;
	quant_dequantize_row_ref(ST_F16, all, all_ref, 65536);
	quant_dequantize_row(ST_F16, all, all_got, 65536);
	tap_is_int(count_bit_diffs(all_ref, all_got, 65536), 0, "%s: dequantize f16, all 65536 values", isa);
	quant_dequantize_row_ref(ST_BF16, all, all_ref, 65536);
	quant_dequantize_row(ST_BF16, all, all_got, 65536);
	tap_is_int(count_bit_diffs(all_ref, all_got, 65536), 0, "%s: dequantize bf16, all 65536 values", isa);
	free(all_got);
	free(all_ref);
	free(all);

	for (size_t ti = 0; ti < N_TYPES; ti++) {
		const uint32_t t = types[ti];
		int64_t diffs = 0;
		for (size_t li = 0; li < N_LENGTHS; li++) {
			/* float types also get a ragged tail (any n is a row) */
			const int64_t n = lengths[li] + (st_type_info(t)->block_elems == 1 ? 7 : 0);
			fill_raw(t, raw, n);
			if (quant_dequantize_row_ref(t, raw, y_ref, n) != 0 ||
			    quant_dequantize_row(t, raw, y, n) != 0)
				diffs += n;
			diffs += count_bit_diffs(y_ref, y, n);
		}
		tap_is_int(diffs, 0, "%s: dequantize %s = reference, bit for bit", isa, st_type_name(t));
	}

	/* Quantize: random rows, then rows of special cases: exact ties (amax
	 * 127 makes x*id = x), NaN, infinities, zeros, tiny and huge values. */
	for (size_t ti = 0; ti < N_TYPES; ti++) {
		const uint32_t t = types[ti];
		int64_t diffs = 0;
		for (size_t li = 0; li < N_LENGTHS + 1; li++) {
			const int64_t n = li < N_LENGTHS ? lengths[li] : 4096;
			fill_random(x, n);
			if (li == N_LENGTHS) {
				for (int64_t b = 0; b < n / 32; b++) {
					float *xb = x + b * 32;
					switch (b % 8) {
					case 0: /* ties at every half */
						for (int j = 0; j < 32; j++)
							xb[j] = (float)((int)(tap_rand() % 255) - 127) + 0.5f;
						xb[tap_rand() % 32] = (tap_rand() % 2) ? 127 : -127;
						break;
					case 1:
						xb[tap_rand() % 32] = NAN;
						break;
					case 2:
						xb[tap_rand() % 32] = (tap_rand() % 2) ? INFINITY : -INFINITY;
						break;
					case 3:
						memset(xb, 0, 32 * sizeof *xb);
						break;
					case 4:
						for (int j = 0; j < 32; j++)
							xb[j] *= 1e-36f;
						break;
					case 5:
						for (int j = 0; j < 32; j++)
							xb[j] = (tap_rand() % 2 ? 1 : -1) * FLT_MAX * fabsf(rnd_unit());
						break;
					default:
						break;
					}
				}
			}
			const size_t bytes = st_row_bytes(t, (uint64_t)n);
			memset(q_ref, 0xa5, bytes);
			memset(q, 0x5a, bytes);
			if (quant_quantize_row_ref(t, x, q_ref, n) != 0 || quant_quantize_row(t, x, q, n) != 0 ||
			    memcmp(q_ref, q, bytes) != 0)
				diffs++;
		}
		tap_is_int(diffs, 0, "%s: quantize %s = reference, bit for bit (incl. ties, NaN, inf, 0)", isa,
			   st_type_name(t));
	}

	free(q);
	free(q_ref);
	free(raw);
	free(y);
	free(y_ref);
	free(x);
}

int main(void)
{
	tap_srand(0x9e3779b97f4a7c15ull);
	test_hand_blocks();
	test_special_blocks();
	test_error_bounds();
	for (size_t i = 0; i < N_ISAS; i++) {
		int rc = isa_force(isas[i]);
		if (rc == -ENOTSUP) {
			tap_skip("%s: this CPU or build cannot run it", isas[i]);
			continue;
		}
		if (!tap_is_int(rc, 0, "isa_force(%s)", isas[i]))
			continue;
		tap_is_str(isa_name(), isas[i], "%s is in use", isas[i]);
		test_isa(isas[i]);
	}
	tap_is_int(isa_force(NULL), 0, "back to the best set: %s", isa_name());
	return tap_done();
}
