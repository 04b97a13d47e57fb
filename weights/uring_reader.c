/* uring_reader.c: see uring_reader.h. One thread owns the ring (created there, so the ring
 * can be SINGLE_ISSUER with deferred task work); the caller's thread only queues requests
 * and waits on them under one mutex. Not a general I/O layer: reads of one file only. */
#include "config.h"

#include "weights/uring_reader.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

/* The kernel refuses to register one buffer over 1 GiB. */
#define UR_MAX_REG_BYTES (1ull << 30)
/* -EAGAIN / short reads re-queued this many times before the read counts as failed:
 * a bound so a device that keeps answering -EAGAIN cannot spin us forever. */
#define UR_MAX_RETRIES 64

/* One read in flight (or waiting to be re-queued after a short read). */
struct ur_chunk {
	struct uring_req *req;
	uint64_t off;	  /* file offset of the chunk's first byte */
	uint64_t len;	  /* bytes asked */
	uint64_t need;	  /* bytes that must arrive (the rest is padding the end of file may cut) */
	uint64_t done;	  /* bytes arrived so far */
	char *buf;	  /* destination of byte `off` */
	int buf_index;	  /* registered buffer holding buf, or -1 */
	uint32_t retries; /* re-queues so far */
};

/* A piece of registered memory: [base, base + len) is registered buffer `index`. */
struct ur_region {
	uintptr_t base;
	uint64_t len;
};

struct uring_reader {
	int fd;
	uint32_t align, queue_depth, chunk_bytes;
	struct io_uring ring;
	bool fixed_file; /* fd registered as fixed file 0 */
	bool registered; /* regions registered */
	struct ur_region *regions; /* (n_regions) sorted by base, each <= 1 GiB */
	uint32_t n_regions;
	const struct iovec *init_bufs; /* valid only until the thread has registered them */
	uint32_t init_n_bufs;

	pthread_t thread;
	pthread_mutex_t mu;	 /* guards everything below, and the requests' private fields */
	pthread_cond_t work_cv;	 /* the thread waits here when it has nothing in flight */
	pthread_cond_t done_cv;	 /* callers wait here for requests (and for the init) */
	bool init_done, stop;
	int init_rc;
	char init_msg[ST_ERR_MAX];

	struct uring_req *head; /* requests not done, in service order */
	struct ur_chunk *chunks; /* (queue_depth) */
	uint32_t *free_idx;	 /* (queue_depth) indices of idle chunks, a stack */
	uint32_t n_free;
	uint32_t *retry_idx;	 /* (queue_depth) chunks to submit again, a stack */
	uint32_t n_retry;
	uint32_t busy;		 /* chunks not idle (queue_depth - n_free) */
	uint64_t busy_since_ns;	 /* when busy last went from 0 to 1 */
	struct uring_reader_stats st;
};

/* ---- ring setup (runs on the reader thread) ---- */

