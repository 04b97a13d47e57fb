/* forward.c: the layer loop (see forward.h). Shapes follow llama.cpp's
 * llama graph: x += Wo·attn(rope(Wq·n1(x)), rope(Wk·n1(x)), Wv·n1(x));
 * x += Wd·(silu(Wg·n2(x)) * Wu·n2(x)); logits = Wout·n(x). */
#include "config.h"

#include "engine/forward.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "gguf/gguf.h"
#include "engine/kv.h"
#include "engine/model.h"
#include "weights/weights.h"
#include "kernels/attn.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/pool.h"
#include "kernels/quant.h"
#include "kernels/types.h"

struct forward {
	const struct model *m;
	struct weights *w;
	struct kv_cache *kv;
	struct pool *pool;
	struct matmul_ctx *mm;
	uint32_t max_batch;
	uint32_t q_dim, kv_dim;

	/* scratch, sized for max_batch tokens */
	float *x;	   /* (max_batch, n_embd) residual stream */
	float *xn;	   /* (max_batch, n_embd) normed input of a block */
	float *q;	   /* (max_batch, q_dim) */
	float *k;	   /* (max_batch, kv_dim) */
	float *v;	   /* (max_batch, kv_dim) */
	float *att;	   /* (max_batch, q_dim) attention output */
	float *gate;	   /* (max_batch, n_ff) */
	float *up;	   /* (max_batch, n_ff) */
	float *scores;	   /* (n_threads, n_ctx) attention scratch per thread */
	struct attn_seg *segs; /* (n_threads, kv_max_segments) a sequence's blocks, per thread */
	float *rope_freqs; /* (head_dim/2) or NULL */
	int embd_fd;	   /* the model file, for reading embedding rows */
	uint8_t *embd_row; /* (row bytes of token_embd) one quantized row */

	struct forward_stats stats;
	_Atomic uint64_t progress; /* layers completed, ever */
};

static void *alloc_floats(size_t n)
{
	/* 64-byte aligned for the SIMD kernels */
	void *p = NULL;
	if (posix_memalign(&p, 64, n * sizeof(float) + 64) != 0)
		return NULL;
	return p;
}

int forward_create(const struct model *m, struct weights *w, struct kv_cache *kv,
		   struct pool *pool, uint32_t max_batch, struct forward **out, struct st_err *err)
{
	const struct model_hparams *hp = &m->hp;
	struct forward *f;
	int rc;

	*out = NULL;
	if (max_batch == 0)
		return st_errf(err, -EINVAL, "batch size must be positive");
	f = calloc(1, sizeof *f);
	if (!f)
		return st_errf(err, -ENOMEM, "out of memory");
	f->embd_fd = -1;
	f->m = m;
	f->w = w;
	f->kv = kv;
	f->pool = pool;
	f->max_batch = max_batch;
	f->q_dim = hp->n_head * hp->head_dim;
	f->kv_dim = hp->n_head_kv * hp->head_dim;

