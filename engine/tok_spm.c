/* tok_spm.c: the SentencePiece BPE encoder, as llama.cpp's
 * llm_tokenizer_spm_session runs it: spaces become "▁", the text is cut into
 * UTF-8 characters, and the adjacent pair whose concatenation is the token
 * with the highest score is merged first (ties: leftmost first) until no pair
 * forms a token. Characters left that are not tokens fall back to byte tokens
 * <0xNN>. Plain text only: special tokens are split off by tokenizer.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tok_internal.h"

struct sym {
	int32_t prev, next; /* neighbours in the chain, -1 at the ends */
	uint32_t off, n;    /* bytes text[off .. off + n); n == 0 once merged away */
};

/* A candidate merge of symbols left and right (adjacent when pushed). */
struct bigram {
	float score;
	int32_t left, right;
	uint32_t size; /* bytes of the pair when pushed: a stale entry no longer matches */
};

struct spm {
	const struct tokenizer *t;
	const char *text;
	struct sym *sym;
	struct bigram *heap;
	size_t n_heap, cap_heap;
};

/* Max-heap order: higher score first, then the leftmost pair. */
static inline bool before(const struct bigram *a, const struct bigram *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(struct spm *s, struct bigram b)
{
	if (s->n_heap == s->cap_heap) {
		size_t cap = s->cap_heap ? 2 * s->cap_heap : 64;
		struct bigram *h = realloc(s->heap, cap * sizeof *h);
		if (!h)
			return -ENOMEM;
		s->heap = h;
		s->cap_heap = cap;
	}
	size_t i = s->n_heap++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!before(&b, &s->heap[parent]))
			break;
		s->heap[i] = s->heap[parent];
		i = parent;
	}
	s->heap[i] = b;
	return 0;
}

static struct bigram heap_pop(struct spm *s)
{
	struct bigram top = s->heap[0];
	struct bigram last = s->heap[--s->n_heap];
	size_t i = 0, n = s->n_heap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!before(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (n > 0)
		s->heap[i] = last;
	return top;
}

/* Queue the merge of left and right if their concatenation is a token. */
static int try_bigram(struct spm *s, int32_t left, int32_t right)
{
	if (left < 0 || right < 0)
		return 0;
	const struct sym *l = &s->sym[left], *r = &s->sym[right];
	uint32_t size = l->n + r->n; /* contiguous: right follows left in the text */
	int32_t id = tok_lookup(s->t, s->text + l->off, size);
	if (id < 0)
		return 0;
	return heap_push(s, (struct bigram){ s->t->scores[id], left, right, size });
}

static void emit_symbol(const struct spm *s, const struct sym *y, struct tok_out *out)
{
	const struct tokenizer *t = s->t;
	int32_t id = tok_lookup(t, s->text + y->off, y->n);
	if (id >= 0) {
		tok_out_push(out, id);
		return;
	}
	/* Not a token: spell it in bytes. (A merged symbol is always a token,
	 * so only single characters get here.) A byte without a byte token
	 * becomes the unknown token where llama.cpp would throw. */
	for (uint32_t j = 0; j < y->n; j++) {
		int32_t b = t->byte_token[(uint8_t)s->text[y->off + j]];
		if (b < 0)
			b = t->unk;
		if (b >= 0)
			tok_out_push(out, b);
	}
}

int tok_spm_encode(const struct tokenizer *t, const char *text, size_t n, bool space_prefix,
		   struct tok_out *out)
{
	/* escaped: each " " becomes "▁" (3 bytes), with a leading "▁" when asked */
	size_t spaces = 0;
	for (size_t i = 0; i < n; i++)
		spaces += text[i] == ' ';
	size_t len = n + 2 * spaces + (space_prefix ? 3 : 0);
	struct spm s = { .t = t };
	char *esc = malloc(len ? len : 1);
	s.sym = malloc((len ? len : 1) * sizeof *s.sym);
	int rc = 0;
	if (!esc || !s.sym) {
		rc = -ENOMEM;
		goto out;
	}
	size_t o = 0;
	if (space_prefix) {
		memcpy(esc, "\xE2\x96\x81", 3);
		o = 3;
	}
	for (size_t i = 0; i < n; i++) {
		if (text[i] == ' ') {
			memcpy(esc + o, "\xE2\x96\x81", 3);
			o += 3;
		} else {
			esc[o++] = text[i];
		}
	}
	s.text = esc;

	/* one symbol per UTF-8 character (by its lead byte; a truncated one at
	 * the end keeps what is there) */
	int32_t ns = 0;
	for (size_t off = 0; off < len; ns++) {
		size_t cl = tok_utf8_len(esc[off]);
		if (cl > len - off)
			cl = len - off;
		s.sym[ns] = (struct sym){ ns - 1, off + cl == len ? -1 : ns + 1, (uint32_t)off,
					  (uint32_t)cl };
		off += cl;
	}

	for (int32_t i = 1; i < ns && rc == 0; i++)
		rc = try_bigram(&s, i - 1, i);

	while (s.n_heap > 0 && rc == 0) {
		struct bigram b = heap_pop(&s);
		struct sym *l = &s.sym[b.left], *r = &s.sym[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue; /* one side was merged into something else since */
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			s.sym[r->next].prev = b.left;
		rc = try_bigram(&s, l->prev, b.left);
		if (rc == 0)
			rc = try_bigram(&s, b.left, l->next);
	}

	if (rc == 0 && ns > 0) {
		for (int32_t i = 0; i != -1; i = s.sym[i].next)
			emit_symbol(&s, &s.sym[i], out);
	}
out:
	free(esc);
	free(s.sym);
	free(s.heap);
	return rc;
}
