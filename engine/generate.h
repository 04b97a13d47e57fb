/* generate.h: the single-job drivers: run one sequence (seq.h), or one
 * scorer (score.h), pass after pass until it finishes, for strata-model,
 * strata-bench and the tests. The daemon's scheduler drives many the same
 * way, sharing passes. */
#ifndef STRATA_ENGINE_GENERATE_H
#define STRATA_ENGINE_GENERATE_H

#include "common/err.h"
#include "engine/score.h"
#include "engine/seq.h"

struct engine;

/* Run s to its end: each pass carries its pending rows (the prompt in chunks
 * of the engine's batch size, then its last token and the drafts proposed
 * for it just before the pass, if it drafts: draft.h). Returns 0 when s
 * finished for its own reasons; a failed pass finishes s with ERROR and is
 * returned as its -errno with the message in err; -ENOMEM. */
int generate_run(struct engine *e, struct seq *s, const struct seq_sink *sink, struct st_err *err);

/* The same for a scorer: pass after pass until it is done. 0, or a failed
 * pass's -errno (the scorer then holds the error too). */
int score_run(struct engine *e, struct score *sc, struct st_err *err);

#endif
