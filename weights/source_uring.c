/* source_uring.c: the io_uring backend (see source.h): streaming slots are buffers of our
 * own, registered with the ring, that uring_reader fills with O_DIRECT reads (buffered
 * where the filesystem refuses O_DIRECT, the page cache dropped after each unit). Not the
 * resident load (resident_load.c), not the ring's policy (weights.c). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/parse.h"
#include "weights/anon.h"
#include "weights/source.h"
#include "weights/uring_reader.h"


struct uring_src {
	const struct w_file *f;
	struct uring_reader *reader;
	char *slot_mem;		/* (n_slots * slot_bytes) page-aligned, populated */
	uint64_t slot_len;
	struct uring_seg *segs; /* (n_slots * max_ext) the segments of each slot's request */
	struct uring_req *reqs; /* (n_slots) each slot's request */
};

static void ur_close(void *state)
{
	struct uring_src *u = state;
	if (!u)
		return;
	/* the reader first: it cancels what is in flight and waits for the kernel, after
	 * which no one writes into the buffers */
	uring_reader_close(u->reader);
	if (u->slot_mem)
		munmap(u->slot_mem, u->slot_len);
	free(u->segs);
	free(u->reqs);
	free(u);
}

static int ur_open(const struct w_file *f, void **state, struct st_err *err)
{
	const struct plan *p = f->plan;
	char b[32];
	int rc;
	*state = NULL;
	struct uring_src *u = calloc(1, sizeof *u);
	size_t n_slots = p->n_slots ? p->n_slots : 1, max_ext = p->max_ext ? p->max_ext : 1;
	if (u) {
		u->f = f;
		u->segs = calloc(n_slots * max_ext, sizeof *u->segs);
		u->reqs = calloc(n_slots, sizeof *u->reqs);
	}
	if (!u || !u->segs || !u->reqs) {
		ur_close(u);
		return st_errf(err, -ENOMEM, "out of memory");
	}
	if (p->n_slots > 0) {
		/* huge pages: a 4 MiB read into 4 KiB pages can be up to 1024 segments, which
		 * the block layer splits (virtio-blk here takes 254), and streaming ran 15-25%
		 * slower without them (bench/weights-bench, 3 GiB, 16 units). Populated now,
		 * once: they are reused every pass. */
		u->slot_len = (uint64_t)p->n_slots * p->slot_bytes;
		u->slot_mem = w_map_anon(u->slot_len, true);
		rc = u->slot_mem ? w_populate_parallel(u->slot_mem, u->slot_len) : -ENOMEM;
		if (rc == -ENOMEM) {
			ur_close(u);
			return st_errf(err, -ENOMEM, "cannot allocate %u streaming buffers of %s",
				       p->n_slots, format_size(p->slot_bytes, b, sizeof b));
		}
	}
	struct iovec iov = { u->slot_mem, u->slot_len };
	struct uring_reader_config rcfg = {
		.fd = f->dfd >= 0 ? f->dfd : f->fd,
		.align = f->dfd >= 0 ? f->block : 1,
		.queue_depth = f->queue_depth,
		.chunk_bytes = f->chunk_bytes,
		.bufs = u->slot_mem ? &iov : NULL,
		.n_bufs = u->slot_mem ? 1 : 0,
	};
	rc = uring_reader_open(&rcfg, &u->reader, err);
	if (rc < 0) {
		ur_close(u);
		return 1; /* io_uring cannot work here: the caller falls back to the mapping */
	}
	*state = u;
	return 0;
}

static char *ur_slot_buf(const struct uring_src *u, uint32_t s)
{
	return u->slot_mem + (uint64_t)s * u->f->plan->slot_bytes;
}

/* The unit's extents as segments reading into base. */
static void ur_unit_segs(const struct plan *p, uint32_t unit, char *base, struct uring_seg *segs)
{
	const struct plan_unit *pu = &p->units[unit];
	for (uint32_t i = 0; i < pu->n_ext; i++) {
		const struct plan_extent *e = &p->ext[pu->first_ext + i];
		segs[i] = (struct uring_seg){ e->file_off, e->len, e->need, base + e->buf_off };
	}
}

