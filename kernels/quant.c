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
	const struct kernel_set *isa = isa_active();
	if (isa->dequant[type] == NULL)
		return quant_dequantize_row_ref(type, src, dst, n);
	isa->dequant[type](src, dst, n);
	return 0;
}

/* Only Q8_0 has a SIMD quantizer: it runs once per activation row of every
 * quantized matmul. The others make synthetic models, where speed is moot. */
int quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n)
{
	int rc = quant_row_check(type, n);
	if (rc < 0)
		return rc;
	const struct kernel_set *isa = isa_active();
	if (type != ST_Q8_0 || isa->quant_q8_0 == NULL)
		return quant_quantize_row_ref(type, src, dst, n);
	isa->quant_q8_0(src, dst, n);
	return 0;
}
