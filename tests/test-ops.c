/* test-ops.c: rmsnorm, rope, softmax, swiglu and add against straightforward
 * double-precision formulas, plus a hand-worked rope case that pins the pair
 * layout (adjacent pairs, llama's "normal" mode, not NeoX's rotate-half). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "tests/tap.h"

static float *fvec(int64_t n, float scale)
{
	float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
	if (!v)
		tap_bail("out of memory");
	for (int64_t i = 0; i < n; i++)
		v[i] = tap_frand() * scale;
	return v;
}

/* Largest |got - want| / max(|want|, floor) over n. */
static double max_rel(const float *got, const double *want, int64_t n, double floor)
{
	double worst = 0.0;
	for (int64_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), floor);
		if (!(d <= worst)) /* NaN counts as worst */
			worst = isnan(d) ? INFINITY : d;
	}
	return worst;
}

static void test_rmsnorm(void)
{
	static const int64_t sizes[] = { 1, 7, 64, 288, 4096, 8192 };
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		const int64_t n = sizes[si];
		float *x = fvec(n, 3.0f), *w = fvec(n, 2.0f), *out = fvec(n, 0.0f);
		double *want = malloc((size_t)n * sizeof *want);
		if (!want)
			tap_bail("out of memory");
		const float eps = 1e-5f;
		double ss = 0.0;
		for (int64_t i = 0; i < n; i++)
			ss += (double)x[i] * x[i];
		const double r = 1.0 / sqrt(ss / (double)n + eps);
		for (int64_t i = 0; i < n; i++)
			want[i] = x[i] * r * w[i];
		ops_rmsnorm(out, x, w, n, eps);
		double e = max_rel(out, want, n, 1e-30);
		tap_ok(e <= 1e-6, "rmsnorm n=%lld: max rel err %.3g <= 1e-6", (long long)n, e);
		ops_rmsnorm(x, x, w, n, eps); /* in place */
		tap_ok(memcmp(x, out, (size_t)n * sizeof *x) == 0,
		       "rmsnorm n=%lld in place equals out-of-place", (long long)n);
		free(want);
		free(out);
		free(w);
		free(x);
	}
	/* A tiny row: eps dominates, the output stays finite and scaled by it. */
	float x[4] = { 1e-6f, -1e-6f, 0.0f, 2e-6f }, w[4] = { 1, 1, 1, 1 }, o[4];
	ops_rmsnorm(o, x, w, 4, 1e-5f);
	const double want3 = 2e-6 / sqrt(6e-12 / 4 + 1e-5);
	tap_is_near(o[3], want3, want3 * 1e-6, "rmsnorm: eps bounds a near-zero row");
}

/* The rotation of the pair (x0, x1) by the exact angle, in double. */
static void rope_pair_ref(double x0, double x1, double ang, double *y0, double *y1)
{
	*y0 = x0 * cos(ang) - x1 * sin(ang);
	*y1 = x0 * sin(ang) + x1 * cos(ang);
}

static void test_rope_hand(void)
{
	/* head_dim 4, pos 1, base 10000: pair 0 turns by 1 rad, pair 1 by
	 * 10000^(-2/4) = 0.01 rad. Worked by hand with cos 1 = 0.5403023059,
	 * sin 1 = 0.8414709848, cos 0.01 = 0.9999500004, sin 0.01 = 0.0099998333:
	 *   y0 = 1 cos1 - 2 sin1         = -1.1426396637
	 *   y1 = 1 sin1 + 2 cos1         =  1.9220755966
	 *   y2 = 3 cos.01 - 4 sin.01     =  2.9598506680
	 *   y3 = 3 sin.01 + 4 cos.01     =  4.0297995015
	 * NeoX's rotate-half would pair (x0, x2) and (x1, x3) instead, giving
	 * y0 = 1 cos1 - 3 sin1 = -1.98 and fail here. */
	float x[4] = { 1, 2, 3, 4 };
	ops_rope(x, 1, 4, 1, 10000.0f, 1.0f, NULL);
	tap_is_near(x[0], -1.1426396637, 1e-6, "rope hand case: y0 (pair x0,x1 at 1 rad)");
	tap_is_near(x[1], 1.9220755966, 1e-6, "rope hand case: y1");
	tap_is_near(x[2], 2.9598506680, 1e-6, "rope hand case: y2 (pair x2,x3 at 0.01 rad)");
	tap_is_near(x[3], 4.0297995015, 1e-6, "rope hand case: y3");

	/* pos 0 is the identity. */
	float y[8] = { 1, -2, 3, -4, 5, -6, 7, -8 }, y0[8];
	memcpy(y0, y, sizeof y);
	ops_rope(y, 2, 4, 0, 10000.0f, 1.0f, NULL);
	tap_ok(memcmp(y, y0, sizeof y) == 0, "rope at pos 0 is the identity");
}

/* ops_rope against theta = pos * freq_scale * base^(-2i/d) / ff in double.
 * ggml's float recurrence (theta_{i+1} = theta_i * theta_scale) drifts by
 * about one float rounding per step, and the angle itself is a float, so the
 * bound on pair i is |x| * (angle * (i + 3) * 2^-23 + 1e-6). */
