/* test-weights-fault.c: real read errors (-EIO from the kernel) under the weight source,
 * and a filesystem that refuses O_DIRECT. Device-mapper and the kernel's fault injection
 * are absent on many machines (this one included), so the file is served by tests/eiofs, our
 * FUSE filesystem, run as a child: it answers reads of a chosen byte window with EIO while
 * failures are on (SIGUSR1 on, SIGUSR2 off), and with --refuse-direct refuses O_DIRECT opens.
 * Needs root and /dev/fuse; skips otherwise. (Short reads are not tested here: FUSE takes a
 * short answer as the end of the file, and in direct-io mode io_uring was seen to report full
 * counts for short answers on Linux 6.18.) */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "weights/weights.h"
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

/* ---- the filesystem: tests/eiofs serving the backing file as mnt/w.bin ---- */

#define FILE_SIZE (24ull << 20)

static char backing[600], mnt[512], state[600];
static pid_t eiofs = -1;	/* the running eiofs, or -1 */
static bool maybe_mounted;	/* an eiofs was started and did not say it cannot mount */
static uint64_t n_direct_seen;	/* O_DIRECT opens counted by the eiofs runs so far */

/* The backing file: FILE_SIZE bytes of byte_at. */
static void write_backing(void)
{
	static uint8_t buf[1u << 20];
	FILE *f = fopen(backing, "wb");
	if (!f)
		tap_bail("%s: %s", backing, strerror(errno));
	for (uint64_t off = 0; off < FILE_SIZE; off += sizeof buf) {
		for (uint64_t i = 0; i < sizeof buf; i++)
			buf[i] = byte_at(off + i);
		if (fwrite(buf, 1, sizeof buf, f) != sizeof buf)
			tap_bail("%s: short write", backing);
	}
	if (fclose(f) != 0)
		tap_bail("%s: %s", backing, strerror(errno));
}

/* What eiofs's state file says (see write_state in tests/eiofs.c). */
struct fs_state {
	bool on;		/* failures on */
	uint64_t n_eio;		/* reads it answered with EIO */
	uint64_t n_direct;	/* opens that asked for O_DIRECT */
};

/* true when the state file exists and parses */
static bool fs_read(struct fs_state *st)
{
	FILE *f = fopen(state, "r");
	if (!f)
		return false;
	char word[8] = "";
	int n = fscanf(f, "%7s eio %" SCNu64 " direct %" SCNu64, word, &st->n_eio, &st->n_direct);
	fclose(f);
	st->on = !strcmp(word, "on");
	return n == 3 && (st->on || !strcmp(word, "off"));
}

/* Wait (up to 30 s) until the state file exists and, when want is 0 or 1, says failures are
 * off or on. Skips the whole test when eiofs exits 77 (cannot mount here). */
static struct fs_state fs_wait(int want)
{
	struct fs_state st;
	for (int tries = 0; tries < 3000; tries++) {
		if (fs_read(&st) && (want < 0 || st.on == want))
			return st;
		int status;
		if (waitpid(eiofs, &status, WNOHANG) == eiofs) {
			eiofs = -1;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
				maybe_mounted = false;
				tap_skip_all("cannot mount a FUSE filesystem here (eiofs said why)");
			}
			if (WIFEXITED(status))
				tap_bail("eiofs exited with %d", WEXITSTATUS(status));
			tap_bail("eiofs was killed by signal %d", WTERMSIG(status));
		}
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	tap_bail("eiofs: the state file %s did not say %s in 30 s", state,
		 want < 0 ? "anything" : want ? "on" : "off");
}

/* Turn failures on or off; returns once eiofs says the switch took effect. */
static struct fs_state fs_switch(bool on)
{
	kill(eiofs, on ? SIGUSR1 : SIGUSR2);
	return fs_wait(on);
}

/* Stop eiofs (it unmounts) and make sure nothing stays mounted, even when eiofs died
 * without unmounting. Also run at exit. */
static void fs_stop(void)
{
	struct fs_state st;
	if (eiofs > 0) {
		if (fs_read(&st))
			n_direct_seen += st.n_direct;
		kill(eiofs, SIGTERM);
		while (waitpid(eiofs, NULL, 0) < 0 && errno == EINTR)
			;
		eiofs = -1;
	}
	if (maybe_mounted && umount2(mnt, MNT_DETACH) != 0 && errno != EINVAL)
		tap_diag("umount %s: %s", mnt, strerror(errno));
	maybe_mounted = false;
}

/* Serve the backing file as mnt/w.bin, reads touching [lo, hi) failing while failures are on
 * (off at first); with refuse_direct, O_DIRECT opens fail with EINVAL. Returns once mounted. */
static void fs_start(uint64_t lo, uint64_t hi, bool refuse_direct)
{
	char exe[600], range[64];
	snprintf(exe, sizeof exe, "%s/tests/eiofs", tap_builddir());
	snprintf(range, sizeof range, "%" PRIu64 ":%" PRIu64, lo, hi);
	unlink(state);
	pid_t parent = getpid();
	eiofs = fork();
	if (eiofs < 0)
		tap_bail("fork: %s", strerror(errno));
	maybe_mounted = true;
	if (eiofs == 0) {
		/* never outlive this test mounted, even if it dies before eiofs sets this itself */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		char *argv[12] = { exe, "--name", "w.bin", "--range", range, "--state", state };
		int n = 7;
		if (refuse_direct)
			argv[n++] = "--refuse-direct";
		argv[n++] = backing;
		argv[n++] = mnt;
		execv(exe, argv);
		fprintf(stderr, "%s: %s\n", exe, strerror(errno));
		_exit(1);
	}
	fs_wait(-1);
}

