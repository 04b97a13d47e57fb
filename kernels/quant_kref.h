/* quant_kref.h: private to kernels/. The reference conversions of the
 * super-block types (Q2_K..Q6_K, Q8_K, IQ4_XS) and of IQ4_NL, which shares
 * IQ4_XS's search: quant_ref.c dispatches here. Callers use quant_ref.h or
 * quant.h; n is a whole number of blocks (checked there). */
#ifndef STRATA_KERNELS_QUANT_KREF_H
#define STRATA_KERNELS_QUANT_KREF_H

#include <stdint.h>

#include "kernels/types.h"

/* dst (n) f32 <- one row of `type`: ggml's dequantize_row_*, operation for
 * operation. Returns 0, or -ENOTSUP for a type not handled here. */
int kquant_dequantize_row_ref(uint32_t type, const void *src, float *dst, int64_t n);

/* dst <- src (n) f32 with ggml's reference quantizers (no importance matrix):
 * quantize_row_q{2..6}_K_ref, quantize_row_q8_K_ref, quantize_iq4_xs and
 * quantize_iq4_nl. A super-block (or IQ4_NL block) holding a NaN or an
 * infinity stores NaN scales and zero quants instead (ggml is undefined
 * there). Returns 0 or -ENOTSUP. */
int kquant_quantize_row_ref(uint32_t type, const float *src, void *dst, int64_t n);

/* One Q8_K block (256 floats), for the SIMD activation quantizers' special
 * blocks. */
void kquant_q8_K_block_ref(const float *x, struct block_q8_K *y);

#endif
