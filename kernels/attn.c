/* attn.c: single-query grouped-query attention over a cache of F32, F16,
 * Q8_0 or Q4_0 rows cut into segments (see attn.h): scores = q·k * scale,
 * softmax, weighted sum of v. Here: the dispatch, the scalar kernels (the
 * fallback) and attn_ref, the double-precision definition. The SIMD kernels
 * are in attn_avx2.c and attn_avx512.c. Not a place for masks, ALiBi or
 * batched queries. */
#include "kernels/attn.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "kernels/attn_impl.h"
#include "kernels/isa.h"
#include "kernels/ops.h"
#include "kernels/types.h"

/* ---- scalar (the fallback; float accumulation like the SIMD paths) ---- */

static void scores_f32(const char *k, int64_t n, size_t stride, const float *q, int64_t hd,
		       float scale, float *s)
{
	for (int64_t t = 0; t < n; t++) {
		const float *r = (const float *)(k + (size_t)t * stride);
		float acc = 0.0f;
		for (int64_t i = 0; i < hd; i++)
			acc += q[i] * r[i];
		s[t] = acc * scale;
	}
}

static void scores_f16(const char *k, int64_t n, size_t stride, const float *q, int64_t hd,
		       float scale, float *s)
{
	for (int64_t t = 0; t < n; t++) {
		const uint16_t *r = (const uint16_t *)(k + (size_t)t * stride);
		float acc = 0.0f;
		for (int64_t i = 0; i < hd; i++)
			acc += q[i] * st_fp16_to_f32(r[i]);
		s[t] = acc * scale;
	}
}

/* Quantized rows: a float sum per block of 32, times the block's scale. */
static void scores_q8_0(const char *k, int64_t n, size_t stride, const float *q, int64_t hd,
			float scale, float *s)
{
	for (int64_t t = 0; t < n; t++) {
		const struct block_q8_0 *b = (const struct block_q8_0 *)(k + (size_t)t * stride);
		float acc = 0.0f;
		for (int64_t j = 0; j < hd / QK8_0; j++) {
			float sum = 0.0f;
			for (int i = 0; i < QK8_0; i++)
				sum += q[j * QK8_0 + i] * (float)b[j].qs[i];
			acc += sum * st_fp16_to_f32(b[j].d);
		}
		s[t] = acc * scale;
	}
}

static void scores_q4_0(const char *k, int64_t n, size_t stride, const float *q, int64_t hd,
			float scale, float *s)
{
	for (int64_t t = 0; t < n; t++) {
		const struct block_q4_0 *b = (const struct block_q4_0 *)(k + (size_t)t * stride);
		float acc = 0.0f;
		for (int64_t j = 0; j < hd / QK4_0; j++) {
			const float *qq = q + j * QK4_0;
			float sum = 0.0f;
			for (int i = 0; i < QK4_0 / 2; i++)
				sum += qq[i] * (float)((b[j].qs[i] & 0x0f) - 8) +
				       qq[i + QK4_0 / 2] * (float)((b[j].qs[i] >> 4) - 8);
			acc += sum * st_fp16_to_f32(b[j].d);
		}
		s[t] = acc * scale;
	}
}

static void wsum_f32(const char *v, int64_t n, size_t stride, const float *p, int64_t hd,
		     float *out)
{
	for (int64_t t = 0; t < n; t++) {
		const float *r = (const float *)(v + (size_t)t * stride);
		for (int64_t i = 0; i < hd; i++)
			out[i] += p[t] * r[i];
	}
}

static void wsum_f16(const char *v, int64_t n, size_t stride, const float *p, int64_t hd,
		     float *out)
{
	for (int64_t t = 0; t < n; t++) {
		const uint16_t *r = (const uint16_t *)(v + (size_t)t * stride);
		for (int64_t i = 0; i < hd; i++)
			out[i] += p[t] * st_fp16_to_f32(r[i]);
	}
}

