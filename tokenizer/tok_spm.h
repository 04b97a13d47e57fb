/* tok_spm.h: private to tokenizer/: the SentencePiece encoder. */
#ifndef STRATA_TOKENIZER_TOK_SPM_H
#define STRATA_TOKENIZER_TOK_SPM_H

#include <stdbool.h>
#include <stddef.h>

#include "tokenizer/tok_internal.h"

/* Encode one stretch of plain text (no special tokens in it), appending ids;
 * space_prefix: put "▁" in front (the start of the text, or after a special). */
int tok_spm_encode(const struct tokenizer *t, const char *text, size_t n, bool space_prefix,
		   struct tok_out *out);

#endif
