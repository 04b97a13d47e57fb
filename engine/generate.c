/* generate.c: see generate.h. */
#include "engine/generate.h"

#include <errno.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/log.h"
#include "engine/engine.h"

/* A batch and a logits buffer as large as the engine's passes. */
struct driver {
	struct batch b;
	float *logits;
};

static int driver_init(struct engine *e, struct driver *d)
{
	uint32_t rows = engine_max_logits_rows(e);
	int rc = batch_init(&d->b, engine_max_batch(e), rows);
	d->logits = rc == 0 ? malloc((size_t)rows * engine_n_vocab(e) * sizeof *d->logits) : NULL;
	if (!d->logits) {
		batch_free(&d->b);
		return -ENOMEM;
	}
	return 0;
}

static void driver_free(struct driver *d)
{
	free(d->logits);
	batch_free(&d->b);
}

/* Run the pass in d->b, timing it and what it read. */
static int driver_pass(struct engine *e, struct driver *d, struct seq_pass *pass, struct st_err *err)
{
	struct engine_pass_io before, after;
	engine_pass_io(e, &before);
	pass->t_start = clock_now_ns();
	int rc = engine_decode(e, &d->b, d->logits, err);
	pass->t_end = clock_now_ns();
	engine_pass_io(e, &after);
	pass->bytes_read = after.bytes_read - before.bytes_read;
	pass->stall_ns = after.stall_ns - before.stall_ns;
	return rc;
}

int generate_run(struct engine *e, struct seq *s, const struct seq_sink *sink, struct st_err *err)
{
	struct driver d;
	int rc = driver_init(e, &d);
	if (rc < 0) {
		seq_finish(s, SEQ_FINISH_ERROR, rc, "out of memory", sink);
		return st_errf(err, rc, "out of memory");
	}
	struct drafter *dr = NULL;
	if (seq_draft_source(s) != DRAFT_NONE && drafter_create(e, &dr) < 0) {
		driver_free(&d);
		seq_finish(s, SEQ_FINISH_ERROR, -ENOMEM, "out of memory", sink);
		return st_errf(err, -ENOMEM, "out of memory");
	}
	while (seq_state(s) != SEQ_FINISHED) {
		struct seq_pass pass = { 0 };
		batch_clear(&d.b);
		uint32_t k = seq_draft_wanted(s);
		if (k > 0) {
			/* the verifying pass has a logits row for the last token and each draft */
			uint32_t room = (d.b.cap < d.b.want_cap ? d.b.cap : d.b.want_cap) - 1;
			struct st_err derr = { "" };
			seq_draft_begin(s, k < room ? k : room);
			if (drafter_run(dr, &s, 1, &derr) < 0)
				log_warn("a draft pass failed, this pass verifies no drafts: %s", derr.msg);
		}
		engine_plan_begin(e);
		seq_add_rows(s, &d.b, d.b.cap);
		rc = driver_pass(e, &d, &pass, err);
		if (rc < 0) {
			seq_finish(s, SEQ_FINISH_ERROR, rc, err->msg, sink);
			break;
		}
		seq_pass_done(s, d.logits, &pass, sink);
	}
	drafter_free(dr);
	driver_free(&d);
	return rc < 0 ? rc : 0;
}

int score_run(struct engine *e, struct score *sc, struct st_err *err)
{
	struct driver d;
	int rc = driver_init(e, &d);
	if (rc < 0) {
		score_fail(sc, rc, "out of memory");
		return st_errf(err, rc, "out of memory");
	}
	while (!score_done(sc)) {
		struct seq_pass pass = { 0 };
		batch_clear(&d.b);
		engine_plan_begin(e);
		score_add_rows(sc, &d.b, d.b.cap);
		rc = driver_pass(e, &d, &pass, err);
		if (rc < 0) {
			score_fail(sc, rc, err->msg);
			break;
		}
		score_pass_done(sc, d.logits, &pass);
	}
	driver_free(&d);
	return rc < 0 ? rc : 0;
}
