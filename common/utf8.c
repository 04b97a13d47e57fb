/* utf8.c: see utf8.h. The decoder follows the well-formed byte sequences
 * table of the Unicode standard (table 3-7): the allowed range of the second
 * byte depends on the first, which is what rules out overlongs, surrogates
 * and code points above U+10FFFF without decoding first. */
#include "common/utf8.h"

#include <string.h>

/* The allowed range of the second byte after lead byte b, and the total
 * length; len 0 means b can never start a character (80..C1, F5..FF). */
static void lead_info(uint8_t b, size_t *len, uint8_t *lo, uint8_t *hi)
{
	*lo = 0x80;
	*hi = 0xBF;
	if (b < 0x80) {
		*len = 1;
	} else if (b < 0xC2) {
		*len = 0; /* continuation byte, or C0/C1 (always overlong) */
	} else if (b < 0xE0) {
		*len = 2;
	} else if (b < 0xF0) {
		*len = 3;
		if (b == 0xE0)
			*lo = 0xA0; /* below is overlong */
		else if (b == 0xED)
			*hi = 0x9F; /* above is a surrogate */
	} else if (b < 0xF5) {
		*len = 4;
		if (b == 0xF0)
			*lo = 0x90; /* below is overlong */
		else if (b == 0xF4)
			*hi = 0x8F; /* above is > U+10FFFF */
	} else {
		*len = 0;
	}
}

enum utf8_status utf8_decode(const char *s, size_t n, uint32_t *cp, size_t *len)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t need;
	uint8_t lo, hi;

	lead_info(u[0], &need, &lo, &hi);
	*cp = UTF8_REPLACEMENT;
	if (need == 0) {
		*len = 1;
		return UTF8_INVALID;
	}
	if (need == 1) {
		*cp = u[0];
		*len = 1;
		return UTF8_OK;
	}
	uint32_t c = u[0] & (0x7F >> need);
	for (size_t i = 1; i < need; i++) {
		if (i >= n) {
			*len = n;
			return UTF8_TRUNCATED;
		}
		uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
		if (u[i] < l || u[i] > h) {
			*len = i; /* the lead and the good continuations so far */
			return UTF8_INVALID;
		}
		c = (c << 6) | (u[i] & 0x3F);
	}
	*cp = c;
	*len = need;
	return UTF8_OK;
}

bool utf8_valid(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		size_t len;
		if ((uint8_t)s[i] < 0x80) {
			i++;
			continue;
		}
		if (utf8_decode(s + i, n - i, &cp, &len) != UTF8_OK)
			return false;
		i += len;
	}
	return true;
}

size_t utf8_incomplete_tail(const char *s, size_t n)
{
	/* a character is at most 4 bytes, so its start is among the last 3 */
	size_t from = n > UTF8_MAX_LEN - 1 ? n - (UTF8_MAX_LEN - 1) : 0;
	for (size_t i = n; i-- > from;) {
		uint8_t b = (uint8_t)s[i];
		if (b >= 0x80 && b < 0xC0)
			continue; /* a continuation byte: its lead is further left */
		uint32_t cp;
		size_t len;
		if (utf8_decode(s + i, n - i, &cp, &len) == UTF8_TRUNCATED)
			return n - i;
		return 0;
	}
	return 0;
}

size_t utf8_encode(uint32_t cp, char out[UTF8_MAX_LEN])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		if (cp >= 0xD800 && cp <= 0xDFFF)
			return 0;
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	if (cp < 0x110000) {
		out[0] = (char)(0xF0 | (cp >> 18));
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[3] = (char)(0x80 | (cp & 0x3F));
		return 4;
	}
	return 0;
}

size_t utf8_sanitize(const char *s, size_t n, char *out, size_t cap)
{
	static const char repl[3] = { (char)0xEF, (char)0xBF, (char)0xBD };
	size_t i = 0, o = 0;
	bool full = false; /* stop writing at the first character that does not fit */
	while (i < n) {
		uint32_t cp;
		size_t len;
		const char *src = s + i;
		size_t m;
		if (utf8_decode(s + i, n - i, &cp, &len) == UTF8_OK) {
			m = len;
		} else {
			src = repl;
			m = sizeof repl;
		}
		if (!full && o + m <= cap)
			memcpy(out + o, src, m);
		else
			full = true;
		o += m;
		i += len;
	}
	return o;
}
