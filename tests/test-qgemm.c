/* test-qgemm.c: kernels/qgemm.h, the multi-row kernels, on every instruction
 * set this CPU runs (the others are reported as skipped).
 *
 * Tolerance: none, for every type. The contract is that each output is the
 * scalar reference dot of its pair (dot_get_ref) bit for bit: integer block
 * sums are exact, and the float steps per block are the reference's, in its
 * order. So every check here is "the same bits" (NaN: any NaN), which is also
 * what batch invariance needs: a row computed alone equals the same row
 * computed at any position of a batch of any size.
 *
 * Checked for Q8_0, Q4_0, Q4_K and Q6_K: weight rows 1..37 (partial tiles of
 * 8 and 16), activation rows 1..64, lengths of 1, 3, 5, 15, 129 and 344
 * blocks (1..43 super-blocks), every way of feeding the weights (tiles
 * transposed per activation tile or repacked once, one weight row at a time
 * for few activation rows), extreme quants (the integer paths' saturation
 * limits), NaN scales, and the prepared activation row against
 * dot_prepare_act. A set without a type's kernel is reported as a skip (its
 * matmuls take the type's one-row dot per pair). */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"
#include "kernels/isa.h"
#include "kernels/qgemm.h"
#include "kernels/quant_ref.h"
#include "kernels/types.h"
#include "tests/tap.h"

static const char *const isas[] = { "scalar", "avx2", "avx512", "avx512vnni" };
#define N_ISAS (sizeof isas / sizeof isas[0])
static const uint32_t types[] = { ST_Q8_0, ST_Q4_0, ST_Q4_K, ST_Q6_K };
#define N_TYPES (sizeof types / sizeof types[0])
/* In blocks (of 32, or super-blocks of 256): 1, 3, 5, 15, 129 and 344 (43
 * for super-blocks: 11008, a model's FFN width). */
static const int64_t lengths[] = { 1, 3, 5, 15, 129, 344 };
#define N_LENGTHS (sizeof lengths / sizeof lengths[0])
#define MAX_R 37 /* weight rows: two full tiles of 16 and a partial one */
#define MAX_T 64 /* activation rows */

