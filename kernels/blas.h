/* blas.h: the one place strata calls OpenBLAS, so the thread budget and the
 * row-major conventions are decided once. */
#ifndef STRATA_KERNELS_BLAS_H
#define STRATA_KERNELS_BLAS_H

#include <stdint.h>

/* How many threads OpenBLAS may use (our pool's size: they share the cores). */
void blas_set_threads(int n);

/* C (m, n) = A (m, k) · Bᵀ + beta·C, B given as (n, k) rows; all row-major f32
 * with leading dimensions lda/ldb/ldc. */
void blas_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
		   const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

#endif
