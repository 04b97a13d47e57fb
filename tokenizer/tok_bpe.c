/* tok_bpe.c: byte-level BPE (GPT-2, Llama 3), as llama.cpp's
 * llm_tokenizer_bpe_session runs it. The pre-tokenizer splits the text into
 * words with a regex (here: hand-written matchers over code points, ported
 * from llama.cpp's unicode_regex_split_custom_gpt2/_llama3, so no regex
 * library); each word's bytes are spelled with GPT-2's byte-to-unicode map;
 * then the adjacent pair with the lowest merge rank is merged first (ties:
 * leftmost first) until no pair has a merge. Plain text only: special tokens
 * are split off by tokenizer.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_bpe.h"
#include "tokenizer/tok_merge.h"
#include "tokenizer/tok_vocab.h"
#include "tokenizer/unicode.h"
#include "common/utf8.h"

/* ---- pre-tokenizers ----
 * Both matchers read the text through cpt_at/flags_at, which give
 * OUT_OF_RANGE / 0 past the end, exactly like llama.cpp's _get_cpt and
 * _get_flags; the quirks of its matchers are kept on purpose (they decide
 * where words end, and so which tokens come out). */

#define OUT_OF_RANGE 0xFFFFFFFFu

struct splitter {
	const uint32_t *cps;
	size_t n;
	uint32_t *lens;
	size_t n_words;
	size_t prev_end; /* where the word being matched starts */
};

static inline uint32_t cpt_at(const struct splitter *s, size_t pos)
{
	return pos < s->n ? s->cps[pos] : OUT_OF_RANGE;
}

static inline uint16_t flags_at(const struct splitter *s, size_t pos)
{
	return pos < s->n ? unicode_flags(s->cps[pos]) : 0;
}

/* End the current word at `end`; returns its length (0: nothing added). */
static size_t add_word(struct splitter *s, size_t end)
{
	size_t len = end - s->prev_end;
	if (len > 0)
		s->lens[s->n_words++] = (uint32_t)len;
	s->prev_end = end;
	return len;
}

/* The length of the contraction ('s 't 're 've 'm 'll 'd) at pos, or 0;
 * fold_case makes it case-insensitive. */
static size_t contraction(const struct splitter *s, size_t pos, bool fold_case)
{
	if (cpt_at(s, pos) != '\'' || pos + 1 >= s->n)
		return 0;
	uint32_t c1 = cpt_at(s, pos + 1);
	if (fold_case)
		c1 = unicode_tolower(c1);
	if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
		return 2;
	if (pos + 2 >= s->n)
		return 0;
	uint32_t c2 = cpt_at(s, pos + 2);
	if (fold_case)
		c2 = unicode_tolower(c2);
	if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
		return 3;
	return 0;
}

#define IS(f, bit) (((f) & (bit)) != 0)
#define WLN (UNICODE_WHITESPACE | UNICODE_LETTER | UNICODE_NUMBER)

size_t tok_split_gpt2(const uint32_t *cps, size_t n, uint32_t *lens)
{
	struct splitter sp = { cps, n, lens, 0, 0 };
	struct splitter *s = &sp;

	for (size_t pos = 0; pos < n;) {
		uint32_t cpt = cpt_at(s, pos);
		uint16_t flags = flags_at(s, pos);

		/* 's|'t|'re|'ve|'m|'ll|'d */
		size_t cl = contraction(s, pos, false);
		if (cl > 0) {
			pos += add_word(s, pos + cl);
			continue;
		}

		uint16_t f2 = cpt == ' ' ? flags_at(s, pos + 1) : flags;
		/* ?\p{L}+ */
		if (IS(f2, UNICODE_LETTER)) {
			pos += cpt == ' ';
			while (IS(f2, UNICODE_LETTER))
				f2 = flags_at(s, ++pos);
			add_word(s, pos);
			continue;
		}
		/* ?\p{N}+ */
		if (IS(f2, UNICODE_NUMBER)) {
			pos += cpt == ' ';
			while (IS(f2, UNICODE_NUMBER))
				f2 = flags_at(s, ++pos);
			add_word(s, pos);
			continue;
		}
		/* ?[^\s\p{L}\p{N}]+ */
		if (!(f2 & WLN) && f2) {
			pos += cpt == ' ';
			while (!(f2 & WLN) && f2)
				f2 = flags_at(s, ++pos);
			add_word(s, pos);
			continue;
		}

		size_t nws = 0;
		while (IS(flags_at(s, pos + nws), UNICODE_WHITESPACE))
			nws++;
		/* \s+(?!\S): leave the last space to the word that follows */
		if (nws > 1 && cpt_at(s, pos + nws) != OUT_OF_RANGE) {
			pos += nws - 1;
			add_word(s, pos);
			continue;
		}
		/* \s+ */
		if (nws > 0) {
			pos += nws;
			add_word(s, pos);
			continue;
		}
		add_word(s, ++pos); /* no match: one code point alone */
	}
	return s->n_words;
}

