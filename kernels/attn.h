/* attn.h: attention of one query token over a sequence's cached keys and
 * values, grouped-query (n_head query heads share n_head_kv K/V heads).
 * The cache holds F32 or F16 rows; keys at positions [0, n_kv) are attended
 * (causality is the caller's: it passes n_kv = pos + 1). */
#ifndef STRATA_KERNELS_ATTN_H
#define STRATA_KERNELS_ATTN_H

#include <stddef.h>
#include <stdint.h>

struct attn_args {
	const float *q;	      /* (n_head, head_dim) f32, already roped */
	const void *k;	      /* (n_kv, n_head_kv * head_dim) of kv_type, row stride kv_row_bytes */
	const void *v;	      /* (n_kv, n_head_kv * head_dim) of kv_type, same stride */
	uint32_t kv_type;     /* ST_F32 or ST_F16 */
	size_t kv_row_bytes;  /* bytes between positions */
	int64_t n_kv;	      /* positions to attend */
	int64_t n_head;
	int64_t n_head_kv;    /* divides n_head */
	int64_t head_dim;
	float scale;	      /* usually 1/sqrt(head_dim) */
	/* A shared prefix: positions [0, n_prefix) are read from k0/v0 (another
	 * sequence's cache, same stride), [n_prefix, n_kv) from k/v as usual.
	 * n_prefix = 0: none (k0, v0 unused). */
	const void *k0, *v0;
	int64_t n_prefix;
	float *scores;	      /* scratch: n_kv floats */
	float *out;	      /* (n_head, head_dim) f32 */
};

/* Heads [head_begin, head_end) only, so the caller can split heads across threads. */
void attn_heads(const struct attn_args *a, int64_t head_begin, int64_t head_end);
/* All heads, scalar: the reference. */
void attn_ref(const struct attn_args *a);

#endif
