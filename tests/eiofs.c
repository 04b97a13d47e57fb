/* eiofs.c: a test fixture, a read-only FUSE filesystem with one file that mirrors a backing
 * file and answers EIO for reads overlapping a byte range, so tests meet a real kernel read
 * error; it can also refuse O_DIRECT opens, as some filesystems do, and answer reads late
 * (a slow disk, for test-start.sh). Used by
 * test-daemon-io.sh and test-weights-fault. Speaks <linux/fuse.h> over /dev/fuse itself (no
 * libfuse); root only; not a server. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Newer than the <linux/fuse.h> of older distributions (protocol 7.39): lets a file opened
 * with FOPEN_DIRECT_IO be mapped, which the GGUF loader does. */
#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ull << 36)
#endif

#define EIO_FILE_INO 2		/* the one file; the root is FUSE_ROOT_ID */
#define EIO_MAX_PAGES 256	/* largest READ the kernel may send: 1 MiB */
#define EIO_LOG_FAILS 8		/* failed reads logged one by one; the rest only counted */

static const char *prog = "eiofs";

struct eiofs {
	int dev;		/* /dev/fuse */
	int backing;		/* the mirrored file */
	const char *name;	/* the file's name in the mount's root */
	const char *mnt;
	const char *state;	/* see write_state */
	uint64_t fail_lo, fail_hi; /* reads overlapping [fail_lo, fail_hi) fail when failing */
	bool direct_io;		/* open replies carry FOPEN_DIRECT_IO */
	bool refuse_direct;	/* opens asking for O_DIRECT get EINVAL */
	bool verbose;
	unsigned delay_ms;	/* each READ is answered this much later (a slow disk) */
	char *in;		/* (in_cap) bytes: one request */
	size_t in_cap;
	char *data;		/* (EIO_MAX_PAGES * 4096) bytes: one READ reply's data */
	uint64_t n_reads, n_failed; /* READs, and those answered EIO */
	uint64_t n_direct;	/* OPENs that asked for O_DIRECT */
};

static volatile sig_atomic_t failing, stopping;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		failing = 1;
	else if (sig == SIGUSR2)
		failing = 0;
	else
		stopping = 1;
}

/* Send a reply: error (-errno or 0) and the given body. A request the kernel has since
 * dropped (interrupted, or the mount went away) answers ENOENT; nothing to do then. */
static void reply(struct eiofs *fs, uint64_t unique, int error, const void *body, size_t len)
{
	struct fuse_out_header h = { .len = (uint32_t)(sizeof h + len), .error = error,
				     .unique = unique };
	struct iovec iov[2] = { { &h, sizeof h }, { (void *)body, len } };
	if (writev(fs->dev, iov, len ? 2 : 1) < 0 && errno != ENOENT && errno != ENODEV)
		fprintf(stderr, "%s: reply to request %" PRIu64 ": %s\n", prog, unique,
			strerror(errno));
}

/* Rewrite the state file (via a rename, so a reader never sees half) with three lines:
 * "on" or "off", "eio N" (READs answered EIO so far), "direct N" (OPENs that asked for
 * O_DIRECT so far). Written when serving starts (so it also says: mounted), after each
 * switch has taken effect, and before each EIO or O_DIRECT open is answered, so a test that
 * saw the error also sees it counted. */
static void write_state(struct eiofs *fs)
{
	if (!fs->state)
		return;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", fs->state);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%s\neio %" PRIu64 "\ndirect %" PRIu64 "\n", failing ? "on" : "off",
			  fs->n_failed, fs->n_direct) < 0 || fclose(f) != 0 ||
	    rename(tmp, fs->state) != 0)
		fprintf(stderr, "%s: %s: %s\n", prog, fs->state, strerror(errno));
}

