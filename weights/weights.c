/* weights.c: see weights.h. The plan (which units stay resident, how many streaming
 * buffers), the resident set, and the ring of slots that streamed units pass through, fed
 * by uring_reader (or by madvise on a mapping). Byte ranges only: no GGUF, no tensors. */
#include "config.h"

#include "weights/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "weights/uring_reader.h"

/* Ranges of one unit closer than this (after rounding to blocks) are read as one extent:
 * a few KiB of padding cost less than another read. */
#define W_GAP_MERGE (64u << 10)
/* MMAP read-ahead is madvise(WILLNEED) in pieces this big: the kernel reads at most the
 * device's readahead window per call (often 128 KiB), silently ignoring the rest. */
#define W_WILLNEED_PIECE (128u << 10)

/* File bytes [file_off, file_off + len) of a unit are at the unit's buffer + buf_off.
 * file_off and len are multiples of the block size; the unit's ranges end at or before
 * file_off + need (the rest is padding to the block, possibly past the end of the file). */
struct w_extent {
	uint64_t file_off, len, need, buf_off;
	uint64_t drop_off, drop_len; /* MMAP: the part not shared with another unit's extent */
};

struct w_unit {
	uint32_t first_ext, n_ext; /* into w->ext */
	uint64_t bytes;		   /* sum of the extents' lengths */
	bool resident;
	char *res_buf;		   /* resident: its copy (bytes), inside w->res_mem */
	int32_t stream_pos;	   /* index in w->stream (pass order of streamed units), or -1 */
	uint32_t next_stream;	   /* stream position expected after this unit */
	int32_t slot;		   /* streamed: the slot holding (or reading) it, or -1 */
};

/* A streaming buffer (URING) or a window place (MMAP: the pages live in the mapping). */
struct w_slot {
	char *buf;		/* URING: slot_bytes, page-aligned, inside w->slot_mem */
	int32_t unit;		/* unit being read into it / held in it, -1 = empty */
	uint32_t holds;		/* acquires not yet released */
	bool reading;		/* a read was started and its result not yet collected */
	bool prefetched;	/* the read was started ahead of the acquire that uses it */
	struct uring_seg *segs; /* (w->max_ext) segments of the current request */
	struct uring_req req;
};

struct weights {
	char *path;
	int fd;
	uint64_t file_size;
	uint32_t page;	/* the VM page size */
	uint32_t block; /* alignment of every extent: max(page, O_DIRECT alignment) */
	enum weights_io io;
	bool direct, locked, want_lock;
	uint32_t queue_depth, chunk_bytes;

	struct w_unit *units; /* (n_units) */
	uint32_t n_units;
	struct w_extent *ext; /* (n_ext) all units' extents, unit by unit */
	uint32_t n_ext, max_ext;
	uint32_t *stream;     /* (n_stream) streamed units in pass order */
	uint32_t n_stream;

	uint64_t budget, bytes_units, bytes_resident, bytes_streamed;
	char *res_mem;	      /* resident copies, anonymous mapping of res_len bytes */
	uint64_t res_len;
	char *slot_mem;	      /* URING: n_slots * slot_bytes, anonymous mapping */
	uint64_t slot_len;
	struct w_slot *slots; /* (n_slots) */
	uint32_t n_slots;
	uint64_t slot_bytes;
	uint32_t cursor;      /* stream position expected next (where read-ahead starts) */

	struct uring_reader *reader; /* URING */
	const char *map;      /* MMAP: the file, map_len bytes */
	uint64_t map_len;
	int bus;	      /* MMAP: our entry in w_bus_maps (SIGBUS survival), or -1 */
	/* MMAP read-ahead thread: issues WILLNEED for slots' units so the engine thread does
	 * not spend its time allocating page cache. Guarded by adv_mu. */
	pthread_t adv_thread;
	bool adv_started, adv_stop, adv_cancel;
	pthread_mutex_t adv_mu;
	pthread_cond_t adv_cv;	/* work arrived / a slot's advice ended */
	int32_t *adv_unit;	/* (n_slots) unit to read ahead into slot s, or -1 */
	uint64_t *adv_seq;	/* (n_slots) order of the requests */
	uint64_t adv_next_seq;
	int32_t adv_cur;	/* slot being advised, or -1 */

	/* counters (the reader keeps its own; these are the caller's side) */
	uint64_t stall_ns, mmap_bytes, mmap_ns, n_acquires, n_stalls, n_misses, n_read_errors;
};

static uint64_t w_align_down(uint64_t x, uint64_t a)
{
	return x / a * a;
}

static uint64_t w_align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

/* "1.5 GiB": a size for people. */
static const char *w_size_str(uint64_t n, char *buf, size_t cap)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%" PRIu64 " B", n);
	else
		snprintf(buf, cap, "%.*f %s", v < 10 ? 2 : 1, v, units[u]);
	return buf;
}

/* ---- the plan ---- */

/* Bit-reversed rank of i among pow2 >= n: ranking units by it spreads any prefix evenly over
 * the pass (0, n/2, n/4, 3n/4, ...). */
static uint32_t w_spread_rank(uint32_t i, uint32_t n)
{
	uint32_t bits = 0;
	while ((1u << bits) < n)
		bits++;
	uint32_t r = 0;
	for (uint32_t b = 0; b < bits; b++)
		if (i & (1u << b))
			r |= 1u << (bits - 1 - b);
	return r;
}

struct w_pref {
	uint64_t bytes;
	uint32_t rank, unit;
};

