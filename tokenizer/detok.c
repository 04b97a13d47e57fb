/* detok.c: the streaming detokenizer (see detok.h): token pieces in, whole
 * UTF-8 characters out, ill-formed bytes as U+FFFD. */
#include "tokenizer/detok.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "common/utf8.h"

void detok_init(struct detok *d, const struct tokenizer *t, bool special)
{
	d->t = t;
	d->special = special;
	d->n_pending = 0;
}

size_t detok_out_max(const struct tokenizer *t)
{
	/* worst case: every held-back and new byte becomes a 3-byte U+FFFD */
	return 3 * (tokenizer_max_piece(t) + sizeof ((struct detok *)0)->pending);
}

/* Emit `n` bytes at out + *o if they fit in cap; count them anyway. */
static void emit(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
	if (*o + n <= cap)
		memcpy(out + *o, s, n);
	*o += n;
}

static const char fffd[3] = { (char)0xEF, (char)0xBF, (char)0xBD };

int detok_push(struct detok *d, int32_t id, char *out, size_t cap)
{
	const struct tokenizer *t = d->t;
	size_t n;
	const char *p = tokenizer_piece_ref(t, id, d->special, &n);
	if (!p)
		return -EINVAL;
	size_t o = 0, i = 0;
	char pend[sizeof d->pending];
	size_t npend = 0;

	/* First finish the character held back from before: it is a valid
	 * beginning, so it either completes, turns out invalid at a byte of p,
	 * or is still incomplete after all of p. */
	if (d->n_pending > 0) {
		char buf[UTF8_MAX_LEN];
		size_t k = d->n_pending, take = n < UTF8_MAX_LEN - k ? n : UTF8_MAX_LEN - k;
		memcpy(buf, d->pending, k);
		memcpy(buf + k, p, take);
		uint32_t cp;
		size_t len;
		switch (utf8_decode(buf, k + take, &cp, &len)) {
		case UTF8_OK:
			emit(out, cap, &o, buf, len);
			i = len - k;
			break;
		case UTF8_INVALID:
			emit(out, cap, &o, fffd, sizeof fffd);
			i = len - k; /* len >= k: the held bytes were a valid start */
			break;
		case UTF8_TRUNCATED:
			if (k + take > sizeof pend)
				return -EINVAL; /* cannot happen: a prefix is at most 3 bytes */
			memcpy(pend, buf, k + take);
			npend = k + take;
			i = n;
			break;
		}
	}
	while (i < n) {
		uint32_t cp;
		size_t len;
		switch (utf8_decode(p + i, n - i, &cp, &len)) {
		case UTF8_OK:
			emit(out, cap, &o, p + i, len);
			break;
		case UTF8_INVALID:
			emit(out, cap, &o, fffd, sizeof fffd);
			break;
		case UTF8_TRUNCATED:
			memcpy(pend, p + i, len); /* len = n - i <= 3 */
			npend = len;
			break;
		}
		i += len;
	}
	if (o > cap)
		return -ENOSPC;
	if (o > INT_MAX)
		return -EOVERFLOW;
	memcpy(d->pending, pend, npend);
	d->n_pending = (uint8_t)npend;
	return (int)o;
}

int detok_flush(struct detok *d, char *out, size_t cap)
{
	if (d->n_pending == 0)
		return 0;
	if (cap < sizeof fffd)
		return -ENOSPC;
	/* the held bytes are one incomplete character: one maximal subpart */
	memcpy(out, fffd, sizeof fffd);
	d->n_pending = 0;
	return (int)sizeof fffd;
}
