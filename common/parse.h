/* parse.h: numbers, sizes, yes/no and C escapes from text, for command lines
 * and settings files. Strict: the whole string must be the value (no sign
 * where none belongs, no trailing junk, no overflow), so a typo is an error
 * and never a silent default. Messages are the caller's: it knows the option. */
#ifndef STRATA_COMMON_PARSE_H
#define STRATA_COMMON_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decimal integers. -EINVAL: not one (empty, a sign, junk); -ERANGE: too big. */
int parse_u32(const char *s, uint32_t *out);
int parse_u64(const char *s, uint64_t *out);

/* A finite decimal number ("0.8", "1e-3"). -EINVAL: not a number, NaN or infinite. */
int parse_float(const char *s, float *out);

/* yes/no, true/false, on/off, 1/0 (NULL means yes: a bare "--mlock").
 * -EINVAL for anything else. */
int parse_bool(const char *s, bool *out);

/* A size in bytes: "123456", or a number with a binary suffix K, M, G, T
 * (1024-based; "KiB", "MB", "g" accepted too), fractions allowed ("1.5G").
 * -EINVAL: not a size; -ERANGE: above 2^64, or a non-zero size that rounds
 * down to 0 bytes ("0.0001K"), which would silently mean "no size". */
int parse_size(const char *s, uint64_t *out);
/* The other way, for people: "512 B", "3.00 MiB", "1.5 GiB" (1024-based; two
 * decimals below 10, one above) into buf[0..cap); returns buf. */
const char *format_size(uint64_t n, char *buf, size_t cap);

/* C escapes, as llama.cpp's command line takes them (--stop "\n\n"):
 * \n \t \r \\ \" \' \a \b \f \v, \xHH (one byte), \uXXXX and \UXXXXXXXX (a
 * code point, written as UTF-8). Any other backslash sequence is kept as it
 * is. Writes the result into out[0..cap) with a terminating NUL; returns its
 * length (without the NUL), -ENOSPC when cap is too small (the result is never
 * longer than s), or -EINVAL for \x without hex digits, a code point that is a
 * surrogate, above U+10FFFF or NUL, and \x00 (C strings cannot carry a NUL). */
int parse_escapes(const char *s, char *out, size_t cap);

#endif
