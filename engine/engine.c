/* engine.c: assembles model, tokenizer, weight source, KV cache, threads and
 * forward pass (see engine.h), in that order, and takes them apart in
 * reverse; answers the questions the programs above ask of them. */
#include "engine/engine.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse.h"
#include "engine/forward.h"
#include "engine/kv.h"
#include "engine/memplan.h"
#include "engine/model.h"
#include "gguf/gguf.h"
#include "kernels/blas.h"
#include "kernels/isa.h"
#include "kernels/pool.h"
#include "kernels/types.h"
#include "tokenizer/chat.h"
#include "tokenizer/detok.h"
#include "tokenizer/tokenizer.h"
#include "weights/weights.h"

struct engine {
	struct engine_config cfg;
	struct engine_info info;
	int fd;			/* the model file, opened once: gguf, weights, embeddings read it */
	struct model *model;
	struct tokenizer *tok;
	struct weights_unit *units;
	uint32_t n_units;
	struct weights *w;
	struct kv_cache *kv;
	struct pool *pool;
	bool own_pool;		   /* false for a draft model: the target's threads */
	struct forward *fwd;
	struct memplan plan;
	struct memplan_limits lim;
	struct kv_model_key kv_key; /* the model file the KV cache's blocks are computed from */
	struct engine *draft;	   /* the draft model (--draft FILE), or NULL */
	uint64_t draft_bytes;	   /* its resident weights, taken from the budget */
	uint64_t draft_bound;	   /* all it holds (weights, KV cache, scratch): the budget's */
	int threads;
	uint32_t max_logits_rows;
	bool has_chat;		   /* chat_family is usable */
	enum chat_family chat_family;
};

/* Logits rows one pass may return at most, as bytes: echo and scoring want a
 * row per token, and a 256,000-token vocabulary makes a row 1 MiB. */
#define ENGINE_LOGITS_BYTES (64u << 20)

void engine_config_default(struct engine_config *c)
{
	memset(c, 0, sizeof *c);
	c->kv_type = ST_F16;
	c->io = ENGINE_IO_URING;
	c->kv_disk_budget = ENGINE_KV_DISK_DEFAULT;
}

void engine_setup_process(char **argv)
{
	blas_setup_process(argv);
}

/* The chat template: the configured family, else the model's own,
 * recognized by its text; neither is fine (chat requests then fail). */
static int choose_chat_template(struct engine *e, struct st_err *err)
{
	const struct gguf_kv *kv = gguf_find_kv(e->model->gguf, "tokenizer.chat_template");
	if (e->cfg.chat_template[0]) {
		if (chat_family_parse(e->cfg.chat_template, &e->chat_family) < 0)
			return st_errf(err, -EINVAL, "--chat-template: '%s' is not one of %s",
				       e->cfg.chat_template, chat_family_list());
		e->has_chat = true;
		return 0;
	}
	if (kv && kv->type == GGUF_TYPE_STRING &&
	    chat_detect(kv->val.str.ptr, kv->val.str.len, &e->chat_family) == 0) {
		e->has_chat = true;
	} else if (kv) {
		log_notice("the model's chat template is not one strata renders (%s): chat requests "
			   "need --chat-template or a template named in the request", chat_family_list());
	}
	return 0;
}

