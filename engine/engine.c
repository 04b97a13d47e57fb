/* engine.c: assembles model, tokenizer, weight source, KV cache, threads and
 * forward pass (see engine.h), in that order, and takes them apart in reverse. */
#include "engine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "engine/kv.h"
#include "common/log.h"
#include "engine/model.h"
#include "tokenizer/tokenizer.h"
#include "kernels/blas.h"
#include "kernels/dot.h"
#include "kernels/isa.h"
#include "kernels/pool.h"
#include "kernels/types.h"

struct engine {
	struct engine_config cfg;
	int fd;			/* the model file, opened once: gguf, weights, embeddings read it */
	struct model *model;
	struct tokenizer *tok;
	struct weights_unit *units;
	uint32_t n_units;
	struct weights *w;
	struct kv_cache *kv;
	struct pool *pool;
	struct forward *fwd;
	int threads;
};

void engine_config_default(struct engine_config *c)
{
	memset(c, 0, sizeof *c);
	c->kv_type = ST_F16;
	c->io = WEIGHTS_IO_URING;
}

static int default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

int engine_open(const struct engine_config *cfg, struct engine **out, struct st_err *err)
{
	struct engine *e;
	int rc;

	*out = NULL;
	e = calloc(1, sizeof *e);
	if (!e)
		return st_errf(err, -ENOMEM, "out of memory");
	e->cfg = *cfg;
	e->threads = cfg->threads > 0 ? cfg->threads : default_threads();

	/* Opened once, by everyone: a path swapped underneath cannot mix two files, and
	 * O_NONBLOCK keeps a FIFO given as the model from blocking the open. */
	e->fd = open(cfg->model_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (e->fd < 0 || fstat(e->fd, &st) != 0) {
		rc = st_errf(err, -errno, "%s: cannot open: %s", cfg->model_path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		const char *kind = S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
				   : S_ISSOCK(st.st_mode) ? "a socket" : "a device";
		rc = st_errf(err, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
			     "%s is not a regular file (%s)", cfg->model_path, kind);
		goto fail;
	}
	/* io_uring answers EAGAIN on an O_NONBLOCK descriptor instead of waiting */
	fcntl(e->fd, F_SETFL, fcntl(e->fd, F_GETFL) & ~O_NONBLOCK);
	rc = model_open_fd(e->fd, cfg->model_path, &e->model, err);
	if (rc < 0)
		goto fail;
	const struct model_hparams *hp = &e->model->hp;

	rc = tokenizer_load(e->model->gguf, &e->tok, err);
	if (rc < 0) {
		st_err_prefix(err, rc, "%s", cfg->model_path);
		goto fail;
	}
	if ((uint32_t)tokenizer_n_vocab(e->tok) != hp->n_vocab) {
		rc = st_errf(err, -EINVAL, "%s: the tokenizer has %d tokens but token_embd.weight has %u rows",
			     cfg->model_path, tokenizer_n_vocab(e->tok), hp->n_vocab);
		goto fail;
	}

	uint32_t n_ctx = cfg->ctx_size;
	if (n_ctx == 0)
		n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
	uint32_t n_slots = cfg->n_slots ? cfg->n_slots : 1;
	uint32_t batch = cfg->batch_size ? cfg->batch_size : 512;
	e->cfg.ctx_size = n_ctx;
	e->cfg.n_slots = n_slots;
	e->cfg.batch_size = batch;

	rc = forward_units(e->model, &e->units, &e->n_units);
	if (rc < 0) {
		st_errf(err, rc, "out of memory");
		goto fail;
	}
	struct weights_config wc = {
		.fd = e->fd,
		.path = cfg->model_path,
		.header_bytes = gguf_data_offset(e->model->gguf), /* changed: a different model */
		.budget = cfg->memory_budget, /* 0: everything resident */
		.io = cfg->io,
		.prefetch = cfg->prefetch > 0 ? (uint32_t)cfg->prefetch : 0,
		.mlock = cfg->mlock,
	};
	rc = weights_open(&wc, e->units, e->n_units, &e->w, err);
	if (rc < 0)
		goto fail;

	rc = kv_create(cfg->kv_type, hp->n_layer, n_ctx, n_slots, hp->n_head_kv * hp->head_dim, &e->kv,
		       err);
	if (rc < 0)
		goto fail;

	rc = pool_create(e->threads, &e->pool);
	if (rc < 0) {
		st_errf(err, rc, "cannot start %d compute threads", e->threads);
		goto fail;
	}

	rc = forward_create(e->model, e->w, e->kv, e->pool, batch, &e->fwd, err);
	if (rc < 0)
		goto fail;

	/* Loading read the metadata (the tokenizer's arrays: megabytes for a
	 * 256,000-token vocabulary) through the file's mapping. Those pages are
	 * copied out now; hand them back so they do not count against the
	 * budget. The mapping stays valid: a later touch faults one page in. */
	madvise((void *)gguf_base(e->model->gguf), gguf_file_size(e->model->gguf), MADV_DONTNEED);

	if (log_enabled(LOG_LVL_INFO)) {
		char plan[2048];
		engine_describe(e, plan, sizeof plan);
		log_info("%s", plan);
	}
	*out = e;
	return 0;
fail:
	engine_close(e);
	return rc;
}

void engine_close(struct engine *e)
{
	if (!e)
		return;
	forward_free(e->fwd);
	pool_free(e->pool);
	kv_free(e->kv);
	weights_close(e->w);
	forward_units_free(e->units, e->n_units);
	tokenizer_free(e->tok);
	model_close(e->model);
	if (e->fd >= 0)
		close(e->fd);
	free(e);
}

const struct model *engine_model(const struct engine *e)
{
	return e->model;
}

const struct tokenizer *engine_tokenizer(const struct engine *e)
{
	return e->tok;
}

uint32_t engine_n_ctx(const struct engine *e)
{
	return e->cfg.ctx_size;
}

uint32_t engine_n_slots(const struct engine *e)
{
	return e->cfg.n_slots;
}

uint32_t engine_max_batch(const struct engine *e)
{
	return e->cfg.batch_size;
}

int engine_threads(const struct engine *e)
{
	return e->threads;
}

int engine_decode(struct engine *e, const struct forward_batch *b, float *logits,
		  struct st_err *err)
{
	return forward_run(e->fwd, b, logits, err);
}

void engine_slot_reset(struct engine *e, uint32_t slot)
{
	kv_slot_discard(e->kv, slot);
}

void engine_get_stats(const struct engine *e, struct engine_stats *out)
{
	memset(out, 0, sizeof *out);
	forward_get_stats(e->fwd, &out->fwd);
	weights_get_stats(e->w, &out->io);
	out->kv_bytes = e->kv->bytes;
}

uint32_t engine_layers_resident(const struct engine *e)
{
	uint32_t n = 0;
	for (uint32_t l = 0; l < e->model->hp.n_layer; l++) /* unit l is layer l (forward.h) */
		n += weights_is_resident(e->w, l);
	return n;
}

uint64_t engine_progress(const struct engine *e)
{
	return forward_progress(e->fwd);
}

void engine_describe(const struct engine *e, char *buf, size_t cap)
{
	const struct model *m = e->model;
	const struct model_hparams *hp = &m->hp;
	char plan[1024];
	int n;

	weights_plan_describe(e->w, plan, sizeof plan);
	n = snprintf(buf, cap,
		     "model %s: %u layers, %u embd, %u heads (%u kv, dim %u), %u ff, %u vocab, "
		     "%.1f MiB of %s weights\n"
		     "context %u x %u sequences, KV cache %s %.1f MiB, batch %u tokens, %d threads, "
		     "dot kernels %s, OpenBLAS %s\n",
		     m->name, hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff,
		     hp->n_vocab, (double)m->weight_bytes / (1 << 20), st_type_name(m->main_type),
		     e->cfg.ctx_size, e->cfg.n_slots, st_type_name(e->kv->type),
		     (double)e->kv->bytes / (1 << 20), e->cfg.batch_size, e->threads, isa_name(),
		     blas_core_name());
	if (n < 0 || (size_t)n >= cap)
		return;
	/* the weights layer counts units; say what they are to a person reading the log */
	snprintf(buf + n, cap - (size_t)n,
		 "%s\nunits 0-%u are layers 0-%u (attn_norm, attn_q/k/v/output, ffn_norm, "
		 "ffn_gate/up/down), unit %u is the head (output_norm, %s), %s; token_embd stays "
		 "in the file (one row read per token)",
		 plan, hp->n_layer - 1, hp->n_layer - 1, hp->n_layer,
		 m->tied_output ? "output tied to token_embd" : "output",
		 weights_is_resident(e->w, hp->n_layer) ? "resident" : "streamed");
}
