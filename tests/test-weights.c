/* test-weights.c: the weight source against real files and real io_uring: every byte read
 * back is checked against a hash of its file offset, across budgets, io modes, read shapes,
 * out-of-order use, a file truncated under us, io_uring blocked by seccomp, and the RSS bound.
 * Not a benchmark (bench/weights-bench.c is). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "weights/weights.h"
#include "tests/tap.h"

/* AddressSanitizer makes mlock a no-op that succeeds, and shadows what we read. */
#ifdef __SANITIZE_ADDRESS__
#define ASAN 1
#else
#define ASAN 0
#endif

/* ---- file contents: the 8 bytes at offset 8q are word(q), little-endian ---- */

/* A bijection (odd multiply, xor-shift): no two words alike, so any misplaced byte shows,
 * and cheap enough to check every byte of every pass. */
static uint64_t word(uint64_t q)
{
	uint64_t v = q * 0x9e3779b97f4a7c15ull;
	return v ^ (v >> 29);
}

static uint8_t byte_at(uint64_t o)
{
	return (uint8_t)(word(o >> 3) >> ((o & 7) * 8));
}

static void fill_expected(uint8_t *buf, uint64_t off, uint64_t len)
{
	uint64_t i = 0;
	for (; i < len && ((off + i) & 7); i++)
		buf[i] = byte_at(off + i);
	for (; i + 8 <= len; i += 8) {
		uint64_t v = word((off + i) >> 3);
		memcpy(buf + i, &v, 8);
	}
	for (; i < len; i++)
		buf[i] = byte_at(off + i);
}

/* Whether [p, p + len) holds file bytes [off, off + len). */
static bool check_bytes(const uint8_t *p, uint64_t off, uint64_t len)
{
	uint64_t i = 0, diff = 0;
	for (; i < len && ((off + i) & 7); i++)
		diff |= p[i] ^ byte_at(off + i);
	for (; i + 8 <= len; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		diff |= v ^ word((off + i) >> 3);
	}
	for (; i < len; i++)
		diff |= p[i] ^ byte_at(off + i);
	return diff == 0;
}

static int write_range(int fd, uint64_t off, uint64_t len)
{
	static uint8_t buf[1 << 20];
	while (len > 0) {
		uint64_t n = len < sizeof buf ? len : sizeof buf;
		fill_expected(buf, off, n);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			return -errno;
		off += n;
		len -= n;
	}
	return 0;
}

static int make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = write_range(fd, 0, size);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* The file opened for reading, once per path for the whole test (as a daemon keeps its
 * model open); the weight source borrows the descriptor. */
static int file_fd(const char *path)
{
	static struct {
		char path[512];
		int fd;
	} open_files[8];
	static int n_open;
	for (int i = 0; i < n_open; i++)
		if (!strcmp(open_files[i].path, path))
			return open_files[i].fd;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || n_open == (int)(sizeof open_files / sizeof open_files[0]))
		tap_bail("open %s: %s", path, fd < 0 ? strerror(errno) : "too many files");
	snprintf(open_files[n_open].path, sizeof open_files[n_open].path, "%s", path);
	open_files[n_open++].fd = fd;
	return fd;
}

/* ---- a layout like a model's: units of 1-3 MB with odd offsets, gaps, several ranges ---- */

#define N_UNITS 32
#define MAX_RANGES 6

struct layout {
	struct weights_range ranges[N_UNITS][MAX_RANGES];
	struct weights_unit units[N_UNITS];
	uint64_t file_size;
};

static uint64_t rnd_state = 42;
static uint64_t rnd(uint64_t n)
{
	/* splitmix64 */
	uint64_t x = (rnd_state += 0x9e3779b97f4a7c15ull);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return (x ^ (x >> 31)) % n;
}

