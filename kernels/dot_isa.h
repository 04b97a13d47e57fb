/* dot_isa.h: private to kernels/dot*.c and kernels/quant.c: the set of
 * kernels one instruction set provides, so that dispatch is one pointer
 * picked at startup. Not an API: everyone else uses dot.h and quant.h. */
#ifndef STRATA_KERNELS_DOT_ISA_H
#define STRATA_KERNELS_DOT_ISA_H

#include <stdint.h>

#include "kernels/dot.h"
#include "kernels/types.h"

/* dst (n) f32 <- src (n weights of one type); n a whole number of blocks. */
typedef void (*dequant_fn)(const void *src, float *dst, int64_t n);
/* dst (n/32 block_q8_0) <- src (n) f32; n a multiple of 32. */
typedef void (*quant_q8_0_fn)(const float *src, void *dst, int64_t n);

/* One instruction set's kernels. A NULL entry means "use the reference":
 * the scalar set is all references, and a SIMD set fills only what it does
 * better. Every entry gives the same answer as the reference within the
 * tolerances tests/test-dot.c states (bit-identical for dequant and quant). */
struct dot_isa {
	const char *name;		    /* "scalar", "avx2", ... */
	dot_fn dot[ST_TYPE_COUNT];	    /* by weight type */
	dequant_fn dequant[ST_TYPE_COUNT];  /* by weight type */
	quant_q8_0_fn quant_q8_0;	    /* the activations of the Q8_0/Q4_0 dots */
};

#if defined(__x86_64__)
extern const struct dot_isa dot_isa_avx2;	 /* dot_avx2.c: AVX2+FMA+F16C */
extern const struct dot_isa dot_isa_avx512;	 /* dot_avx512.c: AVX-512 F/BW/VL */
extern const struct dot_isa dot_isa_avx512vnni;	 /* dot_avx512.c: the same plus VNNI */
#endif

/* The set in use now (dot.c); never NULL. */
const struct dot_isa *dot_isa_active(void);

/* The Q8_0 reference quantizer (quant.c); the SIMD versions call it for the
 * rare blocks they leave to it (non-finite values). */
void quant_q8_0_block_ref(const float *x, struct block_q8_0 *y);

#endif
