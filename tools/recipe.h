/* recipe.h: which type each tensor of a llama model gets in a quantized
 * file: the schemes llama-quantize offers (Q4_K_M, Q5_K_S, IQ4_XS, Q8_0...)
 * and its per-tensor recipe (llama.cpp build 4748, src/llama-quant.cpp,
 * llama_tensor_get_type, without an importance matrix): the output head at
 * Q6_K, more bits for some layers' attn_v and ffn_down, fallbacks when a row
 * is not whole super-blocks. `strata-model quantize` and `synth` share it,
 * so a synthesized Q4_K_M has the tensor types a downloaded one has.
 * Not here: the conversions (kernels/quant.h), reading or writing files. */
#ifndef STRATA_TOOLS_RECIPE_H
#define STRATA_TOOLS_RECIPE_H

#include <stdbool.h>
#include <stdint.h>

/* A quantization scheme: a llama-quantize file type, or (pure) one weight
 * type for every matrix. */
struct recipe_scheme {
	const char *name;	/* llama-quantize's spelling: "Q4_K_M", "Q8_0", ... */
	uint32_t ftype;		/* llama.cpp's LLAMA_FTYPE_*, for general.file_type */
	uint32_t type;		/* enum st_type most matrices get */
	bool pure;		/* every matrix gets `type`: no per-tensor recipe */
};

/* The scheme called `name` (any case), or -EINVAL. Names are
 * llama-quantize's: Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL IQ4_XS Q8_0 F16 BF16 F32
 * Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K, and its
 * aliases Q3_K = Q3_K_M, Q4_K = Q4_K_M, Q5_K = Q5_K_M. With pure, the scheme
 * is "every matrix in the type of that name" (llama-quantize --pure); the
 * name may then also be any weight type strata runs ("q4_K", "iq4_nl"). */
int recipe_scheme_parse(const char *name, bool pure, struct recipe_scheme *out);
/* The names recipe_scheme_parse knows, for usage text. Static string. */
const char *recipe_scheme_names(void);

/* What the recipe needs to know of the model. */
struct recipe_model {
	uint32_t n_layer;
	uint32_t n_head, n_head_kv;
	bool has_output;	/* an output.weight of its own (not tied to token_embd) */
};

/* The type tensor `name` (n_dims dims, rows of ne0 weights, stored as
 * `src_type`) gets under `s`. Tensors left as they are (1-D ones, norms,
 * anything not named *weight) keep src_type. *fallback (may be NULL) is set
 * when the recipe's choice did not fit the row length and llama.cpp's
 * fallback type was taken (Q4_K -> Q5_0, Q6_K -> Q8_0, ...). Returns the
 * type, or -EINVAL when no type fits (a pure scheme, or a 32-weight type,
 * whose blocks do not divide ne0). */
int recipe_tensor_type(const struct recipe_scheme *s, const struct recipe_model *m, const char *name,
		       uint32_t n_dims, uint64_t ne0, uint32_t src_type, bool *fallback);

#endif
