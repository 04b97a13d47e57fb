/* test-parse.c: common/parse: integers, floats, yes/no, sizes and C escapes,
 * each with what it must refuse. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/parse.h"
#include "tests/tap.h"

static void test_parse_size(void)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t v;
	} cases[] = {
		{ "0", 0, 0 },
		{ "4096", 0, 4096 },
		{ "512M", 0, 512ull << 20 },
		{ "2G", 0, 2ull << 30 },
		{ "1.5G", 0, 3ull << 29 },
		{ "1.5GiB", 0, 3ull << 29 },
		{ "64k", 0, 64ull << 10 },
		{ "3T", 0, 3ull << 40 },
		{ "10MB", 0, 10ull << 20 },
		{ "0.5K", 0, 512 },
		{ "0.0001K", -ERANGE, 0 },   /* non-zero but rounds to 0 bytes: not "no budget" */
		{ "0.000", 0, 0 },
		{ "0.5", -ERANGE, 0 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -ERANGE, 0 },
		{ "16777216T", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "G", -EINVAL, 0 },
		{ "-1G", -EINVAL, 0 },
		{ "12X", -EINVAL, 0 },
		{ "1.5.G", -EINVAL, 0 },
		{ " 1G", -EINVAL, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t v = 0;
		int rc = parse_size(cases[i].s, &v);
		if (cases[i].rc == 0)
			tap_ok(rc == 0 && v == cases[i].v, "parse_size(\"%s\") = %" PRIu64 " (got %d, %" PRIu64 ")",
			       cases[i].s, cases[i].v, rc, v);
		else
			tap_is_int(rc, cases[i].rc, "parse_size(\"%s\") fails", cases[i].s);
	}
}

static void test_integers(void)
{
	uint32_t u = 7;
	uint64_t v = 7;
	tap_ok(parse_u32("0", &u) == 0 && u == 0, "u32 0");
	tap_ok(parse_u32("4294967295", &u) == 0 && u == UINT32_MAX, "u32 max");
	tap_is_int(parse_u32("4294967296", &u), -ERANGE, "u32 max + 1");
	tap_ok(parse_u64("18446744073709551615", &v) == 0 && v == UINT64_MAX, "u64 max");
	tap_is_int(parse_u64("18446744073709551616", &v), -ERANGE, "u64 max + 1");
	static const char *const bad[] = { "", "-1", "+1", " 1", "1 ", "0x10", "1e3", "12a" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		tap_is_int(parse_u32(bad[i], &u), -EINVAL, "u32 refuses \"%s\"", bad[i]);
	tap_is_int(parse_u32(NULL, &u), -EINVAL, "u32 refuses NULL");
}

static void test_floats(void)
{
	float f = 0;
	tap_ok(parse_float("0.8", &f) == 0 && f == 0.8f, "float 0.8");
	tap_ok(parse_float("-1e-3", &f) == 0 && f == -1e-3f, "float -1e-3");
	static const char *const bad[] = { "", "nan", "inf", "-inf", "1e99", "0.8x", "x" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		tap_is_int(parse_float(bad[i], &f), -EINVAL, "float refuses \"%s\"", bad[i]);
}

static void test_bools(void)
{
	bool b = false;
	tap_ok(parse_bool(NULL, &b) == 0 && b, "a bare flag is yes");
	tap_ok(parse_bool("YES", &b) == 0 && b, "YES");
	tap_ok(parse_bool("off", &b) == 0 && !b, "off");
	tap_ok(parse_bool("0", &b) == 0 && !b, "0");
	tap_is_int(parse_bool("maybe", &b), -EINVAL, "maybe is refused");
}

static void test_escapes(void)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ "plain", "plain" },
		{ "\\n\\n", "\n\n" },
		{ "a\\tb\\r", "a\tb\r" },
		{ "\\\\", "\\" },
		{ "\\\"q\\'", "\"q'" },
		{ "\\x41\\x7a", "Az" },
		{ "\\u00e9", "\xc3\xa9" },
		{ "\\U0001F600", "\xf0\x9f\x98\x80" },
		{ "\\q", "\\q" },	/* unknown: kept, as llama.cpp does */
		{ "end\\", "end\\" }, /* a trailing backslash is kept */
	};
	char buf[64];
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int n = parse_escapes(ok[i].in, buf, sizeof buf);
		tap_ok(n == (int)strlen(ok[i].out) && strcmp(buf, ok[i].out) == 0,
		       "escapes: \"%s\" (got %d)", ok[i].in, n);
	}
	static const char *const bad[] = { "\\x", "\\x00", "\\u0000", "\\ud800", "\\U00110000",
					   "\\u12" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		tap_is_int(parse_escapes(bad[i], buf, sizeof buf), -EINVAL, "escapes refuse \"%s\"", bad[i]);
	tap_is_int(parse_escapes("abc", buf, 3), -ENOSPC, "escapes: no room for the NUL");
}

static void test_format_size(void)
{
	char b[32];
	tap_is_str(format_size(512, b, sizeof b), "512 B", "512 bytes");
	tap_is_str(format_size(3ull << 29, b, sizeof b), "1.50 GiB", "1.5 GiB");
	tap_is_str(format_size(100ull << 20, b, sizeof b), "100.0 MiB", "100 MiB");
}

int main(void)
{
	test_parse_size();
	test_integers();
	test_floats();
	test_bools();
	test_escapes();
	test_format_size();
	return tap_done();
}
