/* forward.h: one forward pass of a llama model over a batch of tokens that
 * may belong to different sequences (continuous batching): every layer's
 * weights are acquired once per pass and applied to all tokens of the batch
 * (a GEMM when there are many), attention runs per token over its own
 * sequence's KV cache. It does not schedule, sample or tokenize.
 *
 * Weight units: unit l (0 <= l < n_layer) is layer l's nine tensors; unit
 * n_layer is the output norm and head. forward_units() builds that list for
 * the weight source; the pass acquires them in that order. */
#ifndef STRATA_ENGINE_FORWARD_H
#define STRATA_ENGINE_FORWARD_H

#include <stdint.h>

#include "common/err.h"
#include "engine/batch.h"

struct model;
struct weights;
struct weights_unit;
struct kv_cache;
struct pool;


struct forward_stats {
	uint64_t passes;      /* forward_run calls that completed */
	uint64_t tokens;      /* tokens processed */
	uint64_t run_ns;      /* wall time inside forward_run */
};

struct forward;

/* Borrow m, w, kv and pool (they must outlive the forward); allocate scratch
 * for batches of up to max_batch tokens. 0, -ENOMEM or -EINVAL (with err).
 * Free with forward_free (NULL is a no-op). */
int forward_create(const struct model *m, struct weights *w, struct kv_cache *kv,
		   struct pool *pool, uint32_t max_batch, struct forward **out, struct st_err *err);
void forward_free(struct forward *f);

/* Run the batch. logits: (number of wanted tokens, n_vocab) f32, rows in
 * batch order. Every (slot, pos) must be < the cache's size, and a sequence's
 * earlier positions must already be in the cache or earlier in this batch
 * (the cache brings them into memory first: kv_prepare; the rows' positions
 * become valid after: kv_commit). On failure (-EIO from the weight source or
 * the cache's disk, -ENOMEM) the batch's sequences are unusable (their cache
 * rows are partial); others are untouched. */
int forward_run(struct forward *f, const struct batch *b, float *logits,
		struct st_err *err);

void forward_get_stats(const struct forward *f, struct forward_stats *out);

/* Bytes of scratch a forward of this model holds for batches of max_batch
 * tokens on `threads` threads over contexts of n_ctx (activations, attention
 * scratch, the matmul's panels and an allowance for OpenBLAS's packing
 * buffers): what the memory plan counts for compute. */
uint64_t forward_scratch_bytes(const struct model *m, uint32_t max_batch, int threads,
			       uint32_t n_ctx, uint32_t max_segs);

/* A counter that advances after every layer of every pass. Safe to read from
 * any thread (a watchdog uses it to tell a long pass from a stuck one). */
uint64_t forward_progress(const struct forward *f);

/* The weight units of m in pass order (n_layer + 1 of them): each unit lists
 * its tensors' byte ranges (the weight source merges close ones). The caller
 * owns *units and frees it with forward_units_free(). */
int forward_units(const struct model *m, struct weights_unit **units, uint32_t *n_units);
void forward_units_free(struct weights_unit *units, uint32_t n_units);

#endif
