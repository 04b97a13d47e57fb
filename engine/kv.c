/* kv.c: the paged KV cache (see kv.h).
 *
 * Blocks are records in one growable array, found by id; a block may have a
 * frame (its bytes in memory), a copy on disk (in the store, or a swap-file
 * slot) or both. A slot's table maps block index i (positions [16i, 16i+16))
 * to a block id. Sealed blocks are in a hash map by chain hash: the FNV-1a
 * state carried over every token id from the first position, started from a
 * seed that names the model and the cache's shape. FNV-1a's step is a
 * bijection of the state for given bytes, so two chains with the same tokens
 * in a block and the same hash had the same hash before it, and by induction
 * the same tokens all along; a lookup checks each block's own tokens, so a
 * match is exact whatever the hash's weaknesses. At most one block per hash
 * is sealed (store files are named by it); a block whose hash is taken stays
 * private to its slot. */
#include "engine/kv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/hash.h"
#include "common/log.h"
#include "engine/kv_io.h"
#include "kernels/quant.h"
#include "kernels/types.h"

#define KV_NONE UINT32_MAX
/* Transfers in flight at once. */
#define KV_IO_DEPTH 32
/* Blocks written per batch when flushing. */
#define KV_FLUSH_BATCH 64

struct kv_block {
	uint64_t hash;		/* sealed: the chain hash up to its last position */
	uint64_t parent;	/* sealed: the chain hash before it (the seed for depth 0) */
	uint64_t used;		/* the pass that last needed it (LRU) */
	uint32_t depth;		/* sealed: its index in its sequence */
	uint32_t frame;		/* memory frame, or KV_NONE */
	uint32_t swap;		/* swap-file slot holding a copy, or KV_NONE */
	uint32_t refs;		/* slot tables holding it */
	uint32_t mark;		/* the plan or pass that last counted it */
	uint32_t next;		/* hash-bucket chain (sealed), or the free list */
	bool live;
	bool sealed;		/* immutable, in the map */
	bool stored;		/* a copy in the store directory (sealed only) */
	int32_t tokens[KV_BLOCK_POS]; /* sealed: its positions' tokens */
};

struct kv_slot {
	uint32_t *table;	/* (n_tab) block of each block index, or KV_NONE */
	uint64_t *chain;	/* (n_tab) chain hash after block i, for i < n_hashed */
	int32_t *tokens;	/* (n_ctx) the token of each position written */
	uint32_t n_pos;		/* positions [0, n_pos) are valid */
	uint32_t n_hashed;	/* blocks whose chain hash is known (full, unlinked) */
	bool stale;		/* some positions were computed from a model file since
				 * changed: never sealed until reset */
	bool linked;
	uint32_t link_src, link_n;
};

struct kv_cache {
	uint32_t type, n_layer, kv_dim, n_ctx, n_slots, n_tab;
	size_t row_bytes;	/* one position's K (or V) row of one layer */
	uint64_t block_bytes;	/* a block's rows: n_layer x 2 x KV_BLOCK_POS x row_bytes */
	uint64_t frame_bytes;	/* block_bytes rounded up to 4096 */
	uint64_t seed;		/* chain hash before the first token */
	uint64_t disk_cap;	/* bytes of sealed blocks kept on disk; 0: no limit */

	uint8_t *mem;		/* (n_frames, frame_bytes) */
	uint32_t n_frames;
	uint32_t *frame_block;	/* (n_frames) the block in each frame, or KV_NONE */
	uint32_t *free_frames;	/* a stack */
	uint32_t n_free;

	struct kv_block *blocks;
	uint32_t n_blocks, cap_blocks, free_block; /* free_block: head of the free list */
	uint32_t *buckets;	/* (n_buckets) heads of the hash chains */
	uint32_t n_buckets, n_sealed;
	uint32_t n_disk_sealed;	/* sealed blocks with a copy on disk */

	struct kv_slot *slots;
	uint32_t epoch;		/* the current plan or pass, for marks */
	uint64_t pass;		/* passes prepared, for LRU */
	uint32_t plan_frames;	/* frames counted by the plan being built */

	struct kv_store *store;
	struct kv_io *io;
	uint32_t max_segs;
	/* per-pass scratch, (n_slots) */
	uint32_t *lo, *hi;
	bool *touched;

	struct kv_stats st;
};

uint64_t kv_bytes_per_pos(uint32_t type, uint32_t n_layer, uint32_t kv_dim)
{
	return 2 * (uint64_t)n_layer * st_row_bytes(type, kv_dim);
}

uint64_t kv_frame_bytes(uint32_t type, uint32_t n_layer, uint32_t kv_dim)
{
	uint64_t b = kv_bytes_per_pos(type, n_layer, kv_dim) * KV_BLOCK_POS;
	return (b + 4095) / 4096 * 4096;
}

uint64_t kv_frames_for(uint32_t n_ctx)
{
	return ((uint64_t)n_ctx + KV_BLOCK_POS - 1) / KV_BLOCK_POS + 1;
}

uint64_t kv_meta_bytes(uint32_t n_ctx, uint32_t n_slots)
{
	uint64_t tab = ((uint64_t)n_ctx + KV_BLOCK_POS - 1) / KV_BLOCK_POS;
	return (uint64_t)n_slots * (tab * (sizeof(uint32_t) + sizeof(uint64_t)) +
				    (uint64_t)n_ctx * sizeof(int32_t)) +
	       /* block records: about one per frame, and segment lists per thread */
	       tab * (sizeof(struct kv_block) + 2 * sizeof(struct attn_seg));
}

static uint8_t *frame_ptr(const struct kv_cache *kv, uint32_t frame)
{
	return kv->mem + (size_t)frame * kv->frame_bytes;
}

/* ---- blocks ---- */

