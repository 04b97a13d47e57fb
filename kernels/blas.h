/* blas.h: the one place strata calls OpenBLAS, so the thread budget and the
 * row-major conventions are decided once. */
#ifndef STRATA_KERNELS_BLAS_H
#define STRATA_KERNELS_BLAS_H

#include <stdint.h>

/* How many threads OpenBLAS may use. strata calls sgemm from each of its own
 * pool threads, so this is 1 (see matmul.c). */
void blas_set_threads(int n);

/* Call first thing in main() of a program that computes. OpenBLAS picks its
 * kernels when it loads, before main(), from the CPU it recognizes; the
 * 0.3.21 in Debian 12 takes AVX-512 CPUs it does not know (AMD Zen 4) for a
 * Haswell and runs AVX2 kernels at about half the speed. When the CPU has
 * AVX-512 (F, BW, DQ, VL), OpenBLAS chose an AVX2 core and the environment
 * does not already say (OPENBLAS_CORETYPE), this re-executes the program
 * (same pid, argv and environment) with OPENBLAS_CORETYPE=SkylakeX and
 * OPENBLAS_NUM_THREADS=1 set. Returns only when nothing needs doing or the
 * exec failed (then the program goes on with what it has). */
void blas_choose_kernels(char **argv);
/* OpenBLAS's name for the kernels in use, e.g. "SkylakeX". */
const char *blas_core_name(void);

/* C (m, n) = A (m, k) · Bᵀ + beta·C, B given as (n, k) rows; all row-major f32
 * with leading dimensions lda/ldb/ldc. */
void blas_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
		   const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

#endif
