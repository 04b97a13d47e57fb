/* test-dot.c: kernels/dot.h. Every weight type on every instruction set
 * this CPU runs, against the scalar reference: exactly on data where float
 * arithmetic cannot round, within a stated bound on random data, with odd
 * block counts; plus the activation contract and NaN/inf propagation. Not
 * here: quantization itself (test-quant.c). */
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"
#include "kernels/isa.h"
#include "kernels/quant.h"
#include "kernels/quant_ref.h"
#include "tests/tap.h"

/* Tolerances on random data, |fast - ref| <= tol, with u = 2^-24 (the f32
 * unit roundoff) and S the sum of |terms| the dot adds up:
 *
 *  weights     acts  tol                        why
 *  F32         f32   (n/32 + 8) u S + u |ref|   S = sum |w x|. The reference
 *  F16, BF16   f32   (same)                     sums in double, then rounds
 *                                               once (u |ref|). Every fast
 *    kernel is FMA (exact products) into >= 32 float lanes, so a lane adds
 *    <= n/32 terms, then <= 8 levels of reduction: the textbook bound for
 *    recursive summation, gamma_k S with k = n/32 + 8. Widening f16/bf16 to
 *    f32 is exact, so the three share it.
 *  Q8_0, Q4_0, q8_0  2 (n/32 + 8) u S          S = sum_i (|a_i| + |b_i|) |x_i|
 *  Q5_0, IQ4_NL                                  with w_i = a_i - b_i split into
 *  Q4_1, Q5_1  q8_1  (same)                      its scale part a (d q) and its
 *  Q2_K..Q6_K, q8_K  (same)                      minimum part b (m, dmin m; 0 for
 *  IQ4_XS                                        the symmetric types), x the
 *    dequantized activations. Integer sums within a block are exact on both
 *    sides; what differs is the float arithmetic on the per-block terms (the
 *    reference serial, ggml-style; the fast kernels in lanes, converting
 *    partial integer sums to float): at most 2 roundings per 32 weights
 *    plus 8 levels of reduction on each side, each within gamma_{n/32+8} S
 *    of the exact value.
 *
 * These bounds hold for any data, so a dropped or misplaced element can hide
 * inside them on long rows; test_exact() closes that gap with integer data
 * on which every partial sum is exactly representable, where any correct
 * kernel must equal the reference bit for bit. */
static double tolerance(uint32_t type, int64_t n, double S, double ref)
{
	const double u = 0x1p-24;
	const double k = (double)n / 32 + 8;
	if (dot_act_type(type) != ST_F32)
		return 2 * k * u * S;
	return k * u * S + u * fabs(ref);
}

static const char *const isas[] = { "scalar", "avx2", "avx512", "avx512vnni" };
#define N_ISAS (sizeof isas / sizeof isas[0])
static const uint32_t types[] = { ST_F32,  ST_F16,	 ST_BF16, ST_Q8_0, ST_Q4_0, ST_Q4_1,
				  ST_Q5_0, ST_Q5_1, ST_IQ4_NL, ST_Q2_K, ST_Q3_K, ST_Q4_K,
				  ST_Q5_K, ST_Q6_K, ST_IQ4_XS };
#define N_TYPES (sizeof types / sizeof types[0])
/* Blocks of 32: 1, 2, 3, 5 (the pair loops and the odd last block alone),
 * 15 (an 8-block step, then pairs, then one), 128, 257 (8-block steps and
 * one more; for floats the 64 loop and its 32 tail), 344 (model rows).
 * Super-blocks of 256: 1, 2, 3, 5, 15, 16, 33 (odd counts around the
 * 2- and 4-block steps), 43 (an 11008-wide row). */
static const int64_t lengths32[] = { 32, 64, 96, 160, 480, 4096, 8192 + 32, 11008 };
static const int64_t lengths256[] = { 256, 512, 768, 1280, 3840, 4096, 8192 + 256, 11008 };
#define N_LENGTHS (sizeof lengths32 / sizeof lengths32[0])
#define MAX_N 11008

static const int64_t *lengths_of(uint32_t type)
{
	return st_type_info(type)->block_elems == QK_K ? lengths256 : lengths32;
}
#define N_TRIALS 4 /* random rows per (type, length) */

static float rnd_unit(void) /* uniform in [-1, 1) */
{
	return (float)((double)(tap_rand() >> 40) / (double)(1ull << 23) - 1.0);
}