static void make_layout(struct layout *l)
{
	uint64_t off = 4096 + 13; /* a header, then tensors at odd offsets */
	/* file order: units 0..31, except that units 30 and 31 are placed first (like an
	 * output head stored before the layers): pass order != file order */
	static const uint32_t file_order[N_UNITS] = { 30, 31, 0,  1,  2,  3,  4,  5,  6,  7, 8,
						     9,	 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
						     20, 21, 22, 23, 24, 25, 26, 27, 28, 29 };
	for (uint32_t k = 0; k < N_UNITS; k++) {
		uint32_t u = file_order[k];
		uint32_t n = 1 + (uint32_t)rnd(4); /* 1..4 tensors */
		uint64_t target = (1u << 20) + rnd(2u << 20);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t len = target / n + rnd(4096);
			l->ranges[u][i] = (struct weights_range){ off, len };
			off += len;
			/* GGUF pads to 32 bytes; sometimes a real gap (another unit's tensor,
			 * or metadata) that is too wide to read through */
			off = (off + 31) / 32 * 32;
			if (rnd(4) == 0)
				off += 100000 + rnd(200000);
		}
		if (u == 5) { /* a zero-length range, and ranges handed over unsorted */
			l->ranges[u][n] = (struct weights_range){ 12345, 0 };
			struct weights_range t = l->ranges[u][0];
			l->ranges[u][0] = l->ranges[u][n - 1];
			l->ranges[u][n - 1] = t;
			n++;
		}
		if (u == 7 && n >= 2) /* overlapping ranges (two views of the same bytes) */
			l->ranges[u][1].offset -= 100;
		l->units[u] = (struct weights_unit){ l->ranges[u], n };
	}
	/* the last unit in the file ends exactly at an odd end of file */
	l->file_size = off - (off % 32 == 0 ? 32 - 7 : 0);
	struct weights_range *last = &l->ranges[29][l->units[29].n_ranges - 1];
	last->len = l->file_size - last->offset;
}

/* ---- helpers ---- */

static uint64_t layout_bytes(const struct layout *l)
{
	uint64_t n = 0;
	for (uint32_t u = 0; u < N_UNITS; u++)
		for (uint32_t i = 0; i < l->units[u].n_ranges; i++)
			n += l->units[u].ranges[i].len;
	return n;
}

/* Check every byte of unit u through weights_ptr; returns false on the first mismatch. */
static bool check_unit(struct weights *w, const struct layout *l, uint32_t u)
{
	for (uint32_t i = 0; i < l->units[u].n_ranges; i++) {
		const struct weights_range *g = &l->units[u].ranges[i];
		if (g->len == 0)
			continue;
		const uint8_t *p = weights_ptr(w, u, g->offset);
		const uint8_t *q = weights_ptr(w, u, g->offset + g->len - 1);
		if (!p || q != p + g->len - 1 || ((uintptr_t)p & 4095) != (g->offset & 4095)) {
			tap_diag("unit %u range %u: ptr %p, last %p", u, i, (const void *)p,
				 (const void *)q);
			return false;
		}
		if (!check_bytes(p, g->offset, g->len)) {
			tap_diag("unit %u range %u (offset %" PRIu64 "): wrong bytes", u, i, g->offset);
			return false;
		}
	}
	return true;
}

/* Run `passes` passes in pass order, checking all bytes. Returns units that failed. */
static int run_passes(struct weights *w, const struct layout *l, int passes)
{
	int bad = 0;
	for (int p = 0; p < passes; p++) {
		for (uint32_t u = 0; u < N_UNITS; u++) {
			struct st_err err = { "" };
			int rc = weights_acquire(w, u, &err);
			if (rc < 0) {
				tap_diag("acquire %u: %s", u, err.msg);
				bad++;
				continue;
			}
			bad += !check_unit(w, l, u);
			weights_release(w, u);
		}
	}
	return bad;
}

static const char *io_name(enum weights_io io)
{
	return io == WEIGHTS_IO_URING ? "uring" : "mmap";
}

/* ---- the tests ---- */

static uint64_t status_kb(const char *key);

struct shape {
	uint32_t queue_depth, chunk_bytes, prefetch;
};

