/* test-attn.c: attn_heads on every instruction set this CPU runs (chosen
 * with isa_force) against attn_ref for F32 and F16 caches, GQA groupings
 * 8/4, 8/8, 64/8, n_kv 1..300, odd head dims and padded row strides; plus a
 * hand case and the head split. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attn.h"
#include "kernels/dot.h"
#include "kernels/isa.h"
#include "kernels/types.h"
#include "tests/tap.h"

/* A cache of n_kv rows of n_head_kv*head_dim values, row stride padded by
 * `pad` elements so the kernels must honour kv_row_bytes. */
static void *make_cache(uint32_t type, int64_t n_kv, int64_t width, int64_t pad, size_t *row_bytes)
{
	const size_t esz = type == ST_F16 ? 2 : 4;
	*row_bytes = (size_t)(width + pad) * esz;
	char *c = tap_xmalloc(*row_bytes * (size_t)n_kv);
	for (int64_t t = 0; t < n_kv; t++) {
		for (int64_t i = 0; i < width + pad; i++) {
			const float v = tap_frand() * 2.0f;
			if (type == ST_F16)
				((uint16_t *)(c + (size_t)t * *row_bytes))[i] = st_f32_to_fp16(v);
			else
				((float *)(c + (size_t)t * *row_bytes))[i] = v;
		}
	}
	return c;
}

/* Max |fast - ref| over the output, relative to the largest |ref| of its
 * head (outputs are convex combinations of v, so |ref| <= max|v| = 2). */
static double compare(const float *fast, const float *ref, int64_t n_head, int64_t hd)
{
	double worst = 0.0;
	for (int64_t h = 0; h < n_head; h++) {
		double scale = 1e-3;
		for (int64_t i = 0; i < hd; i++)
			scale = fmax(scale, fabs(ref[h * hd + i]));
		for (int64_t i = 0; i < hd; i++) {
			double e = fabs((double)fast[h * hd + i] - ref[h * hd + i]) / scale;
			if (!(e <= worst))
				worst = isnan(e) ? INFINITY : e;
		}
	}
	return worst;
}

static void test_vs_ref(uint32_t type, int64_t n_head, int64_t n_head_kv, int64_t hd)
{
	static const int64_t kvs[] = { 1, 2, 3, 17, 64, 129, 300 };
	const int64_t width = n_head_kv * hd;
	int bad = 0;
	double worst = 0.0;

	for (size_t ki = 0; ki < sizeof kvs / sizeof kvs[0]; ki++) {
		const int64_t n_kv = kvs[ki], pad = ki % 2 ? 8 : 0;
		size_t rb;
		void *k = make_cache(type, n_kv, width, pad, &rb);
		void *v = make_cache(type, n_kv, width, pad, &rb);
		float *q = tap_xmalloc((size_t)(n_head * hd) * sizeof *q);
		for (int64_t i = 0; i < n_head * hd; i++)
			q[i] = tap_frand() * 3.0f;
		float *out = tap_xmalloc((size_t)(n_head * hd) * sizeof *out);
		float *ref = tap_xmalloc((size_t)(n_head * hd) * sizeof *ref);
		float *scores = tap_xmalloc((size_t)n_kv * sizeof *scores);
		struct attn_args a = {
			.q = q, .k = k, .v = v, .kv_type = type, .kv_row_bytes = rb,
			.n_kv = n_kv, .n_head = n_head, .n_head_kv = n_head_kv, .head_dim = hd,
			.scale = 1.0f / sqrtf((float)hd), .scores = scores, .out = ref,
		};
		attn_ref(&a);
		a.out = out;
		/* In two calls, as a caller splitting heads across threads would. */
		attn_heads(&a, 0, n_head / 2);
		attn_heads(&a, n_head / 2, n_head);
		double e = compare(out, ref, n_head, hd);
		/* Float accumulation over head_dim products and n_kv terms: a
		 * few ulps of the largest term, well under 1e-5 relative. */
		if (e > 1e-5)
			bad++;
		worst = fmax(worst, e);
		free(scores);
		free(ref);
		free(out);
		free(q);
		free(v);
		free(k);
	}
	tap_ok(bad == 0, "attn %s %s %lld/%lld heads, head_dim %lld, n_kv 1..300: max rel err %.3g <= 1e-5",
	       isa_name(), type == ST_F16 ? "f16" : "f32", (long long)n_head, (long long)n_head_kv,
	       (long long)hd, worst);
}

