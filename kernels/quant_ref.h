/* quant_ref.h: the scalar reference conversions between f32 and each weight
 * type: the definition every SIMD conversion is tested against (and falls
 * back to for the rare blocks with special rules). Use quant.h to convert;
 * use these in tests and where the definition itself is the point. */
#ifndef STRATA_KERNELS_QUANT_REF_H
#define STRATA_KERNELS_QUANT_REF_H

#include <stdint.h>

#include "kernels/types.h"

/* 0 when (type, n) is a row strata can convert; -ENOTSUP for a type it
 * cannot, -EINVAL when n is not a whole number of blocks. */
int quant_row_check(uint32_t type, int64_t n);

/* dst (n) f32 <- src (one row of n weights of `type`): w = d * q, one
 * rounding per element, as ggml. Returns as quant_row_check. */
int quant_dequantize_row_ref(uint32_t type, const void *src, float *dst, int64_t n);

/* dst (st_row_bytes(type, n) bytes) <- src (n) f32, ggml's rounding rules
 * (Q8_0: d = amax/127, id = 1/d, q = roundf(x*id), ties away from zero;
 * Q4_0: d = max/-8 by the signed max, q = min(15, trunc(x*id + 8.5))).
 * Where ggml is undefined we choose: a block holding a NaN or an infinity
 * stores d = NaN (so every product with it is NaN, never a silent number)
 * and zero quants; a block whose d rounds to f16 zero stores zero quants.
 * Returns as quant_row_check. */
int quant_quantize_row_ref(uint32_t type, const float *src, void *dst, int64_t n);

/* One Q8_0 block (32 floats): the SIMD quantizers leave the blocks with
 * special rules (non-finite values, a zero scale) to it. */
void quant_q8_0_block_ref(const float *x, struct block_q8_0 *y);

#endif