/* Open at a budget, do passes, check the bytes and the accounting. */
static void test_budget(const char *path, const struct layout *l, enum weights_io io,
			uint64_t budget, const char *label, struct shape sh)
{
	struct weights_config cfg = {
		.fd = file_fd(path), .path = path, .budget = budget, .io = io, .prefetch = sh.prefetch,
		.queue_depth = sh.queue_depth, .chunk_bytes = sh.chunk_bytes,
	};
	struct weights *w = NULL;
	struct st_err err = { "" };
	int rc = weights_open(&cfg, l->units, N_UNITS, &w, &err);
	if (!tap_ok(rc == 0, "%s, budget %s: open (%s)", io_name(io), label, err.msg))
		return;
	const int passes = 2;
	int bad = run_passes(w, l, passes);
	tap_is_int(bad, 0, "%s, budget %s: %d passes, every byte right", io_name(io), label, passes);

	struct weights_stats st;
	weights_get_stats(w, &st);
	tap_ok(st.io == io, "%s, budget %s: io mode kept", io_name(io), label);
	tap_ok(st.n_resident + st.n_streamed == N_UNITS &&
	       st.bytes_resident + st.bytes_streamed_per_pass == st.bytes_units,
	       "%s, budget %s: %u resident + %u streamed units", io_name(io), label,
	       st.n_resident, st.n_streamed);
	if (budget > 0)
		tap_ok(st.bytes_resident + (uint64_t)st.n_slots * st.slot_bytes <= budget,
		       "%s, budget %s: resident %" PRIu64 " + %u x %" PRIu64 " slots fit", io_name(io),
		       label, st.bytes_resident, st.n_slots, st.slot_bytes);
	if (st.n_streamed > 0) {
		tap_ok(st.n_slots >= 2 || st.n_slots == st.n_streamed,
		       "%s, budget %s: %u slots", io_name(io), label, st.n_slots);
		if (sh.prefetch)
			tap_is_int(st.prefetch, sh.prefetch, "%s, budget %s: prefetch as asked",
				   io_name(io), label);
	}
	tap_is_int((int64_t)st.n_misses, 0, "%s, budget %s: in-order passes never miss the read-ahead",
		   io_name(io), label);
	/* nothing read twice per pass: resident once, streamed once per pass, plus at most the
	 * read-ahead into the next pass */
	uint64_t want = st.bytes_resident + passes * st.bytes_streamed_per_pass;
	uint64_t eof_cut = (passes + 1) * (uint64_t)st.block_bytes; /* the last block stops at EOF */
	uint64_t ahead = io == WEIGHTS_IO_URING ? (uint64_t)st.n_slots * st.slot_bytes : 0;
	tap_ok(st.bytes_read + eof_cut >= want && st.bytes_read <= want + ahead,
	       "%s, budget %s: read %" PRIu64 " bytes for %" PRIu64 " needed", io_name(io),
	       label, st.bytes_read, want);
	tap_is_int((int64_t)st.n_acquires, passes * N_UNITS, "%s, budget %s: acquires counted",
		   io_name(io), label);
	char plan[1024];
	weights_plan_describe(w, plan, sizeof plan);
	/* the plan says what a person needs: resident and streamed counts, the buffers, the mode */
	char want_res[64], want_str[64];
	if (st.n_resident == 0)
		snprintf(want_res, sizeof want_res, "resident: none");
	else
		snprintf(want_res, sizeof want_res, "resident: %u units", st.n_resident);
	if (st.n_streamed == 0)
		snprintf(want_str, sizeof want_str, "streamed: none");
	else
		snprintf(want_str, sizeof want_str, "streamed: %u units", st.n_streamed);
	tap_ok(strstr(plan, want_res) && strstr(plan, want_str) &&
	       (st.n_streamed == 0 ||
		(strstr(plan, "read per pass") &&
		 strstr(plan, io == WEIGHTS_IO_URING ? "io: io_uring" : "io: mmap"))),
	       "%s, budget %s: the plan states '%s', '%s', the bytes per pass and the io mode",
	       io_name(io), label, want_res, want_str);
	if (getenv("TEST_VERBOSE"))
		tap_diag("%s\nread %" PRIu64 " MiB, read %.3f s, stall %.3f s in %" PRIu64 " stalls",
			 plan, st.bytes_read >> 20, st.read_ns / 1e9, st.stall_ns / 1e9, st.n_stalls);
	weights_close(w);
}

