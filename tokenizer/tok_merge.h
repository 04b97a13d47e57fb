/* tok_merge.h: private to tokenizer/: what both encoders (tok_spm.c,
 * tok_bpe.c) merge with: a chain of symbols and a heap of bigrams. */
#ifndef STRATA_TOKENIZER_TOK_MERGE_H
#define STRATA_TOKENIZER_TOK_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tok_internal.h"

/* Both encoders cut text into symbols (initially one UTF-8 character each)
 * kept in a doubly linked chain, and merge adjacent pairs in priority order. */
struct tok_sym {
	int32_t prev, next; /* neighbours in the chain, -1 at the ends */
	uint32_t off, n;    /* bytes text[off .. off + n); n == 0 once merged away */
	int32_t id;	    /* BPE: the token with this text, or -1 (SPM: unused) */
};

/* A candidate merge of symbols left and right, adjacent when queued. */
struct tok_bigram {
	double key;	     /* lower first: SPM -score, BPE merge rank */
	int32_t left, right; /* ties: the leftmost pair first */
	uint32_t size;	     /* bytes of the pair when queued: stale once it differs */
};

/* A binary min-heap of bigrams on (key, left), as llama.cpp's priority queues
 * order them; grows as needed. */
struct tok_heap {
	struct tok_bigram *v; /* (cap) */
	size_t n, cap;
};

int tok_heap_push(struct tok_heap *h, struct tok_bigram b); /* 0 or -ENOMEM */
struct tok_bigram tok_heap_pop(struct tok_heap *h);	     /* h->n must be > 0 */

/* Chain s[0..len) into one symbol per UTF-8 character (see tok_utf8_len; a
 * cut-off character at the end keeps the bytes there are), ids -1. sym needs
 * room for len entries. Returns the number of symbols. */
int32_t tok_sym_chain(const char *s, size_t len, struct tok_sym *sym);

/* Fold symbol `right` into its left neighbour `left`. */
static inline void tok_sym_merge(struct tok_sym *sym, int32_t left, int32_t right)
{
	struct tok_sym *l = &sym[left], *r = &sym[right];
	l->n += r->n;
	r->n = 0;
	l->next = r->next;
	if (r->next >= 0)
		sym[r->next].prev = left;
}

#endif