static inline bool is_crlf(uint32_t c)
{
	return c == '\r' || c == '\n';
}

size_t tok_split_llama3(const uint32_t *cps, size_t n, uint32_t *lens)
{
	struct splitter sp = { cps, n, lens, 0, 0 };
	struct splitter *s = &sp;

	for (size_t pos = 0; pos < n;) {
		uint32_t cpt = cpt_at(s, pos);
		uint16_t flags = flags_at(s, pos);

		/* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
		size_t cl = contraction(s, pos, true);
		if (cl > 0) {
			pos += add_word(s, pos + cl);
			continue;
		}

		/* [^\r\n\p{L}\p{N}]?\p{L}+ */
		if (!(is_crlf(cpt) || IS(flags, UNICODE_NUMBER))) {
			if (IS(flags, UNICODE_LETTER) || IS(flags_at(s, pos + 1), UNICODE_LETTER)) {
				pos++;
				while (IS(flags_at(s, pos), UNICODE_LETTER))
					pos++;
				add_word(s, pos);
				continue;
			}
		}

		/* \p{N}{1,3} */
		if (IS(flags, UNICODE_NUMBER)) {
			size_t ini = pos;
			while (IS(flags_at(s, pos), UNICODE_NUMBER)) {
				if (++pos - ini >= 3) {
					add_word(s, pos);
					ini = pos;
				}
			}
			add_word(s, pos);
			continue;
		}

		/* ?[^\s\p{L}\p{N}]+[\r\n]* (llama.cpp tests the first code point's
		 * own flags here, not those after the space: kept) */
		uint16_t f2 = cpt == ' ' ? flags_at(s, pos + 1) : flags;
		if (!(f2 & WLN) && flags) {
			pos += cpt == ' ';
			while (!(f2 & WLN) && f2)
				f2 = flags_at(s, ++pos);
			while (is_crlf(cpt_at(s, pos)))
				pos++;
			add_word(s, pos);
			continue;
		}

		size_t nws = 0, last_crlf_end = 0;
		while (IS(flags_at(s, pos + nws), UNICODE_WHITESPACE)) {
			if (is_crlf(cpt_at(s, pos + nws)))
				last_crlf_end = pos + nws + 1;
			nws++;
		}
		/* \s*[\r\n]+ */
		if (last_crlf_end > 0) {
			pos = last_crlf_end;
			add_word(s, pos);
			continue;
		}
		/* \s+(?!\S) */
		if (nws > 1 && cpt_at(s, pos + nws) != OUT_OF_RANGE) {
			pos += nws - 1;
			add_word(s, pos);
			continue;
		}
		/* \s+ */
		if (nws > 0) {
			pos += nws;
			add_word(s, pos);
			continue;
		}
		add_word(s, ++pos);
	}
	return s->n_words;
}

/* ---- merging ---- */

struct bpe {
	const struct tokenizer *t;
	struct tok_sym *sym; /* room for the longest word's bytes */
	struct tok_heap heap;
};

/* Queue the merge of left and right if the vocabulary has it; the lowest
 * rank goes first. */
static int add_bigram(struct bpe *s, int32_t left, int32_t right)
{
	if (left < 0 || right < 0)
		return 0;
	const struct tok_sym *l = &s->sym[left], *r = &s->sym[right];
	if (l->id < 0 || r->id < 0)
		return 0; /* every half of a merge is a token (checked at load) */
	int32_t rank = tok_merge_rank(s->t, l->id, r->id);
	if (rank < 0)
		return 0;
	return tok_heap_push(&s->heap, (struct tok_bigram){ rank, left, right, l->n + r->n });
}

