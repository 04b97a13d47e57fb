/* tok_vocab.h: private to tokenizer/: the vocabulary's lookups, text -> id
 * and (left id, right id) -> merge rank, and building them at load. */
#ifndef STRATA_TOKENIZER_TOK_VOCAB_H
#define STRATA_TOKENIZER_TOK_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tok_internal.h"

/* The id of the token whose text is s[0..n), or -1. */
int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t n);

/* The rank of the merge (left, right) in a BPE vocabulary, or -1. */
int32_t tok_merge_rank(const struct tokenizer *t, int32_t left, int32_t right);

/* Empty maps with room for n entries (at most half full); 0 or -ENOMEM.
 * Free with the matching _free (which also undoes a failed _alloc). */
int tok_strmap_alloc(struct tok_strmap *m, size_t n);
void tok_strmap_free(struct tok_strmap *m);
int tok_pairmap_alloc(struct tok_pairmap *m, size_t n);
void tok_pairmap_free(struct tok_pairmap *m);

/* Index token id by its text; returns the id already holding that text, or -1. */
int32_t tok_strmap_insert(struct tokenizer *t, int32_t id);
/* Record a merge unless present (the first rank of a repeated merge wins, as in llama.cpp). */
void tok_pairmap_put(struct tok_pairmap *m, int32_t left, int32_t right, int32_t rank);

#endif
