/* test-quant.c: kernels/quant.h. The references against hand-computed
 * blocks of every type (layout, ggml's rounding, special values), the error
 * each format allows, and each type through quantize -> GGUF file -> read;
 * then every SIMD set this CPU runs against the references, bit for bit
 * (dequantization of every type, the dot products' activations). Not here:
 * dot products (test-dot.c); equality with ggml itself
 * (bench/ggml-compare.sh, which needs a llama.cpp build). */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"
#include "kernels/isa.h"
#include "kernels/quant.h"
#include "kernels/quant_ref.h"
#include "gguf/gguf.h"
#include "tests/tap.h"

static const char *const isas[] = { "scalar", "avx2", "avx512", "avx512vnni" };
#define N_ISAS (sizeof isas / sizeof isas[0])
/* Row lengths: one block, two, odd block counts, and model-sized rows; for
 * the super-block types the same counts of 256. */
static const int64_t lengths[] = { 32, 64, 96, 160, 480, 4096, 8192 + 32, 11008 };
static const int64_t lengths256[] = { 256, 512, 768, 1280, 3840, 4096, 8192 + 256, 11008 };
#define N_LENGTHS (sizeof lengths / sizeof lengths[0])
#define MAX_N 11008

static const uint32_t types[] = { ST_F32,  ST_F16,  ST_BF16,   ST_Q8_0, ST_Q4_0, ST_Q4_1, ST_Q5_0, ST_Q5_1,
				  ST_IQ4_NL, ST_Q2_K, ST_Q3_K, ST_Q4_K, ST_Q5_K, ST_Q6_K, ST_IQ4_XS };
#define N_TYPES (sizeof types / sizeof types[0])
/* the activation formats of the dot products (quant_act_row) */
static const uint32_t act_types[] = { ST_Q8_0, ST_Q8_1, ST_Q8_K };
#define N_ACT_TYPES (sizeof act_types / sizeof act_types[0])

static int64_t length_of(uint32_t type, size_t li)
{
	return st_type_info(type)->block_elems == QK_K ? lengths256[li] : lengths[li];
}

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
	tap_is_int(quant_dequantize_row(ST_Q4_K, q8, y, 32), -EINVAL, "dequantize q4_K of 32 (not 256): -EINVAL");
	tap_is_int(quant_quantize_row(ST_Q6_K, x, q8, 32), -EINVAL, "quantize q6_K of 32: -EINVAL");
	tap_is_int(quant_act_row(ST_Q8_K, x, q8, 32), -EINVAL, "q8_K activations of 32: -EINVAL");
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

/* ---- hand-checked blocks of the other types: bytes set by hand, every
 * expected value worked out from the format (not from the code under test),
 * all exactly representable, so the reference and the SIMD set in use must
 * produce them bit for bit ---- */

/* Compare n dequantized values of `blk` (reference and fast) with want. */
static void check_hand(uint32_t type, const void *blk, const float *want, int64_t n, const char *what)
{
	float *y = tap_xmalloc((size_t)n * sizeof *y), *z = tap_xmalloc((size_t)n * sizeof *z);
	const int rc = quant_dequantize_row_ref(type, blk, y, n) | quant_dequantize_row(type, blk, z, n);
	const int64_t bad = rc ? n : count_bit_diffs(y, want, n) + count_bit_diffs(z, want, n);
	if (!tap_ok(bad == 0, "%s hand block: %s", st_type_name(type), what)) {
		for (int64_t i = 0; i < n; i++)
			if (f32_bits(y[i]) != f32_bits(want[i]) || f32_bits(z[i]) != f32_bits(want[i])) {
				tap_diag("first difference at %lld: ref %g, fast %g, want %g", (long long)i, y[i],
					 z[i], want[i]);
				break;
			}
	}
	free(z);
	free(y);
}

