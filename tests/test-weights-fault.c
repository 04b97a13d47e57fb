/* test-weights-fault.c: real read errors (-EIO from the kernel) under the weight source,
 * and a filesystem that refuses O_DIRECT. Device-mapper and the kernel's fault injection
 * are absent on many machines (this one included), so the file is served by a tiny FUSE
 * filesystem run by this test: it answers reads of a chosen byte window with EIO while a
 * switch is on. Needs root and /dev/fuse; skips otherwise. Not a FUSE library: just the
 * few messages a read-only file needs. (Short reads are not tested here: FUSE takes a short
 * answer as the end of the file, and in direct-io mode io_uring was seen to report full
 * counts for short answers on Linux 6.18.) */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/weights.h"
#include "tests/tap.h"

/* ---- file contents, as in test-weights.c: word q at byte 8q ---- */

static uint64_t word(uint64_t q)
{
	uint64_t v = q * 0x9e3779b97f4a7c15ull;
	return v ^ (v >> 29);
}

static uint8_t byte_at(uint64_t o)
{
	return (uint8_t)(word(o >> 3) >> ((o & 7) * 8));
}

static bool check_bytes(const uint8_t *p, uint64_t off, uint64_t len)
{
	uint64_t diff = 0;
	for (uint64_t i = 0; i < len; i++)
		diff |= p[i] ^ byte_at(off + i);
	return diff == 0;
}

/* ---- the filesystem: one file, "w.bin", FILE_SIZE bytes ---- */

#define FILE_SIZE (24ull << 20)
#define FILE_INO 2

static int fuse_fd = -1;
static _Atomic uint64_t bad_lo, bad_hi; /* reads touching [bad_lo, bad_hi) fail */
static _Atomic bool faulty;
static _Atomic uint64_t n_eio;		/* reads answered with EIO */
static _Atomic bool saw_direct;		/* an open asked for O_DIRECT */
static _Atomic bool refuse_direct;	/* answer O_DIRECT opens with EINVAL, as some
					 * filesystems do */

static void fs_reply(uint64_t unique, int error, const void *body, size_t len)
{
	struct fuse_out_header h = { (uint32_t)(sizeof h + len), error, unique };
	char buf[sizeof h + (128u << 10)];
	memcpy(buf, &h, sizeof h);
	if (len)
		memcpy(buf + sizeof h, body, len);
	if (write(fuse_fd, buf, sizeof h + len) < 0) {
		/* the request may have been interrupted; nothing to do */
	}
}

static void fs_attr(struct fuse_attr *a, uint64_t ino)
{
	memset(a, 0, sizeof *a);
	a->ino = ino;
	a->mode = ino == FILE_INO ? S_IFREG | 0444 : S_IFDIR | 0755;
	a->nlink = 1;
	a->size = ino == FILE_INO ? FILE_SIZE : 0;
	a->blocks = (a->size + 511) / 512;
	a->blksize = 4096;
}

