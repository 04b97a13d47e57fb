/* kernels-bench.c: how fast each dot kernel streams weights. For every
 * weight type and every instruction set this CPU runs: one thread computes
 * y = W x for a rows x cols matrix (default 8192 x 8192, larger than any
 * cache), and we print GB/s of weight bytes read, against the scalar
 * reference and against memcpy of the same bytes measured in the same run.
 * Also the dequantize rate (the GEMM path). Not a test: it asserts nothing.
 * Usage: kernels-bench [rows [cols [TYPE...]]]  (default: every type) */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/dot.h"
#include "kernels/isa.h"
#include "kernels/quant.h"

static const char *const isas[] = { "scalar", "avx2", "avx512", "avx512vnni" };
#define N_ISAS (sizeof isas / sizeof isas[0])
static const uint32_t all_types[] = { ST_F32,  ST_F16,  ST_BF16, ST_Q8_0, ST_Q4_0, ST_Q4_1, ST_Q5_0, ST_Q5_1,
				      ST_IQ4_NL, ST_Q2_K, ST_Q3_K, ST_Q4_K, ST_Q5_K, ST_Q6_K, ST_IQ4_XS };
#define N_ALL_TYPES (sizeof all_types / sizeof all_types[0])
#define DISTINCT_ROWS 64 /* quantized once, then repeated down the matrix */
#define ROUNDS 7 /* best of ROUNDS passes each (scalar: 2) */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;

static float rnd_unit(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((double)(rng >> 40) / (double)(1ull << 23) - 1.0);
}

/* Seconds of one pass of y = W x. */
static double time_gemv(dot_fn fn, const uint8_t *w, size_t row_bytes, const void *act, float *y,
			int64_t rows, int64_t cols)
{
	const double t0 = now();
	for (int64_t i = 0; i < rows; i++)
		y[i] = fn(w + (size_t)i * row_bytes, act, cols);
	return now() - t0;
}

static double time_dequant(uint32_t type, const uint8_t *w, size_t row_bytes, float *row, int64_t rows,
			   int64_t cols)
{
	const double t0 = now();
	for (int64_t i = 0; i < rows; i++)
		quant_dequantize_row(type, w + (size_t)i * row_bytes, row, cols);
	return now() - t0;
}

/* Read-only streaming: the bandwidth a GEMV could reach at best. Sixteen
 * bytes a step is far above what memory delivers, even without -m flags. */
typedef uint64_t u64x2 __attribute__((vector_size(16)));
static uint64_t read_sink;

static double time_read(const uint8_t *p, size_t bytes)
{
	const double t0 = now();
	u64x2 a = { 0, 0 }, b = a, c = a, d = a;
	size_t i = 0;
	for (; i + 64 <= bytes; i += 64) {
		u64x2 v0, v1, v2, v3;
		memcpy(&v0, p + i, 16);
		memcpy(&v1, p + i + 16, 16);
		memcpy(&v2, p + i + 32, 16);
		memcpy(&v3, p + i + 48, 16);
		a ^= v0;
		b ^= v1;
		c ^= v2;
		d ^= v3;
	}
	a ^= b ^ c ^ d;
	read_sink += a[0] ^ a[1];
	return now() - t0;
}

