/* matmul.c: out = x · Wᵀ for any weight type (see matmul.h): which path a
 * call takes, and the pool threads' share of W's rows. Three paths:
 *  - tile: quantized weights with a multi-row kernel (qgemm.h), any number
 *    of rows; activations quantized once per call;
 *  - dot: one weight row against each activation row while it sits in L1
 *    (float weights for few rows; quantized types without a tile kernel);
 *  - sgemm: float weights for many rows: each pool thread turns panels of
 *    W's rows into f32 (F16/BF16) and runs a single-threaded OpenBLAS sgemm.
 * Threads always split W's rows, never a dot's length. Not a place for
 * kernels: the arithmetic is in dot*.c, qgemm*.c, quant.c and OpenBLAS. */
#include "kernels/matmul.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/blas.h"
#include "kernels/dot.h"
#include "kernels/pool.h"
#include "kernels/qgemm.h"
#include "kernels/quant.h"
#include "kernels/quant_ref.h"
#include "kernels/types.h"

/* f32 bytes of one thread's dequantized panel. Each sgemm call packs x
 * again, so panels should not be thin; a few MB per thread stays in L2/L3
 * while sgemm reads what the thread just wrote. */
#define MATMUL_PANEL_BYTES (4u << 20)
/* Weight bytes below which a call is not worth waking the pool for. */
#define MATMUL_SERIAL_BYTES (64u << 10)
#define MATMUL_ALIGN 64

struct matmul_ctx {
	struct pool *pool;	  /* borrowed */
	enum matmul_path force;	  /* MATMUL_PATH_AUTO, or the path of every call */
	void *act;		  /* (n_tok, act_stride) prepared activations, dot and tile paths */
	size_t act_cap;		  /* bytes */
	float *panel;		  /* (threads, panel_rows, n_in) f32, sgemm path */
	size_t panel_cap;	  /* bytes */
	void *tile_scratch;	  /* (threads, qgemm_scratch_bytes) repacked weights, tile path */
	size_t tile_scratch_cap;  /* bytes */
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
	free(c->tile_scratch);
	free(c);
}

void matmul_force_path(struct matmul_ctx *c, enum matmul_path path)
{
	c->force = path;
}

/* Float weights: where sgemm starts to win over the dot kernels, measured
 * on one and two threads (bench/matmul-bench, 4096-wide rows): f32 dots
 * stream 4 bytes per weight, so sgemm's blocking pays off early; F16/BF16
 * halve that. */
static int64_t sgemm_min_rows(uint32_t type)
{
	return type == ST_F32 ? 8 : 16;
}

static bool is_float(uint32_t type)
{
	return type == ST_F32 || type == ST_F16 || type == ST_BF16;
}

/* Quantized weights never take sgemm on their own: dequantized weights times
 * f32 activations round differently from the integer kernels, so a row's
 * result would change with the number of rows beside it. */
