/* weights.c: see weights.h. The file (checked, reopened O_DIRECT by descriptor, watched for
 * changes), the resident set, and the ring of slots that streamed units pass through: which
 * unit goes into which slot and when. How bytes get into a slot is a backend's business
 * (source.h); what the plan is, plan.c's. Byte ranges only: no GGUF, no tensors. */
#include "config.h"

#include "weights/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/parse.h"
#include "weights/plan.h"
#include "weights/anon.h"
#include "weights/resident_load.h"
#include "weights/source.h"

/* A place in the ring: a streaming buffer (URING) or a window place (MMAP: the pages live
 * in the mapping). */
struct w_slot {
	int32_t unit;	 /* unit being read into it / held in it, -1 = empty */
	uint32_t holds;	 /* acquires not yet released */
	bool reading;	 /* a read was started and its result not yet collected */
	bool prefetched; /* the read was started ahead of the acquire that uses it */
};

struct weights {
	struct w_file f; /* what the backends see; f.plan = &plan */
	char *path;	 /* our copy of cfg->path */
	struct plan plan;
	enum weights_io io;
	const struct w_source_ops *ops;
	void *src;	 /* the backend's state */
	bool locked, want_lock;
	uint64_t budget;

	char *res_mem;	      /* resident copies, anonymous mapping of res_len bytes */
	uint64_t res_len;
	char **res_buf;	      /* (n_units) a resident unit's copy inside res_mem, else NULL */
	int32_t *unit_slot;   /* (n_units) the slot holding (or reading) a streamed unit, or -1 */
	struct w_slot *slots; /* (plan.n_slots) */
	uint32_t cursor;      /* stream position expected next (where read-ahead starts) */

	/* what the file was at open (or at the last weights_revalidate that passed) */
	struct stat id;
	uint64_t header_bytes, header_hash;

	/* counters (the backends keep their own; these are the caller's side) */
	uint64_t stall_ns, n_acquires, n_stalls, n_misses, n_read_errors;
	uint64_t res_bytes, res_ns, load_ns; /* resident reads: all, all, at open */
};

static void w_lock(struct weights *w, void *p, uint64_t len, const char *what)
{
	if (!w->want_lock || !p || len == 0)
		return;
	if (mlock(p, len) != 0) {
		char b[32];
		int e = errno;
		w->locked = false;
		log_warn("weights: cannot lock %s of %s in memory (%s); continuing unlocked "
			 "(raise LimitMEMLOCK= / ulimit -l, or run with CAP_IPC_LOCK)",
			 format_size(len, b, sizeof b), what, strerror(e));
	}
}

/* ---- the file ---- */

/* Hash of the file's first n bytes (FNV-1a), read through the buffered descriptor. */
static int w_hash_head(const struct weights *w, uint64_t n, uint64_t *out)
{
	static const size_t piece = 1u << 20;
	char *buf = malloc(piece);
	uint64_t h = HASH_FNV1A64_INIT;
	int rc = 0;
	if (!buf)
		return -ENOMEM;
	for (uint64_t at = 0; at < n;) {
		size_t want = n - at < piece ? (size_t)(n - at) : piece;
		ssize_t got = pread(w->f.fd, buf, want, (off_t)at);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			rc = got < 0 ? -errno : -ENODATA;
			break;
		}
		h = hash_fnv1a64(h, buf, (size_t)got);
		at += (uint64_t)got;
	}
	free(buf);
	*out = h;
	return rc;
}

/* The same inode again with O_DIRECT, through /proc/self/fd (never the path, which may
 * name another file by now); probed with a real read, since some filesystems accept the
 * flag and fail the read. -1 and the reason in why when it cannot be had. */
