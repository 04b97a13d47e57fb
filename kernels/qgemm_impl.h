/* qgemm_impl.h: what qgemm.c and the per-instruction-set kernel files
 * (qgemm_avx2.c, qgemm_avx512.c) agree on: the layout of a prepared
 * activation row, the size of a repacked weight block, the tile sizes, and
 * the kernels' names for the tables in dot_avx2.c and dot_avx512.c.
 * Private to kernels/; not an API. */
#ifndef STRATA_KERNELS_QGEMM_IMPL_H
#define STRATA_KERNELS_QGEMM_IMPL_H

#include <stddef.h>
#include <stdint.h>

/* A prepared activation row of n values (n/32 blocks), for Q8_0 and Q4_0
 * weights (the K-quants take dot_prepare_act's Q8_K row as it is):
 *   [0, n/32 * 34)     the row as dot_prepare_act makes it (block_q8_0)
 *   [side, ...)        per 16 blocks, 128 bytes: the 16 blocks' d as f32 (the
 *                      f16 d, widened exactly), then their 16 int32 terms
 *                      -(zero point * sum of the block's quants)
 * with side = qgemm_act_side(n), 64-byte aligned from the row's start. The
 * terms sit beside the scales: in a separate array of their own, the one-row
 * kernel read 30% slower from DRAM (one more stream of loads). */
static inline size_t qgemm_act_side(int64_t n)
{
	return ((size_t)(n / 32) * 34 + 63) & ~(size_t)63;
}

/* Block b's d and term in the side data, in 4-byte words from its start. */
static inline size_t qgemm_side_d(int64_t b)
{
	return (size_t)(b / 16) * 32 + (size_t)(b % 16);
}

static inline size_t qgemm_side_neg(int64_t b)
{
	return qgemm_side_d(b) + 16;
}

/* Activation rows per register tile of the AVX-512 kernels (one accumulator
 * register each; AVX2 has half the registers and takes 4). */
#define QGEMM_NT 8

/* Whether a call with nt activation rows repacks its weight tiles: by
 * default when the rows take more than one register tile of `nt_tile` (then
 * transposing per tile would be repeated; bench/matmul-bench shows the
 * crossover there), else as qgemm_set_pack_min_rows() says. */
static inline int qgemm_packs(int64_t nt, int nt_tile, int64_t pack_min_rows)
{
	return pack_min_rows > 0 ? nt >= pack_min_rows : nt > nt_tile;
}
/* Bytes of the largest repacked block of 32 weights x 16 rows any set
 * writes: 8 registers of quants (512), 8 64-bit sign masks (64), 16 f32
 * scales (64). */
#define QGEMM_PACK_BLOCK_MAX 640
/* Activation rows per register tile of the super-block kernels, and the
 * bytes of a repacked super-block of 256 weights x 16 rows: 64 registers of
 * quants, then per sub-block scales and minimums (Q4_K: 8 + 8 registers, d
 * and dmin; Q6_K: 16 scales, 8 pairs of them, d). */
#define QGEMM_NT_K 4
#define QGEMM_PACK_Q4_K (64 * (64 + 8 + 8 + 2))
#define QGEMM_PACK_Q6_K (64 * (64 + 16 + 8 + 1))

#if defined(__x86_64__)
#define QGEMM_DECL(name)                                                                    \
	void name(const void *w, size_t w_stride, int64_t nr, const void *act, size_t act_stride, \
		  int64_t nt, int64_t n, float *out, int64_t ldo, void *scratch)
QGEMM_DECL(qgemm_q8_0_avx2);
QGEMM_DECL(qgemm_q4_0_avx2);
QGEMM_DECL(qgemm_q8_0_avx512);
QGEMM_DECL(qgemm_q4_0_avx512);
QGEMM_DECL(qgemm_q8_0_vnni);
QGEMM_DECL(qgemm_q4_0_vnni);
QGEMM_DECL(qgemm_q4_K_vnni);
QGEMM_DECL(qgemm_q6_K_vnni);
#undef QGEMM_DECL
/* dot_avx2.c: the K-quant dots with the references' bits, for one row. */
float dot_q4_K_exact(const void *w, const void *x, int64_t n);
float dot_q6_K_exact(const void *w, const void *x, int64_t n);
#endif

#endif
