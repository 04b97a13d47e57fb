/* kv.h: the key/value cache, paged. Positions live in blocks of KV_BLOCK_POS
 * positions (every layer's K and V rows of those positions in one piece of
 * memory, a "frame"); each sequence slot has a table of blocks. Blocks are
 * shared by reference: a Score's continuations read their context's blocks
 * (kv_slot_link), and a full block is sealed, named by the tokens that made
 * it (a hash chained over every token up to its end), and kept after its
 * sequence ends, so a later prompt that starts with the same tokens takes it
 * instead of computing it again (kv_slot_reuse). A written block is never
 * shared: writing into a sealed or shared one copies it first.
 *
 * Memory holds a fixed number of frames (the KV cache's share of the memory
 * budget). Each pass needs its sequences' blocks in memory; others move to
 * disk to make room: blocks no sequence holds first, then those of sequences
 * not in the pass (preempted: the scheduler left them out), least recently
 * used first, through kv_io (io_uring, O_DIRECT). Sealed blocks go to the
 * store (--kv-cache-dir) when there is one, where they outlive the process;
 * others to a swap file. Bytes are moved, never recomputed: a sequence's
 * output does not change when its blocks travel.
 *
 * Not thread-safe: the engine's thread calls everything here (kv_get_stats
 * included; the engine publishes a copy). */
#ifndef STRATA_ENGINE_KV_H
#define STRATA_ENGINE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/batch.h"
#include "engine/kv_store.h"
#include "kernels/attn.h"

/* Positions per block: small enough that sharing and the last, partial block
 * waste little, large enough that a block of a big model is a few MiB on disk. */
#define KV_BLOCK_POS 16u

struct kv_config {
	uint32_t type;		/* ST_F32, ST_F16, ST_Q8_0 or ST_Q4_0 */
	uint32_t n_layer;
	uint32_t n_head_kv, head_dim;
	uint32_t n_ctx;		/* positions per slot */
	uint32_t n_slots;	/* sequences that may hold blocks at once */
	uint64_t mem_bytes;	/* memory for frames; at least kv_min_mem_bytes() */
	const char *dir;	/* the store (--kv-cache-dir), or NULL: nothing outlives the process */
	uint64_t disk_bytes;	/* most bytes of blocks kept on disk only for reuse; 0: no limit */
	struct kv_model_key key;/* what the blocks are computed from */
};

/* Bytes of one frame (a block's rows, rounded up to 4096 for O_DIRECT). */
uint64_t kv_frame_bytes(uint32_t type, uint32_t n_layer, uint32_t kv_dim);
/* Bytes of K and V per position (all layers), before rounding. */
uint64_t kv_bytes_per_pos(uint32_t type, uint32_t n_layer, uint32_t kv_dim);
/* Frames one sequence of n_ctx positions needs in memory to be computed
 * (its blocks, plus one for a copy on write). */
uint64_t kv_frames_for(uint32_t n_ctx);
/* Memory of bookkeeping (tables, token records) for n_slots slots of n_ctx. */
uint64_t kv_meta_bytes(uint32_t n_ctx, uint32_t n_slots);

struct kv_cache;

/* Reserve the frames (pages are backed when first written), open the swap
 * file and the store (whose blocks become reusable at once). -EINVAL (a type
 * or head size attention cannot read, memory for less than one sequence),
 * -ENOMEM, or a file error, with a message. The caller owns *out (kv_close). */
int kv_open(const struct kv_config *c, struct kv_cache **out, struct st_err *err);
/* Write sealed blocks still only in memory to the store (when there is
 * one), then free everything. NULL is a no-op. */
void kv_close(struct kv_cache *kv);

/* The model file changed in place and its new bytes are served from now on
 * (the weight source re-read them): no block computed before may be reused.
 * Cached blocks are dropped (their files too); blocks of running sequences
 * stay theirs but are never sealed; blocks sealed from now on are keyed to
 * `key`. */
void kv_rekey(struct kv_cache *kv, const struct kv_model_key *key);

uint32_t kv_type(const struct kv_cache *kv);
uint32_t kv_n_ctx(const struct kv_cache *kv);
uint32_t kv_n_slots(const struct kv_cache *kv);

/* ---- slots ---- */

/* Drop every block of the slot and its link; sealed blocks stay cached. */
void kv_slot_reset(struct kv_cache *kv, uint32_t slot);
/* From now on positions [0, n) of slot dst are slot src's (src must not be
 * linked itself); dst's own rows start at n. dst is reset first. -EINVAL. */