/* The smallest budget, from the refusal of a 1-byte one (which must say it), checked:
 * that much opens, one byte less does not. */
static uint64_t min_budget(const char *path, const struct layout *l, uint64_t *total)
{
	struct weights_config cfg = { .fd = file_fd(path), .path = path, .budget = 1, .io = WEIGHTS_IO_URING };
	struct weights *w = NULL;
	struct st_err err = { "" };
	int rc = weights_open(&cfg, l->units, N_UNITS, &w, &err);
	const char *p = strstr(err.msg, "minimum is ");
	p = p ? strchr(p, '(') : NULL;
	uint64_t minb = p ? strtoull(p + 1, NULL, 10) : 0;
	tap_ok(rc == -ENOSPC && minb > 0 && strstr(err.msg, path),
	       "a 1-byte budget is refused, naming the minimum: %s", err.msg);
	cfg.budget = 0;
	rc = weights_open(&cfg, l->units, N_UNITS, &w, &err);
	struct weights_stats st;
	weights_get_stats(w, &st);
	*total = st.bytes_units;
	weights_close(w);
	cfg.budget = minb - 1;
	rc = weights_open(&cfg, l->units, N_UNITS, &w, &err);
	tap_is_int(rc, -ENOSPC, "a budget one byte under the minimum is refused");
	cfg.budget = minb;
	rc = weights_open(&cfg, l->units, N_UNITS, &w, &err);
	tap_is_int(rc, 0, "the minimum budget opens");
	weights_close(w);
	return minb;
}

/* Random order, nested holds, two units held, the -EBUSY limit, pointers outside. */
static void test_out_of_order(const char *path, const struct layout *l, enum weights_io io,
			      uint64_t budget)
{
	struct weights_config cfg = { .fd = file_fd(path), .path = path, .budget = budget, .io = io };
	struct weights *w = NULL;
	struct st_err err = { "" };
	if (!tap_ok(weights_open(&cfg, l->units, N_UNITS, &w, &err) == 0, "%s: open (%s)",
		    io_name(io), err.msg))
		return;
	struct weights_stats st;
	weights_get_stats(w, &st);
	int bad = 0;
	for (int i = 0; i < 200; i++) {
		uint32_t a = (uint32_t)rnd(N_UNITS), b = (uint32_t)rnd(N_UNITS);
		if (weights_acquire(w, a, &err) < 0) {
			tap_diag("acquire %u: %s", a, err.msg);
			bad++;
			continue;
		}
		bad += !check_unit(w, l, a);
		if (i % 3 == 0) { /* hold two at once */
			if (weights_acquire(w, b, &err) < 0) {
				tap_diag("acquire %u with %u held: %s", b, a, err.msg);
				bad++;
			} else {
				bad += !check_unit(w, l, b) || !check_unit(w, l, a);
				weights_release(w, b);
			}
		}
		weights_release(w, a);
	}
	tap_is_int(bad, 0, "%s: 200 random acquires, some two at a time, every byte right", io_name(io));

	/* nested acquire of the same unit, then pointers die at the last release */
	uint32_t s = 0;
	while (s < N_UNITS) {
		/* a streamed unit: ptr is NULL once released */
		if (weights_acquire(w, s, &err) == 0) {
			weights_release(w, s);
			if (!weights_ptr(w, s, l->units[s].ranges[0].offset))
				break;
		}
		s++;
	}
	if (s < N_UNITS) {
		weights_acquire(w, s, &err);
		weights_acquire(w, s, &err);
		weights_release(w, s);
		tap_ok(weights_ptr(w, s, l->units[s].ranges[0].offset) != NULL && check_unit(w, l, s),
		       "%s: nested acquire keeps unit %u after one release", io_name(io), s);
		weights_release(w, s);
		tap_ok(weights_ptr(w, s, l->units[s].ranges[0].offset) == NULL,
		       "%s: released streamed unit has no pointer", io_name(io));
	} else {
		tap_skip("no streamed unit");
		tap_skip("no streamed unit");
	}
	tap_ok(weights_ptr(w, 0, 1) == NULL && weights_ptr(w, N_UNITS, 0) == NULL,
	       "%s: offsets outside a unit have no pointer", io_name(io));

	/* hold as many streamed units as there are slots: one more is -EBUSY */
	uint32_t held[N_UNITS], n_held = 0;
	for (uint32_t u = 0; u < N_UNITS && n_held < st.n_slots; u++) {
		if (weights_acquire(w, u, &err) < 0)
			break;
		held[n_held++] = u;
	}
	/* residents take no slot: keep acquiring until a streamed unit finds none */
	int rc = 0;
	uint32_t extra = n_held;
	for (uint32_t u = n_held; u < N_UNITS; u++) {
		rc = weights_acquire(w, u, &err);
		if (rc < 0)
			break;
		held[extra++] = u;
	}
	if (st.n_streamed > st.n_slots)
		tap_ok(rc == -EBUSY && strstr(err.msg, "release"),
		       "%s: acquiring beyond the %u slots is -EBUSY: %s", io_name(io), st.n_slots, err.msg);
	else
		tap_skip("all streamed units fit the slots");
	for (uint32_t i = 0; i < extra; i++)
		weights_release(w, held[i]);
	tap_is_int(run_passes(w, l, 1), 0, "%s: usable after -EBUSY", io_name(io));
	weights_close(w);
}