static int default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* The model's facts, copied once: Status must never read the mapping. */
static void fill_info(struct engine *e)
{
	struct engine_info *in = &e->info;
	const struct model *m = e->model;
	const struct model_hparams *hp = &m->hp;
	struct gguf_str arch = { "", 0 };

	snprintf(in->path, sizeof in->path, "%s", e->cfg.model_path);
	snprintf(in->name, sizeof in->name, "%s", m->name);
	gguf_get_str(m->gguf, "general.architecture", &arch, NULL);
	snprintf(in->architecture, sizeof in->architecture, "%.*s",
		 (int)(arch.len < sizeof in->architecture ? arch.len : sizeof in->architecture - 1),
		 arch.ptr);
	in->n_vocab = hp->n_vocab;
	in->n_embd = hp->n_embd;
	in->n_layer = hp->n_layer;
	in->n_head = hp->n_head;
	in->n_head_kv = hp->n_head_kv;
	in->head_dim = hp->head_dim;
	in->n_ff = hp->n_ff;
	in->n_ctx_train = hp->n_ctx_train;
	in->n_ctx = e->cfg.ctx_size;
	in->n_slots = e->cfg.n_slots;
	in->max_batch = e->cfg.batch_size;
	in->threads = e->threads;
	in->file_bytes = gguf_file_size(m->gguf);
	in->weight_bytes = m->weight_bytes;
	in->kv_type = st_type_name(kv_type(e->kv));
	in->kv_bytes = e->plan.kv;
	in->kv_block_bytes = kv_frame_bytes(kv_type(e->kv), hp->n_layer, hp->n_head_kv * hp->head_dim);
	in->kv_block_pos = KV_BLOCK_POS;
	in->kv_pages = e->plan.kv_pages;
	in->kv_persistent = e->cfg.kv_cache_dir[0] != '\0';
	in->memory_bound = e->plan.bound;
	in->scratch_bytes = e->plan.scratch;
	in->memory_limit = e->lim.cgroup && e->lim.cgroup < e->lim.phys ? e->lim.cgroup : e->lim.phys;
	in->add_bos = tokenizer_add_bos(e->tok);
	in->chat_template = e->has_chat ? chat_family_name(e->chat_family) : NULL;
	in->draft = e->cfg.draft;
	in->draft_max = e->cfg.draft_max;
	in->draft_min = e->cfg.draft_min;
	in->draft_model = e->draft ? &e->draft->info : NULL;

	for (uint64_t i = 0; i < gguf_n_tensors(m->gguf); i++)
		in->n_params += gguf_tensor_at(m->gguf, i)->n_elems;
	struct gguf_type_total mix[ENGINE_MAX_WEIGHT_TYPES];
	in->n_types = (uint32_t)gguf_type_mix(m->gguf, mix, ENGINE_MAX_WEIGHT_TYPES);
	for (uint32_t i = 0; i < in->n_types; i++)
		in->types[i] = (struct engine_weight_type){ st_type_name(mix[i].type), mix[i].n_tensors,
							    mix[i].bytes };
	for (uint32_t l = 0; l < hp->n_layer; l++) /* unit l is layer l (forward.h) */
		in->layers_resident += weights_is_resident(e->w, l);
}

/* One bound for weights, KV cache and scratch (memplan.h), from the options,
 * the model and what this process may use. */
static int plan_memory(struct engine *e, struct st_err *err)
{
	const struct model_hparams *hp = &e->model->hp;
	const uint32_t kv_dim = hp->n_head_kv * hp->head_dim, n_ctx = e->cfg.ctx_size;
	struct memplan_in in = {
		.budget = e->cfg.memory_budget,
		.kv_budget = e->cfg.kv_budget,
		.kv_frame = kv_frame_bytes(e->cfg.kv_type, hp->n_layer, kv_dim),
		.kv_one = kv_frames_for(n_ctx),
		.kv_all = kv_frames_for(n_ctx) * e->cfg.n_slots,
		.n_ctx = n_ctx,
		.n_slots = e->cfg.n_slots,
	};
	for (uint32_t u = 0; u < e->n_units; u++)
		for (uint32_t r = 0; r < e->units[u].n_ranges; r++)
			in.weights += e->units[u].ranges[r].len;
	/* compute scratch, logits, the KV cache's bookkeeping, and the tokenizer's
	 * copy of the vocabulary (about the size of the file's metadata, twice) */
	in.scratch = forward_scratch_bytes(e->model, e->cfg.batch_size, e->threads, n_ctx,
					   (n_ctx + KV_BLOCK_POS - 1) / KV_BLOCK_POS + 2) +
		     (uint64_t)e->max_logits_rows * hp->n_vocab * sizeof(float) +
		     kv_meta_bytes(n_ctx, e->cfg.n_slots) + 2 * gguf_data_offset(e->model->gguf);
	/* a draft model's footprint counts with the scratch: the bound holds it too */
	in.scratch += e->draft_bound;
	memplan_read_limits(&in.lim);
	e->lim = in.lim;
	return memplan_make(&in, &e->plan, err);
}

static int engine_open_with(const struct engine_config *cfg, struct pool *pool,
			    struct engine **out, struct st_err *err);

/* A draft must speak the model's language token for token: the same
 * vocabulary (every token's text, in order), the same special ids, the same
 * end-of-generation set. */