static void wsum_q8_0(const char *v, int64_t n, size_t stride, const float *p, int64_t hd,
		      float *out)
{
	for (int64_t t = 0; t < n; t++) {
		const struct block_q8_0 *b = (const struct block_q8_0 *)(v + (size_t)t * stride);
		for (int64_t j = 0; j < hd / QK8_0; j++) {
			const float w = p[t] * st_fp16_to_f32(b[j].d);
			for (int i = 0; i < QK8_0; i++)
				out[j * QK8_0 + i] += w * (float)b[j].qs[i];
		}
	}
}

static void wsum_q4_0(const char *v, int64_t n, size_t stride, const float *p, int64_t hd,
		      float *out)
{
	for (int64_t t = 0; t < n; t++) {
		const struct block_q4_0 *b = (const struct block_q4_0 *)(v + (size_t)t * stride);
		for (int64_t j = 0; j < hd / QK4_0; j++) {
			const float w = p[t] * st_fp16_to_f32(b[j].d);
			float *o = out + j * QK4_0;
			for (int i = 0; i < QK4_0 / 2; i++) {
				o[i] += w * (float)((b[j].qs[i] & 0x0f) - 8);
				o[i + QK4_0 / 2] += w * (float)((b[j].qs[i] >> 4) - 8);
			}
		}
	}
}

static const struct attn_kernels attn_kernels_scalar = {
	.scores = { scores_f32, scores_f16, scores_q8_0, scores_q4_0 },
	.wsum = { wsum_f32, wsum_f16, wsum_q8_0, wsum_q4_0 },
};

/* ---- dispatch ---- */

static int kv_index(uint32_t type)
{
	switch (type) {
	case ST_F32: return ATTN_KV_F32;
	case ST_F16: return ATTN_KV_F16;
	case ST_Q8_0: return ATTN_KV_Q8_0;
	case ST_Q4_0: return ATTN_KV_Q4_0;
	default: return -1;
	}
}

int attn_kv_type_ok(uint32_t type, int64_t head_dim)
{
	int k = kv_index(type);
	if (k < 0 || head_dim <= 0)
		return -EINVAL;
	if ((k == ATTN_KV_Q8_0 || k == ATTN_KV_Q4_0) && head_dim % 32 != 0)
		return -EINVAL;
	return 0;
}

/* Follow the one choice of instruction set (isa.h), so one isa_force()
 * moves every kernel of the process and tests can run each path on one CPU. */
static const struct attn_kernels *attn_active(void)
{
#if defined(__x86_64__)
	const char *isa = isa_name();
	if (strncmp(isa, "avx512", 6) == 0)
		return &attn_kernels_avx512;
	if (strcmp(isa, "avx2") == 0)
		return &attn_kernels_avx2;
#endif
	return &attn_kernels_scalar;
}

/* Bytes from a row's start to element `col` (a block boundary for quantized types). */
static size_t col_bytes(uint32_t type, int64_t col)
{
	switch (type) {
	case ST_F32: return (size_t)col * 4;
	case ST_F16: return (size_t)col * 2;
	case ST_Q8_0: return (size_t)(col / QK8_0) * sizeof(struct block_q8_0);
	default: return (size_t)(col / QK4_0) * sizeof(struct block_q4_0);
	}
}

void attn_heads(const struct attn_args *a, int64_t head_begin, int64_t head_end)
{
	const int kt = kv_index(a->kv_type);
	assert(attn_kv_type_ok(a->kv_type, a->head_dim) == 0);
	assert(a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0);
	assert(a->n_kv >= 1);
	const struct attn_kernels *ks = attn_active();
	const attn_scores_fn scores = ks->scores[kt];
	const attn_wsum_fn wsum = ks->wsum[kt];
	const int64_t group = a->n_head / a->n_head_kv; /* query heads per K/V head */
	/* Every segment goes through the same kernels: scores land at their
	 * positions in one array, one softmax covers them all, and out
	 * accumulates segment after segment in position order, so the result is
	 * the same to the bit however the positions are cut. */
	for (int64_t h = head_begin; h < head_end; h++) {
		const size_t off = col_bytes(a->kv_type, (h / group) * a->head_dim);
		const float *q = a->q + h * a->head_dim;
		float *out = a->out + h * a->head_dim;
		int64_t t = 0;
		for (int64_t i = 0; i < a->n_segs; i++) {
			const struct attn_seg *sg = &a->segs[i];
			if (sg->n > 0)
				scores((const char *)sg->k + off, sg->n, a->kv_row_bytes, q, a->head_dim,
				       a->scale, a->scores + t);
			t += sg->n;
		}
		assert(t == a->n_kv);
		ops_softmax(a->scores, a->n_kv);
		memset(out, 0, (size_t)a->head_dim * sizeof *out);
		t = 0;
		for (int64_t i = 0; i < a->n_segs; i++) {
			const struct attn_seg *sg = &a->segs[i];
			if (sg->n > 0)
				wsum((const char *)sg->v + off, sg->n, a->kv_row_bytes, a->scores + t,
				     a->head_dim, out);
			t += sg->n;
		}
	}
}