static int w_open_direct(const struct weights *w, char *why, size_t cap)
{
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", w->f.fd);
	int fd = open(proc, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == EINVAL || e == EOPNOTSUPP)
			snprintf(why, cap, "%s", strerror(e));
		else
			snprintf(why, cap, "cannot reopen it through %s: %s", proc, strerror(e));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_dev != w->id.st_dev || st.st_ino != w->id.st_ino) {
		snprintf(why, cap, "%s is not the same file (no /proc here?)", proc);
		close(fd);
		return -1;
	}
	if (w->f.file_size > 0) {
		void *probe = w_map_anon(w->f.block, false);
		ssize_t got = probe ? pread(fd, probe, w->f.block, 0) : -1;
		int e = got < 0 ? (probe ? errno : ENOMEM) : 0;
		if (probe)
			munmap(probe, w->f.block);
		if (e != 0) {
			snprintf(why, cap, "%s", strerror(e));
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* Check the caller's descriptor and learn the file: size, block, identity. */
static int w_check_file(struct weights *w, const struct weights_config *cfg,
			uint32_t *dio_align, struct st_err *err)
{
	int fl = fcntl(cfg->fd, F_GETFL);
	if (fl < 0)
		return st_errf(err, -errno, "weights: %s: bad descriptor %d: %s", w->path, cfg->fd,
			       strerror(errno));
	if ((fl & O_ACCMODE) == O_WRONLY)
		return st_errf(err, -EINVAL, "weights: %s: descriptor %d is not open for reading",
			       w->path, cfg->fd);
	if (fl & O_NONBLOCK) /* io_uring would answer -EAGAIN instead of waiting */
		return st_errf(err, -EINVAL, "weights: %s: descriptor %d has O_NONBLOCK set",
			       w->path, cfg->fd);
	struct statx stx;
	if (statx(cfg->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_DIOALIGN, &stx) != 0 ||
	    fstat(cfg->fd, &w->id) != 0) {
		int rc = -errno;
		return st_errf(err, rc, "cannot stat %s: %s", w->path, strerror(-rc));
	}
	if (!S_ISREG(stx.stx_mode))
		return st_errf(err, -EINVAL, "%s is not a regular file", w->path);
	long page = sysconf(_SC_PAGESIZE);
	w->f.page = page >= 4096 ? (uint32_t)page : 4096;
	/* never below a page: madvise in MMAP works in pages, and sub-page alignment saves
	 * at most a few KiB per extent */
	w->f.block = w->f.page;
	w->f.file_size = stx.stx_size;
	*dio_align = UINT32_MAX; /* unknown: try */
	if (stx.stx_mask & STATX_DIOALIGN) {
		*dio_align = stx.stx_dio_offset_align; /* 0: the filesystem says no O_DIRECT */
		if (stx.stx_dio_offset_align > w->f.block)
			w->f.block = stx.stx_dio_offset_align;
	}
	return 0;
}

static bool w_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* ---- the ring: start, collect, drop ---- */

static void w_slot_start(struct weights *w, uint32_t s, uint32_t unit, bool prefetched)
{
	struct w_slot *sl = &w->slots[s];
	sl->unit = (int32_t)unit;
	sl->reading = true;
	sl->prefetched = prefetched;
	w->unit_slot[unit] = (int32_t)s;
	w->ops->slot_start(w->src, s, unit, prefetched);
}

/* Empty slot s (its unit is no longer in it). Blocks while the kernel writes into it. */
static void w_slot_clear(struct weights *w, uint32_t s)
{
	struct w_slot *sl = &w->slots[s];
	if (sl->unit < 0)
		return;
	w->ops->slot_clear(w->src, s, (uint32_t)sl->unit, sl->reading);
	w->unit_slot[sl->unit] = -1;
	sl->unit = -1;
	sl->reading = false;
	sl->holds = 0;
}

/* Wait for slot s's read and take its result. */
static void w_slot_collect(struct weights *w, uint32_t s, struct w_read *r)
{
	struct w_slot *sl = &w->slots[s];
	*r = (struct w_read){ 0 };
	if (!sl->reading)
		return;
	uint64_t t0 = clock_now_ns();
	w->ops->slot_collect(w->src, s, (uint32_t)sl->unit, r);
	w->n_stalls += r->waited;
	w->stall_ns += clock_now_ns() - t0;
	sl->reading = false;
}

/* ---- the window: which streamed units should be in slots now ---- */

static uint32_t w_dist(const struct weights *w, uint32_t from_pos, uint32_t unit)
{
	uint32_t p = (uint32_t)w->plan.units[unit].stream_pos;
	return (p + w->plan.n_stream - from_pos) % w->plan.n_stream;
}

/* An unheld slot to reuse for the unit `need_dist` ahead of from_pos: an empty one, else the
 * one whose unit is needed last (and later than need_dist); -1 when none. */
static int w_victim(const struct weights *w, uint32_t from_pos, uint32_t need_dist)
{
	int best = -1;
	uint32_t best_d = 0;
	for (uint32_t s = 0; s < w->plan.n_slots; s++) {
		const struct w_slot *sl = &w->slots[s];
		if (sl->holds > 0)
			continue;
		if (sl->unit < 0)
			return (int)s;
		uint32_t d = w_dist(w, from_pos, (uint32_t)sl->unit);
		if (d > need_dist && (best < 0 || d > best_d)) {
			best = (int)s;
			best_d = d;
		}
	}
	return best;
}

/* Start reads so that every slot not held holds one of the next streamed units from the
 * cursor, in order: the read-ahead. */
static void w_fill(struct weights *w)
{
	uint32_t held = 0, n_stream = w->plan.n_stream;
	for (uint32_t s = 0; s < w->plan.n_slots; s++)
		held += w->slots[s].holds > 0;
	uint32_t want = w->plan.n_slots - held;
	for (uint32_t j = 0; j < n_stream && want > 0; j++) {
		uint32_t u = w->plan.stream[(w->cursor + j) % n_stream];
		int32_t s = w->unit_slot[u];
		if (s >= 0) {
			if (w->slots[s].holds == 0)
				want--;
			continue;
		}
		int v = w_victim(w, w->cursor, j);
		if (v < 0)
			break;
		w_slot_clear(w, (uint32_t)v);
		w_slot_start(w, (uint32_t)v, u, true);
		want--;
	}
}

/* ---- open ---- */

/* The resident copies: one anonymous mapping, populated piece by piece as it is read. No
 * huge pages: on these VMs populating 2 MiB pages of memory the host has not backed yet ran
 * at 0.3-0.7 GB/s against 0.9-2.4 GB/s for 4 KiB pages (start-up on 2.8 GiB: 8.1-18 s
 * against 1.3-5.4 s), and decoding from either ran at the same speed (bench/README.md). */
static int w_alloc_resident(struct weights *w, struct st_err *err)
{
	w->res_buf = calloc(w->plan.n_units ? w->plan.n_units : 1, sizeof *w->res_buf);
	if (!w->res_buf)
		return st_errf(err, -ENOMEM, "out of memory");
	if (w->plan.bytes_resident == 0)
		return 0;
	char b[32];
	w->res_len = w->plan.bytes_resident;
	w->res_mem = w_map_anon(w->res_len, false);
	if (!w->res_mem)
		return st_errf(err, -ENOMEM, "cannot allocate %s for the resident weights",
			       format_size(w->res_len, b, sizeof b));
	uint64_t off = 0;
	for (uint32_t u = 0; u < w->plan.n_units; u++) {
		if (w->plan.units[u].resident) {
			w->res_buf[u] = w->res_mem + off;
			off += w->plan.units[u].bytes;
		}
	}
	return 0;
}

/* The backend for the asked mode; URING falls back to MMAP where io_uring cannot work
 * (kernel too old, io_uring_disabled, seccomp). Then the slots. */
static int w_start_io(struct weights *w, struct st_err *err)
{
	int rc;
	w->ops = w->io == WEIGHTS_IO_URING ? &w_source_uring : &w_source_mmap;
	struct st_err why = { "" };
	rc = w->ops->open(&w->f, &w->src, &why);
	if (rc == 1) {
		log_warn("weights: %s; falling back to --io mmap", why.msg);
		w->io = WEIGHTS_IO_MMAP;
		w->ops = &w_source_mmap;
		rc = w->ops->open(&w->f, &w->src, &why);
	}
	if (rc < 0)
		return st_errf(err, rc, "%s", why.msg);

	uint32_t n_slots = w->plan.n_slots;
	w->slots = calloc(n_slots ? n_slots : 1, sizeof *w->slots);
	w->unit_slot = calloc(w->plan.n_units ? w->plan.n_units : 1, sizeof *w->unit_slot);
	if (!w->slots || !w->unit_slot)
		return st_errf(err, -ENOMEM, "out of memory");
	for (uint32_t s = 0; s < n_slots; s++)
		w->slots[s].unit = -1;
	for (uint32_t u = 0; u < w->plan.n_units; u++)
		w->unit_slot[u] = -1;
	return 0;
}

int weights_open(const struct weights_config *cfg, const struct weights_unit *units,
		 uint32_t n_units, struct weights **out, struct st_err *err)
{
	int rc;
	*out = NULL;
	if (!cfg || cfg->fd < 0 || (n_units > 0 && !units) ||
	    (cfg->io != WEIGHTS_IO_URING && cfg->io != WEIGHTS_IO_MMAP))
		return st_errf(err, -EINVAL, "weights_open: no file, no units, or no such io mode");
	struct weights *w = calloc(1, sizeof *w);
	if (!w)
		return st_errf(err, -ENOMEM, "out of memory");
	w->f.fd = cfg->fd;
	w->f.dfd = -1;
	w->f.plan = &w->plan;
	w->path = strdup(cfg->path ? cfg->path : "the weights file");
	w->f.path = w->path;
	w->io = cfg->io;
	w->budget = cfg->budget;
	w->want_lock = cfg->mlock;
	w->locked = cfg->mlock;
	if (!w->path) {
		rc = st_errf(err, -ENOMEM, "out of memory");
		goto fail;
	}
	uint32_t dio_align = 0;
	rc = w_check_file(w, cfg, &dio_align, err);
	if (rc < 0)
		goto fail;
	w->f.queue_depth = cfg->queue_depth ? cfg->queue_depth : WEIGHTS_DEFAULT_QUEUE_DEPTH;
	uint64_t chunk = cfg->chunk_bytes ? cfg->chunk_bytes : WEIGHTS_DEFAULT_CHUNK_BYTES;
	w->f.chunk_bytes = (uint32_t)((chunk + w->f.block - 1) / w->f.block * w->f.block);

	w->header_bytes = cfg->header_bytes;
	if (w->header_bytes > w->f.file_size) {
		rc = st_errf(err, -EINVAL, "weights: %s: a header of %" PRIu64 " bytes is longer "
			     "than the file (%" PRIu64 " bytes)", w->path, w->header_bytes,
			     w->f.file_size);
		goto fail;
	}
	rc = w_hash_head(w, w->header_bytes, &w->header_hash);
	if (rc < 0) {
		st_errf(err, rc, "cannot read %s: %s", w->path, strerror(-rc));
		goto fail;
	}

	struct plan_input pin = {
		.units = units, .n_units = n_units, .file_size = w->f.file_size,
		.block = w->f.block, .budget = cfg->budget, .prefetch = cfg->prefetch,
		.name = w->path,
	};
	rc = plan_build(&pin, &w->plan, err);
	if (rc < 0)
		goto fail;

	/* O_DIRECT for the streaming reads, and for the resident load in either mode */
	if ((w->io == WEIGHTS_IO_URING || w->plan.bytes_resident > 0) && dio_align != 0) {
		char why[256];
		w->f.dfd = w_open_direct(w, why, sizeof why);
		if (w->f.dfd < 0 && w->io == WEIGHTS_IO_URING)
			log_warn("weights: %s does not take O_DIRECT (%s); reading through the page "
				 "cache and dropping each unit from it after use", w->path, why);
	} else if (w->io == WEIGHTS_IO_URING) {
		log_warn("weights: %s does not take O_DIRECT (the filesystem says so); reading "
			 "through the page cache and dropping each unit from it after use", w->path);
	}

	rc = w_alloc_resident(w, err);
	if (rc < 0)
		goto fail;
	rc = w_start_io(w, err);
	if (rc < 0)
		goto fail;
	rc = w_resident_read(&w->f, w->res_buf, true, cfg->progress, cfg->progress_user,
			     &w->res_bytes, &w->res_ns, err);
	if (rc < 0)
		goto fail;
	w->load_ns = w->res_ns;
	w_lock(w, w->res_mem, w->res_len, "resident weights");
	void *slot_mem = NULL;
	uint64_t slot_len = 0;
	if (w->ops->memory)
		w->ops->memory(w->src, &slot_mem, &slot_len);
	w_lock(w, slot_mem, slot_len, "streaming buffers");

	if (w->plan.n_stream > 0) {
		w->cursor = 0;
		w_fill(w);
	}
	/* the caller logs the plan (weights_plan_describe) with its own context */
	*out = w;
	return 0;
fail:
	weights_close(w);
	return rc;
}

/* ---- use ---- */

/* The backend's report of bytes lost while in use (MMAP), counted. */
static int w_check(struct weights *w, uint32_t unit, struct st_err *err)
{
	int rc = w->ops->check(w->src, unit, err);
	if (rc < 0)
		w->n_read_errors++;
	return rc;
}

int weights_acquire(struct weights *w, uint32_t unit, struct st_err *err)
{
	if (unit >= w->plan.n_units)
		return st_errf(err, -EINVAL, "weights: no unit %u (there are %u)", unit,
			       w->plan.n_units);
	/* a fault the caller did not weights_check: whatever used those zeros failed */
	int rc = w_check(w, unit, err);
	if (rc < 0)
		return rc;
	const struct plan_unit *pu = &w->plan.units[unit];
	if (pu->resident) {
		if (w->plan.n_stream > 0)
			w->cursor = pu->next_stream;
		w->n_acquires++;
		return 0;
	}
	int32_t s = w->unit_slot[unit];
	if (s >= 0 && w->slots[s].holds > 0) {
		w->slots[s].holds++;
		w->n_acquires++;
		return 0;
	}
	if (s < 0) {
		/* not read ahead: out-of-order use, or a read that failed before */
		int v = w_victim(w, (uint32_t)pu->stream_pos, 0);
		if (v < 0)
			return st_errf(err, -EBUSY, "weights: cannot acquire unit %u: all %u streaming "
				       "buffers are held; release a unit first", unit,
				       w->plan.n_slots);
		w->n_misses++;
		w_slot_clear(w, (uint32_t)v);
		w_slot_start(w, (uint32_t)v, unit, false);
		s = v;
	}
	struct w_slot *sl = &w->slots[s];
	sl->holds = 1;
	w->cursor = pu->next_stream;
	w_fill(w);

	struct w_read r;
	bool was_prefetch = sl->prefetched && sl->reading;
	w_slot_collect(w, (uint32_t)s, &r);
	if (r.rc < 0 && was_prefetch) {
		/* the failure may be stale (the file was being replaced when we read ahead):
		 * read once more before giving up */
		w_slot_start(w, (uint32_t)s, unit, false);
		w_slot_collect(w, (uint32_t)s, &r);
	}
	if (r.rc < 0) {
		w->n_read_errors++;
		sl->holds = 0;
		w_slot_clear(w, (uint32_t)s);
		if (r.rc == -ENODATA) {
			struct stat st;
			uint64_t now = fstat(w->f.fd, &st) == 0 ? (uint64_t)st.st_size : 0;
			return st_errf(err, -EIO, "weights: reading unit %u of %s: unexpected end of "
				       "file at byte %" PRIu64 " (the file has %" PRIu64 " bytes now, %"
				       PRIu64 " at open: truncated or replaced?)", unit, w->path,
				       r.bad_off, now, w->f.file_size);
		}
		return st_errf(err, r.rc, "weights: reading unit %u of %s, bytes %" PRIu64 "..%" PRIu64
			       ": %s", unit, w->path, r.bad_off, r.bad_end, strerror(-r.rc));
	}
	w->n_acquires++;
	return 0;
}

const void *weights_ptr(const struct weights *w, uint32_t unit, uint64_t file_offset)
{
	if (unit >= w->plan.n_units)
		return NULL;
	const struct plan_extent *e = plan_find_ext(&w->plan, unit, file_offset);
	if (!e)
		return NULL;
	if (w->plan.units[unit].resident)
		return w->res_buf[unit] + e->buf_off + (file_offset - e->file_off);
	int32_t s = w->unit_slot[unit];
	if (s < 0 || w->slots[s].holds == 0)
		return NULL;
	return w->ops->slot_ptr(w->src, (uint32_t)s, e, file_offset);
}

int weights_check(struct weights *w, uint32_t unit, struct st_err *err)
{
	return w_check(w, unit < w->plan.n_units ? unit : 0, err);
}

void weights_release(struct weights *w, uint32_t unit)
{
	if (unit >= w->plan.n_units || w->plan.units[unit].resident || w->unit_slot[unit] < 0)
		return;
	uint32_t s = (uint32_t)w->unit_slot[unit];
	struct w_slot *sl = &w->slots[s];
	if (sl->holds == 0 || --sl->holds > 0)
		return;
	/* URING keeps the bytes until the slot is reused; MMAP gives the pages back now, so
	 * RSS stays within the plan */
	if (w->ops->clear_on_release)
		w_slot_clear(w, s);
	w_fill(w);
}

/* ---- the file changed under us ---- */

int weights_revalidate(struct weights *w, struct st_err *err)
{
	struct stat st;
	char b[32];
	if (fstat(w->f.fd, &st) != 0) {
		int rc = -errno;
		return st_errf(err, rc, "weights: cannot stat %s: %s", w->path, strerror(-rc));
	}
	if (w_same_file(&st, &w->id))
		return 0;
	/* Changed. The header and metadata first: the caller's view of the file (tensor
	 * offsets, shapes, the vocabulary) comes from them. */
	uint64_t h = 0;
	int rc = (uint64_t)st.st_size >= w->header_bytes ? w_hash_head(w, w->header_bytes, &h)
							 : -ENODATA;
	if (rc == 0 && h != w->header_hash)
		return st_errf(err, -ESTALE, "weights: %s was replaced by a different file (its "
			       "header and metadata changed since it was loaded): stratad must be "
			       "restarted to load it", w->path);
	if (rc < 0 && rc != -ENODATA)
		return st_errf(err, rc, "weights: cannot read %s again: %s", w->path,
			       strerror(-rc));
	if ((uint64_t)st.st_size != w->f.file_size)
		return st_errf(err, -EIO, "weights: %s has %" PRIu64 " bytes now, %" PRIu64 " at "
			       "open: truncated or replaced in place; requests fail until the file "
			       "is whole again (or stratad is restarted on a new one)", w->path,
			       (uint64_t)st.st_size, w->f.file_size);

	/* the same model, rewritten in place: nothing read before may be used after */
	uint32_t dropped = 0;
	if (w->ops->copies) {
		for (uint32_t s = 0; s < w->plan.n_slots; s++) {
			if (w->slots[s].unit >= 0 && w->slots[s].holds == 0) {
				w_slot_clear(w, s);
				dropped++;
			}
		}
	}
	uint64_t before = w->res_bytes;
	rc = w_resident_read(&w->f, w->res_buf, false, NULL, NULL, &w->res_bytes, &w->res_ns, err);
	if (rc < 0)
		return rc;
	log_notice("weights: %s changed on disk (same size and header): read the %u resident "
		   "units again (%s) and dropped %u streaming buffers read ahead before the change",
		   w->path, w->plan.n_units - w->plan.n_stream,
		   format_size(w->res_bytes - before, b, sizeof b), dropped);
	w->id = st;
	if (w->plan.n_stream > 0)
		w_fill(w);
	return 0;
}

/* ---- telling ---- */

/* "0-3,7,9" into buf */
static void w_unit_list(const struct weights *w, bool resident, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (uint32_t u = 0; u < w->plan.n_units; u++) {
		if (w->plan.units[u].resident != resident)
			continue;
		uint32_t v = u;
		while (v + 1 < w->plan.n_units && w->plan.units[v + 1].resident == resident)
			v++;
		int k = v == u ? snprintf(buf + n, cap - n, "%s%u", n ? "," : "", u)
			       : snprintf(buf + n, cap - n, "%s%u-%u", n ? "," : "", u, v);
		if (k < 0 || (size_t)k >= cap - n) {
			if (cap > 4)
				strcpy(buf + cap - 4, "...");
			return;
		}
		n += (size_t)k;
		u = v;
	}
}

void weights_plan_describe(const struct weights *w, char *buf, size_t cap)
{
	if (cap == 0)
		return;
	const struct plan *p = &w->plan;
	char b1[32], b2[32], list[256], io[256];
	uint32_t n_res = p->n_units - p->n_stream;
	size_t n = 0;
	int k;
#define W_PUT(...) do { \
		k = snprintf(buf + n, cap - n, __VA_ARGS__); \
		if (k < 0 || (size_t)k >= cap - n) \
			return; \
		n += (size_t)k; \
	} while (0)
	W_PUT("weights: %s, %u units, %s (in %s blocks)\n", w->path, p->n_units,
	      format_size(p->bytes_units, b1, sizeof b1),
	      format_size(w->f.block, b2, sizeof b2));
	if (w->budget == 0)
		W_PUT("budget: none; ");
	else
		W_PUT("budget %s; ", format_size(w->budget, b1, sizeof b1));
	if (n_res == 0) {
		W_PUT("resident: none\n");
	} else {
		w_unit_list(w, true, list, sizeof list);
		W_PUT("resident: %u units, %s: %s\n", n_res,
		      format_size(p->bytes_resident, b1, sizeof b1), list);
	}
	if (p->n_stream == 0) {
		W_PUT("streamed: none");
	} else {
		w_unit_list(w, false, list, sizeof list);
		W_PUT("streamed: %u units, %s read per pass (per token at batch 1), through %u buffers of %s (read-ahead %u): %s\n",
		      p->n_stream, format_size(p->bytes_streamed, b1, sizeof b1), p->n_slots,
		      format_size(p->slot_bytes, b2, sizeof b2), p->n_slots - 1, list);
		w->ops->describe(w->src, io, sizeof io);
		W_PUT("%s", io);
	}
#undef W_PUT
}

bool weights_is_resident(const struct weights *w, uint32_t unit)
{
	return unit < w->plan.n_units && w->plan.units[unit].resident;
}

void weights_get_stats(const struct weights *w, struct weights_stats *out)
{
	const struct plan *p = &w->plan;
	struct w_io_stats io = { 0 };
	w->ops->stats(w->src, &io);
	memset(out, 0, sizeof *out);
	out->io = w->io;
	out->direct = io.direct;
	out->registered = io.registered;
	out->locked = w->want_lock && w->locked;
	out->n_units = p->n_units;
	out->n_streamed = p->n_stream;
	out->n_resident = p->n_units - p->n_stream;
	out->bytes_units = p->bytes_units;
	out->bytes_resident = p->bytes_resident;
	out->bytes_streamed_per_pass = p->bytes_streamed;
	out->n_slots = p->n_slots;
	out->slot_bytes = p->slot_bytes;
	out->prefetch = p->n_slots > 0 ? p->n_slots - 1 : 0;
	out->queue_depth = w->f.queue_depth;
	out->chunk_bytes = w->f.chunk_bytes;
	out->block_bytes = w->f.block;
	out->bytes_read = io.bytes_read + w->res_bytes;
	out->read_ns = io.read_ns + w->res_ns;
	out->load_ns = w->load_ns;
	out->stall_ns = w->stall_ns;
	out->n_acquires = w->n_acquires;
	out->n_stalls = w->n_stalls;
	out->n_misses = w->n_misses;
	out->n_read_errors = w->n_read_errors;
}

void weights_close(struct weights *w)
{
	if (!w)
		return;
	if (w->ops)
		w->ops->close(w->src); /* stops every read: nothing writes into our memory now */
	free(w->slots);
	free(w->unit_slot);
	if (w->res_mem)
		munmap(w->res_mem, w->res_len);
	free(w->res_buf);
	if (w->f.dfd >= 0)
		close(w->f.dfd);
	plan_free(&w->plan);
	free(w->path);
	free(w);
}
