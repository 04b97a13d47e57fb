/* test-matmul.c: matmul against matmul_ref for every weight type, n_tok in
 * {1, 2, 7, 8, 9, 16, 64}, shapes that leave a short last panel and a short last
 * chunk, through both paths (gemm_min_rows moved to force each), on pools of
 * 1 to 3 threads; plus the error returns and a clean -ENOMEM.
 *
 * Tolerances, as |matmul - ref| <= bound for each output, where
 * A = Σ_i |w_i·x_i| and B = Σ_i |w_i|·amax(x over i's activation block):
 *
 *   path  weights             bound                     why
 *   GEMV  F32, F16, BF16      2e-5·A                    f32 accumulation in SIMD lanes
 *                                                       over n_in products (ref: double)
 *   GEMV  quantized           0.6/127·B + 2e-5·A        activations rounded to Q8_0, Q8_1
 *                                                       or Q8_K: at most half a step
 *                                                       d = amax/127, plus d's own f16
 *                                                       rounding (2^-11 of up to 127
 *                                                       steps = 0.062 d; Q8_K keeps d in
 *                                                       f32), with amax over the
 *                                                       activation block (32, or 256)
 *   GEMM  all                 2e-5·A                    W dequantized bit-exactly, then
 *                                                       f32 sgemm accumulation
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"
#include "kernels/matmul.h"
#include "kernels/pool.h"
#include "kernels/quant.h"
#include "kernels/quant_ref.h"
#include "kernels/types.h"
#include "tests/tap.h"

/* ASan builds: let the -ENOMEM test see NULL from malloc instead of a report. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

/* The per-type defaults matmul.h documents. */
static int64_t default_min_rows(uint32_t type)
{
	return type == ST_F32 ? 8 : type == ST_F16 || type == ST_BF16 ? 16 : 64;
}

/* Weights of `type` from random f32 rows (n_out, n_in). */
static void *make_weights(uint32_t type, int64_t n_in, int64_t n_out)
{
	const size_t rb = st_row_bytes(type, (uint64_t)n_in);
	char *w = tap_xmalloc(rb * (size_t)n_out);
	float *row = tap_xmalloc((size_t)n_in * sizeof *row);
	for (int64_t r = 0; r < n_out; r++) {
		for (int64_t i = 0; i < n_in; i++)
			row[i] = tap_frand() * (1.0f + (float)(r % 7)); /* rows of different scales */
		char *dst = w + (size_t)r * rb;
		if (type == ST_F32) {
			memcpy(dst, row, rb);
		} else if (type == ST_F16) {
			for (int64_t i = 0; i < n_in; i++)
				((uint16_t *)dst)[i] = st_f32_to_fp16(row[i]);
		} else if (type == ST_BF16) {
			for (int64_t i = 0; i < n_in; i++)
				((uint16_t *)dst)[i] = st_f32_to_bf16(row[i]);
		} else if (quant_quantize_row_ref(type, row, dst, n_in) != 0) {
			tap_bail("quantize %s failed", st_type_name(type));
		}
	}
	free(row);
	return w;
}

/* Bounds per output (n_tok, n_out) from the table at the top. */
static void make_bounds(const struct matmul_w *w, const float *x, int64_t n_tok,
			double *bound_gemv, double *bound_gemm)
{
	const int64_t n_in = w->n_in, n_out = w->n_out;
	const size_t rb = st_row_bytes(w->type, (uint64_t)n_in);
	const uint32_t at = dot_act_type(w->type);
	const int quant = at != ST_F32;
	const int64_t ab = quant ? st_type_info(at)->block_elems : 1; /* activation block */
	float *row = tap_xmalloc((size_t)n_in * sizeof *row);
	for (int64_t r = 0; r < n_out; r++) {
		if (quant_dequantize_row_ref(w->type, (const char *)w->data + (size_t)r * rb, row, n_in))
			tap_bail("dequantize failed");
		for (int64_t t = 0; t < n_tok; t++) {
			const float *xt = x + t * n_in;
			double a = 0.0, b = 0.0;
			for (int64_t i = 0; i < n_in; i++)
				a += fabs((double)row[i] * xt[i]);
			if (quant) {
				for (int64_t b0 = 0; b0 < n_in; b0 += ab) {
					double amax = 0.0, sw = 0.0;
					for (int64_t i = b0; i < b0 + ab; i++) {
						amax = fmax(amax, fabs(xt[i]));
						sw += fabs(row[i]);
					}
					b += sw * amax;
				}
			}
			bound_gemm[t * n_out + r] = 2e-5 * a + 1e-30;
			bound_gemv[t * n_out + r] = 2e-5 * a + 0.6 / 127.0 * b + 1e-30;
		}
	}
	free(row);
}

