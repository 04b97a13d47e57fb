/* detok.h: the streaming detokenizer: a reply's token ids in, text out, and
 * never a split character. Not the tokenizer itself (tokenizer.h). */
#ifndef STRATA_TOKENIZER_DETOK_H
#define STRATA_TOKENIZER_DETOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* Streaming detokenizer: push the ids of a reply one at a time and get back
 * only whole UTF-8 characters, so a streamed reply never splits a character,
 * even when byte-fallback tokens carry one in pieces. Bytes that can never
 * become valid UTF-8 are replaced by U+FFFD (one per maximal ill-formed
 * subsequence). A plain struct the caller owns (on the stack, in a request);
 * it holds no memory, only a pointer to the tokenizer, which must outlive it. */
struct detok {
	const struct tokenizer *t;
	bool special;	   /* show control tokens as their text */
	uint8_t n_pending; /* bytes held back: a character not yet complete */
	char pending[3];
};

void detok_init(struct detok *d, const struct tokenizer *t, bool special);
/* Add token `id`; write the text now complete into out[0..cap) and return its
 * length (0 when everything is held back). -ENOSPC if cap is too small (then
 * nothing was consumed: retry with a bigger buffer; detok_out_max() always
 * suffices), -EINVAL for a bad id. */
int detok_push(struct detok *d, int32_t id, char *out, size_t cap);
/* End of stream: the held-back bytes, which can no longer be completed, come
 * out as U+FFFD (0 or 3 bytes; -ENOSPC if cap < 3 and there are some). The
 * detok is then empty and can be reused. */
int detok_flush(struct detok *d, char *out, size_t cap);
/* A cap that is always enough for one detok_push of this tokenizer's tokens. */
size_t detok_out_max(const struct tokenizer *t);

#endif