static int draft_vocab_check(const struct engine *e, const struct engine *d, struct st_err *err)
{
	const struct tokenizer *a = e->tok, *b = d->tok;
	const char *dp = d->cfg.model_path, *mp = e->cfg.model_path;
	if (tokenizer_n_vocab(a) != tokenizer_n_vocab(b))
		return st_errf(err, -EINVAL, "--draft %s: its vocabulary has %d tokens, the model's (%s) "
			       "%d: a draft model must have the model's vocabulary", dp,
			       tokenizer_n_vocab(b), mp, tokenizer_n_vocab(a));
	if (strcmp(tokenizer_model_name(a), tokenizer_model_name(b)) != 0)
		return st_errf(err, -EINVAL, "--draft %s: its tokenizer is %s, the model's (%s) %s: a draft "
			       "model must have the model's vocabulary", dp, tokenizer_model_name(b), mp,
			       tokenizer_model_name(a));
	if (tokenizer_bos(a) != tokenizer_bos(b) || tokenizer_eos(a) != tokenizer_eos(b))
		return st_errf(err, -EINVAL, "--draft %s: its special tokens differ from the model's (%s): "
			       "bos %d, eos %d against bos %d, eos %d", dp, mp, tokenizer_bos(b),
			       tokenizer_eos(b), tokenizer_bos(a), tokenizer_eos(a));
	for (int32_t id = 0; id < tokenizer_n_vocab(a); id++) {
		size_t la = 0, lb = 0;
		const char *ta = tokenizer_token_text(a, id, &la), *tb = tokenizer_token_text(b, id, &lb);
		if (la != lb || (la && memcmp(ta, tb, la) != 0))
			return st_errf(err, -EINVAL, "--draft %s: token %d is '%.*s' there and '%.*s' in the "
				       "model (%s): a draft model must have the model's vocabulary", dp, id,
				       (int)(lb < 40 ? lb : 40), tb ? tb : "", (int)(la < 40 ? la : 40),
				       ta ? ta : "", mp);
		if (tokenizer_is_eog(a, id) != tokenizer_is_eog(b, id))
			return st_errf(err, -EINVAL, "--draft %s: token %d ends generation in one model and "
				       "not in the other (%s): their special tokens differ", dp, id, mp);
	}
	return 0;
}

/* The draft model: its own engine on the target's threads, all resident,
 * with a KV cache for the target's slots and context. */
static int open_draft(struct engine *e, struct st_err *err)
{
	struct engine_config dc;
	engine_config_default(&dc);
	dc.model_path = e->cfg.draft_path;
	dc.threads = e->threads;
	dc.ctx_size = e->cfg.ctx_size;
	dc.n_slots = e->cfg.n_slots;
	dc.batch_size = e->cfg.batch_size;
	dc.kv_type = e->cfg.kv_type;
	dc.io = e->cfg.io;
	dc.mlock = e->cfg.mlock;
	dc.draft = DRAFT_NONE;
	int rc = engine_open_with(&dc, e->pool, &e->draft, err);
	if (rc < 0)
		return st_err_prefix(err, rc, "the draft model");
	rc = draft_vocab_check(e, e->draft, err);
	if (rc < 0)
		return rc;
	struct weights_stats ws;
	weights_get_stats(e->draft->w, &ws);
	e->draft_bytes = ws.bytes_resident;
	/* everything it holds comes out of the one bound: weights, KV cache, scratch */
	e->draft_bound = e->draft->plan.bound;
	if (e->cfg.memory_budget && e->cfg.memory_budget <= e->draft_bound)
		return st_errf(err, -EINVAL, "memory budget %.1f MiB: the draft model %s alone holds "
			       "%.1f MiB of it (its weights, resident, its KV cache and scratch); raise "
			       "--memory-budget or choose a smaller draft",
			       (double)e->cfg.memory_budget / (1 << 20), e->cfg.draft_path,
			       (double)e->draft_bound / (1 << 20));
	return 0;
}

/* engine_open, for the target (pool NULL: its own threads) or for its draft
 * model (the target's pool). */
static int engine_open_with(const struct engine_config *cfg, struct pool *pool,
			    struct engine **out, struct st_err *err)
{
	struct engine *e;
	int rc;

	*out = NULL;
	e = calloc(1, sizeof *e);
	if (!e)
		return st_errf(err, -ENOMEM, "out of memory");
	e->cfg = *cfg;
	e->fd = -1;
	e->threads = cfg->threads > 0 ? cfg->threads : default_threads();
	e->cfg.draft_max = cfg->draft_max ? cfg->draft_max : 8;
	e->cfg.draft_min = cfg->draft_min ? cfg->draft_min : 1;
	if (e->cfg.draft == DRAFT_DEFAULT)
		e->cfg.draft = DRAFT_NONE;
	if (e->cfg.draft_min > e->cfg.draft_max) {
		rc = st_errf(err, -EINVAL, "--draft-min %u is more than --draft-max %u", e->cfg.draft_min,
			     e->cfg.draft_max);
		goto fail;
	}

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
	if (n_ctx > hp->n_ctx_train)
		log_warn("%scontext %u is longer than the model's training context (%u): output past "
			 "position %u is likely to degrade", pool ? "draft model: " : "", n_ctx,
			 hp->n_ctx_train, hp->n_ctx_train);
	e->cfg.ctx_size = n_ctx;
	e->cfg.n_slots = cfg->n_slots ? cfg->n_slots : 1;
	e->cfg.batch_size = cfg->batch_size ? cfg->batch_size : 512;
	const uint32_t kv_dim = hp->n_head_kv * hp->head_dim;
	if (attn_kv_type_ok(cfg->kv_type, hp->head_dim) < 0) {
		rc = st_errf(err, -EINVAL, "--kv-type %s needs heads of a multiple of 32 values; %s's "
			     "have %u (use f16 or f32)", st_type_name(cfg->kv_type), cfg->model_path,
			     hp->head_dim);
		goto fail;
	}

