/* qgemm.h: the multi-row int8 kernels of the quantized weight types: a tile
 * of weight rows is loaded once per block and applied to several activation
 * rows while it sits in registers (AVX-512 VNNI vpdpbusd, AVX-512 BW and AVX2
 * fallbacks). The path of every quantized matmul, one row or five hundred.
 *
 * Batch invariance is the contract: each (weight row, activation row) result
 * is the scalar reference dot of that pair (dot_get_ref), bit for bit, on
 * every instruction set, in every tile position and for every row count. The
 * integer sum of a block is exact whatever order computes it; the float part
 * (per block: sum += (float)isum * (d_w * d_x), blocks in order) is the same
 * operations in the same order in one SIMD lane per pair. So a request's
 * output cannot depend on the batch it shares a pass with.
 * Not here: choosing rows per thread (matmul.c), float weights (sgemm). */
#ifndef STRATA_KERNELS_QGEMM_H
#define STRATA_KERNELS_QGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/types.h"

/* out[t * ldo + r] = dot(weight row r, activation row t) for r < nr, t < nt.
 * w: nr rows of n weights, w_stride bytes apart (GGUF layout, not repacked).
 * act: nt rows prepared by qgemm_prepare_act, act_stride bytes apart.
 * scratch: qgemm_scratch_bytes(type, n) bytes, 64-byte aligned, this
 * caller's alone (the kernel repacks a tile of weights there when nt is
 * large enough that repacking once beats transposing per activation tile). */
typedef void (*qgemm_fn)(const void *w, size_t w_stride, int64_t nr, const void *act,
			 size_t act_stride, int64_t nt, int64_t n, float *out, int64_t ldo,
			 void *scratch);

/* The kernel of the instruction set in use (isa.h, or the first lower set
 * that has one) for weights of `wtype`, or NULL when the type has no
 * multi-row kernel there (then call its one-row dot per pair: dot_get). The
 * scalar set answers with qgemm_get_ref's. */
qgemm_fn qgemm_get(uint32_t wtype);
/* The reference: dot_get_ref per pair. NULL for a type without kernels. */
qgemm_fn qgemm_get_ref(uint32_t wtype);
/* Weight rows per tile of qgemm_get(wtype) (16 for AVX-512, 8 for AVX2, 1
 * for scalar): callers split a matrix's rows between threads in multiples of
 * it. */
int qgemm_tile_rows(uint32_t wtype);

/* Bytes of one prepared activation row of n values for weights of `wtype`
 * (0 for a type without a multi-row kernel): dot_prepare_act's row (the very
 * same quantized values), then per block of 32 its scale as f32 and its
 * offset term (the weights' zero point times the sum of its quants). */
size_t qgemm_act_bytes(uint32_t wtype, int64_t n);
/* out (qgemm_act_bytes) <- x (n) f32. n a whole number of blocks. */
void qgemm_prepare_act(uint32_t wtype, const float *x, void *out, int64_t n);
/* Scratch bytes a caller of qgemm_get(wtype) provides for rows of n weights. */
size_t qgemm_scratch_bytes(uint32_t wtype, int64_t n);

/* From this many activation rows on, the kernels repack each tile of weight
 * rows once (into the scratch) instead of transposing it in registers for
 * every tile of activation rows. The default (rows <= 0, or 0 returned) is
 * each set's own: when the rows fill more than one register tile (8 rows
 * for AVX-512, 4 for AVX2), the crossover bench/matmul-bench shows. For
 * benchmarks and tests; not thread safe: set it before the kernels run. The
 * results are the same bits either way. */
void qgemm_set_pack_min_rows(int64_t rows);
int64_t qgemm_pack_min_rows(void);
/* Up to qgemm_row_max_rows(wtype) activation rows, the VNNI kernels read
 * one weight row at a time, front to back (a matrix streamed from DRAM
 * reads faster so), instead of tiles of 16 rows side by side; the same bits
 * either way. The default per type is bench/matmul-bench's crossover from
 * DRAM (1, Q6_K 4); qgemm_set_row_max_rows(rows >= 0) sets one for every
 * type (0: always tiles), rows < 0 restores the defaults. For benchmarks and
 * tests; not thread safe. */
void qgemm_set_row_max_rows(int64_t rows);
int64_t qgemm_row_max_rows(uint32_t wtype);
/* How qgemm_get(wtype) feeds its weights for nt activation rows, for
 * reports: "row", "tile" (transposed per activation tile), "tile-pk"
 * (repacked), "reference" or "none". Static string. */
const char *qgemm_feed(uint32_t wtype, int64_t nt);

#endif
