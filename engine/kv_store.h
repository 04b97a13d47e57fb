/* kv_store.h: the KV cache's files. Two kinds:
 *  - the swap file: an unlinked file (O_TMPFILE) where blocks that must leave
 *    memory go while their sequence waits; slots of one block each, reused;
 *    gone when the process ends.
 *  - the store: a directory (--kv-cache-dir) of sealed blocks that outlive the
 *    process, one file each, named by the block's hash: a 4 KiB header (the
 *    model file's identity, the cache's geometry, the block's place in its
 *    token chain, checksums) and the block's bytes. A block is written under a
 *    temporary name and renamed when complete, so a crash never leaves a torn
 *    block under a real name; its data checksum catches what a power loss could.
 * Knows formats, names and the model's identity; not what a block means to a
 * sequence (kv.c) nor how bytes move (kv_io.c). */
#ifndef STRATA_ENGINE_KV_STORE_H
#define STRATA_ENGINE_KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* What a cached block was computed with; a block is reused only when all of
 * it matches. */
struct kv_model_key {
	uint64_t size;		/* the model file's size in bytes */
	int64_t mtime_ns;	/* its modification time */
	uint64_t meta_hash;	/* FNV-1a of its header, metadata and tensor table */
	char path[1024];	/* the path it was opened by (stale files of this path are removed) */
};

/* The cache's shape, fixed for a store: blocks of another shape are not ours. */
struct kv_geometry {
	uint32_t type;		/* element type of the rows */
	uint32_t n_layer;
	uint32_t kv_dim;	/* n_head_kv * head_dim */
	uint32_t block_pos;	/* positions per block */
	uint64_t block_bytes;	/* bytes of one block's rows (before padding) */
};

/* The header size; block data follows it, padded to a multiple of it. */
#define KV_STORE_HEADER 4096u

/* The identity of the model file open as fd (path for messages and for the
 * key), its first `meta_bytes` bytes at `meta` being the GGUF header,
 * metadata and tensor table. */
int kv_model_key_of(int fd, const char *path, const void *meta, uint64_t meta_bytes,
		    struct kv_model_key *out, struct st_err *err);

/* A block as the store knows it (the header without the checksums). */
struct kv_store_block {
	uint64_t hash;		/* the chain hash of every token up to the block's end */
	uint64_t parent;	/* the hash of the block before (0: the first block) */
	uint32_t depth;		/* which block of its sequence (0: the first) */
	const int32_t *tokens;	/* (block_pos) the tokens of its positions */
};

struct kv_store;

/* Open (creating it, mode 0700, when missing) the store directory `dir`, or
 * none when dir is NULL; and the swap file: in dir, else in $TMPDIR or
 * /var/tmp. Then scan dir: each valid block of this model and geometry is
 * handed to found(user, block) (its data stays on disk); blocks made from a
 * changed model file of the same path, leftovers of interrupted writes and
 * blocks that fail their checks are removed; blocks of other models or other
 * geometries are left alone. Each kind is counted in one log line.
 * -errno with a message naming the directory. The caller owns *out. */
int kv_store_open(const char *dir, const struct kv_model_key *key, const struct kv_geometry *g,
		  void (*found)(void *user, const struct kv_store_block *b), void *user,
		  struct kv_store **out, struct st_err *err);
/* Blocks written from now on are of this model (kv_rekey). */
void kv_store_set_key(struct kv_store *s, const struct kv_model_key *key);
/* Close the files (the swap file's blocks are gone). NULL is a no-op. */
void kv_store_close(struct kv_store *s);

/* Whether there is a directory (blocks persist), and the bytes of one
 * block's data as stored (block_bytes rounded up to the header size). */
bool kv_store_persistent(const struct kv_store *s);
uint64_t kv_store_frame_bytes(const struct kv_store *s);
/* Whether the files are read and written with O_DIRECT (buffers, offsets and
 * lengths then multiples of 4096). */
bool kv_store_direct(const struct kv_store *s);

/* ---- the swap file ---- */

/* A free slot (the file grows as needed): its index, or -ENOMEM / -ENOSPC. */
int64_t kv_store_swap_alloc(struct kv_store *s);
void kv_store_swap_free(struct kv_store *s, uint32_t slot);
/* Where slot i's data is: the descriptor and the offset. */
int kv_store_swap_fd(const struct kv_store *s);
uint64_t kv_store_swap_off(const struct kv_store *s, uint32_t slot);
/* Slots in use. */
uint32_t kv_store_swap_used(const struct kv_store *s);

/* ---- the store ---- */

/* Writing a block: kv_store_put_begin opens its temporary file and fills
 * `header` (KV_STORE_HEADER bytes, aligned to 4096) for the data `data` of
 * block_bytes; the caller writes header at offset 0 and the data (frame
 * bytes) at KV_STORE_HEADER of *fd, then calls kv_store_put_end with the
 * outcome (ok: renamed to its real name; else removed), which closes *fd. */
int kv_store_put_begin(struct kv_store *s, const struct kv_store_block *b, const void *data,
		       void *header, int *fd, struct st_err *err);
int kv_store_put_end(struct kv_store *s, const struct kv_store_block *b, int fd, bool ok,
		     struct st_err *err);
/* Reading a block's data: its file opened (*fd, closed by the caller; the
 * data is at offset KV_STORE_HEADER) after its header was checked again, and
 * the checksum its data must have (*sum). After the read, kv_store_check:
 * 0, or -EBADMSG when the bytes are not what was written. */
int kv_store_get_begin(struct kv_store *s, uint64_t hash, int *fd, uint64_t *sum,
		       struct st_err *err);
int kv_store_check(const struct kv_store *s, uint64_t hash, const void *data, uint64_t sum,
		   struct st_err *err);
/* Remove the block's file. */
void kv_store_remove(struct kv_store *s, uint64_t hash);

#endif
