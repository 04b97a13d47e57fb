/* synth.c: see synth.h. Weight rows are generated directly in their stored
 * form (random quants under fixed scales for the quantized types, random
 * floats for the float types) so a 40 GB model is written at disk speed,
 * not at the speed of quantizing. */
#include "tools/synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "engine/sampler.h"
#include "kernels/types.h"

/* uniform in [-a, a] from the engine's generator (engine/sampler.h) */
static inline float rng_sym(struct rng *r, float a)
{
	return a * ((float)(rng_next(r) >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

/* n random bytes */
static void fill_bytes(uint8_t *p, size_t n, struct rng *r)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v = rng_next(r);
		memcpy(p + i, &v, 8);
	}
	if (i < n) {
		uint64_t v = rng_next(r);
		memcpy(p + i, &v, n - i);
	}
}

/* The 12 bytes of Q4_K/Q5_K scales with every scale and minimum 32. */
static const uint8_t k4_scales_32[K_SCALE_SIZE] = { 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0, 0, 0, 0 };

/* One row of n weights of `type`, uniform in about [-a, a], into dst: random
 * quants under scales chosen so that the extreme quants reach about +-a. */
static void fill_row(uint32_t type, void *dst, uint64_t n, float a, struct rng *r)
{
	const struct st_type_info *ti = st_type_info(type);
	const uint64_t nb = n / ti->block_elems;
	uint8_t *p = dst;
	switch (type) {
	case ST_F32:
		for (uint64_t i = 0; i < n; i++)
			((float *)dst)[i] = rng_sym(r, a);
		return;
	case ST_F16:
		for (uint64_t i = 0; i < n; i++)
			((uint16_t *)dst)[i] = st_f32_to_fp16(rng_sym(r, a));
		return;
	case ST_BF16:
		for (uint64_t i = 0; i < n; i++)
			((uint16_t *)dst)[i] = st_f32_to_bf16(rng_sym(r, a));
		return;
	case ST_Q8_0: {
		struct block_q8_0 *b = dst;
		uint16_t d = st_f32_to_fp16(a / 127.0f);
		for (uint64_t i = 0; i < nb; i++) {
			b[i].d = d;
			fill_bytes((uint8_t *)b[i].qs, QK8_0, r);
			for (int j = 0; j < QK8_0; j++)
				if (b[i].qs[j] == -128)
					b[i].qs[j] = -127; /* ggml's quantizers never write -128 */
		}
		return;
	}
	default:
		break;
	}
	/* the other types: random bytes, then the scales (w = d * (q - z) with
	 * q's range and z its middle, or a minimum of -a) */
	fill_bytes(p, nb * ti->block_bytes, r);
	for (uint64_t i = 0; i < nb; i++) {
		uint8_t *blk = p + i * ti->block_bytes;
		switch (type) {
		case ST_Q4_0: ((struct block_q4_0 *)blk)->d = st_f32_to_fp16(a / 8.0f); break;
		case ST_Q4_1:
			((struct block_q4_1 *)blk)->d = st_f32_to_fp16(2 * a / 15.0f);
			((struct block_q4_1 *)blk)->m = st_f32_to_fp16(-a);
			break;
		case ST_Q5_0: ((struct block_q5_0 *)blk)->d = st_f32_to_fp16(a / 16.0f); break;
		case ST_Q5_1:
			((struct block_q5_1 *)blk)->d = st_f32_to_fp16(2 * a / 31.0f);
			((struct block_q5_1 *)blk)->m = st_f32_to_fp16(-a);
			break;
		case ST_IQ4_NL: ((struct block_iq4_nl *)blk)->d = st_f32_to_fp16(a / 127.0f); break;
		case ST_Q2_K: { /* scales 8, minimums 8: w = d (8 q - 12), q 0..3 */
			struct block_q2_K *k = (struct block_q2_K *)blk;
			memset(k->scales, 0x88, sizeof k->scales);
			k->d = st_f32_to_fp16(a / 12.0f);
			k->dmin = st_f32_to_fp16(1.5f * a / 12.0f);
			break;
		}
		case ST_Q3_K: { /* scales 48 - 32 = 16: w = 16 d q, q -4..3 */
			struct block_q3_K *k = (struct block_q3_K *)blk;
			memset(k->scales, 0x00, 8);
			memset(k->scales + 8, 0xff, 4);
			k->d = st_f32_to_fp16(a / 64.0f);
			break;
		}
		case ST_Q4_K: { /* scales and minimums 32: w = 32 d (q - 7.5) */
			struct block_q4_K *k = (struct block_q4_K *)blk;
			memcpy(k->scales, k4_scales_32, K_SCALE_SIZE);
			k->d = st_f32_to_fp16(a / 240.0f);
			k->dmin = st_f32_to_fp16(7.5f * a / 240.0f);
			break;
		}
		case ST_Q5_K: { /* w = 32 d (q - 15.5) */
			struct block_q5_K *k = (struct block_q5_K *)blk;
			memcpy(k->scales, k4_scales_32, K_SCALE_SIZE);
			k->d = st_f32_to_fp16(a / 496.0f);
			k->dmin = st_f32_to_fp16(15.5f * a / 496.0f);
			break;
		}
		case ST_Q6_K: { /* scales 16: w = 16 d (q - 32) */
			struct block_q6_K *k = (struct block_q6_K *)blk;
			memset(k->scales, 16, sizeof k->scales);
			k->d = st_f32_to_fp16(a / 512.0f);
			break;
		}
		case ST_IQ4_XS: { /* scales 48 - 32 = 16: w = 16 d value[q] */
			struct block_iq4_xs *k = (struct block_iq4_xs *)blk;
			k->scales_h = 0xffff;
			memset(k->scales_l, 0, sizeof k->scales_l);
			k->d = st_f32_to_fp16(a / (16.0f * 127.0f));
			break;
		}
		default:
			break;
		}
	}
}

struct tensor_plan {
	char name[64];
	uint32_t type;
	uint64_t ne[2];
	uint32_t n_dims;
	float amp; /* 0: a norm vector of ones */
};

static int add_plan(struct tensor_plan *t, size_t *n, const char *name, uint32_t type, uint64_t cols,
		    uint64_t rows, float amp)
{
	struct tensor_plan *p = &t[(*n)++];
	snprintf(p->name, sizeof p->name, "%s", name);
	p->type = type;
	p->ne[0] = cols;
	p->ne[1] = rows;
	p->n_dims = rows == 1 ? 1 : 2;
	p->amp = amp;
	return 0;
}

/* A small SentencePiece vocabulary of our own, so tests and demos need no
 * downloaded file: <unk> <s> </s>, the 256 byte tokens, printable ASCII, the
 * word-start marker with each letter, and common English pieces, 512 in all.
 * Scores favour longer pieces, as trained vocabularies do. */
#define SP "\xe2\x96\x81" /* U+2581, SentencePiece's word-start marker */

/* The three per-token arrays of n tokens, padded to pad_to (when larger) with
 * "<unused_N>" tokens of type UNUSED (5): they tokenize from no text and print
 * nothing, and give the model the embedding and head of a larger vocabulary
 * (ALIA-40b's 256,000) for benchmarks. */
static int write_token_arrays(struct gguf_writer *w, const char *const *tokens,
			      const float *scores, const int32_t *types, uint64_t n, uint64_t pad_to)
{
	uint64_t total = n > pad_to ? n : pad_to;
	const char **t = calloc(total, sizeof *t);
	float *sc = calloc(total, sizeof *sc);
	int32_t *ty = calloc(total, sizeof *ty);
	char *names = calloc(total - n + 1, 32); /* "<unused_" + 20 digits + ">" fits */
	int rc = -ENOMEM;
	if (!t || !sc || !ty || !names)
		goto out;
	memcpy(t, tokens, n * sizeof *t);
	memcpy(sc, scores, n * sizeof *sc);
	memcpy(ty, types, n * sizeof *ty);
	for (uint64_t i = n; i < total; i++) {
		char *name = names + (i - n) * 32;
		snprintf(name, 32, "<unused_%llu>", (unsigned long long)(i - n));
		t[i] = name;
		sc[i] = -1e4f;
		ty[i] = 5;
	}
	if ((rc = gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", t, total)) < 0 ||
	    (rc = gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_F32, sc, total)) < 0 ||
	    (rc = gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, ty, total)) < 0)
		goto out;
	rc = 0;
out:
	free(t);
	free(sc);
	free(ty);
	free(names);
	return rc;
}

