/* test-matmul.c: matmul against matmul_ref for every weight type, n_tok in
 * {1, 2, 7, 8, 9, 16, 64}, shapes that leave a short last panel and a short last
 * chunk, through every path (forced with matmul_force_path), on pools of
 * 1 to 3 threads; the default path per type and row count; batch invariance
 * of quantized weights (a row's result alone = inside any batch, on any
 * number of threads); plus the error returns and a clean -ENOMEM.
 *
 * Tolerances, as |matmul - ref| <= bound for each output, where
 * A = Σ_i |w_i·x_i| and B = Σ_i |w_i|·amax(x over i's activation block):
 *
 *   path       weights           bound                     why
 *   dot        F32, F16, BF16    2e-5·A                    f32 accumulation in SIMD lanes
 *                                                          over n_in products (ref: double)
 *   dot, tile  quantized         0.6/127·B + 2e-5·A        activations rounded to Q8_0, Q8_1
 *                                                          or Q8_K: at most half a step
 *                                                          d = amax/127, plus d's own f16
 *                                                          rounding (2^-11 of up to 127
 *                                                          steps = 0.062 d; Q8_K keeps d in
 *                                                          f32), with amax over the
 *                                                          activation block (32, or 256)
 *   sgemm      all               2e-5·A                    W dequantized bit-exactly, then
 *                                                          f32 sgemm accumulation
 * and the tile path (types with multi-row kernels) has no tolerance against
 * the one-row reference dot of each pair (dot_get_ref): the same bits
 * (test-qgemm.c). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"
#include "kernels/matmul.h"
#include "kernels/pool.h"
#include "kernels/qgemm.h"
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

/* The default paths matmul.h documents. */
static enum matmul_path default_path(uint32_t type, int64_t n_tok)
{
	if (type == ST_F32)
		return n_tok < 8 ? MATMUL_PATH_DOT : MATMUL_PATH_SGEMM;
	if (type == ST_F16 || type == ST_BF16)
		return n_tok < 16 ? MATMUL_PATH_DOT : MATMUL_PATH_SGEMM;
	return qgemm_get(type) ? MATMUL_PATH_TILE : MATMUL_PATH_DOT;
}

static const char *path_name(enum matmul_path p)
{
	return p == MATMUL_PATH_DOT ? "dot" : p == MATMUL_PATH_TILE ? "tile" : p == MATMUL_PATH_SGEMM ? "sgemm" : "auto";
}

/* out (n_tok, n_out) <- the scalar reference dot of every pair, on the
 * activations the kernels see. */
static void pair_ref(const struct matmul_w *w, const float *x, int64_t n_tok, float *out)
{
	const size_t rb = st_row_bytes(w->type, (uint64_t)w->n_in);
	char *act = tap_xmalloc(dot_act_bytes(w->type, w->n_in));
	for (int64_t t = 0; t < n_tok; t++) {
		dot_prepare_act(w->type, x + t * w->n_in, act, w->n_in);
		for (int64_t r = 0; r < w->n_out; r++)
			out[t * w->n_out + r] = dot_get_ref(w->type)((const char *)w->data + (size_t)r * rb, act, w->n_in);
	}
	free(act);
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
	float *dflt = tap_xmalloc(n_res * sizeof *dflt), *pref = tap_xmalloc(n_res * sizeof *pref);
	const bool tile = qgemm_get(type) != NULL;
	double *bv = tap_xmalloc(n_res * sizeof *bv), *bm = tap_xmalloc(n_res * sizeof *bm);

	for (size_t ti = 0; ti < n_toks; ti++) {
		const int64_t n_tok = toks[ti], n = n_tok * n_out;
		int rc = matmul_ref(ref, x, n_tok, &w);
		if (!tap_is_int(rc, 0, "matmul_ref %s", st_type_name(type)))
			continue;
		make_bounds(&w, x, n_tok, bv, bm);

		matmul_force_path(c, MATMUL_PATH_DOT);
		rc = matmul(c, got, x, n_tok, &w);
		double e = rc == 0 ? worst_ratio(got, ref, bv, n) : INFINITY;
		tap_ok(rc == 0 && e <= 1.0, "dot   %-4s %lldx%lld n_tok %2lld, %d thr: worst %.3f of bound",
		       st_type_name(type), (long long)n_out, (long long)n_in, (long long)n_tok, nth, e);
		memcpy(dflt, got, (size_t)n * sizeof *got);

		matmul_force_path(c, MATMUL_PATH_SGEMM);
		rc = matmul(c, got, x, n_tok, &w);
		e = rc == 0 ? worst_ratio(got, ref, bm, n) : INFINITY;
		tap_ok(rc == 0 && e <= 1.0, "sgemm %-4s %lldx%lld n_tok %2lld, %d thr: worst %.3f of bound",
		       st_type_name(type), (long long)n_out, (long long)n_in, (long long)n_tok, nth, e);
		if (default_path(type, n_tok) == MATMUL_PATH_SGEMM)
			memcpy(dflt, got, (size_t)n * sizeof *got);

		if (tile) {
			matmul_force_path(c, MATMUL_PATH_TILE);
			rc = matmul(c, got, x, n_tok, &w);
			e = rc == 0 ? worst_ratio(got, ref, bv, n) : INFINITY;
			pair_ref(&w, x, n_tok, pref);
			int64_t diff = 0;
			for (int64_t i = 0; i < n; i++)
				diff += memcmp(&got[i], &pref[i], sizeof *got) != 0;
			tap_ok(rc == 0 && e <= 1.0 && diff == 0,
			       "tile  %-4s %lldx%lld n_tok %2lld, %d thr: worst %.3f of bound, %lld outputs "
			       "not the reference dot's bits", st_type_name(type), (long long)n_out,
			       (long long)n_in, (long long)n_tok, nth, e, (long long)diff);
			memcpy(dflt, got, (size_t)n * sizeof *got);
		}

		matmul_force_path(c, MATMUL_PATH_AUTO);
		const enum matmul_path want = default_path(type, n_tok);
		rc = matmul(c, got, x, n_tok, &w);
		tap_ok(rc == 0 && matmul_path_for(c, type, n_tok) == want &&
			       memcmp(dflt, got, (size_t)n * sizeof *got) == 0,
		       "n_tok %lld: %s takes the %s path by default", (long long)n_tok, st_type_name(type),
		       path_name(want));
	}
	free(pref);
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
	 * wants 127 GB of prepared activations (dot, tile) or a 1 TB panel (sgemm),
	 * refused before x or W is read. */
	w.n_in = (int64_t)1 << 34;
	w.n_out = 16;
	matmul_force_path(c, MATMUL_PATH_DOT);
	tap_is_int(matmul(c, out, x, 7, &w), -ENOMEM, "dot path scratch too large: -ENOMEM");
	matmul_force_path(c, MATMUL_PATH_SGEMM);
	tap_is_int(matmul(c, out, x, 8, &w), -ENOMEM, "sgemm panel too large: -ENOMEM");
	matmul_force_path(c, MATMUL_PATH_TILE);
	tap_is_int(matmul(c, out, x, 8, &w), -ENOMEM, "tile path scratch too large: -ENOMEM");

	/* ... and the context still works. */
	const int64_t n_in = 64, n_out = 3;
	struct matmul_w ok = { .type = ST_Q8_0, .n_in = n_in, .n_out = n_out };
	ok.data = make_weights(ST_Q8_0, n_in, n_out);
	float xs[2 * 64], ref[6], got[6];
	for (int i = 0; i < 2 * 64; i++)
		xs[i] = tap_frand();
	pair_ref(&ok, xs, 2, ref);
	matmul_force_path(c, MATMUL_PATH_AUTO);
	int rc = matmul(c, got, xs, 2, &ok);
	tap_ok(rc == 0 && memcmp(got, ref, sizeof got) == 0,
	       "after -ENOMEM the context still computes (the reference dots' bits)");
	free((void *)ok.data);
}

