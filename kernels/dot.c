/* dot.c: the scalar reference dot products (the definition each SIMD kernel
 * is tested against), activation preparation, and the one-time choice of
 * instruction set. The SIMD kernels live in dot_avx2.c and dot_avx512.c;
 * nothing here knows about matrices or threads. */
#include "kernels/dot.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "kernels/dot_isa.h"
#include "kernels/quant.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* ---- references: plain loops, read them as the definition ---- */

/* The float types sum in double (as ggml's generic code does): the reference
 * should be closer to the true value than any kernel it judges. */
static float dot_f32_ref(const void *vw, const void *vx, int64_t n)
{
	const float *w = vw, *x = vx;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)w[i] * x[i];
	return (float)sum;
}

static float dot_f16_ref(const void *vw, const void *vx, int64_t n)
{
	const uint16_t *w = vw;
	const float *x = vx;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)st_fp16_to_f32(w[i]) * x[i];
	return (float)sum;
}

static float dot_bf16_ref(const void *vw, const void *vx, int64_t n)
{
	const uint16_t *w = vw;
	const float *x = vx;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)st_bf16_to_f32(w[i]) * x[i];
	return (float)sum;
}

/* Quantized types: an exact integer sum per block, then one float
 * multiply-add per block by d_w * d_x, in a float accumulator (ggml's
 * ggml_vec_dot_q8_0_q8_0 generic code, term for term). */
static float dot_q8_0_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q8_0 *w = vw, *x = vx;
	assert(n % QK8_0 == 0);
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK8_0; b++) {
		int32_t sumi = 0;
		for (int j = 0; j < QK8_0; j++)
			sumi += w[b].qs[j] * x[b].qs[j];
		sum += (float)sumi * (st_fp16_to_f32(w[b].d) * st_fp16_to_f32(x[b].d));
	}
	return sum;
}

static float dot_q4_0_ref(const void *vw, const void *vx, int64_t n)
{
	const struct block_q4_0 *w = vw;
	const struct block_q8_0 *x = vx;
	assert(n % QK4_0 == 0);
	float sum = 0.0f;
	for (int64_t b = 0; b < n / QK4_0; b++) {
		int32_t sumi = 0;
		for (int j = 0; j < QK4_0 / 2; j++) {
			sumi += ((w[b].qs[j] & 0x0f) - 8) * x[b].qs[j];
			sumi += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + QK4_0 / 2];
		}
		sum += (float)sumi * (st_fp16_to_f32(w[b].d) * st_fp16_to_f32(x[b].d));
	}
	return sum;
}

static const struct dot_isa dot_isa_scalar = {
	.name = "scalar",
	.dot = {
		[ST_F32] = dot_f32_ref,
		[ST_F16] = dot_f16_ref,
		[ST_BF16] = dot_bf16_ref,
		[ST_Q8_0] = dot_q8_0_ref,
		[ST_Q4_0] = dot_q4_0_ref,
	},
	/* dequant and quant_q8_0 all NULL: quant.c runs its references */
};

/* ---- choosing the instruction set ---- */

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
	const struct dot_isa *isa;
	bool (*runs)(void);
} dot_isas[] = {
#if defined(__x86_64__)
	{ &dot_isa_avx512vnni, cpu_avx512vnni },
	{ &dot_isa_avx512, cpu_avx512 },
	{ &dot_isa_avx2, cpu_avx2 },
#endif
	{ &dot_isa_scalar, cpu_scalar },
};

#define N_ISAS (sizeof dot_isas / sizeof dot_isas[0])

/* Written once by the first caller (threads racing there compute the same
 * answer) or by dot_force_isa(); read by every kernel lookup. */
static const struct dot_isa *dot_active;

static const struct dot_isa *dot_isa_best(void)
{
	for (size_t i = 0; i < N_ISAS; i++)
		if (dot_isas[i].runs())
			return dot_isas[i].isa;
	return &dot_isa_scalar;
}

const struct dot_isa *dot_isa_active(void)
{
	const struct dot_isa *isa = __atomic_load_n(&dot_active, __ATOMIC_ACQUIRE);
	if (isa == NULL) {
		isa = dot_isa_best();
		__atomic_store_n(&dot_active, isa, __ATOMIC_RELEASE);
	}
	return isa;
}

int dot_force_isa(const char *name)
{
	if (name == NULL) {
		__atomic_store_n(&dot_active, dot_isa_best(), __ATOMIC_RELEASE);
		return 0;
	}
	for (size_t i = 0; i < N_ISAS; i++) {
		if (strcmp(dot_isas[i].isa->name, name) != 0)
			continue;
		if (!dot_isas[i].runs())
			return -ENOTSUP;
		__atomic_store_n(&dot_active, dot_isas[i].isa, __ATOMIC_RELEASE);
		return 0;
	}
	/* a name we know of but this build has no code for (non-x86) */
	if (strcmp(name, "avx2") == 0 || strcmp(name, "avx512") == 0 ||
	    strcmp(name, "avx512vnni") == 0)
		return -ENOTSUP;
	return -EINVAL;
}

const char *dot_isa(void)
{
	return dot_isa_active()->name;
}

/* ---- the public lookups ---- */

dot_fn dot_get(uint32_t wtype)
{
	if (wtype >= ST_TYPE_COUNT)
		return NULL;
	dot_fn fn = dot_isa_active()->dot[wtype];
	return fn ? fn : dot_isa_scalar.dot[wtype];
}

dot_fn dot_get_ref(uint32_t wtype)
{
	return wtype < ST_TYPE_COUNT ? dot_isa_scalar.dot[wtype] : NULL;
}

uint32_t dot_act_type(uint32_t wtype)
{
	return wtype == ST_Q8_0 || wtype == ST_Q4_0 ? ST_Q8_0 : ST_F32;
}

size_t dot_act_bytes(uint32_t wtype, int64_t n)
{
	return st_row_bytes(dot_act_type(wtype), (uint64_t)n);
}

void dot_prepare_act(uint32_t wtype, const float *x, void *out, int64_t n)
{
	int rc = quant_quantize_row(dot_act_type(wtype), x, out, n);
	assert(rc == 0); /* only fails for n not a multiple of 32: a caller bug */
	(void)rc;
}