static int ur_ring_init(struct uring_reader *r, char *msg, size_t cap)
{
	/* Deferred task work suits a thread that only ever waits on its own ring; older
	 * kernels reject the flags with -EINVAL, so step down. */
	static const unsigned flag_sets[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int rc = -EINVAL;
	for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		p.flags = flag_sets[i];
		rc = io_uring_queue_init_params(r->queue_depth, &r->ring, &p);
		if (rc != -EINVAL)
			break;
	}
	if (rc < 0) {
		int disabled = -1;
		FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
		if (f) {
			if (fscanf(f, "%d", &disabled) != 1)
				disabled = -1;
			fclose(f);
		}
		if (rc == -ENOSYS)
			snprintf(msg, cap, "io_uring is not available: this kernel has no io_uring "
				 "(or a seccomp filter hides it)");
		else if (rc == -EPERM && disabled > 0)
			snprintf(msg, cap, "io_uring is disabled: /proc/sys/kernel/io_uring_disabled is %d",
				 disabled);
		else if (rc == -EPERM)
			snprintf(msg, cap, "io_uring is not permitted here (seccomp, a container "
				 "policy, or io_uring_group): %s", strerror(-rc));
		else
			snprintf(msg, cap, "cannot set up an io_uring of %u entries: %s",
				 r->queue_depth, strerror(-rc));
		return rc;
	}

	r->fixed_file = io_uring_register_files(&r->ring, &r->fd, 1) == 0;

	if (r->init_n_bufs > 0) {
		uint32_t n = 0;
		for (uint32_t i = 0; i < r->init_n_bufs; i++)
			n += (uint32_t)((r->init_bufs[i].iov_len + UR_MAX_REG_BYTES - 1) / UR_MAX_REG_BYTES);
		struct iovec *iov = calloc(n, sizeof *iov);
		r->regions = calloc(n, sizeof *r->regions);
		if (!iov || !r->regions) {
			free(iov);
			free(r->regions);
			r->regions = NULL;
			snprintf(msg, cap, "out of memory");
			io_uring_queue_exit(&r->ring);
			return -ENOMEM;
		}
		uint32_t k = 0;
		uint64_t total = 0;
		for (uint32_t i = 0; i < r->init_n_bufs; i++) {
			uintptr_t base = (uintptr_t)r->init_bufs[i].iov_base;
			uint64_t left = r->init_bufs[i].iov_len;
			total += left;
			while (left > 0) {
				uint64_t piece = left < UR_MAX_REG_BYTES ? left : UR_MAX_REG_BYTES;
				iov[k].iov_base = (void *)base;
				iov[k].iov_len = piece;
				k++;
				base += piece;
				left -= piece;
			}
		}
		int reg = io_uring_register_buffers(&r->ring, iov, k);
		if (reg == 0) {
			r->registered = true;
			for (uint32_t i = 0; i < k; i++) {
				r->regions[i].base = (uintptr_t)iov[i].iov_base;
				r->regions[i].len = iov[i].iov_len;
			}
			r->n_regions = k;
		} else {
			/* Usually RLIMIT_MEMLOCK (registered memory is pinned and counted there
			 * without CAP_IPC_LOCK); plain reads work, a little slower. */
			log_warn("io_uring: cannot register %.1f MiB of read buffers (%s); reading "
				 "without READ_FIXED (raise LimitMEMLOCK= / ulimit -l to fix)",
				 total / 1048576.0, strerror(-reg));
		}
		free(iov);
	}
	return 0;
}

/* ---- the reader thread's work; all with r->mu held ---- */