static int rnd_int(int lo, int hi) /* uniform in [lo, hi] */
{
	return lo + (int)(tap_rand() % (uint64_t)(hi - lo + 1));
}

/* Rows with per-block magnitudes over 10^-2..10^2, like real activations. */
static void fill_random(float *x, int64_t n)
{
	for (int64_t b = 0; b < n; b += 32) {
		const float scale = powf(10.0f, 2.0f * rnd_unit());
		for (int64_t j = b; j < b + 32; j++)
			x[j] = rnd_unit() * scale;
	}
}

/* Where a type keeps the f16 scale of its quants (d) and of its minimums
 * (m or dmin), as byte offsets in a block; -1: none. */
static void scale_fields(uint32_t type, int *d_off, int *m_off)
{
	*d_off = 0;
	*m_off = -1;
	switch (type) {
	case ST_Q4_1: case ST_Q5_1: case ST_Q4_K: case ST_Q5_K:
		*m_off = 2;
		break;
	case ST_Q2_K:
		*d_off = offsetof(struct block_q2_K, d);
		*m_off = offsetof(struct block_q2_K, dmin);
		break;
	case ST_Q3_K: *d_off = offsetof(struct block_q3_K, d); break;
	case ST_Q6_K: *d_off = offsetof(struct block_q6_K, d); break;
	default: break;
	}
}

/* The row dequantized with one of its two f16 scales zeroed. */
static void dequant_part(uint32_t type, const void *w, int64_t n, int zero_off, float *out)
{
	const struct st_type_info *ti = st_type_info(type);
	const size_t bytes = st_row_bytes(type, (uint64_t)n);
	uint8_t *copy = tap_xmalloc(bytes);
	memcpy(copy, w, bytes);
	for (size_t b = 0; zero_off >= 0 && b < bytes / ti->block_bytes; b++)
		memset(copy + b * ti->block_bytes + zero_off, 0, 2);
	quant_dequantize_row_ref(type, copy, out, n);
	free(copy);
}

/* S of the tolerance table, from the very bytes the kernels read. */
static double abs_terms(uint32_t type, const void *w, const void *act, int64_t n)
{
	double S = 0;
	float *a = tap_xmalloc((size_t)n * sizeof *a), *b = tap_xmalloc((size_t)n * sizeof *b);
	float *x = tap_xmalloc((size_t)n * sizeof *x);
	int d_off, m_off;
	scale_fields(type, &d_off, &m_off);
	if (st_type_info(type)->block_elems > 1) {
		dequant_part(type, w, n, m_off, a); /* minimums zeroed: the scale part */
		if (m_off >= 0)
			dequant_part(type, w, n, d_off, b); /* scales zeroed: the minimums */
		else
			memset(b, 0, (size_t)n * sizeof *b);
	} else {
		quant_dequantize_row_ref(type, w, a, n);
		memset(b, 0, (size_t)n * sizeof *b);
	}
	quant_dequantize_row_ref(dot_act_type(type), act, x, n);
	for (int64_t i = 0; i < n; i++)
		S += (fabs((double)a[i]) + fabs((double)b[i])) * fabs((double)x[i]);
	free(x);
	free(b);
	free(a);
	return S;
}

/* ---- the activation contract ---- */

