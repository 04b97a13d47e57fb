/* test-memplan.c: the memory plan's arithmetic (engine/memplan.h), table-driven: how a
 * --memory-budget splits into weights, KV cache and scratch; what is refused, and that
 * the refusal gives the numbers and names the limit (the cgroup's file, or physical
 * memory); and that the limits read from this machine are sane. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/memplan.h"
#include "tests/tap.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

struct want {
	int rc;
	uint64_t weights, kv; /* when rc == 0 */
	bool pages;
	const char *msg[3];   /* when rc < 0: substrings of the message */
};

static struct memplan_in base(void)
{
	/* an ALIA-40b-like case: 40 GiB of weights, 3 MiB blocks, 4 x 4096 positions */
	struct memplan_in in = {
		.weights = 40 * GiB, .scratch = 300 * MiB, .kv_frame = 3 * MiB,
		.kv_one = 257, .kv_all = 4 * 257, .n_ctx = 4096, .n_slots = 4,
		.lim = { .phys = 24 * GiB },
	};
	return in;
}

static void check(const char *name, const struct memplan_in *in, struct want w)
{
	struct memplan p;
	struct st_err err = { "" };
	int rc = memplan_make(in, &p, &err);
	if (w.rc < 0) {
		bool all = rc == w.rc;
		for (int i = 0; i < 3 && w.msg[i]; i++)
			all = all && strstr(err.msg, w.msg[i]) != NULL;
		tap_ok(all, "%s: refused: %s", name, err.msg);
		return;
	}
	tap_ok(rc == 0 && p.weights == w.weights && p.kv == w.kv && p.kv_pages == w.pages &&
	       (in->budget == 0 || p.weights + p.kv + p.scratch <= in->budget),
	       "%s: weights %llu MiB, KV %llu MiB, pages %d (got %d: %llu, %llu, %d) %s", name,
	       (unsigned long long)(w.weights / MiB), (unsigned long long)(w.kv / MiB), w.pages, rc,
	       (unsigned long long)(p.weights / MiB), (unsigned long long)(p.kv / MiB), p.kv_pages,
	       err.msg);
}

int main(void)
{
	struct memplan_in in = base();

	in.budget = 6 * GiB;
	/* a quarter for the KV cache (512 blocks of 3 MiB), the rest less scratch to weights */
	check("6G budget", &in,
	      (struct want){ .weights = 6 * GiB - 1536 * MiB - 300 * MiB, .kv = 1536 * MiB, .pages = true });
	in.kv_budget = 2 * GiB;
	check("6G budget, --kv-budget 2G", &in,
	      (struct want){ .weights = 6 * GiB - 2046 * MiB - 300 * MiB, .kv = 2046 * MiB, .pages = true });
	in.kv_budget = 100 * MiB;
	check("--kv-budget below one sequence", &in,
	      (struct want){ .rc = -EINVAL, .msg = { "--kv-budget 100.0 MiB", "--ctx-size 4096 needs 257" } });
	in.kv_budget = 0;

	in.budget = 700 * MiB;
	check("a budget below one sequence's KV and scratch", &in,
	      (struct want){ .rc = -EINVAL, .msg = { "--memory-budget 700.0 MiB cannot hold the KV cache of "
					       "one sequence at full --ctx-size (4096 positions: 771.0 MiB)",
					       "scratch (300.0 MiB)" } });

	in.budget = 30 * GiB;
	check("a budget above physical memory", &in,
	      (struct want){ .rc = -EINVAL, .msg = { "--memory-budget 30.0 GiB is more than this process "
					       "may use: 24.0 GiB, physical memory" } });
	in.lim.cgroup = 8 * GiB;
	snprintf(in.lim.cgroup_file, sizeof in.lim.cgroup_file, "/sys/fs/cgroup/x/memory.max");
	in.budget = 10 * GiB;
	check("a budget above the cgroup's limit", &in,
	      (struct want){ .rc = -EINVAL, .msg = { "8.00 GiB, its memory cgroup's limit "
					       "(/sys/fs/cgroup/x/memory.max)" } });

	/* a small model: the weights take what they need, the KV cache the rest (up to all) */
	in = base();
	in.weights = 1 * GiB;
	in.budget = 6 * GiB;
	check("weights that fit: the KV cache gets every sequence at full length", &in,
	      (struct want){ .weights = 1 * GiB, .kv = 4 * 257 * 3 * MiB, .pages = false });

	/* no budget: everything in memory, which must fit */
	in = base();
	check("no budget, 40 GiB of weights on 24 GiB", &in,
	      (struct want){ .rc = -EINVAL, .msg = { "with no --memory-budget everything is held in memory",
					       "40.0 GiB of weights", "this process may use: 24.0 GiB" } });
	in.weights = 2 * GiB;
	check("no budget, a small model", &in,
	      (struct want){ .weights = 0, .kv = 4 * 257 * 3 * MiB, .pages = false });
	in.kv_budget = 257 * 3 * MiB;
	check("no budget, --kv-budget of one sequence: it pages", &in,
	      (struct want){ .weights = 0, .kv = 257 * 3 * MiB, .pages = true });

	struct memplan_limits lim;
	memplan_read_limits(&lim);
	tap_ok(lim.phys > 64 * MiB && (lim.cgroup == 0 || lim.cgroup_file[0] == '/'),
	       "this machine: %llu MiB physical, cgroup limit %llu MiB %s",
	       (unsigned long long)(lim.phys / MiB), (unsigned long long)(lim.cgroup / MiB),
	       lim.cgroup_file);
	return tap_done();
}