	if (pool) {
		e->pool = pool;
	} else {
		rc = pool_create(e->threads, &e->pool);
		if (rc < 0) {
			st_errf(err, rc, "cannot start %d compute threads", e->threads);
			goto fail;
		}
		e->own_pool = true;
	}
	if (e->cfg.draft == DRAFT_MODEL) {
		rc = open_draft(e, err);
		if (rc < 0)
			goto fail;
	}

	rc = forward_units(e->model, &e->units, &e->n_units);
	if (rc < 0) {
		st_errf(err, rc, "out of memory");
		goto fail;
	}
	uint64_t rows = ENGINE_LOGITS_BYTES / ((uint64_t)hp->n_vocab * sizeof(float));
	if (rows > e->cfg.batch_size)
		rows = e->cfg.batch_size;
	if (rows < e->cfg.n_slots)
		rows = e->cfg.n_slots; /* every sequence's next token, always */
	e->max_logits_rows = rows > 0 ? (uint32_t)rows : 1;

	rc = plan_memory(e, err);
	if (rc < 0)
		goto fail;
	struct weights_config wc = {
		.fd = e->fd,
		.path = cfg->model_path,
		.header_bytes = gguf_data_offset(e->model->gguf), /* changed: a different model */
		.budget = e->plan.weights, /* 0: everything resident */
		.io = cfg->io == ENGINE_IO_MMAP ? WEIGHTS_IO_MMAP : WEIGHTS_IO_URING,
		.prefetch = cfg->prefetch,
		.mlock = cfg->mlock,
		.progress = cfg->load_progress,
		.progress_user = cfg->load_progress_user,
	};
	rc = weights_open(&wc, e->units, e->n_units, &e->w, err);
	if (rc == -ENOSPC && e->plan.kv_auto &&
	    e->plan.kv > kv_frames_for(n_ctx) * kv_frame_bytes(cfg->kv_type, hp->n_layer, kv_dim)) {
		/* the KV cache's share left the weights too little: give them all it can spare */
		uint64_t one = kv_frames_for(n_ctx) * kv_frame_bytes(cfg->kv_type, hp->n_layer, kv_dim);
		char a[32], b[32];
		log_notice("memory: the weights need more than the %s left beside the KV cache's %s: "
			   "the KV cache keeps %s (one sequence of %u positions)",
			   format_size(e->plan.weights, a, sizeof a), format_size(e->plan.kv, b, sizeof b),
			   format_size(one, b, sizeof b), n_ctx);
		wc.budget = e->plan.weights += e->plan.kv - one;
		e->plan.kv = one;
		e->plan.kv_pages = e->plan.kv < (uint64_t)e->cfg.n_slots * one;
		*err = (struct st_err){ "" };
		rc = weights_open(&wc, e->units, e->n_units, &e->w, err);
	}
	if (rc == -ENOSPC) {
		char a[32], b[32], c[32], d[32];
		st_err_prefix(err, rc, "--memory-budget %s = %s for weights + %s for the KV cache + %s "
			      "of scratch", format_size(e->plan.bound, a, sizeof a),
			      format_size(e->plan.weights, b, sizeof b), format_size(e->plan.kv, c, sizeof c),
			      format_size(e->plan.scratch, d, sizeof d));
	}
	if (rc < 0) {
		if (e->draft)
			st_err_prefix(err, rc, "with %.1f MiB of the budget held by the draft model",
				      (double)e->draft_bound / (1 << 20));
		goto fail;
	}
	if (e->plan.weights) {
		/* the plan holds whole units: what it leaves of its share goes to the KV
		 * cache when that is ours to size (up to every sequence at full length) */
		struct weights_stats ws;
		weights_get_stats(e->w, &ws);
		uint64_t held = ws.bytes_resident + (ws.n_streamed ? (uint64_t)ws.n_slots * ws.slot_bytes : 0);
		uint64_t frame = kv_frame_bytes(cfg->kv_type, hp->n_layer, kv_dim);
		uint64_t all = kv_frames_for(n_ctx) * e->cfg.n_slots * frame;
		if (e->plan.kv_auto && held < e->plan.weights && e->plan.kv < all) {
			uint64_t more = (e->plan.weights - held) / frame * frame;
			if (e->plan.kv + more > all)
				more = all - e->plan.kv;
			e->plan.kv += more;
			e->plan.weights -= more;
			e->plan.kv_pages = e->plan.kv < all;
		}
	}