static void test_contract(void)
{
	tap_is_int(dot_act_type(ST_Q4_0), ST_Q8_0, "q4_0 weights take q8_0 activations");
	tap_is_int(dot_act_type(ST_Q8_0), ST_Q8_0, "q8_0 weights take q8_0 activations");
	tap_is_int(dot_act_type(ST_BF16), ST_F32, "bf16 weights take f32 activations");
	tap_is_int((int64_t)dot_act_bytes(ST_Q4_0, 4096), 4096 / 32 * 34, "act bytes for q4_0, n=4096");
	tap_is_int((int64_t)dot_act_bytes(ST_F16, 4096), 4096 * 4, "act bytes for f16, n=4096");
	tap_is_int(dot_act_type(ST_Q5_0), ST_Q8_0, "q5_0 weights take q8_0 activations");
	tap_is_int(dot_act_type(ST_IQ4_NL), ST_Q8_0, "iq4_nl weights take q8_0 activations");
	tap_is_int(dot_act_type(ST_Q4_1), ST_Q8_1, "q4_1 weights take q8_1 activations");
	tap_is_int(dot_act_type(ST_Q5_1), ST_Q8_1, "q5_1 weights take q8_1 activations");
	tap_ok(dot_act_type(ST_Q2_K) == ST_Q8_K && dot_act_type(ST_Q3_K) == ST_Q8_K &&
	       dot_act_type(ST_Q4_K) == ST_Q8_K && dot_act_type(ST_Q5_K) == ST_Q8_K &&
	       dot_act_type(ST_Q6_K) == ST_Q8_K && dot_act_type(ST_IQ4_XS) == ST_Q8_K,
	       "q2_K..q6_K and iq4_xs weights take q8_K activations");
	tap_is_int((int64_t)dot_act_bytes(ST_Q4_K, 4096), 4096 / 256 * 292, "act bytes for q4_K, n=4096");
	tap_is_int((int64_t)dot_act_bytes(ST_Q5_1, 4096), 4096 / 32 * 36, "act bytes for q5_1, n=4096");
	tap_ok(dot_get(ST_IQ2_XXS) == NULL && dot_get_ref(ST_TQ2_0) == NULL && dot_get(99) == NULL,
	       "no kernel for iq2_xxs, tq2_0 or an unknown id");
	tap_is_int(isa_force("sse9"), -EINVAL, "isa_force of an unknown name: -EINVAL");

	float x[4096];
	uint8_t a[4096 * 4], b[4096 * 4];
	fill_random(x, 4096);
	dot_prepare_act(ST_Q4_0, x, a, 4096);
	quant_act_row_ref(ST_Q8_0, x, b, 4096);
	tap_ok(memcmp(a, b, dot_act_bytes(ST_Q4_0, 4096)) == 0,
	       "prepared q4_0 activations are the q8_0 activation rule");
	dot_prepare_act(ST_BF16, x, a, 4096);
	tap_ok(memcmp(a, x, sizeof x) == 0, "prepared bf16 activations are the f32 row");
	dot_prepare_act(ST_Q6_K, x, a, 4096);
	quant_act_row_ref(ST_Q8_K, x, b, 4096);
	tap_ok(memcmp(a, b, dot_act_bytes(ST_Q6_K, 4096)) == 0, "prepared q6_K activations are q8_K");
	dot_prepare_act(ST_Q4_1, x, a, 4096);
	quant_act_row_ref(ST_Q8_1, x, b, 4096);
	tap_ok(memcmp(a, b, dot_act_bytes(ST_Q4_1, 4096)) == 0, "prepared q4_1 activations are q8_1");
}

/* ---- fast == reference where no rounding can happen ---- */

/* Integer data: F32/F16/BF16 rows of integers in [-8, 8] (exact in every
 * format; |sum| <= 11008 * 64 < 2^24, so every partial sum is exact in
 * float). Quantized types: random quant bytes with every f16 scale 1 or 2
 * (1/2 or 1 for Q8_0/Q4_0) so a scale paired with the wrong block shows,
 * activation scales 1 or 2 (Q8_K: 1) and small activation quants, and the
 * sub-block scales of the super-block types capped, so that every partial
 * sum stays an integer (a multiple of 1/2) below 2^24 on rows up to 4096
 * (the rows make_exact is given): then rounding cannot happen on either
 * side and any correct kernel equals the reference bit for bit. */
