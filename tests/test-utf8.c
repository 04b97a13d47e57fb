/* test-utf8.c: common/utf8 against the well-formed byte sequence table of the
 * Unicode standard: every code point round-trips, and overlongs, surrogates,
 * values above U+10FFFF, stray continuation bytes and truncated characters
 * are told apart (invalid vs. incomplete) with the right lengths. */
#include <stdio.h>
#include <string.h>

#include "common/utf8.h"
#include "tests/tap.h"

struct dcase {
	const char *name;
	const char *s;
	size_t n;
	enum utf8_status st;
	size_t len;
	uint32_t cp; /* when UTF8_OK */
};

#define S(lit) lit, sizeof lit - 1

static const struct dcase dcases[] = {
	{ "ASCII", S("A"), UTF8_OK, 1, 0x41 },
	{ "NUL", "\0", 1, UTF8_OK, 1, 0 },
	{ "U+007F", S("\x7F"), UTF8_OK, 1, 0x7F },
	{ "U+0080", S("\xC2\x80"), UTF8_OK, 2, 0x80 },
	{ "U+00F1 n-tilde", S("\xC3\xB1"), UTF8_OK, 2, 0xF1 },
	{ "U+07FF", S("\xDF\xBF"), UTF8_OK, 2, 0x7FF },
	{ "U+0800", S("\xE0\xA0\x80"), UTF8_OK, 3, 0x800 },
	{ "U+20AC euro", S("\xE2\x82\xAC"), UTF8_OK, 3, 0x20AC },
	{ "U+D7FF", S("\xED\x9F\xBF"), UTF8_OK, 3, 0xD7FF },
	{ "U+E000", S("\xEE\x80\x80"), UTF8_OK, 3, 0xE000 },
	{ "U+FFFD", S("\xEF\xBF\xBD"), UTF8_OK, 3, 0xFFFD },
	{ "U+FFFF", S("\xEF\xBF\xBF"), UTF8_OK, 3, 0xFFFF },
	{ "U+10000", S("\xF0\x90\x80\x80"), UTF8_OK, 4, 0x10000 },
	{ "U+1F999 llama", S("\xF0\x9F\xA6\x99"), UTF8_OK, 4, 0x1F999 },
	{ "U+10FFFF", S("\xF4\x8F\xBF\xBF"), UTF8_OK, 4, 0x10FFFF },
	{ "only the first character", S("\xC3\xB1" "abc"), UTF8_OK, 2, 0xF1 },

	{ "lone continuation 80", S("\x80"), UTF8_INVALID, 1, 0 },
	{ "lone continuation BF", S("\xBF" "A"), UTF8_INVALID, 1, 0 },
	{ "overlong C0 80 (NUL)", S("\xC0\x80"), UTF8_INVALID, 1, 0 },
	{ "overlong C1 BF", S("\xC1\xBF"), UTF8_INVALID, 1, 0 },
	{ "overlong E0 80 80", S("\xE0\x80\x80"), UTF8_INVALID, 1, 0 },
	{ "overlong E0 9F BF", S("\xE0\x9F\xBF"), UTF8_INVALID, 1, 0 },
	{ "overlong F0 80 80 80", S("\xF0\x80\x80\x80"), UTF8_INVALID, 1, 0 },
	{ "overlong F0 8F BF BF", S("\xF0\x8F\xBF\xBF"), UTF8_INVALID, 1, 0 },
	{ "surrogate D800", S("\xED\xA0\x80"), UTF8_INVALID, 1, 0 },
	{ "surrogate DFFF", S("\xED\xBF\xBF"), UTF8_INVALID, 1, 0 },
	{ "U+110000", S("\xF4\x90\x80\x80"), UTF8_INVALID, 1, 0 },
	{ "lead F5", S("\xF5\x80\x80\x80"), UTF8_INVALID, 1, 0 },
	{ "lead FF", S("\xFF"), UTF8_INVALID, 1, 0 },
	{ "lead FE", S("\xFE"), UTF8_INVALID, 1, 0 },
	{ "2-byte lead then ASCII", S("\xC3" "A"), UTF8_INVALID, 1, 0 },
	{ "3-byte, bad third byte", S("\xE2\x82" "A"), UTF8_INVALID, 2, 0 },
	{ "4-byte, bad fourth byte", S("\xF0\x9F\xA6" "A"), UTF8_INVALID, 3, 0 },
	{ "4-byte, bad second byte", S("\xF0" "AAA"), UTF8_INVALID, 1, 0 },

	{ "truncated 2-byte", S("\xC3"), UTF8_TRUNCATED, 1, 0 },
	{ "truncated 3-byte (1 of 3)", S("\xE2"), UTF8_TRUNCATED, 1, 0 },
	{ "truncated 3-byte (2 of 3)", S("\xE2\x82"), UTF8_TRUNCATED, 2, 0 },
	{ "truncated 4-byte (3 of 4)", S("\xF0\x9F\xA6"), UTF8_TRUNCATED, 3, 0 },
	{ "truncated E0 A0", S("\xE0\xA0"), UTF8_TRUNCATED, 2, 0 },
	{ "truncated overlong E0 80 is invalid", S("\xE0\x80"), UTF8_INVALID, 1, 0 },
	{ "truncated surrogate ED A0 is invalid", S("\xED\xA0"), UTF8_INVALID, 1, 0 },
	{ "truncated F4 90 is invalid", S("\xF4\x90"), UTF8_INVALID, 1, 0 },
};

