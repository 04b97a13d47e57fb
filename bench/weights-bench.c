/* weights-bench.c: how close the weight source streams to the disk's sequential speed.
 * Makes (once) a large file of random bytes, then runs weights passes over it at several
 * budgets in both io modes, dropping the page cache before each run, and compares MB/s with
 * fio's sequential O_DIRECT read of the same file run just before and just after (virtual
 * disks change speed as the host caches warm up, so only neighbours compare fairly).
 * Not a test: numbers only. Budget 0 means the minimum (everything streamed).
 *
 *   weights-bench [--file PATH] [--size 8G] [--units 48] [--budgets 0,0.25,0.5] [--passes 3]
 *                 [--qd N] [--chunk SIZE] [--compute MBPS] [--modes uring,mmap] [--no-fio]
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/parse.h"
#include "common/log.h"
#include "weights/weights.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int make_file(const char *path, uint64_t size)
{
	struct stat st;
	if (stat(path, &st) == 0 && (uint64_t)st.st_size >= size)
		return 0;
	fprintf(stderr, "writing %s (%" PRIu64 " MiB) ...\n", path, size >> 20);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	const size_t blk = 8u << 20;
	uint64_t *buf = mmap(NULL, blk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		close(fd);
		return -ENOMEM;
	}
	uint64_t x = 88172645463325252ull;
	double t0 = now_s();
	for (uint64_t off = 0; off < size; off += blk) {
		for (size_t i = 0; i < blk / 8; i++) { /* xorshift: incompressible */
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = x;
		}
		size_t n = size - off < blk ? (size_t)(size - off) : blk;
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			int e = errno;
			munmap(buf, blk);
			close(fd);
			return -e;
		}
	}
	fsync(fd);
	close(fd);
	munmap(buf, blk);
	fprintf(stderr, "written at %.0f MB/s\n", size / 1e6 / (now_s() - t0));
	return 0;
}

static bool drop_caches(void)
{
	sync();
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = write(fd, "3", 1) == 1;
	close(fd);
	return ok;
}

/* Whether 64 MiB of hugetlb pages are free (fio's --mem=shmhuge needs them). */
static bool huge_pages_free(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	uint64_t n = 0, kb = 0;
	while (f && fgets(line, sizeof line, f)) {
		sscanf(line, "HugePages_Free: %" SCNu64, &n);
		sscanf(line, "Hugepagesize: %" SCNu64, &kb);
	}
	if (f)
		fclose(f);
	return n * kb >= (64u << 10);
}

/* fio's sequential O_DIRECT read of the file, in MB/s (0 when fio is missing or fails).
 * `huge`: buffers in huge pages, registered (--mem=shmhuge --fixedbufs): on VMs where 4 KiB
 * pages are slow to pin, plain fio measures its own overhead more than the disk. */
static double fio_mbps(const char *path, uint64_t size, bool huge)
{
	char cmd[1024];
	drop_caches();
	snprintf(cmd, sizeof cmd,
		 "fio --name=seqread --filename='%s' --direct=1 --rw=read --bs=1M --iodepth=32 "
		 "--ioengine=io_uring --size=%" PRIu64 " %s--output-format=terse --terse-version=3 "
		 "2>/dev/null", path, size,
		 huge ? "--mem=shmhuge --fixedbufs=1 --registerfiles=1 " : "");
	FILE *p = popen(cmd, "r");
	if (!p)
		return 0;
	char line[8192];
	double kib_s = 0;
	while (fgets(line, sizeof line, p)) {
		/* terse v3: 3;version;name;group;error;read_kb;read_bw(KiB/s);... */
		char *f = line;
		for (int i = 0; i < 6 && f; i++) {
			f = strchr(f, ';');
			if (f)
				f++;
		}
		if (f)
			kib_s = strtod(f, NULL);
	}
	pclose(p);
	return kib_s * 1024 / 1e6;
}

/* Spin for the time a compute at `mbps` would take over `bytes`. */
static void fake_compute(uint64_t bytes, double mbps)
{
	if (mbps <= 0)
		return;
	double until = now_s() + bytes / 1e6 / mbps;
	while (now_s() < until) {
	}
}