/* The registered buffer holding buf, with *len clamped so the read stays inside it. */
static int ur_region_of(const struct uring_reader *r, const char *buf, uint64_t *len)
{
	uintptr_t a = (uintptr_t)buf;
	uint32_t lo = 0, hi = r->n_regions;
	while (lo < hi) { /* last region with base <= a */
		uint32_t mid = lo + (hi - lo) / 2;
		if (r->regions[mid].base <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -1;
	const struct ur_region *g = &r->regions[lo - 1];
	if (a >= g->base + g->len)
		return -1;
	uint64_t room = g->base + g->len - a;
	if (*len > room)
		*len = room;
	return (int)(lo - 1);
}

static void ur_skip_empty(struct uring_req *q)
{
	while (q->seg_i < q->n_segs && q->segs[q->seg_i].len == q->seg_pos) {
		q->seg_i++;
		q->seg_pos = 0;
	}
}

static void ur_unlink(struct uring_reader *r, struct uring_req *q)
{
	for (struct uring_req **p = &r->head; *p; p = &(*p)->next) {
		if (*p == q) {
			*p = q->next;
			break;
		}
	}
	q->next = NULL;
}

/* Finish q when nothing of it is in flight and nothing more will start. */
static void ur_maybe_finish(struct uring_reader *r, struct uring_req *q)
{
	if (q->done || q->inflight > 0)
		return;
	bool all_cut = q->seg_i >= q->n_segs;
	if (!all_cut && q->result == 0 && !q->cancel)
		return;
	if (!all_cut && q->result == 0) {
		q->result = -ECANCELED;
		q->err_off = q->segs[q->seg_i].file_off + q->seg_pos;
		q->err_end = q->err_off;
	}
	ur_unlink(r, q);
	q->done = true;
	pthread_cond_broadcast(&r->done_cv);
}

/* Cut the next chunk from the first request that has bytes left to start. */
static bool ur_cut(struct uring_reader *r, struct ur_chunk *c)
{
	for (struct uring_req *q = r->head; q; q = q->next) {
		if (q->cancel || q->result < 0 || q->seg_i >= q->n_segs)
			continue;
		const struct uring_seg *s = &q->segs[q->seg_i];
		uint64_t len = s->len - q->seg_pos;
		if (len > r->chunk_bytes)
			len = r->chunk_bytes;
		c->req = q;
		c->off = s->file_off + q->seg_pos;
		c->buf = (char *)s->buf + q->seg_pos;
		c->buf_index = r->registered ? ur_region_of(r, c->buf, &len) : -1;
		c->len = len;
		c->need = s->need <= q->seg_pos ? 0
			  : (s->need - q->seg_pos < len ? s->need - q->seg_pos : len);
		c->done = 0;
		c->retries = 0;
		q->seg_pos += len;
		ur_skip_empty(q);
		q->inflight++;
		return true;
	}
	return false;
}

static void ur_prep(struct uring_reader *r, struct ur_chunk *c, struct io_uring_sqe *sqe)
{
	uint32_t idx = (uint32_t)(c - r->chunks);
	int fd = r->fixed_file ? 0 : r->fd;
	char *buf = c->buf + c->done;
	unsigned len = (unsigned)(c->len - c->done);
	uint64_t off = c->off + c->done;
	if (c->buf_index >= 0)
		io_uring_prep_read_fixed(sqe, fd, buf, len, off, c->buf_index);
	else
		io_uring_prep_read(sqe, fd, buf, len, off);
	if (r->fixed_file)
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, idx);
}

static void ur_chunk_release(struct uring_reader *r, struct ur_chunk *c)
{
	struct uring_req *q = c->req;
	c->req = NULL;
	r->free_idx[r->n_free++] = (uint32_t)(c - r->chunks);
	if (--r->busy == 0)
		r->st.busy_ns += clock_now_ns() - r->busy_since_ns;
	q->inflight--;
	ur_maybe_finish(r, q);
}

static void ur_fail(struct ur_chunk *c, int code)
{
	struct uring_req *q = c->req;
	uint64_t at = c->off + c->done;
	/* keep the failure nearest the start: that is the offset a person should look at */
	if (q->result == 0 || at < q->err_off) {
		q->result = code;
		q->err_off = at;
		q->err_end = c->off + c->len;
	}
}

/* Put as many reads in the submission queue as the chunks and the queue allow. */
static void ur_fill(struct uring_reader *r)
{
	while (io_uring_sq_space_left(&r->ring) > 0) {
		struct ur_chunk *c;
		if (r->n_retry > 0) {
			c = &r->chunks[r->retry_idx[--r->n_retry]];
			if (c->req->cancel) {
				ur_fail(c, -ECANCELED);
				ur_chunk_release(r, c);
				continue;
			}
		} else if (r->n_free > 0) {
			c = &r->chunks[r->free_idx[r->n_free - 1]];
			if (!ur_cut(r, c))
				break;
			r->n_free--;
			if (r->busy++ == 0)
				r->busy_since_ns = clock_now_ns();
		} else {
			break;
		}
		ur_prep(r, c, io_uring_get_sqe(&r->ring));
	}
}

static void ur_complete(struct uring_reader *r, struct ur_chunk *c, int res)
{
	struct uring_req *q = c->req;
	bool again = false;
	int fail = 0;
	if (res == -EAGAIN || res == -EINTR) {
		again = true;
	} else if (res < 0) {
		fail = res;
	} else if (res == 0) {
		if (c->done < c->need)
			fail = -ENODATA; /* end of file before `need`: truncated */
	} else {
		uint64_t got = c->done + (uint64_t)res;
		q->bytes += (uint64_t)res;
		r->st.bytes += (uint64_t)res;
		if (got >= c->need) {
			c->done = got;
		} else {
			/* Short: read the rest. O_DIRECT must restart on the block grid, so a
			 * partial block is read again; if that gains nothing, the file ends
			 * there (block filesystems end short only at EOF; FUSE and network
			 * ones may end short anywhere). */
			uint64_t keep = r->align > 1 ? got / r->align * r->align : got;
			if (keep <= c->done) {
				c->done = got;
				fail = -ENODATA;
			} else {
				c->done = keep;
				again = true;
			}
		}
	}
	if (again) {
		if (q->cancel) {
			fail = -ECANCELED;
		} else if (c->retries++ >= UR_MAX_RETRIES) {
			fail = res < 0 ? res : -EIO;
		} else {
			r->retry_idx[r->n_retry++] = (uint32_t)(c - r->chunks);
			r->st.retries++;
			return;
		}
	}
	if (fail)
		ur_fail(c, fail);
	ur_chunk_release(r, c);
}

static void *ur_thread(void *arg)
{
	struct uring_reader *r = arg;
	char msg[ST_ERR_MAX] = "";
	int rc = ur_ring_init(r, msg, sizeof msg);

	pthread_mutex_lock(&r->mu);
	r->init_done = true;
	r->init_rc = rc;
	memcpy(r->init_msg, msg, sizeof msg);
	r->init_bufs = NULL;
	pthread_cond_broadcast(&r->done_cv);
	if (rc < 0) {
		pthread_mutex_unlock(&r->mu);
		return NULL;
	}
	for (;;) {
		ur_fill(r);
		if (r->busy == 0) {
			if (r->stop)
				break;
			pthread_cond_wait(&r->work_cv, &r->mu);
			continue;
		}
		pthread_mutex_unlock(&r->mu);
		int ret = io_uring_submit_and_wait(&r->ring, 1);
		pthread_mutex_lock(&r->mu);
		unsigned head, n = 0;
		struct io_uring_cqe *cqe;
		io_uring_for_each_cqe(&r->ring, head, cqe) {
			ur_complete(r, &r->chunks[io_uring_cqe_get_data64(cqe)], cqe->res);
			n++;
		}
		io_uring_cq_advance(&r->ring, n);
		if (n == 0 && ret < 0 && ret != -EINTR && ret != -ETIME) {
			/* -EAGAIN / -EBUSY / -ENOMEM from the submit: the queued reads stay
			 * in the ring; back off a moment instead of spinning. */
			pthread_mutex_unlock(&r->mu);
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
			pthread_mutex_lock(&r->mu);
		}
	}
	pthread_mutex_unlock(&r->mu);
	io_uring_queue_exit(&r->ring);
	return NULL;
}

/* ---- the caller's side ---- */

static void ur_free(struct uring_reader *r)
{
	free(r->chunks);
	free(r->free_idx);
	free(r->retry_idx);
	free(r->regions);
	pthread_cond_destroy(&r->done_cv);
	pthread_cond_destroy(&r->work_cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int uring_reader_open(const struct uring_reader_config *cfg, struct uring_reader **out,
		      struct st_err *err)
{
	*out = NULL;
	if (cfg->queue_depth == 0 || cfg->chunk_bytes == 0 || cfg->align == 0 ||
	    cfg->chunk_bytes % cfg->align != 0)
		return st_errf(err, -EINVAL, "uring reader: bad shape (queue depth %u, chunk %u, "
			       "alignment %u)", cfg->queue_depth, cfg->chunk_bytes, cfg->align);
	struct uring_reader *r = calloc(1, sizeof *r);
	if (!r)
		return st_errf(err, -ENOMEM, "out of memory");
	r->fd = cfg->fd;
	r->align = cfg->align;
	r->queue_depth = cfg->queue_depth;
	r->chunk_bytes = cfg->chunk_bytes;
	r->init_bufs = cfg->bufs;
	r->init_n_bufs = cfg->bufs ? cfg->n_bufs : 0;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->work_cv, NULL);
	pthread_cond_init(&r->done_cv, NULL);
	r->chunks = calloc(cfg->queue_depth, sizeof *r->chunks);
	r->free_idx = calloc(cfg->queue_depth, sizeof *r->free_idx);
	r->retry_idx = calloc(cfg->queue_depth, sizeof *r->retry_idx);
	if (!r->chunks || !r->free_idx || !r->retry_idx) {
		ur_free(r);
		return st_errf(err, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < cfg->queue_depth; i++)
		r->free_idx[i] = cfg->queue_depth - 1 - i;
	r->n_free = cfg->queue_depth;

	/* The thread inherits a full signal mask: signals are the caller's business. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&r->thread, NULL, ur_thread, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		ur_free(r);
		return st_errf(err, -rc, "cannot start the reader thread: %s", strerror(rc));
	}
	pthread_setname_np(r->thread, "strata-io");

	pthread_mutex_lock(&r->mu);
	while (!r->init_done)
		pthread_cond_wait(&r->done_cv, &r->mu);
	rc = r->init_rc;
	pthread_mutex_unlock(&r->mu);
	if (rc < 0) {
		pthread_join(r->thread, NULL);
		st_errf(err, rc, "%s", r->init_msg);
		ur_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void uring_reader_submit(struct uring_reader *r, struct uring_req *req, bool urgent)
{
	req->result = 0;
	req->err_off = 0;
	req->err_end = 0;
	req->bytes = 0;
	req->seg_i = 0;
	req->seg_pos = 0;
	req->inflight = 0;
	req->cancel = false;
	req->done = false;
	req->next = NULL;
	ur_skip_empty(req);
	pthread_mutex_lock(&r->mu);
	if (req->seg_i >= req->n_segs) {
		req->done = true;
	} else if (urgent || !r->head) {
		req->next = r->head;
		r->head = req;
	} else {
		struct uring_req *t = r->head;
		while (t->next)
			t = t->next;
		t->next = req;
	}
	pthread_cond_signal(&r->work_cv);
	pthread_mutex_unlock(&r->mu);
}

int uring_reader_wait(struct uring_reader *r, struct uring_req *req)
{
	pthread_mutex_lock(&r->mu);
	while (!req->done)
		pthread_cond_wait(&r->done_cv, &r->mu);
	int rc = req->result;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

bool uring_reader_done(struct uring_reader *r, struct uring_req *req)
{
	pthread_mutex_lock(&r->mu);
	bool d = req->done;
	pthread_mutex_unlock(&r->mu);
	return d;
}

void uring_reader_cancel(struct uring_reader *r, struct uring_req *req)
{
	pthread_mutex_lock(&r->mu);
	if (!req->done) {
		req->cancel = true;
		ur_maybe_finish(r, req); /* nothing in flight: done now */
		pthread_cond_signal(&r->work_cv);
		while (!req->done)
			pthread_cond_wait(&r->done_cv, &r->mu);
	}
	pthread_mutex_unlock(&r->mu);
}

void uring_reader_get_stats(struct uring_reader *r, struct uring_reader_stats *out)
{
	pthread_mutex_lock(&r->mu);
	*out = r->st;
	if (r->busy > 0)
		out->busy_ns += clock_now_ns() - r->busy_since_ns;
	pthread_mutex_unlock(&r->mu);
}

bool uring_reader_registered(const struct uring_reader *r)
{
	return r->registered;
}

void uring_reader_close(struct uring_reader *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	for (struct uring_req *q = r->head, *next; q; q = next) {
		next = q->next;
		q->cancel = true;
		ur_maybe_finish(r, q);
	}
	pthread_cond_signal(&r->work_cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	ur_free(r);
}
