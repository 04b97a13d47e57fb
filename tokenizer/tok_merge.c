/* tok_merge.c: the machinery both encoders merge with (see tok_merge.h): a
 * chain of symbols over the text and a priority queue of candidate merges. */
#include "tokenizer/tok_merge.h"

#include <errno.h>
#include <stdlib.h>

static inline bool bigram_before(const struct tok_bigram *a, const struct tok_bigram *b)
{
	return a->key < b->key || (a->key == b->key && a->left < b->left);
}

int tok_heap_push(struct tok_heap *h, struct tok_bigram b)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		struct tok_bigram *v = realloc(h->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	size_t i = h->n++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!bigram_before(&b, &h->v[parent]))
			break;
		h->v[i] = h->v[parent];
		i = parent;
	}
	h->v[i] = b;
	return 0;
}

struct tok_bigram tok_heap_pop(struct tok_heap *h)
{
	struct tok_bigram top = h->v[0];
	struct tok_bigram last = h->v[--h->n];
	size_t i = 0, n = h->n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && bigram_before(&h->v[c + 1], &h->v[c]))
			c++;
		if (!bigram_before(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (n > 0)
		h->v[i] = last;
	return top;
}

int32_t tok_sym_chain(const char *s, size_t len, struct tok_sym *sym)
{
	int32_t ns = 0;
	for (size_t off = 0; off < len; ns++) {
		size_t cl = tok_utf8_len(s[off]);
		if (cl > len - off)
			cl = len - off;
		sym[ns] = (struct tok_sym){ ns - 1, off + cl == len ? -1 : ns + 1, (uint32_t)off,
					    (uint32_t)cl, -1 };
		off += cl;
	}
	return ns;
}

