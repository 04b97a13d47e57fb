/* memplan.c: see memplan.h. */
#include "engine/memplan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/parse.h"

/* A cgroup v1 limit at or above this means "no limit" (the kernel writes
 * PAGE_COUNTER_MAX pages, about 2^63 bytes). */
#define CGROUP_V1_UNLIMITED (1ull << 62)

/* Read one number from a file: 0 when it says "max", is missing or unreadable. */
static uint64_t read_limit(const char *path)
{
	char buf[64];
	FILE *f = fopen(path, "re");
	uint64_t v = 0;
	if (!f)
		return 0;
	if (fgets(buf, sizeof buf, f)) {
		buf[strcspn(buf, "\n")] = '\0';
		if (parse_u64(buf, &v) < 0 || v >= CGROUP_V1_UNLIMITED)
			v = 0;
	}
	fclose(f);
	return v;
}

/* The lowest limit on the path from `dir` (under `root`) up to the root. */
static void walk_up(struct memplan_limits *out, const char *root, const char *dir,
		    const char *file)
{
	char path[512], p[256];
	snprintf(p, sizeof p, "%s", dir);
	for (;;) {
		snprintf(path, sizeof path, "%s%s%s/%s", root, p[0] == '/' ? "" : "/",
			 strcmp(p, "/") == 0 ? "" : p, file);
		uint64_t v = read_limit(path);
		if (v && (!out->cgroup || v < out->cgroup)) {
			out->cgroup = v;
			snprintf(out->cgroup_file, sizeof out->cgroup_file, "%.*s",
				 (int)sizeof out->cgroup_file - 1, path);
		}
		char *slash = strrchr(p, '/');
		if (!slash || strcmp(p, "/") == 0)
			break;
		if (slash == p)
			snprintf(p, sizeof p, "/");
		else
			*slash = '\0';
	}
}

void memplan_read_limits(struct memplan_limits *out)
{
	memset(out, 0, sizeof *out);
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	if (pages > 0 && page > 0)
		out->phys = (uint64_t)pages * (uint64_t)page;

	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		/* "hierarchy-id:controllers:path" */
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrl = c1 + 1, *dir = c2 + 1;
		if (*ctrl == '\0') {
			walk_up(out, "/sys/fs/cgroup", dir, "memory.max"); /* v2 */
			continue;
		}
		/* v1: a list of controllers, memory among them? */
		char list[256];
		snprintf(list, sizeof list, ",%s,", ctrl);
		if (strstr(list, ",memory,"))
			walk_up(out, "/sys/fs/cgroup/memory", dir, "memory.limit_in_bytes");
	}
	fclose(f);
}

/* What this process may use, and a phrase saying where that comes from. */
static uint64_t may_use(const struct memplan_limits *lim, char *why, size_t cap)
{
	if (lim->cgroup && (!lim->phys || lim->cgroup < lim->phys)) {
		snprintf(why, cap, "its memory cgroup's limit (%s)", lim->cgroup_file);
		return lim->cgroup;
	}
	snprintf(why, cap, "physical memory");
	return lim->phys;
}

int memplan_make(const struct memplan_in *in, struct memplan *out, struct st_err *err)
{
	char a[32], b[32], c[32], d[32], e[32], why[320];
	const uint64_t one = in->kv_one * in->kv_frame, all = in->kv_all * in->kv_frame;
	const uint64_t limit = may_use(&in->lim, why, sizeof why);
	memset(out, 0, sizeof *out);
	out->scratch = in->scratch;
	out->kv_auto = in->kv_budget == 0;

	if (in->kv_budget && in->kv_budget < one)
		return st_errf(err, -EINVAL, "--kv-budget %s holds %" PRIu64 " blocks of KV cache; one "
			       "sequence of --ctx-size %u needs %" PRIu64 " (%s): raise --kv-budget or "
			       "lower --ctx-size", format_size(in->kv_budget, a, sizeof a),
			       in->kv_budget / in->kv_frame, in->n_ctx, in->kv_one,
			       format_size(one, b, sizeof b));
	if (in->budget == 0) {
		/* no bound given: everything in memory, and that must fit */
		out->kv = in->kv_budget ? in->kv_budget / in->kv_frame * in->kv_frame : all;
		out->bound = in->weights + out->kv + in->scratch;
		out->weights = 0;
		if (limit && out->bound > limit)
			return st_errf(err, -EINVAL, "with no --memory-budget everything is held in "
				       "memory: %s of weights + %s of KV cache (%u sequences of %u "
				       "positions) + %s of scratch = %s, more than this process may "
				       "use: %s, %s. Set --memory-budget (weights then stream from disk "
				       "and the KV cache pages to it), or lower --ctx-size or --parallel",
				       format_size(in->weights, a, sizeof a),
				       format_size(out->kv, b, sizeof b), in->n_slots, in->n_ctx,
				       format_size(in->scratch, c, sizeof c),
				       format_size(out->bound, d, sizeof d), format_size(limit, e, sizeof e),
				       why);
		out->kv_pages = out->kv < all;
		return 0;
	}
	if (limit && in->budget > limit)
		return st_errf(err, -EINVAL, "--memory-budget %s is more than this process may use: %s, "
			       "%s", format_size(in->budget, a, sizeof a),
			       format_size(limit, b, sizeof b), why);
	uint64_t kv = in->kv_budget;
	if (!kv) {
		kv = in->budget / MEMPLAN_KV_SHARE;
		kv = kv < one ? one : kv > all ? all : kv;
	}
	kv = kv / in->kv_frame * in->kv_frame;
	if (kv + in->scratch >= in->budget) {
		char what[160];
		if (in->kv_budget)
			snprintf(what, sizeof what, "--kv-budget %s", format_size(kv, b, sizeof b));
		else
			snprintf(what, sizeof what, "the KV cache of one sequence at full --ctx-size (%u "
				 "positions: %s)", in->n_ctx, format_size(one, b, sizeof b));
		return st_errf(err, -EINVAL, "--memory-budget %s cannot hold %s and compute scratch "
			       "(%s), let alone weights: raise --memory-budget, or lower --ctx-size%s "
			       "or --batch-size", format_size(in->budget, a, sizeof a), what,
			       format_size(in->scratch, d, sizeof d),
			       in->kv_budget ? ", --kv-budget" : "");
	}
	uint64_t w = in->budget - kv - in->scratch;
	if (w > in->weights) {
		/* more than the weights need: the rest to the KV cache when it is ours to size */
		if (!in->kv_budget) {
			uint64_t more = (w - in->weights) / in->kv_frame * in->kv_frame;
			if (kv + more > all)
				more = all > kv ? all - kv : 0;
			kv += more;
		}
		w = in->weights;
	}
	out->bound = in->budget;
	out->kv = kv;
	out->weights = w;
	out->kv_pages = kv < all;
	return 0;
}
