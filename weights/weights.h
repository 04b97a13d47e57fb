/* weights.h: the weight source: where the bytes of each unit (a layer's tensors) come from.
 * From a memory budget it plans which units stay resident and streams the others through
 * a ring of buffers (io_uring, O_DIRECT) or pages them through a mapping; the caller only
 * sees acquire / pointer / release. Knows byte ranges, a budget and an order; not GGUF,
 * not tensors, not transformers. */
#ifndef STRATA_WEIGHTS_WEIGHTS_H
#define STRATA_WEIGHTS_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct weights;

/* A run of bytes in the file (e.g. one tensor's data). No alignment required. */
struct weights_range {
	uint64_t offset; /* bytes from the start of the file */
	uint64_t len;	 /* bytes; 0 is allowed and ignored */
};

/* What acquire() delivers as one piece: e.g. one layer's tensors. Ranges may be
 * non-contiguous and in any order; weights_open copies them. */
struct weights_unit {
	const struct weights_range *ranges;
	uint32_t n_ranges;
};

enum weights_io {
	WEIGHTS_IO_URING, /* io_uring reads into our own buffers (O_DIRECT when the fs allows) */
	WEIGHTS_IO_MMAP,  /* a read-only mapping of the file, paged in and out around use */
};

struct weights_config {
	int fd;		      /* the file, open O_RDONLY without O_NONBLOCK; a regular file.
			       * Borrowed: the caller keeps it open until weights_close.
			       * Buffered reads and the mapping use it; O_DIRECT reads reopen
			       * the same inode (/proc/self/fd), never the path */
	const char *path;     /* the file's name, for messages only (NULL: "the weights file") */
	uint64_t header_bytes; /* the file's first bytes that the caller parsed at open (GGUF:
			       * header, metadata, tensor table = gguf_data_offset);
			       * weights_revalidate fails when they change. 0 = none */
	uint64_t budget;      /* bytes of weights we may hold: resident units + streaming
			       * buffers (0 = no limit: everything resident) */
	enum weights_io io;   /* asked-for mode; URING falls back to MMAP (with a warning)
			       * when io_uring is unavailable */
	uint32_t prefetch;    /* streamed units read ahead of the one in use; 0 = auto: as many
			       * buffers as the budget leaves after the resident set (at least 2) */
	bool mlock;	      /* lock resident units (and buffers) in RAM; failure is a warning */
	uint32_t queue_depth; /* reads in flight; 0 = WEIGHTS_DEFAULT_QUEUE_DEPTH */
	uint32_t chunk_bytes; /* bytes per read (rounded to the block size); 0 = default */
	/* Loading the resident units at open: `done` of `total` bytes read. Called from the
	 * thread in weights_open: at the start, at most every ~1% or 250 ms, and at the end
	 * (done == total). NULL = not told. */
	void (*progress)(void *user, uint64_t done, uint64_t total);
	void *progress_user;
};

/* 128 MiB in flight: measured best on this project's virtio disk (bench/weights-bench);
 * 1 MiB x 128 did as well, 1 MiB x 32 about 25% worse. */
#define WEIGHTS_DEFAULT_QUEUE_DEPTH 32
#define WEIGHTS_DEFAULT_CHUNK_BYTES (4u << 20)

/* Plan the budget, read the resident units, and start reading the first streamed units.
 * `units` are given in pass order: the order acquire() is called, cyclically (after the
 * last comes the first again); the order only steers prefetch, any order works.
 * Fails (-errno, message in err) when cfg->fd is not a readable regular file without
 * O_NONBLOCK (-EINVAL), the file cannot be read, a range lies outside it, or the budget is
 * below the smallest workable plan (-ENOSPC; the message says that minimum).
 * The caller owns *out and frees it with weights_close; `units` may be freed after return. */
int weights_open(const struct weights_config *cfg, const struct weights_unit *units,
		 uint32_t n_units, struct weights **out, struct st_err *err);

/* Block until unit `unit`'s bytes are in memory and pin them until weights_release.
 * Resident units return at once. On a read error or a file truncated since open, fails with
 * a message naming the file, unit and offset; the source stays usable and a later acquire
 * of the same unit reads it again. -EBUSY when every streaming buffer is already held
 * (at most stats.n_slots streamed units can be held at once; holding one at a time is the
 * intended use). Acquiring a held unit again nests (release once per acquire).
 * Not thread-safe: one thread calls acquire/release (the layer loop). */
int weights_acquire(struct weights *w, uint32_t unit, struct st_err *err);

