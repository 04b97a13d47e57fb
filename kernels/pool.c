/* pool.c: the compute thread pool (see pool.h). One job at a time, handed out
 * by bumping a generation counter; workers spin a few microseconds, then sleep
 * on a futex. Not a task queue and not for I/O: jobs are short, parallel loops. */
#include "config.h"

#include "kernels/pool.h"

#include <assert.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "common/clock.h"
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() atomic_signal_fence(memory_order_seq_cst)
#endif

/* How long an idle thread spins before it sleeps: long enough to catch the
 * next job of a layer loop, and a caller or worker that finishes a matmul up
 * to one chunk (~20 us) before the other. In a VM a sleeping thread is a
 * sleeping vCPU, and waking it costs tens of microseconds: with 5 us of spin,
 * a 7B Q4_K_M decode on 2 threads ran 3% slower (8.23 against 8.45-8.49
 * tok/s at 50-200 us, interleaved). OpenBLAS runs single-threaded inside our
 * jobs (blas_set_threads(1)), so a spinning worker takes no core from it; an
 * idle daemon spins once, 0.1 ms, then sleeps. */
#define POOL_SPIN_NS 100000

struct pool_worker {
	struct pool *pool;
	int ith;
	pthread_t thread;
};

struct pool {
	int n_threads; /* the caller included */
	struct pool_worker *workers; /* n_threads - 1, worker i has ith i + 1 */

	/* The job. Written by the caller before `gen` is bumped (release) and
	 * read by the workers after they see the new `gen` (acquire). */
	void (*fn)(void *arg, int ith, int nth);
	void *arg;

	/* Futex words (the kernel compares 32 bits). */
	_Atomic uint32_t gen;	  /* bumped once per job, and once more to stop */
	_Atomic uint32_t pending; /* workers still running the current job */
	_Atomic uint32_t sleepers; /* workers inside (or entering) futex_wait on gen */
	_Atomic uint32_t caller_sleeping; /* the caller waits on `pending` */
	_Atomic int stop;
};

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
	/* Returns at once if *addr != val (checked by the kernel under its lock,
	 * so a store + wake between our check and the sleep is never lost);
	 * spurious returns are handled by the callers' loops. */
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr, int n)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* Spin until *addr != val or the spin budget is spent; returns the last value
 * seen (acquire). Reads the clock every 64 pauses only. */
static uint32_t spin_while_equal(_Atomic uint32_t *addr, uint32_t val)
{
	uint64_t deadline = 0;
	for (unsigned i = 1;; i++) {
		uint32_t v = atomic_load_explicit(addr, memory_order_acquire);
		if (v != val)
			return v;
		cpu_relax();
		if ((i & 63) == 0) {
			uint64_t t = clock_now_ns();
			if (deadline == 0)
				deadline = t + POOL_SPIN_NS;
			else if (t >= deadline)
				return v;
		}
	}
}

/* Block until gen != seen; returns the new generation (acquire). */
static uint32_t wait_for_job(struct pool *p, uint32_t seen)
{
	uint32_t g = spin_while_equal(&p->gen, seen);
	while (g == seen) {
		/* Dekker with pool_run: we announce ourselves, then re-read gen;
		 * it bumps gen, then reads sleepers. Both seq_cst, so either we
		 * see the new gen or it sees us and wakes the futex. */
		atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
		if (atomic_load_explicit(&p->gen, memory_order_seq_cst) == seen)
			futex_wait(&p->gen, seen);
		atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_seq_cst);
		g = atomic_load_explicit(&p->gen, memory_order_acquire);
	}
	return g;
}

