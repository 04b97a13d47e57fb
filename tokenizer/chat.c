/* chat.c: see chat.h. One render function per family, each written from the
 * Jinja template it stands for; the comment above each one quotes what of the
 * template it follows. Not a Jinja interpreter: nothing here reads the
 * template beyond looking for the markers in chat_detect. */
#include "config.h"

#include "tokenizer/chat.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- output buffer ---------------------------------------------------- */

/* A growing string. An allocation failure is remembered in `err` and every
 * later append is dropped, so the render functions need not check each one. */
struct buf {
	char *p; /* (cap) bytes, p[len] == '\0' once anything was written */
	size_t len, cap;
	int err; /* 0 or -ENOMEM */
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (n >= SIZE_MAX - b->len) {
		b->err = -ENOMEM;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

/* ---- Python's str.strip() --------------------------------------------- */

/* Jinja's `trim` filter and Python's str.strip() remove every character for
 * which str.isspace() is true, not only ASCII blanks: a content ending in a
 * no-break space or an ideographic space loses it in the real template, so it
 * must here. These are the UTF-8 forms of all 29 such code points (Python
 * 3.11; the set has not changed since Unicode 6.3 dropped U+180E). Matching
 * whole encodings at either end needs no decoder: a UTF-8 lead byte is never a
 * continuation byte, so a suffix match cannot start inside another character
 * of valid text (and invalid text is left alone, as it never reaches Python). */
static const char *const py_space[] = {
	"\t", "\n", "\v", "\f", "\r", "\x1c", "\x1d", "\x1e", "\x1f", " ",
	"\xc2\x85",				/* U+0085 NEL */
	"\xc2\xa0",				/* U+00A0 NO-BREAK SPACE */
	"\xe1\x9a\x80",				/* U+1680 OGHAM SPACE MARK */
	"\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82", "\xe2\x80\x83", /* U+2000.. */
	"\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87",
	"\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a", /* ..U+200A */
	"\xe2\x80\xa8", "\xe2\x80\xa9",		/* LINE / PARAGRAPH SEPARATOR */
	"\xe2\x80\xaf",				/* U+202F NARROW NO-BREAK SPACE */
	"\xe2\x81\x9f",				/* U+205F MEDIUM MATHEMATICAL SPACE */
	"\xe3\x80\x80",				/* U+3000 IDEOGRAPHIC SPACE */
};

/* Length of the whitespace character at the start (at_end false) or at the
 * end (at_end true) of s[0..n), or 0 if there is none. */
static size_t py_space_len(const char *s, size_t n, bool at_end)
{
	for (size_t i = 0; i < sizeof py_space / sizeof py_space[0]; i++) {
		size_t k = strlen(py_space[i]);
		if (k <= n && memcmp(at_end ? s + n - k : s, py_space[i], k) == 0)
			return k;
	}
	return 0;
}

/* Append s[0..n) stripped as Python's s.strip() would. */
static void buf_put_stripped(struct buf *b, const char *s, size_t n)
{
	size_t k;
	while (n && (k = py_space_len(s, n, false)) > 0) {
		s += k;
		n -= k;
	}
	while (n && (k = py_space_len(s, n, true)) > 0)
		n -= k;
	buf_put(b, s, n);
}

static void buf_puts_stripped(struct buf *b, const char *s)
{
	buf_put_stripped(b, s, strlen(s));
}

/* ---- one rendering ---------------------------------------------------- */

struct render {
	const struct chat_msg *m;
	size_t n;
	const char *bos, *eos; /* never NULL here */
	bool add_assistant;
	struct buf out;
	struct st_err *err;
};

static int render_fail(struct render *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int render_fail(struct render *r, const char *fmt, ...)
{
	if (r->err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->err->msg, sizeof r->err->msg, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool is_role(const struct chat_msg *m, const char *role)
{
	return strcmp(m->role, role) == 0;
}

/* The system message a template takes out of messages[0], if any: most
 * templates start with {% if messages[0]['role'] == 'system' %}{% set
 * loop_messages = messages[1:] %}. Returns its content or NULL, and the index
 * of the first message after it in *first. */
static const char *leading_system(const struct render *r, size_t *first)
{
	if (is_role(&r->m[0], "system")) {
		*first = 1;
		return r->m[0].content;
	}
	*first = 0;
	return NULL;
}

/* The check most templates make on loop_messages (j counts from their first):
 * {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}raise. We
 * also refuse, at the odd places, any role but "assistant": the templates
 * either raise for it later or silently drop the message. Messages are
 * numbered from 1 in the error, as a person counts them. */
static int check_alternation(struct render *r, const char *family, size_t first)
{
	/* These families write the system message inside a user turn; with no
	 * user turn their templates print nothing of it, which we refuse rather
	 * than lose the message (fuzz-chat found it). */
	if (first > 0 && first == r->n)
		return render_fail(r,
				   "%s: the system message needs a user message after it (the "
				   "template writes it inside a user turn)",
				   family);
	for (size_t i = first; i < r->n; i++) {
		bool want_user = (i - first) % 2 == 0;
		const struct chat_msg *m = &r->m[i];
		if (is_role(m, "user") != want_user || (!want_user && !is_role(m, "assistant")))
			return render_fail(r,
					   "%s: after an optional first system message, roles must "
					   "alternate user/assistant/user/...; message %zu is \"%.40s\"",
					   family, i + 1, m->role);
	}
	return 0;
}

static int refuse_role(struct render *r, const char *family, size_t i)
{
	return render_fail(r, "%s: the template has no place for role \"%.40s\" (message %zu)",
			   family, r->m[i].role, i + 1);
}

/* chatml. OpenHermes / Qwen2 / Salamandra / ALIA:
 *   {{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}
 *   {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}
 * Qwen2 and the BSC templates also write a default system turn when the first
 * message is not "system", and the BSC ones raise unless user/assistant
 * alternate after it: strata does neither (chat.h); with a system message
 * first and alternating roles the text is the same. */
static int render_chatml(struct render *r)
{
	for (size_t i = 0; i < r->n; i++) {
		buf_puts(&r->out, "<|im_start|>");
		buf_puts(&r->out, r->m[i].role);
		buf_puts(&r->out, "\n");
		buf_puts(&r->out, r->m[i].content);
		buf_puts(&r->out, "<|im_end|>\n");
	}
	if (r->add_assistant)
		buf_puts(&r->out, "<|im_start|>assistant\n");
	return 0;
}

/* llama2. Llama-2-chat: the system message goes into the first user message,
 *   content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content']
 *   user:      bos_token + '[INST] ' + content.strip() + ' [/INST]'
 *   assistant: ' '  + content.strip() + ' ' + eos_token
 * The strip() applies to the joined text, so it is built first and stripped
 * whole (a blank user message then also loses the "\n\n" before it, as in
 * Python). A BOS opens every user turn, not only the first. */
static int render_llama2(struct render *r)
{
	size_t first;
	const char *sys = leading_system(r, &first);
	int rc = check_alternation(r, "llama2", first);
	if (rc < 0)
		return rc;
	for (size_t i = first; i < r->n; i++) {
		const char *content = r->m[i].content;
		if (is_role(&r->m[i], "user")) {
			buf_puts(&r->out, r->bos);
			buf_puts(&r->out, "[INST] ");
			if (i == first && sys) {
				struct buf joined = {0};
				buf_puts(&joined, "<<SYS>>\n");
				buf_puts(&joined, sys);
				buf_puts(&joined, "\n<</SYS>>\n\n");
				buf_puts(&joined, content);
				if (joined.err)
					r->out.err = joined.err;
				else
					buf_put_stripped(&r->out, joined.p, joined.len);
				free(joined.p);
			} else {
				buf_puts_stripped(&r->out, content);
			}
			buf_puts(&r->out, " [/INST]");
		} else {
			buf_puts(&r->out, " ");
			buf_puts_stripped(&r->out, content);
			buf_puts(&r->out, " ");
			buf_puts(&r->out, r->eos);
		}
	}
	return 0;
}

/* llama3. Meta-Llama-3-8B-Instruct:
 *   '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>'
 *   with bos_token before the first; generation prompt
 *   '<|start_header_id|>assistant<|end_header_id|>\n\n'.
 * (`| trim` binds to the content only.) Llama 3.1 and later add a system
 * block with "Cutting Knowledge Date" and today's date; not reproduced. */
static int render_llama3(struct render *r)
{
	buf_puts(&r->out, r->bos);
	for (size_t i = 0; i < r->n; i++) {
		buf_puts(&r->out, "<|start_header_id|>");
		buf_puts(&r->out, r->m[i].role);
		buf_puts(&r->out, "<|end_header_id|>\n\n");
		buf_puts_stripped(&r->out, r->m[i].content);
		buf_puts(&r->out, "<|eot_id|>");
	}
	if (r->add_assistant)
		buf_puts(&r->out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	return 0;
}

/* mistral ("v3"). Mistral-7B-Instruct-v0.3, without tools:
 *   bos_token, then
 *   user:      "[INST] " + message["content"] + "[/INST]", or on the last message
 *              (loop.last) "[INST] " + system_message + "\n\n" + content + "[/INST]"
 *   assistant: " " + message["content"]|trim + eos_token
 * So the system message joins the last message only when that is a user
 * message; a conversation ending with an answer would lose it, which we
 * refuse (chat.h; fuzz-chat found it). No generation prompt. */
static int render_mistral(struct render *r)
{
	size_t first;
	const char *sys = leading_system(r, &first);
	int rc = check_alternation(r, "mistral", first);
	if (rc < 0)
		return rc;
	if (sys && !is_role(&r->m[r->n - 1], "user"))
		return render_fail(r,
				   "mistral: the template writes the system message into the last "
				   "message only when that is a user message; this conversation "
				   "ends with \"%.40s\"",
				   r->m[r->n - 1].role);
	buf_puts(&r->out, r->bos);
	for (size_t i = first; i < r->n; i++) {
		if (is_role(&r->m[i], "user")) {
			buf_puts(&r->out, "[INST] ");
			if (i == r->n - 1 && sys) {
				buf_puts(&r->out, sys);
				buf_puts(&r->out, "\n\n");
			}
			buf_puts(&r->out, r->m[i].content);
			buf_puts(&r->out, "[/INST]");
		} else {
			buf_puts(&r->out, " ");
			buf_puts_stripped(&r->out, r->m[i].content);
			buf_puts(&r->out, r->eos);
		}
	}
	return 0;
}

/* mistral-v1. Mistral-7B-Instruct-v0.1/v0.2 as updated in 2024:
 *   bos_token, then
 *   user:      ' [INST] ' + message['content'] + ' [/INST]', the first one
 *              ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]'
 *   assistant: ' ' + message['content'] + eos_token  (no trim)
 * No generation prompt. */
static int render_mistral_v1(struct render *r)
{
	size_t first;
	const char *sys = leading_system(r, &first);
	int rc = check_alternation(r, "mistral-v1", first);
	if (rc < 0)
		return rc;
	buf_puts(&r->out, r->bos);
	for (size_t i = first; i < r->n; i++) {
		if (is_role(&r->m[i], "user")) {
			buf_puts(&r->out, " [INST] ");
			if (i == first && sys) {
				buf_puts(&r->out, sys);
				buf_puts(&r->out, "\n\n");
			}
			buf_puts(&r->out, r->m[i].content);
			buf_puts(&r->out, " [/INST]");
		} else {
			buf_puts(&r->out, " ");
			buf_puts(&r->out, r->m[i].content);
			buf_puts(&r->out, r->eos);
		}
	}
	return 0;
}

/* mistral-legacy. Mixtral-8x7B-Instruct-v0.1 and the first
 * Mistral-7B-Instruct-v0.2 template (which many GGUF files still carry):
 *   bos_token, then user '[INST] ' + message['content'] + ' [/INST]',
 *   assistant message['content'] + eos_token. No generation prompt.
 * The template raises on a system message; we join it to the first user
 * message the way Mistral's own later templates do (system + "\n\n"), since a
 * chat API that cannot take a system message at all is of little use. */
static int render_mistral_legacy(struct render *r)
{
	size_t first;
	const char *sys = leading_system(r, &first);
	int rc = check_alternation(r, "mistral-legacy", first);
	if (rc < 0)
		return rc;
	buf_puts(&r->out, r->bos);
	for (size_t i = first; i < r->n; i++) {
		if (is_role(&r->m[i], "user")) {
			buf_puts(&r->out, "[INST] ");
			if (i == first && sys) {
				buf_puts(&r->out, sys);
				buf_puts(&r->out, "\n\n");
			}
			buf_puts(&r->out, r->m[i].content);
			buf_puts(&r->out, " [/INST]");
		} else {
			buf_puts(&r->out, r->m[i].content);
			buf_puts(&r->out, r->eos);
		}
	}
	return 0;
}

/* gemma. gemma-2-it:
 *   bos_token, then '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n'
 *   with role 'model' for 'assistant'; generation prompt '<start_of_turn>model\n'.
 * The template raises on a system message. Gemma 3's template folds it into
 * the first user turn as messages[0]['content'] + '\n\n' (not trimmed) before
 * the trimmed user text; we do the same for every gemma. */
static int render_gemma(struct render *r)
{
	size_t first;
	const char *sys = leading_system(r, &first);
	int rc = check_alternation(r, "gemma", first);
	if (rc < 0)
		return rc;
	buf_puts(&r->out, r->bos);
	for (size_t i = first; i < r->n; i++) {
		bool user = is_role(&r->m[i], "user");
		buf_puts(&r->out, user ? "<start_of_turn>user\n" : "<start_of_turn>model\n");
		if (i == first && sys) {
			buf_puts(&r->out, sys);
			buf_puts(&r->out, "\n\n");
		}
		buf_puts_stripped(&r->out, r->m[i].content);
		buf_puts(&r->out, "<end_of_turn>\n");
	}
	if (r->add_assistant)
		buf_puts(&r->out, "<start_of_turn>model\n");
	return 0;
}

/* phi3. Phi-3-mini-4k-instruct (template of July 2024):
 *   '<|system|>\n' / '<|user|>\n' / '<|assistant|>\n' + message['content'] + '<|end|>\n'
 *   then '<|assistant|>\n' if add_generation_prompt, else eos_token.
 * Any order of roles; other roles are dropped by the template, refused here.
 * (The first Phi-3 template began with bos_token, dropped system messages and
 * wrote '<|assistant|>\n' after every user turn: not reproduced.) */
static int render_phi3(struct render *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct chat_msg *m = &r->m[i];
		if (!is_role(m, "system") && !is_role(m, "user") && !is_role(m, "assistant"))
			return refuse_role(r, "phi3", i);
		buf_puts(&r->out, "<|");
		buf_puts(&r->out, m->role);
		buf_puts(&r->out, "|>\n");
		buf_puts(&r->out, m->content);
		buf_puts(&r->out, "<|end|>\n");
	}
	buf_puts(&r->out, r->add_assistant ? "<|assistant|>\n" : r->eos);
	return 0;
}

/* zephyr. zephyr-7b-beta, whose template has a line break after each
 * {{ ... }} that trim_blocks keeps (it only eats those after {% ... %}):
 *   '<|user|>\n' / '<|system|>\n' / '<|assistant|>\n' + message['content'] + eos_token, "\n"
 *   and after the last message, if add_generation_prompt, '<|assistant|>' "\n". */
static int render_zephyr(struct render *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct chat_msg *m = &r->m[i];
		if (!is_role(m, "system") && !is_role(m, "user") && !is_role(m, "assistant"))
			return refuse_role(r, "zephyr", i);
		buf_puts(&r->out, "<|");
		buf_puts(&r->out, m->role);
		buf_puts(&r->out, "|>\n");
		buf_puts(&r->out, m->content);
		buf_puts(&r->out, r->eos);
		buf_puts(&r->out, "\n");
	}
	if (r->add_assistant)
		buf_puts(&r->out, "<|assistant|>\n");
	return 0;
}

/* deepseek. deepseek-llm-7b-chat / 67b-chat (DeepSeek-V2 has the same):
 *   bos_token, then user 'User: ' + content + '\n\n', assistant
 *   'Assistant: ' + content + eos_token, system content + '\n\n';
 *   generation prompt 'Assistant:' (no space: the model writes it). */
static int render_deepseek(struct render *r)
{
	buf_puts(&r->out, r->bos);
	for (size_t i = 0; i < r->n; i++) {
		const struct chat_msg *m = &r->m[i];
		if (is_role(m, "user")) {
			buf_puts(&r->out, "User: ");
			buf_puts(&r->out, m->content);
			buf_puts(&r->out, "\n\n");
		} else if (is_role(m, "assistant")) {
			buf_puts(&r->out, "Assistant: ");
			buf_puts(&r->out, m->content);
			buf_puts(&r->out, r->eos);
		} else if (is_role(m, "system")) {
			buf_puts(&r->out, m->content);
			buf_puts(&r->out, "\n\n");
		} else {
			return refuse_role(r, "deepseek", i);
		}
	}
	if (r->add_assistant)
		buf_puts(&r->out, "Assistant:");
	return 0;
}

/* deepseek-coder. deepseek-coder-*-instruct:
 *   bos_token, then system content as is, user '### Instruction:\n' + content + '\n',
 *   assistant '### Response:\n' + content + '\n<|EOT|>\n';
 *   generation prompt '### Response:' plus the line break after it.
 * Without a system message the template writes its own preamble ("You are an
 * AI programming assistant, utilizing the Deepseek Coder model..."); we do
 * not (chat.h). The template takes any other role for the assistant; we
 * refuse it. */
static int render_deepseek_coder(struct render *r)
{
	buf_puts(&r->out, r->bos);
	for (size_t i = 0; i < r->n; i++) {
		const struct chat_msg *m = &r->m[i];
		if (is_role(m, "system")) {
			buf_puts(&r->out, m->content);
		} else if (is_role(m, "user")) {
			buf_puts(&r->out, "### Instruction:\n");
			buf_puts(&r->out, m->content);
			buf_puts(&r->out, "\n");
		} else if (is_role(m, "assistant")) {
			buf_puts(&r->out, "### Response:\n");
			buf_puts(&r->out, m->content);
			buf_puts(&r->out, "\n<|EOT|>\n");
		} else {
			return refuse_role(r, "deepseek-coder", i);
		}
	}
	if (r->add_assistant)
		buf_puts(&r->out, "### Response:\n");
	return 0;
}

/* ---- the family table ------------------------------------------------- */

static const struct family {
	const char *name;
	const char *end_of_turn; /* NULL: EOS only */
	int (*render)(struct render *r);
} families[CHAT_FAMILY_COUNT] = {
	[CHAT_CHATML] = {"chatml", "<|im_end|>", render_chatml},
	[CHAT_LLAMA2] = {"llama2", NULL, render_llama2},
	[CHAT_LLAMA3] = {"llama3", "<|eot_id|>", render_llama3},
	[CHAT_MISTRAL] = {"mistral", NULL, render_mistral},
	[CHAT_GEMMA] = {"gemma", "<end_of_turn>", render_gemma},
	[CHAT_PHI3] = {"phi3", "<|end|>", render_phi3},
	[CHAT_ZEPHYR] = {"zephyr", NULL, render_zephyr},
	[CHAT_DEEPSEEK] = {"deepseek", NULL, render_deepseek},
	[CHAT_MISTRAL_V1] = {"mistral-v1", NULL, render_mistral_v1},
	[CHAT_MISTRAL_LEGACY] = {"mistral-legacy", NULL, render_mistral_legacy},
	[CHAT_DEEPSEEK_CODER] = {"deepseek-coder", "<|EOT|>", render_deepseek_coder},
};

/* Kept by hand in the enum's order; test-chat checks it names every family. */
static const char family_list[] = "chatml, llama2, llama3, mistral, gemma, phi3, zephyr, "
				  "deepseek, mistral-v1, mistral-legacy, deepseek-coder";

const char *chat_family_name(enum chat_family f)
{
	return (unsigned)f < CHAT_FAMILY_COUNT ? families[f].name : "?";
}

const char *chat_family_list(void)
{
	return family_list;
}

const char *chat_end_of_turn(enum chat_family f)
{
	return (unsigned)f < CHAT_FAMILY_COUNT ? families[f].end_of_turn : NULL;
}

int chat_family_parse(const char *name, enum chat_family *out)
{
	if (!name)
		return -EINVAL;
	if (strcmp(name, "mistral-v3") == 0) { /* llama.cpp's name for it */
		*out = CHAT_MISTRAL;
		return 0;
	}
	for (int f = 0; f < CHAT_FAMILY_COUNT; f++) {
		if (strcmp(name, families[f].name) == 0) {
			*out = (enum chat_family)f;
			return 0;
		}
	}
	return -EINVAL;
}

int chat_render(enum chat_family f, const struct chat_msg *msgs, size_t n, const char *bos,
		const char *eos, bool add_assistant, char **out, size_t *out_len, struct st_err *err)
{
	struct render r = {
		.m = msgs,
		.n = n,
		.bos = bos ? bos : "",
		.eos = eos ? eos : "",
		.add_assistant = add_assistant,
		.err = err,
	};
	*out = NULL;
	if (out_len)
		*out_len = 0;
	if (err)
		err->msg[0] = '\0';
	if ((unsigned)f >= CHAT_FAMILY_COUNT)
		return render_fail(&r, "unknown chat template family %d", (int)f);
	if (n == 0 || !msgs)
		return render_fail(&r, "%s: no messages to render", families[f].name);
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].role || !msgs[i].content)
			return render_fail(&r, "%s: message %zu has no %s", families[f].name, i + 1,
					   msgs[i].role ? "content" : "role");

	int rc = families[f].render(&r);
	if (rc == 0 && r.out.err)
		rc = r.out.err;
	if (rc == 0 && !r.out.p)
		buf_put(&r.out, "", 0); /* an empty rendering is still a string */
	if (rc == 0 && r.out.err)
		rc = r.out.err;
	if (rc < 0) {
		if (rc == -ENOMEM)
			render_fail(&r, "%s: out of memory", families[f].name);
		free(r.out.p);
		return rc;
	}
	*out = r.out.p;
	if (out_len)
		*out_len = r.out.len;
	return 0;
}

/* ---- detection -------------------------------------------------------- */

static bool has(const char *t, size_t len, const char *needle)
{
	size_t k = strlen(needle);
	if (k > len)
		return false;
	for (size_t i = 0; i + k <= len; i++)
		if (t[i] == needle[0] && memcmp(t + i, needle, k) == 0)
			return true;
	return false;
}

/* Markers, most specific first. What each looks for is a piece of text only
 * that family's templates spell; the order settles templates with several
 * (a chatml template mentioning [INST] is still chatml). */
int chat_detect(const char *tmpl, size_t len, enum chat_family *out)
{
	if (!tmpl)
		return -ENOENT;
	if (has(tmpl, len, "<|im_start|>")) {
		if (has(tmpl, len, "<|im_sep|>")) /* Phi-4: role<|im_sep|>, no newline */
			return -ENOENT;
		*out = CHAT_CHATML;
		return 0;
	}
	if (has(tmpl, len, "[INST]")) {
		if (has(tmpl, len, "[SYSTEM_PROMPT]")) /* Mistral v7: not rendered */
			return -ENOENT;
		if (has(tmpl, len, "<<SYS>>"))
			*out = CHAT_LLAMA2;
		else if (has(tmpl, len, "[AVAILABLE_TOOLS]"))
			*out = CHAT_MISTRAL;
		else if (has(tmpl, len, "' [INST] '"))
			*out = CHAT_MISTRAL_V1;
		else
			*out = CHAT_MISTRAL_LEGACY;
		return 0;
	}
	if (has(tmpl, len, "<|start_header_id|>") && has(tmpl, len, "<|end_header_id|>")) {
		*out = CHAT_LLAMA3;
		return 0;
	}
	if (has(tmpl, len, "<start_of_turn>")) {
		*out = CHAT_GEMMA;
		return 0;
	}
	if (has(tmpl, len, "<|user|>") && has(tmpl, len, "<|assistant|>")) {
		/* Phi-3 closes turns with <|end|>; zephyr with the EOS token */
		*out = has(tmpl, len, "<|end|>") ? CHAT_PHI3 : CHAT_ZEPHYR;
		return 0;
	}
	if (has(tmpl, len, "### Instruction:") && has(tmpl, len, "<|EOT|>")) {
		*out = CHAT_DEEPSEEK_CODER;
		return 0;
	}
	if (has(tmpl, len, "'User: '") && has(tmpl, len, "'Assistant: '")) {
		*out = CHAT_DEEPSEEK;
		return 0;
	}
	return -ENOENT;
}
