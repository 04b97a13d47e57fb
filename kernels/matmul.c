/* matmul.c: out = x · Wᵀ for any weight type (see matmul.h). Few rows: dot
 * kernels with W's rows shared out across the pool, each weight row read once
 * per batch. Many rows: every pool thread takes panels of W's rows, turns
 * them into f32 in a panel of its own and runs a single-threaded OpenBLAS
 * sgemm on it. Not a place for new kernels: the arithmetic is in dot.c,
 * quant.c and OpenBLAS. */
#include "kernels/matmul.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/blas.h"
#include "kernels/dot.h"
#include "kernels/pool.h"
#include "kernels/quant.h"
#include "kernels/quant_ref.h"
#include "kernels/types.h"

/* f32 bytes of one thread's dequantized panel. Each sgemm call packs x
 * again, so panels should not be thin; a few MB per thread stays in L2/L3
 * while sgemm reads what the thread just wrote. */
#define MATMUL_PANEL_BYTES (4u << 20)
/* Weight bytes below which a GEMV is not worth waking the pool for. */
#define MATMUL_SERIAL_BYTES (64u << 10)
#define MATMUL_ALIGN 64

struct matmul_ctx {
	struct pool *pool; /* borrowed */
	int64_t gemm_min_rows; /* > 0: for every type; 0: per type (gemm_min_rows_for) */
	void *act;	  /* (n_tok, act_stride) prepared activations, GEMV path */
	size_t act_cap;	  /* bytes */
	float *panel;	  /* (threads, panel_rows, n_in) f32, GEMM path */
	size_t panel_cap; /* bytes */
};

int matmul_ctx_create(struct pool *pool, struct matmul_ctx **out)
{
	struct matmul_ctx *c = calloc(1, sizeof *c);
	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->pool = pool;
	/* Our pool threads call sgemm themselves, one panel each: OpenBLAS's
	 * own threads would only compete for the same cores (and spin for a
	 * while after every call). */
	blas_set_threads(1);
	*out = c;
	return 0;
}

void matmul_ctx_free(struct matmul_ctx *c)
{
	if (!c)
		return;
	free(c->act);
	free(c->panel);
	free(c);
}

void matmul_set_gemm_min_rows(struct matmul_ctx *c, int64_t rows)
{
	c->gemm_min_rows = rows > 0 ? rows : 0;
}

/* Where sgemm starts to win, measured on one and two threads (bench/
 * matmul-bench, 4096-wide rows): f32 dots stream 4 bytes per weight, so
 * sgemm's blocking pays off early; F16/BF16 halve that; Q8_0/Q4_0 dots are
 * integer VNNI work on a quarter of the bytes and stay ahead of dequantizing
 * to f32 until about 64 rows. */
static int64_t gemm_min_rows_for(const struct matmul_ctx *c, uint32_t type)
{
	if (c->gemm_min_rows > 0)
		return c->gemm_min_rows;
	switch (type) {
	case ST_F32:
		return 8;
	case ST_F16:
	case ST_BF16:
		return 16;
	default:
		return 64;
	}
}

/* Make *buf hold at least `need` bytes (64-byte aligned). On failure the old
 * buffer stays as it was and -ENOMEM is returned. Contents are not kept. */
static int scratch_grow(void **buf, size_t *cap, size_t need)
{
	void *p;
	if (need <= *cap)
		return 0;
	need = (need + MATMUL_ALIGN - 1) & ~(size_t)(MATMUL_ALIGN - 1);
	if (posix_memalign(&p, MATMUL_ALIGN, need) != 0)
		return -ENOMEM;
	free(*buf);
	*buf = p;
	*cap = need;
	return 0;
}

/* Σ w[i]·x[i] over [i0, i1) of a float-typed row: the columns past the last
 * multiple of 32, which the dot kernels do not take. */
static float tail_dot(uint32_t type, const void *w, const float *x, int64_t i0, int64_t i1)
{
	float s = 0.0f;
	for (int64_t i = i0; i < i1; i++) {
		float wi;
		if (type == ST_F32)
			wi = ((const float *)w)[i];
		else if (type == ST_F16)
			wi = st_fp16_to_f32(((const uint16_t *)w)[i]);
		else
			wi = st_bf16_to_f32(((const uint16_t *)w)[i]);
		s += wi * x[i];
	}
	return s;
}

/* ---- GEMV path ---- */