static void *worker_main(void *varg)
{
	struct pool_worker *w = varg;
	struct pool *p = w->pool;
	uint32_t seen = 0; /* pool_create starts gen at 0 */

	for (;;) {
		seen = wait_for_job(p, seen);
		if (atomic_load_explicit(&p->stop, memory_order_relaxed))
			break;
		p->fn(p->arg, w->ith, p->n_threads);
		/* Our writes happen-before the caller's acquire of 0. seq_cst for
		 * the Dekker handshake with the caller's caller_sleeping: the last
		 * one out wakes the caller if it went (or is going) to sleep. */
		if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_seq_cst) == 1 &&
		    atomic_load_explicit(&p->caller_sleeping, memory_order_seq_cst))
			futex_wake(&p->pending, 1);
	}
	return NULL;
}

static void wake_workers(struct pool *p)
{
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&p->sleepers, memory_order_seq_cst) > 0)
		futex_wake(&p->gen, p->n_threads);
}

int pool_create(int n_threads, struct pool **out)
{
	struct pool *p;
	int rc, started = 0;

	*out = NULL;
	if (n_threads < 1)
		return -EINVAL;
	p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->n_threads = n_threads;
	atomic_init(&p->gen, 0);
	atomic_init(&p->pending, 0);
	atomic_init(&p->sleepers, 0);
	atomic_init(&p->caller_sleeping, 0);
	atomic_init(&p->stop, 0);
	if (n_threads > 1) {
		p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
		if (!p->workers) {
			rc = -ENOMEM;
			goto err;
		}
	}
	for (; started < n_threads - 1; started++) {
		struct pool_worker *w = &p->workers[started];
		w->pool = p;
		w->ith = started + 1;
		rc = -pthread_create(&w->thread, NULL, worker_main, w);
		if (rc < 0)
			goto err;
		pthread_setname_np(w->thread, "strata-pool"); /* for top -H and the tests */
	}
	*out = p;
	return 0;

err:
	p->n_threads = started + 1; /* stop only the threads that exist */
	pool_free(p);
	return rc;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	atomic_store_explicit(&p->stop, 1, memory_order_relaxed);
	wake_workers(p); /* the seq_cst bump publishes stop */
	for (int i = 0; i < p->n_threads - 1; i++)
		pthread_join(p->workers[i].thread, NULL);
	free(p->workers);
	free(p);
}

int pool_threads(const struct pool *p)
{
	return p->n_threads;
}

void pool_run(struct pool *p, void (*fn)(void *arg, int ith, int nth), void *arg)
{
	if (p->n_threads == 1) {
		fn(arg, 0, 1);
		return;
	}
	/* No worker reads fn/arg now: pending reached 0 at the end of the
	 * previous job, after every worker had finished with them. */
	p->fn = fn;
	p->arg = arg;
	atomic_store_explicit(&p->pending, (uint32_t)p->n_threads - 1, memory_order_relaxed);
	wake_workers(p); /* release: fn, arg and pending are visible with the new gen */

	fn(arg, 0, p->n_threads);

	uint32_t left = spin_while_equal(&p->pending, p->n_threads - 1u);
	while (left != 0) {
		left = spin_while_equal(&p->pending, left);
		if (left == 0)
			break;
		/* Same handshake as the workers': announce, re-check, sleep. */
		atomic_store_explicit(&p->caller_sleeping, 1, memory_order_seq_cst);
		left = atomic_load_explicit(&p->pending, memory_order_seq_cst);
		if (left != 0)
			futex_wait(&p->pending, left);
		atomic_store_explicit(&p->caller_sleeping, 0, memory_order_seq_cst);
		left = atomic_load_explicit(&p->pending, memory_order_acquire);
	}
}

void pool_split(long n, long align, int ith, int nth, long *begin, long *end)
{
	assert(n >= 0 && align >= 1 && nth >= 1 && ith >= 0 && ith < nth);
	long units = (n + align - 1) / align; /* whole aligned chunks, the last may be short */
	long per = units / nth, extra = units % nth;
	/* The first `extra` threads take one unit more. */
	long u0 = ith * per + (ith < extra ? ith : extra);
	long u1 = u0 + per + (ith < extra ? 1 : 0);
	long b = u0 * align, e = u1 * align;
	*begin = b < n ? b : n;
	*end = e < n ? e : n;
}
