/* recipe.c: llama-quantize's schemes and per-tensor recipe (see recipe.h),
 * for the llama architecture without experts and without an importance
 * matrix: the branches of llama_tensor_get_type that can fire there, in its
 * order. Its counters (i_attention_wv, i_ffn_down) count tensors in the
 * order llama.cpp visits them, layer by layer, so for a llama model they
 * are the layer number, which we read from the name. */
#include "tools/recipe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels/types.h"

/* llama.cpp's LLAMA_FTYPE_MOSTLY_* (include/llama.h) */
enum {
	FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9,
	FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15,
	FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_IQ4_NL = 25, FT_IQ4_XS = 30, FT_BF16 = 32,
};

static const struct recipe_scheme schemes[] = {
	{ "Q4_0", FT_Q4_0, ST_Q4_0, false },	  { "Q4_1", FT_Q4_1, ST_Q4_1, false },
	{ "Q5_0", FT_Q5_0, ST_Q5_0, false },	  { "Q5_1", FT_Q5_1, ST_Q5_1, false },
	{ "IQ4_NL", FT_IQ4_NL, ST_IQ4_NL, false }, { "IQ4_XS", FT_IQ4_XS, ST_IQ4_XS, false },
	{ "Q2_K", FT_Q2_K, ST_Q2_K, false },	  { "Q3_K_S", FT_Q3_K_S, ST_Q3_K, false },
	{ "Q3_K_M", FT_Q3_K_M, ST_Q3_K, false },  { "Q3_K_L", FT_Q3_K_L, ST_Q3_K, false },
	{ "Q4_K_S", FT_Q4_K_S, ST_Q4_K, false },  { "Q4_K_M", FT_Q4_K_M, ST_Q4_K, false },
	{ "Q5_K_S", FT_Q5_K_S, ST_Q5_K, false },  { "Q5_K_M", FT_Q5_K_M, ST_Q5_K, false },
	{ "Q6_K", FT_Q6_K, ST_Q6_K, false },	  { "Q8_0", FT_Q8_0, ST_Q8_0, false },
	{ "F16", FT_F16, ST_F16, false },	  { "BF16", FT_BF16, ST_BF16, false },
	{ "F32", FT_F32, ST_F32, false },
};
#define N_SCHEMES (sizeof schemes / sizeof schemes[0])

/* llama-quantize's aliases */
static const struct {
	const char *alias, *name;
} aliases[] = { { "Q3_K", "Q3_K_M" }, { "Q4_K", "Q4_K_M" }, { "Q5_K", "Q5_K_M" } };

const char *recipe_scheme_names(void)
{
	return "Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL IQ4_XS Q8_0 F16 BF16 F32 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S "
	       "Q4_K_M Q5_K_S Q5_K_M Q6_K (Q3_K, Q4_K, Q5_K: Q3_K_M, Q4_K_M, Q5_K_M)";
}

/* The file type of a pure scheme: the mixture whose main type it is. */
static uint32_t ftype_of_type(uint32_t type)
{
	for (size_t i = 0; i < N_SCHEMES; i++)
		if (schemes[i].type == type && strcmp(schemes[i].name, "Q3_K_S") != 0 &&
		    strcmp(schemes[i].name, "Q4_K_S") != 0 && strcmp(schemes[i].name, "Q5_K_S") != 0 &&
		    strcmp(schemes[i].name, "Q3_K_L") != 0)
			return schemes[i].ftype;
	return FT_F32;
}

