/* model.c: reads and checks the llama hyperparameters and tensor table
 * (see model.h). Everything a forward pass relies on is verified here once,
 * so the layer loop can trust shapes and types without checking again. */
#include "engine/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "kernels/types.h"

static int is_matrix_type_supported(uint32_t type)
{
	const struct st_type_info *ti = st_type_info(type);
	return ti && ti->supported;
}

/* Look up a tensor and check it is n_rows x n_cols (n_rows 1 for a vector). */
static int find_tensor(struct model *m, const char *name, uint64_t n_cols, uint64_t n_rows,
		       bool vector, bool required, struct model_tensor *out, struct st_err *err)
{
	const struct gguf_tensor *t = gguf_find_tensor(m->gguf, name);
	if (!t) {
		if (!required)
			return 0;
		return st_errf(err, -ENOENT, "%s: required tensor '%s' is missing", m->path, name);
	}
	/* the type first: a model of an unsupported type fails on that, whatever
	 * its shapes; described (model_open_any), it is counted and kept */
	int type_rc = 0;
	if (vector && t->type != ST_F32)
		type_rc = st_errf(err, -ENOTSUP, "%s: tensor '%s' has type %s, which strata does not run "
				  "(norm and frequency vectors must be f32)", m->path, name,
				  st_type_name(t->type));
	else if (!vector && !is_matrix_type_supported(t->type))
		type_rc = st_errf(err, -ENOTSUP, "%s: tensor '%s' has type %s (ggml type %u), which strata "
				  "does not run (weight types strata runs: %s)", m->path, name,
				  st_type_name(t->type), t->type, st_supported_list());
	if (type_rc < 0 && !m->any_type)
		return type_rc;
	if (type_rc < 0 && m->n_unsupported++ == 0)
		snprintf(m->unsupported, sizeof m->unsupported, "%s", err ? err->msg : "");
	uint64_t rows = t->n_dims >= 2 ? t->ne[1] : 1;
	bool shape_ok = t->ne[0] == n_cols && rows == n_rows && t->ne[2] == 1 && t->ne[3] == 1 &&
			(vector ? t->n_dims == 1 : t->n_dims <= 2);
	if (!shape_ok)
		return st_errf(err, -EINVAL,
			       "%s: tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]",
			       m->path, name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
			       (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
			       (unsigned long long)n_cols, (unsigned long long)n_rows);
	snprintf(out->name, sizeof out->name, "%s", name);
	out->type = t->type;
	out->n_cols = n_cols;
	out->n_rows = n_rows;
	out->offset = t->offset;
	out->size = t->size;
	return 1;
}

static int read_hparams(struct model *m, struct st_err *err)
{
	struct model_hparams *hp = &m->hp;
	struct gguf *g = m->gguf;
	struct gguf_str arch;
	int rc;

	rc = gguf_get_str(g, "general.architecture", &arch, err);
	if (rc == -ENOENT)
		return st_errf(err, rc, "%s: required key 'general.architecture' is missing", m->path);
	if (rc < 0)
		return st_err_prefix(err, rc, "%s", m->path);
	if (!gguf_str_eq(arch, "llama"))
		return st_errf(err, -ENOTSUP, "%s: architecture '%.*s' is not supported (strata runs 'llama')",
			       m->path, (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);

	static const struct {
		const char *key;
		size_t off;
	} required[] = {
		{ "llama.embedding_length", offsetof(struct model_hparams, n_embd) },
		{ "llama.block_count", offsetof(struct model_hparams, n_layer) },
		{ "llama.attention.head_count", offsetof(struct model_hparams, n_head) },
		{ "llama.feed_forward_length", offsetof(struct model_hparams, n_ff) },
		{ "llama.context_length", offsetof(struct model_hparams, n_ctx_train) },
	};
	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
		uint32_t *dst = (uint32_t *)((char *)hp + required[i].off);
		rc = gguf_get_u32(g, required[i].key, dst, err);
		if (rc == -ENOENT)
			return st_errf(err, rc, "%s: required key '%s' is missing", m->path,
				       required[i].key);
		if (rc < 0)
			return st_err_prefix(err, rc, "%s", m->path);
		if (*dst == 0)
			return st_errf(err, -EINVAL, "%s: key '%s' is 0", m->path, required[i].key);
	}

	hp->n_head_kv = hp->n_head;
	rc = gguf_get_u32(g, "llama.attention.head_count_kv", &hp->n_head_kv, err);
	if (rc < 0 && rc != -ENOENT)
		return st_err_prefix(err, rc, "%s", m->path);
	if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0)
		return st_errf(err, -EINVAL, "%s: key 'llama.attention.head_count_kv' = %u does not divide "
			       "the head count %u", m->path, hp->n_head_kv, hp->n_head);
	if (hp->n_embd % hp->n_head != 0)
		return st_errf(err, -EINVAL, "%s: embedding length %u is not a multiple of the head count %u",
			       m->path, hp->n_embd, hp->n_head);
	hp->head_dim = hp->n_embd / hp->n_head;
	rc = gguf_get_u32(g, "llama.attention.key_length", &hp->head_dim, err);
	if (rc < 0 && rc != -ENOENT)
		return st_err_prefix(err, rc, "%s", m->path);
	uint32_t v_len = hp->head_dim;
	rc = gguf_get_u32(g, "llama.attention.value_length", &v_len, err);
	if (rc < 0 && rc != -ENOENT)
		return st_err_prefix(err, rc, "%s", m->path);
	if (hp->head_dim == 0 || hp->head_dim % 2 != 0 || v_len != hp->head_dim)
		return st_errf(err, -EINVAL, "%s: head size %u (value %u) is not supported: it must be even "
			       "and keys and values must agree", m->path, hp->head_dim, v_len);

	rc = gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &hp->rms_eps, err);
	if (rc == -ENOENT)
		return st_errf(err, rc, "%s: required key 'llama.attention.layer_norm_rms_epsilon' is missing",
			       m->path);
	if (rc < 0)
		return st_err_prefix(err, rc, "%s", m->path);
	if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
		return st_errf(err, -EINVAL, "%s: key 'llama.attention.layer_norm_rms_epsilon' = %g is out "
			       "of range", m->path, (double)hp->rms_eps);

	hp->rope_base = 10000.0f;
	rc = gguf_get_f32(g, "llama.rope.freq_base", &hp->rope_base, err);
	if (rc < 0 && rc != -ENOENT)
		return st_err_prefix(err, rc, "%s", m->path);
	if (!(hp->rope_base > 1.0f))
		return st_errf(err, -EINVAL, "%s: key 'llama.rope.freq_base' = %g is out of range", m->path,
			       (double)hp->rope_base);

	hp->rope_scale = 1.0f;
	struct gguf_str scaling = { "none", 4 };
	rc = gguf_get_str(g, "llama.rope.scaling.type", &scaling, err);
	if (rc < 0 && rc != -ENOENT)
		return st_err_prefix(err, rc, "%s", m->path);
	float factor = 1.0f;
	rc = gguf_get_f32(g, "llama.rope.scaling.factor", &factor, err);
	if (rc < 0 && rc != -ENOENT)
		return st_err_prefix(err, rc, "%s", m->path);
	if (gguf_str_eq(scaling, "linear")) {
		if (!(factor > 0.0f))
			return st_errf(err, -EINVAL, "%s: key 'llama.rope.scaling.factor' = %g is out of range",
				       m->path, (double)factor);
		hp->rope_scale = 1.0f / factor;
	} else if (!gguf_str_eq(scaling, "none") && !gguf_str_eq(scaling, "llama3")) {
		/* llama3 scaling is carried by the rope_freqs tensor; yarn is not implemented */
		return st_errf(err, -ENOTSUP, "%s: rope scaling '%.*s' is not supported (none, linear, llama3)",
			       m->path, (int)(scaling.len > 32 ? 32 : scaling.len), scaling.ptr);
	}

	/* The vocabulary size comes from the embedding matrix; the tokenizer is
	 * checked against it by the engine. */
	const struct gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
	if (!emb)
		return st_errf(err, -ENOENT, "%s: required tensor 'token_embd.weight' is missing", m->path);
	if (emb->n_dims != 2 || emb->ne[1] == 0 || emb->ne[1] > INT32_MAX)
		return st_errf(err, -EINVAL, "%s: tensor 'token_embd.weight' must be a matrix [n_embd, n_vocab]",
			       m->path);
	hp->n_vocab = (uint32_t)emb->ne[1];
	return 0;
}