static int block_new(struct kv_cache *kv, uint32_t *out)
{
	if (kv->free_block == KV_NONE) {
		if (kv->n_blocks == kv->cap_blocks) {
			uint32_t cap = kv->cap_blocks ? kv->cap_blocks * 2 : 256;
			struct kv_block *p = realloc(kv->blocks, (size_t)cap * sizeof *p);
			if (!p)
				return -ENOMEM;
			kv->blocks = p;
			kv->cap_blocks = cap;
		}
		kv->blocks[kv->n_blocks].live = false;
		kv->blocks[kv->n_blocks].next = KV_NONE;
		kv->free_block = kv->n_blocks++;
	}
	uint32_t id = kv->free_block;
	struct kv_block *b = &kv->blocks[id];
	kv->free_block = b->next;
	memset(b, 0, sizeof *b);
	b->live = true;
	b->frame = b->swap = b->next = KV_NONE;
	b->used = kv->pass;
	*out = id;
	return 0;
}

static uint32_t bucket_of(const struct kv_cache *kv, uint64_t hash)
{
	return (uint32_t)(hash ^ (hash >> 32)) & (kv->n_buckets - 1);
}

static int map_grow(struct kv_cache *kv)
{
	uint32_t n = kv->n_buckets ? kv->n_buckets * 2 : 1024;
	uint32_t *b = malloc((size_t)n * sizeof *b);
	if (!b)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		b[i] = KV_NONE;
	free(kv->buckets);
	kv->buckets = b;
	kv->n_buckets = n;
	for (uint32_t id = 0; id < kv->n_blocks; id++) {
		struct kv_block *x = &kv->blocks[id];
		if (x->live && x->sealed) {
			uint32_t h = bucket_of(kv, x->hash);
			x->next = b[h];
			b[h] = id;
		}
	}
	return 0;
}

/* The sealed block with this hash, or KV_NONE. */
static uint32_t map_get(const struct kv_cache *kv, uint64_t hash)
{
	if (!kv->n_buckets)
		return KV_NONE;
	for (uint32_t id = kv->buckets[bucket_of(kv, hash)]; id != KV_NONE; id = kv->blocks[id].next)
		if (kv->blocks[id].hash == hash)
			return id;
	return KV_NONE;
}

static int map_put(struct kv_cache *kv, uint32_t id)
{
	if (kv->n_sealed + 1 > kv->n_buckets && map_grow(kv) < 0)
		return -ENOMEM;
	struct kv_block *x = &kv->blocks[id];
	uint32_t h = bucket_of(kv, x->hash);
	x->next = kv->buckets[h];
	kv->buckets[h] = id;
	kv->n_sealed++;
	return 0;
}

static void map_del(struct kv_cache *kv, uint32_t id)
{
	uint32_t *p = &kv->buckets[bucket_of(kv, kv->blocks[id].hash)];
	while (*p != id)
		p = &kv->blocks[*p].next;
	*p = kv->blocks[id].next;
	kv->n_sealed--;
}

static bool has_disk_copy(const struct kv_block *b)
{
	return b->stored || b->swap != KV_NONE;
}

static void frame_release(struct kv_cache *kv, struct kv_block *b)
{
	if (b->frame == KV_NONE)
		return;
	kv->frame_block[b->frame] = KV_NONE;
	kv->free_frames[kv->n_free++] = b->frame;
	b->frame = KV_NONE;
}

static void swap_release(struct kv_cache *kv, struct kv_block *b)
{
	if (b->swap == KV_NONE)
		return;
	if (b->sealed && !b->stored)
		kv->n_disk_sealed--;
	kv_store_swap_free(kv->store, b->swap);
	b->swap = KV_NONE;
}

static void store_release(struct kv_cache *kv, struct kv_block *b)
{
	if (!b->stored)
		return;
	kv_store_remove(kv->store, b->hash);
	b->stored = false;
	if (b->sealed && b->swap == KV_NONE)
		kv->n_disk_sealed--;
}

/* Unseal: out of the map (its store copy goes: nobody will find it). */
static void unseal(struct kv_cache *kv, uint32_t id)
{
	struct kv_block *b = &kv->blocks[id];
	if (!b->sealed)
		return;
	store_release(kv, b);
	if (b->swap != KV_NONE)
		kv->n_disk_sealed--;
	map_del(kv, id);
	b->sealed = false;
}

static void block_free(struct kv_cache *kv, uint32_t id)
{
	struct kv_block *b = &kv->blocks[id];
	unseal(kv, id);
	store_release(kv, b); /* unsealed by kv_rekey, its file kept while it was held */
	frame_release(kv, b);
	swap_release(kv, b);
	b->live = false;
	b->next = kv->free_block;
	kv->free_block = id;
}

/* A slot lets go of a block: a private one dies, a sealed one stays cached
 * (until it must make room). One that lost all its bytes dies either way. */
static void unref(struct kv_cache *kv, uint32_t id)
{
	struct kv_block *b = &kv->blocks[id];
	if (--b->refs > 0)
		return;
	if (!b->sealed || (b->frame == KV_NONE && !has_disk_copy(b)))
		block_free(kv, id);
}

/* ---- slots ---- */

void kv_slot_reset(struct kv_cache *kv, uint32_t slot)
{
	struct kv_slot *s = &kv->slots[slot];
	for (uint32_t i = 0; i < kv->n_tab; i++) {
		if (s->table[i] != KV_NONE) {
			unref(kv, s->table[i]);
			s->table[i] = KV_NONE;
		}
	}
	s->n_pos = s->n_hashed = 0;
	s->stale = false;
	s->linked = false;
	s->link_src = s->link_n = 0;
}

int kv_slot_link(struct kv_cache *kv, uint32_t dst, uint32_t src, uint32_t n)
{
	if (dst >= kv->n_slots || src >= kv->n_slots || dst == src || n > kv->n_ctx ||
	    kv->slots[src].linked)
		return -EINVAL;
	kv_slot_reset(kv, dst);
	struct kv_slot *s = &kv->slots[dst];
	s->linked = true;
	s->link_src = src;
	s->link_n = n;
	s->n_pos = n;
	return 0;
}

void kv_slot_truncate(struct kv_cache *kv, uint32_t slot, uint32_t n)
{
	struct kv_slot *s = &kv->slots[slot];
	if (s->linked && n < s->link_n)
		n = s->link_n; /* the shared part is the other slot's */
	uint32_t keep = (n + KV_BLOCK_POS - 1) / KV_BLOCK_POS;
	for (uint32_t i = keep; i < kv->n_tab; i++) {
		if (s->table[i] != KV_NONE) {
			unref(kv, s->table[i]);
			s->table[i] = KV_NONE;
		}
	}
	if (s->n_pos > n)
		s->n_pos = n;
	if (s->n_hashed > n / KV_BLOCK_POS)
		s->n_hashed = n / KV_BLOCK_POS;
}

