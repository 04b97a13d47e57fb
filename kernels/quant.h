/* quant.h: whole-row conversions between f32 and each weight type, the
 * fastest version this CPU runs. Dequantization feeds the GEMM path (sgemm
 * wants f32), the embeddings and the tests; quantization makes synthetic
 * models and the activations of the dot kernels. The definitions are the
 * references in quant_ref.h; these are bit-identical to them. */
#ifndef STRATA_KERNELS_QUANT_H
#define STRATA_KERNELS_QUANT_H

#include <stdint.h>

#include "kernels/types.h"

/* dst (n) f32 <- src (one row of n weights of `type`); n a multiple of the
 * type's block size. Returns 0, -ENOTSUP for a type strata cannot read, or
 * -EINVAL if n is not a whole number of blocks. Bit-identical to
 * quant_dequantize_row_ref (NaN payloads aside). */
int quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);

/* dst (st_row_bytes(type, n) bytes) <- src (n) f32 with ggml's reference
 * quantizers (quant_ref.h says which): weights as llama-quantize writes them. Returns 0, -ENOTSUP or -EINVAL as above.
 * Bit-identical to quant_quantize_row_ref. */
int quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);

/* dst <- src (n) f32: the activations of a dot product in `act_type`
 * (dot_act_type()), by ggml's x86 rules (quant_ref.h: quant_act_row_ref).
 * Bit-identical to quant_act_row_ref. Returns as quant_quantize_row. */
int quant_act_row(uint32_t act_type, const float *src, void *dst, int64_t n);

#endif
