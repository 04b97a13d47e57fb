/* tok_internal.h: the tokenizer's data (struct tokenizer: the vocabulary,
 * its attributes, special ids, pieces) and the small inline helpers every
 * file of tokenizer/ reads it with. Declarations only: the functions live in
 * tok_vocab.h, tok_merge.h, tok_spm.h and tok_bpe.h. Not a public API: the
 * rest of strata uses tokenizer.h and detok.h. */
#ifndef STRATA_TOKENIZER_TOK_INTERNAL_H
#define STRATA_TOKENIZER_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* Token attributes, as llama.cpp's llama_token_attr bits (a token may carry
 * several: a NORMAL token found to be an end-of-turn marker gains CONTROL). */
enum {
	TOK_ATTR_UNDEFINED = 0,
	TOK_ATTR_UNKNOWN = 1 << 0,
	TOK_ATTR_UNUSED = 1 << 1,
	TOK_ATTR_NORMAL = 1 << 2,
	TOK_ATTR_CONTROL = 1 << 3,
	TOK_ATTR_USER_DEFINED = 1 << 4,
	TOK_ATTR_BYTE = 1 << 5,
};

enum tok_model { TOK_SPM, TOK_BPE };

#define TOK_MAX_EOG 16 /* eos, eot, eom and the end-of-turn texts tokenizer.c knows */

/* Pre-tokenizers of byte-level BPE (which regex splits the text into words). */
enum tok_pre {
	TOK_PRE_GPT2,	/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
	TOK_PRE_LLAMA3, /* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
			   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
};

/* Open-addressing hash map from a byte string (a token's text) to its id. */
struct tok_strmap {
	int32_t *slots; /* (mask + 1) ids, -1 = empty */
	uint32_t mask;	/* slot count - 1 (a power of two) */
};

/* Open-addressing hash map from a pair of token ids to a merge rank. */
struct tok_pairmap {
	uint64_t *keys; /* (mask + 1) (left << 32 | right), UINT64_MAX = empty */
	int32_t *vals;	/* (mask + 1) ranks */
	uint32_t mask;
};

struct tokenizer {
	enum tok_model model;
	enum tok_pre pre;
	char model_name[16]; /* "llama" or "gpt2" */
	int32_t n_vocab;

	/* token i's text is text[text_off[i] .. text_off[i + 1]) */
	char *text;	    /* all token texts, back to back (not NUL-terminated) */
	uint32_t *text_off; /* (n_vocab + 1) byte offsets into text */
	float *scores;	    /* (n_vocab) SPM merge priorities; 0 when absent */
	uint16_t *attr;	    /* (n_vocab) TOK_ATTR_* bits */
	struct tok_strmap by_text;

	/* the output bytes of each token with special = true (see tokenizer_piece) */
	char *piece;	     /* all pieces back to back */
	uint32_t *piece_off; /* (n_vocab + 1) byte offsets into piece */
	uint32_t max_piece;  /* longest piece, bytes */

	/* control, user-defined and unknown tokens, longest text first: the order
	 * in which tokenizer_encode carves them out of the text */
	int32_t *specials;
	int32_t n_specials;

	int32_t bos, eos, eot, eom, unk, pad, sep; /* -1 if none */
	int32_t eog[TOK_MAX_EOG];		   /* end-of-generation ids */
	int32_t n_eog;
	bool add_bos;
	bool add_space_prefix; /* SPM: prepend " " to text at the start and after specials */
	bool ignore_merges;    /* BPE: a word that is a token is taken whole (Llama 3) */

	int32_t byte_token[256]; /* SPM byte fallback: id of <0xNN> (or of the byte itself); -1 if none */
	struct tok_pairmap merges; /* BPE: (left id, right id) -> rank */
};

/* Where encoded ids go: the caller's array, counting past its end so the
 * caller learns how much room it needs. */
struct tok_out {
	int32_t *ids;
	size_t max;
	size_t n;
};

static inline void tok_out_push(struct tok_out *o, int32_t id)
{
	if (o->n < o->max)
		o->ids[o->n] = id;
	o->n++;
}

static inline const char *tok_text(const struct tokenizer *t, int32_t id, size_t *len)
{
	*len = t->text_off[id + 1] - t->text_off[id];
	return t->text + t->text_off[id];
}

/* Length in bytes of the UTF-8 sequence that lead byte c announces, judged by
 * its high four bits only, as llama.cpp's unicode_len_utf8 does (so a stray
 * continuation byte counts 1). Both tokenizers cut text into symbols with it. */
static inline size_t tok_utf8_len(char c)
{
	static const uint8_t len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
	return len[(uint8_t)c >> 4];
}

#endif