uint32_t kv_slot_pos(const struct kv_cache *kv, uint32_t slot)
{
	return kv->slots[slot].n_pos;
}

static uint64_t chain_next(uint64_t prev, const int32_t *tokens)
{
	return hash_fnv1a64(prev, tokens, KV_BLOCK_POS * sizeof *tokens);
}

/* The sealed block for these tokens after that chain hash, at that depth. */
static uint32_t find_block(const struct kv_cache *kv, uint64_t parent, uint32_t depth,
			   const int32_t *tokens, uint64_t *hash)
{
	*hash = chain_next(parent, tokens);
	uint32_t id = map_get(kv, *hash);
	if (id == KV_NONE)
		return KV_NONE;
	const struct kv_block *b = &kv->blocks[id];
	if (b->parent != parent || b->depth != depth ||
	    memcmp(b->tokens, tokens, sizeof b->tokens) != 0)
		return KV_NONE;
	if (b->frame == KV_NONE && !has_disk_copy(b))
		return KV_NONE; /* its bytes were lost (a damaged file) */
	return id;
}

uint32_t kv_slot_reuse(struct kv_cache *kv, uint32_t slot, const int32_t *ids, uint32_t n,
		       uint32_t max)
{
	struct kv_slot *s = &kv->slots[slot];
	kv_slot_reset(kv, slot);
	if (max > n)
		max = n;
	if (max > kv->n_ctx)
		max = kv->n_ctx;
	uint64_t h = kv->seed;
	uint32_t i = 0;
	for (; (i + 1) * KV_BLOCK_POS <= max; i++) {
		uint64_t next;
		uint32_t id = find_block(kv, h, i, ids + i * KV_BLOCK_POS, &next);
		if (id == KV_NONE)
			break;
		kv->blocks[id].refs++;
		kv->blocks[id].used = kv->pass;
		s->table[i] = id;
		s->chain[i] = h = next;
	}
	s->n_pos = i * KV_BLOCK_POS;
	s->n_hashed = i;
	memcpy(s->tokens, ids, s->n_pos * sizeof *ids);
	kv->st.reused_pos += s->n_pos;
	return s->n_pos;
}

/* ---- sealing ---- */

static void seal(struct kv_cache *kv, struct kv_slot *s, uint32_t i)
{
	uint64_t parent = i ? s->chain[i - 1] : kv->seed;
	uint64_t h = chain_next(parent, s->tokens + (size_t)i * KV_BLOCK_POS);
	s->chain[i] = h;
	s->n_hashed = i + 1;
	uint32_t id = s->table[i];
	struct kv_block *b = &kv->blocks[id];
	if (b->sealed || map_get(kv, h) != KV_NONE)
		return; /* already is, or another block holds these tokens: ours stays private */
	b->hash = h;
	b->parent = parent;
	b->depth = i;
	memcpy(b->tokens, s->tokens + (size_t)i * KV_BLOCK_POS, sizeof b->tokens);
	if (map_put(kv, id) < 0)
		return; /* no memory for the map: it stays private, nothing is lost */
	b->sealed = true;
	if (b->swap != KV_NONE)
		kv->n_disk_sealed++;
}

/* ---- disk ---- */

/* How one block travels: its transfers and what to do after. */
struct move {
	uint32_t id;
	int fd;		   /* store file, or -1 */
	uint64_t sum;	   /* reading from the store: the checksum its data must have */
	uint32_t swap;	   /* writing to the swap file: the slot, else KV_NONE */
	uint32_t frame;	   /* reading: the frame it goes to */
};

/* Write blocks ids[0..n) (in memory, without a copy on disk) to disk: sealed
 * ones to the store when there is one, others to the swap file. On success
 * each has its copy; on failure some may not (the message says why). */