/* Batch invariance through matmul, for the quantized types: each of 67
 * activation rows computed alone (one row, one thread) gives the same bits
 * as inside batches of 1..64 rows starting at row 0 or 3 (so a row sits at
 * different positions), on pools of 1, 2 and 3 threads. */
static void test_invariance(void)
{
	static const uint32_t qtypes[] = { ST_Q8_0, ST_Q4_0 };
	const int64_t n_in = 512, n_out = 300, n_x = 67;
	float *x = tap_xmalloc((size_t)(n_x * n_in) * sizeof *x);
	float *alone = tap_xmalloc((size_t)(n_x * n_out) * sizeof *alone);
	float *out = tap_xmalloc((size_t)(n_x * n_out) * sizeof *out);
	for (int64_t i = 0; i < n_x * n_in; i++)
		x[i] = tap_frand() * 3.0f;
	for (size_t ti = 0; ti < sizeof qtypes / sizeof qtypes[0]; ti++) {
		struct matmul_w w = { .type = qtypes[ti], .n_in = n_in, .n_out = n_out };
		w.data = make_weights(w.type, n_in, n_out);
		struct pool *pool;
		struct matmul_ctx *c;
		if (pool_create(1, &pool) != 0 || matmul_ctx_create(pool, &c) != 0)
			tap_bail("setup failed");
		for (int64_t t = 0; t < n_x; t++)
			if (matmul(c, alone + t * n_out, x + t * n_in, 1, &w) != 0)
				tap_bail("matmul failed");
		matmul_ctx_free(c);
		pool_free(pool);
		for (int nth = 1; nth <= 3; nth++) {
			int64_t bad = 0, calls = 0;
			if (pool_create(nth, &pool) != 0 || matmul_ctx_create(pool, &c) != 0)
				tap_bail("setup failed");
			for (int64_t m = 1; m <= 64; m++) {
				for (int64_t s0 = 0; s0 <= 3; s0 += 3) {
					if (matmul(c, out, x + s0 * n_in, m, &w) != 0)
						tap_bail("matmul failed");
					calls++;
					bad += memcmp(out, alone + s0 * n_out, (size_t)(m * n_out) * sizeof *out) != 0;
				}
			}
			tap_is_int(bad, 0, "%s, %d thread%s: every row of %lld batches of 1..64 rows = the "
				   "row computed alone, bit for bit", st_type_name(w.type), nth,
				   nth > 1 ? "s" : "", (long long)calls);
			matmul_ctx_free(c);
			pool_free(pool);
		}
		free((void *)w.data);
	}
	free(out);
	free(alone);
	free(x);
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
				/* chunks of 32 rows (dot, tile), the last one short */
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
	test_invariance();
	matmul_ctx_free(NULL);
	tap_ok(1, "matmul_ctx_free(NULL) is a no-op");
	return tap_done();
}