static void test_rope_formula(void)
{
	static const int64_t positions[] = { 0, 1, 2, 7, 100, 1000, 4095, 32767 };
	static const struct {
		int64_t n_heads, head_dim;
		float base, scale;
		int ff;
	} cases[] = {
		{ 8, 8, 10000.0f, 1.0f, 0 },	/* stories260K: 8 heads of 8 */
		{ 6, 48, 10000.0f, 1.0f, 0 },
		{ 4, 128, 10000.0f, 1.0f, 0 },	/* llama 2/ALIA head dim */
		{ 2, 128, 500000.0f, 1.0f, 1 }, /* llama 3: rope_freqs */
		{ 3, 256, 10000.0f, 0.25f, 0 }, /* linear scaling, two cos/sin chunks */
		{ 1, 130, 10000.0f, 1.0f, 1 },	/* a short last chunk */
	};
	for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
		const int64_t nh = cases[ci].n_heads, hd = cases[ci].head_dim, n = nh * hd;
		float *ff = NULL;
		if (cases[ci].ff) {
			ff = fvec(hd / 2, 1.0f);
			for (int64_t i = 0; i < hd / 2; i++)
				ff[i] = 1.0f + 40.0f * (float)i / (float)hd * fabsf(ff[i]);
		}
		int bad = 0;
		double worst = 0.0;
		for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
			const int64_t pos = positions[pi];
			float *x = fvec(n, 2.0f), *x0 = malloc((size_t)n * sizeof *x0);
			if (!x0)
				tap_bail("out of memory");
			memcpy(x0, x, (size_t)n * sizeof *x);
			ops_rope(x, nh, hd, pos, cases[ci].base, cases[ci].scale, ff);
			for (int64_t h = 0; h < nh; h++) {
				for (int64_t i = 0; i < hd / 2; i++) {
					const double ang = (double)pos * cases[ci].scale *
							   pow(cases[ci].base, -2.0 * (double)i / (double)hd) /
							   (ff ? ff[i] : 1.0);
					const float *a = x0 + h * hd + 2 * i, *g = x + h * hd + 2 * i;
					double w0, w1;
					rope_pair_ref(a[0], a[1], ang, &w0, &w1);
					const double mag = fabs(a[0]) + fabs(a[1]);
					const double tol = mag * (ang * (double)(i + 3) * 0x1p-23 + 1e-6);
					const double err = fmax(fabs(g[0] - w0), fabs(g[1] - w1));
					if (err > tol)
						bad++;
					if (mag > 0 && err / mag > worst)
						worst = err / mag;
				}
			}
			free(x0);
			free(x);
		}
		tap_ok(bad == 0, "rope %lldx%lld base %g scale %g%s at 8 positions up to 32767: "
				 "%d pairs off the bound (worst |err|/|x| %.3g)",
		       (long long)nh, (long long)hd, cases[ci].base, cases[ci].scale,
		       ff ? " freq_factors" : "", bad, worst);
		free(ff);
	}
}

/* expf(x - max) in float: the subtraction rounds to 2^-24 of |x - max|, which
 * the exponential turns into that much relative error (bounded here with a
 * factor 2 to spare); plus a few ulps for expf, the sum and the scale. */
static void test_softmax(void)
{
	static const int64_t sizes[] = { 1, 2, 5, 32, 300, 32000 };
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		const int64_t n = sizes[si];
		float *x = fvec(n, 20.0f), *x0 = malloc((size_t)n * sizeof *x0);
		if (!x0)
			tap_bail("out of memory");
		memcpy(x0, x, (size_t)n * sizeof *x);
		double m = -INFINITY, s = 0.0;
		for (int64_t i = 0; i < n; i++)
			m = fmax(m, x[i]);
		for (int64_t i = 0; i < n; i++)
			s += exp((double)x[i] - m);
		ops_softmax(x, n);
		double worst = 0.0, total = 0.0;
		for (int64_t i = 0; i < n; i++) {
			const double want = exp((double)x0[i] - m) / s;
			const double bound = 5e-7 + fabs((double)x0[i] - m) * 0x1p-23;
			const double r = fabs(x[i] - want) / want / bound;
			worst = r > worst || isnan(r) ? r : worst;
			total += x[i];
		}
		tap_ok(worst <= 1.0, "softmax n=%lld: worst error %.2f of its bound (5e-7 + |x-max| 2^-23 relative)",
		       (long long)n, worst);
		tap_is_near(total, 1.0, 1e-5, "softmax n=%lld sums to 1", (long long)n);
		free(x0);
		free(x);
	}
	float big[3] = { 1000.0f, 1001.0f, 1002.0f };
	ops_softmax(big, 3);
	tap_is_near(big[2], exp(0.0) / (exp(-2.0) + exp(-1.0) + 1.0), 1e-6,
		    "softmax of large values does not overflow (max subtracted)");
}

static void test_swiglu_add(void)
{
	const int64_t n = 5000;
	float *g = fvec(n, 12.0f), *u = fvec(n, 3.0f), *out = fvec(n, 0.0f);
	double *want = malloc((size_t)n * sizeof *want);
	if (!want)
		tap_bail("out of memory");
	for (int64_t i = 0; i < n; i++)
		want[i] = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
	ops_swiglu(out, g, u, n);
	double e = max_rel(out, want, n, 1e-30);
	tap_ok(e <= 1e-6, "swiglu n=%lld: max rel err %.3g <= 1e-6", (long long)n, e);
	ops_swiglu(g, g, u, n); /* out aliases gate */
	tap_ok(memcmp(g, out, (size_t)n * sizeof *g) == 0, "swiglu with out == gate equals out-of-place");

	float *y = fvec(n, 1.0f);
	for (int64_t i = 0; i < n; i++)
		want[i] = (double)y[i] + (double)u[i];
	ops_add(y, u, n);
	int bad = 0;
	for (int64_t i = 0; i < n; i++)
		bad += (double)y[i] != (double)(float)want[i]; /* one rounding: exact */
	tap_is_int(bad, 0, "add: y += x rounds each sum once");
	free(y);
	free(want);
	free(out);
	free(u);
	free(g);
}

int main(void)
{
	tap_srand(0x9e3779b97f4a7c15ull);
	test_rmsnorm();
	test_rope_hand();
	test_rope_formula();
	test_softmax();
	test_swiglu_add();
	return tap_done();
}
