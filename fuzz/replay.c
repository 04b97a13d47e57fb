/* replay.c: main() for a fuzz target built without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on each file named on the command line (a
 * directory means the files in it), and prints TAP for `make check`. With no
 * arguments it replays $STRATA_SRCDIR/fuzz/corpus/<FUZZ_CORPUS>. Not a fuzzer. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz.h"

#ifndef FUZZ_CORPUS
#error "define FUZZ_CORPUS, the target's corpus folder name"
#endif

struct list {
	char **v;
	size_t n, cap;
};

static void add(struct list *l, const char *path)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
	}
	if (!l->v || !(l->v[l->n++] = strdup(path))) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A file, or the regular files directly in a directory (sorted). */
static void collect(struct list *l, const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		printf("Bail out! %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (!S_ISDIR(st.st_mode)) {
		add(l, path);
		return;
	}
	DIR *d = opendir(path);
	if (!d) {
		printf("Bail out! %s: %s\n", path, strerror(errno));
		exit(1);
	}
	size_t first = l->n;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char p[4096];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", path, e->d_name);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
			add(l, p);
	}
	closedir(d);
	qsort(l->v + first, l->n - first, sizeof *l->v, cmp);
}

static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, len = 0;
	unsigned char *p = malloc(cap);
	size_t k;
	while (p && (k = fread(p + len, 1, cap - len, f)) > 0) {
		len += k;
		if (len == cap) {
			unsigned char *q = realloc(p, cap *= 2);
			if (!q)
				free(p);
			p = q;
		}
	}
	fclose(f);
	/* an exact-size copy, so ASan catches a read one past the end */
	unsigned char *exact = p ? malloc(len ? len : 1) : NULL;
	if (exact)
		memcpy(exact, p, len);
	free(p);
	*n = len;
	return exact;
}

int main(int argc, char **argv)
{
	struct list l = { 0 };
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			collect(&l, argv[i]);
	} else {
		const char *src = getenv("STRATA_SRCDIR");
		char dir[4096];
		snprintf(dir, sizeof dir, "%s/fuzz/corpus/%s", src && *src ? src : ".", FUZZ_CORPUS);
		collect(&l, dir);
	}
	if (l.n == 0) {
		printf("1..0 # SKIP empty corpus\n");
		return 0;
	}
	printf("1..%zu\n", l.n);
	fflush(stdout);
	int failed = 0;
	for (size_t i = 0; i < l.n; i++) {
		size_t n;
		unsigned char *p = slurp(l.v[i], &n);
		if (p) {
			LLVMFuzzerTestOneInput(p, n); /* a bug aborts: the plan is then not met */
			printf("ok %zu - %s (%zu bytes)\n", i + 1, l.v[i], n);
		} else {
			printf("not ok %zu - %s: cannot read\n", i + 1, l.v[i]);
			failed = 1;
		}
		fflush(stdout);
		free(p);
		free(l.v[i]);
	}
	free(l.v);
	return failed;
}
