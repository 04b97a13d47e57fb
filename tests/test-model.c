/* test-model.c: model_open's checks. Small llama files written here with one
 * thing wrong each (a missing key, a wrong shape, a weight type strata does
 * not run, another architecture, inconsistent heads) must fail with the
 * documented code and a message naming the file, the key or tensor, and the
 * reason; the unbroken file must open. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "engine/model.h"
#include "kernels/types.h"
#include "tests/tap.h"

enum fault {
	OK,
	NO_BLOCK_COUNT,
	NO_EPS,
	ARCH_GPT2,
	HEAD_KV_3,
	Q_WRONG_SHAPE,
	NO_FFN_UP,
	DOWN_IQ2_XXS,
	NORM_F16,
	YARN,
};

#define E 64
#define F 128
#define V 32
#define L 2

/* Write a 2-layer llama model with `fault`; returns 0 on success. */
static int write_model(const char *path, enum fault fault)
{
	struct gguf_writer *w = gguf_writer_new(0);
	struct st_err err = { "" };
	char name[64];
	if (!w)
		return -ENOMEM;
	gguf_writer_add_str(w, "general.architecture", fault == ARCH_GPT2 ? "gpt2" : "llama");
	gguf_writer_add_u32(w, "llama.context_length", 128);
	gguf_writer_add_u32(w, "llama.embedding_length", E);
	if (fault != NO_BLOCK_COUNT)
		gguf_writer_add_u32(w, "llama.block_count", L);
	gguf_writer_add_u32(w, "llama.feed_forward_length", F);
	gguf_writer_add_u32(w, "llama.attention.head_count", 4);
	gguf_writer_add_u32(w, "llama.attention.head_count_kv", fault == HEAD_KV_3 ? 3 : 2);
	if (fault != NO_EPS)
		gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	if (fault == YARN)
		gguf_writer_add_str(w, "llama.rope.scaling.type", "yarn");

	struct { char name[64]; uint32_t type; uint64_t ne[2]; uint32_t nd; } t[3 + 9 * L];
	size_t n = 0;
#define ADD(nm, ty, c, r)                                                         \
	do {                                                                      \
		snprintf(t[n].name, sizeof t[n].name, "%s", nm);                 \
		t[n].type = (ty);                                                 \
		t[n].ne[0] = (c);                                                 \
		t[n].ne[1] = (r);                                                 \
		t[n].nd = (r) == 1 ? 1 : 2;                                       \
		n++;                                                              \
	} while (0)
	ADD("token_embd.weight", ST_F32, E, V);
	for (int l = 0; l < L; l++) {
		snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
		ADD(name, ST_F32, E, 1);
		snprintf(name, sizeof name, "blk.%d.attn_q.weight", l);
		ADD(name, ST_F32, E, fault == Q_WRONG_SHAPE && l == 1 ? E / 2 : E);
		snprintf(name, sizeof name, "blk.%d.attn_k.weight", l);
		ADD(name, ST_F32, E, E / 2);
		snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
		ADD(name, ST_F32, E, E / 2);
		snprintf(name, sizeof name, "blk.%d.attn_output.weight", l);
		ADD(name, ST_F32, E, E);
		snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
		ADD(name, fault == NORM_F16 && l == 0 ? ST_F16 : ST_F32, E, 1);
		snprintf(name, sizeof name, "blk.%d.ffn_gate.weight", l);
		ADD(name, ST_F32, E, F);
		if (!(fault == NO_FFN_UP && l == 1)) {
			snprintf(name, sizeof name, "blk.%d.ffn_up.weight", l);
			ADD(name, ST_F32, E, F);
		}
		snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
		/* iq2_xxs blocks hold 256 weights: make the row 256 wide for it */
		if (fault == DOWN_IQ2_XXS && l == 1)
			ADD(name, ST_IQ2_XXS, 256, E);
		else
			ADD(name, ST_F32, F, E);
	}
	ADD("output_norm.weight", ST_F32, E, 1);
#undef ADD
	int rc = 0;
	for (size_t i = 0; i < n && rc >= 0; i++)
		rc = gguf_writer_add_tensor(w, t[i].name, t[i].type, t[i].nd, t[i].ne);
	if (rc >= 0)
		rc = gguf_writer_begin(w, path, &err);
	static char zeros[1 << 16];
	for (size_t i = 0; i < n && rc >= 0; i++) {
		size_t bytes = st_row_bytes(t[i].type, t[i].ne[0]) * (t[i].nd == 2 ? t[i].ne[1] : 1);
		for (size_t done = 0; done < bytes && rc >= 0; done += sizeof zeros)
			rc = gguf_writer_write(w, zeros, bytes - done < sizeof zeros ? bytes - done : sizeof zeros,
					       &err);
	}
	if (rc >= 0)
		rc = gguf_writer_finish(w, &err);
	if (rc < 0)
		tap_diag("writer: %s", err.msg);
	gguf_writer_free(w);
	return rc;
}