struct opts {
	const char *file;
	uint64_t size;
	uint32_t n_units, passes, qd, chunk;
	double budgets[8];
	int n_budgets;
	double compute;
	bool fio, uring, mmap;
};

int main(int argc, char **argv)
{
	struct opts o = { "/work/bench-data/weights-bench.bin", 8ull << 30, 48, 3, 0, 0,
			  { 0, 0.25, 0.5 }, 3, 0, true, true, true };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--file") && v) {
			o.file = v;
		} else if (!strcmp(a, "--size") && v) {
			if (parse_size(v, &o.size) < 0)
				return fprintf(stderr, "bad size %s\n", v), 2;
		} else if (!strcmp(a, "--units") && v) {
			o.n_units = (uint32_t)atoi(v);
		} else if (!strcmp(a, "--passes") && v) {
			o.passes = (uint32_t)atoi(v);
		} else if (!strcmp(a, "--qd") && v) {
			o.qd = (uint32_t)atoi(v);
		} else if (!strcmp(a, "--chunk") && v) {
			uint64_t c;
			if (parse_size(v, &c) < 0)
				return fprintf(stderr, "bad size %s\n", v), 2;
			o.chunk = (uint32_t)c;
		} else if (!strcmp(a, "--compute") && v) {
			o.compute = atof(v);
		} else if (!strcmp(a, "--budgets") && v) {
			o.n_budgets = 0;
			for (char *s = (char *)v; *s && o.n_budgets < 8;) {
				o.budgets[o.n_budgets++] = strtod(s, &s);
				if (*s == ',')
					s++;
				else
					break;
			}
		} else if (!strcmp(a, "--modes") && v) {
			o.uring = strstr(v, "uring") != NULL;
			o.mmap = strstr(v, "mmap") != NULL;
		} else if (!strcmp(a, "--no-fio")) {
			o.fio = false;
			continue;
		} else {
			fprintf(stderr, "usage: %s [--file PATH] [--size 8G] [--units 48] [--budgets 0.25,0.5]"
				" [--passes 3] [--qd N] [--chunk SIZE] [--compute MBPS] [--modes uring,mmap]"
				" [--no-fio]\n", argv[0]);
			return 2;
		}
		i++;
	}
	log_set_level(LOG_LVL_WARNING);
	int rc = make_file(o.file, o.size);
	if (rc < 0) {
		fprintf(stderr, "cannot write %s: %s\n", o.file, strerror(-rc));
		return 1;
	}

	/* units like layers: a 1 MiB header, then per unit 9 tensors 32-byte aligned */
	enum { PER = 9 };
	struct weights_range *ranges = calloc((size_t)o.n_units * PER, sizeof *ranges);
	struct weights_unit *units = calloc(o.n_units, sizeof *units);
	uint64_t off = (1u << 20) + 96, per_unit = (o.size - (2u << 20)) / o.n_units;
	for (uint32_t u = 0; u < o.n_units; u++) {
		for (uint32_t t = 0; t < PER; t++) {
			uint64_t len = per_unit / PER - 32 - t;
			ranges[u * PER + t] = (struct weights_range){ off, len };
			off = (off + len + 31) / 32 * 32;
		}
		units[u] = (struct weights_unit){ &ranges[u * PER], PER };
	}

	if (!drop_caches())
		fprintf(stderr, "warning: cannot drop the page cache (not root?): numbers may be cached\n");
	printf("file %s: %" PRIu64 " MiB, %u units of %.1f MiB; %u passes%s\n", o.file, o.size >> 20,
	       o.n_units, per_unit / 1048576.0, o.passes, o.compute > 0 ? "" : ", no compute");
	if (o.compute > 0)
		printf("simulated compute: %.0f MB/s over each unit\n", o.compute);
	bool huge = o.fio && huge_pages_free();
	printf("fio: sequential O_DIRECT read of the whole file, bs 1M, iodepth 32, io_uring;\n"
	       "     fio-h: the same with huge-page registered buffers (%s)\n",
	       huge ? "measured" : "not measured: no free hugetlb pages, see vm.nr_hugepages");
	printf("each fio figure is the mean of runs just before and just after the row\n");
	printf("%-6s %-6s %4s %4s %8s %6s %6s %6s %6s %6s %6s %6s %6s %6s\n", "io", "budget",
	       "res", "strm", "MiB/pass", "open s", "s/pass", "MB/s", "fio", "ratio", "fio-h",
	       "ratio", "stall%", "qd");
	int fd = open(o.file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "cannot open %s: %s\n", o.file, strerror(errno));
		return 1;
	}
	double fio = o.fio ? fio_mbps(o.file, o.size, false) : 0;
	double fio_h = huge ? fio_mbps(o.file, o.size, true) : 0;

	for (int m = 0; m < 2; m++) {
		enum weights_io io = m == 0 ? WEIGHTS_IO_URING : WEIGHTS_IO_MMAP;
		if ((io == WEIGHTS_IO_URING && !o.uring) || (io == WEIGHTS_IO_MMAP && !o.mmap))
			continue;
		for (int b = 0; b < o.n_budgets; b++) {
			struct weights_config cfg = {
				.fd = fd, .path = o.file, .io = io,
				/* 0: the minimum, two buffers of a unit (plus its block padding) */
				.budget = o.budgets[b] > 0 ? (uint64_t)(o.budgets[b] * o.size)
							   : 2 * (per_unit + (64u << 10)),
				.queue_depth = o.qd, .chunk_bytes = o.chunk,
			};
			drop_caches();
			struct weights *w;
			struct st_err err = { "" };
			double t0 = now_s();
			if (weights_open(&cfg, units, o.n_units, &w, &err) < 0) {
				fprintf(stderr, "open: %s\n", err.msg);
				return 1;
			}
			double t_open = now_s() - t0;
			struct weights_stats st0, st;
			weights_get_stats(w, &st0);
			double total = 0;
			for (uint32_t p = 0; p < o.passes; p++) {
				double tp = now_s();
				for (uint32_t u = 0; u < o.n_units; u++) {
					if (weights_acquire(w, u, &err) < 0) {
						fprintf(stderr, "acquire %u: %s\n", u, err.msg);
						return 1;
					}
					fake_compute(per_unit, o.compute);
					weights_release(w, u);
				}
				tp = now_s() - tp;
				total += tp;
			}
			weights_get_stats(w, &st);
			weights_close(w);
			double fio_after = o.fio ? fio_mbps(o.file, o.size, false) : 0;
			double fio_h_after = huge ? fio_mbps(o.file, o.size, true) : 0;
			double ref = (fio + fio_after) / 2, ref_h = (fio_h + fio_h_after) / 2;
			double per_pass = total / o.passes;
			double mbps = st.bytes_streamed_per_pass / 1e6 / per_pass;
			char label[16];
			if (o.budgets[b] > 0)
				snprintf(label, sizeof label, "%.0f%%", o.budgets[b] * 100);
			else
				snprintf(label, sizeof label, "min");
			printf("%-6s %-6s %4u %4u %8.0f %6.2f %6.3f %6.0f %6.0f %5.0f%% %6.0f %5.0f%% %5.0f%% "
			       "%6u\n", io == WEIGHTS_IO_URING ? "uring" : "mmap", label, st.n_resident,
			       st.n_streamed, st.bytes_streamed_per_pass / 1048576.0, t_open, per_pass,
			       mbps, ref, ref > 0 ? 100 * mbps / ref : 0, ref_h,
			       ref_h > 0 ? 100 * mbps / ref_h : 0,
			       100.0 * (st.stall_ns - st0.stall_ns) / 1e9 / total, st.queue_depth);
			if (st.io != io)
				printf("  (fell back to %s)\n", st.io == WEIGHTS_IO_MMAP ? "mmap" : "uring");
			fflush(stdout);
			fio = fio_after;
			fio_h = fio_h_after;
		}
	}
	close(fd);
	free(ranges);
	free(units);
	return 0;
}
