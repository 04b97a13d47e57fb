/* matmul-bench.c: throughput of matmul's two paths on a 4096x4096 matrix.
 * GEMM path: GFLOP/s for Q8_0 and F32 weights at n_tok 8..512, next to a
 * plain sgemm on an already-f32 copy measured in the same run (the ratio is
 * what dequantizing in panels costs). GEMV path: GB/s of weights read, next
 * to the GEMM path at the same n_tok (where they cross is what the per-type
 * gemm_min_rows defaults in matmul.c follow). Times are the best call of
 * interleaved rounds (see time_jobs).
 * A 4096x4096 matrix fits in a large L3; pass a bigger shape to see DRAM.
 * Not a test: it asserts nothing; `make check` does not run it.
 * Usage: bench/matmul-bench [n_in n_out] (default 4096 4096) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/blas.h"
#include "kernels/dot.h"
#include "kernels/isa.h"
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

/* One thing to time: a matmul (w set) or, with w NULL, a plain sgemm on wf. */
struct job {
	struct matmul_ctx *c;
	const struct matmul_w *w;
	int64_t gemm_min_rows; /* forces the path */
	const float *wf;       /* (n_out, n_in) f32, for the plain sgemm */
	double best;	       /* seconds, best call so far */
};

static void run_once(struct job *j, float *out, const float *x, int64_t n_tok, int64_t n_in,
		     int64_t n_out)
{
	double t0 = now_s();
	if (j->w) {
		matmul_set_gemm_min_rows(j->c, j->gemm_min_rows);
		if (matmul(j->c, out, x, n_tok, j->w) != 0) {
			fprintf(stderr, "matmul-bench: matmul failed\n");
			exit(1);
		}
	} else {
		blas_sgemm_nt(n_tok, n_out, n_in, x, n_in, j->wf, n_in, 0.0f, out, n_out);
	}
	double dt = now_s() - t0;
	j->best = dt < j->best ? dt : j->best;
}

/* Interleaved rounds, one call of each job per round, until ~0.6 s (at
 * least 5 rounds): the machine may be shared, and interleaving puts every
 * job of a row through the same disturbances; the best call is the least
 * disturbed. The first round warms scratch, caches and threads. */
static void time_jobs(struct job *jobs, int n_jobs, float *out, const float *x, int64_t n_tok,
		      int64_t n_in, int64_t n_out)
{
	for (int k = 0; k < n_jobs; k++)
		run_once(&jobs[k], out, x, n_tok, n_in, n_out);
	for (int k = 0; k < n_jobs; k++)
		jobs[k].best = 1e30;
	double t_start = now_s();
	for (int r = 0; r < 5 || now_s() - t_start < 0.6; r++)
		for (int k = 0; k < n_jobs; k++)
			run_once(&jobs[k], out, x, n_tok, n_in, n_out);
}

int main(int argc, char **argv)
{
	blas_setup_process(argv);
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
	       (long long)n_in, isa_name());
	for (int nth = 1; nth <= 2; nth++) {
		struct pool *pool;
		struct matmul_ctx *c;
		if (pool_create(nth, &pool) != 0 || matmul_ctx_create(pool, &c) != 0) {
			fprintf(stderr, "matmul-bench: setup failed\n");
			return 1;
		}
		printf("\n== %d thread%s (pool and OpenBLAS)\n", nth, nth > 1 ? "s" : "");
		printf("GEMM path, GFLOP/s       q8_0    f32   plain sgemm  q8_0/plain  f32/plain\n");
		for (size_t i = 0; i < sizeof gemm_toks / sizeof gemm_toks[0]; i++) {
			const int64_t nt = gemm_toks[i];
			const double flop = 2.0 * (double)nt * (double)n_in * (double)n_out;
			struct job j[3] = {
				{ .c = c, .w = &wq8, .gemm_min_rows = 1 },
				{ .c = c, .w = &wf32, .gemm_min_rows = 1 },
				{ .wf = wf },
			};
			time_jobs(j, 3, out, x, nt, n_in, n_out);
			printf("  n_tok %4lld          %7.1f %7.1f  %9.1f     %6.2f     %6.2f\n",
			       (long long)nt, flop / j[0].best * 1e-9, flop / j[1].best * 1e-9,
			       flop / j[2].best * 1e-9, j[2].best / j[0].best, j[2].best / j[1].best);
		}
		printf("GEMV path (dot kernels): GB/s of weights (GFLOP/s); GEMM path GFLOP/s beside it\n");
		printf("                   q8_0 gemv     q8_0 gemm      f32 gemv     f32 gemm\n");
		for (size_t i = 0; i < sizeof gemv_toks / sizeof gemv_toks[0]; i++) {
			const int64_t nt = gemv_toks[i];
			const double flop = 2.0 * (double)nt * (double)n_in * (double)n_out;
			struct job j[4] = {
				{ .c = c, .w = &wq8, .gemm_min_rows = nt + 1 },
				{ .c = c, .w = &wq8, .gemm_min_rows = 1 },
				{ .c = c, .w = &wf32, .gemm_min_rows = nt + 1 },
				{ .c = c, .w = &wf32, .gemm_min_rows = 1 },
			};
			time_jobs(j, 4, out, x, nt, n_in, n_out);
			printf("  n_tok %4lld  %5.1f (%5.1f)     %5.1f   %5.1f (%5.1f)     %5.1f\n", (long long)nt,
			       (double)rb8 * (double)n_out / j[0].best * 1e-9, flop / j[0].best * 1e-9,
			       flop / j[1].best * 1e-9, (double)n_in * 4.0 * (double)n_out / j[2].best * 1e-9,
			       flop / j[2].best * 1e-9, flop / j[3].best * 1e-9);
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