static void *fs_thread(void *arg)
{
	(void)arg;
	static char req[(128u << 10) + 4096];
	static uint8_t data[128u << 10];
	for (;;) {
		ssize_t n = read(fuse_fd, req, sizeof req);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == ENOENT))
			continue;
		if (n < (ssize_t)sizeof(struct fuse_in_header))
			break; /* ENODEV: unmounted */
		const struct fuse_in_header *in = (const void *)req;
		const void *body = req + sizeof *in;
		switch (in->opcode) {
		case FUSE_INIT: {
			const struct fuse_init_in *ii = body;
			struct fuse_init_out o;
			memset(&o, 0, sizeof o);
			o.major = FUSE_KERNEL_VERSION;
			o.minor = ii->minor < FUSE_KERNEL_MINOR_VERSION ? ii->minor
									 : FUSE_KERNEL_MINOR_VERSION;
			o.max_readahead = ii->max_readahead;
			o.max_write = 128u << 10;
			o.max_background = 16;
			o.congestion_threshold = 12;
			fs_reply(in->unique, 0, &o, sizeof o);
			break;
		}
		case FUSE_LOOKUP: {
			if (in->nodeid != FUSE_ROOT_ID || strcmp(body, "w.bin") != 0) {
				fs_reply(in->unique, -ENOENT, NULL, 0);
				break;
			}
			struct fuse_entry_out o;
			memset(&o, 0, sizeof o);
			o.nodeid = FILE_INO;
			o.entry_valid = 60;
			o.attr_valid = 60;
			fs_attr(&o.attr, FILE_INO);
			fs_reply(in->unique, 0, &o, sizeof o);
			break;
		}
		case FUSE_GETATTR: {
			struct fuse_attr_out o;
			memset(&o, 0, sizeof o);
			o.attr_valid = 60;
			fs_attr(&o.attr, in->nodeid);
			fs_reply(in->unique, 0, &o, sizeof o);
			break;
		}
		case FUSE_OPEN:
		case FUSE_OPENDIR: {
			const struct fuse_open_in *oi = body;
			if (oi->flags & O_DIRECT) {
				saw_direct = true;
				if (refuse_direct) {
					fs_reply(in->unique, -EINVAL, NULL, 0);
					break;
				}
			}
			struct fuse_open_out o;
			memset(&o, 0, sizeof o);
			fs_reply(in->unique, 0, &o, sizeof o);
			break;
		}
		case FUSE_READ: {
			const struct fuse_read_in *ri = body;
			uint64_t off = ri->offset, len = ri->size;
			if (len > sizeof data)
				len = sizeof data;

			if (off >= FILE_SIZE)
				len = 0;
			else if (len > FILE_SIZE - off)
				len = FILE_SIZE - off;
			if (faulty && len > 0 && off < bad_hi && off + len > bad_lo) {
				n_eio++;
				fs_reply(in->unique, -EIO, NULL, 0);
				break;
			}
			for (uint64_t i = 0; i < len; i++)
				data[i] = byte_at(off + i);
			fs_reply(in->unique, 0, data, len);
			break;
		}
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
		case FUSE_INTERRUPT:
			break; /* no reply */
		case FUSE_RELEASE:
		case FUSE_RELEASEDIR:
		case FUSE_FLUSH:
		case FUSE_DESTROY:
			fs_reply(in->unique, 0, NULL, 0);
			break;
		default:
			fs_reply(in->unique, -ENOSYS, NULL, 0);
			break;
		}
	}
	return NULL;
}

/* ---- the test ---- */

#define N_UNITS 16

static struct weights_range ranges[N_UNITS];
static struct weights_unit units[N_UNITS];

static bool check_unit(struct weights *w, uint32_t u)
{
	const uint8_t *p = weights_ptr(w, u, ranges[u].offset);
	return p && check_bytes(p, ranges[u].offset, ranges[u].len);
}

static const char *io_name(enum weights_io io)
{
	return io == WEIGHTS_IO_URING ? "uring" : "mmap";
}

static void run(const char *path, enum weights_io io)
{
	/* all units streamed: the minimum budget */
	struct weights_config cfg = { .path = path, .budget = 2 * ((1u << 20) + 8192), .io = io };
	struct weights *w = NULL;
	struct st_err err = { "" };
	faulty = false;
	if (!tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == 0, "%s: open over FUSE (%s)",
		    io_name(io), err.msg))
		return;
	struct weights_stats st;
	weights_get_stats(w, &st);
	tap_diag("%s: io %s, O_DIRECT %s, %u streamed units, %u slots", io_name(io),
		 io_name(st.io), st.direct ? "yes" : "no", st.n_streamed, st.n_slots);

	/* break unit 5's middle; a pass: unit 5 fails with EIO, the others read right */
	const uint32_t victim = 5;
	bad_lo = ranges[victim].offset + ranges[victim].len / 2;
	bad_hi = bad_lo + 1;
	uint64_t eio_before = n_eio;
	faulty = true;
	int bad = 0, failed = 0;
	for (uint32_t u = 0; u < N_UNITS; u++) {
		err.msg[0] = '\0';
		int rc = weights_acquire(w, u, &err);
		if (u == victim) {
			char want[32];
			snprintf(want, sizeof want, "unit %u ", u);
			failed = rc < 0;
			/* "bytes A..B": the failed read, which must hold the bad byte */
			const char *b = strstr(err.msg, "bytes ");
			uint64_t lo = b ? strtoull(b + 6, NULL, 10) : 0;
			const char *e = b ? strstr(b, "..") : NULL;
			uint64_t hi = e ? strtoull(e + 2, NULL, 10) : 0;
			tap_ok(rc == -EIO && strstr(err.msg, path) && strstr(err.msg, want) &&
			       strstr(err.msg, strerror(EIO)) && lo <= bad_lo && bad_lo < hi,
			       "%s: acquire of the unit with a bad block fails with EIO there: %s",
			       io_name(io), err.msg);
			if (rc == 0)
				weights_release(w, u);
			continue;
		}
		if (rc < 0) {
			tap_diag("unit %u: %s", u, err.msg);
			bad++;
			continue;
		}
		bad += !check_unit(w, u);
		weights_release(w, u);
	}
	tap_ok(failed && bad == 0, "%s: the other units read right around the error", io_name(io));
	tap_ok(n_eio > eio_before, "%s: the filesystem did answer EIO (%" PRIu64 " times)",
	       io_name(io), n_eio - eio_before);

	/* the block heals: the same source reads unit 5 again, without reopening */
	faulty = false;
	bad = 0;
	for (int p = 0; p < 2; p++) {
		for (uint32_t u = 0; u < N_UNITS; u++) {
			if (weights_acquire(w, u, &err) < 0) {
				tap_diag("unit %u: %s", u, err.msg);
				bad++;
				continue;
			}
			bad += !check_unit(w, u);
			weights_release(w, u);
		}
	}
	tap_is_int(bad, 0, "%s: after the fault clears, 2 passes read right", io_name(io));
	weights_get_stats(w, &st);
	tap_ok(st.n_read_errors >= 1, "%s: the error was counted", io_name(io));
	weights_close(w);
}

