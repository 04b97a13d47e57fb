/* pool.h: a fixed set of compute threads that run one function in parallel.
 * The caller's thread is worker 0, so a pool of N threads creates N-1; between
 * jobs the workers sleep (after a short spin) so they leave the cores to
 * OpenBLAS, which runs on the same N cores: never more than N busy threads. */
#ifndef STRATA_KERNELS_POOL_H
#define STRATA_KERNELS_POOL_H

struct pool;

/* n_threads >= 1 (the total, the caller included). Returns 0 or -errno.
 * Caller owns *out; pool_free(NULL) is a no-op. */
int pool_create(int n_threads, struct pool **out);
void pool_free(struct pool *p);
int pool_threads(const struct pool *p);

/* Run fn(arg, ith, nth) for every ith in [0, nth), nth = pool_threads(p);
 * the caller runs ith == 0. Returns when all have returned. Not reentrant:
 * one job at a time per pool. */
void pool_run(struct pool *p, void (*fn)(void *arg, int ith, int nth), void *arg);

/* Split [0, n) into nth near-equal chunks aligned to `align` items;
 * the chunk of thread ith is [*begin, *end). */
void pool_split(long n, long align, int ith, int nth, long *begin, long *end);

#endif