struct gemv_job {
	const struct matmul_w *w;
	size_t row_bytes;   /* W's row stride */
	dot_fn fn;
	const char *act;    /* (n_tok, act_stride) prepared activations */
	size_t act_stride;  /* bytes */
	const float *x;	    /* (n_tok, n_in) f32, for the tail of float types */
	int64_t n_tok;
	int64_t n_main;	    /* columns the dot kernel takes: a multiple of 32 */
	float *out;	    /* (n_tok, n_out) f32 */
	long chunk;	    /* rows per grab, a multiple of 16 (64 bytes of out) */
	_Atomic long next;  /* first row not yet taken */
};

/* Rows are taken in chunks from a shared counter, not a fixed split: a core
 * that is also running someone else (an OpenBLAS thread winding down, the
 * I/O thread) simply takes fewer chunks. */
static void gemv_fn(void *arg, int ith, int nth)
{
	struct gemv_job *j = arg;
	const int64_t n_out = j->w->n_out, n_in = j->w->n_in;
	(void)ith;
	(void)nth;
	for (;;) {
		long r0 = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
		if (r0 >= n_out)
			break;
		long r1 = r0 + j->chunk < n_out ? r0 + j->chunk : (long)n_out;
		for (long r = r0; r < r1; r++) {
			const char *wrow = (const char *)j->w->data + (size_t)r * j->row_bytes;
			/* every token against this row while it sits in L1 */
			for (int64_t t = 0; t < j->n_tok; t++) {
				float v = 0.0f;
				if (j->n_main > 0)
					v = j->fn(wrow, j->act + (size_t)t * j->act_stride, j->n_main);
				if (j->n_main < n_in)
					v += tail_dot(j->w->type, wrow, j->x + t * n_in, j->n_main, n_in);
				j->out[t * n_out + r] = v;
			}
		}
	}
}

static int matmul_gemv(struct matmul_ctx *c, float *out, const float *x, int64_t n_tok,
		       const struct matmul_w *w, size_t row_bytes)
{
	const int nth = pool_threads(c->pool);
	struct gemv_job j = {
		.w = w, .row_bytes = row_bytes, .fn = dot_get(w->type), .x = x,
		.n_tok = n_tok, .n_main = w->n_in & ~(int64_t)31, .out = out,
	};

	if (dot_act_type(w->type) == ST_F32) {
		/* Float weights take the f32 rows as they are. */
		j.act = (const char *)x;
		j.act_stride = (size_t)w->n_in * sizeof(float);
	} else {
		/* Quantized weights: activations to Q8_0 once per token row. */
		assert(j.n_main == w->n_in);
		j.act_stride = (dot_act_bytes(w->type, w->n_in) + MATMUL_ALIGN - 1) &
			       ~(size_t)(MATMUL_ALIGN - 1);
		int rc = scratch_grow(&c->act, &c->act_cap, j.act_stride * (size_t)n_tok);
		if (rc < 0)
			return rc;
		for (int64_t t = 0; t < n_tok; t++)
			dot_prepare_act(w->type, x + t * w->n_in,
					(char *)c->act + (size_t)t * j.act_stride, w->n_in);
		j.act = c->act;
	}

	long chunk = (long)(w->n_out / (nth * 8));
	chunk = chunk < 16 ? 16 : (chunk + 15) & ~15L;
	j.chunk = chunk;
	atomic_init(&j.next, 0);
	if (nth == 1 || row_bytes * (size_t)w->n_out < MATMUL_SERIAL_BYTES)
		gemv_fn(&j, 0, 1);
	else
		pool_run(c->pool, gemv_fn, &j);
	return 0;
}

/* ---- GEMM path ---- */

struct gemm_job {
	const struct matmul_w *w;
	size_t row_bytes;     /* W's row stride */
	const float *x;	      /* (n_tok, n_in) f32 */
	int64_t n_tok;
	float *out;	      /* (n_tok, n_out) f32 */
	int64_t panel_rows;   /* W rows per grab */
	float *panels;	      /* (nth, panel_rows, n_in) f32: one panel per thread */
	_Atomic long next;    /* first W row not yet taken */
};

/* Each thread grabs panels of W's rows until none are left; a core that is
 * busy with something else takes fewer. Quantized rows are dequantized into
 * the thread's own panel; f32 rows are read in place. */
