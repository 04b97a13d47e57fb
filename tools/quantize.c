/* quantize.c: see quantize.h. One pass over the input's tensors in file
 * order: each is copied as it is (norms, 1-D tensors, a type it already
 * has) or converted a chunk of rows at a time: rows to f32, checked finite,
 * quantized by the pool's threads, written. Memory: two chunk buffers, and
 * the input's pages are handed back to the kernel after each chunk. */
#include "tools/quantize.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "kernels/pool.h"
#include "kernels/quant.h"
#include "kernels/types.h"

#define CHUNK_F32_BYTES (32u << 20) /* f32 rows converted per chunk (at least one row) */
#define ROWS_PER_GRAB 8		    /* rows a thread takes at a time */
#define QNT_VERSION 2		    /* ggml's GGML_QNT_VERSION: the block layouts in use */

/* One tensor of the output. */
struct qtensor {
	char name[96];
	const struct gguf_tensor *src;
	uint32_t type; /* the output type */
	bool fallback;
};

/* A chunk of rows being converted by the pool. */
struct qjob {
	const uint8_t *src;	/* (rows, rb_in) bytes of src_type */
	uint8_t *dst;		/* (rows, rb_out) bytes of dst_type */
	float *f32;		/* (rows, n) scratch */
	uint32_t src_type, dst_type;
	int64_t n, rows;
	size_t rb_in, rb_out;
	_Atomic long next;	/* first row not taken */
	_Atomic long bad_row;	/* first row found with a NaN or an infinity, or -1 */
	_Atomic int error;	/* a conversion that failed (a caller bug) */
};

static void convert_rows(void *arg, int ith, int nth)
{
	struct qjob *j = arg;
	(void)ith;
	(void)nth;
	for (;;) {
		long r0 = atomic_fetch_add_explicit(&j->next, ROWS_PER_GRAB, memory_order_relaxed);
		if (r0 >= j->rows)
			break;
		long r1 = r0 + ROWS_PER_GRAB < j->rows ? r0 + ROWS_PER_GRAB : (long)j->rows;
		for (long r = r0; r < r1; r++) {
			float *x = j->f32 + (size_t)r * (size_t)j->n;
			int rc = quant_dequantize_row(j->src_type, j->src + (size_t)r * j->rb_in, x, j->n);
			for (int64_t i = 0; rc == 0 && i < j->n; i++) {
				if (!isfinite(x[i])) {
					long none = -1;
					atomic_compare_exchange_strong(&j->bad_row, &none, r);
					rc = 1;
				}
			}
			if (rc == 0)
				rc = quant_quantize_row(j->dst_type, x, j->dst + (size_t)r * j->rb_out, j->n);
			if (rc < 0)
				atomic_store(&j->error, rc);
		}
	}
}

/* The model facts the recipe needs, from the keys (or the tensor names). */
static void read_model(const struct gguf *g, struct recipe_model *m)
{
	struct gguf_str arch = { "llama", 5 };
	char key[128];
	gguf_get_str(g, "general.architecture", &arch, NULL);
	const int al = (int)(arch.len < 48 ? arch.len : 48);
	memset(m, 0, sizeof *m);
	snprintf(key, sizeof key, "%.*s.block_count", al, arch.ptr);
	gguf_get_u32(g, key, &m->n_layer, NULL);
	snprintf(key, sizeof key, "%.*s.attention.head_count", al, arch.ptr);
	gguf_get_u32(g, key, &m->n_head, NULL);
	m->n_head_kv = m->n_head;
	snprintf(key, sizeof key, "%.*s.attention.head_count_kv", al, arch.ptr);
	gguf_get_u32(g, key, &m->n_head_kv, NULL);
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		if (gguf_str_eq(t->name, "output.weight"))
			m->has_output = true;
		unsigned l;
		char name[96];
		snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 95 ? t->name.len : 95), t->name.ptr);
		if (m->n_layer == 0 && sscanf(name, "blk.%u.", &l) == 1 && l + 1 > m->n_layer)
			m->n_layer = l + 1; /* no block_count key: the highest layer seen */
	}
}

/* Metadata: every key of the input, general.file_type and
 * general.quantization_version set as llama-quantize sets them. */
