/* source_mmap.c: the mapping backend (see source.h): streamed units are read in place, in a
 * read-only shared mapping of the file. A read-ahead thread asks the kernel for the units
 * due next (MADV_WILLNEED), an acquire pages its unit in (MADV_POPULATE_READ, which reports
 * errors instead of raising SIGBUS), and a release drops the pages again (RSS and page
 * cache), so memory stays within the plan. A fault while a unit is in use is survived
 * (sigbus.h) and reported by check. Not the ring's policy (weights.c). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "weights/sigbus.h"
#include "weights/source.h"

/* Read-ahead is madvise(WILLNEED) in pieces this big: the kernel reads at most the device's
 * readahead window per call (often 128 KiB), silently ignoring the rest. */
#define W_WILLNEED_PIECE (128u << 10)

struct mmap_src {
	const struct w_file *f;
	const char *map;	/* the file, map_len bytes */
	uint64_t map_len;
	int bus;		/* our sigbus entry, or -1 */
	/* the read-ahead thread: issues WILLNEED for slots' units so the engine thread does
	 * not spend its time allocating page cache. Guarded by adv_mu. */
	pthread_t adv_thread;
	bool adv_started, adv_stop, adv_cancel;
	pthread_mutex_t adv_mu;
	pthread_cond_t adv_cv;	/* work arrived / a slot's advice ended */
	int32_t *adv_unit;	/* (n_slots) unit to read ahead into slot s, or -1 */
	uint64_t *adv_seq;	/* (n_slots) order of the requests */
	uint64_t adv_next_seq;
	int32_t adv_cur;	/* slot being advised, or -1 */
	/* counters: bytes paged in at acquire, and the time it took */
	uint64_t bytes, ns;
};

/* The mapped part of [off, off + len), clamped to the mapping. */
static bool mm_span(const struct mmap_src *m, uint64_t off, uint64_t len, char **p, size_t *n)
{
	if (off >= m->map_len || len == 0)
		return false;
	if (len > m->map_len - off)
		len = m->map_len - off;
	*p = (char *)m->map + off;
	*n = len;
	return true;
}

/* ---- read-ahead ---- */

static void mm_willneed(const struct mmap_src *m, uint32_t unit, const bool *cancel,
			pthread_mutex_t *mu)
{
	const struct plan *p = m->f->plan;
	const struct plan_unit *pu = &p->units[unit];
	for (uint32_t i = 0; i < pu->n_ext; i++) {
		char *a;
		size_t n;
		if (!mm_span(m, p->ext[pu->first_ext + i].file_off, p->ext[pu->first_ext + i].len,
			     &a, &n))
			continue;
		for (size_t k = 0; k < n; k += W_WILLNEED_PIECE) {
			madvise(a + k, n - k < W_WILLNEED_PIECE ? n - k : W_WILLNEED_PIECE,
				MADV_WILLNEED);
			if (cancel) {
				pthread_mutex_lock(mu);
				bool stop = *cancel;
				pthread_mutex_unlock(mu);
				if (stop)
					return;
			}
		}
	}
}

static void *mm_adv_thread(void *arg)
{
	struct mmap_src *m = arg;
	uint32_t n_slots = m->f->plan->n_slots;
	pthread_mutex_lock(&m->adv_mu);
	while (!m->adv_stop) {
		int32_t s = -1;
		for (uint32_t i = 0; i < n_slots; i++)
			if (m->adv_unit[i] >= 0 && (s < 0 || m->adv_seq[i] < m->adv_seq[s]))
				s = (int32_t)i;
		if (s < 0) {
			pthread_cond_wait(&m->adv_cv, &m->adv_mu);
			continue;
		}
		uint32_t u = (uint32_t)m->adv_unit[s];
		m->adv_unit[s] = -1;
		m->adv_cur = s;
		m->adv_cancel = false;
		pthread_mutex_unlock(&m->adv_mu);
		mm_willneed(m, u, &m->adv_cancel, &m->adv_mu);
		pthread_mutex_lock(&m->adv_mu);
		m->adv_cur = -1;
		pthread_cond_broadcast(&m->adv_cv);
	}
	pthread_mutex_unlock(&m->adv_mu);
	return NULL;
}

/* Forget slot s's read-ahead; returns once the thread no longer works on it. */
static void mm_adv_forget(struct mmap_src *m, uint32_t s)
{
	pthread_mutex_lock(&m->adv_mu);
	m->adv_unit[s] = -1;
	if (m->adv_cur == (int32_t)s)
		m->adv_cancel = true;
	while (m->adv_cur == (int32_t)s)
		pthread_cond_wait(&m->adv_cv, &m->adv_mu);
	pthread_mutex_unlock(&m->adv_mu);
}

