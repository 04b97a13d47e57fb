/* synth.h: writes a llama model with random weights of any shape and weight
 * type, with the vocabulary of another GGUF file. Tests and benchmarks get
 * models of every size (up to ALIA-40b's) this way, without downloads. The
 * weights are random, so the text is nonsense; the shapes, types and file
 * layout are real, and llama.cpp reads the files too. */
#ifndef STRATA_TOOLS_SYNTH_H
#define STRATA_TOOLS_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "tools/recipe.h"

struct synth_params {
	uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff;
	uint32_t n_ctx;		 /* llama.context_length to record */
	uint32_t type;		 /* enum st_type of the matrices (norms are f32)... */
	const struct recipe_scheme *mix; /* ...or, when not NULL, the type llama-quantize's
				  * recipe gives each under this scheme (Q4_K_M: output.weight
				  * q6_K, some attn_v/ffn_down q6_K, the rest q4_K) */
	const char *vocab_path;	 /* GGUF whose tokenizer.* keys are copied, or "builtin":
				  * a 512-token SentencePiece vocabulary of our own */
	uint64_t n_vocab;	 /* pad the vocabulary to this many tokens with unused ones
				  * (0, or not more than it has: as it is) */
	bool tie;		 /* no output.weight: the head reuses token_embd */
	uint64_t seed;
	const char *name;	 /* general.name */
};

/* Write the model to `out_path`. 0, or -errno with err naming what failed. */
int synth_write(const char *out_path, const struct synth_params *p, struct st_err *err);

#endif