static int write_builtin_vocab(struct gguf_writer *w, uint64_t pad_to, uint64_t *n_vocab,
			       struct st_err *err)
{
	static const char *const common[] = {
		"th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te",
		"of", "ed", "is", "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou",
		"io", "le", "ve", "co", "me", "de", "hi", "ri", "ro", "ic", "ne", "ea", "ra", "ce",
		SP "the", SP "and", SP "to", SP "of",
		SP "a", SP "in", SP "is", SP "it",
		SP "was", SP "he", SP "she", SP "they",
		SP "on", SP "with", SP "for", SP "that",
		SP "Once", SP "upon", SP "time", SP "day",
	};
	enum { N = 512 };
	char *tokens[N];
	float scores[N];
	int32_t types[N];
	char buf[N][16];
	uint32_t n = 0;
	int rc;

#define ADD(str, score, type)                                                    \
	do {                                                                     \
		snprintf(buf[n], sizeof buf[n], "%s", str);                     \
		bool dup_ = false;                                               \
		for (uint32_t k_ = 0; k_ < n && !dup_; k_++)                     \
			dup_ = strcmp(buf[k_], buf[n]) == 0;                     \
		if (!dup_) {                                                     \
			tokens[n] = buf[n];                                      \
			scores[n] = (score);                                     \
			types[n] = (type);                                       \
			n++;                                                     \
		}                                                                \
	} while (0)
	ADD("<unk>", 0.0f, 2);
	ADD("<s>", 0.0f, 3);
	ADD("</s>", 0.0f, 3);
	for (int b = 0; b < 256; b++) {
		char t[8];
		snprintf(t, sizeof t, "<0x%02X>", b);
		ADD(t, 0.0f, 6);
	}
	ADD("\xe2\x96\x81", -1.0f, 1);
	for (int ch = 33; ch < 127; ch++) {
		char t[2] = { (char)ch, 0 };
		ADD(t, -2.0f - (float)n / 1000.0f, 1);
	}
	for (int ch = 'a'; ch <= 'z' && n < N; ch++) {
		char t[8];
		snprintf(t, sizeof t, "\xe2\x96\x81%c", ch);
		ADD(t, -1.5f - (float)n / 1000.0f, 1);
	}
	for (int ch = 'A'; ch <= 'Z' && n < N; ch++) {
		char t[8];
		snprintf(t, sizeof t, "\xe2\x96\x81%c", ch);
		ADD(t, -1.5f - (float)n / 1000.0f, 1);
	}
	for (size_t i = 0; i < sizeof common / sizeof common[0] && n < N; i++)
		ADD(common[i], -1.0f - (float)i / 1000.0f, 1);
	/* two-letter pieces fill the rest */
	for (int a = 'a'; a <= 'z' && n < N; a++)
		for (int b = 'a'; b <= 'z' && n < N; b++) {
			char t[3] = { (char)a, (char)b, 0 };
			ADD(t, -3.0f - (float)n / 1000.0f, 1); /* duplicates are skipped */
		}
#undef ADD
	if ((rc = gguf_writer_add_str(w, "tokenizer.ggml.model", "llama")) < 0 ||
	    (rc = write_token_arrays(w, (const char *const *)tokens, scores, types, n, pad_to)) < 0 ||
	    (rc = gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0)) < 0 ||
	    (rc = gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1)) < 0 ||
	    (rc = gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2)) < 0 ||
	    (rc = gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true)) < 0)
		return st_errf(err, rc, "cannot write the built-in vocabulary");
	*n_vocab = n;
	return 0;
}