static int fill_attr(struct eiofs *fs, uint64_t ino, struct fuse_attr *a)
{
	struct stat st;
	if (fstat(fs->backing, &st) != 0)
		return -errno;
	memset(a, 0, sizeof *a);
	a->ino = ino;
	a->atime = a->mtime = a->ctime = (uint64_t)st.st_mtime;
	a->uid = 0;
	a->gid = 0;
	a->blksize = 4096;
	if (ino == FUSE_ROOT_ID) {
		a->mode = S_IFDIR | 0555;
		a->nlink = 2;
	} else {
		a->mode = S_IFREG | 0444;
		a->nlink = 1;
		a->size = (uint64_t)st.st_size;
		a->blocks = ((uint64_t)st.st_size + 511) / 512;
	}
	return 0;
}

static void do_init(struct eiofs *fs, const struct fuse_in_header *h, const void *arg)
{
	const struct fuse_init_in *in = arg;
	struct fuse_init_out out = { 0 };
	if (in->major != FUSE_KERNEL_VERSION) {
		fprintf(stderr, "%s: the kernel speaks FUSE %u.%u, we speak %u.x\n", prog, in->major,
			in->minor, FUSE_KERNEL_VERSION);
		reply(fs, h->unique, -EPROTO, NULL, 0);
		stopping = 1;
		return;
	}
	out.major = FUSE_KERNEL_VERSION;
	out.minor = in->minor < FUSE_KERNEL_MINOR_VERSION ? in->minor : FUSE_KERNEL_MINOR_VERSION;
	out.max_readahead = in->max_readahead;
	/* async reads: the kernel may queue several (read-ahead, io_uring); we answer in order */
	out.flags = (in->flags & (FUSE_ASYNC_READ | FUSE_MAX_PAGES));
	out.max_pages = EIO_MAX_PAGES;
	out.max_write = 4096; /* read-only: the smallest the kernel takes */
	out.time_gran = 1000000000;
	out.max_background = 16;
	out.congestion_threshold = 12;
	if (fs->direct_io && (in->flags & FUSE_INIT_EXT)) {
		out.flags |= FUSE_INIT_EXT;
		out.flags2 = (uint32_t)(FUSE_DIRECT_IO_ALLOW_MMAP >> 32);
	}
	reply(fs, h->unique, 0, &out, sizeof out);
}

static void do_lookup(struct eiofs *fs, const struct fuse_in_header *h, const char *name)
{
	struct fuse_entry_out e = { 0 };
	if (h->nodeid != FUSE_ROOT_ID || strcmp(name, fs->name) != 0) {
		reply(fs, h->unique, -ENOENT, NULL, 0);
		return;
	}
	int rc = fill_attr(fs, EIO_FILE_INO, &e.attr);
	if (rc < 0) {
		reply(fs, h->unique, rc, NULL, 0);
		return;
	}
	e.nodeid = EIO_FILE_INO;
	e.generation = 1;
	e.entry_valid = 1;
	e.attr_valid = 1;
	reply(fs, h->unique, 0, &e, sizeof e);
}

static void do_getattr(struct eiofs *fs, const struct fuse_in_header *h)
{
	struct fuse_attr_out a = { 0 };
	if (h->nodeid != FUSE_ROOT_ID && h->nodeid != EIO_FILE_INO) {
		reply(fs, h->unique, -ENOENT, NULL, 0);
		return;
	}
	int rc = fill_attr(fs, h->nodeid, &a.attr);
	if (rc < 0) {
		reply(fs, h->unique, rc, NULL, 0);
		return;
	}
	a.attr_valid = 1;
	reply(fs, h->unique, 0, &a, sizeof a);
}

static void do_open(struct eiofs *fs, const struct fuse_in_header *h, const void *arg)
{
	const struct fuse_open_in *in = arg;
	struct fuse_open_out o = { 0 };
	if (h->nodeid != EIO_FILE_INO) {
		reply(fs, h->unique, -EISDIR, NULL, 0);
		return;
	}
	if ((in->flags & O_ACCMODE) != O_RDONLY) {
		reply(fs, h->unique, -EROFS, NULL, 0);
		return;
	}
	if (in->flags & O_DIRECT) {
		fs->n_direct++;
		write_state(fs);
		if (fs->refuse_direct) {
			reply(fs, h->unique, -EINVAL, NULL, 0);
			return;
		}
	}
	o.fh = 1;
	o.open_flags = fs->direct_io ? FOPEN_DIRECT_IO : 0;
	reply(fs, h->unique, 0, &o, sizeof o);
}

