/* unicode.h: code point properties the tokenizers need: the general category
 * group and White_Space of a code point (as llama.cpp's unicode.cpp defines
 * them, so the pre-tokenizers split text as it does), simple lowercase, and
 * GPT-2's byte <-> code point map. Not a Unicode library: no normalization,
 * no case folding beyond single code points, no UTF-8 (see utf8.h). */
#ifndef STRATA_TOKENIZER_UNICODE_H
#define STRATA_TOKENIZER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#define UNICODE_MAX_CP 0x110000u /* one past the last code point */

/* Flag bits of unicode_flags(), numbered as llama.cpp numbers them. */
enum {
	UNICODE_UNDEFINED = 0x0001,   /* unassigned (Cn), or not a code point */
	UNICODE_NUMBER = 0x0002,      /* \p{N} */
	UNICODE_LETTER = 0x0004,      /* \p{L} */
	UNICODE_SEPARATOR = 0x0008,   /* \p{Z} */
	UNICODE_ACCENT_MARK = 0x0010, /* \p{M} */
	UNICODE_PUNCTUATION = 0x0020, /* \p{P} */
	UNICODE_SYMBOL = 0x0040,      /* \p{S} */
	UNICODE_CONTROL = 0x0080,     /* \p{C} except Cn: Cc Cf Cs Co */
	UNICODE_CATEGORY_MASK = 0x00FF,
	UNICODE_WHITESPACE = 0x0100, /* White_Space: what \s matches */
};

/* Category and whitespace bits of `cp`; exactly one category bit is set.
 * Values >= UNICODE_MAX_CP give UNICODE_UNDEFINED. */
uint16_t unicode_flags(uint32_t cp);

/* Simple lowercase mapping of `cp` (cp itself when it has none). */
uint32_t unicode_tolower(uint32_t cp);

/* GPT-2's reversible byte <-> code point map (bytes_to_unicode in OpenAI's
 * encoder.py): printable Latin-1 bytes map to themselves, the other 68 bytes
 * to U+0100.. in byte order, so every byte string becomes printable text. */
uint32_t unicode_byte_to_cp(uint8_t byte);
/* The byte `cp` stands for, or -1 if cp is not one of the 256 images. */
int unicode_cp_to_byte(uint32_t cp);

/* ---- generated tables (tokenizer/unicode_data.c); use the functions above ---- */
struct unicode_range {
	uint32_t start; /* first code point of the run */
	uint16_t flags;
};
struct unicode_pair {
	uint32_t from, to;
};
extern const struct unicode_range unicode_ranges[]; /* sorted by start, [0].start == 0 */
extern const size_t unicode_n_ranges;
extern const uint16_t unicode_ascii_flags[128]; /* unicode_flags() of U+0000..U+007F */
extern const struct unicode_pair unicode_lower[]; /* sorted by from */
extern const size_t unicode_n_lower;

#endif