/* The three per-token arrays of v, padded to pad_to (write_token_arrays). */
static int copy_token_arrays(struct gguf_writer *w, const struct gguf *v, uint64_t pad_to,
			     struct st_err *err)
{
	const struct gguf_kv *tok = NULL, *sco = NULL, *typ = NULL;
	int rc = gguf_get_arr(v, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tok, err);
	if (rc < 0)
		return rc;
	uint64_t n = tok->arr_len;
	sco = gguf_find_kv(v, "tokenizer.ggml.scores");
	typ = gguf_find_kv(v, "tokenizer.ggml.token_type");
	if ((sco && (sco->type != GGUF_TYPE_ARRAY || sco->arr_type != GGUF_TYPE_F32 ||
		     sco->arr_len != n)) ||
	    (typ && (typ->type != GGUF_TYPE_ARRAY || typ->arr_type != GGUF_TYPE_I32 ||
		     typ->arr_len != n)))
		return st_errf(err, -EINVAL, "%s: tokenizer.ggml.scores (f32) or token_type (i32) is "
			       "not an array with one element per token", gguf_path(v));
	char **t = calloc(n ? n : 1, sizeof *t);
	float *sc = calloc(n ? n : 1, sizeof *sc);
	int32_t *ty = calloc(n ? n : 1, sizeof *ty);
	rc = -ENOMEM;
	if (!t || !sc || !ty)
		goto out;
	for (uint64_t i = 0; i < n; i++) {
		struct gguf_str str = gguf_arr_str(tok, i);
		if (!(t[i] = strndup(str.ptr, str.len)))
			goto out;
		sc[i] = sco ? (float)gguf_arr_f64(sco, i) : 0.0f;
		ty[i] = typ ? (int32_t)gguf_arr_i64(typ, i) : 1;
	}
	rc = write_token_arrays(w, (const char *const *)t, sc, ty, n, pad_to);
out:
	for (uint64_t i = 0; t && i < n; i++)
		free(t[i]);
	free(t);
	free(sc);
	free(ty);
	return rc < 0 ? st_errf(err, rc, "cannot write the padded vocabulary") : 0;
}

