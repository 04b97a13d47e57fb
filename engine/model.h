/* model.h: a llama-architecture model as described by a GGUF file: the
 * hyperparameters from the llama.* keys and where every weight lives in the
 * file. It checks that the file really is a model strata can run (keys,
 * shapes, types) and says precisely what is wrong when it is not. It holds
 * no weights itself: weights.h decides where the bytes come from. */
#ifndef STRATA_ENGINE_MODEL_H
#define STRATA_ENGINE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct gguf;

struct model_hparams {
	uint32_t n_vocab;
	uint32_t n_embd;     /* width of the residual stream */
	uint32_t n_layer;
	uint32_t n_head;     /* query heads */
	uint32_t n_head_kv;  /* key/value heads (grouped-query attention) */
	uint32_t head_dim;   /* llama.attention.key_length, else n_embd / n_head */
	uint32_t n_ff;	     /* feed-forward width */
	uint32_t n_ctx_train;
	float rms_eps;
	float rope_base;     /* llama.rope.freq_base, default 10000 */
	float rope_scale;    /* position multiplier: 1 / llama.rope.scaling.factor (linear) */
};

/* One tensor's place in the file. Matrices are n_rows rows of n_cols weights
 * (GGUF ne[0] = n_cols is contiguous); vectors have n_rows == 1. */
struct model_tensor {
	char name[64];
	uint32_t type;	      /* enum st_type */
	uint64_t n_cols;
	uint64_t n_rows;
	uint64_t offset;      /* absolute file offset */
	uint64_t size;	      /* bytes */
};

struct model_layer {
	struct model_tensor attn_norm; /* (n_embd) f32 */
	struct model_tensor wq;	       /* (n_head*head_dim rows, n_embd) */
	struct model_tensor wk;	       /* (n_head_kv*head_dim, n_embd) */
	struct model_tensor wv;	       /* (n_head_kv*head_dim, n_embd) */
	struct model_tensor wo;	       /* (n_embd, n_head*head_dim) */
	struct model_tensor ffn_norm;  /* (n_embd) f32 */
	struct model_tensor w_gate;    /* (n_ff, n_embd) */
	struct model_tensor w_up;      /* (n_ff, n_embd) */
	struct model_tensor w_down;    /* (n_embd, n_ff) */
};

struct model {
	struct gguf *gguf;	       /* owned; mapped read-only */
	int fd;			       /* the file, from model_open_fd (borrowed); -1 from model_open */
	char path[4096];
	char name[128];		       /* general.name or the file's base name */
	struct model_hparams hp;
	struct model_tensor token_embd;	 /* (n_vocab, n_embd), read row by row */
	struct model_tensor output_norm; /* (n_embd) f32 */
	struct model_tensor output;	 /* (n_vocab, n_embd); == token_embd when tied */
	bool tied_output;
	bool has_rope_freqs;
	struct model_tensor rope_freqs;	 /* (head_dim/2) f32, Llama 3 frequency factors */
	struct model_layer *layers;	 /* n_layer, owned */
	uint64_t weight_bytes;		 /* sum of every tensor the forward pass reads */
	uint32_t main_type;		 /* the commonest matrix type, for display */
	bool any_type;			 /* opened by model_open_any */
	uint32_t n_unsupported;		 /* model_open_any: tensors of a type strata does not run */
	char unsupported[512];		 /* ... and model_open's message for the first of them */
};

/* Open `path`, validate it as a llama model. The caller owns *out and frees it
 * with model_close(). Errors name the file, the key or tensor, and the reason:
 * -ENOENT (file or required key/tensor missing), -EINVAL (wrong shape or value),
 * -ENOTSUP (an architecture or weight type strata does not run). */
int model_open(const char *path, struct model **out, struct st_err *err);
/* The same through fd, an open descriptor of the file (borrowed: the caller keeps it open
 * while the model is used, and reads the weights through it); path is for messages. */
int model_open_fd(int fd, const char *path, struct model **out, struct st_err *err);
/* The same checks, except that tensors of a type strata does not run are
 * accepted and counted (n_unsupported, unsupported): for describing a file
 * (strata-model info), never for running it. */
int model_open_any(const char *path, struct model **out, struct st_err *err);
void model_close(struct model *m);

/* Bytes of one layer's tensors. */
uint64_t model_layer_bytes(const struct model *m, uint32_t layer);

#endif
