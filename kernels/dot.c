/* dot.c: the scalar reference dot products (the definition each SIMD kernel
 * is tested against), activation preparation, and the lookup of the kernel
 * for the instruction set in use (isa.h). The SIMD kernels live in
 * dot_avx2.c and dot_avx512.c; nothing here knows about matrices or threads. */
#include "kernels/dot.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/quant.h"

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

/* The references by weight type: what a NULL entry of a kernel set means. */
static const dot_fn dot_refs[ST_TYPE_COUNT] = {
	[ST_F32] = dot_f32_ref,
	[ST_F16] = dot_f16_ref,
	[ST_BF16] = dot_bf16_ref,
	[ST_Q8_0] = dot_q8_0_ref,
	[ST_Q4_0] = dot_q4_0_ref,
};

/* ---- the public lookups ---- */

dot_fn dot_get(uint32_t wtype)
{
	if (wtype >= ST_TYPE_COUNT)
		return NULL;
	dot_fn fn = isa_active()->dot[wtype];
	return fn ? fn : dot_refs[wtype];
}

dot_fn dot_get_ref(uint32_t wtype)
{
	return wtype < ST_TYPE_COUNT ? dot_refs[wtype] : NULL;
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
