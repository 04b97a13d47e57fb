/* resident_load.c: reading the plan's resident units into memory at open (and again after
 * the file changed), for both io modes: in pieces, in file order, through an io_uring
 * reader of its own when io_uring works here, else with pread; the memory of each piece
 * populated just before it is read into. */
#include "config.h"

#include "weights/resident_load.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "weights/anon.h"
#include "weights/uring_reader.h"

/* The resident load reads in pieces of at most this: fine enough for progress, large enough
 * that the reader keeps the queue full (it cuts chunks across requests). */
#define W_PIECE_MAX (32u << 20)
#define W_PROGRESS_NS (250ull * 1000 * 1000)

/* A piece of a resident unit's extent: file bytes [file_off, file_off + len) into buf. */
struct w_piece {
	uint64_t file_off, len, need;
	char *buf;
	uint32_t unit;
};

static int w_piece_cmp(const void *a, const void *b)
{
	const struct w_piece *x = a, *y = b;
	return x->file_off < y->file_off ? -1 : x->file_off > y->file_off;
}

struct w_progress {
	void (*fn)(void *user, uint64_t done, uint64_t total);
	void *user;
	uint64_t done, total, last_done, last_ns;
};

/* Count bytes done; tell fn when 1% more is done or 250 ms went by since it was last told. */
static void w_progress_add(struct w_progress *pg, uint64_t bytes)
{
	pg->done += bytes;
	if (!pg->fn)
		return;
	uint64_t now = clock_now_ns();
	if ((pg->done - pg->last_done) * 100 >= pg->total ||
	    now - pg->last_ns >= W_PROGRESS_NS) {
		pg->fn(pg->user, pg->done, pg->total);
		pg->last_done = pg->done;
		pg->last_ns = now;
	}
}

static int w_piece_error(const struct w_file *f, const struct w_piece *pc, int rc, uint64_t at,
			 struct st_err *err)
{
	if (rc == -ENODATA)
		return st_errf(err, rc, "reading resident unit %u of %s: the file ends early at "
			       "byte %" PRIu64, pc->unit, f->path, at);
	return st_errf(err, rc, "reading resident unit %u of %s at byte %" PRIu64 ": %s", pc->unit,
		       f->path, at, strerror(-rc));
}

/* Populate a piece's memory; false (error set) when there is none to be had. */
static bool w_piece_populate(const struct w_piece *pc, bool populate, int *rc, struct st_err *err)
{
	int r = populate ? w_populate_parallel(pc->buf, pc->len) : 0;
	if (r < 0) {
		char b[32];
		*rc = st_errf(err, r, "cannot allocate %s for resident unit %u: %s",
			      format_size(pc->len, b, sizeof b), pc->unit, strerror(-r));
		return false;
	}
	return true;
}

/* pread, for where io_uring cannot be used: the buffered descriptor, `need` bytes. */
static int w_pieces_pread(const struct w_file *f, const struct w_piece *pcs, size_t n,
			  bool populate, struct w_progress *pg, struct st_err *err)
{
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct w_piece *pc = &pcs[i];
		if (!w_piece_populate(pc, populate, &rc, err))
			break;
		for (uint64_t done = 0; done < pc->need;) {
			ssize_t got = pread(f->fd, pc->buf + done, pc->need - done,
					    (off_t)(pc->file_off + done));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				rc = w_piece_error(f, pc, got < 0 ? -errno : -ENODATA,
						   pc->file_off + done, err);
				break;
			}
			done += (uint64_t)got;
		}
		posix_fadvise(f->fd, (off_t)pc->file_off, (off_t)pc->len, POSIX_FADV_DONTNEED);
		if (rc == 0) /* counted as a read of the whole piece would be */
			w_progress_add(pg, pc->file_off + pc->len > f->file_size
						   ? f->file_size - pc->file_off : pc->len);
	}
	return rc;
}