	rc = matmul_ctx_create(pool, &f->mm);
	if (rc < 0) {
		st_errf(err, rc, "cannot create the matmul context");
		goto fail;
	}
	size_t B = max_batch;
	f->x = alloc_floats(B * hp->n_embd);
	f->xn = alloc_floats(B * hp->n_embd);
	f->q = alloc_floats(B * f->q_dim);
	f->k = alloc_floats(B * f->kv_dim);
	f->v = alloc_floats(B * f->kv_dim);
	f->att = alloc_floats(B * f->q_dim);
	f->gate = alloc_floats(B * hp->n_ff);
	f->up = alloc_floats(B * hp->n_ff);
	f->scores = alloc_floats((size_t)pool_threads(pool) * kv_n_ctx(kv));
	f->segs = malloc((size_t)pool_threads(pool) * kv_max_segments(kv) * sizeof *f->segs);
	if (!f->x || !f->xn || !f->q || !f->k || !f->v || !f->att || !f->gate || !f->up ||
	    !f->scores || !f->segs) {
		rc = st_errf(err, -ENOMEM, "out of memory for a batch of %u tokens", max_batch);
		goto fail;
	}
	/* Embedding rows are read with pread, not through the mapping, for two
	 * reasons: the page cache keeps them warm, but they never add to our
	 * resident set (a 256,000-row table touched a row at a time would, in a
	 * mapping, and the budget would not hold); and a file truncated or
	 * unreadable under us is a short read or EIO that fails one request,
	 * where a touch of the mapping would be SIGBUS in the uring mode, which
	 * has no handler for the model's mapping. */
	f->embd_fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 0); /* the engine's descriptor: the same file */
	f->embd_row = malloc(st_row_bytes(m->token_embd.type, hp->n_embd));
	if (f->embd_fd < 0 || !f->embd_row) {
		rc = f->embd_fd < 0 ? st_errf(err, -errno, "%s: %s", m->path, strerror(errno))
				    : st_errf(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (m->has_rope_freqs) {
		/* tiny (head_dim/2 floats): copy it out of the mapping once */
		f->rope_freqs = alloc_floats(hp->head_dim / 2);
		if (!f->rope_freqs) {
			rc = st_errf(err, -ENOMEM, "out of memory");
			goto fail;
		}
		memcpy(f->rope_freqs, (const uint8_t *)gguf_base(m->gguf) + m->rope_freqs.offset,
		       hp->head_dim / 2 * sizeof(float));
	}
	*out = f;
	return 0;
fail:
	forward_free(f);
	return rc;
}

void forward_free(struct forward *f)
{
	if (!f)
		return;
	matmul_ctx_free(f->mm);
	free(f->x);
	free(f->xn);
	free(f->q);
	free(f->k);
	free(f->v);
	free(f->att);
	free(f->gate);
	free(f->up);
	free(f->scores);
	free(f->segs);
	free(f->rope_freqs);
	free(f->embd_row);
	if (f->embd_fd >= 0)
		close(f->embd_fd);
	free(f);
}

/* The matmul's dequantized f32 panel per thread (kernels/matmul.c), and
 * what OpenBLAS's sgemm touches of its packing buffer per calling thread. */
#define FORWARD_PANEL_BYTES (4u << 20)
#define FORWARD_BLAS_THREAD_BYTES (8u << 20)

uint64_t forward_scratch_bytes(const struct model *m, uint32_t max_batch, int threads,
			       uint32_t n_ctx, uint32_t max_segs)
{
	const struct model_hparams *hp = &m->hp;
	uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim, kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
	uint64_t per_tok = 2 * hp->n_embd + 2 * q_dim + 2 * kv_dim + 2 * (uint64_t)hp->n_ff;
	uint64_t act = (uint64_t)max_batch * per_tok * sizeof(float);
	uint64_t attn = (uint64_t)threads * ((uint64_t)n_ctx * sizeof(float) +
					     (uint64_t)max_segs * sizeof(struct attn_seg));
	uint64_t wide = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
	if (q_dim > wide)
		wide = q_dim;
	/* the GEMV path's prepared activations: below 64 rows, of the widest input */
	uint64_t prep = 64 * wide * 2;
	/* the GEMM path: a panel of the largest matrix, and sgemm's packed copies
	 * of a panel and of the rows */
	uint64_t big = wide * hp->n_embd;
	if ((uint64_t)hp->n_vocab * hp->n_embd > big)
		big = (uint64_t)hp->n_vocab * hp->n_embd;
	uint64_t panel = big * sizeof(float) < FORWARD_PANEL_BYTES ? big * sizeof(float) : FORWARD_PANEL_BYTES;
	uint64_t blas = panel + (uint64_t)max_batch * wide * sizeof(float);
	if (blas > FORWARD_BLAS_THREAD_BYTES)
		blas = FORWARD_BLAS_THREAD_BYTES;
	return act + attn + prep + (uint64_t)threads * (panel + blas) +
	       st_row_bytes(m->token_embd.type, hp->n_embd);
}

void forward_get_stats(const struct forward *f, struct forward_stats *out)
{
	*out = f->stats;
}

uint64_t forward_progress(const struct forward *f)
{
	return atomic_load_explicit(&f->progress, memory_order_relaxed);
}

/* ---- per-token work split across the pool ---- */

struct tok_job {
	struct forward *f;
	const struct batch *b;
	uint32_t layer;
	const float *norm_w; /* (n_embd) */
};

/* xn = rmsnorm(x) * norm_w for every token */
static void job_norm(void *arg, int ith, int nth)
{
	struct tok_job *j = arg;
	uint32_t n_embd = j->f->m->hp.n_embd;
	long b0, b1;
	pool_split(j->b->n, 1, ith, nth, &b0, &b1);
	for (long i = b0; i < b1; i++)
		ops_rmsnorm(j->f->xn + (size_t)i * n_embd, j->f->x + (size_t)i * n_embd, j->norm_w, n_embd,
			    j->f->m->hp.rms_eps);
}

/* rope q and k in place, then store k and v in the cache */
static void job_rope_store(void *arg, int ith, int nth)
{
	struct tok_job *j = arg;
	struct forward *f = j->f;
	const struct model_hparams *hp = &f->m->hp;
	long b0, b1;
	pool_split(j->b->n, 1, ith, nth, &b0, &b1);
	for (long i = b0; i < b1; i++) {
		float *q = f->q + (size_t)i * f->q_dim;
		float *k = f->k + (size_t)i * f->kv_dim;
		const float *v = f->v + (size_t)i * f->kv_dim;
		uint32_t pos = j->b->pos[i], slot = j->b->slot[i];
		ops_rope(q, hp->n_head, hp->head_dim, pos, hp->rope_base, hp->rope_scale, f->rope_freqs);
		ops_rope(k, hp->n_head_kv, hp->head_dim, pos, hp->rope_base, hp->rope_scale,
			 f->rope_freqs);
		/* f32 copied, f16 rounded, q8_0/q4_0 quantized as ggml does */
		quant_quantize_row(kv_type(f->kv), k, kv_row(f->kv, slot, j->layer, pos, false),
				   f->kv_dim);
		quant_quantize_row(kv_type(f->kv), v, kv_row(f->kv, slot, j->layer, pos, true),
				   f->kv_dim);
	}
}

/* attention for every (token, head) pair, split evenly over threads */
static void job_attention(void *arg, int ith, int nth)
{
	struct tok_job *j = arg;
	struct forward *f = j->f;
	const struct model_hparams *hp = &f->m->hp;
	long p0, p1;
	pool_split((long)j->b->n * hp->n_head, 1, ith, nth, &p0, &p1);
	for (long p = p0; p < p1;) {
		long i = p / hp->n_head;
		long h0 = p % hp->n_head;
		long h1 = hp->n_head;
		if ((i + 1) * (long)hp->n_head > p1)
			h1 = p1 - i * (long)hp->n_head;
		uint32_t pos = j->b->pos[i], slot = j->b->slot[i];
		struct attn_seg *segs = f->segs + (size_t)ith * kv_max_segments(f->kv);
		struct attn_args a = {
			.q = f->q + (size_t)i * f->q_dim,
			.segs = segs,
			.n_segs = kv_segments(f->kv, slot, j->layer, pos + 1, segs),
			.kv_type = kv_type(f->kv),
			.kv_row_bytes = kv_row_bytes(f->kv),
			.n_kv = (int64_t)pos + 1,
			.n_head = hp->n_head,
			.n_head_kv = hp->n_head_kv,
			.head_dim = hp->head_dim,
			.scale = 1.0f / sqrtf((float)hp->head_dim),
			.scores = f->scores + (size_t)ith * kv_n_ctx(f->kv),
			.out = f->att + (size_t)i * f->q_dim,
		};
		attn_heads(&a, h0, h1);
		p += h1 - h0;
	}
}

/* gate = silu(gate) * up */
static void job_swiglu(void *arg, int ith, int nth)
{
	struct tok_job *j = arg;
	size_t n_ff = j->f->m->hp.n_ff;
	long b0, b1;
	pool_split(j->b->n, 1, ith, nth, &b0, &b1);
	for (long i = b0; i < b1; i++)
		ops_swiglu(j->f->gate + i * n_ff, j->f->gate + i * n_ff, j->f->up + i * n_ff, n_ff);
}

static struct matmul_w mw(struct forward *f, uint32_t unit, const struct model_tensor *t)
{
	struct matmul_w w = {
		.type = t->type,
		.n_in = (int64_t)t->n_cols,
		.n_out = (int64_t)t->n_rows,
		.data = weights_ptr(f->w, unit, t->offset),
	};
	return w;
}

static int mm(struct forward *f, float *out, const float *x, uint32_t n, uint32_t unit,
	      const struct model_tensor *t, struct st_err *err)
{
	struct matmul_w w = mw(f, unit, t);
	int rc = matmul(f->mm, out, x, n, &w);
	if (rc < 0)
		return st_errf(err, rc, "matmul of '%s' failed (%s)", t->name,
			       rc == -ENOMEM ? "out of memory" : "unsupported type");
	return 0;
}

static int embed(struct forward *f, const struct batch *b, struct st_err *err)
{
	const struct model *m = f->m;
	size_t row_bytes = st_row_bytes(m->token_embd.type, m->hp.n_embd);
	for (uint32_t i = 0; i < b->n; i++) {
		int32_t id = b->token[i];
		if (id < 0 || (uint32_t)id >= m->hp.n_vocab)
			return st_errf(err, -EINVAL, "token id %d is outside the vocabulary (%u)", id,
				       m->hp.n_vocab);
		off_t off = (off_t)(m->token_embd.offset + (uint64_t)id * row_bytes);
		size_t got = 0;
		while (got < row_bytes) {
			ssize_t n = pread(f->embd_fd, f->embd_row + got, row_bytes - got, off + (off_t)got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return st_errf(err, n < 0 ? -errno : -EIO,
					       "%s: cannot read the embedding of token %d at offset %lld: %s",
					       m->path, id, (long long)off,
					       n < 0 ? strerror(errno) : "the file ends early (truncated?)");
			got += (size_t)n;
		}
		int rc = quant_dequantize_row(m->token_embd.type, f->embd_row,
					      f->x + (size_t)i * m->hp.n_embd, m->hp.n_embd);
		if (rc < 0)
			return st_errf(err, rc, "cannot convert the embedding of token %d", id);
	}
	return 0;
}

static int run_layer(struct forward *f, const struct batch *b, uint32_t l,
		     struct st_err *err)
{
	const struct model_hparams *hp = &f->m->hp;
	const struct model_layer *ly = &f->m->layers[l];
	struct tok_job job = { .f = f, .b = b, .layer = l };
	uint32_t n = b->n;
	int rc;

	/* attention block */
	job.norm_w = weights_ptr(f->w, l, ly->attn_norm.offset);
	pool_run(f->pool, job_norm, &job);
	if ((rc = mm(f, f->q, f->xn, n, l, &ly->wq, err)) < 0 ||
	    (rc = mm(f, f->k, f->xn, n, l, &ly->wk, err)) < 0 ||
	    (rc = mm(f, f->v, f->xn, n, l, &ly->wv, err)) < 0)
		return rc;
	pool_run(f->pool, job_rope_store, &job);
	pool_run(f->pool, job_attention, &job);
	if ((rc = mm(f, f->xn, f->att, n, l, &ly->wo, err)) < 0)
		return rc;
	ops_add(f->x, f->xn, (int64_t)n * hp->n_embd);

	/* feed-forward block */
	job.norm_w = weights_ptr(f->w, l, ly->ffn_norm.offset);
	pool_run(f->pool, job_norm, &job);
	if ((rc = mm(f, f->gate, f->xn, n, l, &ly->w_gate, err)) < 0 ||
	    (rc = mm(f, f->up, f->xn, n, l, &ly->w_up, err)) < 0)
		return rc;
	pool_run(f->pool, job_swiglu, &job);
	if ((rc = mm(f, f->xn, f->gate, n, l, &ly->w_down, err)) < 0)
		return rc;
	ops_add(f->x, f->xn, (int64_t)n * hp->n_embd);
	return 0;
}

static int run_output(struct forward *f, const struct batch *b, float *logits,
		      struct st_err *err)
{
	const struct model *m = f->m;
	uint32_t unit = m->hp.n_layer, n_embd = m->hp.n_embd, n_want = 0;
	const float *norm_w = weights_ptr(f->w, unit, m->output_norm.offset);

	/* gather the wanted rows, normed, at the front of xn */
	for (uint32_t i = 0; i < b->n; i++) {
		if (!b->want[i])
			continue;
		ops_rmsnorm(f->xn + (size_t)n_want * n_embd, f->x + (size_t)i * n_embd, norm_w, n_embd,
			    m->hp.rms_eps);
		n_want++;
	}
	if (n_want == 0)
		return 0;
	return mm(f, logits, f->xn, n_want, unit, &m->output, err);
}

int forward_run(struct forward *f, const struct batch *b, float *logits,
		struct st_err *err)
{
	const struct model *m = f->m;
	uint64_t t0 = clock_now_ns();
	int rc;

	if (b->n == 0 || b->n > f->max_batch)
		return st_errf(err, -EINVAL, "batch of %u tokens (limit %u)", b->n, f->max_batch);
	for (uint32_t i = 0; i < b->n; i++)
		if (b->slot[i] >= kv_n_slots(f->kv) || b->pos[i] >= kv_n_ctx(f->kv))
			return st_errf(err, -EINVAL, "token %u: slot %u position %u is outside the cache "
				       "(%u slots of %u positions)", i, b->slot[i], b->pos[i],
				       kv_n_slots(f->kv), kv_n_ctx(f->kv));
	rc = weights_revalidate(f->w, err); /* the file changed: nothing read before is used */
	if (rc < 0)
		return rc;
	/* the KV blocks the rows read and write, in memory and the sequences' own */
	rc = kv_prepare(f->kv, b, err);
	if (rc < 0)
		return rc;
	rc = embed(f, b, err);
	if (rc < 0)
		return rc;
	for (uint32_t l = 0; l <= m->hp.n_layer; l++) {
		rc = weights_acquire(f->w, l, err);
		if (rc < 0)
			return rc;
		if (l < m->hp.n_layer)
			rc = run_layer(f, b, l, err);
		else
			rc = run_output(f, b, logits, err);
		if (rc == 0)
			rc = weights_check(f->w, l, err); /* MMAP: bytes lost while in use */
		weights_release(f->w, l);
		atomic_fetch_add_explicit(&f->progress, 1, memory_order_relaxed);
		if (rc < 0)
			return rc;
	}
	kv_commit(f->kv, b);
	f->stats.passes++;
	f->stats.tokens += b->n;
	f->stats.run_ns += clock_now_ns() - t0;
	return 0;
}

/* ---- weight units ---- */

static void add_range(struct weights_range *r, uint32_t *n, const struct model_tensor *t)
{
	r[*n].offset = t->offset;
	r[*n].len = t->size;
	(*n)++;
}

int forward_units(const struct model *m, struct weights_unit **units, uint32_t *n_units)
{
	uint32_t n = m->hp.n_layer + 1;
	struct weights_unit *u = calloc(n, sizeof *u);
	if (!u)
		return -ENOMEM;
	for (uint32_t l = 0; l < n; l++) {
		struct weights_range *r = calloc(9, sizeof *r);
		uint32_t k = 0;
		if (!r) {
			forward_units_free(u, l);
			return -ENOMEM;
		}
		if (l < m->hp.n_layer) {
			const struct model_layer *ly = &m->layers[l];
			const struct model_tensor *ts[] = { &ly->attn_norm, &ly->wq, &ly->wk,
							    &ly->wv, &ly->wo, &ly->ffn_norm,
							    &ly->w_gate, &ly->w_up, &ly->w_down };
			for (size_t i = 0; i < 9; i++)
				add_range(r, &k, ts[i]);
		} else {
			add_range(r, &k, &m->output_norm);
			add_range(r, &k, &m->output);
		}
		u[l].ranges = r;
		u[l].n_ranges = k;
	}
	*units = u;
	*n_units = n;
	return 0;
}

void forward_units_free(struct weights_unit *units, uint32_t n_units)
{
	if (!units)
		return;
	for (uint32_t i = 0; i < n_units; i++)
		free((void *)units[i].ranges);
	free(units);
}
