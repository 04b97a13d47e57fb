/* uring_reader.h: reads lists of byte ranges of one file into memory with io_uring, from a
 * thread of its own, so the disk stays busy while the caller computes. Splits ranges into
 * chunks, keeps a fixed number in flight, re-queues short reads and -EAGAIN, and reports
 * errors with the file offset. Knows nothing of weights or budgets; not for writes. */
#ifndef STRATA_WEIGHTS_URING_READER_H
#define STRATA_WEIGHTS_URING_READER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/err.h"

struct uring_reader;

struct uring_reader_config {
	int fd;		      /* the file; the caller keeps it open until uring_reader_close */
	uint32_t align;	      /* offsets and lengths of every read are multiples of this
			       * (the O_DIRECT block size; 1 for buffered reads) */
	uint32_t queue_depth; /* chunks in flight, >= 1 */
	uint32_t chunk_bytes; /* bytes per read, a multiple of align */
	/* Memory to register with the ring for READ_FIXED (page-aligned, any length; split
	 * into pieces of at most 1 GiB). Reads into other memory use plain READ. The memory
	 * stays the caller's and must outlive the reader. May be NULL / 0. */
	const struct iovec *bufs;
	uint32_t n_bufs;
};

/* Read file bytes [file_off, file_off + len) into buf. With align > 1, file_off, len and
 * buf must be multiples of align (buf: of the page size). Only the first `need` bytes must
 * arrive: the rest is padding up to the block size, which the end of the file may cut. */
struct uring_seg {
	uint64_t file_off;
	uint64_t len;
	uint64_t need; /* <= len */
	void *buf;
};

/* One request: all its segments, done as a whole. The caller owns it and the segments,
 * fills segs / n_segs, and keeps both alive and unchanged until the request is done
 * (uring_reader_wait returned, or uring_reader_cancel returned). */
struct uring_req {
	const struct uring_seg *segs;
	uint32_t n_segs;
	/* results, valid once done */
	int result;	  /* 0; -ENODATA: the file ended before `need` (truncated since open);
			   * -ECANCELED; or the read's -errno (-EIO ...) */
	uint64_t err_off; /* when result < 0: file offset of the first byte not read, */
	uint64_t err_end; /* ... and the end of the read that failed there */
	uint64_t bytes;	  /* bytes read */
	/* private to the reader */
	struct uring_req *next;
	uint32_t seg_i;
	uint64_t seg_pos;
	uint32_t inflight;
	bool cancel, done;
};

/* Start the reader thread and its ring; register cfg->bufs (failure to register is not an
 * error: the reads then use plain READ, see uring_reader_registered). Fails with -ENOSYS,
 * -EPERM ... when io_uring cannot be used here; the message says why. The caller owns
 * *out and frees it with uring_reader_close. */
int uring_reader_open(const struct uring_reader_config *cfg, struct uring_reader **out,
		      struct st_err *err);

/* Queue req (FIFO; `urgent` puts it before the others not yet started). Never blocks. */
void uring_reader_submit(struct uring_reader *r, struct uring_req *req, bool urgent);

/* Block until req is done; returns req->result. */
int uring_reader_wait(struct uring_reader *r, struct uring_req *req);

/* Whether req is done (does not block). */
bool uring_reader_done(struct uring_reader *r, struct uring_req *req);

/* Stop req: no more of its chunks start; blocks until the kernel no longer writes into its
 * buffers. A request that was already done keeps its result; otherwise -ECANCELED. */
void uring_reader_cancel(struct uring_reader *r, struct uring_req *req);

struct uring_reader_stats {
	uint64_t bytes;	  /* bytes read since open */
	uint64_t busy_ns; /* wall time with at least one read in flight */
	uint64_t retries; /* short reads and -EAGAIN / -EINTR re-queued */
};
void uring_reader_get_stats(struct uring_reader *r, struct uring_reader_stats *out);

/* Whether cfg->bufs were registered (reads into them use READ_FIXED). */
bool uring_reader_registered(const struct uring_reader *r);

/* Cancel everything, wait for the kernel, stop the thread, free. NULL is a no-op. */
void uring_reader_close(struct uring_reader *r);

#endif
