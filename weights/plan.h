/* plan.h: the weight source's plan, worked out on paper: from the units' byte ranges, the
 * file's size, the block size, the budget and the read-ahead, the extents each unit is read
 * as, which units stay resident, how many streaming buffers of what size, and the order the
 * others stream in. Pure: no I/O, no threads, no globals; errors through st_err. Not the
 * reading (source_uring.c, source_mmap.c) nor the ring of buffers (weights.c). */
#ifndef STRATA_WEIGHTS_PLAN_H
#define STRATA_WEIGHTS_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "weights/weights.h"

/* Ranges of one unit closer than this (after rounding to blocks) are read as one extent:
 * a few KiB of padding cost less than another read. */
#define PLAN_GAP_MERGE (64u << 10)

/* File bytes [file_off, file_off + len) of a unit are at the unit's buffer + buf_off.
 * file_off and len are multiples of the block size; the unit's ranges end at or before
 * file_off + need (the rest is padding to the block, possibly past the end of the file). */
struct plan_extent {
	uint64_t file_off, len, need, buf_off;
	/* [drop_off, drop_off + drop_len): the part of the extent that no other unit's extent
	 * shares (GGUF packs tensors 32 bytes apart, so neighbours share a block); MMAP drops
	 * only this part of a released unit, since the neighbour may be in use */
	uint64_t drop_off, drop_len;
};

struct plan_unit {
	uint32_t first_ext, n_ext; /* into plan.ext */
	uint64_t bytes;		   /* sum of the extents' lengths: the unit's size in memory */
	bool resident;
	int32_t stream_pos;	   /* index in plan.stream, or -1 when resident */
	uint32_t next_stream;	   /* stream position expected after this unit (any unit) */
};

struct plan_input {
	const struct weights_unit *units; /* (n_units) in pass order */
	uint32_t n_units;
	uint64_t file_size;  /* bytes; every range must lie inside */
	uint32_t block;	     /* alignment of every extent, a power of two */
	uint64_t budget;     /* bytes of resident units + streaming buffers; 0 = no limit */
	uint32_t prefetch;   /* streamed units read ahead of the one in use; 0 = auto */
	const char *name;    /* the file, for messages */
};

struct plan {
	struct plan_unit *units;  /* (n_units) */
	uint32_t n_units;
	struct plan_extent *ext;  /* (n_ext) all units' extents, unit by unit, each unit's
				   * sorted by file offset */
	uint32_t n_ext, max_ext;  /* max_ext: most extents of one unit */
	uint32_t *stream;	  /* (n_stream) the streamed units in pass order */
	uint32_t n_stream;
	uint64_t bytes_units, bytes_resident, bytes_streamed; /* in memory, block-aligned */
	uint32_t n_slots;	  /* streaming buffers; 0 when everything is resident */
	uint64_t slot_bytes;	  /* bytes per buffer: the largest streamed unit */
};

/* Build the plan. Among plans that fit the budget: fewest bytes streamed per pass, then
 * most buffers. Streamed units are at most as large as every resident one, except that
 * equal sizes are split evenly over the pass (so the disk has work while resident units
 * compute). Buffers: prefetch + 1 when prefetch is given, else as many as the budget
 * leaves after the resident set (at least 2; no more than the streamed units).
 * Errors: -EINVAL (a range outside the file, a unit with ranges but no array: the message
 * names the unit, the bytes and the file), -ENOSPC (the budget is below the smallest
 * workable plan; the message states that minimum as "the minimum is SIZE (N bytes: ..."),
 * -ENOMEM. On success the caller owns *out and frees it with plan_free; on failure *out
 * holds nothing to free. */
int plan_build(const struct plan_input *in, struct plan *out, struct st_err *err);

/* Free what plan_build allocated; a zeroed plan is fine. */
void plan_free(struct plan *p);

/* The extent of `unit` holding file byte `off`, or NULL. A binary search. */
const struct plan_extent *plan_find_ext(const struct plan *p, uint32_t unit, uint64_t off);

/* Bytes of e inside a file of file_size bytes: what a read of it transfers. */
uint64_t plan_ext_file_bytes(const struct plan_extent *e, uint64_t file_size);


#endif
