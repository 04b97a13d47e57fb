/* unicode.c: lookups over the generated tables of unicode_data.c (see
 * unicode.h). Everything is a binary search over a few thousand sorted
 * entries, with a direct table for ASCII, which most text is. */
#include "tokenizer/unicode.h"

static uint16_t flags_search(uint32_t cp)
{
	size_t lo = 0, hi = unicode_n_ranges; /* answer in [lo, hi) */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (unicode_ranges[mid].start <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return unicode_ranges[lo].flags;
}

uint16_t unicode_flags(uint32_t cp)
{
	if (cp < 128)
		return unicode_ascii_flags[cp];
	if (cp >= UNICODE_MAX_CP)
		return UNICODE_UNDEFINED;
	return flags_search(cp);
}

uint32_t unicode_tolower(uint32_t cp)
{
	if (cp < 128)
		return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
	size_t lo = 0, hi = unicode_n_lower;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (unicode_lower[mid].from < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < unicode_n_lower && unicode_lower[lo].from == cp)
		return unicode_lower[lo].to;
	return cp;
}

/* GPT-2 keeps '!'..'~', 0xA1..0xAC and 0xAE..0xFF as themselves; the 68
 * others, in byte order, are 0x00..0x20 (n = 0..32), 0x7F..0xA0 (n = 33..66)
 * and 0xAD (n = 67), and byte number n maps to U+0100 + n. */
uint32_t unicode_byte_to_cp(uint8_t byte)
{
	if (byte <= 0x20)
		return 0x100u + byte;
	if (byte >= 0x7F && byte <= 0xA0)
		return 0x100u + 33 + (byte - 0x7Fu);
	if (byte == 0xAD)
		return 0x100u + 67;
	return byte;
}

int unicode_cp_to_byte(uint32_t cp)
{
	if (cp < 0x100)
		return unicode_byte_to_cp((uint8_t)cp) == cp ? (int)cp : -1;
	if (cp < 0x100 + 33)
		return (int)(cp - 0x100);
	if (cp < 0x100 + 67)
		return (int)(cp - 0x100 - 33 + 0x7F);
	if (cp == 0x100 + 67)
		return 0xAD;
	return -1;
}
