/* quant.c: whole-row conversions between f32 and the weight types
 * (quant.h), handed to the kernel set in use (isa.h), or to the references
 * in quant_ref.c where it has none. Not here: dot products, tensors, threads. */
#include "kernels/quant.h"

#include "kernels/isa.h"
#include "kernels/quant_ref.h"

int quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n)
{
	int rc = quant_row_check(type, n);
	if (rc < 0)
		return rc;
	for (const struct kernel_set *set = isa_active(); set; set = set->lower) {
		if (set->dequant[type]) {
			set->dequant[type](src, dst, n);
			return 0;
		}
	}
	return quant_dequantize_row_ref(type, src, dst, n);
}

/* The weight quantizers are the references: they make models (quantize,
 * synth), where the search, not the instruction set, sets the pace. */
int quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n)
{
	return quant_quantize_row_ref(type, src, dst, n);
}

/* Q8_0 and Q8_K have SIMD versions: they run once per activation row of
 * every matmul, and in a decode on one thread while the pool waits. The
 * others are O(n) per row against the O(n * n_out) of the dots that use them. */
int quant_act_row(uint32_t act_type, const float *src, void *dst, int64_t n)
{
	int rc = quant_row_check(act_type, n);
	if (rc < 0)
		return rc;
	for (const struct kernel_set *set = isa_active(); set; set = set->lower) {
		if (act_type == ST_Q8_0 && set->act_q8_0) {
			set->act_q8_0(src, dst, n);
			return 0;
		}
		if (act_type == ST_Q8_K && set->act_q8_K) {
			set->act_q8_K(src, dst, n);
			return 0;
		}
	}
	return quant_act_row_ref(act_type, src, dst, n);
}
