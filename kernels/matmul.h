/* matmul.h: out = x · Wᵀ for every linear layer, whatever W's type, with
 * W's rows split across the pool; one pass over W per call, whatever the
 * number of rows. Quantized W: the multi-row int8 kernels (qgemm.h), whose
 * result for a row does not depend on the other rows of the call (batch
 * invariance: a request's output is the same alone or beside others), or,
 * for a type without them, its one-row dot per pair (the same property).
 * Float W: the dot kernels for few rows, OpenBLAS sgemm on f32 panels for
 * many (those two round differently; float models are not batch-invariant). */
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

/* The ways a call can run (see matmul.c). */
enum matmul_path {
	MATMUL_PATH_AUTO,  /* the default choice below */
	MATMUL_PATH_DOT,   /* the one-row dot kernel per (W row, x row) pair */
	MATMUL_PATH_TILE,  /* the multi-row kernels (types without them: DOT) */
	MATMUL_PATH_SGEMM, /* W dequantized to f32, OpenBLAS sgemm */
};

/* The path a call with n_tok rows of weights of `type` takes: the forced one
 * if any, else TILE for quantized types that have a multi-row kernel, DOT for
 * the other quantized types, and for float types DOT below 8 rows (F32) or 16
 * (F16, BF16), SGEMM from there (bench/matmul-bench's crossovers). SGEMM is
 * never chosen for quantized weights: it rounds differently from the integer
 * kernels, so a row's result would depend on the batch. */
enum matmul_path matmul_path_for(const struct matmul_ctx *c, uint32_t type, int64_t n_tok);
/* Force one path for every call (tests and benchmarks compare them);
 * MATMUL_PATH_AUTO restores the default. */
void matmul_force_path(struct matmul_ctx *c, enum matmul_path path);

/* out (n_tok, w->n_out) f32 = x (n_tok, w->n_in) f32 · Wᵀ. For quantized W
 * the result of row t is a function of x's row t alone (not of n_tok, nor of
 * the other rows, nor of the thread count).
 * Returns 0, -ENOTSUP for a weight type without kernels, -ENOMEM when
 * scratch cannot grow (the caller's request fails; nothing is left half-done). */
int matmul(struct matmul_ctx *c, float *out, const float *x, int64_t n_tok,
	   const struct matmul_w *w);

/* Plain triple loop over dequantized rows: the reference for tests. */
int matmul_ref(float *out, const float *x, int64_t n_tok, const struct matmul_w *w);

#endif
