/* test-weights-change.c: the weight source and its file over time. It reads the file it was
 * given by descriptor, whatever happens to the path; it refuses descriptors it cannot use;
 * after the file is rewritten in place, weights_revalidate makes the next pass see the new
 * bytes (no read-ahead from before, resident copies read again), and a changed header
 * (another model) or size fails. Also the progress of the resident load. Both io modes. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "weights/weights.h"
#include "tests/tap.h"

/* ---- file contents: the 8 bytes at offset 8q are word(q, seed) ---- */

static uint64_t word(uint64_t q, uint64_t seed)
{
	uint64_t v = (q + seed * 0x632be59bd9b4e019ull) * 0x9e3779b97f4a7c15ull;
	return v ^ (v >> 29);
}

/* Whether [p, p + len) holds bytes [off, off + len) of contents `seed`. */
static bool check_bytes(const uint8_t *p, uint64_t off, uint64_t len, uint64_t seed)
{
	uint64_t diff = 0;
	for (uint64_t i = 0; i < len; i++)
		diff |= p[i] ^ (uint8_t)(word((off + i) >> 3, seed) >> (((off + i) & 7) * 8));
	return diff == 0;
}

/* Write bytes [off, off + len) of contents `seed` (off and len multiples of 8). */
static void write_seed(int fd, uint64_t off, uint64_t len, uint64_t seed)
{
	static uint64_t buf[1 << 15];
	while (len > 0) {
		uint64_t n = len < sizeof buf ? len : sizeof buf;
		for (uint64_t i = 0; i < n / 8; i++)
			buf[i] = word(off / 8 + i, seed);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			tap_bail("pwrite: %s", strerror(errno));
		off += n;
		len -= n;
	}
}

/* ---- the layout: a 4 KiB header, then 8 units of 256 KiB (a little inside each) ---- */

#define HEADER 4096u
#define N_UNITS 8
#define UNIT (256u << 10)
#define FILE_SIZE (HEADER + N_UNITS * UNIT)

static struct weights_range ranges[N_UNITS];
static struct weights_unit units[N_UNITS];
static uint64_t seed_of[N_UNITS]; /* what each unit's bytes are now */

static void make_units(void)
{
	for (uint32_t u = 0; u < N_UNITS; u++) {
		ranges[u] = (struct weights_range){ HEADER + u * UNIT + 96, UNIT - 200 };
		units[u] = (struct weights_unit){ &ranges[u], 1 };
	}
}

/* A fresh file of contents `seed` at path. */
static void make_file(const char *path, uint64_t seed)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		tap_bail("%s: %s", path, strerror(errno));
	write_seed(fd, 0, FILE_SIZE, seed);
	close(fd);
	for (uint32_t u = 0; u < N_UNITS; u++)
		seed_of[u] = seed;
}

/* Rewrite unit u's whole 256 KiB in place with contents `seed`. A pause first, so the
 * change shows in the timestamps even where they are coarse. */
static void rewrite_unit(const char *path, uint32_t u, uint64_t seed)
{
	nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		tap_bail("%s: %s", path, strerror(errno));
	write_seed(fd, HEADER + u * UNIT, UNIT, seed);
	close(fd);
	seed_of[u] = seed;
}

/* One pass; units whose bytes are not seed_of[u] (or that fail) are counted. */
static int pass(struct weights *w)
{
	int bad = 0;
	for (uint32_t u = 0; u < N_UNITS; u++) {
		struct st_err err = { "" };
		if (weights_acquire(w, u, &err) < 0) {
			tap_diag("acquire %u: %s", u, err.msg);
			bad++;
			continue;
		}
		const uint8_t *p = weights_ptr(w, u, ranges[u].offset);
		if (!p || !check_bytes(p, ranges[u].offset, ranges[u].len, seed_of[u])) {
			tap_diag("unit %u (%s): not the bytes of seed %" PRIu64, u,
				 weights_is_resident(w, u) ? "resident" : "streamed", seed_of[u]);
			bad++;
		}
		weights_release(w, u);
	}
	return bad;
}

static const char *io_name(enum weights_io io)
{
	return io == WEIGHTS_IO_URING ? "uring" : "mmap";
}

/* ---- descriptors ---- */