/* ---- the test ---- */

#define N_UNITS 16
#define VICTIM 5 /* the unit with a bad byte in its middle */

static struct weights_range ranges[N_UNITS];
static struct weights_unit units[N_UNITS];
static uint64_t bad_lo; /* reads touching byte bad_lo fail while failures are on */

static bool check_unit(struct weights *w, uint32_t u)
{
	const uint8_t *p = weights_ptr(w, u, ranges[u].offset);
	return p && check_bytes(p, ranges[u].offset, ranges[u].len);
}

/* One pass over every unit: how many failed (each said in a diagnostic) or read wrong. */
static int read_pass(struct weights *w)
{
	struct st_err err = { "" };
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
	return bad;
}

static const char *io_name(enum weights_io io)
{
	return io == WEIGHTS_IO_URING ? "uring" : "mmap";
}

static void run(const char *path, enum weights_io io)
{
	/* all units streamed: the minimum budget */
	fs_switch(false);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tap_bail("open %s: %s", path, strerror(errno));
	struct weights_config cfg = { .fd = fd, .path = path, .budget = 2 * ((1u << 20) + 8192),
				      .io = io };
	struct weights *w = NULL;
	struct st_err err = { "" };
	if (!tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == 0, "%s: open over FUSE (%s)",
		    io_name(io), err.msg)) {
		close(fd);
		return;
	}
	struct weights_stats st;
	weights_get_stats(w, &st);
	tap_diag("%s: io %s, O_DIRECT %s, %u streamed units, %u slots", io_name(io),
		 io_name(st.io), st.direct ? "yes" : "no", st.n_streamed, st.n_slots);

	/* break unit 5's middle; a pass: unit 5 fails with EIO, the others read right */
	uint64_t eio_before = fs_switch(true).n_eio;
	int bad = 0, failed = 0;
	for (uint32_t u = 0; u < N_UNITS; u++) {
		err.msg[0] = '\0';
		int rc = weights_acquire(w, u, &err);
		if (u == VICTIM) {
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
	uint64_t n_eio = fs_wait(1).n_eio;
	tap_ok(n_eio > eio_before, "%s: the filesystem did answer EIO (%" PRIu64 " times)",
	       io_name(io), n_eio - eio_before);

	/* the block heals: the same source reads unit 5 again, without reopening */
	fs_switch(false);
	bad = read_pass(w);
	bad += read_pass(w);
	tap_is_int(bad, 0, "%s: after the fault clears, 2 passes read right", io_name(io));
	weights_get_stats(w, &st);
	tap_ok(st.n_read_errors >= 1, "%s: the error was counted", io_name(io));
	weights_close(w);
	close(fd);
}

int main(void)
{
	log_set_level(LOG_LVL_WARNING);
	if (geteuid() != 0)
		tap_skip_all("mounting the fault-injecting FUSE filesystem needs root");
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		tap_skip_all("no /dev/fuse: %s", strerror(errno));
	close(fd);
	char path[600];
	const char *tmp = tap_tmpdir(); /* first: its removal at exit runs after fs_stop */
	snprintf(mnt, sizeof mnt, "%s/mnt", tmp);
	snprintf(backing, sizeof backing, "%s/w.bin", tmp);
	snprintf(state, sizeof state, "%s/eiofs.state", tmp);
	snprintf(path, sizeof path, "%s/w.bin", mnt);
	if (mkdir(mnt, 0755) != 0)
		tap_bail("mkdir %s: %s", mnt, strerror(errno));
	atexit(fs_stop);
	write_backing();

	/* 16 units of about 1 MiB at odd offsets, one range each */
	uint64_t off = 12345;
	for (uint32_t u = 0; u < N_UNITS; u++) {
		ranges[u] = (struct weights_range){ off, (1u << 20) - 333 * u };
		units[u] = (struct weights_unit){ &ranges[u], 1 };
		off += ranges[u].len + 32 * (u % 3);
	}
	bad_lo = ranges[VICTIM].offset + ranges[VICTIM].len / 2;

	fs_start(bad_lo, bad_lo + 1, false);
	run(path, WEIGHTS_IO_URING);
	run(path, WEIGHTS_IO_MMAP);
	fs_stop();

	/* a filesystem that refuses O_DIRECT: io_uring reads through the page cache */
	fs_start(bad_lo, bad_lo + 1, true);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		tap_bail("open %s: %s", path, strerror(errno));
	struct weights_config cfg = { .fd = fd, .path = path, .budget = 4u << 20,
				      .io = WEIGHTS_IO_URING };
	struct weights *w = NULL;
	struct st_err err = { "" };
	if (tap_ok(weights_open(&cfg, units, N_UNITS, &w, &err) == 0, "no O_DIRECT: open (%s)",
		   err.msg)) {
		struct weights_stats st;
		weights_get_stats(w, &st);
		tap_ok(st.io == WEIGHTS_IO_URING && !st.direct,
		       "no O_DIRECT: still io_uring, buffered (io %s, direct %d)", io_name(st.io),
		       st.direct);
		tap_is_int(read_pass(w), 0, "no O_DIRECT: a pass right");
		weights_close(w);
	}
	close(fd);
	fs_stop();
	tap_diag("the filesystem saw %s opens", n_direct_seen ? "O_DIRECT" : "only buffered");
	return tap_done();
}
