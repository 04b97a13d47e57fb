/* anon.c: anonymous memory for the resident set and the streaming slots: mapped without
 * touching it, huge pages advised, populated on purpose (see anon.h). */
#include "config.h"

#include "weights/anon.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

char *w_map_anon(uint64_t len, bool huge)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (huge && len >= (2u << 20))
		madvise(p, len, MADV_HUGEPAGE);
	return p;
}

int w_populate(void *p, uint64_t len)
{
	for (int tries = 0; len > 0 && tries < 100; tries++) {
		if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
			return 0;
		if (errno == EINVAL) {
			/* before Linux 5.14: map the range afresh, populated (it holds nothing) */
			void *q = mmap(p, len, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_POPULATE, -1, 0);
			return q == MAP_FAILED ? -errno : 0;
		}
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return 0;
}

/* Threads populating at once, at most; what a hypervisor does per fault is the
 * limit, and it scales with the cores that ask. */
#define W_POPULATE_THREADS 4

struct w_pop_part {
	char *p;
	uint64_t len;
	int rc;
};

static void *w_pop_run(void *arg)
{
	struct w_pop_part *part = arg;
	part->rc = w_populate(part->p, part->len);
	return NULL;
}

int w_populate_parallel(void *p, uint64_t len)
{
	const uint64_t unit = 2u << 20; /* a huge page: parts never split one */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int n = cpus < 1 ? 1 : cpus > W_POPULATE_THREADS ? W_POPULATE_THREADS : (int)cpus;
	if (n == 1 || len < (uint64_t)n * unit)
		return w_populate(p, len);
	const uint64_t share = (len / (uint64_t)n + unit - 1) / unit * unit;
	struct w_pop_part parts[W_POPULATE_THREADS];
	pthread_t th[W_POPULATE_THREADS];
	bool started[W_POPULATE_THREADS] = { false };
	int k = 0;
	for (uint64_t at = 0; at < len; at += share, k++) {
		parts[k] = (struct w_pop_part){ (char *)p + at, len - at < share ? len - at : share, 0 };
		/* part 0 is this thread's; a helper that cannot start leaves its part to us */
		started[k] = k > 0 && pthread_create(&th[k], NULL, w_pop_run, &parts[k]) == 0;
	}
	int rc = w_populate(parts[0].p, parts[0].len);
	for (int i = 1; i < k; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		else
			w_pop_run(&parts[i]);
		if (rc == 0)
			rc = parts[i].rc;
	}
	return rc;
}
