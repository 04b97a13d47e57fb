/* matmul.h: out = x · Wᵀ for every linear layer, whatever W's type.
 * Few rows (decode, small batches): our dot kernels, rows of W split across
 * the pool. Many rows (a prompt, a big batch): W dequantized to f32 in panels
 * and multiplied with OpenBLAS sgemm, so a prompt costs one pass over W. */
#ifndef STRATA_KERNELS_MATMUL_H
#define STRATA_KERNELS_MATMUL_H

#include <stdint.h>

struct pool;

/* A weight matrix as stored in GGUF: n_out rows of n_in weights of `type`,
 * rows contiguous, row stride st_row_bytes(type, n_in). Memory not owned. */
struct matmul_w {
	uint32_t type;
	int64_t n_in;
	int64_t n_out;
	const void *data;
};

struct matmul_ctx; /* scratch for prepared activations and f32 panels */

/* The context borrows `pool` (must outlive it); the pool's thread count also
 * sets how many threads OpenBLAS may use (the same cores, one job at a time).
 * Returns 0 or -errno; caller frees with matmul_ctx_free (NULL is a no-op). */
int matmul_ctx_create(struct pool *pool, struct matmul_ctx **out);
void matmul_ctx_free(struct matmul_ctx *c);

/* Batches with at least this many rows go to sgemm, whatever the weight type
 * (tests and the benchmark move it to compare both paths); rows <= 0 restores
 * the default, which depends on the type: 8 for F32, 16 for F16/BF16, 64 for
 * Q8_0/Q4_0, whose integer dot kernels outrun dequantize + sgemm below that
 * (bench/matmul-bench, AVX-512 VNNI). */
void matmul_set_gemm_min_rows(struct matmul_ctx *c, int64_t rows);

/* out (n_tok, w->n_out) f32 = x (n_tok, w->n_in) f32 · Wᵀ.
 * Returns 0, -ENOTSUP for a weight type without kernels, -ENOMEM when
 * scratch cannot grow (the caller's request fails; nothing is left half-done). */
int matmul(struct matmul_ctx *c, float *out, const float *x, int64_t n_tok,
	   const struct matmul_w *w);

/* Plain triple loop over dequantized rows: the reference for tests. */
int matmul_ref(float *out, const float *x, int64_t n_tok, const struct matmul_w *w);

#endif