static int mm_adv_start(struct mmap_src *m, struct st_err *err)
{
	uint32_t n_slots = m->f->plan->n_slots;
	m->adv_cur = -1;
	if (n_slots == 0)
		return 0;
	m->adv_unit = malloc(n_slots * sizeof *m->adv_unit);
	m->adv_seq = calloc(n_slots, sizeof *m->adv_seq);
	if (!m->adv_unit || !m->adv_seq)
		return st_errf(err, -ENOMEM, "out of memory");
	for (uint32_t s = 0; s < n_slots; s++)
		m->adv_unit[s] = -1;
	pthread_mutex_init(&m->adv_mu, NULL);
	pthread_cond_init(&m->adv_cv, NULL);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&m->adv_thread, NULL, mm_adv_thread, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&m->adv_cv);
		pthread_mutex_destroy(&m->adv_mu);
		return st_errf(err, -rc, "cannot start the read-ahead thread: %s", strerror(rc));
	}
	pthread_setname_np(m->adv_thread, "strata-ra");
	m->adv_started = true;
	return 0;
}

static void mm_adv_stop(struct mmap_src *m)
{
	if (m->adv_started) {
		pthread_mutex_lock(&m->adv_mu);
		m->adv_stop = true;
		m->adv_cancel = true;
		pthread_cond_broadcast(&m->adv_cv);
		pthread_mutex_unlock(&m->adv_mu);
		pthread_join(m->adv_thread, NULL);
		pthread_cond_destroy(&m->adv_cv);
		pthread_mutex_destroy(&m->adv_mu);
		m->adv_started = false;
	}
	free(m->adv_unit);
	free(m->adv_seq);
	m->adv_unit = NULL;
	m->adv_seq = NULL;
}

/* ---- open, close ---- */

static void mm_close(void *state)
{
	struct mmap_src *m = state;
	if (!m)
		return;
	mm_adv_stop(m);
	sigbus_unregister(m->bus);
	if (m->map)
		munmap((void *)m->map, m->map_len);
	free(m);
}

static int mm_open(const struct w_file *f, void **state, struct st_err *err)
{
	*state = NULL;
	struct mmap_src *m = calloc(1, sizeof *m);
	if (!m)
		return st_errf(err, -ENOMEM, "out of memory");
	m->f = f;
	m->bus = -1;
	m->map_len = (f->file_size + f->page - 1) / f->page * f->page;
	if (m->map_len > 0) {
		void *p = mmap(NULL, m->map_len, PROT_READ, MAP_SHARED, f->fd, 0);
		if (p == MAP_FAILED) {
			int rc = -errno;
			m->map_len = 0;
			mm_close(m);
			return st_errf(err, rc, "cannot map %s: %s", f->path, strerror(-rc));
		}
		m->map = p;
		struct st_err why = { "" };
		m->bus = sigbus_register(m->map, m->map_len, &why);
		if (m->bus < 0) {
			m->bus = -1;
			log_warn("weights: %s: a read error while a unit is in use will end the "
				 "process (SIGBUS): %s", f->path, why.msg);
		}
	}
	int rc = mm_adv_start(m, err);
	if (rc < 0) {
		mm_close(m);
		return rc;
	}
	*state = m;
	return 0;
}

/* ---- slots ---- */

static void mm_slot_start(void *state, uint32_t s, uint32_t unit, bool prefetched)
{
	struct mmap_src *m = state;
	if (!prefetched)
		return; /* collect pages it in */
	pthread_mutex_lock(&m->adv_mu);
	m->adv_unit[s] = (int32_t)unit;
	m->adv_seq[s] = ++m->adv_next_seq;
	pthread_cond_broadcast(&m->adv_cv);
	pthread_mutex_unlock(&m->adv_mu);
}

/* Page in [off, off + len) and, on failure, find the first page that fails. */
static int mm_populate(struct mmap_src *m, uint64_t off, uint64_t len, uint64_t *bad_off)
{
	const struct w_file *f = m->f;
	char *p;
	size_t n;
	if (!mm_span(m, off, len, &p, &n))
		return 0;
	int e = 0;
	for (int tries = 0; tries < 100; tries++) {
		if (madvise(p, n, MADV_POPULATE_READ) == 0)
			return 0;
		e = errno;
		if (e != EINTR && e != EAGAIN)
			break;
	}
	if (e == EINVAL) {
		/* kernel older than 5.14: touch the pages instead (a truncated file then
		 * raises SIGBUS, as with any mmap reader) */
		struct stat st;
		if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size < off + n &&
		    (uint64_t)st.st_size < f->file_size) {
			*bad_off = (uint64_t)st.st_size;
			return -ENODATA;
		}
		volatile const char *v = p;
		for (size_t i = 0; i < n; i += f->page)
			(void)v[i];
		return 0;
	}
	/* EFAULT / EIO / EHWPOISON: find the first bad page for the message */
	*bad_off = off;
	for (size_t i = 0; i < n; i += f->page) {
		size_t k = n - i < f->page ? n - i : f->page;
		if (madvise(p + i, k, MADV_POPULATE_READ) != 0) {
			*bad_off = off + i;
			break;
		}
	}
	struct stat st;
	if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size <= *bad_off) {
		/* the page holding the new end of file still maps: the bytes stop at the end */
		if ((uint64_t)st.st_size > off)
			*bad_off = (uint64_t)st.st_size;
		return -ENODATA;
	}
	return e == EFAULT ? -EIO : -e;
}

