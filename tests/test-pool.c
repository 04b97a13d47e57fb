/* test-pool.c: the compute pool runs every ith exactly once per job, makes
 * the workers' plain writes visible to the caller, survives thousands of
 * back-to-back jobs and sleeping workers; pool_split covers [0, n) once,
 * aligned. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/pool.h"
#include "tests/tap.h"

#define MAX_THREADS 8

struct count_job {
	int nth_seen[MAX_THREADS];   /* nth each ith was given */
	int runs[MAX_THREADS];	     /* plain ints: the pool must order them */
	long long data[MAX_THREADS]; /* chain: each job reads the previous sum */
	long long prev_sum;
	int sleep_us;		     /* ith > 0 sleep this long (forces the caller to sleep) */
};

static void count_fn(void *arg, int ith, int nth)
{
	struct count_job *j = arg;
	if (ith >= 0 && ith < MAX_THREADS) {
		j->runs[ith]++;
		j->nth_seen[ith] = nth;
		j->data[ith] = j->prev_sum + ith;
	}
	if (ith > 0 && j->sleep_us > 0)
		usleep((useconds_t)j->sleep_us);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Run `jobs` jobs and check after each one that every ith ran once with the
 * right nth and that the chained sums add up. Returns the number of bad jobs. */
static int run_jobs(struct pool *p, int jobs, int sleep_us, int caller_gap_us)
{
	const int n = pool_threads(p);
	struct count_job j;
	int bad = 0;

	memset(&j, 0, sizeof j);
	j.sleep_us = sleep_us;
	for (int k = 0; k < jobs; k++) {
		memset(j.runs, 0, sizeof j.runs);
		pool_run(p, count_fn, &j);
		long long sum = 0;
		int ok = 1;
		for (int i = 0; i < n; i++) {
			if (j.runs[i] != 1 || j.nth_seen[i] != n || j.data[i] != j.prev_sum + i)
				ok = 0;
			sum += j.data[i];
		}
		for (int i = n; i < MAX_THREADS; i++)
			if (j.runs[i] != 0)
				ok = 0;
		if (!ok && bad++ < 3)
			tap_diag("job %d: bad result (n=%d)", k, n);
		j.prev_sum = sum % 1000003;
		if (caller_gap_us > 0)
			usleep((useconds_t)caller_gap_us);
	}
	return bad;
}

static void test_split(void)
{
	static const long aligns[] = { 1, 3, 4, 16, 32 };
	int bad = 0;
	for (long n = 0; n <= 300; n++) {
		for (size_t ai = 0; ai < sizeof aligns / sizeof aligns[0]; ai++) {
			const long al = aligns[ai];
			for (int nth = 1; nth <= 5; nth++) {
				long expect = 0, min_sz = n + 1, max_sz = -1;
				for (int ith = 0; ith < nth; ith++) {
					long b, e;
					pool_split(n, al, ith, nth, &b, &e);
					/* contiguous, in order, aligned starts */
					if (b != expect || e < b || e > n || (b % al != 0 && b != n))
						bad++;
					expect = e;
					if (e - b < min_sz)
						min_sz = e - b;
					if (e - b > max_sz)
						max_sz = e - b;
				}
				if (expect != n)
					bad++;
				/* near-equal: whole units differ by at most one (the
				 * short last unit can make the gap one align more) */
				if (max_sz - min_sz > 2 * al)
					bad++;
			}
		}
	}
	tap_is_int(bad, 0, "pool_split: n 0..300 x align {1,3,4,16,32} x nth 1..5 "
			   "cover [0,n) once, in order, aligned, near-equal");

	long b, e;
	pool_split(100, 16, 0, 2, &b, &e);
	tap_ok(b == 0 && e == 64, "pool_split(100, 16, 0/2) = [0,64): got [%ld,%ld)", b, e);
	pool_split(100, 16, 1, 2, &b, &e);
	tap_ok(b == 64 && e == 100, "pool_split(100, 16, 1/2) = [64,100): got [%ld,%ld)", b, e);
	pool_split(10, 16, 1, 2, &b, &e);
	tap_ok(b == 10 && e == 10, "pool_split(10, 16, 1/2) is empty: got [%ld,%ld)", b, e);
}

int main(void)
{
	struct pool *p = NULL;

	tap_is_int(pool_create(0, &p), -EINVAL, "pool_create(0) is -EINVAL");
	tap_ok(p == NULL, "no pool on failure");
	pool_free(NULL);
	tap_ok(1, "pool_free(NULL) is a no-op");

	for (int n = 1; n <= 4; n++) {
		int rc = pool_create(n, &p);
		if (!tap_is_int(rc, 0, "pool_create(%d)", n))
			continue;
		tap_is_int(pool_threads(p), n, "pool_threads == %d", n);

		double t0 = now_s();
		int bad = run_jobs(p, 20000, 0, 0);
		double dt = now_s() - t0;
		tap_is_int(bad, 0, "n=%d: 20000 back-to-back jobs, every ith once, writes visible", n);
		tap_diag("n=%d: %.2f us per empty job", n, dt / 20000 * 1e6);

		/* Gaps longer than the spin: workers go to sleep on the futex
		 * between jobs, and must wake for each one. */
		bad = run_jobs(p, 200, 0, 50);
		tap_is_int(bad, 0, "n=%d: 200 jobs with 50 us gaps (workers sleep between jobs)", n);
		/* Slow workers: the caller sleeps waiting for them. */
		bad = run_jobs(p, 100, 200, 0);
		tap_is_int(bad, 0, "n=%d: 100 jobs with slow workers (caller sleeps)", n);
		/* Mixed: alternate, so spin and sleep paths interleave. */
		bad = 0;
		for (int k = 0; k < 200; k++)
			bad += run_jobs(p, 5, (k % 3) * 20, (k % 2) * 15);
		tap_is_int(bad, 0, "n=%d: 1000 jobs alternating spin and sleep paths", n);
		pool_free(p);
		p = NULL;
	}

	/* Create and free many pools: no thread is left behind or deadlocks
	 * on a stop that arrives while it spins or sleeps. */
	int fails = 0;
	for (int k = 0; k < 50; k++) {
		if (pool_create(1 + k % 4, &p) != 0) {
			fails++;
			continue;
		}
		if (k % 2)
			fails += run_jobs(p, 3, 0, 0);
		if (k % 5 == 0)
			usleep(20);
		pool_free(p);
	}
	tap_is_int(fails, 0, "50 pools created, used and freed");

	test_split();
	return tap_done();
}