static int copy_metadata(struct gguf_writer *w, const struct gguf *g, uint32_t ftype, struct st_err *err)
{
	bool have_ftype = false, have_qv = false;
	int rc = 0;
	for (uint64_t i = 0; i < gguf_n_kv(g) && rc >= 0; i++) {
		const struct gguf_kv *kv = gguf_kv_at(g, i);
		if (gguf_str_eq(kv->key, "general.file_type")) {
			rc = gguf_writer_add_u32(w, "general.file_type", ftype);
			have_ftype = true;
		} else if (gguf_str_eq(kv->key, "general.quantization_version")) {
			rc = gguf_writer_add_u32(w, "general.quantization_version", QNT_VERSION);
			have_qv = true;
		} else if (gguf_str_eq(kv->key, "general.alignment")) {
			continue; /* the writer's own */
		} else {
			rc = gguf_writer_copy_kv(w, kv);
		}
		if (rc < 0)
			return st_errf(err, rc, "%s: cannot copy key '%.*s'", gguf_path(g), (int)kv->key.len,
				       kv->key.ptr);
	}
	if (!have_qv && (rc = gguf_writer_add_u32(w, "general.quantization_version", QNT_VERSION)) < 0)
		return st_errf(err, rc, "out of memory");
	if (!have_ftype && (rc = gguf_writer_add_u32(w, "general.file_type", ftype)) < 0)
		return st_errf(err, rc, "out of memory");
	return 0;
}

/* Hand the pages of [p, p + n) of the input's mapping back to the kernel:
 * a 43 GB input must not stay resident because we read it once. */
static void drop_pages(const void *p, size_t n)
{
	const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)p & ~(page - 1), b = ((uintptr_t)p + n + page - 1) & ~(page - 1);
	madvise((void *)a, b - a, MADV_DONTNEED);
}

static void show_progress(uint64_t i, uint64_t n, const struct qtensor *t, uint64_t done, uint64_t total)
{
	fprintf(stderr, "\r[%4" PRIu64 "/%" PRIu64 "] %-32.32s %-6s -> %-6s %8.1f / %.1f MiB %3d%%", i + 1, n,
		t->name, st_type_name(t->src->type), st_type_name(t->type), (double)done / (1 << 20),
		(double)total / (1 << 20), total ? (int)(100 * done / total) : 100);
}