int kv_slot_link(struct kv_cache *kv, uint32_t dst, uint32_t src, uint32_t n);
/* Positions >= n of the slot are void (rejected draft tokens): blocks past
 * them are dropped, the next write copies a block it shares. */
void kv_slot_truncate(struct kv_cache *kv, uint32_t slot, uint32_t n);
/* A fresh slot whose sequence starts with ids[0..n): the longest run of
 * whole cached blocks those tokens begin with, at most `max` positions, is
 * attached to the slot (the slot is reset first). Returns the positions the
 * slot now holds (a multiple of KV_BLOCK_POS, 0 when nothing matched). */
uint32_t kv_slot_reuse(struct kv_cache *kv, uint32_t slot, const int32_t *ids, uint32_t n,
		       uint32_t max);
/* Positions the slot holds ([0, n) valid; a linked slot counts its link). */
uint32_t kv_slot_pos(const struct kv_cache *kv, uint32_t slot);

/* For benchmarks: positions [0, n) of the slot (reset first) get K and V
 * rows of random values in [-1, 1) (from seed) for the tokens ids[0..n), as
 * if a pass had computed them; full blocks are sealed and cached like
 * computed ones, and blocks move to disk as memory requires. 0, or -errno. */
int kv_slot_fill(struct kv_cache *kv, uint32_t slot, const int32_t *ids, uint32_t n, uint64_t seed,
		 struct st_err *err);

/* ---- a pass ---- */

/* Planning the next pass: the scheduler asks, sequence by sequence, how many
 * of the rows it would add fit in memory along with those already planned
 * (a sequence's blocks, those it shares counted once, plus the blocks its
 * rows write). kv_plan_rows returns that count (0..n) and counts it in. */
void kv_plan_begin(struct kv_cache *kv);
uint32_t kv_plan_rows(struct kv_cache *kv, uint32_t slot, uint32_t pos, uint32_t n);
/* Frames a slot needs in memory to run rows [pos, pos + n) (planning alone). */
uint32_t kv_frames_needed(struct kv_cache *kv, uint32_t slot, uint32_t pos, uint32_t n);
/* Frames in memory. */
uint32_t kv_n_frames(const struct kv_cache *kv);

/* Before running pass b: every block its rows read is in memory and every
 * block they write is the slot's own, moving other blocks to disk to make
 * room. 0, -ENOMEM (the pass needs more frames than there are: the message
 * says how many), or -EIO and the like (disk). */
int kv_prepare(struct kv_cache *kv, const struct batch *b, struct st_err *err);
/* After pass b succeeded: its rows' positions are valid; blocks they filled
 * are sealed and become reusable. */
void kv_commit(struct kv_cache *kv, const struct batch *b);
/* Write sealed blocks that are only in memory to the store, so a restart
 * finds them (the scheduler calls it when idle). No-op without a store. */
void kv_flush(struct kv_cache *kv);

/* Where the pass writes position pos's K (value false) or V row of `layer`
 * (between kv_prepare and the end of the pass). */
void *kv_row(const struct kv_cache *kv, uint32_t slot, uint32_t layer, uint32_t pos, bool value);
/* Positions [0, n_kv) of the slot for `layer`, as attention segments into
 * segs (room for kv_max_segments()); returns how many. */
int64_t kv_segments(const struct kv_cache *kv, uint32_t slot, uint32_t layer, uint32_t n_kv,
		    struct attn_seg *segs);
uint32_t kv_max_segments(const struct kv_cache *kv);
/* Bytes between positions inside a segment. */
size_t kv_row_bytes(const struct kv_cache *kv);

struct kv_stats {
	uint32_t frames;	    /* in memory, in all */
	uint32_t frames_used;	    /* holding a block */
	uint32_t frames_held;	    /* ... that a slot holds (the rest: cached only) */
	uint64_t frame_bytes;
	uint64_t blocks_cached;	    /* sealed blocks no slot holds, in memory or on disk */
	uint64_t disk_bytes;	    /* block data on disk: the store's and the swap file's */
	uint64_t swap_bytes;	    /* of which in the swap file */
	uint64_t bytes_written, bytes_read; /* by the cache's I/O since open */
	uint64_t io_ns;		    /* time passes waited for that I/O */
	uint64_t reused_pos;	    /* positions taken from the cache instead of computed */
	uint64_t evictions, loads;  /* blocks moved out of memory, and back in */
	bool persistent;	    /* blocks outlive the process (a store directory) */
	bool direct;		    /* O_DIRECT */
};
void kv_get_stats(const struct kv_cache *kv, struct kv_stats *out);

#endif
