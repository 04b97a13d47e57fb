/* parse.c: see parse.h. */
#include "common/parse.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/utf8.h"

int parse_u64(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -EINVAL; /* strtoull would take " 1", "+1" and "-1" */
	uint64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;
	int rc = parse_u64(s, &v);
	if (rc < 0)
		return rc;
	if (v > UINT32_MAX)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

int parse_float(const char *s, float *out)
{
	char *end;
	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	float v = strtof(s, &end);
	if (end == s || *end || errno == ERANGE || !isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	if (!s) {
		*out = true;
		return 0;
	}
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_size(const char *s, uint64_t *out)
{
	if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return -EINVAL;
	const char *p = s;
	uint64_t whole = 0;
	bool digits = false, nonzero = false;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (whole > (UINT64_MAX - d) / 10)
			return -ERANGE;
		whole = whole * 10 + d;
		digits = true;
		nonzero |= d != 0;
	}
	double frac = 0, scale = 0.1;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			frac += (*p - '0') * scale;
			scale /= 10;
			digits = true;
			nonzero |= *p != '0';
		}
	}
	if (!digits)
		return -EINVAL;
	unsigned shift = 0;
	switch (*p) {
	case 'k': case 'K': shift = 10; p++; break;
	case 'm': case 'M': shift = 20; p++; break;
	case 'g': case 'G': shift = 30; p++; break;
	case 't': case 'T': shift = 40; p++; break;
	default: break;
	}
	if (shift && *p == 'i')
		p++;
	if (*p == 'B' || *p == 'b')
		p++;
	if (*p != '\0')
		return -EINVAL;
	if (shift && whole > (UINT64_MAX >> shift))
		return -ERANGE;
	uint64_t v = whole << shift;
	if (frac > 0) {
		double f = floor(frac * (double)(1ull << shift));
		if ((double)(UINT64_MAX - v) < f)
			return -ERANGE;
		v += (uint64_t)f;
	}
	if (v == 0 && nonzero)
		return -ERANGE; /* "0.0001K": the person meant something, not "none" */
	*out = v;
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Up to `max` hex digits at s (at least `min`); the value, or -1. *used says how many. */
static long hex_run(const char *s, int min, int max, int *used)
{
	long v = 0;
	int n = 0;
	while (n < max && hex_digit(s[n]) >= 0)
		v = v * 16 + hex_digit(s[n++]);
	*used = n;
	return n >= min ? v : -1;
}

int parse_escapes(const char *s, char *out, size_t cap)
{
	size_t n = 0;
	/* every escape is at least as long as what it stands for, so the
	 * result never outgrows the input: one check up front suffices */
	if (cap <= strlen(s))
		return -ENOSPC;
	while (*s) {
		if (*s != '\\' || s[1] == '\0') {
			out[n++] = *s++;
			continue;
		}
		char c = s[1], simple = 0;
		switch (c) {
		case 'n': simple = '\n'; break;
		case 't': simple = '\t'; break;
		case 'r': simple = '\r'; break;
		case 'a': simple = '\a'; break;
		case 'b': simple = '\b'; break;
		case 'f': simple = '\f'; break;
		case 'v': simple = '\v'; break;
		case '\\': case '"': case '\'': simple = c; break;
		default: break;
		}
		if (simple) {
			out[n++] = simple;
			s += 2;
			continue;
		}
		int used = 0;
		if (c == 'x') {
			long v = hex_run(s + 2, 1, 2, &used);
			if (v <= 0)
				return -EINVAL; /* no digits, or \x00 */
			out[n++] = (char)v;
			s += 2 + used;
			continue;
		}
		if (c == 'u' || c == 'U') {
			int digits = c == 'u' ? 4 : 8;
			long v = hex_run(s + 2, digits, digits, &used);
			char buf[UTF8_MAX_LEN];
			size_t len = v > 0 ? utf8_encode((uint32_t)v, buf) : 0;
			if (len == 0)
				return -EINVAL;
			memcpy(out + n, buf, len);
			n += len;
			s += 2 + used;
			continue;
		}
		/* not an escape we know: keep the backslash and the character */
		out[n++] = *s++;
	}
	out[n] = '\0';
	return (int)n;
}

const char *format_size(uint64_t n, char *buf, size_t cap)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%" PRIu64 " B", n);
	else
		snprintf(buf, cap, "%.*f %s", v < 10 ? 2 : 1, v, units[u]);
	return buf;
}
