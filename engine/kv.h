/* kv.h: the key/value cache: for every sequence slot, layer and position,
 * the roped key and the value of each KV head. Reserved as anonymous memory
 * so only positions actually used are backed by RAM; sized from --ctx-size
 * and --parallel, separately from the weights' budget. */
#ifndef STRATA_ENGINE_KV_H
#define STRATA_ENGINE_KV_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct kv_cache {
	uint32_t type;	    /* ST_F32 or ST_F16 */
	uint32_t n_layer;
	uint32_t n_ctx;	    /* positions per slot */
	uint32_t n_slots;   /* sequences that can be live at once */
	uint32_t kv_dim;    /* n_head_kv * head_dim */
	size_t row_bytes;   /* bytes of one position's K (or V) for one layer */
	size_t bytes;	    /* total reserved: 2 * n_slots * n_layer * n_ctx * row_bytes */
	uint8_t *k;	    /* (n_slots, n_layer, n_ctx, kv_dim) of type */
	uint8_t *v;	    /* same layout */
	struct kv_link *link; /* (n_slots) prefix shared with another slot, if any */
};

/* Positions [0, n) of a slot are another slot's: a Score's continuations all
 * read the context once stored in the first slot, in the same pass. */
struct kv_link {
	uint32_t src; /* the slot holding them */
	uint32_t n;   /* 0: no link */
};

/* Reserve the cache. Returns 0, -EINVAL (bad type), or -ENOMEM with a message
 * giving the size that could not be reserved. Free with kv_free(). */
int kv_create(uint32_t type, uint32_t n_layer, uint32_t n_ctx, uint32_t n_slots, uint32_t kv_dim,
	      struct kv_cache **out, struct st_err *err);
void kv_free(struct kv_cache *kv);

/* Bytes a cache of these dimensions needs (for planning and Status). */
size_t kv_bytes_needed(uint32_t type, uint32_t n_layer, uint32_t n_ctx, uint32_t n_slots,
		       uint32_t kv_dim);

/* Give a slot's memory back to the kernel (its positions become zero pages)
 * and drop its link. */
void kv_slot_discard(struct kv_cache *kv, uint32_t slot);

/* From now on positions [0, n) of slot dst are read from slot src (which
 * must not be linked itself); dst's own rows start at n. -EINVAL otherwise. */
int kv_slot_link(struct kv_cache *kv, uint32_t dst, uint32_t src, uint32_t n);

static inline void *kv_k_row(const struct kv_cache *kv, uint32_t slot, uint32_t layer, uint32_t pos)
{
	return kv->k + (((size_t)slot * kv->n_layer + layer) * kv->n_ctx + pos) * kv->row_bytes;
}

static inline void *kv_v_row(const struct kv_cache *kv, uint32_t slot, uint32_t layer, uint32_t pos)
{
	return kv->v + (((size_t)slot * kv->n_layer + layer) * kv->n_ctx + pos) * kv->row_bytes;
}

#endif