/* Truncate the file under an open weight source, then put the bytes back. */
static void test_truncate(const char *path, const struct layout *l, enum weights_io io,
			  uint64_t budget)
{
	struct weights_config cfg = { .fd = file_fd(path), .path = path, .budget = budget, .io = io };
	struct weights *w = NULL;
	struct st_err err = { "" };
	if (!tap_ok(weights_open(&cfg, l->units, N_UNITS, &w, &err) == 0, "%s truncate: open (%s)",
		    io_name(io), err.msg))
		return;
	tap_is_int(run_passes(w, l, 1), 0, "%s truncate: a pass before", io_name(io));

	/* cut the file in the middle of unit 20's bytes: units 20..29 lose data */
	uint64_t cut = l->units[20].ranges[0].offset + 1000;
	/* ... while a streamed unit past the cut is held: URING has its copy; MMAP loses the
	 * pages at once and the touch would be SIGBUS: it must read on, and weights_check
	 * must report it */
	uint32_t held = N_UNITS;
	for (uint32_t u = 0; u < N_UNITS && held == N_UNITS; u++) {
		bool past = l->units[u].n_ranges > 0;
		for (uint32_t i = 0; i < l->units[u].n_ranges; i++)
			past &= l->units[u].ranges[i].offset > cut;
		if (past && weights_ptr(w, u, l->units[u].ranges[0].offset) == NULL)
			held = u;
	}
	if (held < N_UNITS && weights_acquire(w, held, &err) < 0) {
		tap_diag("acquire %u: %s", held, err.msg);
		held = N_UNITS;
	}
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)cut) != 0)
		tap_bail("truncate %s: %s", path, strerror(errno));
	if (held < N_UNITS) {
		bool same = true;
		for (uint32_t i = 0; i < l->units[held].n_ranges; i++) {
			const struct weights_range *g = &l->units[held].ranges[i];
			const uint8_t *p = weights_ptr(w, held, g->offset);
			same &= p && check_bytes(p, g->offset, g->len);
		}
		err.msg[0] = '\0';
		int rc = weights_check(w, held, &err);
		weights_release(w, held);
		char want[64];
		snprintf(want, sizeof want, "unit %u ", held);
		if (io == WEIGHTS_IO_MMAP)
			tap_ok(rc == -EIO && !same && strstr(err.msg, path) && strstr(err.msg, want) &&
			       strstr(err.msg, "truncated"), "mmap truncate: a held unit cut under us "
			       "reads on (no SIGBUS) and weights_check fails: %s", err.msg);
		else
			tap_ok(rc == 0 && same, "uring truncate: a held unit cut under us keeps its "
			       "bytes and weights_check passes");
	} else {
		tap_skip("no streamed unit past the cut");
	}

	/* resident units are copies and survive; streamed units whose bytes were cut fail
	 * with a message naming file, unit and offset; the others still read fine */
	int bad = 0, failed = 0;
	for (uint32_t u = 0; u < N_UNITS; u++) {
		bool lost = false;
		for (uint32_t i = 0; i < l->units[u].n_ranges; i++)
			lost |= l->units[u].ranges[i].offset + l->units[u].ranges[i].len > cut;
		bool resident = weights_ptr(w, u, l->units[u].ranges[0].offset) != NULL;
		err.msg[0] = '\0';
		int rc = weights_acquire(w, u, &err);
		if (rc == 0) {
			/* only touch what is still there: in MMAP a page past EOF is SIGBUS */
			if (lost && !resident) {
				tap_diag("unit %u: acquire of cut bytes succeeded", u);
				bad++;
			} else if (!check_unit(w, l, u)) {
				bad++;
			}
			weights_release(w, u);
			continue;
		}
		failed++;
		char want[64];
		snprintf(want, sizeof want, "unit %u ", u);
		if (!lost || resident || !strstr(err.msg, path) || !strstr(err.msg, want) ||
		    !strstr(err.msg, "byte") || !strstr(err.msg, "truncated")) {
			tap_diag("unit %u (%s, %s): %s", u, lost ? "cut" : "intact",
				 resident ? "resident" : "streamed", err.msg);
			bad++;
		}
		if (failed == 1)
			tap_diag("%s", err.msg);
	}
	struct weights_stats st;
	weights_get_stats(w, &st);
	tap_ok(bad == 0 && failed > 0, "%s truncate: %d cut streamed units fail with file, unit, "
	       "offset; the rest read right", io_name(io), failed);
	tap_ok(st.n_read_errors >= (uint64_t)failed, "%s truncate: read errors counted",
	       io_name(io));

	/* put the bytes back: the same source works again */
	if (write_range(fd, cut, l->file_size - cut) != 0 || fsync(fd) != 0)
		tap_bail("restore %s: %s", path, strerror(errno));
	close(fd);
	tap_is_int(run_passes(w, l, 2), 0, "%s truncate: after restoring the file, 2 passes right",
		   io_name(io));
	weights_close(w);
}