static void test_hand_blocks_more(void)
{
	float want[QK_K];

	/* Q4_1: d = 0.5, m = -2; byte j = j | (15-j) << 4: weight j = j/2 - 2,
	 * weight j+16 = (15-j)/2 - 2. */
	struct block_q4_1 q41 = { .d = 0x3800, .m = 0xc000 };
	for (int j = 0; j < 16; j++) {
		q41.qs[j] = (uint8_t)(j | (15 - j) << 4);
		want[j] = (float)j * 0.5f - 2;
		want[j + 16] = (float)(15 - j) * 0.5f - 2;
	}
	check_hand(ST_Q4_1, &q41, want, 32, "w = q d + m, low nibbles first");

	/* Q5_0: d = 1; qh = 0xaaaaaaaa sets the fifth bit of the odd weights:
	 * weight j = (nibble | 16 [j odd]) - 16. */
	struct block_q5_0 q50 = { .d = 0x3c00, .qh = { 0xaa, 0xaa, 0xaa, 0xaa } };
	for (int j = 0; j < 16; j++) {
		q50.qs[j] = (uint8_t)(j | (15 - j) << 4);
		want[j] = (float)(j + (j % 2 ? 16 : 0) - 16);
		want[j + 16] = (float)(15 - j + (j % 2 ? 16 : 0) - 16); /* bit j+16: odd too */
	}
	check_hand(ST_Q5_0, &q50, want, 32, "w = d (q - 16), fifth bit of weight j at bit j of qh");

	/* Q5_1: d = 0.25, m = 1, qh = 0x0000ffff: weights 0..15 get +16. */
	struct block_q5_1 q51 = { .d = 0x3400, .m = 0x3c00, .qh = { 0xff, 0xff, 0, 0 } };
	for (int j = 0; j < 16; j++) {
		q51.qs[j] = (uint8_t)(j | (15 - j) << 4);
		want[j] = (float)(j + 16) * 0.25f + 1;
		want[j + 16] = (float)(15 - j) * 0.25f + 1;
	}
	check_hand(ST_Q5_1, &q51, want, 32, "w = q d + m with the fifth bits");

	/* IQ4_NL: d = 2; weight j = 2 * value[j], weight j+16 = 2 * value[15-j]
	 * with ggml's table -127 -104 -83 -65 -49 -35 -22 -10 1 13 25 38 53 69 89 113. */
	static const int8_t table[16] = { -127, -104, -83, -65, -49, -35, -22, -10,
					  1,    13,	 25,  38,  53,	69,  89,  113 };
	struct block_iq4_nl nl = { .d = 0x4000 };
	for (int j = 0; j < 16; j++) {
		nl.qs[j] = (uint8_t)(j | (15 - j) << 4);
		want[j] = 2.0f * (float)table[j];
		want[j + 16] = 2.0f * (float)table[15 - j];
	}
	check_hand(ST_IQ4_NL, &nl, want, 32, "w = d * table[q]");

	/* Q2_K: d = 1, dmin = 0.5; sub-block s (16 weights) has scale s and
	 * minimum 15 - s; every qs byte 0xe4 = quants 0,1,2,3 at bits 0,2,4,6:
	 * weight 128g + 32k + l has q = k, so w = s k - (15 - s)/2. */
	struct block_q2_K q2 = { .d = 0x3c00, .dmin = 0x3800 };
	for (int s = 0; s < 16; s++)
		q2.scales[s] = (uint8_t)(s | (15 - s) << 4);
	memset(q2.qs, 0xe4, sizeof q2.qs);
	for (int i = 0; i < QK_K; i++) {
		const int s = i / 16, k = (i % 128) / 32;
		want[i] = (float)(s * k) - (float)(15 - s) * 0.5f;
	}
	check_hand(ST_Q2_K, &q2, want, QK_K, "w = d sc q - dmin m, 2-bit quants 32 weights apart");

	/* Q3_K: d = 1; every 6-bit scale 33 (sc - 32 = 1: nibbles 1, top bits 2)
	 * except sub-block 5 with 35 (= 3: byte 5's low nibble 3); quants as
	 * Q2_K's (q = k) with every high bit set (no -4), except hmask[3] bit 0
	 * clear: weight 3 is 0 - 4. */
	struct block_q3_K q3 = { .d = 0x3c00 };
	memset(q3.scales, 0x11, 8);
	memset(q3.scales + 8, 0xaa, 4);
	q3.scales[5] = 0x13;
	memset(q3.qs, 0xe4, sizeof q3.qs);
	memset(q3.hmask, 0xff, sizeof q3.hmask);
	q3.hmask[3] = 0xfe;
	for (int i = 0; i < QK_K; i++)
		want[i] = (float)((i / 16 == 5 ? 3 : 1) * ((i % 128) / 32));
	want[3] = -4;
	check_hand(ST_Q3_K, &q3, want, QK_K, "w = d (sc - 32) q, the packed scales, hmask's missing -4");

	/* Q4_K: d = 1, dmin = 1; scales 1..7 and 40 (sub-block 7: low nibble 8
	 * in byte 11, top bits 2 in byte 3's bits 6-7), minimums 0..7:
	 * bytes 1 2 3 4|0x80, 0 1 2 3, 0x45 0x56 0x67 0x78. qs byte l of group j
	 * = (l & 15) | (15 - (l & 15)) << 4: weight 64j + l (l < 32) has q = l & 15
	 * in sub-block 2j, weight 64j + 32 + l has q = 15 - (l & 15) in 2j + 1. */
	static const uint8_t k4_scales[12] = { 1, 2, 3, 4 | 0x80, 0, 1, 2, 3, 0x45, 0x56, 0x67, 0x78 };
	static const int k4_sc[8] = { 1, 2, 3, 4, 5, 6, 7, 40 }, k4_m[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	struct block_q4_K q4 = { .d = 0x3c00, .dmin = 0x3c00 };
	memcpy(q4.scales, k4_scales, 12);
	for (int j = 0; j < 4; j++)
		for (int l = 0; l < 32; l++)
			q4.qs[32 * j + l] = (uint8_t)((l & 15) | (15 - (l & 15)) << 4);
	for (int i = 0; i < QK_K; i++) {
		const int sub = i / 32, l = i % 32, q = sub % 2 ? 15 - (l & 15) : l & 15;
		want[i] = (float)(k4_sc[sub] * q - k4_m[sub]);
	}
	check_hand(ST_Q4_K, &q4, want, QK_K, "w = d sc q - dmin m, 6-bit scales and minimums packed");

	/* Q5_K: Q4_K's head and quants, qh bytes 0x55: the even sub-blocks
	 * (bits 0, 2, 4, 6) get their fifth bit, q + 16. */
	struct block_q5_K q5 = { .d = 0x3c00, .dmin = 0x3c00 };
	memcpy(q5.scales, k4_scales, 12);
	memcpy(q5.qs, q4.qs, sizeof q5.qs);
	memset(q5.qh, 0x55, sizeof q5.qh);
	for (int i = 0; i < QK_K; i++) {
		const int sub = i / 32, l = i % 32, q = sub % 2 ? 15 - (l & 15) : (l & 15) + 16;
		want[i] = (float)(k4_sc[sub] * q - k4_m[sub]);
	}
	check_hand(ST_Q5_K, &q5, want, QK_K, "Q4_K plus the fifth bit of sub-block j at bit j of qh");

	/* Q6_K: d = 0.5, scales[s] = s - 8; ql bytes 0x21, qh bytes 0xe4: in a
	 * group of 128, weights 0..31 are 1 | 0 << 4, 32..63 1 | 1 << 4,
	 * 64..95 2 | 2 << 4, 96..127 2 | 3 << 4, minus 32: -31, -15, 2, 18. */
	struct block_q6_K q6 = { .d = 0x3800 };
	memset(q6.ql, 0x21, sizeof q6.ql);
	memset(q6.qh, 0xe4, sizeof q6.qh);
	for (int s = 0; s < 16; s++)
		q6.scales[s] = (int8_t)(s - 8);
	static const int q6_v[4] = { -31, -15, 2, 18 };
	for (int i = 0; i < QK_K; i++)
		want[i] = 0.5f * (float)(i / 16 - 8) * (float)q6_v[(i % 128) / 32]; /* 0 * -31 is -0 */
	check_hand(ST_Q6_K, &q6, want, QK_K, "w = d sc (q - 32), 4 low bits in ql, 2 high in qh");

	/* IQ4_XS: d = 1, sub-block ib's 6-bit scale 29 + ib (ls - 32 = ib - 3):
	 * low nibbles 13 14 15 0 1 2 3 4 -> scales_l = 0xed 0x0f 0x21 0x43,
	 * top bits 1 1 1 2 2 2 2 2 -> scales_h = 0xaa95; the indexes as IQ4_NL's. */
	struct block_iq4_xs xs = { .d = 0x3c00, .scales_h = 0xaa95, .scales_l = { 0xed, 0x0f, 0x21, 0x43 } };
	for (int ib = 0; ib < 8; ib++)
		for (int j = 0; j < 16; j++) {
			xs.qs[16 * ib + j] = (uint8_t)(j | (15 - j) << 4);
			want[32 * ib + j] = (float)(ib - 3) * (float)table[j]; /* 0 * -127 is -0 */
			want[32 * ib + 16 + j] = (float)(ib - 3) * (float)table[15 - j];
		}
	check_hand(ST_IQ4_XS, &xs, want, QK_K, "w = d (ls - 32) table[q], scales packed low/high");

	/* Q8_K (activations): the largest |x| maps to -127 * sign, d = max/-127
	 * (the signed max), bsums are the 16-sums. */
	float x[QK_K];
	struct block_q8_K q8k;
	for (int i = 0; i < QK_K; i++)
		x[i] = (float)(i % 7) - 3; /* -3..3 */
	x[100] = -127;
	quant_act_row_ref(ST_Q8_K, x, &q8k, QK_K);
	int ok = q8k.d == 1.0f && q8k.qs[100] == -127 && q8k.qs[1] == -2 && q8k.bsums[0] == 0 - 3 - 2 - 1 + 0 + 1 + 2 + 3 - 3 - 2 - 1 + 0 + 1 + 2 + 3 - 3 - 2;
	tap_ok(ok, "q8_K hand block: d = max/-127 = 1 (max -127), q = x, bsums[0] = -5 (d %g, bsums %d)",
	       (double)q8k.d, q8k.bsums[0]);
}

/* ---- quantize -> write -> read, and the error each type makes ---- */

/* Relative RMS error |x - dequant(quant(x))| / |x| on Gaussian-like rows,
 * ceilings at about 1.25x what the quantizers give here (deterministic data):
 * these are properties of the formats, and catch a quantizer gone wrong. */
static const struct {
	uint32_t type;
	double max_rel_rms;
} rt_types[] = {
	{ ST_F16, 2.5e-4 }, { ST_BF16, 2.2e-3 }, { ST_Q8_0, 0.0087 }, { ST_Q4_0, 0.135 },
	{ ST_Q4_1, 0.107 },  { ST_Q5_0, 0.07 },	  { ST_Q5_1, 0.053 },  { ST_IQ4_NL, 0.11 },
	{ ST_Q2_K, 0.39 },   { ST_Q3_K, 0.22 },	  { ST_Q4_K, 0.10 },   { ST_Q5_K, 0.051 },
	{ ST_Q6_K, 0.027 },  { ST_IQ4_XS, 0.112 },
};

static void test_roundtrip(void)
{
	const int64_t n = 1024, rows = 8;
	float *x = tap_xmalloc((size_t)(n * rows) * sizeof *x), *y = tap_xmalloc((size_t)(n * rows) * sizeof *y);
	float *z = tap_xmalloc((size_t)(n * rows) * sizeof *z);
	uint8_t *q = tap_xmalloc((size_t)(n * rows) * sizeof(float));
	char path[4096];
	snprintf(path, sizeof path, "%s/roundtrip.gguf", tap_tmpdir());
	/* sums of 4 uniforms: near-Gaussian, with the occasional large value */
	for (int64_t i = 0; i < n * rows; i++)
		x[i] = (rnd_unit() + rnd_unit() + rnd_unit() + rnd_unit()) * 0.02f * (tap_rand() % 100 == 0 ? 5 : 1);

	for (size_t k = 0; k < sizeof rt_types / sizeof rt_types[0]; k++) {
		const uint32_t t = rt_types[k].type;
		const size_t rb = st_row_bytes(t, (uint64_t)n);
		for (int64_t r = 0; r < rows; r++)
			quant_quantize_row(t, x + r * n, q + r * rb, n);
		for (int64_t r = 0; r < rows; r++)
			quant_dequantize_row_ref(t, q + r * rb, y + r * n, n);
		double e2 = 0, x2 = 0;
		for (int64_t i = 0; i < n * rows; i++) {
			e2 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
			x2 += (double)x[i] * x[i];
		}
		const double rel = sqrt(e2 / x2);
		tap_ok(rel <= rt_types[k].max_rel_rms, "%s: quantize -> dequantize, relative RMS error %.4f <= %g",
		       st_type_name(t), rel, rt_types[k].max_rel_rms);

		/* through a file: the reader sees the very bytes, a tensor of the type */
		struct st_err err = { "" };
		struct gguf_writer *w = gguf_writer_new(0);
		const uint64_t ne[2] = { (uint64_t)n, (uint64_t)rows };
		int rc = gguf_writer_add_str(w, "general.architecture", "llama");
		if (rc == 0)
			rc = gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", t, 2, ne);
		if (rc >= 0)
			rc = gguf_writer_begin(w, path, &err);
		if (rc >= 0)
			rc = gguf_writer_write(w, q, rb * (size_t)rows, &err);
		if (rc >= 0)
			rc = gguf_writer_finish(w, &err);
		gguf_writer_free(w);
		struct gguf *g = NULL;
		if (rc >= 0)
			rc = gguf_open(path, &g, &err);
		const struct gguf_tensor *tt = g ? gguf_find_tensor(g, "blk.0.ffn_up.weight") : NULL;
		int ok = rc >= 0 && tt && tt->type == t && tt->size == rb * (size_t)rows &&
			 memcmp(tt->data, q, tt->size) == 0;
		for (int64_t r = 0; ok && r < rows; r++)
			ok = quant_dequantize_row(t, (const uint8_t *)tt->data + r * rb, z + r * n, n) == 0;
		ok = ok && count_bit_diffs(y, z, n * rows) == 0;
		if (!tap_ok(ok, "%s: quantize -> write -> read gives the same bytes and values", st_type_name(t)))
			tap_diag("%s", err.msg);
		gguf_close(g);
	}
	free(q);
	free(z);
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
	/* the f16 scales (d, and m or dmin where the type has one) */
	size_t offs[2] = { 0, SIZE_MAX };
	switch (type) {
	case ST_Q4_1: case ST_Q5_1: case ST_Q4_K: case ST_Q5_K: offs[1] = 2; break;
	case ST_Q2_K: offs[0] = offsetof(struct block_q2_K, d); offs[1] = offsetof(struct block_q2_K, dmin); break;
	case ST_Q3_K: offs[0] = offsetof(struct block_q3_K, d); break;
	case ST_Q6_K: offs[0] = offsetof(struct block_q6_K, d); break;
	default: break;
	}
	if (st_type_info(type)->block_elems > 1) {
		const size_t bb = st_type_info(type)->block_bytes;
		for (size_t b = 0; b < bytes / bb; b++) {
			for (int k = 0; k < 2 && offs[k] != SIZE_MAX; k++) {
				uint16_t d = st_f32_to_fp16(rnd_unit() * 4);
				if (tap_rand() % 50 == 0)
					d = (tap_rand() % 2) ? 0x7c00 : 0x7e01;
				memcpy(p + b * bb + offs[k], &d, sizeof d);
			}
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
			const int64_t n = length_of(t, li) + (st_type_info(t)->block_elems == 1 ? 7 : 0);
			fill_raw(t, raw, n);
			if (quant_dequantize_row_ref(t, raw, y_ref, n) != 0 ||
			    quant_dequantize_row(t, raw, y, n) != 0)
				diffs += n;
			diffs += count_bit_diffs(y_ref, y, n);
		}
		tap_is_int(diffs, 0, "%s: dequantize %s = reference, bit for bit", isa, st_type_name(t));
	}

	/* Activations: random rows, then rows of special cases: exact ties
	 * (amax 127 makes x*id = x), NaN, infinities, zeros, tiny and huge
	 * values. */
	for (size_t ti = 0; ti < N_ACT_TYPES; ti++) {
		const uint32_t t = act_types[ti];
		int64_t diffs = 0;
		for (size_t li = 0; li < N_LENGTHS + 1; li++) {
			const int64_t n = li < N_LENGTHS ? length_of(t, li) : 4096;
			fill_random(x, n);
			if (li == N_LENGTHS) {
				for (int64_t b = 0; b < n / 32; b++) {
					float *xb = x + b * 32;
					switch (b % 9) {
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
					case 6: /* 127/amax overflows */
						for (int j = 0; j < 32; j++)
							xb[j] = 1e-44f * (float)(j % 3);
						break;
					case 7: { /* the largest magnitude twice, both signs: the first one's sign wins (q8_K) */
						const int j1 = (int)(tap_rand() % 32), j2 = (j1 + 1 + (int)(tap_rand() % 31)) % 32;
						xb[j1] = 300.0f;
						xb[j2] = -300.0f;
						break;
					}
					default:
						break;
					}
				}
			}
			const size_t bytes = st_row_bytes(t, (uint64_t)n);
			memset(q_ref, 0xa5, bytes);
			memset(q, 0x5a, bytes);
			if (quant_act_row_ref(t, x, q_ref, n) != 0 || quant_act_row(t, x, q, n) != 0 ||
			    memcmp(q_ref, q, bytes) != 0)
				diffs++;
		}
		tap_is_int(diffs, 0, "%s: %s activations = reference, bit for bit (incl. ties, NaN, inf, 0)", isa,
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
	test_hand_blocks_more();
	test_roundtrip();
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
