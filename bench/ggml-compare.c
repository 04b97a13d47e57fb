/* ggml-compare.c: strata's conversions and dot products against ggml's own,
 * linked from a llama.cpp build (bench/ggml-compare.sh compiles it; it is
 * not part of the strata build, which never links ggml).
 *
 *   ggml-compare quant            random rows of every type strata runs:
 *                                 quantized bytes (ggml_quantize_chunk, no
 *                                 importance matrix) and dequantized bits
 *                                 (ggml's to_float) must be identical; the
 *                                 Q8_K/Q8_1/Q8_0 activations must be what
 *                                 ggml's CPU backend computes, and dot
 *                                 products are shown against ggml's vec_dot
 *                                 (same activations)
 *   ggml-compare file F.gguf...   every tensor of each file dequantized by
 *                                 ggml and by strata (reference and SIMD):
 *                                 bit-identical or not
 *   ggml-compare speed [ROWS COLS] one thread's matrix-vector product (default
 *                                 4096 x 4096, in cache) for every quantized
 *                                 type: ggml's vec_dot against strata's dot on
 *                                 each instruction set, best of 7, ms
 * Prints one line per check and exits 1 if any must-be-identical check fails. */
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <ggml.h>
#include <ggml-cpu.h>

#include "gguf/gguf.h"
#include "kernels/dot.h"
#include "kernels/isa.h"
#include "kernels/quant.h"
#include "kernels/quant_ref.h"
#include "kernels/types.h"

/* ggml-base exports these (ggml-quants.h, not an installed header) */
void quantize_row_q8_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q8_1_ref(const float *x, void *y, int64_t k);
void quantize_row_q8_0_ref(const float *x, void *y, int64_t k);

static int failures;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static float frand(void) /* [-1, 1) */
{
	return (float)((double)(rnd() >> 40) / (double)(1ull << 23) - 1.0);
}

/* Rows like weights and activations: a magnitude per 32 over 10^-3..10^2,
 * near-Gaussian values (sum of 4 uniforms), an outlier now and then. */
static void fill(float *x, int64_t n)
{
	for (int64_t b = 0; b < n; b += 32) {
		const float scale = powf(10.0f, 2.5f * frand() - 0.5f);
		for (int64_t j = b; j < b + 32; j++) {
			float v = (frand() + frand() + frand() + frand()) * 0.5f * scale;
			if (rnd() % 97 == 0)
				v *= 6.0f;
			x[j] = v;
		}
	}
}

static int64_t bit_diffs(const float *a, const float *b, int64_t n)
{
	int64_t bad = 0;
	for (int64_t i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], 4) != 0 && !(isnan(a[i]) && isnan(b[i])))
			bad++;
	return bad;
}

static void report(int ok, const char *fmt, const char *what, const char *type, long long a,
		   long long b)
{
	printf("%-4s %-28s %-8s ", ok ? "ok" : "FAIL", what, type);
	printf(fmt, a, b);
	printf("\n");
	if (!ok)
		failures++;
}

static const uint32_t types[] = { ST_Q4_0, ST_Q4_1, ST_Q5_0, ST_Q5_1, ST_Q8_0, ST_Q2_K, ST_Q3_K,
				  ST_Q4_K, ST_Q5_K, ST_Q6_K, ST_IQ4_NL, ST_IQ4_XS, ST_F16, ST_BF16 };

