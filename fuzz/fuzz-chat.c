/* fuzz-chat.c: fuzz target for the chat templates (tokenizer/chat.c): the
 * family recognized from a model's template text (untrusted: it comes from the
 * GGUF file) and a conversation rendered from a client's messages.
 *
 * Input: one control byte (bits 0-3: the family, modulo their number; bit 4:
 * add the generation prompt), then the messages, separated by 0x01 bytes; each
 * message's first byte picks its role (system, user, assistant, tool or an
 * odd one, modulo 5) and the rest is its content, made valid UTF-8 with
 * U+FFFD (stratad refuses anything else before it renders). The whole input
 * is also given to chat_detect as a template's text.
 * Checks, aborting on failure: chat_detect answers a family in range or
 * -ENOENT; a rendering succeeds with valid UTF-8 whose length is *out_len and
 * that holds every message's content (the part between any whitespace or
 * non-ASCII bytes at its ends, as a template's `trim` may remove those), or
 * fails with -EINVAL, a NULL *out and a message that says why; rendering
 * twice gives the same bytes. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "fuzz/fuzz.h"
#include "tokenizer/chat.h"

enum { MAX_MSGS = 16 };

/* Bytes a template's trim (Python's str.strip) may take from the ends of a
 * content: ASCII whitespace including U+001C..U+001F, and, conservatively,
 * every non-ASCII byte (Unicode has whitespace there too). */
static bool strippable(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F) || c >= 0x80;
}

/* Does `hay` hold the core of `content` (its ends stripped as above)? */
static bool holds_core(const char *hay, const char *content)
{
	size_t b = 0, e = strlen(content);
	while (b < e && strippable((unsigned char)content[b]))
		b++;
	while (e > b && strippable((unsigned char)content[e - 1]))
		e--;
	if (b == e)
		return true;
	return memmem(hay, strlen(hay), content + b, e - b) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const roles[] = { "system", "user", "assistant", "tool", "narrator" };
	enum chat_family f;
	int rc = chat_detect((const char *)data, size, &f);
	CHECK(rc == -ENOENT || (rc == 0 && (int)f >= 0 && f < CHAT_FAMILY_COUNT));
	if (size < 1)
		return 0;
	f = (enum chat_family)((data[0] & 15) % CHAT_FAMILY_COUNT);
	bool add_assistant = data[0] & 16;
	const char *p = (const char *)data + 1, *end = (const char *)data + size;

	struct chat_msg msgs[MAX_MSGS];
	char *owned[MAX_MSGS];
	size_t n = 0;
	while (p < end && n < MAX_MSGS) {
		const char *sep = memchr(p, 0x01, (size_t)(end - p));
		const char *stop = sep ? sep : end;
		size_t len = (size_t)(stop - p);
		msgs[n].role = roles[len ? (unsigned char)p[0] % 5 : 1];
		const char *body = len ? p + 1 : p;
		size_t blen = len ? len - 1 : 0;
		/* NUL ends a C string and cannot reach the renderer (stratad
		 * refuses it on the wire): it becomes '?' here */
		char *raw = malloc(blen + 1);
		CHECK(raw);
		for (size_t i = 0; i < blen; i++)
			raw[i] = body[i] ? body[i] : '?';
		size_t need = utf8_sanitize(raw, blen, NULL, 0);
		owned[n] = malloc(need + 1);
		CHECK(owned[n]);
		utf8_sanitize(raw, blen, owned[n], need);
		owned[n][need] = '\0';
		free(raw);
		msgs[n].content = owned[n];
		n++;
		p = sep ? sep + 1 : end;
	}
	if (n == 0)
		return 0;

	struct st_err err = { { 0 } };
	char *out = (char *)1, *again = NULL;
	size_t out_len = 0, again_len = 0;
	rc = chat_render(f, msgs, n, "<s>", "</s>", add_assistant, &out, &out_len, &err);
	if (rc == 0) {
		CHECK(out && strlen(out) == out_len);
		CHECK(utf8_valid(out, out_len));
		for (size_t i = 0; i < n; i++)
			if (!holds_core(out, msgs[i].content)) {
				fprintf(stderr, "fuzz-chat: %s lost message %zu\n", chat_family_name(f), i);
				CHECK(!"a message's content is missing from the rendering");
			}
		CHECK(chat_render(f, msgs, n, "<s>", "</s>", add_assistant, &again, &again_len,
				  NULL) == 0);
		CHECK(again_len == out_len && memcmp(again, out, out_len) == 0);
		free(again);
		free(out);
	} else {
		CHECK((rc == -EINVAL && out == NULL && err.msg[0]) || (rc == -ENOMEM && out == NULL));
	}
	for (size_t i = 0; i < n; i++)
		free(owned[i]);
	return 0;
}