static void do_read(struct eiofs *fs, const struct fuse_in_header *h, const void *arg)
{
	const struct fuse_read_in *in = arg;
	uint32_t size = in->size;
	if (size > EIO_MAX_PAGES * 4096u)
		size = EIO_MAX_PAGES * 4096u;
	fs->n_reads++;
	if (fs->delay_ms) {
		struct timespec ts = { fs->delay_ms / 1000, (long)(fs->delay_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	if (failing && in->offset < fs->fail_hi && in->offset + size > fs->fail_lo) {
		fs->n_failed++;
		if (fs->n_failed <= EIO_LOG_FAILS)
			fprintf(stderr, "%s: READ of %u bytes at %" PRIu64 " -> EIO\n", prog, size,
				in->offset);
		write_state(fs);
		reply(fs, h->unique, -EIO, NULL, 0);
		return;
	}
	size_t got = 0;
	while (got < size) {
		ssize_t n = pread(fs->backing, fs->data + got, size - got, (off_t)(in->offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			reply(fs, h->unique, -errno, NULL, 0);
			return;
		}
		if (n == 0)
			break; /* end of file: a short reply says so */
		got += (size_t)n;
	}
	reply(fs, h->unique, 0, fs->data, got);
}

static void do_statfs(struct eiofs *fs, const struct fuse_in_header *h)
{
	struct fuse_statfs_out s = { 0 };
	struct stat st;
	if (fstat(fs->backing, &st) == 0)
		s.st.blocks = ((uint64_t)st.st_size + 4095) / 4096;
	s.st.files = 2;
	s.st.bsize = 4096;
	s.st.frsize = 4096;
	s.st.namelen = 255;
	reply(fs, h->unique, 0, &s, sizeof s);
}

static const char *op_name(uint32_t op)
{
	switch (op) {
	case FUSE_INIT: return "INIT";
	case FUSE_LOOKUP: return "LOOKUP";
	case FUSE_GETATTR: return "GETATTR";
	case FUSE_OPEN: return "OPEN";
	case FUSE_READ: return "READ";
	case FUSE_RELEASE: return "RELEASE";
	case FUSE_FLUSH: return "FLUSH";
	case FUSE_STATFS: return "STATFS";
	case FUSE_FORGET: return "FORGET";
	case FUSE_BATCH_FORGET: return "BATCH_FORGET";
	case FUSE_INTERRUPT: return "INTERRUPT";
	case FUSE_DESTROY: return "DESTROY";
	default: return "other";
	}
}

/* One request; false when the filesystem is done (DESTROY). */
static bool handle(struct eiofs *fs, size_t len)
{
	const struct fuse_in_header *h = (const void *)fs->in;
	const char *arg = fs->in + sizeof *h;
	if (len < sizeof *h || h->len != len) {
		fprintf(stderr, "%s: a request of %zu bytes says it has %u\n", prog, len,
			len >= sizeof *h ? h->len : 0);
		return true;
	}
	if (fs->verbose)
		fprintf(stderr, "%s: %s (%u) node %" PRIu64 "\n", prog, op_name(h->opcode), h->opcode,
			h->nodeid);
	switch (h->opcode) {
	case FUSE_INIT: do_init(fs, h, arg); break;
	case FUSE_LOOKUP: do_lookup(fs, h, arg); break;
	case FUSE_GETATTR: do_getattr(fs, h); break;
	case FUSE_OPEN: do_open(fs, h, arg); break;
	case FUSE_READ: do_read(fs, h, arg); break;
	case FUSE_STATFS: do_statfs(fs, h); break;
	case FUSE_RELEASE:
	case FUSE_FLUSH:
	case FUSE_RELEASEDIR:
		reply(fs, h->unique, 0, NULL, 0);
		break;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
		/* no reply: we answer every request before reading the next, so there is
		 * never one in progress to interrupt */
		break;
	case FUSE_DESTROY:
		reply(fs, h->unique, 0, NULL, 0);
		return false;
	default:
		/* GETXATTR, ACCESS, OPENDIR, STATX, ...: ENOSYS makes the kernel stop asking or
		 * fall back (GETATTR for STATX) */
		reply(fs, h->unique, -ENOSYS, NULL, 0);
		break;
	}
	return true;
}

/* Serve until unmounted, DESTROY or a stop signal. 0 or -errno. */
static int serve(struct eiofs *fs)
{
	sigset_t none;
	sigemptyset(&none);
	bool was = failing;
	write_state(fs); /* also says: mounted and serving */
	while (!stopping) {
		if ((bool)failing != was) {
			was = failing;
			fprintf(stderr, "%s: failures %s\n", prog, was ? "on" : "off");
			write_state(fs);
		}
		/* signals are blocked outside ppoll, so none slips in between test and wait */
		struct pollfd p = { .fd = fs->dev, .events = POLLIN };
		int r = ppoll(&p, 1, NULL, &none);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (p.revents & (POLLERR | POLLHUP))
			return 0; /* unmounted, or the connection was aborted */
		ssize_t n = read(fs->dev, fs->in, fs->in_cap);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
				continue;
			if (errno == ENODEV)
				return 0;
			return -errno;
		}
		if (!handle(fs, (size_t)n))
			return 0;
	}
	return 0;
}

static int parse_range(const char *s, uint64_t *lo, uint64_t *hi)
{
	char *end;
	errno = 0;
	unsigned long long a = strtoull(s, &end, 0);
	if (errno || *end != ':')
		return -EINVAL;
	unsigned long long b = strtoull(end + 1, &end, 0);
	if (errno || *end != '\0' || b <= a)
		return -EINVAL;
	*lo = a;
	*hi = b;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: %s [OPTIONS] BACKING MOUNTPOINT   serve BACKING as MOUNTPOINT/NAME\n"
		"       %s -u MOUNTPOINT                  detach a mount (umount2 MNT_DETACH)\n"
		"  --name NAME      the file's name (default: BACKING's last component)\n"
		"  --range A:B      reads overlapping bytes [A, B) fail with EIO while failing\n"
		"                   (default: the whole file)\n"
		"  --on             start failing at once (default: off until SIGUSR1)\n"
		"  --direct-io      open replies carry FOPEN_DIRECT_IO (no page cache)\n"
		"  --refuse-direct  opens that ask for O_DIRECT fail with EINVAL\n"
		"  --delay MS       answer each read MS milliseconds late (a slow disk)\n"
		"  --state FILE     FILE says \"on\" or \"off\", then \"eio N\" (reads failed)\n"
		"                   and \"direct N\" (O_DIRECT opens); rewritten when serving\n"
		"                   starts, after each switch has taken effect, and before\n"
		"                   answering each EIO or O_DIRECT open\n"
		"  -v               log every request\n"
		"SIGUSR1 turns failures on, SIGUSR2 off; SIGTERM/SIGINT unmount and exit.\n"
		"Exit: 0 done, 1 failure, 2 usage, 77 cannot mount here (not root, no FUSE,\n"
		"not allowed).\n",
		prog, prog);
}

int main(int argc, char **argv)
{
	struct eiofs fs = { .dev = -1, .backing = -1, .fail_hi = UINT64_MAX };
	const char *backing = NULL;
	int i, rc = 1;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-u") && i + 1 < argc) {
			if (umount2(argv[i + 1], MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
				fprintf(stderr, "%s: umount %s: %s\n", prog, argv[i + 1], strerror(errno));
				return 1;
			}
			return 0;
		} else if (!strcmp(argv[i], "--name") && i + 1 < argc) {
			fs.name = argv[++i];
		} else if (!strcmp(argv[i], "--range") && i + 1 < argc) {
			if (parse_range(argv[++i], &fs.fail_lo, &fs.fail_hi) < 0) {
				fprintf(stderr, "%s: --range wants A:B with A < B, not '%s'\n", prog, argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--state") && i + 1 < argc) {
			fs.state = argv[++i];
		} else if (!strcmp(argv[i], "--on")) {
			failing = 1;
		} else if (!strcmp(argv[i], "--direct-io")) {
			fs.direct_io = true;
		} else if (!strcmp(argv[i], "--refuse-direct")) {
			fs.refuse_direct = true;
		} else if (!strcmp(argv[i], "--delay") && i + 1 < argc) {
			char *end;
			unsigned long ms = strtoul(argv[++i], &end, 10);
			if (*end || end == argv[i] || ms > 60000) {
				fprintf(stderr, "%s: --delay wants milliseconds (0..60000), not '%s'\n", prog,
					argv[i]);
				return 2;
			}
			fs.delay_ms = (unsigned)ms;
		} else if (!strcmp(argv[i], "-v")) {
			fs.verbose = true;
		} else {
			usage();
			return 2;
		}
	}
	if (argc - i != 2) {
		usage();
		return 2;
	}
	backing = argv[i];
	fs.mnt = argv[i + 1];
	if (!fs.name) {
		const char *slash = strrchr(backing, '/');
		fs.name = slash ? slash + 1 : backing;
	}
	if (!fs.name[0] || strchr(fs.name, '/')) {
		fprintf(stderr, "%s: '%s' is not a file name\n", prog, fs.name);
		return 2;
	}

	/* every signal we use is blocked except inside ppoll (see serve) */
	sigset_t mask;
	sigemptyset(&mask);
	int sigs[] = { SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGHUP };
	for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) {
		struct sigaction sa = { .sa_handler = on_signal };
		sigemptyset(&sa.sa_mask);
		sigaction(sigs[k], &sa, NULL);
		sigaddset(&mask, sigs[k]);
	}
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/* the test that started us may die without cleaning up: never outlive it mounted */
	prctl(PR_SET_PDEATHSIG, SIGTERM);

	fs.in_cap = sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in) + 65536;
	fs.in = malloc(fs.in_cap);
	fs.data = malloc(EIO_MAX_PAGES * 4096u);
	if (!fs.in || !fs.data) {
		fprintf(stderr, "%s: out of memory\n", prog);
		goto out;
	}
	fs.backing = open(backing, O_RDONLY | O_CLOEXEC);
	if (fs.backing < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, backing, strerror(errno));
		goto out;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "%s: mounting needs root\n", prog);
		rc = 77;
		goto out;
	}
	fs.dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fs.dev < 0) {
		fprintf(stderr, "%s: /dev/fuse: %s\n", prog, strerror(errno));
		rc = 77; /* no FUSE here */
		goto out;
	}
	char opts[128];
	snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fs.dev);
	if (mount("eiofs", fs.mnt, "fuse.eiofs", MS_NOSUID | MS_NODEV | MS_RDONLY, opts) != 0 &&
	    mount("eiofs", fs.mnt, "fuse", MS_NOSUID | MS_NODEV | MS_RDONLY, opts) != 0) {
		int e = errno;
		fprintf(stderr, "%s: mount on %s: %s\n", prog, fs.mnt, strerror(e));
		/* not allowed here (a container, no CAP_SYS_ADMIN) or no FUSE in the kernel:
		 * skip; anything else is our own mistake */
		rc = e == EPERM || e == EACCES || e == ENODEV ? 77 : 1;
		goto out;
	}
	fprintf(stderr, "%s: serving %s as %s/%s (EIO on bytes %" PRIu64 "..%" PRIu64 ", %s)\n",
		prog, backing, fs.mnt, fs.name, fs.fail_lo, fs.fail_hi, failing ? "on" : "off");
	int r = serve(&fs);
	if (r < 0)
		fprintf(stderr, "%s: /dev/fuse: %s\n", prog, strerror(-r));
	/* lazily: a process may still hold the file open; its reads fail from here on */
	umount2(fs.mnt, MNT_DETACH);
	fprintf(stderr, "%s: done: %" PRIu64 " reads, %" PRIu64 " failed with EIO\n", prog,
		fs.n_reads, fs.n_failed);
	rc = r < 0 ? 1 : 0;
out:
	if (fs.dev >= 0)
		close(fs.dev);
	if (fs.backing >= 0)
		close(fs.backing);
	free(fs.in);
	free(fs.data);
	return rc;
}