static void make_exact(uint32_t type, void *w, void *act, int64_t n)
{
	const struct st_type_info *ti = st_type_info(type);
	const uint32_t at = dot_act_type(type);
	if (at == ST_F32) {
		float *x = act, *wf = tap_xmalloc((size_t)n * sizeof *wf);
		for (int64_t i = 0; i < n; i++) {
			wf[i] = (float)rnd_int(-8, 8);
			x[i] = (float)rnd_int(-8, 8);
		}
		quant_quantize_row_ref(type, wf, w, n);
		free(wf);
		return;
	}
	/* the weights: random bytes, then tame scales */
	uint8_t *p = w;
	const size_t nb = (size_t)(n / ti->block_elems);
	int d_off, m_off;
	scale_fields(type, &d_off, &m_off);
	for (size_t i = 0; i < nb * ti->block_bytes; i++)
		p[i] = (uint8_t)tap_rand();
	for (size_t b = 0; b < nb; b++) {
		uint8_t *blk = p + b * ti->block_bytes;
		const uint16_t one = 0x3c00, two = 0x4000, half = 0x3800;
		uint16_t d = tap_rand() % 2 ? one : two;
		if (type == ST_Q8_0 || type == ST_Q4_0)
			d = tap_rand() % 2 ? half : one;
		memcpy(blk + d_off, &d, 2);
		if (m_off >= 0) {
			/* Q4_1/Q5_1 add m: -1, 1 or 2; the K-quants subtract dmin * m */
			const uint16_t ms[3] = { 0xbc00, one, two };
			memcpy(blk + m_off, &ms[tap_rand() % 3], 2);
		}
		switch (type) {
		case ST_Q4_K:
		case ST_Q5_K: { /* 6-bit scales and minimums capped at 15 */
			struct block_q4_K *k = (struct block_q4_K *)blk; /* Q5_K: same head */
			for (int j = 0; j < 8; j++)
				k->scales[j] &= 0x0f;
			for (int j = 8; j < 12; j++)
				k->scales[j] &= 0x77;
			break;
		}
		case ST_Q6_K:
			for (int j = 0; j < 16; j++)
				((struct block_q6_K *)blk)->scales[j] = (int8_t)rnd_int(-15, 15);
			break;
		case ST_IQ4_XS: /* ls - 32 in 0..7 */
			((struct block_iq4_xs *)blk)->scales_h = 0xaaaa;
			for (int j = 0; j < 4; j++)
				((struct block_iq4_xs *)blk)->scales_l[j] &= 0x77;
			break;
		default:
			break;
		}
	}
	/* the activations */
	if (at == ST_Q8_K) {
		struct block_q8_K *x = act;
		for (int64_t b = 0; b < n / QK_K; b++) {
			x[b].d = 1.0f;
			for (int j = 0; j < QK_K; j++)
				x[b].qs[j] = (int8_t)rnd_int(-1, 1);
			for (int j = 0; j < QK_K / 16; j++) {
				int sum = 0;
				for (int l = 0; l < 16; l++)
					sum += x[b].qs[16 * j + l];
				x[b].bsums[j] = (int16_t)sum;
			}
		}
		return;
	}
	const int xmax = type == ST_Q8_0 ? 2 : type == ST_IQ4_NL ? 1 : 7;
	for (int64_t b = 0; b < n / 32; b++) {
		const uint16_t dx = tap_rand() % 2 ? 0x3c00 : 0x4000; /* 1, 2 */
		int8_t qs[32];
		int sum = 0;
		for (int j = 0; j < 32; j++) {
			qs[j] = (int8_t)rnd_int(-xmax, xmax);
			sum += qs[j];
		}
		if (at == ST_Q8_1) {
			struct block_q8_1 *x = (struct block_q8_1 *)act + b;
			x->d = dx;
			x->s = st_f32_to_fp16(st_fp16_to_f32(dx) * (float)sum); /* exact: |s| <= 448 */
			memcpy(x->qs, qs, 32);
		} else {
			struct block_q8_0 *x = (struct block_q8_0 *)act + b;
			x->d = dx;
			memcpy(x->qs, qs, 32);
		}
	}
}

static void test_exact(const char *isa, uint32_t type, void *w, void *act)
{
	dot_fn fast = dot_get(type), ref = dot_get_ref(type);
	const int64_t *lengths = lengths_of(type);
	int64_t bad = 0;
	for (size_t li = 0; li < N_LENGTHS; li++) {
		const int64_t n = lengths[li];
		if (dot_act_type(type) != ST_F32 && n > 4096 && st_type_info(type)->block_elems == QK_K)
			continue; /* past 4096 the sums could round */
		make_exact(type, w, act, n);
		const float want = ref(w, act, n), got = fast(w, act, n);
		if (got != want) {
			if (bad == 0)
				tap_diag("n=%lld: got %.9g, want %.9g", (long long)n, got, want);
			bad++;
		}
	}
	tap_is_int(bad, 0, "%s %s: exact on integer data, all lengths", isa, st_type_name(type));
}

/* ---- fast vs reference on random rows, within the stated bound ---- */

static void test_random(const char *isa, uint32_t type, void *w, void *act, float *x)
{
	dot_fn fast = dot_get(type), ref = dot_get_ref(type);
	const int64_t *lengths = lengths_of(type);
	double worst = 0; /* largest |fast - ref| / tol seen */
	int64_t over = 0;
	for (size_t li = 0; li < N_LENGTHS; li++) {
		const int64_t n = lengths[li];
		for (int t = 0; t < N_TRIALS; t++) {
			fill_random(x, n);
			quant_quantize_row_ref(type, x, w, n); /* weights: the same kind of row */
			fill_random(x, n);
			dot_prepare_act(type, x, act, n);
			const float want = ref(w, act, n), got = fast(w, act, n);
			const double S = abs_terms(type, w, act, n);
			const double tol = tolerance(type, n, S, want);
			const double err = fabs((double)got - want);
			if (!(err <= tol)) {
				if (over == 0)
					tap_diag("n=%lld: got %.9g, want %.9g, |err| %.3g > tol %.3g (S %.6g)",
						 (long long)n, got, want, err, tol, S);
				over++;
			}
			if (tol > 0 && err / tol > worst)
				worst = err / tol;
		}
	}
	tap_ok(over == 0, "%s %s: within tolerance on random rows (worst %.3f of it)", isa,
	       st_type_name(type), worst);
}

