/* matmul-bench.c: every path of matmul (matmul.h) on one weight matrix, for
 * 1..512 activation rows, on 1 and 2 threads: where the paths cross is what
 * the defaults in matmul.c (float weights: dot below a row count, sgemm from
 * it) and qgemm.h (the multi-row kernels: weights transposed per activation
 * tile below a row count, repacked once from it) follow.
 *
 * Paths, per weight type:
 *   row      the multi-row kernels reading one weight row at a time, front
 *            to back (AVX-512 VNNI; other sets: as tile)
 *   tile     the multi-row int8 kernels, weights transposed in registers for
 *            each tile of 8 activation rows
 *   tile-pk  the same, each tile of 16 weight rows repacked once first
 *   dot      the one-row dot kernel per (weight row, activation row) pair
 *   sgemm    weights dequantized to f32 panels, OpenBLAS sgemm (never chosen
 *            for quantized weights: it rounds differently, see matmul.h)
 * Each cell: GFLOP/s (2 * rows * n_in * n_out per call) and, in a second
 * table, GB/s of weights read (n_out * row bytes per call: one pass over W).
 * Times are the best call of interleaved rounds (see time_jobs). The `auto`
 * column names the path matmul takes by default.
 * A 4096x4096 Q8_0 matrix (17 MB) fits a 32 MB L3; pass a bigger shape (e.g.
 * 4096 14336) to read from DRAM as a real model's decode does.
 * Not a test: it asserts nothing; `make check` does not run it.
 * Usage: bench/matmul-bench [--types q8_0,q4_0,f32,f16] [--rows 1,2,..]
 *                           [--threads 1,2] [--time S] [n_in n_out] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/blas.h"
#include "kernels/isa.h"
#include "kernels/matmul.h"
#include "kernels/pool.h"
#include "kernels/qgemm.h"
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

enum { P_ROW, P_TILE, P_TILE_PK, P_DOT, P_SGEMM, N_PATHS };
static const char *const path_names[N_PATHS] = { "row", "tile", "tile-pk", "dot", "sgemm" };

/* One thing to time: a matmul on one path. */
struct job {
	int path;
	double best; /* seconds, best call so far; 0: not run */
};

static double time_stop = 0.4; /* seconds of interleaved rounds per row count */

static void run_once(struct matmul_ctx *c, const struct matmul_w *w, struct job *j, float *out,
		     const float *x, int64_t n_tok)
{
	static const enum matmul_path forced[N_PATHS] = { MATMUL_PATH_TILE, MATMUL_PATH_TILE, MATMUL_PATH_TILE,
							  MATMUL_PATH_DOT, MATMUL_PATH_SGEMM };
	matmul_force_path(c, forced[j->path]);
	qgemm_set_pack_min_rows(j->path == P_TILE_PK ? 1 : 1 << 30);
	qgemm_set_row_max_rows(j->path == P_ROW ? 1 << 30 : 0);
	double t0 = now_s();
	if (matmul(c, out, x, n_tok, w) != 0) {
		fprintf(stderr, "matmul-bench: matmul failed\n");
		exit(1);
	}
	double dt = now_s() - t0;
	j->best = j->best == 0 || dt < j->best ? dt : j->best;
}

/* Interleaved rounds, one call of each job per round, until time_stop
 * seconds (at least 3 rounds): the machine may be shared, and interleaving
 * puts every job of a row through the same disturbances; the best call is
 * the least disturbed. A first round warms scratch, caches and threads. */
static void time_jobs(struct matmul_ctx *c, const struct matmul_w *w, struct job *jobs, int n_jobs,
		      float *out, const float *x, int64_t n_tok)
{
	for (int k = 0; k < n_jobs; k++)
		run_once(c, w, &jobs[k], out, x, n_tok);
	for (int k = 0; k < n_jobs; k++)
		jobs[k].best = 0;
	double t_start = now_s();
	for (int r = 0; r < 3 || now_s() - t_start < time_stop; r++)
		for (int k = 0; k < n_jobs; k++)
			run_once(c, w, &jobs[k], out, x, n_tok);
	matmul_force_path(c, MATMUL_PATH_AUTO);
	qgemm_set_pack_min_rows(0);
	qgemm_set_row_max_rows(-1);
}

static int parse_list(const char *s, long *v, int max)
{
	int n = 0;
	while (*s && n < max) {
		char *end;
		v[n++] = strtol(s, &end, 10);
		if (end == s)
			return -1;
		s = *end == ',' ? end + 1 : end;
	}
	return n;
}

