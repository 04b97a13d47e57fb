/* kv_io.h: the KV cache's disk I/O: a batch of block reads and writes (any
 * files, O_DIRECT or not) submitted together through one io_uring and waited
 * for as a whole, with short transfers and -EAGAIN re-queued. Synchronous
 * for the caller (the engine's thread, between passes); the batch keeps the
 * disk busy. Falls back to pread/pwrite where io_uring cannot be used. Knows
 * nothing of blocks or caches: file descriptors, offsets and buffers. */
#ifndef STRATA_ENGINE_KV_IO_H
#define STRATA_ENGINE_KV_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct kv_io;

/* One transfer: len bytes between buf and file offset off of fd. For an
 * O_DIRECT descriptor, buf, off and len must be multiples of 4096. */
struct kv_io_op {
	int fd;
	bool write;
	uint64_t off;
	void *buf;
	uint32_t len;
	int result;	/* after kv_io_run: 0, or -errno (-ENODATA: the file ended first) */
};

/* A ring for up to `depth` transfers in flight. 0, or -ENOMEM. When
 * io_uring cannot be set up here the handle still works, with pread and
 * pwrite (kv_io_uring() says which). The caller owns *out (kv_io_close). */
int kv_io_open(uint32_t depth, struct kv_io **out, struct st_err *err);
void kv_io_close(struct kv_io *io);
bool kv_io_uring(const struct kv_io *io);

/* Do every op of ops[0..n), as many at once as the ring holds, and wait for
 * all. Returns 0 when all succeeded, else the first failure's -errno (each
 * op's result says which); the other ops still ran. */
int kv_io_run(struct kv_io *io, struct kv_io_op *ops, uint32_t n);

struct kv_io_stats {
	uint64_t bytes_read, bytes_written;
	uint64_t ns;		/* wall time inside kv_io_run */
};
void kv_io_get_stats(const struct kv_io *io, struct kv_io_stats *out);

#endif
