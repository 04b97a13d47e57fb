/* qgemm.c: the multi-row kernels' reference (the one-row reference dot of
 * every pair), the activation rows they read, and the lookup of the kernel
 * of the instruction set in use. The SIMD kernels live in qgemm_avx2.c and
 * qgemm_avx512.c; nothing here knows about threads. */
#include "kernels/qgemm.h"

#include <assert.h>
#include <stdbool.h>

#include "kernels/dot.h"
#include "kernels/isa.h"
#include "kernels/qgemm_impl.h"

/* ---- the reference: the scalar one-row dot of each pair ---- */

static void qgemm_pairs(dot_fn dot, const void *w, size_t w_stride, int64_t nr, const void *act,
			size_t act_stride, int64_t nt, int64_t n, float *out, int64_t ldo)
{
	for (int64_t r = 0; r < nr; r++)
		for (int64_t t = 0; t < nt; t++)
			out[t * ldo + r] = dot((const char *)w + (size_t)r * w_stride,
					       (const char *)act + (size_t)t * act_stride, n);
}

#define QGEMM_REF(name, type)                                                                      \
	static void name(const void *w, size_t w_stride, int64_t nr, const void *act,              \
			 size_t act_stride, int64_t nt, int64_t n, float *out, int64_t ldo,        \
			 void *scratch)                                                            \
	{                                                                                          \
		(void)scratch;                                                                     \
		qgemm_pairs(dot_get_ref(type), w, w_stride, nr, act, act_stride, nt, n, out, ldo); \
	}

QGEMM_REF(qgemm_q8_0_ref, ST_Q8_0)
QGEMM_REF(qgemm_q4_0_ref, ST_Q4_0)
QGEMM_REF(qgemm_q4_K_ref, ST_Q4_K)
QGEMM_REF(qgemm_q6_K_ref, ST_Q6_K)

/* Every type some set has a multi-row kernel for. */
static const qgemm_fn qgemm_refs[ST_TYPE_COUNT] = {
	[ST_Q8_0] = qgemm_q8_0_ref,
	[ST_Q4_0] = qgemm_q4_0_ref,
	[ST_Q4_K] = qgemm_q4_K_ref,
	[ST_Q6_K] = qgemm_q6_K_ref,
};

/* The Q8_0-activation types carry side data (qgemm_impl.h); the K-quants'
 * Q8_K rows hold what their kernels need (float d, the 16-sums). */
static bool has_side(uint32_t wtype)
{
	return wtype == ST_Q8_0 || wtype == ST_Q4_0;
}

/* ---- lookups ---- */

/* The set that runs `wtype`'s multi-row kernel: the one in use, or the first
 * lower one that has it (kernel_set.lower); NULL when none does. */
static const struct kernel_set *qgemm_set(uint32_t wtype)
{
	for (const struct kernel_set *s = isa_active(); s; s = s->lower)
		if (s->qgemm[wtype])
			return s;
	return NULL;
}

/* Without a SIMD kernel for the type: the reference where the one-row dot
 * in use is the reference too (the scalar set), else NULL, so that callers
 * take the type's SIMD one-row dot per pair (faster than the scalar
 * reference, and as invariant). */
qgemm_fn qgemm_get(uint32_t wtype)
{
	if (wtype >= ST_TYPE_COUNT || qgemm_refs[wtype] == NULL)
		return NULL;
	const struct kernel_set *s = qgemm_set(wtype);
	if (s)
		return s->qgemm[wtype];
	return dot_get(wtype) == dot_get_ref(wtype) ? qgemm_refs[wtype] : NULL;
}

qgemm_fn qgemm_get_ref(uint32_t wtype)
{
	return wtype < ST_TYPE_COUNT ? qgemm_refs[wtype] : NULL;
}

int qgemm_tile_rows(uint32_t wtype)
{
	const struct kernel_set *s = wtype < ST_TYPE_COUNT ? qgemm_set(wtype) : NULL;
	return s && s->qgemm_rows > 0 ? s->qgemm_rows : 1;
}

