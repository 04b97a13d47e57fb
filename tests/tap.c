/* tap.c: implementation of tests/tap.h (TAP version 13 output on stdout). */
#include "config.h" /* _GNU_SOURCE (AC_USE_SYSTEM_EXTENSIONS): nftw needs XSI */

#include "tests/tap.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int tap_count;
static int tap_failed;
static int tap_planned = -1;
static char tap_tmp[256];

void tap_plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

void tap_skip_all(const char *fmt, ...)
{
	va_list ap;
	printf("1..0 # SKIP ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(0);
}

/* the format attribute lets clang's -Wformat-nonliteral accept the vprintf */
static int tap_vok(int cond, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static int tap_vok(int cond, const char *fmt, va_list ap)
{
	tap_count++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_count);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tap_vok(cond, fmt, ap);
	va_end(ap);
	return cond;
}

void tap_skip(const char *fmt, ...)
{
	va_list ap;
	tap_count++;
	printf("ok %d # SKIP ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

void tap_bail(const char *fmt, ...)
{
	va_list ap;
	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

int tap_done(void)
{
	if (tap_planned < 0)
		printf("1..%d\n", tap_count);
	else if (tap_planned != tap_count)
		printf("# planned %d tests but ran %d\n", tap_planned, tap_count);
	fflush(stdout);
	return tap_failed || (tap_planned >= 0 && tap_planned != tap_count);
}

int tap_is_int(int64_t got, int64_t want, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = tap_vok(got == want, fmt, ap);
	va_end(ap);
	if (!r)
		tap_diag("got %lld, want %lld", (long long)got, (long long)want);
	return r;
}

int tap_is_str(const char *got, const char *want, const char *fmt, ...)
{
	va_list ap;
	int same = got && want ? strcmp(got, want) == 0 : got == want;
	va_start(ap, fmt);
	int r = tap_vok(same, fmt, ap);
	va_end(ap);
	if (!r)
		tap_diag("got \"%s\", want \"%s\"", got ? got : "(null)", want ? want : "(null)");
	return r;
}

int tap_is_near(double got, double want, double tol, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = tap_vok(fabs(got - want) <= tol, fmt, ap);
	va_end(ap);
	if (!r)
		tap_diag("got %.9g, want %.9g (tolerance %.3g, off by %.3g)", got, want, tol,
			 fabs(got - want));
	return r;
}

static uint64_t tap_rng = 0x9e3779b97f4a7c15ull;

void tap_srand(uint64_t seed)
{
	tap_rng = seed ? seed : 0x9e3779b97f4a7c15ull; /* xorshift must not start at 0 */
}

uint64_t tap_rand(void)
{
	tap_rng ^= tap_rng >> 12;
	tap_rng ^= tap_rng << 25;
	tap_rng ^= tap_rng >> 27;
	return tap_rng * 0x2545f4914f6cdd1dull;
}

float tap_frand(void)
{
	return (float)((double)(tap_rand() >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

void *tap_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		tap_bail("out of memory (%zu bytes)", n);
	return p;
}

const char *tap_shared_dir(void)
{
	const char *d = getenv("STRATA_SHARED");
	struct stat st;
	if (!d || !*d || stat(d, &st) != 0 || !S_ISDIR(st.st_mode))
		return NULL;
	return d;
}

const char *tap_builddir(void)
{
	const char *d = getenv("STRATA_BUILDDIR");
	return d && *d ? d : ".";
}

const char *tap_srcdir(void)
{
	const char *d = getenv("STRATA_SRCDIR");
	return d && *d ? d : ".";
}

static int tap_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void tap_rm_tmp(void)
{
	if (tap_tmp[0] && !getenv("STRATA_KEEP_TMP"))
		nftw(tap_tmp, tap_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tap_tmpdir(void)
{
	if (!tap_tmp[0]) {
		const char *base = getenv("TMPDIR");
		snprintf(tap_tmp, sizeof tap_tmp, "%s/strata-test.XXXXXX", base && *base ? base : "/tmp");
		if (!mkdtemp(tap_tmp))
			tap_bail("mkdtemp %s: %s", tap_tmp, strerror(errno));
		atexit(tap_rm_tmp);
	}
	return tap_tmp;
}

char *tap_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = tap_xmalloc(cap + 1);
	for (;;) {
		if (n == cap) {
			char *p = realloc(buf, 2 * cap + 1);
			if (!p)
				tap_bail("out of memory reading %s", path);
			buf = p;
			cap *= 2;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		if (got == 0)
			break;
		n += got;
	}
	if (ferror(f))
		tap_bail("read %s: %s", path, strerror(errno));
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}