	struct kv_config kc = {
		.type = cfg->kv_type, .n_layer = hp->n_layer, .n_head_kv = hp->n_head_kv,
		.head_dim = hp->head_dim, .n_ctx = n_ctx, .n_slots = e->cfg.n_slots,
		.mem_bytes = e->plan.kv, .dir = cfg->kv_cache_dir[0] ? cfg->kv_cache_dir : NULL,
		.disk_bytes = cfg->kv_disk_budget,
	};
	rc = kv_model_key_of(e->fd, cfg->model_path, gguf_base(e->model->gguf),
			     gguf_data_offset(e->model->gguf), &kc.key, err);
	if (rc < 0)
		goto fail;
	e->kv_key = kc.key;
	rc = kv_open(&kc, &e->kv, err);
	if (rc < 0)
		goto fail;

	rc = forward_create(e->model, e->w, e->kv, e->pool, e->cfg.batch_size, &e->fwd, err);
	if (rc < 0)
		goto fail;

	rc = pool ? 0 : choose_chat_template(e, err); /* a draft model renders no chat */
	if (rc < 0)
		goto fail;
	fill_info(e);
	/* Loading read the metadata (the tokenizer's arrays: megabytes for a
	 * 256,000-token vocabulary) through the file's mapping. Those pages are
	 * copied out now; hand them back so they do not count against the
	 * budget. The mapping stays valid: a later touch faults one page in. */
	madvise((void *)gguf_base(e->model->gguf), gguf_file_size(e->model->gguf), MADV_DONTNEED);

	if (!pool && log_enabled(LOG_LVL_INFO)) {
		char plan[3072];
		engine_describe(e, plan, sizeof plan);
		log_info("%s", plan);
	}
	*out = e;
	return 0;
fail:
	engine_close(e);
	return rc;
}

int engine_open(const struct engine_config *cfg, struct engine **out, struct st_err *err)
{
	return engine_open_with(cfg, NULL, out, err);
}

void engine_close(struct engine *e)
{
	if (!e)
		return;
	forward_free(e->fwd);
	engine_close(e->draft); /* before the pool it borrows */
	if (e->own_pool)
		pool_free(e->pool);
	kv_close(e->kv);
	weights_close(e->w);
	forward_units_free(e->units, e->n_units);
	tokenizer_free(e->tok);
	model_close(e->model);
	if (e->fd >= 0)
		close(e->fd);
	free(e);
}

const struct engine_info *engine_info(const struct engine *e)
{
	return &e->info;
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

uint32_t engine_n_vocab(const struct engine *e)
{
	return e->model->hp.n_vocab;
}

int engine_threads(const struct engine *e)
{
	return e->threads;
}

/* ---- the tokenizer's services ---- */

int engine_tokenize(const struct engine *e, const char *text, size_t n, int add_bos,
		    bool parse_special, int32_t **ids, uint32_t *n_ids)
{
	bool bos = add_bos < 0 ? tokenizer_add_bos(e->tok) : add_bos > 0;
	size_t cap = n + 4;
	int32_t *v = malloc(cap * sizeof *v);
	*ids = NULL;
	*n_ids = 0;
	if (!v)
		return -ENOMEM;
	int k = tokenizer_encode(e->tok, text, n, bos, parse_special, v, cap);
	if (k > (int)cap) { /* more tokens than bytes: only with many specials and BOS */
		int32_t *p = realloc(v, (size_t)k * sizeof *v);
		if (!p) {
			free(v);
			return -ENOMEM;
		}
		v = p;
		k = tokenizer_encode(e->tok, text, n, bos, parse_special, v, (size_t)k);
	}
	if (k < 0) {
		free(v);
		return k;
	}
	*ids = v;
	*n_ids = (uint32_t)k;
	return 0;
}

int engine_detokenize(const struct engine *e, const int32_t *ids, uint32_t n, bool special,
		      char **text, size_t *len, uint32_t *bad_index)
{
	int32_t n_vocab = tokenizer_n_vocab(e->tok);
	*text = NULL;
	*len = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (ids[i] < 0 || ids[i] >= n_vocab) {
			*bad_index = i;
			return -EINVAL;
		}
	}
	size_t step = detok_out_max(e->tok);
	size_t cap = ((size_t)n + 1) * step + 1;
	char *out = malloc(cap);
	if (!out)
		return -ENOMEM;
	struct detok dt;
	size_t o = 0;
	detok_init(&dt, e->tok, special);
	for (uint32_t i = 0; i < n; i++) {
		int k = detok_push(&dt, ids[i], out + o, cap - o);
		if (k > 0)
			o += (size_t)k;
	}
	int k = detok_flush(&dt, out + o, cap - o);
	if (k > 0)
		o += (size_t)k;
	out[o] = '\0';
	*text = out;
	*len = o;
	return 0;
}