static void test_descriptors(const char *dir, const char *path)
{
	struct weights *w = NULL;
	struct st_err err = { "" };
	struct weights_config cfg = { .path = path, .io = WEIGHTS_IO_URING };

	cfg.fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == -EINVAL && !w &&
	       strstr(err.msg, "not a regular file"), "a directory: -EINVAL: %s", err.msg);
	close(cfg.fd);
	cfg.fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == -EINVAL &&
	       strstr(err.msg, "O_NONBLOCK"), "O_NONBLOCK: -EINVAL: %s", err.msg);
	close(cfg.fd);
	cfg.fd = open(path, O_WRONLY | O_CLOEXEC);
	tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == -EINVAL &&
	       strstr(err.msg, "not open for reading"), "write-only: -EINVAL: %s", err.msg);
	close(cfg.fd);
	cfg.fd = -1;
	tap_is_int(weights_open(&cfg, units, N_UNITS, &w, &err), -EINVAL, "no descriptor: -EINVAL");
	cfg.fd = open(path, O_RDONLY | O_CLOEXEC);
	cfg.header_bytes = FILE_SIZE + 1;
	tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == -EINVAL &&
	       strstr(err.msg, "longer than the file"), "a header longer than the file: %s", err.msg);
	close(cfg.fd);

	/* O_DIRECT comes from reopening the descriptor's inode: wherever the path can be
	 * opened O_DIRECT, the source says it reads O_DIRECT */
	int probe = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	cfg = (struct weights_config){ .fd = open(path, O_RDONLY | O_CLOEXEC), .path = path,
				       .budget = 3 * UNIT, .io = WEIGHTS_IO_URING };
	if (tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == 0, "uring: opens (%s)", err.msg)) {
		struct weights_stats st;
		weights_get_stats(w, &st);
		tap_ok(st.io != WEIGHTS_IO_URING || st.direct == (probe >= 0),
		       "uring: O_DIRECT %s, as the path itself allows (%s)", st.direct ? "yes" : "no",
		       probe >= 0 ? "yes" : "no");
		weights_close(w);
	}
	if (probe >= 0)
		close(probe);
	close(cfg.fd);
}

/* The path replaced by another file (rename, as a deploy does) after open: the source
 * keeps reading the file it was given, and weights_revalidate sees no change in it. */
