/* source.h: private to weights/: the seam between the ring of streaming slots (weights.c)
 * and the two ways of filling a slot: source_uring.c (io_uring reads into buffers of our
 * own) and source_mmap.c (a mapping of the file, paged in and out around use). Nothing
 * outside weights/ includes this; everyone else uses weights.h. */
#ifndef STRATA_WEIGHTS_SOURCE_H
#define STRATA_WEIGHTS_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "weights/plan.h"

/* What a backend counts; weights_get_stats copies it into weights_stats. */
struct w_io_stats {
	bool direct;	     /* reads bypass the page cache (O_DIRECT) */
	bool registered;     /* buffers registered with the ring (READ_FIXED) */
	uint64_t bytes_read; /* since open */
	uint64_t read_ns;    /* wall time with a read in flight (MMAP: paging in) */
};

/* What every backend sees of the weight source: the file and the plan. Filled by
 * weights_open before a backend opens; unchanged until weights_close. */
struct w_file {
	const char *path;	/* for messages */
	int fd;			/* the caller's descriptor (borrowed): buffered reads, the mapping */
	int dfd;		/* the same inode opened O_DIRECT (ours), or -1 */
	uint64_t file_size;	/* at open */
	uint32_t page;		/* the VM page size */
	uint32_t block;		/* alignment of every extent: max(page, O_DIRECT alignment) */
	uint32_t queue_depth;	/* io_uring: reads in flight */
	uint32_t chunk_bytes;	/* io_uring: bytes per read, a multiple of block */
	const struct plan *plan;
};

/* What collecting a slot's read found. */
struct w_read {
	int rc;			   /* 0, -ENODATA (the file ends before the unit does), -errno */
	uint64_t bad_off, bad_end; /* when rc < 0: the bytes of the read that failed */
	bool waited;		   /* the bytes were not there yet: the caller stalled */
};

/* A backend: how streamed units get into slots 0..plan->n_slots-1. A slot holds at most one
 * unit; the ring (weights.c) decides which, and calls these from the thread that acquires. */
struct w_source_ops {
	/* Set up for the plan's slots. 0; 1 when this backend cannot work here (io_uring
	 * blocked or absent: the reason in err, the caller falls back); -errno otherwise.
	 * On success *state is the backend's, freed by close (NULL is a no-op). */
	int (*open)(const struct w_file *f, void **state, struct st_err *err);
	void (*close)(void *state);
	/* Begin getting unit's bytes into slot s: ahead of use (prefetched) or for an
	 * acquire waiting now. */
	void (*slot_start)(void *state, uint32_t s, uint32_t unit, bool prefetched);
	/* Wait until slot s holds unit's bytes (after slot_start). */
	void (*slot_collect)(void *state, uint32_t s, uint32_t unit, struct w_read *r);
	/* Slot s stops holding unit: stop a read in flight (`reading`) and give back what the
	 * slot kept. Returns once nothing writes into the slot. */
	void (*slot_clear)(void *state, uint32_t s, uint32_t unit, bool reading);
	/* Where file byte `off` (inside extent e of the unit in slot s) is. */
	const void *(*slot_ptr)(const void *state, uint32_t s, const struct plan_extent *e,
				uint64_t off);
	/* 0, or -EIO (message naming the file, unit and byte) when bytes were lost while in
	 * use since the last call; repairs what it can. `unit` is the one in use. */
	int (*check)(void *state, uint32_t unit, struct st_err *err);
	/* The backend's side of weights_stats (slots only). */
	void (*stats)(const void *state, struct w_io_stats *out);
	/* The "io: ..." line of the plan's description. */
	void (*describe)(const void *state, char *buf, size_t cap);
	/* The memory the backend holds for its slots, for mlock (NULL / 0: none). */
	void (*memory)(const void *state, void **p, uint64_t *len);
	/* MMAP: a released unit's pages go back at once (RSS stays within the plan). */
	bool clear_on_release;
	/* URING: a slot's bytes are a copy, stale once the file changes. */
	bool copies;
};

extern const struct w_source_ops w_source_uring, w_source_mmap;

#endif