/* The weights' zero point: the SIMD kernels multiply unsigned bytes (the
 * weight quant plus this) by the signed activation quants, and take this
 * times the activations' block sum back off. */
static int32_t zero_point(uint32_t wtype)
{
	return wtype == ST_Q8_0 ? 128 : 8;
}

size_t qgemm_act_bytes(uint32_t wtype, int64_t n)
{
	if (qgemm_get_ref(wtype) == NULL || n % st_type_info(wtype)->block_elems != 0)
		return 0;
	if (!has_side(wtype))
		return dot_act_bytes(wtype, n);
	return qgemm_act_side(n) + (size_t)((n / 32 + 15) / 16) * 128;
}

void qgemm_prepare_act(uint32_t wtype, const float *x, void *out, int64_t n)
{
	const int64_t nb = n / 32;
	assert(qgemm_act_bytes(wtype, n) > 0);
	dot_prepare_act(wtype, x, out, n);
	if (!has_side(wtype))
		return;
	const struct block_q8_0 *q = out;
	char *side = (char *)out + qgemm_act_side(n);
	const int32_t zp = zero_point(wtype);
	memset(side, 0, (size_t)((nb + 15) / 16) * 128); /* a short last group's tail */
	for (int64_t b = 0; b < nb; b++) {
		int32_t s = 0;
		for (int j = 0; j < 32; j++)
			s += q[b].qs[j];
		const float d = st_fp16_to_f32(q[b].d);
		const int32_t neg = -zp * s;
		memcpy(side + 4 * qgemm_side_d(b), &d, 4);
		memcpy(side + 4 * qgemm_side_neg(b), &neg, 4);
	}
}

size_t qgemm_scratch_bytes(uint32_t wtype, int64_t n)
{
	/* the largest repacked tile of 16 rows any set writes (qgemm_impl.h) */
	switch (qgemm_get_ref(wtype) ? wtype : ST_TYPE_COUNT) {
	case ST_Q4_K:
		return (size_t)(n / 256) * QGEMM_PACK_Q4_K;
	case ST_Q6_K:
		return (size_t)(n / 256) * QGEMM_PACK_Q6_K;
	case ST_TYPE_COUNT:
		return 0;
	default:
		return (size_t)(n / 32) * QGEMM_PACK_BLOCK_MAX;
	}
}

/* ---- the repacking threshold ---- */

static int64_t pack_min_rows; /* 0: each set's default (qgemm_packs) */

void qgemm_set_pack_min_rows(int64_t rows)
{
	pack_min_rows = rows > 0 ? rows : 0;
}

int64_t qgemm_pack_min_rows(void)
{
	return pack_min_rows;
}

static int64_t row_max_rows = -1; /* < 0: each type's default */

void qgemm_set_row_max_rows(int64_t rows)
{
	row_max_rows = rows < 0 ? -1 : rows;
}

/* From DRAM (matmul on 2 threads, 4096 x 24576): the row path wins for one
 * activation row for every type, and for Q6_K up to 4 (its tile spends
 * ~400 operations per super-block of 16 rows assembling 6-bit quants, the
 * row path a few: 4 rows 4.6 GB/s against 4.3; 5 rows 4.3 against 7.2). */
int64_t qgemm_row_max_rows(uint32_t wtype)
{
	if (row_max_rows >= 0)
		return row_max_rows;
	return wtype == ST_Q6_K ? 4 : 1;
}

const char *qgemm_feed(uint32_t wtype, int64_t nt)
{
	const struct kernel_set *s = wtype < ST_TYPE_COUNT ? qgemm_set(wtype) : NULL;
	if (!s)
		return qgemm_get(wtype) ? "reference" : "none";
	if ((s->qgemm_row_types >> wtype & 1) && nt <= qgemm_row_max_rows(wtype))
		return "row";
	return qgemm_packs(nt, s->qgemm_nt, pack_min_rows) ? "tile-pk" : "tile";
}