static void ur_slot_start(void *state, uint32_t s, uint32_t unit, bool prefetched)
{
	struct uring_src *u = state;
	const struct plan *p = u->f->plan;
	struct uring_seg *segs = u->segs + (size_t)s * (p->max_ext ? p->max_ext : 1);
	ur_unit_segs(p, unit, ur_slot_buf(u, s), segs);
	u->reqs[s] = (struct uring_req){ .segs = segs, .n_segs = p->units[unit].n_ext };
	uring_reader_submit(u->reader, &u->reqs[s], !prefetched);
}

static void ur_slot_collect(void *state, uint32_t s, uint32_t unit, struct w_read *r)
{
	struct uring_src *u = state;
	const struct w_file *f = u->f;
	r->waited = !uring_reader_done(u->reader, &u->reqs[s]);
	r->rc = uring_reader_wait(u->reader, &u->reqs[s]);
	r->bad_off = u->reqs[s].err_off;
	r->bad_end = u->reqs[s].err_end;
	if (r->rc == 0 && f->dfd < 0) {
		/* buffered fallback: the page cache keeps no copy beyond the budget */
		const struct plan_unit *pu = &f->plan->units[unit];
		for (uint32_t i = 0; i < pu->n_ext; i++)
			posix_fadvise(f->fd, (off_t)f->plan->ext[pu->first_ext + i].file_off,
				      (off_t)f->plan->ext[pu->first_ext + i].len, POSIX_FADV_DONTNEED);
	}
}

static void ur_slot_clear(void *state, uint32_t s, uint32_t unit, bool reading)
{
	struct uring_src *u = state;
	(void)unit;
	if (reading)
		uring_reader_cancel(u->reader, &u->reqs[s]);
}

static const void *ur_slot_ptr(const void *state, uint32_t s, const struct plan_extent *e,
			       uint64_t off)
{
	const struct uring_src *u = state;
	return ur_slot_buf(u, s) + e->buf_off + (off - e->file_off);
}

static int ur_check(void *state, uint32_t unit, struct st_err *err)
{
	(void)state, (void)unit, (void)err;
	return 0; /* the slots are copies: nothing is lost while in use */
}

static void ur_stats(const void *state, struct w_io_stats *out)
{
	const struct uring_src *u = state;
	struct uring_reader_stats rs;
	uring_reader_get_stats(u->reader, &rs);
	out->direct = u->f->dfd >= 0;
	out->registered = uring_reader_registered(u->reader);
	out->bytes_read = rs.bytes;
	out->read_ns = rs.busy_ns;
}

static void ur_describe(const void *state, char *buf, size_t cap)
{
	const struct uring_src *u = state;
	char b[32];
	snprintf(buf, cap, "io: io_uring, %s, %s buffers, queue depth %u, %s reads",
		 u->f->dfd >= 0 ? "O_DIRECT" : "buffered (no O_DIRECT here)",
		 uring_reader_registered(u->reader) ? "registered" : "unregistered",
		 u->f->queue_depth, format_size(u->f->chunk_bytes, b, sizeof b));
}

static void ur_memory(const void *state, void **p, uint64_t *len)
{
	const struct uring_src *u = state;
	*p = u->slot_mem;
	*len = u->slot_len;
}

const struct w_source_ops w_source_uring = {
	.open = ur_open,
	.close = ur_close,
	.slot_start = ur_slot_start,
	.slot_collect = ur_slot_collect,
	.slot_clear = ur_slot_clear,
	.slot_ptr = ur_slot_ptr,
	.check = ur_check,
	.stats = ur_stats,
	.describe = ur_describe,
	.memory = ur_memory,
	.clear_on_release = false,
	.copies = true,
};
