/* blas.c: the OpenBLAS wrapper (see blas.h). Only row-major x·Wᵀ sgemm and the
 * thread budget; nothing else in strata includes cblas.h. */
#include "kernels/blas.h"

#include <assert.h>
#include <limits.h>

#include <cblas.h>

void blas_set_threads(int n)
{
	assert(n >= 1);
	openblas_set_num_threads(n);
}

void blas_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
		   const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
	/* cblas takes blasint (int in Debian's build): a layer that does not
	 * fit is a caller bug, not a runtime condition. */
	assert(m >= 0 && n >= 0 && k >= 0);
	assert(lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX);
	assert(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX);
	if (m == 0 || n == 0)
		return;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)n, (blasint)k,
		    1.0f, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}