/* ---- the reference ---- */

/* Element `col` of a row of the cache type, exactly as stored. */
static double kv_elem(uint32_t type, const char *row, int64_t col)
{
	switch (type) {
	case ST_F32:
		return ((const float *)row)[col];
	case ST_F16:
		return st_fp16_to_f32(((const uint16_t *)row)[col]);
	case ST_Q8_0: {
		const struct block_q8_0 *b = (const struct block_q8_0 *)row + col / QK8_0;
		return (double)st_fp16_to_f32(b->d) * b->qs[col % QK8_0];
	}
	default: {
		const struct block_q4_0 *b = (const struct block_q4_0 *)row + col / QK4_0;
		int j = (int)(col % QK4_0);
		int nib = j < QK4_0 / 2 ? (b->qs[j] & 0x0f) : (b->qs[j - QK4_0 / 2] >> 4);
		return (double)st_fp16_to_f32(b->d) * (nib - 8);
	}
	}
}

/* The row of position t, through the segments. */
static const char *ref_row(const struct attn_args *a, bool value, int64_t t)
{
	for (int64_t i = 0; i < a->n_segs; i++) {
		if (t < a->segs[i].n)
			return (const char *)(value ? a->segs[i].v : a->segs[i].k) +
			       (size_t)t * a->kv_row_bytes;
		t -= a->segs[i].n;
	}
	assert(!"position outside the segments");
	return NULL;
}

/* The largest head the reference sums on its stack. */
#define ATTN_REF_MAX_HEAD_DIM 1024

void attn_ref(const struct attn_args *a)
{
	assert(attn_kv_type_ok(a->kv_type, a->head_dim) == 0);
	assert(a->head_dim <= ATTN_REF_MAX_HEAD_DIM);
	assert(a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0);
	const int64_t group = a->n_head / a->n_head_kv;
	for (int64_t h = 0; h < a->n_head; h++) {
		const float *q = a->q + h * a->head_dim;
		const int64_t off = (h / group) * a->head_dim;
		double max = -1e300, sum = 0.0;
		/* Scores are kept in the float scratch (a 1e-7 relative rounding,
		 * far below what the tests allow); everything else is double. */
		for (int64_t t = 0; t < a->n_kv; t++) {
			const char *row = ref_row(a, false, t);
			double d = 0.0;
			for (int64_t i = 0; i < a->head_dim; i++)
				d += (double)q[i] * kv_elem(a->kv_type, row, off + i);
			a->scores[t] = (float)(d * a->scale);
			max = a->scores[t] > max ? a->scores[t] : max;
		}
		for (int64_t t = 0; t < a->n_kv; t++)
			sum += exp((double)a->scores[t] - max);
		double o[ATTN_REF_MAX_HEAD_DIM] = { 0 };
		for (int64_t t = 0; t < a->n_kv; t++) {
			const char *row = ref_row(a, true, t);
			const double p = exp((double)a->scores[t] - max) / sum;
			for (int64_t i = 0; i < a->head_dim; i++)
				o[i] += p * kv_elem(a->kv_type, row, off + i);
		}
		for (int64_t i = 0; i < a->head_dim; i++)
			a->out[h * a->head_dim + i] = (float)o[i];
	}
}