/* Where file byte `file_offset` (inside one of the unit's ranges) is in memory. Valid from
 * weights_acquire until the matching weights_release (resident units: until weights_close);
 * the memory belongs to w, read-only. The bytes of one range are contiguous:
 * ptr(offset + i) == ptr(offset) + i. ptr and file_offset are equal modulo 4096, so a
 * tensor aligned in the file (GGUF: 32 bytes) is aligned alike in memory.
 * NULL when the offset is outside the unit's ranges (rounded out to the block size) or a
 * streamed unit is not held. Cheap (a binary search over the unit's few extents). */
const void *weights_ptr(const struct weights *w, uint32_t unit, uint64_t file_offset);

/* After computing with a held unit, before trusting the results: 0, or -EIO (message naming
 * the file, unit and byte) when bytes could not be read while the unit was in use. Only MMAP
 * can fail here: a file truncated during use, or a page evicted that fails to read back,
 * raises SIGBUS; weights_open(MMAP) installs a handler that survives it (the bytes read as
 * zeros from there on) and this reports it, once, and restores the mapping. A fault nobody
 * checked fails the next weights_acquire instead. Call from the thread that acquires. */
int weights_check(struct weights *w, uint32_t unit, struct st_err *err);

/* Whether the file is still the one opened, cheaply (one fstat): call between passes, with
 * no unit held, e.g. at the start of every pass. When the file changed since the last call
 * (size, modification or change time, inode), streaming buffers not held are emptied (their
 * read-ahead is stale) and the resident units are read again in place (a notice in the log
 * says how many bytes); MMAP pages show the new bytes by themselves. Fails, and keeps
 * failing until the file is as it was:
 *   -ESTALE  the first cfg->header_bytes bytes changed: a different file (another model)
 *            was written in place; the caller must be restarted to load it;
 *   -EIO     the size changed but the header did not: truncated (or grown) in place; the
 *            requests fail until the file is whole again (as acquire does for a cut unit);
 *   -errno   fstat or the re-read failed.
 * The message names the file. */
int weights_revalidate(struct weights *w, struct st_err *err);

/* Done with the unit: its buffer may be reused, which starts the next read ahead. */
void weights_release(struct weights *w, uint32_t unit);

/* The plan in a few human-readable lines (units, resident set, buffers, io mode), for the
 * log. Always NUL-terminates buf when cap > 0 (truncates if short). */
void weights_plan_describe(const struct weights *w, char *buf, size_t cap);

struct weights_stats {
	enum weights_io io;	      /* the mode actually in use */
	bool direct;		      /* URING: reads bypass the page cache (O_DIRECT) */
	bool registered;	      /* URING: buffers registered with the ring (READ_FIXED) */
	bool locked;		      /* cfg.mlock was asked and every lock succeeded */
	uint32_t n_units, n_resident, n_streamed;
	uint64_t bytes_units;	      /* bytes of all units, as held in memory (block-aligned) */
	uint64_t bytes_resident;      /* of which resident (read once, at open) */
	uint64_t bytes_streamed_per_pass; /* of which read again on every pass */
	uint32_t n_slots;	      /* streaming buffers (URING) or paged-in window (MMAP) */
	uint64_t slot_bytes;	      /* bytes per streaming buffer */
	uint32_t prefetch;	      /* streamed units read ahead of the one in use */
	uint32_t queue_depth, chunk_bytes, block_bytes; /* reader shape; block = alignment */
	uint64_t bytes_read;	      /* since open, resident load (and re-reads) included.
				       * MMAP: bytes paged in at acquire (some may have been
				       * page-cache hits) */
	uint64_t read_ns;	      /* wall time with at least one read in flight (MMAP: time
				       * spent paging in, which is also stall time) */
	uint64_t load_ns;	      /* of which reading the resident units at open */
	uint64_t stall_ns;	      /* time acquire() waited for bytes */
	uint64_t n_acquires;	      /* acquire() calls that succeeded */
	uint64_t n_stalls;	      /* ... of which had to wait (MMAP: every streamed one,
				       * since paging in is synchronous) */
	uint64_t n_misses;	      /* acquires of a streamed unit that was not read ahead
				       * (out-of-order use) */
	uint64_t n_read_errors;	      /* acquires that failed on a read error or EOF */
};

/* Whether the plan keeps unit `unit` resident. The plan never changes after
 * weights_open, so any thread may ask. */
bool weights_is_resident(const struct weights *w, uint32_t unit);

/* A snapshot of the counters and the plan. */
void weights_get_stats(const struct weights *w, struct weights_stats *out);

/* Stop reads in flight, free buffers, close what weights_open opened (not cfg->fd). NULL
 * is a no-op. Every unit must have been released (pointers die here). */
void weights_close(struct weights *w);

#endif
