/* blas.c: the OpenBLAS wrapper (see blas.h). Only row-major x·Wᵀ sgemm and the
 * thread budget; nothing else in strata includes cblas.h. */
#include "config.h"

#include "kernels/blas.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

/* Not declared in every cblas.h; exported by every OpenBLAS. */
char *openblas_get_corename(void);

const char *blas_core_name(void)
{
	return openblas_get_corename();
}

void blas_choose_kernels(char **argv)
{
#if defined(__x86_64__)
	const char *core = openblas_get_corename();
	if (getenv("OPENBLAS_CORETYPE") || !core)
		return; /* the user decided, or this is the re-executed program */
	if (strcasecmp(core, "Haswell") != 0 && strcasecmp(core, "Zen") != 0)
		return; /* OpenBLAS recognized the CPU */
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
	    !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
		return;
	setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
	if (!getenv("OPENBLAS_NUM_THREADS"))
		setenv("OPENBLAS_NUM_THREADS", "1", 1); /* its own threads would sit idle */
	execv("/proc/self/exe", argv);
	unsetenv("OPENBLAS_CORETYPE"); /* exec failed: keep going as we are */
#else
	(void)argv;
#endif
}

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
