/* isa.c: which instruction set the kernels use (see isa.h). CPU detection
 * and the choice only; the kernels live in dot*.c, quant*.c and attn.c. */
#include "kernels/isa.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* Every entry NULL: the callers fall back to their references. */
static const struct kernel_set kernels_scalar = { .name = "scalar" };

static bool cpu_scalar(void)
{
	return true;
}

#if defined(__x86_64__)
/* __builtin_cpu_supports checks that the OS saves the wide registers too;
 * F16C is read from CPUID because clang's builtin does not know its name. */
static bool cpu_avx2(void)
{
	unsigned eax, ebx, ecx, edx;
	if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_F16C))
		return false;
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static bool cpu_avx512(void)
{
	return cpu_avx2() && __builtin_cpu_supports("avx512f") &&
	       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

static bool cpu_avx512vnni(void)
{
	return cpu_avx512() && __builtin_cpu_supports("avx512vnni");
}
#endif

/* Best first: auto-detection takes the first one the CPU runs. */
static const struct {
	const struct kernel_set *set;
	bool (*runs)(void);
} isa_sets[] = {
#if defined(__x86_64__)
	{ &kernels_avx512vnni, cpu_avx512vnni },
	{ &kernels_avx512, cpu_avx512 },
	{ &kernels_avx2, cpu_avx2 },
#endif
	{ &kernels_scalar, cpu_scalar },
};

#define N_SETS (sizeof isa_sets / sizeof isa_sets[0])

/* Written once by the first caller (threads racing there compute the same
 * answer) or by isa_force(); read by every kernel lookup. */
static const struct kernel_set *isa_current;

/* The set called `name`: 0, -ENOTSUP (known, but not on this CPU or build), -EINVAL. */
static int isa_find(const char *name, const struct kernel_set **out)
{
	for (size_t i = 0; i < N_SETS; i++) {
		if (strcmp(isa_sets[i].set->name, name) != 0)
			continue;
		if (!isa_sets[i].runs())
			return -ENOTSUP;
		*out = isa_sets[i].set;
		return 0;
	}
	/* a name we know of but this build has no code for (non-x86) */
	if (strcmp(name, "avx2") == 0 || strcmp(name, "avx512") == 0 ||
	    strcmp(name, "avx512vnni") == 0)
		return -ENOTSUP;
	return -EINVAL;
}

static const struct kernel_set *isa_default(void)
{
	const char *env = getenv("STRATA_ISA");
	const struct kernel_set *set;
	if (env && *env) {
		int rc = isa_find(env, &set);
		if (rc == 0)
			return set;
		fprintf(stderr, "strata: STRATA_ISA=%s ignored: %s\n", env,
			rc == -ENOTSUP ? "this CPU does not run it"
				       : "not one of scalar, avx2, avx512, avx512vnni");
	}
	for (size_t i = 0; i < N_SETS; i++)
		if (isa_sets[i].runs())
			return isa_sets[i].set;
	return &kernels_scalar;
}

const struct kernel_set *isa_active(void)
{
	const struct kernel_set *set = __atomic_load_n(&isa_current, __ATOMIC_ACQUIRE);
	if (set == NULL) {
		set = isa_default();
		__atomic_store_n(&isa_current, set, __ATOMIC_RELEASE);
	}
	return set;
}

const char *isa_name(void)
{
	return isa_active()->name;
}

int isa_force(const char *name)
{
	const struct kernel_set *set;
	if (name == NULL) {
		__atomic_store_n(&isa_current, isa_default(), __ATOMIC_RELEASE);
		return 0;
	}
	int rc = isa_find(name, &set);
	if (rc == 0)
		__atomic_store_n(&isa_current, set, __ATOMIC_RELEASE);
	return rc;
}
