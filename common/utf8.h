/* utf8.h: strict UTF-8 decoding and validation (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF), encoding, and the detection of an
 * incomplete character at the end of a buffer, which streaming output needs.
 * Byte strings in, code points out; no allocation. Not a Unicode library:
 * character properties live in unicode.h. */
#ifndef STRATA_COMMON_UTF8_H
#define STRATA_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_REPLACEMENT 0xFFFDu /* U+FFFD, written as EF BF BD */
#define UTF8_MAX_LEN 4		 /* bytes in the longest character */

enum utf8_status {
	UTF8_OK,	/* a whole, valid character */
	UTF8_INVALID,	/* bytes that can never start a valid character here */
	UTF8_TRUNCATED, /* a valid beginning that the buffer ends before completing */
};

/* Decode the character at the start of s[0..n) (n >= 1).
 *   UTF8_OK:        *cp is the code point, *len its length (1..4).
 *   UTF8_INVALID:   *cp is U+FFFD and *len the length of the maximal ill-formed
 *                   subpart (1..3): replace those bytes by one U+FFFD and go on
 *                   (Unicode's "maximal subpart" practice, as browsers do).
 *   UTF8_TRUNCATED: all n bytes are a valid prefix of a longer character;
 *                   *len = n, *cp = U+FFFD. More bytes may complete it. */
enum utf8_status utf8_decode(const char *s, size_t n, uint32_t *cp, size_t *len);

/* true when all of s[0..n) is valid UTF-8 ending on a character boundary. */
bool utf8_valid(const char *s, size_t n);

/* The number of bytes (0..3) at the end of s[0..n) that form a valid but
 * incomplete character: holding them back until more bytes arrive keeps a
 * stream from splitting a character. Invalid tails give 0 (they will never
 * become valid, so there is nothing to wait for). */
size_t utf8_incomplete_tail(const char *s, size_t n);

/* Write the UTF-8 form of `cp` into out[0..4) and return its length (1..4),
 * or 0 if cp is a surrogate or above U+10FFFF (nothing is written). */
size_t utf8_encode(uint32_t cp, char out[UTF8_MAX_LEN]);

/* Copy s[0..n) to out[0..cap), replacing each maximal ill-formed subpart by
 * U+FFFD; a truncated character at the very end is replaced too. Returns the
 * length of the result, which may exceed cap (then out holds only a prefix,
 * cut on a character boundary); out may be NULL when cap is 0. */
size_t utf8_sanitize(const char *s, size_t n, char *out, size_t cap);

#endif