int engine_token_bytes(const struct engine *e, int32_t id, char *buf, size_t cap)
{
	return tokenizer_piece(e->tok, id, true, buf, cap);
}

size_t engine_token_bytes_max(const struct engine *e)
{
	return tokenizer_max_piece(e->tok);
}

/* The text of token id (for the template's bos and eos), or "". */
static const char *token_text(const struct engine *e, int32_t id, char *buf, size_t cap)
{
	size_t len = 0;
	const char *t = id >= 0 ? tokenizer_token_text(e->tok, id, &len) : NULL;
	snprintf(buf, cap, "%.*s", t ? (int)len : 0, t ? t : "");
	return buf;
}

int engine_chat(const struct engine *e, const struct engine_chat_msg *msgs, uint32_t n,
		const char *family, int32_t **ids, uint32_t *n_ids, int32_t *end_of_turn,
		struct st_err *err)
{
	enum chat_family f = e->chat_family;
	char bos[64], eos[64], *text = NULL;
	size_t len = 0;
	*ids = NULL;
	*n_ids = 0;
	*end_of_turn = -1;
	if (family && *family) {
		if (chat_family_parse(family, &f) < 0)
			return st_errf(err, -EINVAL, "chat template '%s' is not one of %s", family,
				       chat_family_list());
	} else if (!e->has_chat) {
		return st_errf(err, -EINVAL, "this model's chat template is not one strata renders: "
			       "name one (%s)", chat_family_list());
	}
	struct chat_msg *m = calloc(n ? n : 1, sizeof *m);
	if (!m)
		return st_errf(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++)
		m[i] = (struct chat_msg){ msgs[i].role, msgs[i].content };
	int rc = chat_render(f, m, n, token_text(e, tokenizer_bos(e->tok), bos, sizeof bos),
			     token_text(e, tokenizer_eos(e->tok), eos, sizeof eos), true, &text, &len, err);
	free(m);
	if (rc < 0)
		return rc;
	rc = engine_tokenize(e, text, len, 0, true, ids, n_ids);
	free(text);
	if (rc < 0)
		return st_errf(err, rc, "out of memory");
	const char *eot = chat_end_of_turn(f);
	if (eot) {
		int32_t id = tokenizer_lookup(e->tok, eot, strlen(eot));
		*end_of_turn = id;
	}
	return 0;
}

uint32_t engine_max_logits_rows(const struct engine *e)
{
	return e->max_logits_rows;
}

int engine_slot_link(struct engine *e, uint32_t dst, uint32_t src, uint32_t n)
{
	return kv_slot_link(e->kv, dst, src, n);
}

void engine_slot_truncate(struct engine *e, uint32_t slot, uint32_t n)
{
	kv_slot_truncate(e->kv, slot, n);
}

/* The model file written again in place (the weight source then serves its new
 * bytes: weights_revalidate): KV computed from the old bytes must not be reused.
 * One fstat; called before a pass and before a prefix is looked up. */
static void kv_follow_model(struct engine *e)
{
	struct stat st;
	if (fstat(e->fd, &st) != 0)
		return;
	int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if ((uint64_t)st.st_size == e->kv_key.size && mtime == e->kv_key.mtime_ns)
		return;
	log_notice("%s changed on disk: the KV cache's blocks computed from it before are not "
		   "reused", e->cfg.model_path);
	e->kv_key.size = (uint64_t)st.st_size;
	e->kv_key.mtime_ns = mtime;
	kv_rekey(e->kv, &e->kv_key);
}

uint32_t engine_slot_reuse(struct engine *e, uint32_t slot, const int32_t *ids, uint32_t n,
			   uint32_t max)
{
	kv_follow_model(e);
	return kv_slot_reuse(e->kv, slot, ids, n, max);
}

int engine_slot_fill(struct engine *e, uint32_t slot, const int32_t *ids, uint32_t n,
		     uint64_t seed, struct st_err *err)
{
	return kv_slot_fill(e->kv, slot, ids, n, seed, err);
}

