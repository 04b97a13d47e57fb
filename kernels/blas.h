/* blas.h: the one place strata calls OpenBLAS, so the thread budget and the
 * row-major conventions are decided once. */
#ifndef STRATA_KERNELS_BLAS_H
#define STRATA_KERNELS_BLAS_H

#include <stdint.h>

/* How many threads OpenBLAS may use. strata calls sgemm from each of its own
 * pool threads, so this is 1 (see matmul.c). */
void blas_set_threads(int n);

/* Call first thing in main() of a program that computes. OpenBLAS reads its
 * settings from the environment when it loads, before main(): by default it
 * starts a thread per core (which we never use, see matmul.c, but which spin
 * for a while after start), and the 0.3.21 in Debian 12 may pick AVX2
 * kernels on an AVX-512 CPU it does not recognize (about half the speed).
 * So when OPENBLAS_NUM_THREADS is unset, or when OpenBLAS chose a Haswell/Zen
 * core on a CPU with AVX-512 F/BW/DQ/VL and OPENBLAS_CORETYPE is unset, this
 * sets OPENBLAS_NUM_THREADS=1 (and OPENBLAS_CORETYPE=SkylakeX) and
 * re-executes the program: same pid, argv and environment otherwise.
 * Variables the user set are left alone. Returns when nothing needs doing
 * or the exec failed (then the program goes on with what it has). */
void blas_setup_process(char **argv);
/* OpenBLAS's name for the kernels in use, e.g. "SkylakeX". */
const char *blas_core_name(void);

/* C (m, n) = A (m, k) · Bᵀ + beta·C, B given as (n, k) rows; all row-major f32
 * with leading dimensions lda/ldb/ldc. */
void blas_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
		   const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

#endif
