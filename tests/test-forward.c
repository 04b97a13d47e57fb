/* test-forward.c: the forward pass against a plain double-precision
 * reference written here from the llama equations, on small synthetic models
 * of every weight type; and the pass against itself: a prompt in one batch
 * (GEMM) or one token per pass (GEMV), two sequences sharing a pass or each
 * alone, must agree. Needs nothing from ../shared. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "gguf/gguf.h"
#include "engine/model.h"
#include "kernels/quant.h"
#include "kernels/quant_ref.h"
#include "kernels/types.h"
#include "tests/tap.h"
#include "tools/synth.h"

/* Reference: everything in double, weights dequantized with the scalar
 * reference. Returns logits (n_vocab) of the last token. */
static double *ref_dequant(const struct model *m, const struct model_tensor *t)
{
	size_t n = (size_t)t->n_rows * t->n_cols;
	float *f = malloc(n * sizeof *f);
	double *d = malloc(n * sizeof *d);
	const uint8_t *src = (const uint8_t *)gguf_base(m->gguf) + t->offset;
	size_t rb = st_row_bytes(t->type, t->n_cols);
	for (uint64_t r = 0; r < t->n_rows; r++)
		quant_dequantize_row_ref(t->type, src + r * rb, f + r * t->n_cols, (int64_t)t->n_cols);
	for (size_t i = 0; i < n; i++)
		d[i] = f[i];
	free(f);
	return d;
}

static void ref_matvec(double *out, const double *w, const double *x, uint64_t rows, uint64_t cols)
{
	for (uint64_t r = 0; r < rows; r++) {
		double s = 0.0;
		for (uint64_t c = 0; c < cols; c++)
			s += w[r * cols + c] * x[c];
		out[r] = s;
	}
}

