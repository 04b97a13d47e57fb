/* dot.h: dot products of one weight row with one activation row, per weight
 * type: the inner loop of single-token decode (GEMV). Float weights (F32, F16,
 * BF16) take f32 activations; quantized weights take activations quantized
 * once per row the way ggml does for that type (integer multiply-adds):
 * Q8_0 for Q8_0, Q4_0, Q5_0 and IQ4_NL; Q8_1 for Q4_1 and Q5_1; Q8_K for the
 * K-quants (Q2_K..Q6_K) and IQ4_XS. Each type has a scalar reference and a
 * version per instruction set; isa.h picks which one runs. */
#ifndef STRATA_KERNELS_DOT_H
#define STRATA_KERNELS_DOT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/isa.h"
#include "kernels/types.h"

/* The type activations must be in for weights of `wtype`: ST_F32, ST_Q8_0,
 * ST_Q8_1 or ST_Q8_K (ST_F32 for a type without kernels). */
uint32_t dot_act_type(uint32_t wtype);
/* Bytes of n prepared activations for weights of `wtype`. */
size_t dot_act_bytes(uint32_t wtype, int64_t n);
/* out (dot_act_bytes) <- x (n) f32, in the form dot_get(wtype) wants,
 * quantized as ggml's x86 code does (quant.h: quant_act_row). */
void dot_prepare_act(uint32_t wtype, const float *x, void *out, int64_t n);

/* Fastest kernel for this CPU, or NULL for a type without one. */
dot_fn dot_get(uint32_t wtype);
/* The scalar reference, or NULL. */
dot_fn dot_get_ref(uint32_t wtype);
#endif
