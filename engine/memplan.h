/* memplan.h: one memory bound for everything the engine holds that grows with
 * the model and the load: the weights (resident layers and stream buffers),
 * the KV cache's memory, and compute scratch (activations, logits, matmul
 * panels, bookkeeping). --memory-budget is that bound; the plan splits it and
 * refuses, with the numbers, what cannot fit it or what this process may use
 * (its memory cgroup's limit, physical memory). Arithmetic only, except
 * memplan_read_limits, which reads /proc and /sys. */
#ifndef STRATA_ENGINE_MEMPLAN_H
#define STRATA_ENGINE_MEMPLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* What this process may use. */
struct memplan_limits {
	uint64_t phys;		/* physical memory */
	uint64_t cgroup;	/* its memory cgroup's limit (the lowest on its path); 0: none */
	char cgroup_file[256];	/* where that limit was read */
};

/* The machine's and the cgroup's limits (cgroup v2 memory.max, v1
 * memory.limit_in_bytes). Never fails: what cannot be read is "no limit". */
void memplan_read_limits(struct memplan_limits *out);

struct memplan_in {
	uint64_t budget;	/* --memory-budget; 0: none given */
	uint64_t kv_budget;	/* --kv-budget; 0: chosen here */
	uint64_t weights;	/* every weight unit, as held in memory */
	uint64_t scratch;	/* compute scratch and bookkeeping */
	uint64_t kv_frame;	/* bytes of one KV block in memory */
	uint64_t kv_one;	/* blocks one sequence at full length needs in memory */
	uint64_t kv_all;	/* blocks every slot at full length needs */
	uint32_t n_ctx, n_slots;/* for messages */
	struct memplan_limits lim;
};

struct memplan {
	uint64_t bound;		/* the bound the plan is within */
	uint64_t weights;	/* for the weight source: 0 = everything resident */
	uint64_t kv;		/* the KV cache's memory (whole blocks) */
	uint64_t scratch;
	bool kv_auto;		/* kv was chosen here (it may give some back to the weights) */
	bool kv_pages;		/* kv < every slot at full length: blocks go to disk under load */
};

/* The KV share chosen when --kv-budget is not given: a quarter of the budget,
 * at least one sequence at full length, at most every slot at full length;
 * what the weights cannot use goes to it too. */
#define MEMPLAN_KV_SHARE 4

/* Split the bound. -EINVAL with a message giving the numbers when the
 * configuration cannot fit (the budget, or what the process may use). */
int memplan_make(const struct memplan_in *in, struct memplan *out, struct st_err *err);

#endif