static int write_blocks(struct kv_cache *kv, const uint32_t *ids, uint32_t n, struct st_err *err)
{
	struct move *mv = calloc(n ? n : 1, sizeof *mv);
	struct kv_io_op *ops = calloc(2 * (size_t)(n ? n : 1), sizeof *ops);
	unsigned char *hdr = NULL;
	int rc = 0;
	uint32_t n_ops = 0;
	if (!mv || !ops || posix_memalign((void **)&hdr, 4096, (size_t)(n ? n : 1) * KV_STORE_HEADER)) {
		rc = st_errf(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t k = 0; k < n; k++) {
		struct kv_block *b = &kv->blocks[ids[k]];
		uint8_t *data = frame_ptr(kv, b->frame);
		mv[k] = (struct move){ ids[k], -1, 0, KV_NONE, b->frame };
		if (b->sealed && kv_store_persistent(kv->store)) {
			struct kv_store_block sb = { b->hash, b->parent, b->depth, b->tokens };
			unsigned char *h = hdr + (size_t)k * KV_STORE_HEADER;
			rc = kv_store_put_begin(kv->store, &sb, data, h, &mv[k].fd, err);
			if (rc < 0)
				break;
			ops[n_ops++] = (struct kv_io_op){ mv[k].fd, true, 0, h, KV_STORE_HEADER, 0 };
			ops[n_ops++] = (struct kv_io_op){ mv[k].fd, true, KV_STORE_HEADER, data,
							  (uint32_t)kv->frame_bytes, 0 };
		} else {
			int64_t slot = kv_store_swap_alloc(kv->store);
			if (slot < 0) {
				rc = st_errf(err, (int)slot, "the KV cache's swap file is full");
				break;
			}
			mv[k].swap = (uint32_t)slot;
			ops[n_ops++] = (struct kv_io_op){ kv_store_swap_fd(kv->store), true,
							  kv_store_swap_off(kv->store, (uint32_t)slot),
							  data, (uint32_t)kv->frame_bytes, 0 };
		}
	}
	int io = kv_io_run(kv->io, ops, n_ops);
	if (io < 0 && rc == 0)
		rc = st_errf(err, io, "cannot write the KV cache to disk: %s", strerror(-io));
	/* settle each block by its own ops' results */
	uint32_t o = 0;
	for (uint32_t k = 0; k < n; k++) {
		struct kv_block *b = &kv->blocks[mv[k].id];
		if (mv[k].fd >= 0) {
			bool ok = o + 1 < n_ops && ops[o].result == 0 && ops[o + 1].result == 0;
			struct kv_store_block sb = { b->hash, b->parent, b->depth, b->tokens };
			o += 2;
			struct st_err e2 = { "" };
			if (kv_store_put_end(kv->store, &sb, mv[k].fd, ok, &e2) == 0 && ok) {
				b->stored = true;
				if (b->swap == KV_NONE)
					kv->n_disk_sealed++;
			}
		} else if (mv[k].swap != KV_NONE) {
			if (ops[o++].result == 0) {
				b->swap = mv[k].swap;
				if (b->sealed && !b->stored)
					kv->n_disk_sealed++;
			} else {
				kv_store_swap_free(kv->store, mv[k].swap);
			}
		}
	}
out:
	free(hdr);
	free(ops);
	free(mv);
	return rc;
}

/* Read blocks ids[0..n) (each with a copy on disk, none in memory) into free
 * frames (the caller made sure there are enough). */
static int read_blocks(struct kv_cache *kv, const uint32_t *ids, uint32_t n, struct st_err *err)
{
	struct move *mv = calloc(n ? n : 1, sizeof *mv);
	struct kv_io_op *ops = calloc(n ? n : 1, sizeof *ops);
	int rc = 0;
	if (!mv || !ops) {
		free(mv);
		free(ops);
		return st_errf(err, -ENOMEM, "out of memory");
	}
	for (uint32_t k = 0; k < n; k++) {
		struct kv_block *b = &kv->blocks[ids[k]];
		uint32_t f = kv->free_frames[--kv->n_free];
		mv[k] = (struct move){ ids[k], -1, 0, KV_NONE, f };
		kv->frame_block[f] = ids[k];
		b->frame = f;
		if (b->swap != KV_NONE) {
			ops[k] = (struct kv_io_op){ kv_store_swap_fd(kv->store), false,
						    kv_store_swap_off(kv->store, b->swap), frame_ptr(kv, f),
						    (uint32_t)kv->frame_bytes, 0 };
			continue;
		}
		struct st_err e2 = { "" };
		int r = kv_store_get_begin(kv->store, b->hash, &mv[k].fd, &mv[k].sum, &e2);
		if (r < 0) {
			ops[k] = (struct kv_io_op){ -1, false, 0, NULL, 0, r };
			if (rc == 0)
				rc = st_errf(err, r, "%s", e2.msg);
			continue;
		}
		ops[k] = (struct kv_io_op){ mv[k].fd, false, KV_STORE_HEADER, frame_ptr(kv, f),
					    (uint32_t)kv->frame_bytes, 0 };
	}
	/* failed opens are already settled: run the others */
	uint32_t m = 0;
	for (uint32_t k = 0; k < n; k++)
		if (ops[k].fd >= 0)
			ops[m++] = ops[k];
	int io = kv_io_run(kv->io, ops, m);
	if (io < 0 && rc == 0)
		rc = st_errf(err, io, "cannot read the KV cache from disk: %s", strerror(-io));
	m = 0;
	for (uint32_t k = 0; k < n; k++) {
		struct kv_block *b = &kv->blocks[mv[k].id];
		bool opened = b->swap != KV_NONE || mv[k].fd >= 0;
		bool ok = opened && ops[m].result == 0;
		if (opened)
			m++;
		if (ok && mv[k].fd >= 0) {
			struct st_err e2 = { "" };
			if (kv_store_check(kv->store, b->hash, frame_ptr(kv, b->frame), mv[k].sum, &e2) < 0) {
				ok = false;
				if (rc == 0)
					rc = st_errf(err, -EIO, "%s", e2.msg);
			}
		}
		if (mv[k].fd >= 0)
			close(mv[k].fd);
		if (!ok) {
			/* its bytes are gone: nobody may reuse it; slots holding it fail */
			frame_release(kv, b);
			if (b->sealed) {
				log_warn("KV cache: block %016" PRIx64 " could not be read back: dropped",
					 b->hash);
				unseal(kv, mv[k].id);
			}
			swap_release(kv, b);
			if (rc == 0)
				rc = st_errf(err, -EIO, "cannot read the KV cache from disk");
		} else {
			kv->st.loads++;
		}
	}
	free(ops);
	free(mv);
	return rc;
}

/* Keep the sealed blocks on disk within the cap: drop the least recently used
 * copies of blocks nobody holds (deepest first, so chains shrink from the end). */
struct victim {
	uint32_t id;
	uint32_t held;
	uint64_t used;
	uint32_t depth;
};

static int victim_cmp(const void *a, const void *b)
{
	const struct victim *x = a, *y = b;
	if (x->held != y->held)
		return x->held < y->held ? -1 : 1;
	if (x->used != y->used)
		return x->used < y->used ? -1 : 1;
	if (x->depth != y->depth)
		return x->depth > y->depth ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void trim_disk(struct kv_cache *kv)
{
	if (!kv->disk_cap || (uint64_t)kv->n_disk_sealed * kv->frame_bytes <= kv->disk_cap)
		return;
	uint32_t n = 0;
	struct victim *v = malloc((size_t)(kv->n_blocks ? kv->n_blocks : 1) * sizeof *v);
	if (!v)
		return;
	for (uint32_t id = 0; id < kv->n_blocks; id++) {
		struct kv_block *b = &kv->blocks[id];
		if (b->live && b->sealed && b->refs == 0 && has_disk_copy(b))
			v[n++] = (struct victim){ id, 0, b->used, b->depth };
	}
	qsort(v, n, sizeof *v, victim_cmp);
	for (uint32_t k = 0;
	     k < n && (uint64_t)kv->n_disk_sealed * kv->frame_bytes > kv->disk_cap; k++) {
		struct kv_block *b = &kv->blocks[v[k].id];
		if (b->frame == KV_NONE) {
			block_free(kv, v[k].id);
		} else {
			store_release(kv, b);
			swap_release(kv, b);
		}
	}
	free(v);
}

/* Free frames until `need` are free, taking them from blocks the current
 * pass does not need (mark != epoch): cached ones first, then those of
 * sequences left out of the pass, least recently used first; each is written
 * to disk first unless a copy is there. */
static int make_room(struct kv_cache *kv, uint32_t need, struct st_err *err)
{
	if (kv->n_free >= need)
		return 0;
	uint32_t want = need - kv->n_free, n = 0;
	struct victim *v = malloc((size_t)kv->n_frames * sizeof *v);
	uint32_t *w = malloc((size_t)kv->n_frames * sizeof *w);
	int rc = 0;
	if (!v || !w) {
		free(v);
		free(w);
		return st_errf(err, -ENOMEM, "out of memory");
	}
	for (uint32_t f = 0; f < kv->n_frames; f++) {
		uint32_t id = kv->frame_block[f];
		if (id == KV_NONE || kv->blocks[id].mark == kv->epoch)
			continue;
		const struct kv_block *b = &kv->blocks[id];
		v[n++] = (struct victim){ id, b->refs > 0, b->used, b->depth };
	}
	if (n < want) {
		free(v);
		free(w);
		return st_errf(err, -ENOMEM, "the KV cache holds %u blocks of %u positions in memory "
			       "(%.1f MiB): this pass needs %u more than it can free",
			       kv->n_frames, KV_BLOCK_POS,
			       (double)kv->n_frames * kv->frame_bytes / (1 << 20), want - n);
	}
	qsort(v, n, sizeof *v, victim_cmp);
	uint32_t n_w = 0;
	for (uint32_t k = 0; k < want; k++)
		if (!has_disk_copy(&kv->blocks[v[k].id]))
			w[n_w++] = v[k].id;
	if (n_w > 0)
		rc = write_blocks(kv, w, n_w, err);
	for (uint32_t k = 0; k < want; k++) {
		struct kv_block *b = &kv->blocks[v[k].id];
		if (!has_disk_copy(b))
			continue; /* its write failed: it stays (rc says why) */
		frame_release(kv, b);
		kv->st.evictions++;
	}
	free(v);
	free(w);
	trim_disk(kv);
	if (rc == 0 && kv->n_free < need)
		rc = st_errf(err, -EIO, "cannot make room in the KV cache's memory");
	return rc;
}

/* ---- planning ---- */

/* The block a slot's rows at [pos, ...) would find at index i: blocks past
 * the truncation the rows imply are gone. */
static uint32_t table_after(const struct kv_slot *s, uint32_t i, uint32_t pos)
{
	if (pos < s->n_pos && i >= (pos + KV_BLOCK_POS - 1) / KV_BLOCK_POS)
		return KV_NONE;
	return s->table[i];
}

/* Frames the slot needs for rows [pos, pos + n) beyond blocks marked with
 * the current epoch; with mark, marks its blocks. */
static uint32_t count_frames(struct kv_cache *kv, uint32_t slot, uint32_t pos, uint32_t n,
			     bool mark)
{
	const struct kv_slot *s = &kv->slots[slot];
	uint32_t need = 0, end = pos + n; /* positions [0, end) are read */
	if (n == 0)
		return 0;
	uint32_t first_own = s->linked ? s->link_n / KV_BLOCK_POS : 0;
	uint32_t last = (end - 1) / KV_BLOCK_POS, first_w = pos / KV_BLOCK_POS;
	for (uint32_t i = first_own; i <= last && i < kv->n_tab; i++) {
		uint32_t id = table_after(s, i, pos);
		if (id == KV_NONE) {
			if (i >= first_w)
				need++; /* a new block */
			continue;
		}
		struct kv_block *b = &kv->blocks[id];
		if (b->mark != kv->epoch) {
			need++;
			if (mark)
				b->mark = kv->epoch;
		}
		if (i >= first_w && (b->sealed || b->refs > 1))
			need++; /* copied before it is written */
	}
	if (s->linked) {
		const struct kv_slot *src = &kv->slots[s->link_src];
		uint32_t m = s->link_n < end ? s->link_n : end;
		for (uint32_t i = 0; i < (m + KV_BLOCK_POS - 1) / KV_BLOCK_POS; i++) {
			uint32_t id = src->table[i];
			if (id == KV_NONE || kv->blocks[id].mark == kv->epoch)
				continue;
			need++;
			if (mark)
				kv->blocks[id].mark = kv->epoch;
		}
	}
	return need;
}

void kv_plan_begin(struct kv_cache *kv)
{
	kv->epoch++;
	kv->plan_frames = 0;
}

uint32_t kv_plan_rows(struct kv_cache *kv, uint32_t slot, uint32_t pos, uint32_t n)
{
	if (n == 0 || pos >= kv->n_ctx)
		return 0;
	if (n > kv->n_ctx - pos)
		n = kv->n_ctx - pos;
	uint32_t room = kv->n_frames - kv->plan_frames;
	uint32_t take = n;
	if (count_frames(kv, slot, pos, n, false) > room) {
		/* the most rows that fit: needs only grow with rows */
		uint32_t lo = 0, hi = n - 1;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo + 1) / 2;
			if (count_frames(kv, slot, pos, mid, false) <= room)
				lo = mid;
			else
				hi = mid - 1;
		}
		take = lo;
	}
	if (take > 0)
		kv->plan_frames += count_frames(kv, slot, pos, take, true);
	return take;
}