int main(void)
{
	log_set_level(LOG_LVL_WARNING);
	if (geteuid() != 0)
		tap_skip_all("mounting the fault-injecting FUSE filesystem needs root");
	fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fuse_fd < 0)
		tap_skip_all("no /dev/fuse: %s", strerror(errno));
	char mnt[512], path[600], opts[128];
	snprintf(mnt, sizeof mnt, "%s/mnt", tap_tmpdir());
	if (mkdir(mnt, 0755) != 0)
		tap_bail("mkdir %s: %s", mnt, strerror(errno));
	snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0", fuse_fd);
	if (mount("strata-fault", mnt, "fuse.strata-fault", MS_NOSUID | MS_NODEV, opts) != 0)
		tap_skip_all("cannot mount a FUSE filesystem here: %s", strerror(errno));
	pthread_t t;
	if (pthread_create(&t, NULL, fs_thread, NULL) != 0)
		tap_bail("pthread_create failed");
	snprintf(path, sizeof path, "%s/w.bin", mnt);

	/* 16 units of about 1 MiB at odd offsets, one range each */
	uint64_t off = 12345;
	for (uint32_t u = 0; u < N_UNITS; u++) {
		ranges[u] = (struct weights_range){ off, (1u << 20) - 333 * u };
		units[u] = (struct weights_unit){ &ranges[u], 1 };
		off += ranges[u].len + 32 * (u % 3);
	}

	run(path, WEIGHTS_IO_URING);
	run(path, WEIGHTS_IO_MMAP);


	/* a filesystem that refuses O_DIRECT: io_uring reads through the page cache */
	refuse_direct = true;
	struct weights_config cfg = { .path = path, .budget = 4u << 20, .io = WEIGHTS_IO_URING };
	struct weights *w = NULL;
	struct st_err err = { "" };
	if (tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == 0, "no O_DIRECT: open (%s)",
		   err.msg)) {
		struct weights_stats st;
		weights_get_stats(w, &st);
		tap_ok(st.io == WEIGHTS_IO_URING && !st.direct,
		       "no O_DIRECT: still io_uring, buffered (io %s, direct %d)", io_name(st.io),
		       st.direct);
		int bad = 0;
		for (uint32_t u = 0; u < N_UNITS; u++) {
			if (weights_acquire(w, u, &err) < 0) {
				tap_diag("unit %u: %s", u, err.msg);
				bad++;
				continue;
			}
			bad += !check_unit(w, u);
			weights_release(w, u);
		}
		tap_is_int(bad, 0, "no O_DIRECT: a pass right");
		weights_close(w);
	}
	refuse_direct = false;
	tap_diag("the filesystem saw %s opens", saw_direct ? "O_DIRECT" : "only buffered");

	if (umount2(mnt, MNT_DETACH) != 0)
		tap_diag("umount %s: %s", mnt, strerror(errno));
	close(fuse_fd); /* the server thread's read ends with ENODEV */
	pthread_join(t, NULL);
	return tap_done();
}