static int cmd_quant(void)
{
	const int64_t n = 4096, rows = 64;
	float *x = malloc(n * rows * sizeof *x), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
	uint8_t *qg = malloc(n * rows * 4), *qs = malloc(n * rows * 4);
	uint8_t *ag = malloc(n * 4), *as = malloc(n * 4);
	fill(x, n * rows);

	for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
		const uint32_t ty = types[t];
		const char *name = st_type_name(ty);
		const size_t rb = st_row_bytes(ty, n);
		ggml_quantize_chunk((enum ggml_type)ty, x, qg, 0, rows, n, NULL);
		for (int64_t r = 0; r < rows; r++)
			quant_quantize_row_ref(ty, x + r * n, qs + r * rb, n);
		long long diff_rows = 0;
		for (int64_t r = 0; r < rows; r++)
			diff_rows += memcmp(qg + r * rb, qs + r * rb, rb) != 0;
		report(diff_rows == 0, "%lld of %lld rows differ", "quantize (bytes)", name, diff_rows, rows);

		/* dequantize ggml's bytes both ways */
		long long bad_ref = 0, bad_simd = 0;
		for (int64_t r = 0; r < rows; r++) {
			ggml_get_type_traits((enum ggml_type)ty)->to_float(qg + r * rb, a, n);
			quant_dequantize_row_ref(ty, qg + r * rb, b, n);
			bad_ref += bit_diffs(a, b, n);
			quant_dequantize_row(ty, qg + r * rb, b, n);
			bad_simd += bit_diffs(a, b, n);
		}
		report(bad_ref == 0, "%lld of %lld values differ", "dequantize (reference)", name, bad_ref, n * rows);
		report(bad_simd == 0, "%lld of %lld values differ", "dequantize (SIMD)", name, bad_simd, n * rows);

		/* dot products, with strata's activations given to both */
		const uint32_t at = dot_act_type(ty);
		if (at == ST_F32)
			continue;
		double worst = 0, scale = 0;
		for (int64_t r = 0; r < rows; r++) {
			fill(a, n);
			dot_prepare_act(ty, a, as, n);
			float sg = 0;
			ggml_get_type_traits_cpu((enum ggml_type)ty)->vec_dot((int)n, &sg, 0, qg + r * rb, 0, as, 0, 1);
			const float ss = dot_get(ty)(qg + r * rb, as, n);
			const float sr = dot_get_ref(ty)(qg + r * rb, as, n);
			if (fabs((double)sg - ss) > worst)
				worst = fabs((double)sg - ss);
			if (fabs((double)sg - sr) > worst)
				worst = fabs((double)sg - sr);
			scale = fmax(scale, fabs((double)sg));
		}
		printf("info %-28s %-8s max |ggml - strata| %.3g (largest |dot| %.3g)\n", "dot vs ggml vec_dot", name,
		       worst, scale);
	}

	/* The activation quantizers: strata's (quant_act_row) must be what ggml's
	 * CPU backend runs here (from_float of each vec_dot type: for Q8_0/Q8_1
	 * its AVX2 code, for Q8_K its reference); the weight quantizers of Q8_0
	 * and Q8_1 must be ggml's references. */
	const struct {
		uint32_t type;
		void (*ggml_ref)(const float *, void *, int64_t);
	} acts[] = {
		{ ST_Q8_K, quantize_row_q8_K_ref },
		{ ST_Q8_1, quantize_row_q8_1_ref },
		{ ST_Q8_0, quantize_row_q8_0_ref },
	};
	for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
		const uint32_t ty = acts[i].type;
		const size_t rb = st_row_bytes(ty, n);
		long long bad = 0, bad_rt = 0;
		for (int64_t r = 0; r < rows; r++) {
			acts[i].ggml_ref(x + r * n, ag, n);
			quant_quantize_row_ref(ty, x + r * n, as, n);
			bad += memcmp(ag, as, rb) != 0;
			ggml_get_type_traits_cpu((enum ggml_type)ty)->from_float(x + r * n, ag, n);
			quant_act_row(ty, x + r * n, as, n);
			bad_rt += memcmp(ag, as, rb) != 0;
		}
		report(bad == 0, "%lld of %lld rows differ", "quantize vs ggml reference", st_type_name(ty), bad, rows);
		report(bad_rt == 0, "%lld of %lld rows differ", "activations vs ggml's CPU", st_type_name(ty), bad_rt,
		       rows);
	}
	free(x);
	free(a);
	free(b);
	free(qg);
	free(qs);
	free(ag);
	free(as);
	return 0;
}