static int w_pieces_uring(const struct w_file *f, struct uring_reader *r,
			  const struct w_piece *pcs, size_t n, bool populate,
			  struct w_progress *pg, struct st_err *err)
{
	struct uring_seg *segs = calloc(n ? n : 1, sizeof *segs);
	struct uring_req *reqs = calloc(n ? n : 1, sizeof *reqs);
	int rc = 0;
	if (!segs || !reqs) {
		free(segs);
		free(reqs);
		return st_errf(err, -ENOMEM, "out of memory");
	}
	size_t sent = 0, seen = 0;
	/* Populating runs on this thread while the reader's thread keeps the disk busy with
	 * the pieces already submitted. */
	while (seen < n && rc == 0) {
		if (sent < n) {
			if (!w_piece_populate(&pcs[sent], populate, &rc, err))
				break;
			segs[sent] = (struct uring_seg){ pcs[sent].file_off, pcs[sent].len,
							 pcs[sent].need, pcs[sent].buf };
			reqs[sent] = (struct uring_req){ .segs = &segs[sent], .n_segs = 1 };
			uring_reader_submit(r, &reqs[sent], false);
			sent++;
		}
		/* collect in order what is done; block only once everything is submitted */
		while (seen < sent && rc == 0 &&
		       (sent == n || uring_reader_done(r, &reqs[seen]))) {
			int res = uring_reader_wait(r, &reqs[seen]);
			if (res < 0) {
				rc = w_piece_error(f, &pcs[seen], res, reqs[seen].err_off, err);
				break;
			}
			if (f->dfd < 0)
				posix_fadvise(f->fd, (off_t)pcs[seen].file_off, (off_t)pcs[seen].len,
					      POSIX_FADV_DONTNEED);
			w_progress_add(pg, reqs[seen].bytes);
			seen++;
		}
	}
	/* on an error, pieces may still be in flight: cancel them before their memory goes */
	for (size_t i = seen; i < sent; i++)
		uring_reader_cancel(r, &reqs[i]);
	free(segs);
	free(reqs);
	return rc;
}

int w_resident_read(const struct w_file *f, char *const *res_buf, bool populate,
		    void (*progress)(void *user, uint64_t done, uint64_t total), void *user,
		    uint64_t *bytes, uint64_t *ns, struct st_err *err)
{
	const struct plan *p = f->plan;
	uint64_t piece_max = (W_PIECE_MAX + f->block - 1) / f->block * f->block;
	struct w_progress pg = { .fn = progress, .user = user, .last_ns = clock_now_ns() };
	uint64_t t0 = pg.last_ns;
	size_t n = 0;
	for (uint32_t u = 0; u < p->n_units; u++) {
		if (!p->units[u].resident || !res_buf[u])
			continue;
		for (uint32_t i = 0; i < p->units[u].n_ext; i++) {
			const struct plan_extent *e = &p->ext[p->units[u].first_ext + i];
			n += (size_t)((e->len + piece_max - 1) / piece_max);
			pg.total += plan_ext_file_bytes(e, f->file_size);
		}
	}
	struct w_piece *pcs = calloc(n ? n : 1, sizeof *pcs);
	if (!pcs)
		return st_errf(err, -ENOMEM, "out of memory");
	size_t k = 0;
	for (uint32_t u = 0; u < p->n_units; u++) {
		if (!p->units[u].resident || !res_buf[u])
			continue;
		for (uint32_t i = 0; i < p->units[u].n_ext; i++) {
			const struct plan_extent *e = &p->ext[p->units[u].first_ext + i];
			for (uint64_t at = 0; at < e->len; at += piece_max) {
				uint64_t len = e->len - at < piece_max ? e->len - at : piece_max;
				uint64_t need = e->need > at ? e->need - at : 0;
				pcs[k++] = (struct w_piece){ e->file_off + at, len,
							     need < len ? need : len,
							     res_buf[u] + e->buf_off + at, u };
			}
		}
	}
	/* in file order: one sweep of the disk however the units are laid out */
	qsort(pcs, n, sizeof *pcs, w_piece_cmp);
	if (pg.fn)
		pg.fn(pg.user, 0, pg.total);

	int rc = 0;
	if (n > 0) {
		struct uring_reader_config rcfg = {
			.fd = f->dfd >= 0 ? f->dfd : f->fd,
			.align = f->dfd >= 0 ? f->block : 1,
			.queue_depth = f->queue_depth,
			.chunk_bytes = f->chunk_bytes,
		};
		struct uring_reader *r = NULL;
		struct st_err why = { "" };
		if (uring_reader_open(&rcfg, &r, &why) == 0) {
			rc = w_pieces_uring(f, r, pcs, n, populate, &pg, err);
			uring_reader_close(r);
		} else {
			log_debug("weights: reading the resident units with pread: %s", why.msg);
			rc = w_pieces_pread(f, pcs, n, populate, &pg, err);
		}
	}
	free(pcs);
	*bytes += pg.done;
	*ns += clock_now_ns() - t0;
	if (rc == 0 && pg.fn && pg.last_done != pg.done)
		pg.fn(pg.user, pg.done, pg.total);
	return rc;
}