uint32_t kv_frames_needed(struct kv_cache *kv, uint32_t slot, uint32_t pos, uint32_t n)
{
	kv->epoch++; /* nothing counted yet */
	return count_frames(kv, slot, pos, n, false);
}

uint32_t kv_n_frames(const struct kv_cache *kv)
{
	return kv->n_frames;
}

/* ---- a pass ---- */

int kv_prepare(struct kv_cache *kv, const struct batch *b, struct st_err *err)
{
	int rc;
	kv->epoch++;
	kv->pass++;
	for (uint32_t i = 0; i < kv->n_slots; i++)
		kv->touched[i] = false;
	for (uint32_t r = 0; r < b->n; r++) {
		uint32_t sl = b->slot[r], p = b->pos[r];
		if (sl >= kv->n_slots || p >= kv->n_ctx)
			return st_errf(err, -EINVAL, "row %u: slot %u position %u is outside the cache "
				       "(%u slots of %u positions)", r, sl, p, kv->n_slots, kv->n_ctx);
		if (kv->slots[sl].linked && p < kv->slots[sl].link_n)
			return st_errf(err, -EINVAL, "row %u: position %u of slot %u is another "
				       "slot's (shared up to %u)", r, p, sl, kv->slots[sl].link_n);
		if (!kv->touched[sl]) {
			kv->touched[sl] = true;
			kv->lo[sl] = kv->hi[sl] = p;
		}
		kv->lo[sl] = p < kv->lo[sl] ? p : kv->lo[sl];
		kv->hi[sl] = p > kv->hi[sl] ? p : kv->hi[sl];
	}
	/* rows that rewrite positions void what follows them */
	for (uint32_t sl = 0; sl < kv->n_slots; sl++)
		if (kv->touched[sl] && kv->lo[sl] < kv->slots[sl].n_pos)
			kv_slot_truncate(kv, sl, kv->lo[sl]);

	/* the pass's blocks: marked; those to load, create or copy counted */
	uint32_t need = 0, n_load = 0;
	for (uint32_t sl = 0; sl < kv->n_slots; sl++)
		if (kv->touched[sl])
			need += count_frames(kv, sl, kv->lo[sl], kv->hi[sl] - kv->lo[sl] + 1, true);
	uint32_t *load = malloc((size_t)(need ? need : 1) * sizeof *load);
	uint32_t n_marked = 0;
	if (!load)
		return st_errf(err, -ENOMEM, "out of memory");
	for (uint32_t id = 0; id < kv->n_blocks; id++) {
		struct kv_block *x = &kv->blocks[id];
		if (!x->live || x->mark != kv->epoch)
			continue;
		x->used = kv->pass;
		n_marked++;
		if (x->frame == KV_NONE && n_load < need)
			load[n_load++] = id;
	}
	if (need > kv->n_frames) {
		free(load);
		return st_errf(err, -ENOMEM, "this pass needs %u KV blocks in memory; the KV cache "
			       "holds %u (%.1f MiB)", need, kv->n_frames,
			       (double)kv->n_frames * kv->frame_bytes / (1 << 20));
	}
	/* free frames for the blocks read back and for those created or copied */
	rc = make_room(kv, n_load + (need - n_marked), err);
	if (rc == 0 && n_load > 0)
		rc = read_blocks(kv, load, n_load, err);
	free(load);
	if (rc < 0)
		return rc;

	/* the blocks the rows write: the slot's own, in memory, without a stale copy */
	for (uint32_t sl = 0; sl < kv->n_slots; sl++) {
		if (!kv->touched[sl])
			continue;
		struct kv_slot *s = &kv->slots[sl];
		for (uint32_t i = kv->lo[sl] / KV_BLOCK_POS; i <= kv->hi[sl] / KV_BLOCK_POS; i++) {
			uint32_t old = s->table[i], id;
			if (old != KV_NONE && !kv->blocks[old].sealed && kv->blocks[old].refs == 1) {
				id = old;
			} else {
				if (block_new(kv, &id) < 0)
					return st_errf(err, -ENOMEM, "out of memory");
				struct kv_block *nb = &kv->blocks[id];
				nb->frame = kv->free_frames[--kv->n_free];
				kv->frame_block[nb->frame] = id;
				nb->refs = 1;
				nb->mark = kv->epoch;
				if (old != KV_NONE) {
					memcpy(frame_ptr(kv, nb->frame), frame_ptr(kv, kv->blocks[old].frame),
					       kv->block_bytes);
					unref(kv, old);
				}
				s->table[i] = id;
			}
			/* about to change: copies on disk are stale */
			swap_release(kv, &kv->blocks[id]);
			store_release(kv, &kv->blocks[id]);
		}
	}
	return 0;
}

