/* matmul-bench.c: throughput of matmul's two paths on a 4096x4096 matrix.
 * GEMM path: GFLOP/s for Q8_0 and F32 weights at n_tok 8..512, next to a
 * plain sgemm on an already-f32 copy measured in the same run (the ratio is
 * what dequantizing in panels costs). GEMV path: GB/s of weights read, next
 * to the GEMM path at the same n_tok (where they cross is what the per-type
 * gemm_min_rows defaults in matmul.c follow). Times are the best of several
 * calls, each warm: on a shared machine the best is the least disturbed.
 * A 4096x4096 matrix fits in a large L3; pass a bigger shape to see DRAM.
 * Not a test: it asserts nothing; `make check` does not run it.
 * Usage: bench/matmul-bench [n_in n_out] (default 4096 4096) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/blas.h"
#include "kernels/dot.h"
#include "kernels/matmul.h"
#include "kernels/pool.h"
#include "kernels/quant.h"
#include "kernels/types.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x452821e638d01377ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((double)(rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "matmul-bench: out of memory (%zu bytes)\n", n);
		exit(1);
	}
	return p;
}

/* Best seconds per call over enough calls to fill ~0.4 s (at least 3). */
static double time_matmul(struct matmul_ctx *c, float *out, const float *x, int64_t n_tok,
			  const struct matmul_w *w)
{
	double best = 1e30, spent = 0.0;
	if (matmul(c, out, x, n_tok, w) != 0) { /* warm-up: scratch, caches, threads */
		fprintf(stderr, "matmul-bench: matmul failed\n");
		exit(1);
	}
	for (int i = 0; i < 3 || spent < 0.4; i++) {
		double t0 = now_s();
		matmul(c, out, x, n_tok, w);
		double dt = now_s() - t0;
		spent += dt;
		best = dt < best ? dt : best;
	}
	return best;
}

static double time_sgemm(float *out, const float *x, int64_t n_tok, const float *wf,
			 int64_t n_in, int64_t n_out)
{
	double best = 1e30, spent = 0.0;
	blas_sgemm_nt(n_tok, n_out, n_in, x, n_in, wf, n_in, 0.0f, out, n_out);
	for (int i = 0; i < 3 || spent < 0.4; i++) {
		double t0 = now_s();
		blas_sgemm_nt(n_tok, n_out, n_in, x, n_in, wf, n_in, 0.0f, out, n_out);
		double dt = now_s() - t0;
		spent += dt;
		best = dt < best ? dt : best;
	}
	return best;
}

int main(int argc, char **argv)
{
	int64_t n_in = 4096, n_out = 4096;
	if (argc == 3) {
		n_in = atoll(argv[1]);
		n_out = atoll(argv[2]);
	}
	if (n_in <= 0 || n_out <= 0 || n_in % 32) {
		fprintf(stderr, "usage: matmul-bench [n_in n_out], n_in a multiple of 32\n");
		return 2;
	}
	static const int64_t gemm_toks[] = { 8, 32, 128, 512 };
	static const int64_t gemv_toks[] = { 1, 2, 4, 8, 16, 32, 64 };
	const int64_t max_tok = 512;

	float *wf = xmalloc((size_t)(n_in * n_out) * sizeof *wf);
	for (int64_t i = 0; i < n_in * n_out; i++)
		wf[i] = frand();
	const size_t rb8 = st_row_bytes(ST_Q8_0, (uint64_t)n_in);
	char *w8 = xmalloc(rb8 * (size_t)n_out);
	for (int64_t r = 0; r < n_out; r++)
		quant_quantize_row(ST_Q8_0, wf + r * n_in, w8 + (size_t)r * rb8, n_in);
	float *x = xmalloc((size_t)(max_tok * n_in) * sizeof *x);
	for (int64_t i = 0; i < max_tok * n_in; i++)
		x[i] = frand();
	float *out = xmalloc((size_t)(max_tok * n_out) * sizeof *out);

	const struct matmul_w wq8 = { ST_Q8_0, n_in, n_out, w8 };
	const struct matmul_w wf32 = { ST_F32, n_in, n_out, wf };

	printf("matmul-bench: %lldx%lld (n_out x n_in), dot kernels: %s\n", (long long)n_out,
	       (long long)n_in, dot_isa());
	for (int nth = 1; nth <= 2; nth++) {
		struct pool *pool;
		struct matmul_ctx *c;
		if (pool_create(nth, &pool) != 0 || matmul_ctx_create(pool, &c) != 0) {
			fprintf(stderr, "matmul-bench: setup failed\n");
			return 1;
		}
		printf("\n== %d thread%s (pool and OpenBLAS)\n", nth, nth > 1 ? "s" : "");
		printf("GEMM path, GFLOP/s       q8_0    f32   plain sgemm  q8_0/plain  f32/plain\n");
		matmul_set_gemm_min_rows(c, 1);
		for (size_t i = 0; i < sizeof gemm_toks / sizeof gemm_toks[0]; i++) {
			const int64_t nt = gemm_toks[i];
			const double flop = 2.0 * (double)nt * (double)n_in * (double)n_out;
			const double tq = time_matmul(c, out, x, nt, &wq8);
			const double tf = time_matmul(c, out, x, nt, &wf32);
			const double tp = time_sgemm(out, x, nt, wf, n_in, n_out);
			printf("  n_tok %4lld          %7.1f %7.1f  %9.1f     %6.2f     %6.2f\n",
			       (long long)nt, flop / tq * 1e-9, flop / tf * 1e-9, flop / tp * 1e-9,
			       tp / tq, tp / tf);
		}
		printf("GEMV path (dot kernels): GB/s of weights (GFLOP/s); GEMM path GFLOP/s beside it\n");
		printf("                   q8_0 gemv     q8_0 gemm      f32 gemv     f32 gemm\n");
		for (size_t i = 0; i < sizeof gemv_toks / sizeof gemv_toks[0]; i++) {
			const int64_t nt = gemv_toks[i];
			const double flop = 2.0 * (double)nt * (double)n_in * (double)n_out;
			matmul_set_gemm_min_rows(c, nt + 1);
			const double tq = time_matmul(c, out, x, nt, &wq8);
			const double tf = time_matmul(c, out, x, nt, &wf32);
			matmul_set_gemm_min_rows(c, 1);
			const double gq = time_matmul(c, out, x, nt, &wq8);
			const double gf = time_matmul(c, out, x, nt, &wf32);
			printf("  n_tok %4lld  %5.1f (%5.1f)     %5.1f   %5.1f (%5.1f)     %5.1f\n", (long long)nt,
			       (double)rb8 * (double)n_out / tq * 1e-9, flop / tq * 1e-9, flop / gq * 1e-9,
			       (double)n_in * 4.0 * (double)n_out / tf * 1e-9, flop / tf * 1e-9,
			       flop / gf * 1e-9);
		}
		matmul_ctx_free(c);
		pool_free(pool);
	}
	free(out);
	free(x);
	free(w8);
	free(wf);
	return 0;
}