/* Two positions, one head of dim 2, scores worked by hand: q = (1, 0),
 * k0 = (0, 0), k1 = (ln 3, 0), scale 1 -> softmax (1/4, 3/4);
 * v0 = (4, 8), v1 = (0, -4) -> out = (1, -1). */
static void test_hand(uint32_t type)
{
	const float kf[4] = { 0.0f, 0.0f, (float)log(3.0), 0.0f }, vf[4] = { 4, 8, 0, -4 };
	uint16_t kh[4], vh[4];
	for (int i = 0; i < 4; i++) {
		kh[i] = st_f32_to_fp16(kf[i]);
		vh[i] = st_f32_to_fp16(vf[i]);
	}
	const float q[2] = { 1, 0 };
	float out[2] = { NAN, NAN }, scores[2];
	const bool f16 = type == ST_F16;
	struct attn_args a = {
		.q = q, .k = f16 ? (const void *)kh : kf, .v = f16 ? (const void *)vh : vf,
		.kv_type = type, .kv_row_bytes = f16 ? 4 : 8, .n_kv = 2, .n_head = 1,
		.n_head_kv = 1, .head_dim = 2, .scale = 1.0f, .scores = scores, .out = out,
	};
	attn_heads(&a, 0, 1);
	/* f16 rounds ln 3 to 1.0986328 (p1 = 0.74998), hence the tolerance. */
	const double tol = f16 ? 2e-4 : 1e-6;
	tap_is_near(out[0], 1.0, tol, "attn %s %s hand case: out[0] = 4/4", isa_name(), f16 ? "f16" : "f32");
	tap_is_near(out[1], -1.0, tol, "attn %s %s hand case: out[1] = 8/4 - 4*3/4", isa_name(),
		    f16 ? "f16" : "f32");
}

/* Heads outside [begin, end) are left alone. */
static void test_range(void)
{
	const int64_t n_head = 8, n_head_kv = 4, hd = 16, n_kv = 5;
	size_t rb;
	void *k = make_cache(ST_F32, n_kv, n_head_kv * hd, 0, &rb);
	void *v = make_cache(ST_F32, n_kv, n_head_kv * hd, 0, &rb);
	float q[8 * 16], out[8 * 16], scores[5];
	for (int i = 0; i < 8 * 16; i++) {
		q[i] = tap_frand();
		out[i] = 12345.0f;
	}
	struct attn_args a = {
		.q = q, .k = k, .v = v, .kv_type = ST_F32, .kv_row_bytes = rb, .n_kv = n_kv,
		.n_head = n_head, .n_head_kv = n_head_kv, .head_dim = hd, .scale = 0.25f,
		.scores = scores, .out = out,
	};
	attn_heads(&a, 3, 5);
	int untouched = 1, written = 1;
	for (int h = 0; h < 8; h++)
		for (int i = 0; i < 16; i++) {
			if ((h < 3 || h >= 5) && out[h * 16 + i] != 12345.0f)
				untouched = 0;
			if (h >= 3 && h < 5 && out[h * 16 + i] == 12345.0f)
				written = 0;
		}
	tap_ok(untouched && written, "attn_heads(3, 5) writes heads 3..4 only");
	free(v);
	free(k);
}

/* A shared prefix: the first np positions read from another cache (k0, v0)
 * give what one contiguous cache holding the same rows gives, on each
 * instruction set, and attn_ref agrees with itself exactly. */