/* Worst |got - want| / bound; > 1 fails. */
static double worst_ratio(const float *got, const float *want, const double *bound, int64_t n)
{
	double worst = 0.0;
	for (int64_t i = 0; i < n; i++) {
		double r = fabs((double)got[i] - want[i]) / bound[i];
		if (!(r <= worst))
			worst = isnan(r) ? INFINITY : r;
	}
	return worst;
}

static const int64_t all_toks[] = { 1, 2, 7, 8, 9, 16, 64 };
#define N_ALL_TOKS (sizeof all_toks / sizeof all_toks[0])

static void test_type_shape(struct matmul_ctx *c, uint32_t type, int64_t n_in, int64_t n_out,
			    int nth, const int64_t *toks, size_t n_toks)
{
	const int64_t max_tok = 64;
	struct matmul_w w = { .type = type, .n_in = n_in, .n_out = n_out };
	w.data = make_weights(type, n_in, n_out);
	float *x = tap_xmalloc((size_t)(max_tok * n_in) * sizeof *x);
	for (int64_t i = 0; i < max_tok * n_in; i++)
		x[i] = tap_frand() * 2.0f;
	const size_t n_res = (size_t)(max_tok * n_out);
	float *ref = tap_xmalloc(n_res * sizeof *ref), *got = tap_xmalloc(n_res * sizeof *got);
	float *dflt = tap_xmalloc(n_res * sizeof *dflt);
	double *bv = tap_xmalloc(n_res * sizeof *bv), *bm = tap_xmalloc(n_res * sizeof *bm);

	for (size_t ti = 0; ti < n_toks; ti++) {
		const int64_t n_tok = toks[ti], n = n_tok * n_out;
		int rc = matmul_ref(ref, x, n_tok, &w);
		if (!tap_is_int(rc, 0, "matmul_ref %s", st_type_name(type)))
			continue;
		make_bounds(&w, x, n_tok, bv, bm);

		matmul_set_gemm_min_rows(c, n_tok + 1); /* force GEMV */
		rc = matmul(c, got, x, n_tok, &w);
		double e = rc == 0 ? worst_ratio(got, ref, bv, n) : INFINITY;
		tap_ok(rc == 0 && e <= 1.0, "GEMV %-4s %lldx%lld n_tok %2lld, %d thr: worst %.3f of bound",
		       st_type_name(type), (long long)n_out, (long long)n_in, (long long)n_tok, nth, e);

		matmul_set_gemm_min_rows(c, 0); /* the per-type default decides */
		rc = matmul(c, dflt, x, n_tok, &w);
		const bool dflt_gemm = n_tok >= default_min_rows(type);
		if (!dflt_gemm) /* the forced GEMV result is still in got */
			tap_ok(memcmp(dflt, got, (size_t)n * sizeof *got) == 0,
			       "n_tok %lld < %lld: %s takes the GEMV path by default", (long long)n_tok,
			       (long long)default_min_rows(type), st_type_name(type));

		matmul_set_gemm_min_rows(c, 1); /* force GEMM */
		rc |= matmul(c, got, x, n_tok, &w);
		e = rc == 0 ? worst_ratio(got, ref, bm, n) : INFINITY;
		tap_ok(rc == 0 && e <= 1.0, "GEMM %-4s %lldx%lld n_tok %2lld, %d thr: worst %.3f of bound",
		       st_type_name(type), (long long)n_out, (long long)n_in, (long long)n_tok, nth, e);
		if (dflt_gemm)
			tap_ok(memcmp(dflt, got, (size_t)n * sizeof *got) == 0,
			       "n_tok %lld >= %lld: %s takes the GEMM path by default", (long long)n_tok,
			       (long long)default_min_rows(type), st_type_name(type));
	}
	free(bm);
	free(bv);
	free(dflt);
	free(got);
	free(ref);
	free(x);
	free((void *)w.data);
}

