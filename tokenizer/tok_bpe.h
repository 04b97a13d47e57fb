/* tok_bpe.h: private to tokenizer/: the byte-level BPE encoder and its
 * pre-tokenizers (also checked directly by tests/test-tokenizer.c). */
#ifndef STRATA_TOKENIZER_TOK_BPE_H
#define STRATA_TOKENIZER_TOK_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tok_internal.h"

/* Encode one stretch of plain text (no special tokens in it), appending ids. */
int tok_bpe_encode(const struct tokenizer *t, const char *text, size_t n, struct tok_out *out);

/* Pre-tokenizers: split cps[0..n) into words, writing each word's length in
 * code points to lens[] (room for n entries) and returning the word count.
 * Hand-written matchers equivalent to llama.cpp's unicode_regex_split custom
 * paths for these two regexes (see enum tok_pre). */
size_t tok_split_gpt2(const uint32_t *cps, size_t n, uint32_t *lens);
size_t tok_split_llama3(const uint32_t *cps, size_t n, uint32_t *lens);

#endif