static int w_pref_cmp(const void *a, const void *b)
{
	const struct w_pref *x = a, *y = b;
	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* Choose the resident set and the slots. Among plans that fit the budget, fewest bytes
 * streamed per pass, then most slots. A plan for threshold m streams only units of at
 * most m bytes (larger ones must be resident), keeps min_slots buffers of m, and fills the
 * rest of the budget with resident units, largest first, equal sizes spread over the pass
 * so the disk has work while resident units compute. */
static int w_plan(struct weights *w, uint32_t prefetch, struct st_err *err)
{
	uint32_t n = w->n_units;
	uint64_t total = w->bytes_units;
	size_t cap = n ? n : 1;
	bool *best = calloc(cap, sizeof *best), *cur = calloc(cap, sizeof *cur);
	struct w_pref *pref = calloc(cap, sizeof *pref);
	int rc = 0;
	if (!best || !cur || !pref) {
		rc = st_errf(err, -ENOMEM, "out of memory");
		goto out;
	}

	if (w->budget == 0 || total <= w->budget) {
		for (uint32_t i = 0; i < n; i++)
			w->units[i].resident = true;
		w->n_slots = 0;
		w->slot_bytes = 0;
		goto out;
	}

	for (uint32_t i = 0; i < n; i++)
		pref[i] = (struct w_pref){ w->units[i].bytes, w_spread_rank(i, n), i };
	qsort(pref, n, sizeof *pref, w_pref_cmp);

	uint32_t min_slots = prefetch > 0 ? prefetch + 1 : 2;
	uint64_t best_streamed = UINT64_MAX, min_need = UINT64_MAX, best_slot = 0;
	uint32_t best_slots = 0, min_need_unit = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t m = pref[k].bytes;
		if (k > 0 && m == pref[k - 1].bytes)
			continue; /* same threshold as before */
		uint64_t forced = 0;
		for (uint32_t j = 0; j < k; j++)
			forced += pref[j].bytes;
		if (m > (UINT64_MAX - forced) / min_slots)
			continue;
		uint64_t need = forced + (uint64_t)min_slots * m;
		if (need < min_need) {
			min_need = need;
			min_need_unit = pref[k].unit;
		}
		if (need > w->budget)
			continue;
		uint64_t room = w->budget - need, resident = forced, slot = 0;
		uint32_t n_streamed = 0;
		for (uint32_t j = 0; j < n; j++) {
			uint32_t u = pref[j].unit;
			cur[u] = j < k || pref[j].bytes <= room;
			if (j >= k && cur[u]) {
				room -= pref[j].bytes;
				resident += pref[j].bytes;
			}
			if (!cur[u]) {
				n_streamed++;
				if (pref[j].bytes > slot)
					slot = pref[j].bytes;
			}
		}
		if (n_streamed == 0)
			continue; /* cannot happen: everything would fit, handled above */
		uint64_t s = prefetch > 0 ? min_slots : (w->budget - resident) / slot;
		if (s > n_streamed)
			s = n_streamed;
		uint64_t streamed = total - resident;
		if (streamed < best_streamed || (streamed == best_streamed && s > best_slots)) {
			best_streamed = streamed;
			best_slots = (uint32_t)s;
			best_slot = slot;
			memcpy(best, cur, n * sizeof *best);
		}
	}
	if (best_streamed == UINT64_MAX) {
		char b1[32], b2[32], b3[32];
		rc = st_errf(err, -ENOSPC,
			     "memory budget %s is too small for the weights in %s: the minimum is %s "
			     "(%" PRIu64 " bytes: %u streaming buffers of %s, the size of unit %u, "
			     "plus any larger units resident)",
			     w_size_str(w->budget, b1, sizeof b1), w->path,
			     w_size_str(min_need, b2, sizeof b2), min_need, min_slots,
			     w_size_str(w->units[min_need_unit].bytes, b3, sizeof b3), min_need_unit);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++)
		w->units[i].resident = best[i];
	w->n_slots = best_slots;
	w->slot_bytes = w_align_up(best_slot, w->page);
out:
	free(best);
	free(cur);
	free(pref);
	return rc;
}

/* ---- units and extents ---- */