static int copy_vocab(struct gguf_writer *w, const char *vocab_path, uint64_t pad_to,
		      uint64_t *n_vocab, struct st_err *err)
{
	if (strcmp(vocab_path, "builtin") == 0)
		return write_builtin_vocab(w, pad_to, n_vocab, err);

	struct gguf *v;
	int rc = gguf_open(vocab_path, &v, err);
	if (rc < 0)
		return rc;
	const struct gguf_kv *tokens = NULL;
	rc = gguf_get_arr(v, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, err);
	if (rc < 0) {
		st_errf(err, rc, "%s: no tokenizer.ggml.tokens array: not a vocabulary", vocab_path);
		goto out;
	}
	*n_vocab = tokens->arr_len;
	bool pad = pad_to > tokens->arr_len;
	if (pad && (rc = copy_token_arrays(w, v, pad_to, err)) < 0)
		goto out;
	for (uint64_t i = 0; i < gguf_n_kv(v); i++) {
		const struct gguf_kv *kv = gguf_kv_at(v, i);
		if (pad && (gguf_str_eq(kv->key, "tokenizer.ggml.tokens") ||
			    gguf_str_eq(kv->key, "tokenizer.ggml.scores") ||
			    gguf_str_eq(kv->key, "tokenizer.ggml.token_type")))
			continue; /* written padded above */
		if (kv->key.len > 10 && memcmp(kv->key.ptr, "tokenizer.", 10) == 0) {
			rc = gguf_writer_copy_kv(w, kv);
			if (rc < 0) {
				st_errf(err, rc, "cannot copy '%.*s'", (int)kv->key.len, kv->key.ptr);
				goto out;
			}
		}
	}
	rc = 0;
out:
	gguf_close(v);
	return rc;
}