int main(int argc, char **argv)
{
	const int64_t rows = argc > 1 ? atoll(argv[1]) : 8192;
	const int64_t cols = argc > 2 ? atoll(argv[2]) : 8192;
	uint32_t types[N_ALL_TYPES];
	size_t n_types = 0;
	for (int i = 3; i < argc && n_types < N_ALL_TYPES; i++) {
		enum st_type t;
		if (st_type_parse(argv[i], &t) < 0 || !st_type_info(t)->supported) {
			fprintf(stderr, "%s: unknown or unsupported type '%s'\n", argv[0], argv[i]);
			return 2;
		}
		types[n_types++] = t;
	}
	if (n_types == 0) {
		memcpy(types, all_types, sizeof all_types);
		n_types = N_ALL_TYPES;
	}
	if (rows <= 0 || cols <= 0 || cols % 256 != 0) {
		fprintf(stderr, "usage: %s [rows [cols [TYPE...]]]  (cols a multiple of 256)\n", argv[0]);
		return 2;
	}
	isa_force(NULL);
	printf("# %lld x %lld matrix-vector product, one thread; best ISA here: %s\n", (long long)rows,
	       (long long)cols, isa_name());
	printf("# GB/s = weight bytes / second (1 GB = 1e9 B); memcpy GB/s = bytes copied / second\n");
	printf("# x read: against a read-only pass over the same bytes (the ceiling for a GEMV)\n");
	printf("# rel dif: max |y - y_scalar| / max |y_scalar|; deq GB/s: quant_dequantize_row, weight bytes\n");
	printf("%-5s %-11s %9s %8s %9s %9s %9s %10s %9s\n", "type", "isa", "ms", "GB/s", "x scalar", "x memcpy",
	       "x read", "rel dif", "deq GB/s");

	float *x = malloc((size_t)cols * sizeof *x);
	float *y_ref = malloc((size_t)rows * sizeof *y_ref), *y = malloc((size_t)rows * sizeof *y);
	float *row = malloc((size_t)cols * sizeof *row);
	void *act = aligned_alloc(64, (size_t)cols * sizeof(float));
	if (!x || !y_ref || !y || !row || !act) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	for (int64_t i = 0; i < cols; i++)
		x[i] = rnd_unit();

	for (size_t ti = 0; ti < n_types; ti++) {
		const uint32_t type = types[ti];
		const size_t row_bytes = st_row_bytes(type, (uint64_t)cols);
		const size_t bytes = row_bytes * (size_t)rows;
		/* 64-byte aligned like the weight source's buffers (pages) */
		const size_t alloc = (bytes + 63) / 64 * 64;
		uint8_t *w = aligned_alloc(64, alloc), *copy = aligned_alloc(64, alloc);
		if (!w || !copy) {
			fprintf(stderr, "%s: cannot allocate 2 x %zu bytes\n", st_type_name(type), bytes);
			return 1;
		}
		/* the K-quant searches are slow: a few distinct rows, repeated */
		for (int64_t i = 0; i < rows; i++) {
			if (i >= DISTINCT_ROWS) {
				memcpy(w + (size_t)i * row_bytes, w + (size_t)(i % DISTINCT_ROWS) * row_bytes, row_bytes);
				continue;
			}
			for (int64_t j = 0; j < cols; j++)
				row[j] = rnd_unit();
			quant_quantize_row(type, row, w + (size_t)i * row_bytes, cols);
		}
		/* Rounds interleave every measurement, best of each kept, so that
		 * a burst of load elsewhere on the machine hits them all alike. */
		double t_copy = INFINITY, t_read = INFINITY;
		double t_dot[N_ISAS], t_deq[N_ISAS], rel[N_ISAS] = { 0 };
		for (size_t k = 0; k < N_ISAS; k++)
			t_dot[k] = t_deq[k] = INFINITY;
		memcpy(copy, w, bytes); /* fault the pages in first */
		for (int r = 0; r < ROUNDS; r++) {
			double t0 = now();
			memcpy(copy, w, bytes);
			t_copy = fmin(t_copy, now() - t0);
			t_read = fmin(t_read, time_read(w, bytes));
			for (size_t k = 0; k < N_ISAS; k++) {
				if ((k == 0 && r >= 2) || isa_force(isas[k]) != 0)
					continue; /* scalar: 2 rounds are plenty */
				dot_prepare_act(type, x, act, cols);
				t_dot[k] = fmin(t_dot[k], time_gemv(dot_get(type), w, row_bytes, act,
								    k == 0 ? y_ref : y, rows, cols));
				t_deq[k] = fmin(t_deq[k], time_dequant(type, w, row_bytes, row, rows, cols));
				if (k > 0 && r == 0) {
					/* |y - y_ref| against the largest |y_ref| */
					double dif = 0, big = 0;
					for (int64_t i = 0; i < rows; i++) {
						dif = fmax(dif, fabs((double)y[i] - y_ref[i]));
						big = fmax(big, fabs((double)y_ref[i]));
					}
					rel[k] = dif / big;
				}
			}
		}
		const double copy_gbs = (double)bytes / t_copy / 1e9, read_gbs = (double)bytes / t_read / 1e9;
		printf("%-5s %-11s %9.2f %8.2f %9s %9.2f %9.2f %10s %9s\n", st_type_name(type), "memcpy",
		       t_copy * 1e3, copy_gbs, "", 1.0, copy_gbs / read_gbs, "", "");
		printf("%-5s %-11s %9.2f %8.2f %9s %9.2f %9.2f %10s %9s\n", st_type_name(type), "read",
		       t_read * 1e3, read_gbs, "", read_gbs / copy_gbs, 1.0, "", "");
		const double scalar_gbs = (double)bytes / t_dot[0] / 1e9;
		for (size_t k = 0; k < N_ISAS; k++) {
			if (isinf(t_dot[k]))
				continue;
			const double gbs = (double)bytes / t_dot[k] / 1e9;
			printf("%-5s %-11s %9.2f %8.2f %9.2f %9.2f %9.2f %10.1e %9.2f\n", st_type_name(type), isas[k],
			       t_dot[k] * 1e3, gbs, gbs / scalar_gbs, gbs / copy_gbs, gbs / read_gbs, rel[k],
			       (double)bytes / t_deq[k] / 1e9);
		}
		fflush(stdout);
		free(copy);
		free(w);
	}
	isa_force(NULL);
	free(act);
	free(row);
	free(y);
	free(y_ref);
	free(x);
	return 0;
}