static int w_range_cmp(const void *a, const void *b)
{
	const struct weights_range *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

struct w_ext_ref {
	uint64_t off, end;
	uint32_t idx;
};

static int w_ext_ref_cmp(const void *a, const void *b)
{
	const struct w_ext_ref *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Round each unit's ranges out to blocks, merge close ones into extents, lay them out. */
static int w_build_units(struct weights *w, const struct weights_unit *units, struct st_err *err)
{
	uint32_t cap = 0, max_ranges = 0;
	for (uint32_t u = 0; u < w->n_units; u++) {
		if (units[u].n_ranges > 0 && !units[u].ranges)
			return st_errf(err, -EINVAL, "unit %u has %u ranges but no array", u,
				       units[u].n_ranges);
		cap += units[u].n_ranges;
		if (units[u].n_ranges > max_ranges)
			max_ranges = units[u].n_ranges;
	}
	w->ext = calloc(cap ? cap : 1, sizeof *w->ext);
	struct weights_range *tmp = calloc(max_ranges ? max_ranges : 1, sizeof *tmp);
	if (!w->ext || !tmp) {
		free(tmp);
		return st_errf(err, -ENOMEM, "out of memory");
	}
	uint64_t file_end = w_align_up(w->file_size, w->block);
	for (uint32_t u = 0; u < w->n_units; u++) {
		struct w_unit *wu = &w->units[u];
		wu->first_ext = w->n_ext;
		wu->slot = -1;
		memcpy(tmp, units[u].ranges, units[u].n_ranges * sizeof *tmp);
		qsort(tmp, units[u].n_ranges, sizeof *tmp, w_range_cmp);
		for (uint32_t i = 0; i < units[u].n_ranges; i++) {
			const struct weights_range *g = &tmp[i];
			if (g->len == 0)
				continue;
			if (g->offset > w->file_size || g->len > w->file_size - g->offset) {
				free(tmp);
				return st_errf(err, -EINVAL,
					       "unit %u: bytes %" PRIu64 "..%" PRIu64 " lie outside %s "
					       "(%" PRIu64 " bytes)", u, g->offset, g->offset + g->len,
					       w->path, w->file_size);
			}
			uint64_t a = w_align_down(g->offset, w->block);
			uint64_t b = w_align_up(g->offset + g->len, w->block);
			if (b > file_end)
				b = file_end;
			uint64_t end = g->offset + g->len;
			struct w_extent *last = wu->n_ext ? &w->ext[w->n_ext - 1] : NULL;
			if (last && a <= last->file_off + last->len + W_GAP_MERGE) {
				if (b > last->file_off + last->len)
					last->len = b - last->file_off;
				if (end > last->file_off + last->need)
					last->need = end - last->file_off;
			} else {
				w->ext[w->n_ext++] = (struct w_extent){ .file_off = a, .len = b - a,
									.need = end - a };
				wu->n_ext++;
			}
		}
		for (uint32_t i = 0; i < wu->n_ext; i++) {
			struct w_extent *e = &w->ext[wu->first_ext + i];
			e->buf_off = wu->bytes;
			wu->bytes += e->len;
		}
		if (wu->n_ext > w->max_ext)
			w->max_ext = wu->n_ext;
		w->bytes_units += wu->bytes;
	}
	free(tmp);

	/* MMAP drops a released unit's pages; a block it shares with another unit (GGUF packs
	 * tensors 32 bytes apart, so neighbours share one) is kept, since the neighbour may be
	 * in use. */
	struct w_ext_ref *refs = calloc(w->n_ext ? w->n_ext : 1, sizeof *refs);
	if (!refs)
		return st_errf(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < w->n_ext; i++) {
		refs[i] = (struct w_ext_ref){ w->ext[i].file_off, w->ext[i].file_off + w->ext[i].len, i };
		w->ext[i].drop_off = w->ext[i].file_off;
		w->ext[i].drop_len = w->ext[i].len;
	}
	qsort(refs, w->n_ext, sizeof *refs, w_ext_ref_cmp);
	uint64_t max_end = 0; /* furthest end among earlier extents */
	for (uint32_t i = 0; i < w->n_ext; i++) {
		struct w_extent *e = &w->ext[refs[i].idx];
		uint64_t lo = e->file_off, hi = e->file_off + e->len;
		if (i > 0 && max_end > lo)
			lo = max_end < hi ? max_end : hi;
		if (i + 1 < w->n_ext && refs[i + 1].off < hi)
			hi = refs[i + 1].off > lo ? refs[i + 1].off : lo;
		if (refs[i].end > max_end)
			max_end = refs[i].end;
		e->drop_off = lo;
		e->drop_len = hi - lo;
	}
	free(refs);
	return 0;
}

/* Bytes of e inside the file (as at open): what a read of it transfers. */
static uint64_t w_ext_file_bytes(const struct weights *w, const struct w_extent *e)
{
	return e->file_off + e->len > w->file_size ? w->file_size - e->file_off : e->len;
}

static const struct w_extent *w_find_ext(const struct weights *w, uint32_t unit, uint64_t off)
{
	const struct w_unit *wu = &w->units[unit];
	uint32_t lo = 0, hi = wu->n_ext;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (w->ext[wu->first_ext + mid].file_off <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct w_extent *e = &w->ext[wu->first_ext + lo - 1];
	return off < e->file_off + e->len ? e : NULL;
}

/* ---- memory ---- */

static char *w_map_anon(uint64_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (len >= (2u << 20))
		madvise(p, len, MADV_HUGEPAGE); /* fewer pages to pin and to walk */
	return p;
}

static void w_lock(struct weights *w, char *p, uint64_t len, const char *what)
{
	if (!w->want_lock || len == 0)
		return;
	if (mlock(p, len) != 0) {
		char b[32];
		int e = errno;
		w->locked = false;
		log_warn("weights: cannot lock %s of %s in memory (%s); continuing unlocked "
			 "(raise LimitMEMLOCK= / ulimit -l, or run with CAP_IPC_LOCK)",
			 w_size_str(len, b, sizeof b), what, strerror(e));
	}
}

/* ---- the file ---- */

static int w_open_file(struct weights *w, bool direct)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = open(w->path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (w->fd < 0)
		return -errno;
	w->direct = direct;
	return 0;
}

/* Open for the asked mode: O_DIRECT for io_uring when the filesystem takes it (probed with a
 * real read, since some accept the flag and fail the read), buffered otherwise. */
static int w_open(struct weights *w, struct st_err *err)
{
	int rc;
	struct statx stx;
	w->fd = -1;
	long page = sysconf(_SC_PAGESIZE);
	w->page = page >= 4096 ? (uint32_t)page : 4096;
	/* never below a page: madvise in MMAP works in pages, and sub-page alignment saves
	 * at most a few KiB per extent */
	w->block = w->page;
	bool try_direct = w->io == WEIGHTS_IO_URING;

	rc = w_open_file(w, false);
	if (rc < 0)
		return st_errf(err, rc, "cannot open %s: %s", w->path, strerror(-rc));
	if (statx(w->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_DIOALIGN, &stx) != 0) {
		rc = -errno;
		return st_errf(err, rc, "cannot stat %s: %s", w->path, strerror(-rc));
	}
	if (!S_ISREG(stx.stx_mode))
		return st_errf(err, -EINVAL, "%s is not a regular file", w->path);
	w->file_size = stx.stx_size;
	if (stx.stx_mask & STATX_DIOALIGN) {
		if (stx.stx_dio_offset_align == 0)
			try_direct = false; /* the filesystem says: no O_DIRECT here */
		else if (stx.stx_dio_offset_align > w->block)
			w->block = stx.stx_dio_offset_align;
	}
	if (!try_direct)
		goto buffered;
	rc = w_open_file(w, true);
	if (rc == 0 && w->file_size > 0) {
		void *probe = w_map_anon(w->block);
		ssize_t got = probe ? pread(w->fd, probe, w->block, 0) : -1;
		rc = got < 0 ? -errno : 0;
		if (probe)
			munmap(probe, w->block);
	}
	if (rc == 0)
		return 0;
	if (rc != -EINVAL && rc != -EOPNOTSUPP)
		return st_errf(err, rc, "cannot read %s: %s", w->path, strerror(-rc));
buffered:
	if (w->io == WEIGHTS_IO_URING)
		log_warn("weights: %s does not take O_DIRECT (%s); reading through the page cache "
			 "and dropping each unit from it after use", w->path,
			 stx.stx_mask & STATX_DIOALIGN && stx.stx_dio_offset_align == 0
				 ? "the filesystem says so" : strerror(EINVAL));
	rc = w_open_file(w, false);
	if (rc < 0)
		return st_errf(err, rc, "cannot open %s: %s", w->path, strerror(-rc));
	return 0;
}

/* ---- slots: the requests ---- */

static void w_unit_segs(const struct weights *w, uint32_t unit, char *base, struct uring_seg *segs)
{
	const struct w_unit *wu = &w->units[unit];
	for (uint32_t i = 0; i < wu->n_ext; i++) {
		const struct w_extent *e = &w->ext[wu->first_ext + i];
		segs[i] = (struct uring_seg){ e->file_off, e->len, e->need, base + e->buf_off };
	}
}

/* The mapped part of [off, off + len), clamped to the mapping. */
static bool w_map_span(const struct weights *w, uint64_t off, uint64_t len, char **p, size_t *n)
{
	if (off >= w->map_len || len == 0)
		return false;
	if (len > w->map_len - off)
		len = w->map_len - off;
	*p = (char *)w->map + off;
	*n = len;
	return true;
}

/* ---- MMAP: surviving SIGBUS ----
 * A page of the mapping that cannot be read raises SIGBUS in whatever thread touches it.
 * acquire() pages a unit in first (MADV_POPULATE_READ reports EFAULT/EIO, no signal), but
 * a file truncated while the unit is in use (the kernel unmaps the pages past the new end
 * at once) or a page reclaimed and then failing to read back would still kill the process.
 * This handler makes that fault survivable: it covers the mapping from the faulting page to
 * its end with zero pages, so the code that touched it runs on (on zeros), and records the
 * fault; weights_check (after use) and the next acquire report it and map the file afresh.
 * Faults anywhere else go to the handler that was there before (default: die). */

#define W_BUS_MAX 8 /* mappings protected at once; further ones run unprotected */

static struct {
	_Atomic uintptr_t base;	    /* the mapping, 0 = entry free */
	_Atomic uintptr_t len;	    /* bytes */
	_Atomic uint64_t faults;    /* SIGBUS survived since the last w_bus_take */
	_Atomic uint64_t first_off; /* byte of the file at the first of them (UINT64_MAX: none) */
} w_bus_maps[W_BUS_MAX];
static pthread_mutex_t w_bus_mu = PTHREAD_MUTEX_INITIALIZER;
static bool w_bus_installed;
static struct sigaction w_bus_old;
static uintptr_t w_bus_page;

static void w_on_sigbus(int sig, siginfo_t *si, void *uctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	for (int i = 0; si->si_code > 0 && i < W_BUS_MAX; i++) {
		uintptr_t base = atomic_load(&w_bus_maps[i].base);
		uintptr_t len = atomic_load(&w_bus_maps[i].len);
		if (base == 0 || a < base || a - base >= len)
			continue;
		uintptr_t page = a & ~(w_bus_page - 1);
		/* one mapping over the whole rest: one call however many pages are gone */
		if (mmap((void *)page, base + len - page, PROT_READ,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			break;
		uint64_t none = UINT64_MAX;
		atomic_compare_exchange_strong(&w_bus_maps[i].first_off, &none, page - base);
		atomic_fetch_add(&w_bus_maps[i].faults, 1);
		return; /* the touching instruction runs again, on zeros */
	}
	if (w_bus_old.sa_flags & SA_SIGINFO) {
		w_bus_old.sa_sigaction(sig, si, uctx);
	} else if (w_bus_old.sa_handler != SIG_DFL && w_bus_old.sa_handler != SIG_IGN) {
		w_bus_old.sa_handler(sig);
	} else {
		/* not ours: the default action (a fault recurs on return; a kill is re-raised) */
		sigaction(SIGBUS, &w_bus_old, NULL);
		if (si->si_code <= 0)
			raise(sig);
	}
}

/* Protect w's mapping; no protection (a warning) when every entry is taken. */
static void w_bus_register(struct weights *w)
{
	w->bus = -1;
	pthread_mutex_lock(&w_bus_mu);
	if (!w_bus_installed) {
		struct sigaction sa = { .sa_sigaction = w_on_sigbus, .sa_flags = SA_SIGINFO };
		sigemptyset(&sa.sa_mask);
		w_bus_page = w->page;
		w_bus_installed = sigaction(SIGBUS, &sa, &w_bus_old) == 0;
	}
	for (int i = 0; w_bus_installed && i < W_BUS_MAX; i++) {
		if (atomic_load(&w_bus_maps[i].base) != 0)
			continue;
		atomic_store(&w_bus_maps[i].faults, 0);
		atomic_store(&w_bus_maps[i].first_off, UINT64_MAX);
		atomic_store(&w_bus_maps[i].len, (uintptr_t)w->map_len);
		atomic_store(&w_bus_maps[i].base, (uintptr_t)w->map);
		w->bus = i;
		break;
	}
	pthread_mutex_unlock(&w_bus_mu);
	if (w->bus < 0)
		log_warn("weights: %s: a read error while a unit is in use will end the process "
			 "(SIGBUS): %s", w->path, w_bus_installed ? "too many mappings" :
			 "cannot install a SIGBUS handler");
}

static void w_bus_unregister(struct weights *w)
{
	if (w->bus < 0)
		return;
	pthread_mutex_lock(&w_bus_mu);
	atomic_store(&w_bus_maps[w->bus].base, 0);
	pthread_mutex_unlock(&w_bus_mu);
	w->bus = -1;
}

/* A fault survived since the last call: fail with a message naming the file, unit and byte,
 * and map the file afresh over the zero pages. `unit` is the one in use, for the message
 * when the byte is in no unit. Call only while nothing touches the mapping (between
 * passes of the layer loop). */
static int w_bus_take(struct weights *w, uint32_t unit, struct st_err *err)
{
	if (w->bus < 0 || atomic_load(&w_bus_maps[w->bus].faults) == 0)
		return 0;
	uint64_t off = atomic_load(&w_bus_maps[w->bus].first_off);
	for (uint32_t u = 0; u < w->n_units; u++)
		if (w_find_ext(w, u, off))
			unit = u;
	w->n_read_errors++;
	if (mmap((void *)w->map, w->map_len, PROT_READ, MAP_SHARED | MAP_FIXED, w->fd, 0) ==
	    MAP_FAILED) {
		int e = errno; /* the zero pages stay, and so does the fault: every acquire fails */
		return st_errf(err, -EIO, "weights: %s: cannot map the file again after a read "
			       "error at byte %" PRIu64 ": %s", w->path, off, strerror(e));
	}
	atomic_store(&w_bus_maps[w->bus].first_off, UINT64_MAX);
	atomic_store(&w_bus_maps[w->bus].faults, 0);
	struct stat st;
	uint64_t now = fstat(w->fd, &st) == 0 ? (uint64_t)st.st_size : w->file_size;
	if (now <= off)
		return st_errf(err, -EIO, "weights: unit %u of %s: byte %" PRIu64 " vanished while "
			       "in use (the file has %" PRIu64 " bytes now, %" PRIu64 " at open: "
			       "truncated or replaced?)", unit, w->path, off, now, w->file_size);
	return st_errf(err, -EIO, "weights: unit %u of %s: the page at byte %" PRIu64 " could "
		       "not be read back while in use (Input/output error)", unit, w->path, off);
}

/* ---- MMAP read-ahead thread ---- */

static void w_willneed(const struct weights *w, uint32_t unit, const bool *cancel,
		       pthread_mutex_t *mu)
{
	const struct w_unit *wu = &w->units[unit];
	for (uint32_t i = 0; i < wu->n_ext; i++) {
		char *p;
		size_t n;
		if (!w_map_span(w, w->ext[wu->first_ext + i].file_off, w->ext[wu->first_ext + i].len,
				&p, &n))
			continue;
		for (size_t k = 0; k < n; k += W_WILLNEED_PIECE) {
			madvise(p + k, n - k < W_WILLNEED_PIECE ? n - k : W_WILLNEED_PIECE,
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

static void *w_adv_thread(void *arg)
{
	struct weights *w = arg;
	pthread_mutex_lock(&w->adv_mu);
	while (!w->adv_stop) {
		int32_t s = -1;
		for (uint32_t i = 0; i < w->n_slots; i++)
			if (w->adv_unit[i] >= 0 && (s < 0 || w->adv_seq[i] < w->adv_seq[s]))
				s = (int32_t)i;
		if (s < 0) {
			pthread_cond_wait(&w->adv_cv, &w->adv_mu);
			continue;
		}
		uint32_t u = (uint32_t)w->adv_unit[s];
		w->adv_unit[s] = -1;
		w->adv_cur = s;
		w->adv_cancel = false;
		pthread_mutex_unlock(&w->adv_mu);
		w_willneed(w, u, &w->adv_cancel, &w->adv_mu);
		pthread_mutex_lock(&w->adv_mu);
		w->adv_cur = -1;
		pthread_cond_broadcast(&w->adv_cv);
	}
	pthread_mutex_unlock(&w->adv_mu);
	return NULL;
}

/* Forget slot s's read-ahead; returns once the thread no longer works on it. */
static void w_adv_forget(struct weights *w, uint32_t s)
{
	pthread_mutex_lock(&w->adv_mu);
	w->adv_unit[s] = -1;
	if (w->adv_cur == (int32_t)s)
		w->adv_cancel = true;
	while (w->adv_cur == (int32_t)s)
		pthread_cond_wait(&w->adv_cv, &w->adv_mu);
	pthread_mutex_unlock(&w->adv_mu);
}

static int w_adv_start(struct weights *w, struct st_err *err)
{
	w->adv_cur = -1;
	if (w->n_slots == 0)
		return 0;
	w->adv_unit = malloc(w->n_slots * sizeof *w->adv_unit);
	w->adv_seq = calloc(w->n_slots, sizeof *w->adv_seq);
	if (!w->adv_unit || !w->adv_seq)
		return st_errf(err, -ENOMEM, "out of memory");
	for (uint32_t s = 0; s < w->n_slots; s++)
		w->adv_unit[s] = -1;
	pthread_mutex_init(&w->adv_mu, NULL);
	pthread_cond_init(&w->adv_cv, NULL);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&w->adv_thread, NULL, w_adv_thread, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&w->adv_cv);
		pthread_mutex_destroy(&w->adv_mu);
		return st_errf(err, -rc, "cannot start the read-ahead thread: %s", strerror(rc));
	}
	pthread_setname_np(w->adv_thread, "strata-ra");
	w->adv_started = true;
	return 0;
}

static void w_adv_stop(struct weights *w)
{
	if (w->adv_started) {
		pthread_mutex_lock(&w->adv_mu);
		w->adv_stop = true;
		w->adv_cancel = true;
		pthread_cond_broadcast(&w->adv_cv);
		pthread_mutex_unlock(&w->adv_mu);
		pthread_join(w->adv_thread, NULL);
		pthread_cond_destroy(&w->adv_cv);
		pthread_mutex_destroy(&w->adv_mu);
		w->adv_started = false;
	}
	free(w->adv_unit);
	free(w->adv_seq);
	w->adv_unit = NULL;
	w->adv_seq = NULL;
}

/* ---- slots: start, collect, drop ---- */

static void w_slot_start(struct weights *w, uint32_t s, uint32_t unit, bool prefetched)
{
	struct w_slot *sl = &w->slots[s];
	sl->unit = (int32_t)unit;
	sl->reading = true;
	sl->prefetched = prefetched;
	w->units[unit].slot = (int32_t)s;
	if (w->io == WEIGHTS_IO_URING) {
		w_unit_segs(w, unit, sl->buf, sl->segs);
		sl->req.segs = sl->segs;
		sl->req.n_segs = w->units[unit].n_ext;
		uring_reader_submit(w->reader, &sl->req, !prefetched);
	} else if (prefetched) {
		pthread_mutex_lock(&w->adv_mu);
		w->adv_unit[s] = (int32_t)unit;
		w->adv_seq[s] = ++w->adv_next_seq;
		pthread_cond_broadcast(&w->adv_cv);
		pthread_mutex_unlock(&w->adv_mu);
	}
}

/* Drop the pages of an MMAP unit: unmap them (RSS) and evict them (page cache), except
 * blocks shared with another unit. */
static void w_mmap_drop(struct weights *w, uint32_t unit)
{
	const struct w_unit *wu = &w->units[unit];
	for (uint32_t i = 0; i < wu->n_ext; i++) {
		const struct w_extent *e = &w->ext[wu->first_ext + i];
		char *p;
		size_t n;
		if (w_map_span(w, e->drop_off, e->drop_len, &p, &n)) {
			madvise(p, n, MADV_DONTNEED);
			posix_fadvise(w->fd, (off_t)e->drop_off, (off_t)n, POSIX_FADV_DONTNEED);
		}
	}
}

/* Empty slot s (its unit is no longer in it). Blocks while the kernel writes into it. */
static void w_slot_clear(struct weights *w, uint32_t s)
{
	struct w_slot *sl = &w->slots[s];
	if (sl->unit < 0)
		return;
	if (w->io == WEIGHTS_IO_URING) {
		if (sl->reading)
			uring_reader_cancel(w->reader, &sl->req);
	} else {
		w_adv_forget(w, s);
		w_mmap_drop(w, (uint32_t)sl->unit);
	}
	w->units[sl->unit].slot = -1;
	sl->unit = -1;
	sl->reading = false;
	sl->holds = 0;
}

/* MMAP: page in [off, off + len) and, on failure, find the first page that fails. */
static int w_mmap_populate(struct weights *w, uint64_t off, uint64_t len, uint64_t *bad_off)
{
	char *p;
	size_t n;
	if (!w_map_span(w, off, len, &p, &n))
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
		if (fstat(w->fd, &st) == 0 && (uint64_t)st.st_size < off + n &&
		    (uint64_t)st.st_size < w->file_size) {
			*bad_off = (uint64_t)st.st_size;
			return -ENODATA;
		}
		volatile const char *v = p;
		for (size_t i = 0; i < n; i += w->page)
			(void)v[i];
		return 0;
	}
	/* EFAULT / EIO / EHWPOISON: find the first bad page for the message */
	*bad_off = off;
	for (size_t i = 0; i < n; i += w->page) {
		size_t m = n - i < w->page ? n - i : w->page;
		if (madvise(p + i, m, MADV_POPULATE_READ) != 0) {
			*bad_off = off + i;
			break;
		}
	}
	struct stat st;
	if (fstat(w->fd, &st) == 0 && (uint64_t)st.st_size <= *bad_off) {
		/* the page holding the new end of file still maps: the bytes stop at the end */
		if ((uint64_t)st.st_size > off)
			*bad_off = (uint64_t)st.st_size;
		return -ENODATA;
	}
	return e == EFAULT ? -EIO : -e;
}

/* Wait for slot s's read and take its result: 0 or -errno, and [bad_off, bad_end) the read
 * that failed. */
static int w_slot_collect(struct weights *w, uint32_t s, uint64_t *bad_off, uint64_t *bad_end)
{
	struct w_slot *sl = &w->slots[s];
	if (!sl->reading)
		return 0;
	uint64_t t0 = clock_now_ns();
	int rc = 0;
	if (w->io == WEIGHTS_IO_URING) {
		if (!uring_reader_done(w->reader, &sl->req))
			w->n_stalls++;
		rc = uring_reader_wait(w->reader, &sl->req);
		*bad_off = sl->req.err_off;
		*bad_end = sl->req.err_end;
		if (rc == 0 && !w->direct) {
			/* buffered fallback: the page cache keeps no copy beyond the budget */
			const struct w_unit *wu = &w->units[sl->unit];
			for (uint32_t i = 0; i < wu->n_ext; i++)
				posix_fadvise(w->fd, (off_t)w->ext[wu->first_ext + i].file_off,
					      (off_t)w->ext[wu->first_ext + i].len, POSIX_FADV_DONTNEED);
		}
	} else {
		/* take over from the read-ahead thread, ask for all of it (cheap for pages
		 * already cached), then wait for the pages and map them */
		const struct w_unit *wu = &w->units[sl->unit];
		w_adv_forget(w, s);
		w_willneed(w, (uint32_t)sl->unit, NULL, NULL);
		for (uint32_t i = 0; i < wu->n_ext && rc == 0; i++)
			rc = w_mmap_populate(w, w->ext[wu->first_ext + i].file_off,
					     w->ext[wu->first_ext + i].need, bad_off);
		*bad_end = w_align_down(*bad_off, w->page) + w->page;
		w->mmap_ns += clock_now_ns() - t0;
		w->n_stalls++;
		if (rc == 0)
			for (uint32_t i = 0; i < wu->n_ext; i++)
				w->mmap_bytes += w_ext_file_bytes(w, &w->ext[wu->first_ext + i]);
	}
	w->stall_ns += clock_now_ns() - t0;
	sl->reading = false;
	return rc;
}

/* ---- the window: which streamed units should be in slots now ---- */

static uint32_t w_dist(const struct weights *w, uint32_t from_pos, uint32_t unit)
{
	uint32_t p = (uint32_t)w->units[unit].stream_pos;
	return (p + w->n_stream - from_pos) % w->n_stream;
}

/* An unheld slot to reuse for the unit `need_dist` ahead of from_pos: an empty one, else the
 * one whose unit is needed last (and later than need_dist); -1 when none. */
static int w_victim(const struct weights *w, uint32_t from_pos, uint32_t need_dist)
{
	int best = -1;
	uint32_t best_d = 0;
	for (uint32_t s = 0; s < w->n_slots; s++) {
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
	uint32_t held = 0;
	for (uint32_t s = 0; s < w->n_slots; s++)
		held += w->slots[s].holds > 0;
	uint32_t want = w->n_slots - held;
	for (uint32_t j = 0; j < w->n_stream && want > 0; j++) {
		uint32_t u = w->stream[(w->cursor + j) % w->n_stream];
		int32_t s = w->units[u].slot;
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

/* ---- the API ---- */

static int w_read_resident(struct weights *w, struct st_err *err)
{
	uint32_t n_res = 0;
	for (uint32_t u = 0; u < w->n_units; u++)
		n_res += w->units[u].resident;
	if (n_res == 0)
		return 0;
	int rc = 0;
	if (w->io == WEIGHTS_IO_URING) {
		struct uring_req *reqs = calloc(n_res, sizeof *reqs);
		struct uring_seg *segs = calloc(w->n_ext ? w->n_ext : 1, sizeof *segs);
		if (!reqs || !segs) {
			free(reqs);
			free(segs);
			return st_errf(err, -ENOMEM, "out of memory");
		}
		uint32_t k = 0, e = 0;
		for (uint32_t u = 0; u < w->n_units; u++) {
			if (!w->units[u].resident)
				continue;
			w_unit_segs(w, u, w->units[u].res_buf, segs + e);
			reqs[k].segs = segs + e;
			reqs[k].n_segs = w->units[u].n_ext;
			e += w->units[u].n_ext;
			uring_reader_submit(w->reader, &reqs[k++], false);
		}
		k = 0;
		for (uint32_t u = 0; u < w->n_units; u++) {
			if (!w->units[u].resident)
				continue;
			int r = uring_reader_wait(w->reader, &reqs[k]);
			if (r < 0 && rc == 0) {
				rc = r;
				if (r == -ENODATA)
					st_errf(err, r, "reading resident unit %u of %s: the file ends "
						"early at byte %" PRIu64, u, w->path, reqs[k].err_off);
				else
					st_errf(err, r, "reading resident unit %u of %s at byte %" PRIu64
						": %s", u, w->path, reqs[k].err_off, strerror(-r));
			}
			k++;
		}
		free(reqs);
		free(segs);
		if (rc == 0 && !w->direct)
			posix_fadvise(w->fd, 0, 0, POSIX_FADV_DONTNEED);
		return rc;
	}
	/* MMAP: resident units are copies, so they survive eviction and file truncation */
	for (uint32_t u = 0; u < w->n_units && rc == 0; u++) {
		if (!w->units[u].resident)
			continue;
		const struct w_unit *wu = &w->units[u];
		for (uint32_t i = 0; i < wu->n_ext && rc == 0; i++) {
			const struct w_extent *x = &w->ext[wu->first_ext + i];
			uint64_t len = x->need;
			for (uint64_t done = 0; done < len;) {
				ssize_t got = pread(w->fd, wu->res_buf + x->buf_off + done, len - done,
						    (off_t)(x->file_off + done));
				if (got < 0 && errno == EINTR)
					continue;
				if (got <= 0) {
					rc = got < 0 ? -errno : -ENODATA;
					st_errf(err, rc, "reading resident unit %u of %s at byte %" PRIu64
						": %s", u, w->path, x->file_off + done,
						got < 0 ? strerror(-rc) : "the file ends early");
					break;
				}
				done += (uint64_t)got;
			}
			w->mmap_bytes += w_ext_file_bytes(w, x);
			posix_fadvise(w->fd, (off_t)x->file_off, (off_t)x->len, POSIX_FADV_DONTNEED);
		}
	}
	return rc;
}

static int w_start_mmap(struct weights *w, struct st_err *err)
{
	if (w->direct) {
		int rc = w_open_file(w, false);
		if (rc < 0)
			return st_errf(err, rc, "cannot open %s: %s", w->path, strerror(-rc));
	}
	w->map_len = w_align_up(w->file_size, w->page);
	if (w->map_len == 0)
		return 0;
	void *p = mmap(NULL, w->map_len, PROT_READ, MAP_SHARED, w->fd, 0);
	if (p == MAP_FAILED) {
		int rc = -errno;
		return st_errf(err, rc, "cannot map %s: %s", w->path, strerror(-rc));
	}
	w->map = p;
	w_bus_register(w);
	return 0;
}

/* The streamed units in pass order, and where each unit hands the read-ahead on. */
static int w_order_stream(struct weights *w, struct st_err *err)
{
	uint32_t n_units = w->n_units;
	w->stream = calloc(n_units ? n_units : 1, sizeof *w->stream);
	if (!w->stream)
		return st_errf(err, -ENOMEM, "out of memory");
	for (uint32_t u = 0; u < n_units; u++) {
		struct w_unit *wu = &w->units[u];
		wu->stream_pos = -1;
		if (wu->resident) {
			w->bytes_resident += wu->bytes;
		} else {
			wu->stream_pos = (int32_t)w->n_stream;
			w->stream[w->n_stream++] = u;
			w->bytes_streamed += wu->bytes;
		}
	}
	/* walking back over two laps, `next` is always the nearest streamed unit after k */
	uint32_t next = 0;
	for (uint64_t k = 2ull * n_units; k-- > 0;) {
		struct w_unit *wu = &w->units[k % n_units];
		if (k < n_units)
			wu->next_stream = next;
		if (wu->stream_pos >= 0)
			next = (uint32_t)wu->stream_pos;
	}
	return 0;
}

/* The resident copies and the streaming buffers (URING). */
static int w_alloc_buffers(struct weights *w, struct st_err *err)
{
	char b[32];
	if (w->bytes_resident > 0) {
		w->res_len = w->bytes_resident;
		w->res_mem = w_map_anon(w->res_len);
		if (!w->res_mem)
			return st_errf(err, -ENOMEM, "cannot allocate %s for the resident weights",
				       w_size_str(w->res_len, b, sizeof b));
		uint64_t off = 0;
		for (uint32_t u = 0; u < w->n_units; u++) {
			if (w->units[u].resident) {
				w->units[u].res_buf = w->res_mem + off;
				off += w->units[u].bytes;
			}
		}
	}
	if (w->io == WEIGHTS_IO_URING && w->n_slots > 0) {
		w->slot_len = (uint64_t)w->n_slots * w->slot_bytes;
		w->slot_mem = w_map_anon(w->slot_len);
		if (!w->slot_mem)
			return st_errf(err, -ENOMEM, "cannot allocate %u streaming buffers of %s",
				       w->n_slots, w_size_str(w->slot_bytes, b, sizeof b));
	}
	return 0;
}

/* Start the reader (URING), or map the file and start the read-ahead thread (MMAP, and
 * URING where io_uring is unavailable: kernel too old, io_uring_disabled, seccomp). */
static int w_start_io(struct weights *w, struct st_err *err)
{
	int rc;
	if (w->io == WEIGHTS_IO_URING) {
		struct iovec iov = { w->slot_mem, w->slot_len };
		struct uring_reader_config rcfg = {
			.fd = w->fd,
			.align = w->direct ? w->block : 1,
			.queue_depth = w->queue_depth,
			.chunk_bytes = w->chunk_bytes,
			.bufs = w->slot_mem ? &iov : NULL,
			.n_bufs = w->slot_mem ? 1 : 0,
		};
		struct st_err why = { "" };
		if (uring_reader_open(&rcfg, &w->reader, &why) < 0) {
			log_warn("weights: %s; falling back to --io mmap", why.msg);
			if (w->slot_mem)
				munmap(w->slot_mem, w->slot_len);
			w->slot_mem = NULL;
			w->slot_len = 0;
			w->io = WEIGHTS_IO_MMAP;
		}
	}
	if (w->io == WEIGHTS_IO_MMAP) {
		rc = w_start_mmap(w, err);
		if (rc < 0)
			return rc;
		rc = w_adv_start(w, err);
		if (rc < 0)
			return rc;
	}

	w->slots = calloc(w->n_slots ? w->n_slots : 1, sizeof *w->slots);
	if (!w->slots)
		return st_errf(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < w->n_slots; i++) {
		struct w_slot *sl = &w->slots[i];
		sl->unit = -1;
		sl->buf = w->slot_mem ? w->slot_mem + (uint64_t)i * w->slot_bytes : NULL;
		sl->segs = calloc(w->max_ext ? w->max_ext : 1, sizeof *sl->segs);
		if (!sl->segs)
			return st_errf(err, -ENOMEM, "out of memory");
	}
	return 0;
}

int weights_open(const struct weights_config *cfg, const struct weights_unit *units,
		 uint32_t n_units, struct weights **out, struct st_err *err)
{
	int rc;
	*out = NULL;
	if (!cfg || !cfg->path || (n_units > 0 && !units) ||
	    (cfg->io != WEIGHTS_IO_URING && cfg->io != WEIGHTS_IO_MMAP))
		return st_errf(err, -EINVAL, "weights_open: no file, no units, or no such io mode");
	struct weights *w = calloc(1, sizeof *w);
	if (!w)
		return st_errf(err, -ENOMEM, "out of memory");
	w->fd = -1;
	w->bus = -1;
	w->path = strdup(cfg->path);
	w->io = cfg->io;
	w->budget = cfg->budget;
	w->want_lock = cfg->mlock;
	w->locked = cfg->mlock;
	w->n_units = n_units;
	w->units = calloc(n_units ? n_units : 1, sizeof *w->units);
	if (!w->path || !w->units) {
		rc = st_errf(err, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = w_open(w, err);
	if (rc < 0)
		goto fail;
	w->queue_depth = cfg->queue_depth ? cfg->queue_depth : WEIGHTS_DEFAULT_QUEUE_DEPTH;
	w->chunk_bytes = (uint32_t)w_align_up(cfg->chunk_bytes ? cfg->chunk_bytes
					      : WEIGHTS_DEFAULT_CHUNK_BYTES, w->block);
	rc = w_build_units(w, units, err);
	if (rc < 0)
		goto fail;
	rc = w_plan(w, cfg->prefetch, err);
	if (rc < 0)
		goto fail;

	rc = w_order_stream(w, err);
	if (rc < 0)
		goto fail;
	rc = w_alloc_buffers(w, err);
	if (rc < 0)
		goto fail;
	rc = w_start_io(w, err);
	if (rc < 0)
		goto fail;
	rc = w_read_resident(w, err);
	if (rc < 0)
		goto fail;
	w_lock(w, w->res_mem, w->res_len, "resident weights");
	w_lock(w, w->slot_mem, w->slot_len, "streaming buffers");

	if (w->n_stream > 0) {
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

int weights_acquire(struct weights *w, uint32_t unit, struct st_err *err)
{
	if (unit >= w->n_units)
		return st_errf(err, -EINVAL, "weights: no unit %u (there are %u)", unit, w->n_units);
	/* a fault the caller did not weights_check: whatever used those zeros failed */
	int rc = w_bus_take(w, unit, err);
	if (rc < 0)
		return rc;
	struct w_unit *wu = &w->units[unit];
	if (wu->resident) {
		if (w->n_stream > 0)
			w->cursor = wu->next_stream;
		w->n_acquires++;
		return 0;
	}
	int32_t s = wu->slot;
	if (s >= 0 && w->slots[s].holds > 0) {
		w->slots[s].holds++;
		w->n_acquires++;
		return 0;
	}
	if (s < 0) {
		/* not read ahead: out-of-order use, or a read that failed before */
		uint32_t pos = (uint32_t)wu->stream_pos;
		int v = w_victim(w, pos, 0);
		if (v < 0)
			return st_errf(err, -EBUSY, "weights: cannot acquire unit %u: all %u streaming "
				       "buffers are held; release a unit first", unit, w->n_slots);
		w->n_misses++;
		w_slot_clear(w, (uint32_t)v);
		w_slot_start(w, (uint32_t)v, unit, false);
		s = v;
	}
	struct w_slot *sl = &w->slots[s];
	sl->holds = 1;
	w->cursor = wu->next_stream;
	w_fill(w);

	uint64_t bad = 0, bad_end = 0;
	bool was_prefetch = sl->prefetched && sl->reading;
	rc = w_slot_collect(w, (uint32_t)s, &bad, &bad_end);
	if (rc < 0 && was_prefetch) {
		/* the failure may be stale (the file was being replaced when we read ahead):
		 * read once more before giving up */
		w_slot_start(w, (uint32_t)s, unit, false);
		rc = w_slot_collect(w, (uint32_t)s, &bad, &bad_end);
	}
	if (rc < 0) {
		w->n_read_errors++;
		sl->holds = 0;
		w_slot_clear(w, (uint32_t)s);
		if (rc == -ENODATA) {
			struct stat st;
			uint64_t now = fstat(w->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
			return st_errf(err, -EIO, "weights: reading unit %u of %s: unexpected end of "
				       "file at byte %" PRIu64 " (the file has %" PRIu64 " bytes now, %"
				       PRIu64 " at open: truncated or replaced?)", unit, w->path, bad,
				       now, w->file_size);
		}
		return st_errf(err, rc, "weights: reading unit %u of %s, bytes %" PRIu64 "..%" PRIu64
			       ": %s", unit, w->path, bad, bad_end, strerror(-rc));
	}
	w->n_acquires++;
	return 0;
}

const void *weights_ptr(const struct weights *w, uint32_t unit, uint64_t file_offset)
{
	if (unit >= w->n_units)
		return NULL;
	const struct w_unit *wu = &w->units[unit];
	const struct w_extent *e = w_find_ext(w, unit, file_offset);
	if (!e)
		return NULL;
	if (wu->resident)
		return wu->res_buf + e->buf_off + (file_offset - e->file_off);
	if (wu->slot < 0 || w->slots[wu->slot].holds == 0)
		return NULL;
	if (w->io == WEIGHTS_IO_MMAP)
		return w->map + file_offset;
	return w->slots[wu->slot].buf + e->buf_off + (file_offset - e->file_off);
}

int weights_check(struct weights *w, uint32_t unit, struct st_err *err)
{
	return w_bus_take(w, unit < w->n_units ? unit : 0, err);
}

void weights_release(struct weights *w, uint32_t unit)
{
	if (unit >= w->n_units)
		return;
	struct w_unit *wu = &w->units[unit];
	if (wu->resident || wu->slot < 0)
		return;
	struct w_slot *sl = &w->slots[wu->slot];
	if (sl->holds == 0 || --sl->holds > 0)
		return;
	/* URING keeps the bytes until the slot is reused; MMAP gives the pages back now, so
	 * RSS stays within the plan */
	if (w->io == WEIGHTS_IO_MMAP)
		w_slot_clear(w, (uint32_t)wu->slot);
	w_fill(w);
}

/* "0-3,7,9" into buf */
static void w_unit_list(const struct weights *w, bool resident, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (uint32_t u = 0; u < w->n_units; u++) {
		if (w->units[u].resident != resident)
			continue;
		uint32_t v = u;
		while (v + 1 < w->n_units && w->units[v + 1].resident == resident)
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
	char b1[32], b2[32], b3[32], list[256];
	uint32_t n_res = w->n_units - w->n_stream;
	size_t n = 0;
	int k;
#define W_PUT(...) do { \
		k = snprintf(buf + n, cap - n, __VA_ARGS__); \
		if (k < 0 || (size_t)k >= cap - n) \
			return; \
		n += (size_t)k; \
	} while (0)
	W_PUT("weights: %s, %u units, %s (in %s blocks)\n", w->path, w->n_units,
	      w_size_str(w->bytes_units, b1, sizeof b1), w_size_str(w->block, b2, sizeof b2));
	if (w->budget == 0)
		W_PUT("budget: none; ");
	else
		W_PUT("budget %s; ", w_size_str(w->budget, b1, sizeof b1));
	if (n_res == 0) {
		W_PUT("resident: none\n");
	} else {
		w_unit_list(w, true, list, sizeof list);
		W_PUT("resident: %u units, %s: %s\n", n_res,
		      w_size_str(w->bytes_resident, b1, sizeof b1), list);
	}
	if (w->n_stream == 0) {
		W_PUT("streamed: none");
	} else {
		w_unit_list(w, false, list, sizeof list);
		W_PUT("streamed: %u units, %s read per pass (per token at batch 1), through %u buffers of %s (read-ahead %u): %s\n",
		      w->n_stream, w_size_str(w->bytes_streamed, b1, sizeof b1), w->n_slots,
		      w_size_str(w->slot_bytes, b2, sizeof b2), w->n_slots - 1, list);
		if (w->io == WEIGHTS_IO_URING)
			W_PUT("io: io_uring, %s, %s buffers, queue depth %u, %s reads",
			      w->direct ? "O_DIRECT" : "buffered (no O_DIRECT here)",
			      w->reader && uring_reader_registered(w->reader) ? "registered"
									      : "unregistered",
			      w->queue_depth, w_size_str(w->chunk_bytes, b3, sizeof b3));
		else
			W_PUT("io: mmap, madvise read-ahead, pages dropped after use");
	}
#undef W_PUT
}

bool weights_is_resident(const struct weights *w, uint32_t unit)
{
	return unit < w->n_units && w->units[unit].resident;
}

void weights_get_stats(const struct weights *w, struct weights_stats *out)
{
	memset(out, 0, sizeof *out);
	out->io = w->io;
	out->direct = w->io == WEIGHTS_IO_URING && w->direct;
	out->registered = w->reader && uring_reader_registered(w->reader);
	out->locked = w->want_lock && w->locked;
	out->n_units = w->n_units;
	out->n_streamed = w->n_stream;
	out->n_resident = w->n_units - w->n_stream;
	out->bytes_units = w->bytes_units;
	out->bytes_resident = w->bytes_resident;
	out->bytes_streamed_per_pass = w->bytes_streamed;
	out->n_slots = w->n_slots;
	out->slot_bytes = w->slot_bytes;
	out->prefetch = w->n_slots > 0 ? w->n_slots - 1 : 0;
	out->queue_depth = w->queue_depth;
	out->chunk_bytes = w->chunk_bytes;
	out->block_bytes = w->block;
	if (w->reader) {
		struct uring_reader_stats rs;
		uring_reader_get_stats(w->reader, &rs);
		out->bytes_read = rs.bytes;
		out->read_ns = rs.busy_ns;
	} else {
		out->bytes_read = w->mmap_bytes;
		out->read_ns = w->mmap_ns;
	}
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
	/* the reader first: it cancels what is in flight and waits for the kernel, after
	 * which no one writes into the buffers */
	uring_reader_close(w->reader);
	w_adv_stop(w);
	if (w->slots) {
		for (uint32_t s = 0; s < w->n_slots; s++)
			free(w->slots[s].segs);
		free(w->slots);
	}
	if (w->slot_mem)
		munmap(w->slot_mem, w->slot_len);
	if (w->res_mem)
		munmap(w->res_mem, w->res_len);
	w_bus_unregister(w);
	if (w->map)
		munmap((void *)w->map, w->map_len);
	if (w->fd >= 0)
		close(w->fd);
	free(w->stream);
	free(w->ext);
	free(w->units);
	free(w->path);
	free(w);
}