static void test_path_swapped(const char *dir, const char *path, enum weights_io io)
{
	char other[600];
	snprintf(other, sizeof other, "%s/other.bin", dir);
	make_file(path, 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct weights_config cfg = { .fd = fd, .path = path, .header_bytes = HEADER,
				      .budget = 4 * UNIT, .io = io };
	struct weights *w = NULL;
	struct st_err err = { "" };
	if (!tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == 0, "%s swap: opens (%s)",
		    io_name(io), err.msg)) {
		close(fd);
		return;
	}
	tap_is_int(pass(w), 0, "%s swap: a pass before", io_name(io));
	int ofd = open(other, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (ofd < 0)
		tap_bail("%s: %s", other, strerror(errno));
	write_seed(ofd, 0, FILE_SIZE, 2);
	close(ofd);
	if (rename(other, path) != 0)
		tap_bail("rename: %s", strerror(errno));
	int rc = weights_revalidate(w, &err);
	int bad = pass(w) + pass(w);
	tap_ok(rc == 0 && bad == 0, "%s swap: another file renamed over the path changes "
	       "nothing: the same bytes, 2 passes (revalidate %d)", io_name(io), rc);
	weights_close(w);
	close(fd);
}

/* ---- rewritten in place ---- */

static void test_rewrite(const char *path, enum weights_io io)
{
	make_file(path, 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	/* 5 units' worth: 3 resident (0, 2, 4), 5 streamed through 2 buffers */
	struct weights_config cfg = { .fd = fd, .path = path, .header_bytes = HEADER,
				      .budget = 5 * UNIT, .io = io };
	struct weights *w = NULL;
	struct st_err err = { "" };
	if (!tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == 0, "%s: opens (%s)",
		    io_name(io), err.msg)) {
		close(fd);
		return;
	}
	struct weights_stats st0, st;
	weights_get_stats(w, &st0);
	uint32_t res = N_UNITS, str = N_UNITS, str2 = N_UNITS;
	for (uint32_t u = 0; u < N_UNITS; u++) {
		if (weights_is_resident(w, u))
			res = res == N_UNITS ? u : res;
		else if (str == N_UNITS)
			str = u;
		else if (str2 == N_UNITS)
			str2 = u;
	}
	if (!tap_ok(res < N_UNITS && str2 < N_UNITS && st0.io == io,
		    "%s: units resident and streamed (%u resident, %u streamed)", io_name(io),
		    st0.n_resident, st0.n_streamed))
		goto out;
	tap_is_int(pass(w), 0, "%s: a pass", io_name(io));
	/* the read-ahead now holds the first streamed units for the next pass */

	tap_ok(weights_revalidate(w, &err) == 0, "%s: an unchanged file revalidates", io_name(io));
	weights_get_stats(w, &st);
	uint64_t read0 = st.bytes_read;

	/* the streamed units read ahead, rewritten */
	err.msg[0] = '\0';
	rewrite_unit(path, str, 3);
	rewrite_unit(path, str2, 3);
	int rc = weights_revalidate(w, &err);
	tap_ok(rc == 0 && pass(w) == 0, "%s: streamed units %u and %u rewritten: the next pass "
	       "has their new bytes, not the read-ahead (%s)", io_name(io), str, str2, err.msg);

	/* a resident unit rewritten: read again in place */
	rewrite_unit(path, res, 4);
	weights_get_stats(w, &st);
	uint64_t before = st.bytes_read;
	rc = weights_revalidate(w, &err);
	weights_get_stats(w, &st);
	tap_ok(rc == 0 && pass(w) == 0 && st.bytes_read - before >= st.bytes_resident,
	       "%s: resident unit %u rewritten: the next pass has its new bytes (%" PRIu64
	       " bytes read again)", io_name(io), res, st.bytes_read - before);
	tap_ok(st.bytes_read > read0, "%s: re-reads are counted", io_name(io));

	/* a different header: another model in place of this one */
	int wfd = open(path, O_WRONLY | O_CLOEXEC);
	nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
	write_seed(wfd, 0, 64, 5);
	rc = weights_revalidate(w, &err);
	tap_ok(rc == -ESTALE && strstr(err.msg, path) && strstr(err.msg, "different file") &&
	       strstr(err.msg, "restarted"), "%s: a changed header: -ESTALE: %s", io_name(io),
	       err.msg);
	tap_is_int(weights_revalidate(w, &err), -ESTALE, "%s: ... and again", io_name(io));
	write_seed(wfd, 0, 64, 1);
	err.msg[0] = '\0';
	rc = weights_revalidate(w, &err);
	tap_ok(rc == 0 && pass(w) == 0, "%s: the header put back: usable again (%s)", io_name(io),
	       err.msg);

	/* truncated, then whole again */
	if (ftruncate(wfd, FILE_SIZE / 2) != 0)
		tap_bail("ftruncate: %s", strerror(errno));
	rc = weights_revalidate(w, &err);
	tap_ok(rc == -EIO && strstr(err.msg, path) && strstr(err.msg, "truncated"),
	       "%s: truncated: -EIO: %s", io_name(io), err.msg);
	for (uint32_t u = 0; u < N_UNITS; u++)
		write_seed(wfd, HEADER + u * UNIT, UNIT, seed_of[u] = 6);
	err.msg[0] = '\0';
	rc = weights_revalidate(w, &err);
	tap_ok(rc == 0 && pass(w) == 0 && pass(w) == 0, "%s: whole again, with new bytes: "
	       "2 passes right (%s)", io_name(io), err.msg);
	close(wfd);
out:
	weights_close(w);
	close(fd);
}

/* ---- progress ---- */

struct progress_log {
	uint64_t n, first_done, last_done, total, backwards;
};

static void on_progress(void *user, uint64_t done, uint64_t total)
{
	struct progress_log *p = user;
	if (p->n == 0)
		p->first_done = done;
	else if (done < p->last_done || total != p->total)
		p->backwards++;
	p->n++;
	p->last_done = done;
	p->total = total;
}

static void test_progress(const char *path, enum weights_io io)
{
	make_file(path, 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct progress_log log = { 0 };
	struct weights_config cfg = { .fd = fd, .path = path, .budget = 5 * UNIT, .io = io,
				      .progress = on_progress, .progress_user = &log };
	struct weights *w = NULL;
	struct st_err err = { "" };
	if (tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == 0, "%s progress: opens (%s)",
		   io_name(io), err.msg)) {
		struct weights_stats st;
		weights_get_stats(w, &st);
		tap_ok(log.n >= 2 && log.n <= 110 && log.first_done == 0 && log.backwards == 0 &&
		       log.last_done == log.total && log.total == st.bytes_resident &&
		       log.total <= st.bytes_read,
		       "%s progress: %" PRIu64 " calls from 0 to %" PRIu64 " bytes, never back",
		       io_name(io), log.n, log.total);
		tap_ok(st.load_ns > 0 && st.load_ns <= st.read_ns, "%s progress: load time %.3f ms "
		       "counted", io_name(io), st.load_ns / 1e6);
		tap_is_int(pass(w), 0, "%s progress: a pass right", io_name(io));
		weights_close(w);
	}
	close(fd);
}

int main(void)
{
	log_set_level(LOG_LVL_WARNING);
	const char *dir = tap_tmpdir();
	char path[512];
	snprintf(path, sizeof path, "%s/w.bin", dir);
	make_units();
	make_file(path, 1);

	test_descriptors(dir, path);
	static const enum weights_io ios[] = { WEIGHTS_IO_URING, WEIGHTS_IO_MMAP };
	for (size_t m = 0; m < 2; m++) {
		test_path_swapped(dir, path, ios[m]);
		test_rewrite(path, ios[m]);
		test_progress(path, ios[m]);
	}
	return tap_done();
}