int quantize_file(const struct quantize_params *p, struct quantize_stats *stats, struct st_err *err)
{
	struct gguf *g = NULL;
	struct gguf_writer *w = NULL;
	struct pool *pool = NULL;
	struct qtensor *plan = NULL;
	float *f32 = NULL;
	uint8_t *out = NULL;
	int rc;

	memset(stats, 0, sizeof *stats);
	rc = gguf_open(p->in_path, &g, err);
	if (rc < 0)
		return rc;
	uint32_t split_count = 1;
	if (gguf_get_u32(g, "split.count", &split_count, NULL) == 0 && split_count > 1) {
		rc = st_errf(err, -ENOTSUP, "%s: a split GGUF file (%u parts) cannot be quantized; merge it "
			     "first (llama-gguf-split --merge)", p->in_path, split_count);
		goto out;
	}
	struct recipe_model model;
	read_model(g, &model);

	const uint64_t nt = gguf_n_tensors(g);
	plan = calloc(nt ? nt : 1, sizeof *plan);
	w = gguf_writer_new(gguf_alignment(g));
	if (!plan || !w) {
		rc = st_errf(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = copy_metadata(w, g, p->scheme.ftype, err);
	if (rc < 0)
		goto out;

	/* the plan: every tensor's output type, checked before writing a byte */
	size_t max_chunk_out = 0, max_chunk_f32 = 0;
	uint32_t requant_type = ST_TYPE_COUNT;
	for (uint64_t i = 0; i < nt; i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		struct qtensor *q = &plan[i];
		q->src = t;
		if (t->name.len >= sizeof q->name) {
			rc = st_errf(err, -EINVAL, "%s: tensor %" PRIu64 ": name too long", p->in_path, i);
			goto out;
		}
		memcpy(q->name, t->name.ptr, t->name.len);
		rc = recipe_tensor_type(&p->scheme, &model, q->name, t->n_dims, t->ne[0], t->type, &q->fallback);
		if (rc < 0) {
			rc = st_errf(err, -EINVAL, "%s: tensor '%s': rows of %" PRIu64 " weights are not whole %s "
				     "blocks (%u weights)%s", p->in_path, q->name, t->ne[0],
				     st_type_name(p->scheme.type), st_type_info(p->scheme.type)->block_elems,
				     p->scheme.pure ? "; without --pure, llama.cpp's fallback types apply" : "");
			goto out;
		}
		q->type = (uint32_t)rc;
		if (q->type != t->type) {
			if (!st_type_info(t->type)->supported) {
				rc = st_errf(err, -ENOTSUP, "%s: tensor '%s' has type %s, which strata cannot read "
					     "(it reads %s)", p->in_path, q->name, st_type_name(t->type),
					     st_supported_list());
				goto out;
			}
			if (st_type_info(t->type)->block_elems > 1 && requant_type == ST_TYPE_COUNT)
				requant_type = t->type;
			const uint64_t rows = t->n_elems / t->ne[0];
			uint64_t chunk = CHUNK_F32_BYTES / (t->ne[0] * sizeof(float));
			chunk = chunk < 1 ? 1 : chunk > rows ? rows : chunk;
			const size_t f = (size_t)chunk * t->ne[0] * sizeof(float);
			const size_t o = (size_t)chunk * st_row_bytes(q->type, t->ne[0]);
			if (f > max_chunk_f32)
				max_chunk_f32 = f;
			if (o > max_chunk_out)
				max_chunk_out = o;
			stats->n_converted++;
		}
		stats->n_fallback += q->fallback;
		stats->count[q->type]++;
		rc = gguf_writer_add_tensor(w, q->name, q->type, t->n_dims, t->ne);
		if (rc < 0) {
			st_errf(err, rc, "%s: cannot add tensor '%s'", p->out_path, q->name);
			goto out;
		}
	}
	if (requant_type != ST_TYPE_COUNT && !p->quiet)
		fprintf(stderr, "strata-model: warning: %s holds %s tensors: requantizing them loses more than "
			"quantizing the f16/f32 original would\n", p->in_path, st_type_name(requant_type));

	if (max_chunk_f32) {
		f32 = malloc(max_chunk_f32);
		out = malloc(max_chunk_out);
		rc = pool_create(p->threads > 0 ? p->threads : (int)sysconf(_SC_NPROCESSORS_ONLN), &pool);
		if (!f32 || !out || rc < 0) {
			rc = st_errf(err, -ENOMEM, "out of memory for %zu MiB of conversion buffers",
				     (max_chunk_f32 + max_chunk_out) >> 20);
			goto out;
		}
	}
	rc = gguf_writer_begin(w, p->out_path, err);
	if (rc < 0)
		goto out;

	uint64_t total = 0, done = 0;
	for (uint64_t i = 0; i < nt; i++)
		total += plan[i].src->size;
	for (uint64_t i = 0; i < nt; i++) {
		const struct qtensor *q = &plan[i];
		const struct gguf_tensor *t = q->src;
		stats->bytes_in += t->size;
		if (p->progress)
			show_progress(i, nt, q, done, total);
		if (q->type == t->type) { /* as it is, in pieces */
			for (uint64_t o = 0; o < t->size && rc >= 0; o += CHUNK_F32_BYTES) {
				const size_t n = t->size - o < CHUNK_F32_BYTES ? (size_t)(t->size - o) : CHUNK_F32_BYTES;
				rc = gguf_writer_write(w, (const uint8_t *)t->data + o, n, err);
				drop_pages((const uint8_t *)t->data + o, n);
			}
			if (rc < 0)
				goto out;
			stats->bytes_out += t->size;
			done += t->size;
			continue;
		}
		const int64_t n = (int64_t)t->ne[0], rows = (int64_t)(t->n_elems / t->ne[0]);
		struct qjob j = {
			.src_type = t->type, .dst_type = q->type, .n = n, .f32 = f32, .dst = out,
			.rb_in = st_row_bytes(t->type, (uint64_t)n), .rb_out = st_row_bytes(q->type, (uint64_t)n),
		};
		int64_t chunk = (int64_t)(max_chunk_f32 / ((size_t)n * sizeof(float)));
		for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
			j.rows = rows - r0 < chunk ? rows - r0 : chunk;
			j.src = (const uint8_t *)t->data + (size_t)r0 * j.rb_in;
			atomic_init(&j.next, 0);
			atomic_init(&j.bad_row, -1);
			atomic_init(&j.error, 0);
			pool_run(pool, convert_rows, &j);
			drop_pages(j.src, (size_t)j.rows * j.rb_in);
			if (atomic_load(&j.bad_row) >= 0) {
				rc = st_errf(err, -EINVAL, "%s: tensor '%s', row %" PRId64 ": a NaN or an infinity; "
					     "cannot quantize it", p->in_path, q->name, r0 + atomic_load(&j.bad_row));
				goto out;
			}
			if (atomic_load(&j.error) < 0) {
				rc = st_errf(err, atomic_load(&j.error), "%s: tensor '%s': conversion from %s to %s "
					     "failed", p->in_path, q->name, st_type_name(t->type), st_type_name(q->type));
				goto out;
			}
			rc = gguf_writer_write(w, out, (size_t)j.rows * j.rb_out, err);
			if (rc < 0)
				goto out;
			stats->bytes_out += (uint64_t)j.rows * j.rb_out;
			done += (uint64_t)j.rows * j.rb_in;
			if (p->progress)
				show_progress(i, nt, q, done, total);
		}
	}
	rc = gguf_writer_finish(w, err);
	if (p->progress)
		fprintf(stderr, "\n");
	stats->n_tensors = nt;
out:
	if (rc < 0 && p->progress)
		fprintf(stderr, "\n"); /* end the progress line before the caller's message */
	pool_free(pool);
	free(out);
	free(f32);
	free(plan);
	gguf_writer_free(w);
	gguf_close(g);
	return rc;
}