enum matmul_path matmul_path_for(const struct matmul_ctx *c, uint32_t type, int64_t n_tok)
{
	if (c->force == MATMUL_PATH_TILE && qgemm_get(type) == NULL)
		return MATMUL_PATH_DOT;
	if (c->force != MATMUL_PATH_AUTO)
		return c->force;
	if (is_float(type))
		return n_tok < sgemm_min_rows(type) ? MATMUL_PATH_DOT : MATMUL_PATH_SGEMM;
	return qgemm_get(type) ? MATMUL_PATH_TILE : MATMUL_PATH_DOT;
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

/* ---- dot path ---- */

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

static int matmul_dot(struct matmul_ctx *c, float *out, const float *x, int64_t n_tok,
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

/* ---- tile path ---- */

struct prep_job {
	uint32_t type;
	const float *x;	    /* (n_tok, n_in) f32 */
	int64_t n_tok, n_in;
	char *act;	    /* (n_tok, act_stride) prepared rows */
	size_t act_stride;  /* bytes */
};

static void prep_fn(void *arg, int ith, int nth)
{
	struct prep_job *j = arg;
	long t0, t1;
	pool_split((long)j->n_tok, 1, ith, nth, &t0, &t1);
	for (long t = t0; t < t1; t++)
		qgemm_prepare_act(j->type, j->x + t * j->n_in, j->act + (size_t)t * j->act_stride, j->n_in);
}

struct tile_job {
	const struct matmul_w *w;
	size_t row_bytes;   /* W's row stride */
	qgemm_fn fn;
	const char *act;    /* (n_tok, act_stride) prepared rows */
	size_t act_stride;  /* bytes */
	int64_t n_tok;
	float *out;	    /* (n_tok, n_out) f32 */
	char *scratch;	    /* (threads, scratch_stride) */
	size_t scratch_stride;
	long chunk;	    /* W rows per grab, a multiple of the tile height */
	_Atomic long next;  /* first row not yet taken */
};

/* As the dot path: chunks of W's rows from a shared counter. The kernel
 * computes every activation row against a chunk before the next. */
static void tile_fn(void *arg, int ith, int nth)
{
	struct tile_job *j = arg;
	const int64_t n_out = j->w->n_out;
	(void)nth;
	for (;;) {
		long r0 = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
		if (r0 >= n_out)
			break;
		long r1 = r0 + j->chunk < n_out ? r0 + j->chunk : (long)n_out;
		j->fn((const char *)j->w->data + (size_t)r0 * j->row_bytes, j->row_bytes, r1 - r0, j->act,
		      j->act_stride, j->n_tok, j->w->n_in, j->out + r0, n_out,
		      j->scratch + (size_t)ith * j->scratch_stride);
	}
}

static int matmul_tile(struct matmul_ctx *c, float *out, const float *x, int64_t n_tok,
		       const struct matmul_w *w, size_t row_bytes)
{
	const int nth = pool_threads(c->pool);
	const size_t a_stride = (qgemm_act_bytes(w->type, w->n_in) + MATMUL_ALIGN - 1) &
				~(size_t)(MATMUL_ALIGN - 1);
	const size_t s_stride = (qgemm_scratch_bytes(w->type, w->n_in) + MATMUL_ALIGN - 1) &
				~(size_t)(MATMUL_ALIGN - 1);
	const bool serial = nth == 1 || row_bytes * (size_t)w->n_out < MATMUL_SERIAL_BYTES;
	int rc;

	if (a_stride == 0 || (size_t)n_tok > SIZE_MAX / a_stride ||
	    s_stride > SIZE_MAX / (size_t)nth)
		return -ENOMEM;
	if ((rc = scratch_grow(&c->act, &c->act_cap, a_stride * (size_t)n_tok)) < 0 ||
	    (rc = scratch_grow(&c->tile_scratch, &c->tile_scratch_cap, s_stride * (size_t)nth)) < 0)
		return rc;

	/* Every activation row quantized once, by whichever thread; the rows'
	 * values do not depend on who quantizes them. */
	struct prep_job p = { .type = w->type, .x = x, .n_tok = n_tok, .n_in = w->n_in,
			      .act = c->act, .act_stride = a_stride };
	if (serial || n_tok < 2)
		prep_fn(&p, 0, 1);
	else
		pool_run(c->pool, prep_fn, &p);

	struct tile_job j = {
		.w = w, .row_bytes = row_bytes, .fn = qgemm_get(w->type), .act = c->act,
		.act_stride = a_stride, .n_tok = n_tok, .out = out, .scratch = c->tile_scratch,
		.scratch_stride = s_stride,
	};
	const long tile = qgemm_tile_rows(w->type);
	/* One activation row (a decode) streams W from DRAM: two chunks a
	 * thread, so each reads long runs of memory, ran a 7B Q4_K_M decode 2-3%
	 * faster than eight (and 32 5% slower), interleaved on 2 threads; more
	 * rows are compute-bound and keep eight, for the balance. */
	long chunk = (long)(w->n_out / (nth * (n_tok == 1 ? 2 : 8)));
	chunk = chunk < 16 ? 16 : chunk;
	j.chunk = (chunk + tile - 1) / tile * tile;
	atomic_init(&j.next, 0);
	if (serial)
		tile_fn(&j, 0, 1);
	else
		pool_run(c->pool, tile_fn, &j);
	return 0;
}

/* ---- sgemm path ---- */

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

static int matmul_sgemm(struct matmul_ctx *c, float *out, const float *x, int64_t n_tok,
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
	switch (matmul_path_for(c, w->type, n_tok)) {
	case MATMUL_PATH_TILE:
		return matmul_tile(c, out, x, n_tok, w, rb);
	case MATMUL_PATH_SGEMM:
		return matmul_sgemm(c, out, x, n_tok, w, rb);
	default:
		return matmul_dot(c, out, x, n_tok, w, rb);
	}
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