static int cmd_file(const char *path)
{
	struct gguf *g;
	struct st_err err = { "" };
	if (gguf_open(path, &g, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		failures++;
		return 1;
	}
	long long tensors = 0, bad_tensors = 0, values = 0;
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		const struct st_type_info *ti = st_type_info(t->type);
		if (!ti->supported || t->type == ST_F32) /* ggml has no to_float for f32 */
			continue;
		const int64_t n = (int64_t)t->ne[0], rows = (int64_t)(t->n_elems / t->ne[0]);
		const size_t rb = st_row_bytes(t->type, (uint64_t)n);
		float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
		long long bad = 0;
		for (int64_t r = 0; r < rows; r++) {
			const void *row = (const char *)t->data + r * rb;
			ggml_get_type_traits((enum ggml_type)t->type)->to_float(row, a, n);
			quant_dequantize_row_ref(t->type, row, b, n);
			quant_dequantize_row(t->type, row, c, n);
			bad += bit_diffs(a, b, n) + bit_diffs(a, c, n);
		}
		values += n * rows;
		tensors++;
		bad_tensors += bad != 0;
		if (bad)
			printf("FAIL %s: %.*s (%s): %lld values differ\n", path, (int)t->name.len, t->name.ptr,
			       ti->name, bad);
		free(a);
		free(b);
		free(c);
	}
	report(bad_tensors == 0, "%lld of %lld tensors differ", "dequantize file", "", bad_tensors, tensors);
	printf("     (%s: %lld values)\n", path, values);
	gguf_close(g);
	return 0;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void cmd_speed(int64_t rows, int64_t cols)
{
	static const char *const isas[] = { "avx2", "avx512", "avx512vnni" };
	float *x = malloc((size_t)cols * sizeof *x), *y = malloc((size_t)rows * sizeof *y);
	float *row = malloc((size_t)cols * sizeof *row);
	void *act = malloc((size_t)cols * sizeof(float));
	printf("# %lld x %lld, one thread, best of 7 (ms); x ggml: ggml's time / strata's\n", (long long)rows,
	       (long long)cols);
	printf("%-8s %8s", "type", "ggml");
	for (size_t k = 0; k < 3; k++)
		printf(" %10s %7s", isas[k], "x ggml");
	printf("\n");
	for (int j = 0; j < cols; j++)
		x[j] = frand();
	for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
		const uint32_t t = types[ti];
		if (dot_act_type(t) == ST_F32)
			continue;
		const size_t rb = st_row_bytes(t, (uint64_t)cols);
		uint8_t *w = malloc(rb * (size_t)rows);
		for (int64_t i = 0; i < rows; i++) { /* 64 quantized rows, repeated */
			if (i >= 64) {
				memcpy(w + (size_t)i * rb, w + (size_t)(i % 64) * rb, rb);
				continue;
			}
			fill(row, cols);
			quant_quantize_row(t, row, w + (size_t)i * rb, cols);
		}
		isa_force(NULL);
		dot_prepare_act(t, x, act, cols);
		ggml_vec_dot_t gd = ggml_get_type_traits_cpu((enum ggml_type)t)->vec_dot;
		double best_g = INFINITY;
		for (int r = 0; r < 7; r++) {
			const double t0 = now();
			for (int64_t i = 0; i < rows; i++)
				gd((int)cols, &y[i], 0, w + (size_t)i * rb, 0, act, 0, 1);
			best_g = fmin(best_g, now() - t0);
		}
		printf("%-8s %8.3f", st_type_name(t), best_g * 1e3);
		for (size_t k = 0; k < 3; k++) {
			if (isa_force(isas[k]) != 0) {
				printf(" %10s %7s", "-", "");
				continue;
			}
			dot_fn f = dot_get(t);
			double best = INFINITY;
			for (int r = 0; r < 7; r++) {
				const double t0 = now();
				for (int64_t i = 0; i < rows; i++)
					y[i] = f(w + (size_t)i * rb, act, cols);
				best = fmin(best, now() - t0);
			}
			printf(" %10.3f %7.2f", best * 1e3, best_g / best);
		}
		printf("\n");
		free(w);
	}
	isa_force(NULL);
	free(act);
	free(row);
	free(y);
	free(x);
}

int main(int argc, char **argv)
{
	/* ggml's f16 conversions read tables that ggml_init fills */
	struct ggml_init_params ip = { 1 << 20, NULL, true };
	struct ggml_context *ctx = ggml_init(ip);
	ggml_cpu_init();
	if (argc >= 2 && strcmp(argv[1], "quant") == 0) {
		cmd_quant();
	} else if (argc >= 2 && strcmp(argv[1], "speed") == 0) {
		cmd_speed(argc >= 4 ? atoll(argv[2]) : 4096, argc >= 4 ? atoll(argv[3]) : 4096);
	} else if (argc >= 3 && strcmp(argv[1], "file") == 0) {
		for (int i = 2; i < argc; i++)
			cmd_file(argv[i]);
	} else {
		fprintf(stderr, "usage: ggml-compare quant | file F.gguf... | speed [ROWS COLS]\n");
		return 2;
	}
	ggml_free(ctx);
	return failures ? 1 : 0;
}
