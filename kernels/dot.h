/* dot.h: dot products of one weight row with one activation row, per weight
 * type: the inner loop of single-token decode (GEMV). Float weights (F32, F16,
 * BF16) take f32 activations; Q8_0 and Q4_0 take activations quantized to
 * Q8_0 once per row (integer multiply-adds, as ggml does). Each type has a
 * scalar reference and the fastest version this CPU runs (AVX-512, AVX2 or
 * the reference), picked once at startup. */
#ifndef STRATA_KERNELS_DOT_H
#define STRATA_KERNELS_DOT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/types.h"

/* w: one row of n weights of the weight type; x: activations prepared with
 * dot_prepare_act() for that weight type. n is a multiple of 32. */
typedef float (*dot_fn)(const void *w, const void *x, int64_t n);

/* The type activations must be in for weights of `wtype` (ST_F32 or ST_Q8_0). */
uint32_t dot_act_type(uint32_t wtype);
/* Bytes of n prepared activations for weights of `wtype`. */
size_t dot_act_bytes(uint32_t wtype, int64_t n);
/* out (dot_act_bytes) <- x (n) f32, in the form dot_get(wtype) wants. */
void dot_prepare_act(uint32_t wtype, const float *x, void *out, int64_t n);

/* Fastest kernel for this CPU, or NULL for a type without one. */
dot_fn dot_get(uint32_t wtype);
/* The scalar reference, or NULL. */
dot_fn dot_get_ref(uint32_t wtype);
/* "avx512vnni", "avx512", "avx2" or "scalar": what dot_get() and
 * quant_dequantize_row() use now (for logs and benches). Static string. */
const char *dot_isa(void);
/* Force one instruction set (tests and benchmarks compare them):
 * "scalar", "avx2", "avx512" (F/BW/VL), "avx512vnni", or NULL for the best
 * this CPU runs. Returns 0, -ENOTSUP if this CPU or build cannot run it, or
 * -EINVAL for an unknown name; on error the choice is unchanged. Not thread
 * safe: call it before other threads use the kernels. */
int dot_force_isa(const char *isa);

#endif