void engine_plan_begin(struct engine *e)
{
	kv_plan_begin(e->kv);
}

uint32_t engine_plan_rows(struct engine *e, uint32_t slot, uint32_t pos, uint32_t n)
{
	return kv_plan_rows(e->kv, slot, pos, n);
}

uint32_t engine_kv_blocks(const struct engine *e)
{
	return kv_n_frames(e->kv);
}

uint32_t engine_kv_block_pos(void)
{
	return KV_BLOCK_POS;
}

void engine_kv_flush(struct engine *e)
{
	kv_flush(e->kv);
}

/* ---- passes ---- */

int engine_decode(struct engine *e, const struct batch *b, float *logits, struct st_err *err)
{
	kv_follow_model(e);
	return forward_run(e->fwd, b, logits, err);
}

void engine_slot_reset(struct engine *e, uint32_t slot)
{
	kv_slot_reset(e->kv, slot);
}

struct engine *engine_draft_model(struct engine *e)
{
	return e->draft;
}

void engine_get_stats(const struct engine *e, struct engine_stats *out)
{
	struct forward_stats fs;
	struct weights_stats ws;
	forward_get_stats(e->fwd, &fs);
	weights_get_stats(e->w, &ws);
	memset(out, 0, sizeof *out);
	out->passes = fs.passes;
	out->tokens = fs.tokens;
	out->pass_ns = fs.run_ns;
	out->io = ws.io == WEIGHTS_IO_MMAP ? ENGINE_IO_MMAP : ENGINE_IO_URING;
	out->units_streamed = ws.n_streamed;
	out->bytes_resident = ws.bytes_resident;
	out->stream_buffer_bytes = ws.n_streamed ? (uint64_t)ws.n_slots * ws.slot_bytes : 0;
	out->bytes_streamed_per_pass = ws.bytes_streamed_per_pass;
	out->bytes_read = ws.bytes_read > ws.bytes_resident ? ws.bytes_read - ws.bytes_resident : 0;
	out->stall_ns = ws.stall_ns;
	struct kv_stats ks;
	kv_get_stats(e->kv, &ks);
	out->kv_bytes = e->plan.kv;
	out->kv_used_bytes = (uint64_t)ks.frames_used * ks.frame_bytes;
	out->kv_held_bytes = (uint64_t)ks.frames_held * ks.frame_bytes;
	out->kv_disk_bytes = ks.disk_bytes;
	out->kv_swap_bytes = ks.swap_bytes;
	out->kv_cached_blocks = ks.blocks_cached;
	out->kv_reused_tokens = ks.reused_pos;
	out->kv_bytes_read = ks.bytes_read;
	out->kv_bytes_written = ks.bytes_written;
	out->kv_io_ns = ks.io_ns;
	if (e->draft) {
		struct engine_stats ds;
		engine_get_stats(e->draft, &ds);
		out->draft_bytes = ds.bytes_resident;
		out->draft_kv_bytes = ds.kv_bytes;
		out->draft_passes = ds.passes;
		out->draft_pass_ns = ds.pass_ns;
		out->bytes_resident += ds.bytes_resident;
		out->kv_bytes += ds.kv_bytes;
	}
}

void engine_pass_io(const struct engine *e, struct engine_pass_io *out)
{
	struct weights_stats ws;
	weights_get_stats(e->w, &ws);
	out->bytes_read = ws.bytes_read;
	out->stall_ns = ws.stall_ns;
}

void engine_weights_stats(const struct engine *e, struct weights_stats *out)
{
	weights_get_stats(e->w, out);
}

uint64_t engine_progress(const struct engine *e)
{
	/* the draft model's layers count too: a long draft is progress, not a hang */
	return forward_progress(e->fwd) + (e->draft ? forward_progress(e->draft->fwd) : 0);
}