int synth_write(const char *out_path, const struct synth_params *p, struct st_err *err)
{
	struct recipe_scheme pure;
	const struct recipe_scheme *scheme = p->mix;
	if (!scheme) {
		if (recipe_scheme_parse(st_type_name(p->type), true, &pure) < 0 ||
		    (pure.type == ST_F32 && p->type != ST_F32))
			return st_errf(err, -EINVAL, "weight type %s cannot be synthesized (strata runs %s)",
				       st_type_name(p->type), st_supported_list());
		scheme = &pure;
	}
	struct gguf_writer *w = NULL;
	struct tensor_plan *plan = NULL;
	void *row = NULL;
	uint64_t n_vocab = 0;
	size_t n = 0;
	int rc;

	if (!p->n_embd || !p->n_layer || !p->n_head || !p->n_head_kv || !p->n_ff ||
	    p->n_embd % p->n_head || p->n_head % p->n_head_kv || (p->n_embd / p->n_head) % 2)
		return st_errf(err, -EINVAL, "inconsistent shape: n_embd %u, heads %u, kv heads %u",
			       p->n_embd, p->n_head, p->n_head_kv);

	uint32_t head_dim = p->n_embd / p->n_head, kv_dim = head_dim * p->n_head_kv;
	w = gguf_writer_new(GGUF_DEFAULT_ALIGNMENT);
	if (!w)
		return st_errf(err, -ENOMEM, "out of memory");
	/* llama.cpp's file_type numbering */
	const uint32_t ftype = scheme->ftype;
	if ((rc = gguf_writer_add_str(w, "general.architecture", "llama")) < 0 ||
	    (rc = gguf_writer_add_str(w, "general.name", p->name ? p->name : "strata-synth")) < 0 ||
	    (rc = gguf_writer_add_u32(w, "general.file_type", ftype)) < 0 ||
	    (rc = gguf_writer_add_u32(w, "llama.context_length", p->n_ctx ? p->n_ctx : 4096)) < 0 ||
	    (rc = gguf_writer_add_u32(w, "llama.embedding_length", p->n_embd)) < 0 ||
	    (rc = gguf_writer_add_u32(w, "llama.block_count", p->n_layer)) < 0 ||
	    (rc = gguf_writer_add_u32(w, "llama.feed_forward_length", p->n_ff)) < 0 ||
	    (rc = gguf_writer_add_u32(w, "llama.rope.dimension_count", head_dim)) < 0 ||
	    (rc = gguf_writer_add_u32(w, "llama.attention.head_count", p->n_head)) < 0 ||
	    (rc = gguf_writer_add_u32(w, "llama.attention.head_count_kv", p->n_head_kv)) < 0 ||
	    (rc = gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f)) < 0 ||
	    (rc = gguf_writer_add_f32(w, "llama.rope.freq_base", 10000.0f)) < 0) {
		st_errf(err, rc, "out of memory");
		goto out;
	}
	rc = copy_vocab(w, p->vocab_path, p->n_vocab, &n_vocab, err);
	if (rc < 0)
		goto out;
	if (p->n_vocab > n_vocab)
		n_vocab = p->n_vocab; /* copy_vocab padded the arrays to it */
	if ((rc = gguf_writer_add_u32(w, "llama.vocab_size", (uint32_t)n_vocab)) < 0) {
		st_errf(err, rc, "out of memory");
		goto out;
	}

	plan = calloc(3 + 9 * (size_t)p->n_layer, sizeof *plan);
	if (!plan) {
		rc = st_errf(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* Amplitudes keep activations O(1): about 1/sqrt(fan-in). M: a matrix,
	 * whose type the scheme decides. */
	float a_embd = 1.0f / sqrtf((float)p->n_embd), a_ff = 1.0f / sqrtf((float)p->n_ff);
	const uint32_t M = UINT32_MAX;
	add_plan(plan, &n, "token_embd.weight", M, p->n_embd, n_vocab, 1.0f);
	for (uint32_t l = 0; l < p->n_layer; l++) {
		char name[64];
#define T(suffix, type, cols, rows, amp)                                             \
	do {                                                                         \
		snprintf(name, sizeof name, "blk.%u." suffix ".weight", l);         \
		add_plan(plan, &n, name, type, cols, rows, amp);                     \
	} while (0)
		T("attn_norm", ST_F32, p->n_embd, 1, 0.0f);
		T("attn_q", M, p->n_embd, p->n_embd, a_embd);
		T("attn_k", M, p->n_embd, kv_dim, a_embd);
		T("attn_v", M, p->n_embd, kv_dim, a_embd);
		T("attn_output", M, p->n_embd, p->n_embd, a_embd);
		T("ffn_norm", ST_F32, p->n_embd, 1, 0.0f);
		T("ffn_gate", M, p->n_embd, p->n_ff, a_embd);
		T("ffn_up", M, p->n_embd, p->n_ff, a_embd);
		T("ffn_down", M, p->n_ff, p->n_embd, a_ff);
#undef T
	}
	add_plan(plan, &n, "output_norm.weight", ST_F32, p->n_embd, 1, 0.0f);
	if (!p->tie)
		add_plan(plan, &n, "output.weight", M, p->n_embd, n_vocab, a_embd);

	/* the matrices' types, as llama-quantize would choose them */
	const struct recipe_model rm = { .n_layer = p->n_layer, .n_head = p->n_head,
					 .n_head_kv = p->n_head_kv, .has_output = !p->tie };
	for (size_t i = 0; i < n; i++) {
		if (plan[i].type != M)
			continue;
		rc = recipe_tensor_type(scheme, &rm, plan[i].name, 2, plan[i].ne[0], ST_F32, NULL);
		if (rc < 0) {
			rc = st_errf(err, -EINVAL, "tensor '%s': rows of %llu weights are not whole %s blocks (%u)",
				plan[i].name, (unsigned long long)plan[i].ne[0], st_type_name(scheme->type),
				st_type_info(scheme->type)->block_elems);
			goto out;
		}
		plan[i].type = (uint32_t)rc;
	}

	uint64_t max_cols = p->n_embd > p->n_ff ? p->n_embd : p->n_ff;
	for (size_t i = 0; i < n; i++) {
		rc = gguf_writer_add_tensor(w, plan[i].name, plan[i].type, plan[i].n_dims, plan[i].ne);
		if (rc < 0) {
			st_errf(err, rc, "cannot add tensor '%s'", plan[i].name);
			goto out;
		}
	}
	rc = gguf_writer_begin(w, out_path, err);
	if (rc < 0)
		goto out;

	/* Rows are generated and written in batches of ~4 MiB. */
	size_t max_row = st_row_bytes(ST_F32, max_cols);
	size_t batch_rows = (4u << 20) / max_row + 1;
	row = malloc(batch_rows * max_row);
	if (!row) {
		rc = st_errf(err, -ENOMEM, "out of memory");
		goto out;
	}
	struct rng r;
	rng_seed(&r, p->seed);
	for (size_t i = 0; i < n; i++) {
		const struct tensor_plan *t = &plan[i];
		uint64_t rows = t->n_dims == 1 ? 1 : t->ne[1];
		size_t rb = st_row_bytes(t->type, t->ne[0]);
		for (uint64_t r0 = 0; r0 < rows; r0 += batch_rows) {
			uint64_t nr = rows - r0 < batch_rows ? rows - r0 : batch_rows;
			for (uint64_t k = 0; k < nr; k++) {
				uint8_t *dst = (uint8_t *)row + k * rb;
				if (t->amp == 0.0f) {
					for (uint64_t c = 0; c < t->ne[0]; c++)
						((float *)dst)[c] = 1.0f;
				} else {
					fill_row(t->type, dst, t->ne[0], t->amp, &r);
				}
			}
			rc = gguf_writer_write(w, row, nr * rb, err);
			if (rc < 0)
				goto out;
		}
	}
	rc = gguf_writer_finish(w, err);
out:
	free(row);
	free(plan);
	gguf_writer_free(w);
	return rc;
}
