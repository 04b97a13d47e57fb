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

/* dst (n) f32 <- src (one row of n weights of `type`): ggml's
 * dequantize_row_* operation for operation (w = d * q, d * q - m, ...), so
 * bit-identical to ggml. Returns as quant_row_check. */
int quant_dequantize_row_ref(uint32_t type, const void *src, float *dst, int64_t n);

/* dst (st_row_bytes(type, n) bytes) <- src (n) f32 with ggml's reference
 * quantizers, byte for byte what llama-quantize writes without an importance
 * matrix (bench/ggml-compare.sh checks it): Q8_0: d = amax/127, q =
 * roundf(x/d), ties away from zero; Q4_0/Q5_0: d = max/-8 (-16) by the
 * signed max; Q4_1/Q5_1: d = (max-min)/15 (31), m = min; the K-quants and
 * IQ4_XS/IQ4_NL: ggml's searches (make_qkx2_quants, make_qx_quants,
 * make_q3_quants, the IQ4 scale search); the activation formats Q8_1 and
 * Q8_K as ggml quantizes them for its dot products.
 * Where ggml is undefined we choose: a block holding a NaN or an infinity
 * stores NaN scales (so every weight, every product with it, is NaN, never
 * a silent number) and zero quants; a Q8_0/Q4_0 block whose d rounds to f16
 * zero stores zero quants. Returns as quant_row_check (which also accepts
 * Q8_1 and Q8_K). */
int quant_quantize_row_ref(uint32_t type, const float *src, void *dst, int64_t n);

/* dst (st_row_bytes(act_type, n) bytes) <- src (n) f32: the activations of
 * a dot product (act_type ST_Q8_0, ST_Q8_1 or ST_Q8_K; ST_F32 copies),
 * quantized as ggml's x86 CPU backend does before its vec_dot, so strata's
 * dots see llama.cpp's integers: Q8_0/Q8_1 round x * (127/amax) to nearest
 * even (not the reference's roundf(x / d)), Q8_K is its reference. A block
 * with a NaN or an infinity gets a NaN scale. Returns as quant_row_check. */
int quant_act_row_ref(uint32_t act_type, const float *src, void *dst, int64_t n);

/* One Q8_0 activation block (32 floats) by quant_act_row_ref's rule, and
 * its Q8_1 s when s is not NULL: the SIMD quantizers leave the blocks with
 * special rules (non-finite values, a scale whose inverse overflows) to it. */
void quant_act_q8_0_block_ref(const float *x, struct block_q8_0 *y, uint16_t *s);

#endif