/* Merge one byte-encoded word and append its tokens. */
static int bpe_word(struct bpe *s, const char *word, size_t len, struct tok_out *out)
{
	const struct tokenizer *t = s->t;
	int rc = 0;

	if (t->ignore_merges) {
		int32_t id = tok_lookup(t, word, len);
		if (id >= 0) {
			tok_out_push(out, id);
			return 0;
		}
	}
	s->heap.n = 0;
	int32_t ns = tok_sym_chain(word, len, s->sym);
	for (int32_t i = 0; i < ns; i++)
		s->sym[i].id = tok_lookup(t, word + s->sym[i].off, s->sym[i].n);
	for (int32_t i = 1; i < ns && rc == 0; i++)
		rc = add_bigram(s, i - 1, i);

	while (s->heap.n > 0 && rc == 0) {
		struct tok_bigram b = tok_heap_pop(&s->heap);
		struct tok_sym *l = &s->sym[b.left], *r = &s->sym[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue; /* outdated: a side has changed since */
		tok_sym_merge(s->sym, b.left, b.right);
		l->id = tok_lookup(t, word + l->off, l->n);
		rc = add_bigram(s, l->prev, b.left);
		if (rc == 0)
			rc = add_bigram(s, b.left, l->next);
	}
	if (rc < 0 || ns == 0)
		return rc;

	for (int32_t i = 0; i != -1; i = s->sym[i].next) {
		const struct tok_sym *y = &s->sym[i];
		if (y->id >= 0) {
			tok_out_push(out, y->id);
			continue;
		}
		/* Not a token (only possible with a vocabulary that lacks some of
		 * the 256 byte characters): llama.cpp then looks each raw byte up
		 * as a one-byte token and drops those that are not. */
		for (uint32_t j = 0; j < y->n; j++) {
			int32_t id = tok_lookup(t, word + y->off + j, 1);
			if (id >= 0)
				tok_out_push(out, id);
		}
	}
	return 0;
}

int tok_bpe_encode(const struct tokenizer *t, const char *text, size_t n, struct tok_out *out)
{
	struct bpe s = { .t = t };
	uint32_t *cps = malloc((n ? n : 1) * sizeof *cps);
	uint32_t *lens = malloc((n ? n : 1) * sizeof *lens);
	char *word = NULL;
	int rc = 0;

	if (!cps || !lens) {
		rc = -ENOMEM;
		goto out;
	}
	/* code points; a bad byte reads as U+FFFD and the next byte starts over
	 * (llama.cpp's unicode_cpts_from_utf8 does the same) */
	size_t ncp = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len;
		if (utf8_decode(text + i, n - i, &cp, &len) != UTF8_OK)
			len = 1;
		cps[ncp++] = cp;
		i += len;
	}

	size_t nw = t->pre == TOK_PRE_LLAMA3 ? tok_split_llama3(cps, ncp, lens)
					      : tok_split_gpt2(cps, ncp, lens);
	uint32_t longest = 0;
	for (size_t w = 0; w < nw; w++)
		if (lens[w] > longest)
			longest = lens[w];
	/* a code point is at most 4 bytes, each spelled by a code point below
	 * U+0144, which takes at most 2 bytes */
	size_t room = (size_t)longest * UTF8_MAX_LEN * 2;
	word = malloc(room ? room : 1);
	s.sym = malloc((room ? room : 1) * sizeof *s.sym);
	if (!word || !s.sym) {
		rc = -ENOMEM;
		goto out;
	}

	const uint32_t *cp = cps;
	for (size_t w = 0; w < nw && rc == 0; w++) {
		size_t len = 0;
		for (uint32_t k = 0; k < lens[w]; k++) {
			char u[UTF8_MAX_LEN];
			size_t ul = utf8_encode(cp[k], u);
			for (size_t b = 0; b < ul; b++)
				len += utf8_encode(unicode_byte_to_cp((uint8_t)u[b]), word + len);
		}
		cp += lens[w];
		rc = bpe_word(&s, word, len, out);
	}
out:
	free(cps);
	free(lens);
	free(word);
	free(s.sym);
	free(s.heap.v);
	return rc;
}