int main(void)
{
	static const struct {
		enum fault fault;
		const char *what;
		int code;
		const char *words[2]; /* the message must contain both */
	} cases[] = {
		{ NO_BLOCK_COUNT, "no llama.block_count", -ENOENT, { "llama.block_count", "missing" } },
		{ NO_EPS, "no rms epsilon", -ENOENT, { "layer_norm_rms_epsilon", "missing" } },
		{ ARCH_GPT2, "architecture gpt2", -ENOTSUP, { "gpt2", "not supported" } },
		{ HEAD_KV_3, "3 kv heads for 4 heads", -EINVAL, { "head_count_kv", "divide" } },
		{ Q_WRONG_SHAPE, "attn_q of the wrong shape", -EINVAL, { "blk.1.attn_q.weight", "shape" } },
		{ NO_FFN_UP, "a layer without ffn_up", -ENOENT, { "blk.1.ffn_up.weight", "missing" } },
		{ DOWN_IQ2_XXS, "an iq2_xxs matrix", -ENOTSUP, { "iq2_xxs", "blk.1.ffn_down.weight" } },
		{ NORM_F16, "an f16 norm vector", -ENOTSUP, { "blk.0.ffn_norm.weight", "f32" } },
		{ YARN, "yarn rope scaling", -ENOTSUP, { "yarn", "not supported" } },
	};
	char path[4096];
	struct st_err err = { "" };
	struct model *m = NULL;

	snprintf(path, sizeof path, "%s/ok.gguf", tap_tmpdir());
	if (write_model(path, OK) < 0)
		tap_bail("cannot write the test model");
	int rc = model_open(path, &m, &err);
	tap_ok(rc == 0, "the unbroken model opens (%s)", rc ? err.msg : "ok");
	if (m) {
		tap_ok(m->hp.n_layer == L && m->hp.head_dim == E / 4 && m->hp.n_head_kv == 2 &&
			       m->tied_output && m->hp.n_vocab == V && m->hp.rope_base == 10000.0f,
		       "hyperparameters: defaults filled in, output tied to token_embd");
		tap_is_int((int64_t)model_layer_bytes(m, 0),
			   (int64_t)(4 * (2 * E + E * E * 2 + E * E + 3 * E * F)), "layer bytes add up");
	}
	model_close(m);

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(path, sizeof path, "%s/bad-%zu.gguf", tap_tmpdir(), i);
		if (write_model(path, cases[i].fault) < 0) {
			tap_ok(0, "%s: write the file", cases[i].what);
			continue;
		}
		m = NULL;
		err.msg[0] = '\0';
		rc = model_open(path, &m, &err);
		bool named = strstr(err.msg, path) && strstr(err.msg, cases[i].words[0]) &&
			     strstr(err.msg, cases[i].words[1]);
		tap_ok(rc == cases[i].code && !m && named, "%s: %s", cases[i].what, err.msg);
		if (rc != cases[i].code)
			tap_diag("code %d, want %d", rc, cases[i].code);
		model_close(m);
	}
	snprintf(path, sizeof path, "%s/none.gguf", tap_tmpdir());
	rc = model_open(path, &m, &err);
	tap_ok(rc == -ENOENT && strstr(err.msg, "none.gguf"), "a missing file: %s", err.msg);
	return tap_done();
}