static void test_prefix(uint32_t type)
{
	const int64_t n_head = 8, n_head_kv = 4, hd = 64, width = n_head_kv * hd;
	static const int64_t cuts[][2] = { { 5, 1 }, { 5, 9 }, { 33, 40 }, { 129, 3 }, { 7, 0 } };
	int bad_ref = 0, bad = 0, bad_same = 0;
	double worst = 0.0;
	for (size_t ci = 0; ci < sizeof cuts / sizeof cuts[0]; ci++) {
		const int64_t np = cuts[ci][0], n_kv = np + cuts[ci][1];
		size_t rb;
		char *whole = make_cache(type, n_kv, width, 0, &rb);
		char *vwhole = make_cache(type, n_kv, width, 0, &rb);
		/* the "other sequence" holds rows [0, np); ours holds [np, n_kv) at
		 * their own positions, garbage below np (it must not be read) */
		char *own = tap_xmalloc(rb * (size_t)n_kv), *vown = tap_xmalloc(rb * (size_t)n_kv);
		memset(own, 0x7f, rb * (size_t)n_kv);
		memset(vown, 0x7f, rb * (size_t)n_kv);
		memcpy(own + rb * (size_t)np, whole + rb * (size_t)np, rb * (size_t)(n_kv - np));
		memcpy(vown + rb * (size_t)np, vwhole + rb * (size_t)np, rb * (size_t)(n_kv - np));
		float *q = tap_xmalloc((size_t)(n_head * hd) * sizeof *q);
		for (int64_t i = 0; i < n_head * hd; i++)
			q[i] = tap_frand() * 3.0f;
		float *a_out = tap_xmalloc((size_t)(n_head * hd) * sizeof(float));
		float *b_out = tap_xmalloc((size_t)(n_head * hd) * sizeof(float));
		float *r_out = tap_xmalloc((size_t)(n_head * hd) * sizeof(float));
		float *scores = tap_xmalloc((size_t)n_kv * sizeof(float));
		struct attn_args c = {
			.q = q, .k = whole, .v = vwhole, .kv_type = type, .kv_row_bytes = rb,
			.n_kv = n_kv, .n_head = n_head, .n_head_kv = n_head_kv, .head_dim = hd,
			.scale = 1.0f / sqrtf((float)hd), .scores = scores, .out = a_out,
		};
		struct attn_args l = c;
		l.k = own;
		l.v = vown;
		l.k0 = whole;
		l.v0 = vwhole;
		l.n_prefix = np;
		l.out = b_out;
		attn_ref(&c);
		memcpy(r_out, a_out, (size_t)(n_head * hd) * sizeof(float));
		attn_ref(&l);
		if (memcmp(r_out, b_out, (size_t)(n_head * hd) * sizeof(float)) != 0)
			bad_ref++;
		attn_heads(&l, 0, n_head);
		double e = compare(b_out, r_out, n_head, hd);
		if (e > 1e-5)
			bad++;
		worst = fmax(worst, e);
		/* and the same as the fast kernels on one contiguous cache, to the bit */
		attn_heads(&c, 0, n_head);
		if (memcmp(a_out, b_out, (size_t)(n_head * hd) * sizeof(float)) != 0)
			bad_same++;
		free(scores); free(r_out); free(b_out); free(a_out); free(q);
		free(vown); free(own); free(vwhole); free(whole);
	}
	tap_ok(bad_ref == 0, "attn_ref %s %s: a shared prefix gives exactly the contiguous result",
	       isa_name(), type == ST_F16 ? "f16" : "f32");
	tap_ok(bad == 0, "attn %s %s with a shared prefix (cut at 5..129): max rel err %.3g <= 1e-5",
	       isa_name(), type == ST_F16 ? "f16" : "f32", worst);
	tap_ok(bad_same == 0, "attn %s %s: a shared prefix gives the contiguous cache's result to the bit",
	       isa_name(), type == ST_F16 ? "f16" : "f32");
}

int main(void)
{
	tap_srand(0x243f6a8885a308d3ull);
	static const struct {
		int64_t n_head, n_head_kv, hd;
	} shapes[] = {
		{ 8, 4, 8 },	/* stories260K: head_dim 8, below one vector */
		{ 8, 4, 64 },
		{ 8, 8, 128 },
		{ 64, 8, 128 }, /* ALIA-40b */
		{ 8, 8, 100 },	/* not a multiple of 16 or 32: SIMD tails */
		{ 8, 4, 72 },
	};
	static const char *const isas[] = { "scalar", "avx2", "avx512" };
	for (size_t ii = 0; ii < sizeof isas / sizeof isas[0]; ii++) {
		if (isa_force(isas[ii]) != 0) {
			tap_skip("%s: this CPU or build cannot run it", isas[ii]);
			continue;
		}
		for (int t = 0; t < 2; t++) {
			const uint32_t type = t ? ST_F16 : ST_F32;
			for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
				test_vs_ref(type, shapes[si].n_head, shapes[si].n_head_kv, shapes[si].hd);
			test_hand(type);
			test_prefix(type);
		}
		test_range();
	}
	isa_force(NULL);
	return tap_done();
}