static void mm_slot_collect(void *state, uint32_t s, uint32_t unit, struct w_read *r)
{
	struct mmap_src *m = state;
	const struct plan *p = m->f->plan;
	const struct plan_unit *pu = &p->units[unit];
	uint64_t t0 = clock_now_ns();
	/* take over from the read-ahead thread, ask for all of it (cheap for pages already
	 * cached), then wait for the pages and map them */
	mm_adv_forget(m, s);
	mm_willneed(m, unit, NULL, NULL);
	r->rc = 0;
	r->bad_off = 0;
	for (uint32_t i = 0; i < pu->n_ext && r->rc == 0; i++)
		r->rc = mm_populate(m, p->ext[pu->first_ext + i].file_off,
				    p->ext[pu->first_ext + i].need, &r->bad_off);
	r->bad_end = r->bad_off / m->f->page * m->f->page + m->f->page;
	r->waited = true; /* paging in is synchronous: every streamed acquire waits */
	m->ns += clock_now_ns() - t0;
	if (r->rc == 0)
		for (uint32_t i = 0; i < pu->n_ext; i++)
			m->bytes += plan_ext_file_bytes(&p->ext[pu->first_ext + i], m->f->file_size);
}

/* Drop the unit's pages: unmap them (RSS) and evict them (page cache), except blocks
 * shared with another unit. */
static void mm_slot_clear(void *state, uint32_t s, uint32_t unit, bool reading)
{
	struct mmap_src *m = state;
	const struct plan *p = m->f->plan;
	const struct plan_unit *pu = &p->units[unit];
	(void)reading;
	mm_adv_forget(m, s);
	for (uint32_t i = 0; i < pu->n_ext; i++) {
		const struct plan_extent *e = &p->ext[pu->first_ext + i];
		char *a;
		size_t n;
		if (mm_span(m, e->drop_off, e->drop_len, &a, &n)) {
			madvise(a, n, MADV_DONTNEED);
			posix_fadvise(m->f->fd, (off_t)e->drop_off, (off_t)n, POSIX_FADV_DONTNEED);
		}
	}
}

static const void *mm_slot_ptr(const void *state, uint32_t s, const struct plan_extent *e,
			       uint64_t off)
{
	const struct mmap_src *m = state;
	(void)s, (void)e;
	return m->map + off;
}

/* A fault survived since the last call: fail with a message naming the file, unit and byte,
 * and map the file afresh over the zero pages. Only while nothing touches the mapping
 * (between passes of the layer loop). */
static int mm_check(void *state, uint32_t unit, struct st_err *err)
{
	struct mmap_src *m = state;
	const struct w_file *f = m->f;
	uint64_t off;
	if (sigbus_faults(m->bus, &off) == 0)
		return 0;
	for (uint32_t u = 0; u < f->plan->n_units; u++)
		if (plan_find_ext(f->plan, u, off))
			unit = u;
	if (mmap((void *)m->map, m->map_len, PROT_READ, MAP_SHARED | MAP_FIXED, f->fd, 0) ==
	    MAP_FAILED) {
		int e = errno; /* the zero pages stay, and so does the fault: every acquire fails */
		return st_errf(err, -EIO, "weights: %s: cannot map the file again after a read "
			       "error at byte %" PRIu64 ": %s", f->path, off, strerror(e));
	}
	sigbus_clear(m->bus);
	struct stat st;
	uint64_t now = fstat(f->fd, &st) == 0 ? (uint64_t)st.st_size : f->file_size;
	if (now <= off)
		return st_errf(err, -EIO, "weights: unit %u of %s: byte %" PRIu64 " vanished while "
			       "in use (the file has %" PRIu64 " bytes now, %" PRIu64 " at open: "
			       "truncated or replaced?)", unit, f->path, off, now, f->file_size);
	return st_errf(err, -EIO, "weights: unit %u of %s: the page at byte %" PRIu64 " could "
		       "not be read back while in use (Input/output error)", unit, f->path, off);
}

static void mm_stats(const void *state, struct w_io_stats *out)
{
	const struct mmap_src *m = state;
	out->direct = false;
	out->registered = false;
	out->bytes_read = m->bytes;
	out->read_ns = m->ns;
}

static void mm_describe(const void *state, char *buf, size_t cap)
{
	(void)state;
	snprintf(buf, cap, "io: mmap, madvise read-ahead, pages dropped after use");
}

const struct w_source_ops w_source_mmap = {
	.open = mm_open,
	.close = mm_close,
	.slot_start = mm_slot_start,
	.slot_collect = mm_slot_collect,
	.slot_clear = mm_slot_clear,
	.slot_ptr = mm_slot_ptr,
	.check = mm_check,
	.stats = mm_stats,
	.describe = mm_describe,
	.clear_on_release = true,
	.copies = false,
};
