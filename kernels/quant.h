/* quant.h: whole-row conversions between f32 and each weight type.
 * Dequantization feeds the GEMM path (sgemm wants f32) and the tests;
 * quantization makes synthetic models and the activations of the dot kernels.
 * Scalar reference versions (_ref) sit beside the fast ones; they are the
 * definition the fast ones are tested against. */
#ifndef STRATA_KERNELS_QUANT_H
#define STRATA_KERNELS_QUANT_H

#include <stdint.h>

#include "kernels/types.h"

/* dst (n) f32 <- src (one row of n weights of `type`); n a multiple of the
 * type's block size. Returns 0, -ENOTSUP for a type strata cannot read, or
 * -EINVAL if n is not a whole number of blocks. The fast version is
 * bit-identical to the reference (NaN payloads aside). */
int quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);
int quant_dequantize_row_ref(uint32_t type, const void *src, float *dst, int64_t n);

/* dst (st_row_bytes(type, n) bytes) <- src (n) f32, ggml's rounding rules
 * (Q8_0: d = amax/127, id = 1/d, q = roundf(x*id), ties away from zero;
 * Q4_0: d = max/-8 by the signed max, q = min(15, trunc(x*id + 8.5))).
 * Where ggml is undefined we choose: a block holding a NaN or an infinity
 * stores d = NaN (so every product with it is NaN, never a silent number)
 * and zero quants; a block whose d rounds to f16 zero stores zero quants.
 * Returns 0, -ENOTSUP or -EINVAL as above. The fast version is
 * bit-identical to the reference. */
int quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);
int quant_quantize_row_ref(uint32_t type, const float *src, void *dst, int64_t n);

#endif