static void test_decode(void)
{
	for (size_t i = 0; i < sizeof dcases / sizeof dcases[0]; i++) {
		const struct dcase *c = &dcases[i];
		uint32_t cp = 0;
		size_t len = 0;
		enum utf8_status st = utf8_decode(c->s, c->n, &cp, &len);
		bool ok = st == c->st && len == c->len &&
			  (st == UTF8_OK ? cp == c->cp : cp == UTF8_REPLACEMENT);
		if (!tap_ok(ok, "decode: %s", c->name))
			tap_diag("got status %d len %zu cp U+%04X; want status %d len %zu cp U+%04X",
				 st, len, cp, c->st, c->len, c->cp);
	}
}

/* Every scalar value encodes to the length the standard gives and decodes back. */
static void test_roundtrip_all(void)
{
	unsigned bad = 0, checked = 0;
	for (uint32_t cp = 0; cp < 0x110000; cp++) {
		char buf[UTF8_MAX_LEN];
		size_t n = utf8_encode(cp, buf);
		bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
		size_t want = surrogate ? 0 : cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		if (n != want) {
			bad++;
			continue;
		}
		if (surrogate)
			continue;
		uint32_t back;
		size_t len;
		checked++;
		if (utf8_decode(buf, n, &back, &len) != UTF8_OK || back != cp || len != n ||
		    !utf8_valid(buf, n))
			bad++;
		/* every proper prefix of a multi-byte character is "truncated" */
		for (size_t k = 1; k < n; k++) {
			if (utf8_decode(buf, k, &back, &len) != UTF8_TRUNCATED || len != k ||
			    utf8_incomplete_tail(buf, k) != k)
				bad++;
		}
	}
	tap_is_int(bad, 0, "encode/decode round trip of all %u scalar values and their prefixes",
		   checked);
	char buf[UTF8_MAX_LEN];
	tap_is_int((int64_t)utf8_encode(0x110000, buf), 0, "encode refuses U+110000");
	tap_is_int((int64_t)utf8_encode(0xD800, buf), 0, "encode refuses a surrogate");
}

/* Exhaustively: a 2-byte sequence is valid exactly when the table says so. */
static void test_two_byte_table(void)
{
	unsigned bad = 0;
	for (unsigned a = 0; a < 256; a++) {
		for (unsigned b = 0; b < 256; b++) {
			char s[2] = { (char)a, (char)b };
			bool want = (a < 0x80 && b < 0x80) || (a >= 0xC2 && a <= 0xDF && b >= 0x80 && b <= 0xBF);
			if (utf8_valid(s, 2) != want)
				bad++;
		}
	}
	tap_is_int(bad, 0, "utf8_valid on all 65536 two-byte strings");
}

static void test_valid_and_tail(void)
{
	tap_ok(utf8_valid("", 0), "empty string is valid");
	tap_ok(utf8_valid(S("ni\xC3\xB1o \xE2\x82\xAC \xF0\x9F\xA6\x99")), "mixed text is valid");
	tap_ok(!utf8_valid(S("abc\xE2\x82")), "truncated end is not valid");
	tap_ok(!utf8_valid(S("abc\xED\xA0\x80" "def")), "surrogate in the middle is not valid");
	tap_ok(!utf8_valid(S("\xC0\xAF")), "overlong slash is not valid");

	tap_is_int((int64_t)utf8_incomplete_tail(S("abc")), 0, "tail: ASCII end");
	tap_is_int((int64_t)utf8_incomplete_tail(S("ab\xE2\x82\xAC")), 0, "tail: complete euro");
	tap_is_int((int64_t)utf8_incomplete_tail(S("ab\xE2\x82")), 2, "tail: 2 of 3");
	tap_is_int((int64_t)utf8_incomplete_tail(S("ab\xF0")), 1, "tail: 1 of 4");
	tap_is_int((int64_t)utf8_incomplete_tail(S("\xF0\x9F\xA6")), 3, "tail: 3 of 4");
	tap_is_int((int64_t)utf8_incomplete_tail(S("ab\x82")), 0, "tail: stray continuation is not incomplete");
	tap_is_int((int64_t)utf8_incomplete_tail(S("ab\xED\xA0")), 0, "tail: surrogate start is not incomplete");
	tap_is_int((int64_t)utf8_incomplete_tail(S("ab\xF5")), 0, "tail: F5 is not incomplete");
	tap_is_int((int64_t)utf8_incomplete_tail(S("\xE2\x82\xAC\x80\x80\x80")), 0,
		   "tail: run of continuations is not incomplete");
	tap_is_int((int64_t)utf8_incomplete_tail("", 0), 0, "tail: empty");
}

static void test_sanitize(void)
{
	char out[64];
	size_t n = utf8_sanitize(S("a\xE2\x82" "b\xC0\x80" "c\xF0\x9F\xA6"), out, sizeof out);
	static const char want[] = "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c\xEF\xBF\xBD";
	tap_ok(n == sizeof want - 1 && memcmp(out, want, n) == 0,
	       "sanitize: one U+FFFD per maximal subpart (E2 82 -> 1, C0 80 -> 2, F0 9F A6 -> 1)");
	n = utf8_sanitize(S("ok \xC3\xB1"), out, sizeof out);
	tap_ok(n == 5 && memcmp(out, "ok \xC3\xB1", 5) == 0, "sanitize keeps valid text");
	n = utf8_sanitize(S("ab\xE2\x82\xAC"), out, 3);
	tap_ok(n == 5 && memcmp(out, "ab", 2) == 0, "sanitize reports the full length when cap is short");
	tap_is_int((int64_t)utf8_sanitize(S("\xFF"), NULL, 0), 3, "sanitize with no buffer counts");
}

int main(void)
{
	test_decode();
	test_roundtrip_all();
	test_two_byte_table();
	test_valid_and_tail();
	test_sanitize();
	return tap_done();
}
