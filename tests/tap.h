/* tap.h: a tiny TAP producer for the C test programs that `make check` runs
 * through automake's tap-driver. Not a framework: plan, ok, a few typed
 * comparisons with diagnostics, skip, and a summary exit code. */
#ifndef STRATA_TESTS_TAP_H
#define STRATA_TESTS_TAP_H

#include <stddef.h>
#include <stdint.h>

/* Declare how many tests will run (optional: tap_done() prints the plan if not). */
void tap_plan(int n);
/* Skip the whole program with a reason, exit 0 (TAP "1..0 # SKIP reason"). */
void tap_skip_all(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* One test point; returns cond so callers can branch on failure. */
int tap_ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One skipped test point. */
void tap_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A "# " comment line on stdout (shown by the driver in the log). */
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Fail everything now (setup error): prints "Bail out!" and exits 1. */
void tap_bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Prints the plan if none was declared; returns the exit status for main(). */
int tap_done(void);

/* Comparisons that print both sides on failure. */
int tap_is_int(int64_t got, int64_t want, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int tap_is_str(const char *got, const char *want, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* |got - want| <= tol */
int tap_is_near(double got, double want, double tol, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Deterministic pseudo-random test data (xorshift64*): the same sequence on
 * every run, so a failure reproduces. One stream per program; tap_srand()
 * restarts it. */
void tap_srand(uint64_t seed);
uint64_t tap_rand(void);
float tap_frand(void); /* uniform in [-1, 1) */
/* malloc that bails the test out when memory runs out (never NULL; n may be 0). */
void *tap_xmalloc(size_t n);

/* The whole file at path, NUL-terminated (malloc'd; the caller frees), its
 * length in *len (may be NULL); NULL when it cannot be opened (the caller
 * skips or bails). A read error or no memory bails the test out. */
char *tap_slurp(const char *path, size_t *len);

/* $STRATA_SHARED (the ../shared folder), or NULL when absent: callers skip. */
const char *tap_shared_dir(void);
/* $STRATA_BUILDDIR/$STRATA_SRCDIR, or "." when unset. */
const char *tap_builddir(void);
const char *tap_srcdir(void);
/* A fresh private directory for this test's files, removed at exit. */
const char *tap_tmpdir(void);

#endif