static void bench_type(uint32_t type, const float *wf, int64_t n_in, int64_t n_out, const long *rows,
		       int n_rows, const long *threads, int n_threads)
{
	const size_t rb = st_row_bytes(type, (uint64_t)n_in);
	const long max_tok = rows[n_rows - 1];
	char *wq = xmalloc(rb * (size_t)n_out);
	for (int64_t r = 0; r < n_out; r++)
		quant_quantize_row(type, wf + r * n_in, wq + (size_t)r * rb, n_in);
	float *x = xmalloc((size_t)(max_tok * n_in) * sizeof *x);
	for (int64_t i = 0; i < max_tok * n_in; i++)
		x[i] = frand();
	float *out = xmalloc((size_t)(max_tok * n_out) * sizeof *out);
	const struct matmul_w w = { type, n_in, n_out, wq };
	const int has_tile = qgemm_get(type) != NULL;

	for (int ti = 0; ti < n_threads; ti++) {
		struct pool *pool;
		struct matmul_ctx *c;
		if (pool_create((int)threads[ti], &pool) != 0 || matmul_ctx_create(pool, &c) != 0) {
			fprintf(stderr, "matmul-bench: setup failed\n");
			exit(1);
		}
		static double gflops[64][N_PATHS], gbs[64][N_PATHS];
		static int ran[64][N_PATHS];
		const char *autos[64];
		printf("\n%s, %lldx%lld, %ld thread%s, kernels %s\n", st_type_name(type), (long long)n_out,
		       (long long)n_in, threads[ti], threads[ti] > 1 ? "s" : "", isa_name());
		for (int ri = 0; ri < n_rows; ri++) {
			const int64_t nt = rows[ri];
			struct job jobs[N_PATHS];
			int nj = 0;
			for (int p = 0; p < N_PATHS; p++) {
				ran[ri][p] = 0;
				if ((p == P_ROW || p == P_TILE || p == P_TILE_PK) && !has_tile)
					continue;
				/* one dot per pair, or one weight row at a time: past 64
				 * (16) rows, slow to time and far behind */
				if ((p == P_DOT && nt > 64 && type != ST_F32) || (p == P_ROW && nt > 16))
					continue;
				jobs[nj++] = (struct job){ .path = p };
			}
			time_jobs(c, &w, jobs, nj, out, x, nt);
			for (int k = 0; k < nj; k++) {
				const int p = jobs[k].path;
				ran[ri][p] = 1;
				gflops[ri][p] = 2.0 * (double)nt * (double)n_in * (double)n_out / jobs[k].best * 1e-9;
				gbs[ri][p] = (double)rb * (double)n_out / jobs[k].best * 1e-9;
			}
			const enum matmul_path ap = matmul_path_for(c, type, nt);
			autos[ri] = ap == MATMUL_PATH_TILE ? qgemm_feed(type, nt)
				  : ap == MATMUL_PATH_DOT  ? "dot"
							   : "sgemm";
		}
		for (int table = 0; table < 2; table++) {
			printf("  %-8s", table ? "GB/s" : "GFLOP/s");
			for (int p = 0; p < N_PATHS; p++)
				printf(" %8s", path_names[p]);
			printf("   auto\n");
			for (int ri = 0; ri < n_rows; ri++) {
				printf("  rows %3ld", rows[ri]);
				for (int p = 0; p < N_PATHS; p++) {
					if (ran[ri][p])
						printf(" %8.1f", table ? gbs[ri][p] : gflops[ri][p]);
					else
						printf(" %8s", "-");
				}
				printf("   %s\n", autos[ri]);
			}
		}
		fflush(stdout);
		matmul_ctx_free(c);
		pool_free(pool);
	}
	free(out);
	free(x);
	free(wq);
}

int main(int argc, char **argv)
{
	blas_setup_process(argv);
	int64_t n_in = 4096, n_out = 4096;
	long rows[64] = { 1, 2, 3, 4, 5, 6, 8, 9, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512 };
	int n_rows = 18;
	long threads[8] = { 1, 2 };
	int n_threads = 2;
	uint32_t types[8] = { ST_Q8_0, ST_Q4_0, ST_F32 };
	int n_types = 3;
	int a = 1;
	for (; a + 1 < argc && argv[a][0] == '-'; a += 2) {
		if (strcmp(argv[a], "--rows") == 0) {
			n_rows = parse_list(argv[a + 1], rows, 64);
		} else if (strcmp(argv[a], "--threads") == 0) {
			n_threads = parse_list(argv[a + 1], threads, 8);
		} else if (strcmp(argv[a], "--time") == 0) {
			time_stop = atof(argv[a + 1]);
		} else if (strcmp(argv[a], "--types") == 0) {
			n_types = 0;
			for (char *s = argv[a + 1], *tok; (tok = strtok(s, ",")) && n_types < 8; s = NULL) {
				enum st_type t;
				if (st_type_parse(tok, &t) != 0) {
					fprintf(stderr, "matmul-bench: unknown type %s\n", tok);
					return 2;
				}
				types[n_types++] = t;
			}
		} else {
			break;
		}
	}
	if (argc - a == 2) {
		n_in = atoll(argv[a]);
		n_out = atoll(argv[a + 1]);
	} else if (argc != a) {
		n_in = 0;
	}
	if (n_in <= 0 || n_out <= 0 || n_in % 32 || n_rows <= 0 || n_threads <= 0) {
		fprintf(stderr, "usage: matmul-bench [--types q8_0,q4_0,f32] [--rows 1,2,...] "
				"[--threads 1,2] [--time S] [n_in n_out], n_in a multiple of 32\n");
		return 2;
	}

	float *wf = xmalloc((size_t)(n_in * n_out) * sizeof *wf);
	for (int64_t i = 0; i < n_in * n_out; i++)
		wf[i] = frand();
	printf("matmul-bench: %lldx%lld (n_out x n_in), kernels %s, OpenBLAS %s\n", (long long)n_out,
	       (long long)n_in, isa_name(), blas_core_name());
	for (int t = 0; t < n_types; t++)
		bench_type(types[t], wf, n_in, n_out, rows, n_rows, threads, n_threads);
	free(wf);
	return 0;
}