void kv_commit(struct kv_cache *kv, const struct batch *b)
{
	for (uint32_t r = 0; r < b->n; r++) {
		struct kv_slot *s = &kv->slots[b->slot[r]];
		uint32_t p = b->pos[r];
		s->tokens[p] = b->token[r];
		if (p + 1 > s->n_pos)
			s->n_pos = p + 1;
	}
	for (uint32_t sl = 0; sl < kv->n_slots; sl++) {
		struct kv_slot *s = &kv->slots[sl];
		if (!kv->touched[sl] || s->linked || s->stale)
			continue;
		while ((s->n_hashed + 1) * KV_BLOCK_POS <= s->n_pos)
			seal(kv, s, s->n_hashed);
	}
}

int kv_slot_fill(struct kv_cache *kv, uint32_t slot, const int32_t *ids, uint32_t n, uint64_t seed,
		 struct st_err *err)
{
	const uint32_t chunk = 256;
	struct batch b;
	float *row = malloc((size_t)kv->kv_dim * sizeof *row);
	int rc = 0;
	if (slot >= kv->n_slots || n > kv->n_ctx) {
		free(row);
		return st_errf(err, -EINVAL, "slot %u, %u positions: outside the cache", slot, n);
	}
	if (!row || batch_init(&b, chunk, 1) < 0) {
		free(row);
		return st_errf(err, -ENOMEM, "out of memory");
	}
	kv_slot_reset(kv, slot);
	uint64_t x = seed | 1;
	for (uint32_t p0 = 0; p0 < n && rc == 0; p0 += chunk) {
		batch_clear(&b);
		for (uint32_t p = p0; p < n && p < p0 + chunk; p++)
			batch_add(&b, ids[p], p, slot, false);
		rc = kv_prepare(kv, &b, err);
		for (uint32_t r = 0; rc == 0 && r < b.n; r++) {
			for (uint32_t l = 0; l < kv->n_layer; l++) {
				for (int v = 0; v < 2; v++) {
					for (uint32_t c = 0; c < kv->kv_dim; c++) {
						x ^= x >> 12, x ^= x << 25, x ^= x >> 27; /* xorshift64* */
						row[c] = (float)((x * 0x2545f4914f6cdd1dull) >> 40) / (1 << 23) - 1.0f;
					}
					quant_quantize_row(kv->type, row, kv_row(kv, slot, l, b.pos[r], v),
							   kv->kv_dim);
				}
			}
		}
		if (rc == 0)
			kv_commit(kv, &b);
	}
	batch_free(&b);
	free(row);
	return rc;
}