static void test_errors(struct matmul_ctx *c)
{
	float x[64] = { 0 }, out[64];
	const uint8_t junk[64] = { 0 };
	struct matmul_w w = { .type = ST_IQ2_XXS, .n_in = 256, .n_out = 1, .data = junk };
	tap_is_int(matmul(c, out, x, 1, &w), -ENOTSUP, "IQ2_XXS weights (a type strata does not run): -ENOTSUP");
	tap_is_int(matmul_ref(out, x, 1, &w), -ENOTSUP, "matmul_ref IQ2_XXS: -ENOTSUP");
	w.type = 99;
	tap_is_int(matmul(c, out, x, 1, &w), -ENOTSUP, "unknown type id: -ENOTSUP");
	w.type = ST_Q8_0;
	w.n_in = 48;
	tap_is_int(matmul(c, out, x, 1, &w), -EINVAL, "Q8_0 with n_in 48 (not whole blocks): -EINVAL");

	/* Scratch that cannot grow: a Q8_0 matrix with rows of 2^34 weights
	 * wants 127 GB of prepared activations (GEMV) or a 1 TB panel (GEMM),
	 * refused before x or W is read. */
	w.n_in = (int64_t)1 << 34;
	w.n_out = 16;
	matmul_set_gemm_min_rows(c, 8);
	tap_is_int(matmul(c, out, x, 7, &w), -ENOMEM, "GEMV scratch too large: -ENOMEM");
	tap_is_int(matmul(c, out, x, 8, &w), -ENOMEM, "GEMM panel too large: -ENOMEM");

	/* ... and the context still works. */
	const int64_t n_in = 64, n_out = 3;
	struct matmul_w ok = { .type = ST_Q8_0, .n_in = n_in, .n_out = n_out };
	ok.data = make_weights(ST_Q8_0, n_in, n_out);
	float xs[2 * 64], ref[6], got[6];
	for (int i = 0; i < 2 * 64; i++)
		xs[i] = tap_frand();
	matmul_ref(ref, xs, 2, &ok);
	matmul_set_gemm_min_rows(c, 1);
	int rc = matmul(c, got, xs, 2, &ok);
	double e = 0.0;
	for (int i = 0; i < 6; i++)
		e = fmax(e, fabs(got[i] - ref[i]));
	tap_ok(rc == 0 && e < 1e-4, "after -ENOMEM the context still computes (err %.2g)", e);
	free((void *)ok.data);
}

int main(void)
{
	tap_srand(0x13198a2e03707344ull);
	static const int64_t multi_panel_toks[] = { 9, 17 };
	static const uint32_t types[] = { ST_F32,  ST_F16,  ST_BF16, ST_Q8_0, ST_Q4_0,	 ST_Q4_1, ST_Q5_0, ST_Q5_1,
					  ST_IQ4_NL, ST_Q2_K, ST_Q3_K, ST_Q4_K, ST_Q5_K, ST_Q6_K, ST_IQ4_XS };
	struct pool *pool;
	struct matmul_ctx *c;

	for (int nth = 1; nth <= 3; nth++) {
		if (pool_create(nth, &pool) != 0 || matmul_ctx_create(pool, &c) != 0)
			tap_bail("setup failed");
		for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
			const uint32_t t = types[ti];
			if (nth == 2) {
				/* GEMV chunks of 32 rows, the last one short */
				test_type_shape(c, t, 4096, 300, nth, all_toks, N_ALL_TOKS);
				if (st_type_info(t)->block_elems <= 32) /* 64 is no whole super-block */
					test_type_shape(c, t, 64, 48, nth, all_toks, N_ALL_TOKS);
				/* 16384 wide: 16 MB panels of 256 rows, so 272
				 * rows end in a short panel of 16 (the panel logic
				 * does not depend on the type: a few of each kind) */
				if (t == ST_F32 || t == ST_F16 || t == ST_BF16 || t == ST_Q8_0 || t == ST_Q4_0 ||
				    t == ST_Q4_1 || t == ST_Q4_K || t == ST_Q6_K)
					test_type_shape(c, t, 16384, 272, nth, multi_panel_toks, 2);
			} else {
				test_type_shape(c, t, 256, 37, nth, all_toks, N_ALL_TOKS);
			}
			/* stories260K's FFN down: 172 inputs, not whole blocks
			 * of 32, which only float types allow. */
			if (t == ST_F32 || t == ST_F16 || t == ST_BF16)
				test_type_shape(c, t, 172, 64, nth, all_toks, N_ALL_TOKS);
		}
		if (nth == 2)
			test_errors(c);
		matmul_ctx_free(c);
		pool_free(pool);
	}
	matmul_ctx_free(NULL);
	tap_ok(1, "matmul_ctx_free(NULL) is a no-op");
	return tap_done();
}
