/* kv_io.c: see kv_io.h. One ring, used by one thread at a time: submit
 * what fits, reap completions, re-queue the remainder of short transfers,
 * until every op is done. */
#include "engine/kv_io.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

/* -EAGAIN and short transfers are re-queued this many times before the op fails. */
#define KV_IO_MAX_RETRIES 64

struct kv_io {
	bool uring;
	uint32_t depth;
	struct io_uring ring;
	uint32_t *done;	   /* (depth) bytes done of each op in flight, by slot */
	struct kv_io_stats st;
};

int kv_io_open(uint32_t depth, struct kv_io **out, struct st_err *err)
{
	struct kv_io *io = calloc(1, sizeof *io);
	*out = NULL;
	if (!io)
		return st_errf(err, -ENOMEM, "out of memory");
	io->depth = depth ? depth : 32;
	int rc = io_uring_queue_init(io->depth, &io->ring, 0);
	if (rc == 0) {
		io->uring = true;
	} else {
		log_notice("KV cache: io_uring is not available (%s): its blocks are read and "
			   "written with pread/pwrite", strerror(-rc));
	}
	*out = io;
	return 0;
}

void kv_io_close(struct kv_io *io)
{
	if (!io)
		return;
	if (io->uring)
		io_uring_queue_exit(&io->ring);
	free(io);
}

bool kv_io_uring(const struct kv_io *io)
{
	return io->uring;
}

/* The plain way, one op at a time. */
static int run_sync(struct kv_io_op *op)
{
	uint32_t done = 0;
	while (done < op->len) {
		ssize_t n = op->write ? pwrite(op->fd, (char *)op->buf + done, op->len - done,
					       (off_t)(op->off + done))
				      : pread(op->fd, (char *)op->buf + done, op->len - done,
					      (off_t)(op->off + done));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return op->write ? -EIO : -ENODATA;
		done += (uint32_t)n;
	}
	return 0;
}

struct pending {
	uint32_t op;	   /* index in ops */
	uint32_t done;	   /* bytes transferred */
	uint32_t retries;
};

static void queue(struct kv_io *io, struct kv_io_op *ops, struct pending *p)
{
	struct kv_io_op *op = &ops[p->op];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
	/* the caller only queues while fewer than depth are in flight */
	if (op->write)
		io_uring_prep_write(sqe, op->fd, (char *)op->buf + p->done, op->len - p->done,
				    op->off + p->done);
	else
		io_uring_prep_read(sqe, op->fd, (char *)op->buf + p->done, op->len - p->done,
				   op->off + p->done);
	io_uring_sqe_set_data(sqe, p);
}

int kv_io_run(struct kv_io *io, struct kv_io_op *ops, uint32_t n)
{
	uint64_t t0 = clock_now_ns();
	int first = 0;
	if (n == 0)
		return 0;
	struct pending *pend = io->uring ? calloc(n, sizeof *pend) : NULL;
	if (!pend) {
		/* no ring (or no memory for the bookkeeping): one at a time */
		for (uint32_t i = 0; i < n; i++) {
			ops[i].result = run_sync(&ops[i]);
			if (ops[i].result < 0 && first == 0)
				first = ops[i].result;
			else if (ops[i].result == 0)
				*(ops[i].write ? &io->st.bytes_written : &io->st.bytes_read) += ops[i].len;
		}
		io->st.ns += clock_now_ns() - t0;
		return first;
	}
	uint32_t next = 0, inflight = 0, left = n;
	for (uint32_t i = 0; i < n; i++) {
		pend[i].op = i;
		ops[i].result = 0;
	}
	/* requeued ops wait on a small stack: at most depth of them at once */
	struct pending **retry = calloc(io->depth, sizeof *retry);
	uint32_t n_retry = 0;
	if (!retry) {
		free(pend);
		for (uint32_t i = 0; i < n; i++)
			if ((ops[i].result = run_sync(&ops[i])) < 0 && first == 0)
				first = ops[i].result;
		return first;
	}
	while (left > 0) {
		while (inflight < io->depth && (n_retry > 0 || next < n)) {
			struct pending *p = n_retry > 0 ? retry[--n_retry] : &pend[next++];
			queue(io, ops, p);
			inflight++;
		}
		int rc = io_uring_submit_and_wait(&io->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			/* the ring is broken: finish the rest the plain way */
			log_warn("KV cache: io_uring submit failed (%s); going on with pread/pwrite",
				 strerror(-rc));
			break;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&io->ring, head, cqe) {
			struct pending *p = io_uring_cqe_get_data(cqe);
			struct kv_io_op *op = &ops[p->op];
			int res = cqe->res;
			seen++;
			inflight--;
			if (res > 0)
				p->done += (uint32_t)res;
			if (res >= 0 && p->done >= op->len) {
				*(op->write ? &io->st.bytes_written : &io->st.bytes_read) += op->len;
				left--;
				continue;
			}
			if (res == 0 && !op->write) {
				op->result = -ENODATA; /* the file ends before the block */
			} else if ((res > 0 || res == -EAGAIN || res == -EINTR) &&
				   ++p->retries <= KV_IO_MAX_RETRIES) {
				retry[n_retry++] = p;
				continue;
			} else {
				op->result = res < 0 ? res : -EIO;
			}
			if (first == 0)
				first = op->result;
			left--;
		}
		io_uring_cq_advance(&io->ring, seen);
	}
	if (left > 0) {
		/* after a broken ring: wait out what the kernel still owns, then the rest */
		while (inflight > 0) {
			struct io_uring_cqe *cqe;
			if (io_uring_wait_cqe(&io->ring, &cqe) < 0)
				break;
			struct pending *p = io_uring_cqe_get_data(cqe);
			if (cqe->res > 0)
				p->done += (uint32_t)cqe->res;
			io_uring_cqe_seen(&io->ring, cqe);
			inflight--;
		}
		for (uint32_t i = 0; i < n; i++) {
			if (pend[i].done >= ops[i].len || ops[i].result < 0)
				continue;
			if ((ops[i].result = run_sync(&ops[i])) < 0 && first == 0)
				first = ops[i].result;
		}
	}
	free(retry);
	free(pend);
	io->st.ns += clock_now_ns() - t0;
	return first;
}

void kv_io_get_stats(const struct kv_io *io, struct kv_io_stats *out)
{
	*out = io->st;
}
