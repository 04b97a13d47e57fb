/* generate.c: see generate.h. */
#include "engine/generate.h"

#include <errno.h>
#include <stdlib.h>

#include "common/clock.h"
#include "engine/engine.h"

int generate_run(struct engine *e, struct seq *s, const struct seq_sink *sink, struct st_err *err)
{
	struct batch b;
	float *logits = NULL;
	uint32_t rows = engine_max_logits_rows(e);
	int rc = batch_init(&b, engine_max_batch(e), rows);

	if (rc == 0 && !(logits = malloc((size_t)rows * engine_n_vocab(e) * sizeof *logits)))
		rc = -ENOMEM;
	if (rc < 0) {
		seq_finish(s, SEQ_FINISH_ERROR, rc, "out of memory", sink);
		batch_free(&b);
		return st_errf(err, rc, "out of memory");
	}
	while (seq_state(s) != SEQ_FINISHED) {
		struct seq_pass pass = { 0 };
		struct engine_pass_io before, after;
		batch_clear(&b);
		seq_add_rows(s, &b, b.cap);
		engine_pass_io(e, &before);
		pass.t_start = clock_now_ns();
		rc = engine_decode(e, &b, logits, err);
		pass.t_end = clock_now_ns();
		if (rc < 0) {
			seq_finish(s, SEQ_FINISH_ERROR, rc, err->msg, sink);
			break;
		}
		engine_pass_io(e, &after);
		pass.bytes_read = after.bytes_read - before.bytes_read;
		pass.stall_ns = after.stall_ns - before.stall_ns;
		seq_pass_done(s, logits, &pass, sink);
	}
	free(logits);
	batch_free(&b);
	return rc < 0 ? rc : 0;
}
