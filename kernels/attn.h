/* attn.h: attention of one query token over a sequence's cached keys and
 * values, grouped-query (n_head query heads share n_head_kv K/V heads).
 * The cache holds rows of F32, F16, Q8_0 or Q4_0, read where they lie (a
 * quantized row is never widened into a buffer first). A sequence's rows come
 * as segments in position order (the blocks of a paged cache, or a prefix
 * shared with another sequence and then its own rows); the result does not
 * depend on how the positions are cut into segments, to the bit. Keys at
 * positions [0, n_kv) are attended: causality is the caller's. */
#ifndef STRATA_KERNELS_ATTN_H
#define STRATA_KERNELS_ATTN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* n consecutive positions: K rows at k, V rows at v, row stride kv_row_bytes. */
struct attn_seg {
	const void *k; /* (n, n_head_kv * head_dim) of kv_type */
	const void *v; /* the same shape */
	int64_t n;     /* >= 0 */
};

struct attn_args {
	const float *q;		    /* (n_head, head_dim) f32, already roped */
	const struct attn_seg *segs;/* (n_segs) in position order; their n sum to n_kv */
	int64_t n_segs;
	uint32_t kv_type;	    /* ST_F32, ST_F16, ST_Q8_0 or ST_Q4_0 (attn_kv_type_ok) */
	size_t kv_row_bytes;	    /* bytes between positions inside a segment */
	int64_t n_kv;		    /* positions to attend, >= 1 */
	int64_t n_head;
	int64_t n_head_kv;	    /* divides n_head */
	int64_t head_dim;	    /* quantized types: a multiple of 32 (one block never spans
				     * two heads) */
	float scale;		    /* usually 1/sqrt(head_dim) */
	float *scores;		    /* scratch: n_kv floats */
	float *out;		    /* (n_head, head_dim) f32 */
};

/* Whether rows of `type` with heads of head_dim can be attended: 0, or
 * -EINVAL (a type attention cannot read, or a quantized type whose 32-element
 * blocks would straddle heads). */
int attn_kv_type_ok(uint32_t type, int64_t head_dim);

/* Heads [head_begin, head_end) only, so the caller can split heads across
 * threads. On the instruction set isa_name() names. */
void attn_heads(const struct attn_args *a, int64_t head_begin, int64_t head_end);
/* All heads, scalar, in double precision: the reference. */
void attn_ref(const struct attn_args *a);

#endif