/* The same bits, or both NaN (NaN payloads depend on operand order). */
static bool same(float a, float b)
{
	return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

/* Rows of x with per-block magnitudes over 1e-2..1e2; `extreme` rows are
 * +-1 in every element (quants at +-127: the integer paths' limits). */
static void fill_row(float *x, int64_t n, int extreme)
{
	for (int64_t b = 0; b < n; b += 32) {
		const float scale = powf(10.0f, 2.0f * tap_frand());
		for (int64_t j = b; j < b + 32; j++)
			x[j] = extreme ? (extreme > 0 ? 1.0f : (tap_rand() & 1 ? 1.0f : -1.0f))
				       : tap_frand() * scale;
	}
}

struct data {
	uint32_t type;
	int64_t n;
	size_t rb, ab;	/* weight row bytes, prepared activation row bytes */
	char *w;	/* (MAX_R, rb) */
	char *act;	/* (MAX_T, ab) */
	float *ref;	/* (MAX_T, MAX_R) reference dots */
	float *out;	/* (MAX_T, MAX_R) */
	void *scratch;
};

static void data_make(struct data *d, uint32_t type, int64_t n)
{
	float *x = tap_xmalloc((size_t)n * sizeof *x);
	d->type = type;
	d->n = n;
	d->rb = st_row_bytes(type, (uint64_t)n);
	d->ab = qgemm_act_bytes(type, n);
	d->w = tap_xmalloc(d->rb * MAX_R);
	d->act = tap_xmalloc(d->ab * MAX_T);
	d->ref = tap_xmalloc(MAX_T * MAX_R * sizeof *d->ref);
	d->out = tap_xmalloc(MAX_T * MAX_R * sizeof *d->out);
	if (posix_memalign(&d->scratch, 64, qgemm_scratch_bytes(type, n) + 64) != 0)
		tap_bail("out of memory");
	for (int r = 0; r < MAX_R; r++) {
		/* rows 0 and 1 at the extremes: all +127 (-8 for Q4_0), all +-127 */
		fill_row(x, n, r == 0 ? 1 : r == 1 ? -1 : 0);
		if (r == 0 && type == ST_Q4_0)
			for (int64_t i = 0; i < n; i++)
				x[i] = -1.0f; /* Q4_0's largest magnitude: q = 0, i.e. -8 */
		quant_quantize_row_ref(type, x, d->w + (size_t)r * d->rb, n);
	}
	for (int t = 0; t < MAX_T; t++) {
		fill_row(x, n, t == 0 ? 1 : t == 1 ? -1 : 0);
		qgemm_prepare_act(type, x, d->act + (size_t)t * d->ab, n);
	}
	const dot_fn ref = dot_get_ref(type);
	for (int t = 0; t < MAX_T; t++)
		for (int r = 0; r < MAX_R; r++)
			d->ref[t * MAX_R + r] = ref(d->w + (size_t)r * d->rb, d->act + (size_t)t * d->ab, n);
	free(x);
}

static void data_free(struct data *d)
{
	free(d->scratch);
	free(d->out);
	free(d->ref);
	free(d->act);
	free(d->w);
}

/* Rows [0, nr) x [0, nt) of a call equal the reference; the rest of out
 * (poisoned before) untouched. Returns the number of wrong values. */
static int64_t run_check(struct data *d, qgemm_fn fn, int64_t nr, int64_t nt)
{
	int64_t bad = 0;
	for (int i = 0; i < MAX_T * MAX_R; i++)
		d->out[i] = -12345.0f;
	fn(d->w, d->rb, nr, d->act, d->ab, nt, d->n, d->out, MAX_R, d->scratch);
	for (int64_t t = 0; t < MAX_T; t++)
		for (int64_t r = 0; r < MAX_R; r++) {
			const float got = d->out[t * MAX_R + r];
			const bool inside = t < nt && r < nr;
			if (inside ? !same(got, d->ref[t * MAX_R + r]) : got != -12345.0f) {
				if (bad == 0)
					tap_diag("n %lld, %lld x %lld: [%lld][%lld] = %.9g, want %.9g",
						 (long long)d->n, (long long)nr, (long long)nt, (long long)t,
						 (long long)r, got, inside ? d->ref[t * MAX_R + r] : -12345.0f);
				bad++;
			}
		}
	return bad;
}

/* Every row count 1..64 against 37 weight rows, and weight rows 1..37
 * against a few row counts, every way of feeding the weights. */
/* The ways a kernel may feed its weights (the same bits from each). */
static const struct {
	int64_t pack_min_rows, row_max_rows;
	const char *name;
} feeds[] = {
	{ 1000, 0, "tiles transposed per activation tile" },
	{ 1, 0, "tiles repacked once" },
	{ 0, 4, "one weight row at a time up to 4 rows (VNNI), then tiles" },
};

static void test_vs_ref(const char *isa, struct data *d)
{
	const qgemm_fn fn = qgemm_get(d->type);
	for (size_t f = 0; f < sizeof feeds / sizeof feeds[0]; f++) {
		int64_t bad = 0;
		qgemm_set_pack_min_rows(feeds[f].pack_min_rows);
		qgemm_set_row_max_rows(feeds[f].row_max_rows);
		for (int64_t nt = 1; nt <= MAX_T; nt++)
			bad += run_check(d, fn, MAX_R, nt);
		for (int64_t nr = 1; nr <= MAX_R; nr++)
			bad += run_check(d, fn, nr, nr % 9 + 1) + run_check(d, fn, nr, 17);
		tap_is_int(bad, 0, "%s %s n=%lld (%s): every output = the reference dot, bit for bit, "
			   "1..64 activation rows, 1..37 weight rows", isa, st_type_name(d->type),
			   (long long)d->n, feeds[f].name);
	}
	qgemm_set_pack_min_rows(0);
	qgemm_set_row_max_rows(-1);
}

/* Batch invariance at the kernel: activation row 5 alone, then the same row
 * at every position of batches of every size 1..64 (the other rows vary). */
static void test_invariance(const char *isa, struct data *d)
{
	const qgemm_fn fn = qgemm_get(d->type);
	const int64_t n = d->n;
	char *batch = tap_xmalloc(d->ab * MAX_T);
	float alone[MAX_R], *out = tap_xmalloc(MAX_T * MAX_R * sizeof *out);
	int64_t bad = 0, runs = 0;
	fn(d->w, d->rb, MAX_R, d->act + 5 * d->ab, d->ab, 1, n, alone, MAX_R, d->scratch);
	for (int64_t m = 1; m <= MAX_T; m++) {
		for (int64_t pos = 0; pos < m; pos += (m < 16 ? 1 : 7)) {
			for (int64_t t = 0; t < m; t++) {
				const int64_t src = t == pos ? 5 : (t * 7 + m) % MAX_T;
				memcpy(batch + (size_t)t * d->ab, d->act + (size_t)src * d->ab, d->ab);
			}
			fn(d->w, d->rb, MAX_R, batch, d->ab, m, n, out, MAX_R, d->scratch);
			bad += memcmp(out + pos * MAX_R, alone, sizeof alone) != 0;
			runs++;
		}
	}
	tap_is_int(bad, 0, "%s %s n=%lld: a row alone = the same row at any position of a batch of "
		   "1..64 rows (%lld batches)", isa, st_type_name(d->type), (long long)n, (long long)runs);
	free(out);
	free(batch);
}

/* A NaN scale in a weight block or an activation block: NaN out, as the reference. */
static void test_nan(const char *isa, struct data *d)
{
	const qgemm_fn fn = qgemm_get(d->type);
	/* the d of row 3's first block: at its start, or Q6_K's at its end */
	const size_t at = 3 * d->rb + (d->type == ST_Q6_K ? offsetof(struct block_q6_K, d) : 0);
	uint16_t keep;
	memcpy(&keep, d->w + at, 2);
	const uint16_t nan16 = 0x7e00;
	memcpy(d->w + at, &nan16, 2);
	fn(d->w, d->rb, MAX_R, d->act, d->ab, 9, d->n, d->out, MAX_R, d->scratch);
	int ok = 1;
	for (int t = 0; t < 9; t++)
		for (int r = 0; r < MAX_R; r++)
			ok &= r == 3 ? isnan(d->out[t * MAX_R + r]) : same(d->out[t * MAX_R + r], d->ref[t * MAX_R + r]);
	memcpy(d->w + at, &keep, 2);
	tap_ok(ok, "%s %s: a NaN weight scale makes that row's outputs NaN and no other", isa,
	       st_type_name(d->type));
}

static void test_prepare(void)
{
	const int64_t n = 512;
	float x[512];
	fill_row(x, n, 0);
	for (size_t ti = 0; ti < N_TYPES; ti++) {
		const uint32_t type = types[ti];
		char *a = tap_xmalloc(qgemm_act_bytes(type, n)), *b = tap_xmalloc(dot_act_bytes(type, n));
		qgemm_prepare_act(type, x, a, n);
		dot_prepare_act(type, x, b, n);
		tap_ok(memcmp(a, b, dot_act_bytes(type, n)) == 0,
		       "%s: the prepared row starts with dot_prepare_act's, byte for byte", st_type_name(type));
		free(b);
		free(a);
	}
	tap_is_int((int64_t)qgemm_act_bytes(ST_Q8_0, 480), 15 * 34 + 2 + 128,
		   "q8_0 act bytes: blocks, padding to 64, 128 bytes per 16 blocks");
	tap_is_int((int64_t)qgemm_act_bytes(ST_F16, 480), 0, "no prepared rows for f16");
	tap_ok(qgemm_get(ST_F32) == NULL && qgemm_get(ST_Q5_K) == NULL && qgemm_get(99) == NULL,
	       "no multi-row kernel for f32, q5_k or an unknown id");
}

int main(void)
{
	tap_srand(0x9b05688c2b3e6c1full);
	test_prepare();
	for (size_t i = 0; i < N_ISAS; i++) {
		const int rc = isa_force(isas[i]);
		if (rc == -ENOTSUP) {
			tap_skip("%s: this CPU or build cannot run it", isas[i]);
			continue;
		}
		if (!tap_is_int(rc, 0, "isa_force(%s)", isas[i]))
			continue;
		tap_ok(qgemm_get(ST_Q8_0) != NULL && qgemm_get(ST_Q4_0) != NULL,
		       "%s: q8_0 and q4_0 have multi-row kernels (%d rows per tile)", isas[i],
		       qgemm_tile_rows(ST_Q8_0));
		for (size_t ti = 0; ti < N_TYPES; ti++) {
			if (qgemm_get(types[ti]) == NULL) {
				tap_skip("%s %s: no multi-row kernel in this set (its one-row dot per pair)",
					 isas[i], st_type_name(types[ti]));
				continue;
			}
			/* the scalar set's kernel is the reference loop itself:
			 * the short rows show it is wired right */
			const size_t n_len = strcmp(isas[i], "scalar") == 0 ? 3 : N_LENGTHS;
			for (size_t li = 0; li < n_len; li++) {
				struct data d;
				data_make(&d, types[ti], lengths[li] * st_type_info(types[ti])->block_elems);
				test_vs_ref(isas[i], &d);
				if (li == 2 || li == N_LENGTHS - 1)
					test_invariance(isas[i], &d);
				if (li == 2)
					test_nan(isas[i], &d);
				data_free(&d);
			}
		}
	}
	tap_is_int(isa_force(NULL), 0, "back to the best set: %s", isa_name());
	return tap_done();
}