void engine_describe(const struct engine *e, char *buf, size_t cap)
{
	const struct model *m = e->model;
	const struct model_hparams *hp = &m->hp;
	const struct engine_info *in = &e->info;
	char plan[1024], a[32], b[32], c[32], d[32], f[32], g[32], h[32];
	int n;

	weights_plan_describe(e->w, plan, sizeof plan);
	/* the type mix, largest total first: "q4_K 193 tensors, q6_K 49, f32 97" */
	char mix[256];
	size_t o = 0;
	mix[0] = '\0';
	for (uint32_t i = 0; i < e->info.n_types && o < sizeof mix; i++)
		o += (size_t)snprintf(mix + o, sizeof mix - o, "%s%s %u%s", i ? ", " : "", e->info.types[i].name,
				      e->info.types[i].n_tensors, i ? "" : " tensors");
	struct weights_stats ws;
	weights_get_stats(e->w, &ws);
	uint64_t held = ws.bytes_resident + (ws.n_streamed ? (uint64_t)ws.n_slots * ws.slot_bytes : 0);
	uint64_t per_pos = kv_bytes_per_pos(kv_type(e->kv), hp->n_layer, hp->n_head_kv * hp->head_dim);
	uint64_t in_mem = e->plan.kv / in->kv_block_bytes * KV_BLOCK_POS;
	n = snprintf(buf, cap,
		     "model %s: %u layers, %u embd, %u heads (%u kv, dim %u), %u ff, %u vocab, "
		     "%.1f MiB of weights (%s)\n"
		     "context %u x %u sequences, batch %u tokens, %d threads, kernels %s, OpenBLAS %s\n"
		     "memory: %s %s: weights %s + KV cache %s + scratch %s [bytes: bound %" PRIu64
		     ", weights %" PRIu64 ", KV %" PRIu64 ", scratch %" PRIu64 "]; this process may "
		     "use %s\n"
		     "KV cache: %s, %s a position, blocks of %u positions (%s): %" PRIu64 " positions "
		     "in memory for %u x %u; %s%s%s\n",
		     m->name, hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff,
		     hp->n_vocab, (double)m->weight_bytes / (1 << 20), mix,
		     e->cfg.ctx_size, e->cfg.n_slots, e->cfg.batch_size, e->threads, isa_name(),
		     blas_core_name(),
		     e->cfg.memory_budget ? "--memory-budget" : "no --memory-budget, everything in memory:",
		     format_size(e->plan.bound, a, sizeof a), format_size(held, b, sizeof b),
		     format_size(e->plan.kv, c, sizeof c), format_size(e->plan.scratch, d, sizeof d),
		     e->plan.bound, held, e->plan.kv, e->plan.scratch, in->memory_limit ? format_size(in->memory_limit, f, sizeof f) : "(unknown)",
		     in->kv_type, format_size(per_pos, g, sizeof g), KV_BLOCK_POS,
		     format_size(in->kv_block_bytes, h, sizeof h), in_mem, e->cfg.n_slots, e->cfg.ctx_size,
		     e->plan.kv_pages ? "under load blocks page to " : "every sequence fits in memory; ",
		     e->plan.kv_pages ? (e->cfg.kv_cache_dir[0] ? e->cfg.kv_cache_dir : "a temporary file")
				      : "prefixes are reused from memory",
		     e->cfg.kv_cache_dir[0] ? ", where prefixes outlive the process" : "");
	if (n < 0 || (size_t)n >= cap)
		return;
	/* the weights layer counts units; say what they are to a person reading the log */
	int k = snprintf(buf + n, cap - (size_t)n,
		 "%s\nunits 0-%u are layers 0-%u (attn_norm, attn_q/k/v/output, ffn_norm, "
		 "ffn_gate/up/down), unit %u is the head (output_norm, %s), %s; token_embd stays "
		 "in the file (one row read per token)",
		 plan, hp->n_layer - 1, hp->n_layer - 1, hp->n_layer,
		 m->tied_output ? "output tied to token_embd" : "output",
		 weights_is_resident(e->w, hp->n_layer) ? "resident" : "streamed");
	if (k < 0 || (size_t)k >= cap - (size_t)n)
		return;
	n += k;
	if (e->cfg.draft == DRAFT_LOOKUP) {
		snprintf(buf + n, cap - (size_t)n, "\ndrafts: prompt lookup (%u-gram to %u-gram matches "
			 "in the context), %u to %u tokens verified per pass; no memory",
			 DRAFT_LOOKUP_NGRAM_MAX, DRAFT_LOOKUP_NGRAM_MIN, e->cfg.draft_min,
			 e->cfg.draft_max);
	} else if (e->draft) {
		const struct model_hparams *dh = &e->draft->model->hp;
		snprintf(buf + n, cap - (size_t)n, "\ndrafts: draft model %s (%s): %u layers, %u embd, "
			 "%.1f MiB of %s weights held resident, KV cache %.1f MiB, %.1f MiB in all, "
			 "counted in the memory line's scratch; %u to %u tokens verified per pass",
			 e->draft->model->name, e->cfg.draft_path, dh->n_layer, dh->n_embd,
			 (double)e->draft_bytes / (1 << 20), st_type_name(e->draft->model->main_type),
			 (double)e->draft->plan.kv / (1 << 20), (double)e->draft_bound / (1 << 20),
			 e->cfg.draft_min, e->cfg.draft_max);
	}
}
