/* chat-render.c: a test driver that puts tokenizer/chat.c behind stdin and
 * stdout, so tests/chat-reference.py can compare it with jinja2 byte for byte.
 * Not a user tool (no JSON, no escaping): the input is control-byte framed.
 *
 *   chat-render            stdin:  FAMILY US BOS US EOS US ADD { RS ROLE US CONTENT }
 *                          stdout: the rendering, exactly; exit 0
 *   chat-render --detect   stdin:  a template; stdout: the family name; exit 0
 *
 * US is 0x1f and RS 0x1e (ASCII's unit and record separators), ADD is "0" or
 * "1". Exit 3 when chat_render or chat_detect refuses (-EINVAL, -ENOENT; the
 * message on stderr), 1 on other failures, 2 on bad input. */
#include "config.h"

#include "tokenizer/chat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US '\x1f'
#define RS '\x1e'

/* All of stdin, NUL-terminated; NULL on failure. */
static char *read_all(size_t *len)
{
	size_t cap = 4096, n = 0;
	char *p = malloc(cap);
	if (!p)
		return NULL;
	for (;;) {
		if (n + 1 >= cap) {
			char *q = realloc(p, cap * 2);
			if (!q) {
				free(p);
				return NULL;
			}
			p = q;
			cap *= 2;
		}
		size_t got = fread(p + n, 1, cap - 1 - n, stdin);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(stdin)) {
		free(p);
		return NULL;
	}
	p[n] = '\0';
	*len = n;
	return p;
}

/* Cut s at the next `sep` (writing a NUL there) and return what follows, or
 * NULL if there is none. */
static char *cut(char *s, char sep)
{
	char *e = strchr(s, sep);
	if (!e)
		return NULL;
	*e = '\0';
	return e + 1;
}

static int detect(void)
{
	size_t len;
	char *t = read_all(&len);
	if (!t)
		return 1;
	enum chat_family f;
	int rc = chat_detect(t, len, &f);
	free(t);
	if (rc < 0) {
		fprintf(stderr, "chat_detect: %s\n", strerror(-rc));
		return 3;
	}
	printf("%s\n", chat_family_name(f));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--detect") == 0)
		return detect();
	if (argc != 1) {
		fprintf(stderr, "usage: chat-render [--detect] < input\n");
		return 2;
	}

	size_t len;
	char *in = read_all(&len);
	if (!in)
		return 1;
	if (strlen(in) != len) {
		fprintf(stderr, "chat-render: NUL byte in the input\n");
		free(in);
		return 2;
	}

	/* the header record, then one record per message */
	char *rest = cut(in, RS);
	char *family = in, *bos = cut(family, US);
	char *eos = bos ? cut(bos, US) : NULL;
	char *add = eos ? cut(eos, US) : NULL;
	enum chat_family f;
	if (!add || (strcmp(add, "0") != 0 && strcmp(add, "1") != 0) ||
	    chat_family_parse(family, &f) < 0) {
		fprintf(stderr, "chat-render: bad header (family %s; known: %s)\n", family,
			chat_family_list());
		free(in);
		return 2;
	}

	size_t n = 0; /* messages: one more than the RS bytes left */
	if (rest) {
		n = 1;
		for (const char *s = rest; *s; s++)
			n += *s == RS;
	}
	struct chat_msg *msgs = calloc(n ? n : 1, sizeof *msgs);
	if (!msgs) {
		free(in);
		return 1;
	}
	n = 0;
	while (rest) {
		char *msg = rest;
		rest = cut(msg, RS);
		char *content = cut(msg, US);
		if (!content) {
			fprintf(stderr, "chat-render: message %zu has no unit separator\n", n + 1);
			free(msgs);
			free(in);
			return 2;
		}
		msgs[n].role = msg;
		msgs[n].content = content;
		n++;
	}

	struct st_err err = { "" };
	char *out;
	size_t out_len;
	int rc = chat_render(f, msgs, n, bos, eos, add[0] == '1', &out, &out_len, &err);
	free(msgs);
	free(in);
	if (rc < 0) {
		fprintf(stderr, "chat_render: %s (%s)\n", err.msg, strerror(-rc));
		return rc == -EINVAL ? 3 : 1;
	}
	int ok = fwrite(out, 1, out_len, stdout) == out_len && fflush(stdout) == 0;
	free(out);
	return ok ? 0 : 1;
}