static void ref_rmsnorm(double *out, const double *x, const double *w, uint64_t n, double eps)
{
	double ss = 0.0;
	for (uint64_t i = 0; i < n; i++)
		ss += x[i] * x[i];
	double scale = 1.0 / sqrt(ss / (double)n + eps);
	for (uint64_t i = 0; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

static void ref_rope(double *x, uint32_t n_heads, uint32_t hd, uint32_t pos, double base)
{
	for (uint32_t h = 0; h < n_heads; h++)
		for (uint32_t i = 0; i < hd; i += 2) {
			double theta = pos * pow(base, -(double)i / hd);
			double c = cos(theta), s = sin(theta);
			double *p = x + h * hd + i;
			double a = p[0], b = p[1];
			p[0] = a * c - b * s;
			p[1] = a * s + b * c;
		}
}

static double *ref_forward(const struct model *m, const int32_t *toks, uint32_t n)
{
	const struct model_hparams *hp = &m->hp;
	uint32_t E = hp->n_embd, hd = hp->head_dim, qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
	uint32_t F = hp->n_ff, L = hp->n_layer, V = hp->n_vocab;
	double *emb = ref_dequant(m, &m->token_embd);
	double *kc = calloc((size_t)L * n * kvd, sizeof(double));
	double *vc = calloc((size_t)L * n * kvd, sizeof(double));
	double *x = malloc(E * sizeof(double)), *xn = malloc(E * sizeof(double));
	double *q = malloc(qd * sizeof(double)), *att = malloc(qd * sizeof(double));
	double *g = malloc(F * sizeof(double)), *u = malloc(F * sizeof(double));
	double *o = malloc(E * sizeof(double)), *sc = malloc(n * sizeof(double));
	double *logits = malloc(V * sizeof(double));

	for (uint32_t t = 0; t < n; t++) {
		memcpy(x, emb + (size_t)toks[t] * E, E * sizeof(double));
		for (uint32_t l = 0; l < L; l++) {
			const struct model_layer *ly = &m->layers[l];
			double *an = ref_dequant(m, &ly->attn_norm), *wq = ref_dequant(m, &ly->wq);
			double *wk = ref_dequant(m, &ly->wk), *wv = ref_dequant(m, &ly->wv);
			double *wo = ref_dequant(m, &ly->wo), *fn = ref_dequant(m, &ly->ffn_norm);
			double *wg = ref_dequant(m, &ly->w_gate), *wu = ref_dequant(m, &ly->w_up);
			double *wd = ref_dequant(m, &ly->w_down);
			double *k = kc + ((size_t)l * n + t) * kvd, *v = vc + ((size_t)l * n + t) * kvd;

			ref_rmsnorm(xn, x, an, E, hp->rms_eps);
			ref_matvec(q, wq, xn, qd, E);
			ref_matvec(k, wk, xn, kvd, E);
			ref_matvec(v, wv, xn, kvd, E);
			ref_rope(q, hp->n_head, hd, t, hp->rope_base);
			ref_rope(k, hp->n_head_kv, hd, t, hp->rope_base);
			for (uint32_t h = 0; h < hp->n_head; h++) {
				uint32_t kh = h / (hp->n_head / hp->n_head_kv);
				double mx = -INFINITY, sum = 0.0;
				for (uint32_t p = 0; p <= t; p++) {
					const double *kp = kc + ((size_t)l * n + p) * kvd + kh * hd;
					double s = 0.0;
					for (uint32_t i = 0; i < hd; i++)
						s += q[h * hd + i] * kp[i];
					sc[p] = s / sqrt((double)hd);
					mx = fmax(mx, sc[p]);
				}
				for (uint32_t p = 0; p <= t; p++) {
					sc[p] = exp(sc[p] - mx);
					sum += sc[p];
				}
				for (uint32_t i = 0; i < hd; i++) {
					double a = 0.0;
					for (uint32_t p = 0; p <= t; p++)
						a += sc[p] / sum * vc[((size_t)l * n + p) * kvd + kh * hd + i];
					att[h * hd + i] = a;
				}
			}
			ref_matvec(o, wo, att, E, qd);
			for (uint32_t i = 0; i < E; i++)
				x[i] += o[i];
			ref_rmsnorm(xn, x, fn, E, hp->rms_eps);
			ref_matvec(g, wg, xn, F, E);
			ref_matvec(u, wu, xn, F, E);
			for (uint32_t i = 0; i < F; i++)
				g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
			ref_matvec(o, wd, g, E, F);
			for (uint32_t i = 0; i < E; i++)
				x[i] += o[i];
			free(an); free(wq); free(wk); free(wv); free(wo); free(fn); free(wg); free(wu); free(wd);
		}
	}
	double *on = ref_dequant(m, &m->output_norm), *wout = ref_dequant(m, &m->output);
	ref_rmsnorm(xn, x, on, E, hp->rms_eps);
	ref_matvec(logits, wout, xn, V, E);
	free(on); free(wout); free(emb); free(kc); free(vc); free(x); free(xn); free(q); free(att);
	free(g); free(u); free(o); free(sc);
	return logits;
}

/* Run the prompt through the engine with `batch` tokens per pass; logits of the last token. */
static int engine_logits(struct engine *e, const int32_t *toks, uint32_t n, uint32_t batch,
			 uint32_t slot, float *logits)
{
	struct st_err err = { "" };
	struct batch b;
	int rc = batch_init(&b, batch, 1);
	engine_slot_reset(e, slot);
	for (uint32_t done = 0; rc == 0 && done < n;) {
		uint32_t k = n - done < batch ? n - done : batch;
		batch_clear(&b);
		for (uint32_t i = 0; i < k; i++)
			batch_add(&b, toks[done + i], done + i, slot, done + i == n - 1);
		rc = engine_decode(e, &b, logits, &err);
		if (rc < 0)
			tap_diag("engine_decode: %s", err.msg);
		done += k;
	}
	batch_free(&b);
	return rc;
}

static double max_abs_diff_f(const float *a, const float *b, uint32_t n)
{
	double w = 0.0;
	for (uint32_t i = 0; i < n; i++)
		w = fmax(w, fabs((double)a[i] - (double)b[i]));
	return w;
}

/* Tolerances relative to the largest |logit|, with the reason:
 * float weights: only f32 rounding and summation order differ (seen: 2e-7
 * relative; allowed 1e-5); q8_0/q4_0: the decode path quantizes activations
 * to Q8_0 as ggml does, about 0.4% per element, compounding over 2 layers
 * (seen: 0.7%; allowed 1.5%). */
static double tolerance(uint32_t type)
{
	return type == ST_Q8_0 || type == ST_Q4_0 ? 1.5e-2 : 1e-5;
}

int main(void)
{
	const uint32_t types[] = { ST_F32, ST_F16, ST_BF16, ST_Q8_0, ST_Q4_0 };
	const int32_t prompt[12] = { 1, 300, 301, 302, 260, 261, 400, 401, 402, 403, 270, 271 };
	const int32_t other[9] = { 1, 410, 411, 412, 300, 280, 281, 282, 283 };
	char path[4096];

	for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
		uint32_t type = types[ti];
		const char *tn = st_type_name(type);
		struct st_err err = { "" };
		snprintf(path, sizeof path, "%s/synth-%s.gguf", tap_tmpdir(), tn);
		struct synth_params sp = { .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
					   .n_ff = 128, .n_ctx = 64, .type = type,
					   .vocab_path = "builtin", .seed = 7 + (uint64_t)ti };
		if (!tap_ok(synth_write(path, &sp, &err) == 0, "%s: synthesize a 2-layer model", tn)) {
			tap_diag("%s", err.msg);
			continue;
		}
		struct model *m = NULL;
		if (!tap_ok(model_open(path, &m, &err) == 0, "%s: the model reads back", tn)) {
			tap_diag("%s", err.msg);
			continue;
		}
		tap_ok(m->hp.n_layer == 2 && m->hp.n_embd == 64 && m->hp.n_head == 4 &&
			       m->hp.n_head_kv == 2 && m->hp.n_ff == 128 && m->hp.n_vocab == 512 &&
			       m->layers[1].w_down.type == type && m->output_norm.type == ST_F32,
		       "%s: shapes and types round-trip", tn);

		struct engine_config cfg;
		struct engine *e = NULL;
		engine_config_default(&cfg);
		cfg.model_path = path;
		cfg.kv_type = ST_F32;
		cfg.n_slots = 2;
		cfg.threads = 2;
		if (!tap_ok(engine_open(&cfg, &e, &err) == 0, "%s: engine opens", tn)) {
			tap_diag("%s", err.msg);
			model_close(m);
			continue;
		}
		uint32_t V = m->hp.n_vocab;
		float *batched = malloc(V * sizeof(float)), *single = malloc(V * sizeof(float));
		float *two = malloc(2 * V * sizeof(float)), *alone = malloc(V * sizeof(float));
		double *ref = ref_forward(m, prompt, 12);
		double scale = 0.0;
		for (uint32_t i = 0; i < V; i++)
			scale = fmax(scale, fabs(ref[i]));
		double tol = tolerance(type) * scale;

		int rc = engine_logits(e, prompt, 12, 64, 0, batched);
		double worst = 0.0;
		for (uint32_t i = 0; rc == 0 && i < V; i++)
			worst = fmax(worst, fabs(batched[i] - ref[i]));
		tap_ok(rc == 0 && worst <= tol, "%s: 12-token prompt in one pass matches the reference "
		       "(off by %.3g, tolerance %.3g)", tn, worst, tol);

		rc = engine_logits(e, prompt, 12, 1, 0, single);
		worst = 0.0;
		for (uint32_t i = 0; rc == 0 && i < V; i++)
			worst = fmax(worst, fabs(single[i] - ref[i]));
		tap_ok(rc == 0 && worst <= tol, "%s: the same prompt one token per pass matches the "
		       "reference (off by %.3g)", tn, worst);

		/* continuous batching: sequence B's prompt and sequence A's next
		 * token share one pass; each must equal its result alone */
		rc = engine_logits(e, prompt, 11, 64, 0, alone);
		rc |= engine_logits(e, other, 9, 64, 1, single);	/* B alone, as a baseline */
		engine_slot_reset(e, 1);
		struct batch b;
		rc |= batch_init(&b, 10, 2);
		batch_add(&b, prompt[11], 11, 0, true);
		for (uint32_t i = 0; i < 9; i++)
			batch_add(&b, other[i], i, 1, i == 8);
		rc |= engine_decode(e, &b, two, &err);
		batch_free(&b);
		double da = max_abs_diff_f(two, batched, V), db = max_abs_diff_f(two + V, single, V);
		tap_ok(rc == 0 && da <= tol && db <= tol,
		       "%s: two sequences sharing a pass get their own results (off by %.3g and %.3g)",
		       tn, da, db);

		free(ref);
		free(batched);
		free(single);
		free(two);
		free(alone);
		engine_close(e);
		model_close(m);
	}
	return tap_done();
}
