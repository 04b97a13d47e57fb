/* test-dot.c: kernels/dot.h. Every weight type on every instruction set
 * this CPU runs, against the scalar reference: exactly on data where float
 * arithmetic cannot round, within a stated bound on random data; plus the
 * activation contract and NaN/inf propagation. Not here: quantization
 * itself (test-quant.c). */
#include <errno.h>
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
 *  Q8_0, Q4_0  q8_0  2 (n/32 + 8) u S           S = sum_b |d_w d_x| sum_j
 *    |q_w q_x|. Integer sums within a block are exact on both sides; what
 *    differs is the float sum of the n/32 block terms (the reference serial,
 *    ggml-style; the fast kernels in lanes): each side within
 *    gamma_{n/32+8} S of the exact value.
 *
 * These bounds hold for any data, so a dropped or misplaced element can hide
 * inside them on long rows; test_exact() closes that gap with integer data
 * on which every partial sum is exactly representable, where any correct
 * kernel must equal the reference bit for bit. */
static double tolerance(uint32_t type, int64_t n, double S, double ref)
{
	const double u = 0x1p-24;
	const double k = (double)n / 32 + 8;
	if (type == ST_Q8_0 || type == ST_Q4_0)
		return 2 * k * u * S;
	return k * u * S + u * fabs(ref);
}

static const char *const isas[] = { "scalar", "avx2", "avx512", "avx512vnni" };
#define N_ISAS (sizeof isas / sizeof isas[0])
static const uint32_t types[] = { ST_F32, ST_F16, ST_BF16, ST_Q8_0, ST_Q4_0 };
#define N_TYPES (sizeof types / sizeof types[0])
/* Blocks of 32: 1, 2, 3, 5 (the pair loops and the odd last block alone),
 * 15 (an 8-block step, then pairs, then one), 128, 257 (8-block steps and
 * one more; for floats the 64 loop and its 32 tail), 344 (model rows). */
static const int64_t lengths[] = { 32, 64, 96, 160, 480, 4096, 8192 + 32, 11008 };
#define N_LENGTHS (sizeof lengths / sizeof lengths[0])
#define MAX_N 11008
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

/* S of the tolerance table, from the very bytes the kernels read. */
static double abs_terms(uint32_t type, const void *w, const void *act, int64_t n)
{
	double S = 0;
	if (type == ST_Q8_0 || type == ST_Q4_0) {
		const struct block_q8_0 *x = act;
		for (int64_t b = 0; b < n / 32; b++) {
			double s = 0, d_w;
			if (type == ST_Q8_0) {
				const struct block_q8_0 *wb = (const struct block_q8_0 *)w + b;
				d_w = st_fp16_to_f32(wb->d);
				for (int j = 0; j < 32; j++)
					s += fabs((double)wb->qs[j] * x[b].qs[j]);
			} else {
				const struct block_q4_0 *wb = (const struct block_q4_0 *)w + b;
				d_w = st_fp16_to_f32(wb->d);
				for (int j = 0; j < 16; j++) {
					s += fabs((double)((wb->qs[j] & 15) - 8) * x[b].qs[j]);
					s += fabs((double)((wb->qs[j] >> 4) - 8) * x[b].qs[j + 16]);
				}
			}
			S += fabs(d_w * st_fp16_to_f32(x[b].d)) * s;
		}
		return S;
	}
	float *wf = tap_xmalloc((size_t)n * sizeof *wf);
	quant_dequantize_row_ref(type, w, wf, n);
	for (int64_t i = 0; i < n; i++)
		S += fabs((double)wf[i] * ((const float *)act)[i]);
	free(wf);
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
}

/* ---- fast == reference where no rounding can happen ---- */

/* Integer data: F32/F16/BF16 rows of integers in [-8, 8] (exact in every
 * format; |sum| <= 11008 * 64 < 2^24, so every partial sum is exact in
 * float). Q8_0/Q4_0: d_w in {1/2, 1}, d_x in {1, 2} vary per block (so a
 * scale paired with the wrong block shows); q_x in [-2, 2] (Q8_0 weights)
 * or [-7, 7] (Q4_0) keeps every partial sum a multiple of 1/2 below 2^23. */
static void make_exact(uint32_t type, void *w, void *act, int64_t n)
{
	if (type == ST_Q8_0 || type == ST_Q4_0) {
		struct block_q8_0 *x = act;
		const int xmax = type == ST_Q8_0 ? 2 : 7;
		for (int64_t b = 0; b < n / 32; b++) {
			x[b].d = tap_rand() % 2 ? 0x3c00 : 0x4000; /* 1, 2 */
			for (int j = 0; j < 32; j++)
				x[b].qs[j] = (int8_t)rnd_int(-xmax, xmax);
			const uint16_t dw = tap_rand() % 2 ? 0x3800 : 0x3c00; /* 1/2, 1 */
			if (type == ST_Q8_0) {
				struct block_q8_0 *wb = (struct block_q8_0 *)w + b;
				wb->d = dw;
				for (int j = 0; j < 32; j++)
					wb->qs[j] = (int8_t)rnd_int(-127, 127);
			} else {
				struct block_q4_0 *wb = (struct block_q4_0 *)w + b;
				wb->d = dw;
				for (int j = 0; j < 16; j++)
					wb->qs[j] = (uint8_t)tap_rand();
			}
		}
		return;
	}
	float *x = act, *wf = tap_xmalloc((size_t)n * sizeof *wf);
	for (int64_t i = 0; i < n; i++) {
		wf[i] = (float)rnd_int(-8, 8);
		x[i] = (float)rnd_int(-8, 8);
	}
	quant_quantize_row_ref(type, wf, w, n);
	free(wf);
}

static void test_exact(const char *isa, uint32_t type, void *w, void *act)
{
	dot_fn fast = dot_get(type), ref = dot_get_ref(type);
	int64_t bad = 0;
	for (size_t li = 0; li < N_LENGTHS; li++) {
		const int64_t n = lengths[li];
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