void kv_flush(struct kv_cache *kv)
{
	if (!kv_store_persistent(kv->store))
		return;
	uint32_t ids[KV_FLUSH_BATCH], n = 0;
	for (uint32_t id = 0; id <= kv->n_blocks; id++) {
		if (id < kv->n_blocks) {
			const struct kv_block *b = &kv->blocks[id];
			if (b->live && b->sealed && b->frame != KV_NONE && !b->stored)
				ids[n++] = id;
		}
		if (n == KV_FLUSH_BATCH || (id == kv->n_blocks && n > 0)) {
			struct st_err err = { "" };
			if (write_blocks(kv, ids, n, &err) < 0) {
				log_warn("KV cache: %s", err.msg);
				break;
			}
			n = 0;
		}
	}
	trim_disk(kv);
}

void *kv_row(const struct kv_cache *kv, uint32_t slot, uint32_t layer, uint32_t pos, bool value)
{
	const struct kv_block *b = &kv->blocks[kv->slots[slot].table[pos / KV_BLOCK_POS]];
	return frame_ptr(kv, b->frame) +
	       ((size_t)(2 * layer + value) * KV_BLOCK_POS + pos % KV_BLOCK_POS) * kv->row_bytes;
}

int64_t kv_segments(const struct kv_cache *kv, uint32_t slot, uint32_t layer, uint32_t n_kv,
		    struct attn_seg *segs)
{
	const struct kv_slot *s = &kv->slots[slot];
	const size_t kofs = (size_t)2 * layer * KV_BLOCK_POS * kv->row_bytes;
	const size_t vofs = kofs + (size_t)KV_BLOCK_POS * kv->row_bytes;
	int64_t n = 0;
	uint32_t p = 0; /* the next position to cover */
	if (s->linked) {
		const struct kv_slot *src = &kv->slots[s->link_src];
		uint32_t m = s->link_n < n_kv ? s->link_n : n_kv;
		for (; p < m; p += KV_BLOCK_POS) {
			const uint8_t *f = frame_ptr(kv, kv->blocks[src->table[p / KV_BLOCK_POS]].frame);
			uint32_t len = m - p < KV_BLOCK_POS ? m - p : KV_BLOCK_POS;
			segs[n++] = (struct attn_seg){ f + kofs, f + vofs, len };
		}
		p = m;
	}
	while (p < n_kv) {
		uint32_t in = p % KV_BLOCK_POS, len = KV_BLOCK_POS - in;
		if (len > n_kv - p)
			len = n_kv - p;
		const uint8_t *f = frame_ptr(kv, kv->blocks[s->table[p / KV_BLOCK_POS]].frame);
		size_t row = (size_t)in * kv->row_bytes;
		segs[n++] = (struct attn_seg){ f + kofs + row, f + vofs + row, len };
		p += len;
	}
	return n;
}

uint32_t kv_max_segments(const struct kv_cache *kv)
{
	return kv->max_segs;
}

size_t kv_row_bytes(const struct kv_cache *kv)
{
	return kv->row_bytes;
}

uint32_t kv_type(const struct kv_cache *kv)
{
	return kv->type;
}

uint32_t kv_n_ctx(const struct kv_cache *kv)
{
	return kv->n_ctx;
}

uint32_t kv_n_slots(const struct kv_cache *kv)
{
	return kv->n_slots;
}

void kv_get_stats(const struct kv_cache *kv, struct kv_stats *out)
{
	*out = kv->st;
	out->frames = kv->n_frames;
	out->frames_used = kv->n_frames - kv->n_free;
	out->frames_held = 0;
	out->blocks_cached = 0;
	uint64_t stored = 0;
	for (uint32_t id = 0; id < kv->n_blocks; id++) {
		const struct kv_block *b = &kv->blocks[id];
		if (!b->live)
			continue;
		if (b->refs > 0 && b->frame != KV_NONE)
			out->frames_held++;
		if (b->sealed && b->refs == 0)
			out->blocks_cached++;
		stored += b->stored;
	}
	out->frame_bytes = kv->frame_bytes;
	out->swap_bytes = (uint64_t)kv_store_swap_used(kv->store) * kv->frame_bytes;
	out->disk_bytes = out->swap_bytes + stored * kv->frame_bytes;
	struct kv_io_stats io;
	kv_io_get_stats(kv->io, &io);
	out->bytes_read = io.bytes_read;
	out->bytes_written = io.bytes_written;
	out->io_ns = io.ns;
	out->persistent = kv_store_persistent(kv->store);
	out->direct = kv_store_direct(kv->store);
}

/* ---- open and close ---- */

/* The chain hash before the first token: the model and the cache's shape,
 * so blocks of anything else never match. */
static uint64_t seed_of(const struct kv_cache *kv, const struct kv_model_key *key)
{
	struct {
		uint64_t size, meta;
		int64_t mtime;
		uint32_t type, n_layer, kv_dim, block;
	} seed = { key->size, key->meta_hash, key->mtime_ns, kv->type, kv->n_layer, kv->kv_dim,
		   KV_BLOCK_POS };
	return hash_fnv1a64(HASH_FNV1A64_INIT, &seed, sizeof seed);
}

void kv_rekey(struct kv_cache *kv, const struct kv_model_key *key)
{
	for (uint32_t id = 0; id < kv->n_blocks; id++) {
		struct kv_block *b = &kv->blocks[id];
		if (!b->live || !b->sealed)
			continue;
		if (b->refs == 0) {
			block_free(kv, id);
			continue;
		}
		/* a sequence holds it: out of the map, its bytes (and file) kept for it */
		if (has_disk_copy(b))
			kv->n_disk_sealed--;
		map_del(kv, id);
		b->sealed = false;
	}
	for (uint32_t i = 0; i < kv->n_slots; i++)
		kv->slots[i].stale = kv->slots[i].n_pos > 0;
	kv->seed = seed_of(kv, key);
	kv_store_set_key(kv->store, key);
}

