/* tok_spm.c: the SentencePiece BPE encoder, as llama.cpp's
 * llm_tokenizer_spm_session runs it: spaces become "▁", the text is cut into
 * UTF-8 characters, and the adjacent pair whose concatenation is the token
 * with the highest score is merged first (ties: leftmost first) until no pair
 * forms a token. Characters left that are not tokens fall back to byte tokens
 * <0xNN>. Plain text only: special tokens are split off by tokenizer.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_merge.h"
#include "tokenizer/tok_spm.h"
#include "tokenizer/tok_vocab.h"

struct spm {
	const struct tokenizer *t;
	const char *text; /* the escaped text the symbols point into */
	struct tok_sym *sym;
	struct tok_heap heap;
};

/* Queue the merge of left and right if their concatenation is a token;
 * the highest score goes first (key = -score). */
static int try_bigram(struct spm *s, int32_t left, int32_t right)
{
	if (left < 0 || right < 0)
		return 0;
	const struct tok_sym *l = &s->sym[left], *r = &s->sym[right];
	uint32_t size = l->n + r->n; /* contiguous: right follows left in the text */
	int32_t id = tok_lookup(s->t, s->text + l->off, size);
	if (id < 0)
		return 0;
	return tok_heap_push(&s->heap, (struct tok_bigram){ -(double)s->t->scores[id], left, right,
							    size });
}

static void emit_symbol(const struct spm *s, const struct tok_sym *y, struct tok_out *out)
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

	int32_t ns = tok_sym_chain(esc, len, s.sym);
	for (int32_t i = 1; i < ns && rc == 0; i++)
		rc = try_bigram(&s, i - 1, i);

	while (s.heap.n > 0 && rc == 0) {
		struct tok_bigram b = tok_heap_pop(&s.heap);
		const struct tok_sym *l = &s.sym[b.left], *r = &s.sym[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue; /* one side was merged into something else since */
		tok_sym_merge(s.sym, b.left, b.right);
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
	free(s.heap.v);
	return rc;
}