int recipe_scheme_parse(const char *name, bool pure, struct recipe_scheme *out)
{
	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
		if (strcasecmp(name, aliases[i].alias) == 0 && !pure)
			name = aliases[i].name;
	for (size_t i = 0; i < N_SCHEMES; i++) {
		if (strcasecmp(name, schemes[i].name) == 0) {
			*out = schemes[i];
			out->pure = pure;
			return 0;
		}
	}
	/* pure: any weight type strata runs, by its ggml name */
	enum st_type t;
	if (pure && st_type_parse(name, &t) == 0 && st_type_info(t)->supported) {
		*out = (struct recipe_scheme){ st_type_name(t), ftype_of_type(t), t, true };
		return 0;
	}
	return -EINVAL;
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers and
 * every third one between. */
static bool use_more_bits(int i, int n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);
	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* The layer of "blk.N.<...>", or -1. */
static int layer_of(const char *name)
{
	if (strncmp(name, "blk.", 4) != 0)
		return -1;
	char *end;
	long l = strtol(name + 4, &end, 10);
	return end != name + 4 && *end == '.' && l >= 0 && l < 1 << 20 ? (int)l : -1;
}

/* llama_tensor_get_type for the schemes above on a llama model. */
static uint32_t mix_type(const struct recipe_scheme *s, const struct recipe_model *m, const char *name,
			 uint64_t ne0)
{
	const uint32_t ft = s->ftype;
	uint32_t t = s->type;
	const int n_layer = (int)m->n_layer, il = layer_of(name);
	const uint32_t n_gqa = m->n_head_kv ? m->n_head / m->n_head_kv : 0;
	/* llama.cpp's LLM_TYPE_70B: 80 layers with grouped-query attention */
	const bool is_70b = m->n_layer == 80 && m->n_head != m->n_head_kv;

	if (strcmp(name, "output.weight") == 0 || (!m->has_output && strcmp(name, "token_embd.weight") == 0)) {
		if (ne0 % st_type_info(t)->block_elems != 0)
			t = ST_Q8_0;
		else if (t != ST_Q8_0)
			t = ST_Q6_K;
	} else if (strcmp(name, "token_embd.weight") == 0) {
		/* changed only for the IQ1/IQ2/IQ3/TQ schemes */
	} else if (strstr(name, "attn_v.weight")) {
		if (ft == FT_Q2_K)
			t = n_gqa >= 4 ? ST_Q4_K : ST_Q3_K;
		else if (ft == FT_Q3_K_M)
			t = il < 2 ? ST_Q5_K : ST_Q4_K;
		else if (ft == FT_Q3_K_L)
			t = ST_Q5_K;
		else if ((ft == FT_IQ4_NL || ft == FT_IQ4_XS) && n_gqa >= 4)
			t = ST_Q5_K;
		else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(il, n_layer))
			t = ST_Q6_K;
		else if (ft == FT_Q4_K_S && il < 4)
			t = ST_Q5_K;
		if (is_70b && (t == ST_Q3_K || t == ST_Q4_K))
			t = ST_Q5_K;
	} else if (strstr(name, "attn_k.weight") || strstr(name, "attn_q.weight")) {
		/* changed only for the IQ3 schemes */
	} else if (strstr(name, "ffn_down")) {
		if (ft == FT_Q2_K)
			t = ST_Q3_K;
		else if (ft == FT_Q3_K_M)
			t = il < n_layer / 16 ? ST_Q5_K : ST_Q4_K;
		else if (ft == FT_Q3_K_L)
			t = ST_Q5_K;
		else if (ft == FT_Q4_K_M) {
			if (use_more_bits(il, n_layer))
				t = ST_Q6_K;
		} else if (il < n_layer / 8 && (ft == FT_IQ4_NL || ft == FT_IQ4_XS))
			t = ST_Q5_K;
		else if (ft == FT_Q5_K_M && use_more_bits(il, n_layer))
			t = ST_Q6_K;
		else if (ft == FT_Q4_K_S && il < n_layer / 8)
			t = ST_Q5_K;
	} else if (strstr(name, "attn_output.weight")) {
		if (ft == FT_Q2_K)
			t = ST_Q3_K;
		else if (ft == FT_Q3_K_M)
			t = ST_Q4_K;
		else if (ft == FT_Q3_K_L)
			t = ST_Q5_K;
	}
	return t;
}

int recipe_tensor_type(const struct recipe_scheme *s, const struct recipe_model *m, const char *name,
		       uint32_t n_dims, uint64_t ne0, uint32_t src_type, bool *fallback)
{
	if (fallback)
		*fallback = false;
	/* llama-quantize: 2-D (or more) tensors named *weight, not norms */
	if (!ends_with(name, "weight") || n_dims < 2 || strstr(name, "_norm.weight"))
		return (int)src_type;
	const bool quantized = st_type_info(s->type)->block_elems > 1;
	uint32_t t = s->type;
	if (!s->pure && quantized)
		t = mix_type(s, m, name, ne0);
	if (ne0 % st_type_info(t)->block_elems == 0)
		return (int)t;
	if (s->pure)
		return -EINVAL;
	/* llama.cpp's fallbacks for rows that are not whole super-blocks */
	switch (t) {
	case ST_Q2_K: case ST_Q3_K: case ST_IQ4_XS: t = ST_IQ4_NL; break;
	case ST_Q4_K: t = ST_Q5_0; break;
	case ST_Q5_K: t = ST_Q5_1; break;
	case ST_Q6_K: t = ST_Q8_0; break;
	default: return -EINVAL; /* llama.cpp: "Unsupported tensor size encountered" */
	}
	if (ne0 % st_type_info(t)->block_elems != 0)
		t = ST_F16;
	if (fallback)
		*fallback = true;
	return (int)t;
}