static void gemm_fn(void *arg, int ith, int nth)
{
	struct gemm_job *j = arg;
	const int64_t n_in = j->w->n_in, n_out = j->w->n_out;
	float *panel = j->panels ? j->panels + (size_t)ith * (size_t)j->panel_rows * (size_t)n_in : NULL;
	(void)nth;
	for (;;) {
		long r0 = atomic_fetch_add_explicit(&j->next, (long)j->panel_rows, memory_order_relaxed);
		if (r0 >= n_out)
			break;
		int64_t rows = n_out - r0 < j->panel_rows ? n_out - r0 : j->panel_rows;
		const char *wrows = (const char *)j->w->data + (size_t)r0 * j->row_bytes;
		if (j->w->type == ST_F32) {
			blas_sgemm_nt(j->n_tok, rows, n_in, j->x, n_in, (const float *)wrows,
				      (int64_t)(j->row_bytes / sizeof(float)), 0.0f, j->out + r0, n_out);
			continue;
		}
		for (int64_t r = 0; r < rows; r++) {
			int rc = quant_dequantize_row(j->w->type, wrows + (size_t)r * j->row_bytes,
						      panel + r * n_in, n_in);
			assert(rc == 0); /* the type was checked before the job started */
			(void)rc;
		}
		blas_sgemm_nt(j->n_tok, rows, n_in, j->x, n_in, panel, n_in, 0.0f, j->out + r0, n_out);
	}
}

static int matmul_gemm(struct matmul_ctx *c, float *out, const float *x, int64_t n_tok,
		       const struct matmul_w *w, size_t row_bytes)
{
	const int nth = pool_threads(c->pool);
	const int64_t n_in = w->n_in, n_out = w->n_out;
	struct gemm_job j = { .w = w, .row_bytes = row_bytes, .x = x, .n_tok = n_tok, .out = out };

	/* Panels small enough to hand every thread several (balance), large
	 * enough that sgemm's packing of x is amortized. */
	int64_t rows = (int64_t)(MATMUL_PANEL_BYTES / ((size_t)n_in * sizeof(float)));
	int64_t balanced = n_out / (nth * 4);
	if (rows > balanced)
		rows = balanced;
	rows = rows < 16 ? 16 : rows & ~(int64_t)15;
	j.panel_rows = rows > n_out ? n_out : rows;
	if (w->type != ST_F32) {
		int rc = scratch_grow((void **)&c->panel, &c->panel_cap,
				      (size_t)nth * (size_t)j.panel_rows * (size_t)n_in * sizeof(float));
		if (rc < 0)
			return rc;
		j.panels = c->panel;
	}
	atomic_init(&j.next, 0);
	if (nth == 1)
		gemm_fn(&j, 0, 1);
	else
		pool_run(c->pool, gemm_fn, &j);
	return 0;
}

/* The row stride, or 0 for a weight matrix the kernels cannot take. */
static size_t check_w(const struct matmul_w *w, int *err)
{
	const struct st_type_info *ti = st_type_info(w->type);
	size_t rb;
	*err = 0;
	if (!ti || !ti->supported || !dot_get(w->type)) {
		*err = -ENOTSUP;
		return 0;
	}
	rb = st_row_bytes(w->type, (uint64_t)w->n_in);
	if (rb == 0 || w->n_out < 0 || w->n_in <= 0) {
		*err = -EINVAL;
		return 0;
	}
	return rb;
}

int matmul(struct matmul_ctx *c, float *out, const float *x, int64_t n_tok,
	   const struct matmul_w *w)
{
	int err;
	size_t rb = check_w(w, &err);
	if (rb == 0)
		return err;
	if (n_tok <= 0 || w->n_out == 0)
		return 0;
	if (n_tok < gemm_min_rows_for(c, w->type))
		return matmul_gemv(c, out, x, n_tok, w, rb);
	return matmul_gemm(c, out, x, n_tok, w, rb);
}

int matmul_ref(float *out, const float *x, int64_t n_tok, const struct matmul_w *w)
{
	int err;
	size_t rb = check_w(w, &err);
	if (rb == 0)
		return err;
	float *row = malloc((size_t)w->n_in * sizeof *row);
	if (!row)
		return -ENOMEM;
	for (int64_t r = 0; r < w->n_out; r++) {
		err = quant_dequantize_row_ref(w->type, (const char *)w->data + (size_t)r * rb, row, w->n_in);
		if (err < 0)
			break;
		for (int64_t t = 0; t < n_tok; t++) {
			double s = 0.0;
			for (int64_t i = 0; i < w->n_in; i++)
				s += (double)row[i] * x[t * w->n_in + i];
			out[t * w->n_out + r] = (float)s;
		}
	}
	free(row);
	return err;
}