/* A block the store found: cached, on disk only. */
static void found(void *user, const struct kv_store_block *sb)
{
	struct kv_cache *kv = user;
	uint32_t id;
	if (map_get(kv, sb->hash) != KV_NONE || block_new(kv, &id) < 0)
		return;
	struct kv_block *b = &kv->blocks[id];
	b->hash = sb->hash;
	b->parent = sb->parent;
	b->depth = sb->depth;
	memcpy(b->tokens, sb->tokens, sizeof b->tokens);
	b->stored = true;
	b->used = 0;
	if (map_put(kv, id) < 0) {
		b->stored = false; /* keep its file; it is just not known this time */
		block_free(kv, id);
		return;
	}
	b->sealed = true;
	kv->n_disk_sealed++;
}

int kv_open(const struct kv_config *c, struct kv_cache **out, struct st_err *err)
{
	struct kv_cache *kv;
	int rc;
	*out = NULL;
	if (attn_kv_type_ok(c->type, c->head_dim) < 0)
		return st_errf(err, -EINVAL, "--kv-type %s: attention reads f32, f16, q8_0 and q4_0 "
			       "caches, q8_0 and q4_0 only with heads of a multiple of 32 values "
			       "(this model's have %u)", st_type_name(c->type), c->head_dim);
	if (c->n_layer == 0 || c->n_ctx == 0 || c->n_slots == 0 || c->n_head_kv == 0)
		return st_errf(err, -EINVAL, "KV cache dimensions must be positive");
	kv = calloc(1, sizeof *kv);
	if (!kv)
		return st_errf(err, -ENOMEM, "out of memory");
	kv->type = c->type;
	kv->n_layer = c->n_layer;
	kv->kv_dim = c->n_head_kv * c->head_dim;
	kv->n_ctx = c->n_ctx;
	kv->n_slots = c->n_slots;
	kv->n_tab = (c->n_ctx + KV_BLOCK_POS - 1) / KV_BLOCK_POS;
	kv->row_bytes = st_row_bytes(c->type, kv->kv_dim);
	kv->block_bytes = kv_bytes_per_pos(c->type, c->n_layer, kv->kv_dim) * KV_BLOCK_POS;
	kv->frame_bytes = kv_frame_bytes(c->type, c->n_layer, kv->kv_dim);
	kv->disk_cap = c->disk_bytes;
	kv->free_block = KV_NONE;
	kv->max_segs = kv->n_tab + 2;
	uint64_t frames = c->mem_bytes / kv->frame_bytes;
	if (frames < kv_frames_for(c->n_ctx) || frames >= KV_NONE) {
		rc = st_errf(err, -EINVAL, "%.1f MiB of memory for the KV cache holds %" PRIu64
			     " blocks of %u positions; one sequence of %u positions needs %" PRIu64,
			     (double)c->mem_bytes / (1 << 20), frames, KV_BLOCK_POS, c->n_ctx,
			     kv_frames_for(c->n_ctx));
		goto fail;
	}
	kv->n_frames = (uint32_t)frames;
	kv->seed = seed_of(kv, &c->key);

	kv->frame_block = malloc((size_t)kv->n_frames * sizeof *kv->frame_block);
	kv->free_frames = malloc((size_t)kv->n_frames * sizeof *kv->free_frames);
	kv->slots = calloc(c->n_slots, sizeof *kv->slots);
	kv->lo = calloc(c->n_slots, sizeof *kv->lo);
	kv->hi = calloc(c->n_slots, sizeof *kv->hi);
	kv->touched = calloc(c->n_slots, sizeof *kv->touched);
	if (!kv->frame_block || !kv->free_frames || !kv->slots || !kv->lo || !kv->hi || !kv->touched)
		goto nomem;
	for (uint32_t f = 0; f < kv->n_frames; f++) {
		kv->frame_block[f] = KV_NONE;
		kv->free_frames[f] = kv->n_frames - 1 - f; /* frame 0 first: memory is touched in order */
	}
	kv->n_free = kv->n_frames;
	for (uint32_t i = 0; i < c->n_slots; i++) {
		struct kv_slot *s = &kv->slots[i];
		s->table = malloc((size_t)kv->n_tab * sizeof *s->table);
		s->chain = malloc((size_t)kv->n_tab * sizeof *s->chain);
		s->tokens = malloc((size_t)c->n_ctx * sizeof *s->tokens);
		if (!s->table || !s->chain || !s->tokens)
			goto nomem;
		for (uint32_t t = 0; t < kv->n_tab; t++)
			s->table[t] = KV_NONE;
	}
	if (map_grow(kv) < 0)
		goto nomem;
	/* One reservation; pages are backed only when written, so memory grows
	 * with use up to the share and no further. */
	void *p = mmap(NULL, (size_t)kv->n_frames * kv->frame_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		rc = st_errf(err, -errno, "cannot reserve %.1f MiB for the KV cache",
			     (double)kv->n_frames * kv->frame_bytes / (1 << 20));
		goto fail;
	}
	kv->mem = p;
	rc = kv_io_open(KV_IO_DEPTH, &kv->io, err);
	if (rc < 0)
		goto fail;
	struct kv_geometry g = { c->type, c->n_layer, kv->kv_dim, KV_BLOCK_POS, kv->block_bytes };
	rc = kv_store_open(c->dir, &c->key, &g, found, kv, &kv->store, err);
	if (rc < 0)
		goto fail;
	trim_disk(kv);
	*out = kv;
	return 0;
nomem:
	rc = st_errf(err, -ENOMEM, "out of memory");
fail:
	kv_close(kv);
	return rc;
}

void kv_close(struct kv_cache *kv)
{
	if (!kv)
		return;
	if (kv->store && kv->io)
		kv_flush(kv);
	kv_store_close(kv->store);
	kv_io_close(kv->io);
	if (kv->mem)
		munmap(kv->mem, (size_t)kv->n_frames * kv->frame_bytes);
	for (uint32_t i = 0; kv->slots && i < kv->n_slots; i++) {
		free(kv->slots[i].table);
		free(kv->slots[i].chain);
		free(kv->slots[i].tokens);
	}
	free(kv->slots);
	free(kv->lo);
	free(kv->hi);
	free(kv->touched);
	free(kv->frame_block);
	free(kv->free_frames);
	free(kv->blocks);
	free(kv->buckets);
	free(kv);
}
