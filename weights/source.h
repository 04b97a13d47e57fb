/* source.h: private to weights/: the seam between the ring of streaming slots (weights.c)
 * and the two ways of filling a slot: source_uring.c (io_uring reads into buffers of our
 * own) and source_mmap.c (a mapping of the file, paged in and out around use). Also the
 * resident load both modes share, and the anonymous-memory helpers. Nothing outside
 * weights/ includes this; everyone else uses weights.h. */
#ifndef STRATA_WEIGHTS_SOURCE_H
#define STRATA_WEIGHTS_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "weights/plan.h"
#include "weights/weights.h"

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
	/* Fill out's io fields: direct, registered, bytes_read and read_ns (slots only). */
	void (*stats)(const void *state, struct weights_stats *out);
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

/* Read every resident unit's bytes into res_buf[unit] (NULL for streamed units), in file
 * order: through an io_uring reader of its own when io_uring works here (O_DIRECT when
 * f->dfd >= 0), else with pread. With `populate`, each piece of memory is populated up
 * front (MADV_POPULATE_WRITE) just before it is read into: faulting fresh memory in page by
 * page costs more than the disk. progress (may be NULL) is called with bytes done and the
 * total, at the start, at most every 1% or 250 ms, and at the end. Adds the bytes read and
 * the wall time to *bytes and *ns. 0, or -errno with a message naming the unit and byte. */
int w_resident_read(const struct w_file *f, char *const *res_buf, bool populate,
		    void (*progress)(void *user, uint64_t done, uint64_t total), void *user,
		    uint64_t *bytes, uint64_t *ns, struct st_err *err);

/* ---- memory (weights.c) ---- */

/* An anonymous private mapping of len bytes, not yet populated, huge pages advised (from
 * 2 MiB) when `huge`; NULL when out of memory. Free with munmap. */
char *w_map_anon(uint64_t len, bool huge);

/* Populate [p, p + len) (page-aligned, inside a w_map_anon mapping, holding nothing yet)
 * for writing, now: MADV_POPULATE_WRITE, or before Linux 5.14 a fresh MAP_POPULATE mapping
 * of the range. 0, or -ENOMEM (-errno) when the memory cannot be had. */
int w_populate(void *p, uint64_t len);

#endif
