/* generate.h: the single-sequence driver: runs one sequence (seq.h) pass
 * after pass until it finishes, for strata-model and strata-bench. The
 * daemon's scheduler drives many sequences the same way, sharing passes. */
#ifndef STRATA_ENGINE_GENERATE_H
#define STRATA_ENGINE_GENERATE_H

#include "common/err.h"
#include "engine/seq.h"

struct engine;

/* Run s to its end: each pass carries its pending rows (the prompt in chunks
 * of the engine's batch size, then one token per pass). Returns 0 when s
 * finished for its own reasons; a failed pass finishes s with ERROR and is
 * returned as its -errno with the message in err; -ENOMEM. */
int generate_run(struct engine *e, struct seq *s, const struct seq_sink *sink, struct st_err *err);

#endif
