/* blas.c: the OpenBLAS wrapper (see blas.h). Only row-major x·Wᵀ sgemm and the
 * thread budget; nothing else in strata includes cblas.h. */
#include "config.h"

#include "kernels/blas.h"

#include <assert.h>
#include <limits.h>
#include <stdbool.h>
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

/* OpenBLAS would run AVX2 kernels although the CPU has AVX-512. */
static bool avx512_unused(void)
{
#if defined(__x86_64__)
	const char *core = openblas_get_corename();
	if (!core || (strcasecmp(core, "Haswell") != 0 && strcasecmp(core, "Zen") != 0))
		return false;
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
	return false;
#endif
}

void blas_setup_process(char **argv)
{
	bool again = false;
	if (!getenv("OPENBLAS_NUM_THREADS")) {
		setenv("OPENBLAS_NUM_THREADS", "1", 1);
		again = true;
	}
	if (!getenv("OPENBLAS_CORETYPE") && avx512_unused()) {
		setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
		again = true;
	}
	if (again) {
		/* exec the real path, not /proc/self/exe, so the process keeps its name */
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n > 0) {
			self[n] = '\0';
			execv(self, argv); /* returns only on failure: go on as we are */
		}
	}
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