/* In a child, block io_uring_setup with seccomp (-ENOSYS, like an old kernel or a container
 * policy): the weight source must fall back to mmap and still read every byte. */
static void test_seccomp_fallback(const char *path, const struct layout *l, uint64_t budget)
{
	pid_t pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { sizeof f / sizeof f[0], f };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
			_exit(3);
		struct weights_config cfg = { .fd = file_fd(path), .path = path, .budget = budget, .io = WEIGHTS_IO_URING };
		struct weights *w = NULL;
		struct st_err err = { "" };
		if (weights_open(&cfg, l->units, N_UNITS, &w, &err) != 0)
			_exit(4);
		struct weights_stats st;
		weights_get_stats(w, &st);
		if (st.io != WEIGHTS_IO_MMAP)
			_exit(5);
		int bad = run_passes(w, l, 2);
		weights_close(w);
		_exit(bad ? 6 : 0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
	if (code == 3)
		tap_skip("seccomp unavailable");
	else
		tap_is_int(code, 0, "io_uring blocked by seccomp: falls back to mmap, bytes right "
			   "(3 no seccomp, 4 open failed, 5 not mmap, 6 bad bytes)");
}

/* In a child without CAP_IPC_LOCK and with a 64 KiB RLIMIT_MEMLOCK (a default systemd
 * service, a non-root user): registering buffers and mlock fail, which must cost only
 * warnings; reads go through plain READ and the bytes stay right. */
static void test_memlock_limit(const char *path, const struct layout *l, uint64_t budget)
{
	pid_t pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];
		if (syscall(SYS_capget, &h, d) != 0)
			_exit(3);
		d[0].effective &= ~(1u << CAP_IPC_LOCK);
		d[0].permitted &= ~(1u << CAP_IPC_LOCK);
		d[0].inheritable &= ~(1u << CAP_IPC_LOCK);
		struct rlimit rl = { 64u << 10, 64u << 10 };
		if (syscall(SYS_capset, &h, d) != 0 || setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
			_exit(3);
		struct weights_config cfg = {
			.fd = file_fd(path), .path = path, .budget = budget, .io = WEIGHTS_IO_URING, .mlock = true,
		};
		struct weights *w = NULL;
		struct st_err err = { "" };
		if (weights_open(&cfg, l->units, N_UNITS, &w, &err) != 0)
			_exit(4);
		struct weights_stats st;
		weights_get_stats(w, &st);
		if (st.io != WEIGHTS_IO_URING || st.registered || (st.locked && !ASAN))
			_exit(5);
		int bad = run_passes(w, l, 2);
		weights_close(w);
		_exit(bad ? 6 : 0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
	if (code == 3)
		tap_skip("cannot drop CAP_IPC_LOCK or lower RLIMIT_MEMLOCK here");
	else
		tap_is_int(code, 0, "64 KiB memlock limit: unregistered reads, unlocked, bytes right "
			   "(4 open failed, 5 registered or locked, 6 bad bytes)");
}

/* With the limits a root process has, mlock works and buffers register. */
static void test_mlock(const char *path, const struct layout *l, uint64_t budget)
{
	struct weights_config cfg = { .fd = file_fd(path), .path = path, .budget = budget, .io = WEIGHTS_IO_URING,
				      .mlock = true };
	struct weights *w = NULL;
	struct st_err err = { "" };
	if (!tap_ok(weights_open(&cfg, l->units, N_UNITS, &w, &err) == 0, "mlock: open (%s)", err.msg))
		return;
	struct weights_stats st;
	weights_get_stats(w, &st);
	uint64_t locked_kb = status_kb("VmLck:");
	if (ASAN)
		tap_skip("AddressSanitizer turns mlock into a no-op");
	else if (geteuid() == 0)
		tap_ok(st.locked && st.registered && locked_kb >= (st.bytes_resident >> 10),
		       "mlock as root: %" PRIu64 " KiB locked, buffers registered", locked_kb);
	else
		tap_skip("not root: mlock may fail on RLIMIT_MEMLOCK (locked: %d)", st.locked);
	tap_is_int(run_passes(w, l, 1), 0, "mlock: a pass right");
	weights_close(w);
}

static uint64_t status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	uint64_t v = 0;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, key, n) == 0)
			v = strtoull(line + n + 1, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

/* A child opens a 256 MiB file with a 32 MiB budget and does passes; its peak RSS may grow
 * by the budget and a small margin, no more. */
static void test_rss(const char *dir, enum weights_io io)
{
	const uint64_t size = 256ull << 20, budget = 32ull << 20, unit = 4ull << 20;
	enum { N = 64 };
	static struct weights_range ranges[N];
	static struct weights_unit units[N];
	char path[512];
	snprintf(path, sizeof path, "%s/rss.bin", dir);
	if (access(path, F_OK) != 0 && make_file(path, size) != 0)
		tap_bail("cannot write %s", path);
	for (uint32_t u = 0; u < N; u++) {
		ranges[u] = (struct weights_range){ u * unit + 100, unit - 200 };
		units[u] = (struct weights_unit){ &ranges[u], 1 };
	}
	int pfd[2];
	if (pipe(pfd) != 0)
		tap_bail("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		uint64_t out[4] = { 0 };
		int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) { /* "5": reset the peak to now */
			if (write(fd, "5", 1) != 1)
				out[3] = 1;
			close(fd);
		}
		out[0] = status_kb("VmRSS:");
		struct weights_config cfg = { .fd = file_fd(path), .path = path, .budget = budget, .io = io };
		struct weights *w = NULL;
		struct st_err err = { "" };
		int bad = 0;
		if (weights_open(&cfg, units, N, &w, &err) != 0) {
			bad = 1000;
		} else {
			for (int p = 0; p < 3; p++) {
				for (uint32_t u = 0; u < N; u++) {
					if (weights_acquire(w, u, &err) != 0) {
						bad++;
						continue;
					}
					/* read it all, like a matmul would */
					bad += !check_bytes(weights_ptr(w, u, ranges[u].offset),
							    ranges[u].offset, ranges[u].len);
					weights_release(w, u);
				}
			}
			out[2] = status_kb("VmRSS:");
			weights_close(w);
		}
		out[1] = status_kb("VmHWM:");
		out[3] = (uint64_t)bad;
		if (write(pfd[1], out, sizeof out) != (ssize_t)sizeof out)
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	uint64_t in[4] = { 0 };
	ssize_t got = read(pfd[0], in, sizeof in);
	close(pfd[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	if (!tap_ok(got == (ssize_t)sizeof in && in[3] == 0, "rss %s: child ran 3 passes, bytes right",
		    io_name(io)))
		return;
	uint64_t grew_kb = in[1] > in[0] ? in[1] - in[0] : 0;
	uint64_t margin_kb = 6 << 10; /* ring, tables, thread stacks, boundary pages */
	/* ASan's shadow of the pages we read counts too: 1/8 of the mapped file in MMAP */
	if (ASAN && io == WEIGHTS_IO_MMAP)
		margin_kb += (size / 8) >> 10;
	tap_ok(grew_kb <= (budget >> 10) + margin_kb,
	       "rss %s: peak grew %" PRIu64 " KiB over %" PRIu64 " KiB at start (budget %" PRIu64
	       " KiB, rss at the end %" PRIu64 " KiB)", io_name(io), grew_kb, in[0], budget >> 10,
	       in[2]);
}

int main(void)
{
	log_set_level(LOG_LVL_WARNING);

	const char *dir = tap_tmpdir();
	char path[512];
	snprintf(path, sizeof path, "%s/weights.bin", dir);
	static struct layout l;
	make_layout(&l);
	if (make_file(path, l.file_size) != 0)
		tap_bail("cannot write %s", path);
	tap_diag("file %s: %" PRIu64 " bytes, %" PRIu64 " in %u units", path, l.file_size,
		 layout_bytes(&l), N_UNITS);

	uint64_t total = 0;
	uint64_t minb = min_budget(path, &l, &total);
	tap_diag("units take %" PRIu64 " bytes in memory; the smallest budget is %" PRIu64, total, minb);

	static const enum weights_io ios[] = { WEIGHTS_IO_URING, WEIGHTS_IO_MMAP };
	for (size_t m = 0; m < 2; m++) {
		enum weights_io io = ios[m];
		struct shape def = { 0, 0, 0 };
		test_budget(path, &l, io, 0, "unlimited", def);
		test_budget(path, &l, io, total, "= total", def);
		test_budget(path, &l, io, total * 3 / 4, "3/4", def);
		test_budget(path, &l, io, total / 2, "1/2", def);
		test_budget(path, &l, io, minb + (4u << 20), "min + 4M", def);
		test_budget(path, &l, io, minb, "minimum", def);
		test_budget(path, &l, io, total / 2, "1/2, qd 3, 64K reads, prefetch 3",
			    (struct shape){ 3, 64u << 10, 3 });
		test_budget(path, &l, io, minb, "minimum, qd 64, 3M reads",
			    (struct shape){ 64, 3u << 20, 0 });
		test_out_of_order(path, &l, io, total / 3);
		test_truncate(path, &l, io, total / 3);
	}
	/* tmpfs: O_DIRECT since Linux 6.6, buffered before; either way the bytes must come */
	char shm[256];
	snprintf(shm, sizeof shm, "/dev/shm/strata-test-weights.%d", (int)getpid());
	if (access("/dev/shm", W_OK) == 0 && make_file(shm, l.file_size) == 0) {
		test_budget(shm, &l, WEIGHTS_IO_URING, total / 2, "1/2 on tmpfs", (struct shape){ 0, 0, 0 });
		unlink(shm);
	} else {
		tap_skip("no writable /dev/shm");
	}
	test_seccomp_fallback(path, &l, total / 2);
	test_memlock_limit(path, &l, total / 2);
	test_mlock(path, &l, total / 2);
	test_rss(dir, WEIGHTS_IO_URING);
	test_rss(dir, WEIGHTS_IO_MMAP);
	return tap_done();
}