static int read_tensors(struct model *m, struct st_err *err)
{
	const struct model_hparams *hp = &m->hp;
	uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim;
	uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
	char name[64];
	int rc;

	m->layers = calloc(hp->n_layer, sizeof *m->layers);
	if (!m->layers)
		return st_errf(err, -ENOMEM, "%s: out of memory for %u layers", m->path, hp->n_layer);

	rc = find_tensor(m, "token_embd.weight", hp->n_embd, hp->n_vocab, false, true, &m->token_embd, err);
	if (rc < 0)
		return rc;
	rc = find_tensor(m, "output_norm.weight", hp->n_embd, 1, true, true, &m->output_norm, err);
	if (rc < 0)
		return rc;
	rc = find_tensor(m, "output.weight", hp->n_embd, hp->n_vocab, false, false, &m->output, err);
	if (rc < 0)
		return rc;
	m->tied_output = rc == 0;
	if (m->tied_output)
		m->output = m->token_embd;
	rc = find_tensor(m, "rope_freqs.weight", hp->head_dim / 2, 1, true, false, &m->rope_freqs, err);
	if (rc < 0)
		return rc;
	m->has_rope_freqs = rc == 1;

	for (uint32_t l = 0; l < hp->n_layer; l++) {
		struct model_layer *ly = &m->layers[l];
		const struct {
			const char *suffix;
			uint64_t cols, rows;
			bool vector;
			struct model_tensor *dst;
		} want[] = {
			{ "attn_norm", hp->n_embd, 1, true, &ly->attn_norm },
			{ "attn_q", hp->n_embd, q_dim, false, &ly->wq },
			{ "attn_k", hp->n_embd, kv_dim, false, &ly->wk },
			{ "attn_v", hp->n_embd, kv_dim, false, &ly->wv },
			{ "attn_output", q_dim, hp->n_embd, false, &ly->wo },
			{ "ffn_norm", hp->n_embd, 1, true, &ly->ffn_norm },
			{ "ffn_gate", hp->n_embd, hp->n_ff, false, &ly->w_gate },
			{ "ffn_up", hp->n_embd, hp->n_ff, false, &ly->w_up },
			{ "ffn_down", hp->n_ff, hp->n_embd, false, &ly->w_down },
		};
		for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
			snprintf(name, sizeof name, "blk.%u.%s.weight", l, want[i].suffix);
			rc = find_tensor(m, name, want[i].cols, want[i].rows, want[i].vector, true,
					 want[i].dst, err);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* Sum the bytes the forward pass reads and find the commonest matrix type. */
static void summarize(struct model *m)
{
	uint64_t by_type[ST_TYPE_COUNT] = { 0 };
	uint64_t total = m->token_embd.size + m->output_norm.size;
	if (!m->tied_output)
		total += m->output.size;
	by_type[m->output.type] += m->output.size;
	for (uint32_t l = 0; l < m->hp.n_layer; l++) {
		const struct model_layer *ly = &m->layers[l];
		const struct model_tensor *mats[] = { &ly->wq, &ly->wk, &ly->wv, &ly->wo,
						      &ly->w_gate, &ly->w_up, &ly->w_down };
		total += model_layer_bytes(m, l);
		for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
			by_type[mats[i]->type] += mats[i]->size;
	}
	m->weight_bytes = total;
	m->main_type = ST_F32;
	for (uint32_t t = 0; t < ST_TYPE_COUNT; t++)
		if (by_type[t] > by_type[m->main_type])
			m->main_type = t;
}

/* fd < 0: open path; any_type: describe, not run (model_open_any). */
static int open_model(int fd, const char *path, bool any_type, struct model **out,
		      struct st_err *err)
{
	struct model *m;
	int rc;

	*out = NULL;
	m = calloc(1, sizeof *m);
	if (!m)
		return st_errf(err, -ENOMEM, "%s: out of memory", path);
	m->fd = fd;
	m->any_type = any_type;
	snprintf(m->path, sizeof m->path, "%s", path);
	rc = fd >= 0 ? gguf_open_fd(fd, path, &m->gguf, err) : gguf_open(path, &m->gguf, err);
	if (rc < 0)
		goto fail;
	rc = read_hparams(m, err);
	if (rc < 0)
		goto fail;
	rc = read_tensors(m, err);
	if (rc < 0)
		goto fail;

	struct gguf_str name;
	if (gguf_get_str(m->gguf, "general.name", &name, NULL) == 0 && name.len > 0) {
		snprintf(m->name, sizeof m->name, "%.*s", (int)(name.len > 127 ? 127 : name.len), name.ptr);
	} else {
		const char *base = strrchr(path, '/');
		snprintf(m->name, sizeof m->name, "%s", base ? base + 1 : path);
	}
	summarize(m);
	*out = m;
	return 0;
fail:
	model_close(m);
	return rc;
}

int model_open_fd(int fd, const char *path, struct model **out, struct st_err *err)
{
	return open_model(fd, path, false, out, err);
}

int model_open(const char *path, struct model **out, struct st_err *err)
{
	return open_model(-1, path, false, out, err);
}

int model_open_any(const char *path, struct model **out, struct st_err *err)
{
	return open_model(-1, path, true, out, err);
}

void model_close(struct model *m)
{
	if (!m)
		return;
	gguf_close(m->gguf);
	free(m->layers);
	free(m);
}

uint64_t model_layer_bytes(const struct model *m, uint32_t layer)
{
	const struct model_layer *ly = &m->layers[layer];
	return ly->attn_norm.size + ly->wq.size + ly->wk.size + ly->wv.size + ly->wo.size +
	       ly->ffn_norm.size + ly->w_gate.size + ly->w_up.size + ly->w_down.size;
}