/* ---- NaN and infinity reach the result ---- */

static void test_nonfinite(const char *isa, uint32_t type, void *w, void *act, float *x)
{
	const int64_t n = 4096;
	dot_fn fast = dot_get(type), ref = dot_get_ref(type);
	int ok = 1;
	const float bad[3] = { NAN, INFINITY, -INFINITY };
	for (int k = 0; k < 3; k++) {
		/* in the activations */
		fill_random(x, n);
		quant_quantize_row_ref(type, x, w, n);
		fill_random(x, n);
		x[tap_rand() % n] = bad[k];
		dot_prepare_act(type, x, act, n);
		const float r1 = ref(w, act, n), f1 = fast(w, act, n);
		/* in the weights */
		fill_random(x, n);
		x[tap_rand() % n] = bad[k];
		quant_quantize_row_ref(type, x, w, n);
		fill_random(x, n);
		dot_prepare_act(type, x, act, n);
		const float r2 = ref(w, act, n), f2 = fast(w, act, n);
		/* Float types: inf * x is +-inf, summing may give NaN; quantized
		 * types: the poisoned block has d = NaN, so the dot is NaN. */
		if (isfinite(r1) || isfinite(f1) || isfinite(r2) || isfinite(f2) ||
		    (isnan(r1) != isnan(f1)) || (isnan(r2) != isnan(f2))) {
			tap_diag("%g: ref %g fast %g (acts), ref %g fast %g (weights)", bad[k], r1, f1, r2, f2);
			ok = 0;
		}
	}
	tap_ok(ok, "%s %s: a NaN or an infinity in either row makes the dot non-finite, like the reference",
	       isa, st_type_name(type));

	/* All-zero rows give exactly 0, not NaN. */
	memset(x, 0, (size_t)n * sizeof *x);
	quant_quantize_row_ref(type, x, w, n);
	dot_prepare_act(type, x, act, n);
	const float z = fast(w, act, n);
	tap_ok(z == 0 && !isnan(z), "%s %s: zero rows give 0", isa, st_type_name(type));
}

int main(void)
{
	tap_srand(0x2545f4914f6cdd1dull);
	void *w = tap_xmalloc(MAX_N * sizeof(float)), *act = tap_xmalloc(MAX_N * sizeof(float));
	float *x = tap_xmalloc(MAX_N * sizeof *x);

	test_contract();
	for (size_t i = 0; i < N_ISAS; i++) {
		int rc = isa_force(isas[i]);
		if (rc == -ENOTSUP) {
			tap_skip("%s: this CPU or build cannot run it", isas[i]);
			continue;
		}
		if (!tap_is_int(rc, 0, "isa_force(%s)", isas[i]))
			continue;
		tap_is_str(isa_name(), isas[i], "%s is in use", isas[i]);
		for (size_t ti = 0; ti < N_TYPES; ti++) {
			if (!tap_ok(dot_get(types[ti]) != NULL, "%s %s: has a kernel", isas[i],
				    st_type_name(types[ti])))
				continue;
			test_exact(isas[i], types[ti], w, act);
			test_random(isas[i], types[ti], w, act, x);
			test_nonfinite(isas[i], types[ti], w, act, x);
		}
	}
	tap_is_int(isa_force(NULL), 0, "back to the best set: %s", isa_name());

	/* STRATA_ISA forces a lower set for the whole process (tests of the
	 * lower paths on a machine that has a higher one) */
	setenv("STRATA_ISA", "scalar", 1);
	isa_force(NULL);
	tap_is_str(isa_name(), "scalar", "STRATA_ISA=scalar is obeyed");
	setenv("STRATA_ISA", "sse9", 1);
	isa_force(NULL);
	tap_ok(strcmp(isa_name(), "scalar") != 0, "an unknown STRATA_ISA is ignored: %s", isa_name());
	unsetenv("STRATA_ISA");
	isa_force(NULL);

	free(x);
	free(act);
	free(w);
	return tap_done();
}
