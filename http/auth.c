/* auth.c: see auth.h. */
#include "config.h"

#include "http/auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int auth_load(struct auth *a, const char *path, struct st_err *err)
{
	char line[4096];
	unsigned lineno = 0;
	FILE *f = fopen(path, "re");

	a->n = 0;
	if (!f)
		return st_errf(err, -errno, "cannot read the API key file %s: %s", path, strerror(errno));
	while (fgets(line, sizeof line, f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof line - 1 && line[len - 1] != '\n') {
			fclose(f);
			return st_errf(err, -EINVAL, "%s:%u: line too long", path, lineno);
		}
		char *s = line, *e = line + len;
		while (*s == ' ' || *s == '\t')
			s++;
		while (e > s && strchr(" \t\r\n", e[-1]))
			e--;
		*e = '\0';
		if (!*s || *s == '#')
			continue;
		if ((size_t)(e - s) > AUTH_MAX_KEY_LEN) {
			fclose(f);
			return st_errf(err, -EINVAL, "%s:%u: a key is longer than %d bytes", path, lineno,
				       AUTH_MAX_KEY_LEN);
		}
		for (const char *c = s; *c; c++) {
			if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f) {
				fclose(f);
				return st_errf(err, -EINVAL, "%s:%u: a key may only hold printable ASCII without spaces",
					       path, lineno);
			}
		}
		if (a->n == AUTH_MAX_KEYS) {
			fclose(f);
			return st_errf(err, -E2BIG, "%s: more than %d keys", path, AUTH_MAX_KEYS);
		}
		memcpy(a->keys[a->n++], s, (size_t)(e - s) + 1);
	}
	int bad = ferror(f);
	fclose(f);
	if (bad)
		return st_errf(err, -EIO, "reading the API key file %s failed", path);
	if (a->n == 0)
		return st_errf(err, -EINVAL, "the API key file %s holds no key", path);
	return 0;
}

/* Equal in time that depends only on the lengths. */
static bool same(const char *given, size_t glen, const char *key)
{
	size_t klen = strlen(key);
	unsigned char diff = glen != klen;
	for (size_t i = 0; i < klen; i++)
		diff |= (unsigned char)key[i] ^ (unsigned char)(i < glen ? given[i] : 0);
	return diff == 0;
}

bool auth_check(const struct auth *a, const char *authorization)
{
	if (a->n == 0)
		return true;
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	const char *tok = authorization + 7;
	while (*tok == ' ')
		tok++;
	size_t len = strlen(tok);
	while (len && tok[len - 1] == ' ')
		len--;
	bool ok = false;
	for (size_t i = 0; i < a->n; i++) /* no early exit: every key is compared */
		ok |= same(tok, len, a->keys[i]);
	return ok;
}
