/* isa.h: the instruction sets the kernels come in (scalar, AVX2, AVX-512,
 * AVX-512 VNNI), which of them this CPU runs, and the one in use: a single
 * choice for every kernel of the process (dot products, conversions,
 * attention), so a test or a benchmark moves them all at once. Also the table
 * each SIMD file fills. Not here: any arithmetic. */
#ifndef STRATA_KERNELS_ISA_H
#define STRATA_KERNELS_ISA_H

#include <stdint.h>

#include "kernels/qgemm.h"
#include "kernels/types.h"

/* w: one row of n weights of the weight type; x: activations prepared with
 * dot_prepare_act() for that weight type. n is a multiple of 32, and of
 * 256 for the super-block types. */
typedef float (*dot_fn)(const void *w, const void *x, int64_t n);
/* dst (n) f32 <- src (n weights of one type); n a whole number of blocks. */
typedef void (*dequant_fn)(const void *src, float *dst, int64_t n);
/* dst (n/32 block_q8_0) <- src (n) f32 by the activation rule of
 * quant_act_row_ref; n a multiple of 32. */
typedef void (*act_q8_0_fn)(const float *src, void *dst, int64_t n);
/* dst (n/256 block_q8_K) <- src (n) f32 as kquant_q8_K_block_ref; n a
 * multiple of 256. */
typedef void (*act_q8_K_fn)(const float *src, void *dst, int64_t n);

/* One instruction set's kernels. A NULL entry means "use the next lower
 * set's" (AVX-512 VNNI, then AVX-512, then AVX2), and where none has one,
 * the reference: the scalar set is all NULL, and a SIMD set fills only what
 * it does better than the sets below it.
 * Every entry gives the same answer as the reference within the tolerances
 * tests/test-dot.c states (bit-identical for dequant and the act_ entries). */
struct kernel_set {
	const char *name;		    /* "scalar", "avx2", ... */
	dot_fn dot[ST_TYPE_COUNT];	    /* by weight type */
	dequant_fn dequant[ST_TYPE_COUNT];  /* by weight type */
	act_q8_0_fn act_q8_0;		    /* the activations of the Q8_0/Q4_0/Q5_0/IQ4_NL dots */
	act_q8_K_fn act_q8_K;		    /* the activations of the K-quant and IQ4_XS dots */
	const struct kernel_set *lower;	    /* where NULL entries are looked up; NULL: the references */
	/* Multi-row kernels by weight type (qgemm.h): bit-identical to the
	 * reference dot of every pair, so a NULL entry (the reference) and a
	 * filled one differ in speed only. qgemm_rows: weight rows per tile;
	 * qgemm_nt: activation rows per register tile. */
	qgemm_fn qgemm[ST_TYPE_COUNT];
	int qgemm_rows;
	int qgemm_nt;
	uint64_t qgemm_row_types; /* bit t: qgemm[t] reads weight rows one at a time for few rows */
};

#if defined(__x86_64__)
extern const struct kernel_set kernels_avx2;	   /* dot_avx2.c: AVX2+FMA+F16C */
extern const struct kernel_set kernels_avx512;	   /* dot_avx512.c: AVX-512 F/BW/VL */
extern const struct kernel_set kernels_avx512vnni; /* dot_avx512.c: the same plus VNNI */
#endif

/* The set in use; never NULL. Chosen at the first call: the best this CPU
 * runs, or the one the environment variable STRATA_ISA names ("scalar",
 * "avx2", "avx512", "avx512vnni") when this CPU runs it (a lower path, for
 * tests and comparisons; an unknown or unrunnable name is ignored with a
 * message on stderr). */
const struct kernel_set *isa_active(void);
/* Its name, for logs and benchmarks. Static string. */
const char *isa_name(void);
/* Force one set: "scalar", "avx2", "avx512" (F/BW/VL), "avx512vnni", or NULL
 * for the default choice above. Returns 0, -ENOTSUP if this CPU or build cannot
 * run it, or -EINVAL for an unknown name; on error the choice is unchanged.
 * Not thread safe: call it before other threads use the kernels. */
int isa_force(const char *name);

#endif
