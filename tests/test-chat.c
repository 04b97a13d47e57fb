/* test-chat.c: tokenizer/chat.c against renderings of the real Jinja
 * templates, frozen here as C strings (jinja2 produced them from
 * tests/chat-templates/; tests/chat-reference.py re-derives them live when
 * jinja2 is installed), plus detection of every fixture, the refusals, names
 * and end-of-turn markers. */
#include "config.h"

#include "tokenizer/chat.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tap.h"

/* "# label: "..."" with the string C-escaped, so blanks and line breaks show. */
static void diag_str(const char *label, const char *s)
{
	printf("# %s: ", label);
	if (!s) {
		printf("(null)\n");
		return;
	}
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\n')
			printf("\\n");
		else if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else
			putchar(*p); /* UTF-8 passes through: the log is UTF-8 too */
	}
	printf("\"\n");
}

static int is_str(const char *got, const char *want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int is_str(const char *got, const char *want, const char *fmt, ...)
{
	char name[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	int same = got && want ? strcmp(got, want) == 0 : got == want;
	if (!tap_ok(same, "%s", name)) {
		diag_str("expected", want);
		diag_str("got     ", got);
	}
	return same;
}

/* ---- conversations (tests/chat-reference.py has the same ones) -------- */

#define M(r, c) {r, c}
static const struct chat_msg sys_user[] = {M("system", "You are a helpful assistant."), M("user", "Hello!")};
static const struct chat_msg user_only[] = {M("user", "What is 2+2?")};
static const struct chat_msg multi[] = {M("system", "Be brief."), M("user", "Hi"),
					M("assistant", "Hello! How can I help?"),
					M("user", "Tell me a joke.")};
static const struct chat_msg multi_nosys[] = {M("user", "Hi"), M("assistant", "  Hello there.  "),
					      M("user", "And now?")};
static const struct chat_msg nonascii[] = {M("system", "Respon en català."),
					   M("user", "¿Qué tal? Això és català")};
static const struct chat_msg emoji[] = {M("user", "I ❤\ufe0f llamas 🦙"), M("assistant", "🦙 ok"),
					M("user", "Más 🎉")};
/* Python's str.strip() takes all of these for blanks (U+00A0, U+3000, ...) */
static const struct chat_msg blanks[] = {M("system", " sys with spaces \n"),
					 M("user", "\u00a0 padded question\u3000\n")};
static const struct chat_msg blanks_nosys[] = {M("user", "\u2003\u00a0question\u205f"),
					       M("assistant", "\u3000answer\u00a0\n"),
					       M("user", "\u202fnext\u2029")};
static const struct chat_msg ends_answer[] = {M("system", "S"), M("user", "Q"), M("assistant", "A")};

enum conv_id {
	CONV_SYS_USER,
	CONV_USER,
	CONV_MULTI,
	CONV_MULTI_NOSYS,
	CONV_NONASCII,
	CONV_EMOJI,
	CONV_BLANKS,
	CONV_BLANKS_NOSYS,
	CONV_ENDS_ANSWER,
};

#define CONV(name, a) {name, a, sizeof a / sizeof a[0]}
static const struct conv {
	const char *name;
	const struct chat_msg *m;
	size_t n;
} convs[] = {
	[CONV_SYS_USER] = CONV("system+user", sys_user),
	[CONV_USER] = CONV("user", user_only),
	[CONV_MULTI] = CONV("multi-turn", multi),
	[CONV_MULTI_NOSYS] = CONV("multi-turn, no system", multi_nosys),
	[CONV_NONASCII] = CONV("non-ASCII", nonascii),
	[CONV_EMOJI] = CONV("emoji", emoji),
	[CONV_BLANKS] = CONV("Unicode blanks", blanks),
	[CONV_BLANKS_NOSYS] = CONV("Unicode blanks, no system", blanks_nosys),
	[CONV_ENDS_ANSWER] = CONV("ends with an answer", ends_answer),
};

/* The BOS/EOS texts of the model each fixture comes from (the reference
 * script renders with the same). */
static const struct {
	const char *bos, *eos, *fixture;
} family_model[CHAT_FAMILY_COUNT] = {
	[CHAT_CHATML] = {"<s>", "<|im_end|>", "openhermes-2.5-mistral-7b.jinja"},
	[CHAT_LLAMA2] = {"<s>", "</s>", "llama-2-chat.jinja"},
	[CHAT_LLAMA3] = {"<|begin_of_text|>", "<|eot_id|>", "meta-llama-3-8b-instruct.jinja"},
	[CHAT_MISTRAL] = {"<s>", "</s>", "mistral-7b-instruct-v0.3.jinja"},
	[CHAT_GEMMA] = {"<bos>", "<eos>", "gemma-2-it.jinja"},
	[CHAT_PHI3] = {"<s>", "<|endoftext|>", "phi-3-mini-4k-instruct.jinja"},
	[CHAT_ZEPHYR] = {"<s>", "</s>", "zephyr-7b-beta.jinja"},
	[CHAT_DEEPSEEK] = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "deepseek-llm-7b-chat.jinja"},
	[CHAT_MISTRAL_V1] = {"<s>", "</s>", "mistral-7b-instruct-v0.2.jinja"},
	[CHAT_MISTRAL_LEGACY] = {"<s>", "</s>", "mixtral-8x7b-instruct-v0.1.jinja"},
	[CHAT_DEEPSEEK_CODER] = {"<｜begin▁of▁sentence｜>", "<|EOT|>", "deepseek-coder-instruct.jinja"},
};

/* Expected renderings. Written by jinja2 from the family's fixture with
 * trim_blocks and lstrip_blocks, as Hugging Face renders, except where strata
 * differs on purpose (chat.h): the gemma and mistral-legacy cases with a
 * system message (their templates raise; these were rendered with the system
 * text joined to the first user message by hand) and deepseek-coder without
 * a system message (rendered with an empty one, which the template then
 * writes instead of its preamble). */
static const struct render_case {
	enum chat_family f;
	enum conv_id conv;
	bool add_assistant;
	const char *want;
} render_cases[] = {
	{CHAT_CHATML, CONV_SYS_USER, true,
	 "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"},
	{CHAT_CHATML, CONV_USER, true,
	 "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"},
	{CHAT_CHATML, CONV_MULTI, true,
	 "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n"},
	{CHAT_CHATML, CONV_MULTI, false,
	 "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n<|im_start|>user\nTell me a joke.<|im_end|>\n"},
	{CHAT_CHATML, CONV_NONASCII, true,
	 "<|im_start|>system\nRespon en català.<|im_end|>\n<|im_start|>user\n¿Qué tal? Això és català<|im_end|>\n<|im_start|>assistant\n"},
	{CHAT_CHATML, CONV_EMOJI, true,
	 "<|im_start|>user\nI ❤\ufe0f llamas 🦙<|im_end|>\n<|im_start|>assistant\n🦙 ok<|im_end|>\n<|im_start|>user\nMás 🎉<|im_end|>\n<|im_start|>assistant\n"},
	{CHAT_CHATML, CONV_BLANKS, true,
	 "<|im_start|>system\n sys with spaces \n<|im_end|>\n<|im_start|>user\n\u00a0 padded question\u3000\n<|im_end|>\n<|im_start|>assistant\n"},
	{CHAT_LLAMA2, CONV_SYS_USER, true,
	 "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST]"},
	{CHAT_LLAMA2, CONV_USER, true,
	 "<s>[INST] What is 2+2? [/INST]"},
	{CHAT_LLAMA2, CONV_MULTI, true,
	 "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! How can I help? </s><s>[INST] Tell me a joke. [/INST]"},
	{CHAT_LLAMA2, CONV_MULTI, false,
	 "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! How can I help? </s><s>[INST] Tell me a joke. [/INST]"},
	{CHAT_LLAMA2, CONV_NONASCII, true,
	 "<s>[INST] <<SYS>>\nRespon en català.\n<</SYS>>\n\n¿Qué tal? Això és català [/INST]"},
	{CHAT_LLAMA2, CONV_EMOJI, true,
	 "<s>[INST] I ❤\ufe0f llamas 🦙 [/INST] 🦙 ok </s><s>[INST] Más 🎉 [/INST]"},
	{CHAT_LLAMA2, CONV_BLANKS, true,
	 "<s>[INST] <<SYS>>\n sys with spaces \n\n<</SYS>>\n\n\u00a0 padded question [/INST]"},
	{CHAT_LLAMA2, CONV_BLANKS_NOSYS, true,
	 "<s>[INST] question [/INST] answer </s><s>[INST] next [/INST]"},
	{CHAT_LLAMA2, CONV_MULTI_NOSYS, true,
	 "<s>[INST] Hi [/INST] Hello there. </s><s>[INST] And now? [/INST]"},
	{CHAT_LLAMA3, CONV_SYS_USER, true,
	 "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
	{CHAT_LLAMA3, CONV_USER, true,
	 "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
	{CHAT_LLAMA3, CONV_MULTI, true,
	 "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
	{CHAT_LLAMA3, CONV_MULTI, false,
	 "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>"},
	{CHAT_LLAMA3, CONV_NONASCII, true,
	 "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nRespon en català.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n¿Qué tal? Això és català<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
	{CHAT_LLAMA3, CONV_EMOJI, true,
	 "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nI ❤\ufe0f llamas 🦙<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n🦙 ok<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nMás 🎉<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
	{CHAT_LLAMA3, CONV_BLANKS, true,
	 "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nsys with spaces<|eot_id|><|start_header_id|>user<|end_header_id|>\n\npadded question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
	{CHAT_LLAMA3, CONV_BLANKS_NOSYS, true,
	 "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nquestion<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nanswer<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nnext<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
	{CHAT_MISTRAL, CONV_SYS_USER, true,
	 "<s>[INST] You are a helpful assistant.\n\nHello![/INST]"},
	{CHAT_MISTRAL, CONV_USER, true,
	 "<s>[INST] What is 2+2?[/INST]"},
	{CHAT_MISTRAL, CONV_MULTI, true,
	 "<s>[INST] Hi[/INST] Hello! How can I help?</s>[INST] Be brief.\n\nTell me a joke.[/INST]"},
	{CHAT_MISTRAL, CONV_MULTI, false,
	 "<s>[INST] Hi[/INST] Hello! How can I help?</s>[INST] Be brief.\n\nTell me a joke.[/INST]"},
	{CHAT_MISTRAL, CONV_NONASCII, true,
	 "<s>[INST] Respon en català.\n\n¿Qué tal? Això és català[/INST]"},
	{CHAT_MISTRAL, CONV_EMOJI, true,
	 "<s>[INST] I ❤\ufe0f llamas 🦙[/INST] 🦙 ok</s>[INST] Más 🎉[/INST]"},
	{CHAT_MISTRAL, CONV_BLANKS_NOSYS, true,
	 "<s>[INST] \u2003\u00a0question\u205f[/INST] answer</s>[INST] \u202fnext\u2029[/INST]"},
	{CHAT_MISTRAL, CONV_MULTI_NOSYS, true,
	 "<s>[INST] Hi[/INST] Hello there.</s>[INST] And now?[/INST]"},
	{CHAT_GEMMA, CONV_SYS_USER, true,
	 "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n<start_of_turn>model\n"},
	{CHAT_GEMMA, CONV_USER, true,
	 "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n"},
	{CHAT_GEMMA, CONV_MULTI, true,
	 "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello! How can I help?<end_of_turn>\n<start_of_turn>user\nTell me a joke.<end_of_turn>\n<start_of_turn>model\n"},
	{CHAT_GEMMA, CONV_MULTI, false,
	 "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello! How can I help?<end_of_turn>\n<start_of_turn>user\nTell me a joke.<end_of_turn>\n"},
	{CHAT_GEMMA, CONV_NONASCII, true,
	 "<bos><start_of_turn>user\nRespon en català.\n\n¿Qué tal? Això és català<end_of_turn>\n<start_of_turn>model\n"},
	{CHAT_GEMMA, CONV_EMOJI, true,
	 "<bos><start_of_turn>user\nI ❤\ufe0f llamas 🦙<end_of_turn>\n<start_of_turn>model\n🦙 ok<end_of_turn>\n<start_of_turn>user\nMás 🎉<end_of_turn>\n<start_of_turn>model\n"},
	{CHAT_GEMMA, CONV_BLANKS_NOSYS, true,
	 "<bos><start_of_turn>user\nquestion<end_of_turn>\n<start_of_turn>model\nanswer<end_of_turn>\n<start_of_turn>user\nnext<end_of_turn>\n<start_of_turn>model\n"},
	{CHAT_GEMMA, CONV_MULTI_NOSYS, false,
	 "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello there.<end_of_turn>\n<start_of_turn>user\nAnd now?<end_of_turn>\n"},
	{CHAT_PHI3, CONV_SYS_USER, true,
	 "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n<|assistant|>\n"},
	{CHAT_PHI3, CONV_USER, true,
	 "<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n"},
	{CHAT_PHI3, CONV_MULTI, true,
	 "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello! How can I help?<|end|>\n<|user|>\nTell me a joke.<|end|>\n<|assistant|>\n"},
	{CHAT_PHI3, CONV_MULTI, false,
	 "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello! How can I help?<|end|>\n<|user|>\nTell me a joke.<|end|>\n<|endoftext|>"},
	{CHAT_PHI3, CONV_NONASCII, true,
	 "<|system|>\nRespon en català.<|end|>\n<|user|>\n¿Qué tal? Això és català<|end|>\n<|assistant|>\n"},
	{CHAT_PHI3, CONV_EMOJI, true,
	 "<|user|>\nI ❤\ufe0f llamas 🦙<|end|>\n<|assistant|>\n🦙 ok<|end|>\n<|user|>\nMás 🎉<|end|>\n<|assistant|>\n"},
	{CHAT_PHI3, CONV_USER, false,
	 "<|user|>\nWhat is 2+2?<|end|>\n<|endoftext|>"},
	{CHAT_ZEPHYR, CONV_SYS_USER, true,
	 "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello!</s>\n<|assistant|>\n"},
	{CHAT_ZEPHYR, CONV_USER, true,
	 "<|user|>\nWhat is 2+2?</s>\n<|assistant|>\n"},
	{CHAT_ZEPHYR, CONV_MULTI, true,
	 "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello! How can I help?</s>\n<|user|>\nTell me a joke.</s>\n<|assistant|>\n"},
	{CHAT_ZEPHYR, CONV_MULTI, false,
	 "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello! How can I help?</s>\n<|user|>\nTell me a joke.</s>\n"},
	{CHAT_ZEPHYR, CONV_NONASCII, true,
	 "<|system|>\nRespon en català.</s>\n<|user|>\n¿Qué tal? Això és català</s>\n<|assistant|>\n"},
	{CHAT_ZEPHYR, CONV_EMOJI, true,
	 "<|user|>\nI ❤\ufe0f llamas 🦙</s>\n<|assistant|>\n🦙 ok</s>\n<|user|>\nMás 🎉</s>\n<|assistant|>\n"},
	{CHAT_ZEPHYR, CONV_USER, false,
	 "<|user|>\nWhat is 2+2?</s>\n"},
	{CHAT_DEEPSEEK, CONV_SYS_USER, true,
	 "<｜begin▁of▁sentence｜>You are a helpful assistant.\n\nUser: Hello!\n\nAssistant:"},
	{CHAT_DEEPSEEK, CONV_USER, true,
	 "<｜begin▁of▁sentence｜>User: What is 2+2?\n\nAssistant:"},
	{CHAT_DEEPSEEK, CONV_MULTI, true,
	 "<｜begin▁of▁sentence｜>Be brief.\n\nUser: Hi\n\nAssistant: Hello! How can I help?<｜end▁of▁sentence｜>User: Tell me a joke.\n\nAssistant:"},
	{CHAT_DEEPSEEK, CONV_MULTI, false,
	 "<｜begin▁of▁sentence｜>Be brief.\n\nUser: Hi\n\nAssistant: Hello! How can I help?<｜end▁of▁sentence｜>User: Tell me a joke.\n\n"},
	{CHAT_DEEPSEEK, CONV_NONASCII, true,
	 "<｜begin▁of▁sentence｜>Respon en català.\n\nUser: ¿Qué tal? Això és català\n\nAssistant:"},
	{CHAT_DEEPSEEK, CONV_EMOJI, true,
	 "<｜begin▁of▁sentence｜>User: I ❤\ufe0f llamas 🦙\n\nAssistant: 🦙 ok<｜end▁of▁sentence｜>User: Más 🎉\n\nAssistant:"},
	{CHAT_DEEPSEEK, CONV_USER, false,
	 "<｜begin▁of▁sentence｜>User: What is 2+2?\n\n"},
	{CHAT_MISTRAL_V1, CONV_SYS_USER, true,
	 "<s> [INST] You are a helpful assistant.\n\nHello! [/INST]"},
	{CHAT_MISTRAL_V1, CONV_USER, true,
	 "<s> [INST] What is 2+2? [/INST]"},
	{CHAT_MISTRAL_V1, CONV_MULTI, true,
	 "<s> [INST] Be brief.\n\nHi [/INST] Hello! How can I help?</s> [INST] Tell me a joke. [/INST]"},
	{CHAT_MISTRAL_V1, CONV_MULTI, false,
	 "<s> [INST] Be brief.\n\nHi [/INST] Hello! How can I help?</s> [INST] Tell me a joke. [/INST]"},
	{CHAT_MISTRAL_V1, CONV_NONASCII, true,
	 "<s> [INST] Respon en català.\n\n¿Qué tal? Això és català [/INST]"},
	{CHAT_MISTRAL_V1, CONV_EMOJI, true,
	 "<s> [INST] I ❤\ufe0f llamas 🦙 [/INST] 🦙 ok</s> [INST] Más 🎉 [/INST]"},
	{CHAT_MISTRAL_V1, CONV_MULTI_NOSYS, true,
	 "<s> [INST] Hi [/INST]   Hello there.  </s> [INST] And now? [/INST]"},
	{CHAT_MISTRAL_LEGACY, CONV_SYS_USER, true,
	 "<s>[INST] You are a helpful assistant.\n\nHello! [/INST]"},
	{CHAT_MISTRAL_LEGACY, CONV_USER, true,
	 "<s>[INST] What is 2+2? [/INST]"},
	{CHAT_MISTRAL_LEGACY, CONV_MULTI, true,
	 "<s>[INST] Be brief.\n\nHi [/INST]Hello! How can I help?</s>[INST] Tell me a joke. [/INST]"},
	{CHAT_MISTRAL_LEGACY, CONV_MULTI, false,
	 "<s>[INST] Be brief.\n\nHi [/INST]Hello! How can I help?</s>[INST] Tell me a joke. [/INST]"},
	{CHAT_MISTRAL_LEGACY, CONV_NONASCII, true,
	 "<s>[INST] Respon en català.\n\n¿Qué tal? Això és català [/INST]"},
	{CHAT_MISTRAL_LEGACY, CONV_EMOJI, true,
	 "<s>[INST] I ❤\ufe0f llamas 🦙 [/INST]🦙 ok</s>[INST] Más 🎉 [/INST]"},
	{CHAT_MISTRAL_LEGACY, CONV_MULTI_NOSYS, true,
	 "<s>[INST] Hi [/INST]  Hello there.  </s>[INST] And now? [/INST]"},
	{CHAT_DEEPSEEK_CODER, CONV_SYS_USER, true,
	 "<｜begin▁of▁sentence｜>You are a helpful assistant.### Instruction:\nHello!\n### Response:\n"},
	{CHAT_DEEPSEEK_CODER, CONV_USER, true,
	 "<｜begin▁of▁sentence｜>### Instruction:\nWhat is 2+2?\n### Response:\n"},
	{CHAT_DEEPSEEK_CODER, CONV_MULTI, true,
	 "<｜begin▁of▁sentence｜>Be brief.### Instruction:\nHi\n### Response:\nHello! How can I help?\n<|EOT|>\n### Instruction:\nTell me a joke.\n### Response:\n"},
	{CHAT_DEEPSEEK_CODER, CONV_MULTI, false,
	 "<｜begin▁of▁sentence｜>Be brief.### Instruction:\nHi\n### Response:\nHello! How can I help?\n<|EOT|>\n### Instruction:\nTell me a joke.\n"},
	{CHAT_DEEPSEEK_CODER, CONV_NONASCII, true,
	 "<｜begin▁of▁sentence｜>Respon en català.### Instruction:\n¿Qué tal? Això és català\n### Response:\n"},
	{CHAT_DEEPSEEK_CODER, CONV_EMOJI, true,
	 "<｜begin▁of▁sentence｜>### Instruction:\nI ❤\ufe0f llamas 🦙\n### Response:\n🦙 ok\n<|EOT|>\n### Instruction:\nMás 🎉\n### Response:\n"},
	{CHAT_DEEPSEEK_CODER, CONV_USER, false,
	 "<｜begin▁of▁sentence｜>### Instruction:\nWhat is 2+2?\n"},
};

static void test_render_cases(void)
{
	for (size_t i = 0; i < sizeof render_cases / sizeof render_cases[0]; i++) {
		const struct render_case *c = &render_cases[i];
		const struct conv *cv = &convs[c->conv];
		struct st_err err = { "" };
		char *out = NULL;
		size_t len = 0;
		int rc = chat_render(c->f, cv->m, cv->n, family_model[c->f].bos, family_model[c->f].eos,
				     c->add_assistant, &out, &len, &err);
		if (rc < 0) {
			tap_ok(0, "%s: %s, add_assistant=%d", chat_family_name(c->f), cv->name,
			   c->add_assistant);
			tap_diag("chat_render: %d (%s)", rc, err.msg);
			continue;
		}
		if (is_str(out, c->want, "%s: %s, add_assistant=%d", chat_family_name(c->f), cv->name,
			   c->add_assistant) &&
		    len != strlen(c->want))
			tap_ok(0, "%s: %s: out_len %zu, want %zu", chat_family_name(c->f), cv->name, len,
			   strlen(c->want));
		free(out);
	}
}

/* ---- refusals --------------------------------------------------------- */

static const struct chat_msg two_users[] = {M("user", "a"), M("user", "b")};
static const struct chat_msg assistant_first[] = {M("assistant", "a"), M("user", "b")};
static const struct chat_msg with_tool[] = {M("user", "a"), M("tool", "b")};
static const struct chat_msg second_system[] = {M("system", "s"), M("user", "a"),
						M("system", "t"), M("user", "b")};

/* Expect -EINVAL and a message that names the message at fault. */
static void refuses(enum chat_family f, const struct chat_msg *m, size_t n, const char *what,
		    const char *mention)
{
	static char unset[] = "unset";
	struct st_err err = { "unset" };
	char *out = unset;
	int rc = chat_render(f, m, n, "<s>", "</s>", true, &out, NULL, &err);
	if (tap_ok(rc == -EINVAL && out == NULL && strstr(err.msg, mention), "%s refuses %s",
	       chat_family_name(f), what))
		return;
	printf("# rc %d, out %s, error \"%s\" (should mention \"%s\")\n", rc, out ? "set" : "NULL",
	       err.msg, mention);
	if (rc == 0)
		free(out);
}

/* Expect a rendering (families whose templates take any role or order). */
static void accepts(enum chat_family f, const struct chat_msg *m, size_t n, const char *what,
		    const char *want)
{
	struct st_err err = { "" };
	char *out = NULL;
	int rc = chat_render(f, m, n, "", "", false, &out, NULL, &err);
	if (rc < 0) {
		tap_ok(0, "%s accepts %s", chat_family_name(f), what);
		tap_diag("chat_render: %d (%s)", rc, err.msg);
		return;
	}
	is_str(out, want, "%s accepts %s", chat_family_name(f), what);
	free(out);
}

#define N(a) a, sizeof a / sizeof a[0]
static void test_refusals(void)
{
	/* the families whose templates raise unless user/assistant alternate */
	static const enum chat_family strict[] = {CHAT_LLAMA2, CHAT_MISTRAL, CHAT_MISTRAL_V1,
						  CHAT_MISTRAL_LEGACY, CHAT_GEMMA};
	for (size_t i = 0; i < sizeof strict / sizeof strict[0]; i++) {
		refuses(strict[i], N(two_users), "two user messages in a row", "message 2");
		refuses(strict[i], N(assistant_first), "an assistant message first", "message 1");
		refuses(strict[i], N(with_tool), "a tool message", "message 2");
		refuses(strict[i], N(second_system), "a second system message", "message 3");
	}
	/* the ones whose templates drop unknown roles: strata refuses instead */
	static const enum chat_family fixed_roles[] = {CHAT_PHI3, CHAT_ZEPHYR, CHAT_DEEPSEEK,
						       CHAT_DEEPSEEK_CODER};
	for (size_t i = 0; i < sizeof fixed_roles / sizeof fixed_roles[0]; i++)
		refuses(fixed_roles[i], N(with_tool), "a tool message", "\"tool\"");

	accepts(CHAT_CHATML, N(with_tool), "any role",
		"<|im_start|>user\na<|im_end|>\n<|im_start|>tool\nb<|im_end|>\n");
	accepts(CHAT_CHATML, N(two_users), "any order",
		"<|im_start|>user\na<|im_end|>\n<|im_start|>user\nb<|im_end|>\n");
	accepts(CHAT_LLAMA3, N(with_tool), "any role",
		"<|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>"
		"<|start_header_id|>tool<|end_header_id|>\n\nb<|eot_id|>");
	accepts(CHAT_PHI3, N(two_users), "any order",
		"<|user|>\na<|end|>\n<|user|>\nb<|end|>\n");
	/* a lone system message, in the families that write it inside a user
	 * turn: their templates write nothing of it; refused, not lost (found by
	 * fuzz-chat). The others write it as a turn of its own. */
	static const struct chat_msg only_system[] = {M("system", "s")};
	static const enum chat_family folds_system[] = {CHAT_LLAMA2, CHAT_MISTRAL, CHAT_GEMMA,
							CHAT_MISTRAL_V1, CHAT_MISTRAL_LEGACY};
	for (size_t i = 0; i < sizeof folds_system / sizeof folds_system[0]; i++)
		refuses(folds_system[i], N(only_system), "a lone system message",
			"needs a user message after it");
	/* mistral (v3) writes the system message into the last message when
	 * that is a user message; its template drops it otherwise */
	refuses(CHAT_MISTRAL, N(ends_answer), "a system message and a last answer",
		"ends with \"assistant\"");
	accepts(CHAT_CHATML, N(only_system), "a lone system message",
		"<|im_start|>system\ns<|im_end|>\n");

	/* malformed calls */
	struct st_err err = { "" };
	char *out;
	static const struct chat_msg null_content[] = {{"user", NULL}};
	static const struct chat_msg null_role[] = {{NULL, "x"}};
	tap_ok(chat_render(CHAT_CHATML, user_only, 0, "", "", true, &out, NULL, &err) ==
		   -EINVAL && strstr(err.msg, "no messages"),
	   "no messages: -EINVAL");
	tap_ok(chat_render(CHAT_CHATML, NULL, 1, "", "", true, &out, NULL, &err) == -EINVAL,
	   "NULL messages: -EINVAL");
	tap_ok(chat_render(CHAT_CHATML, N(null_content), "", "", true, &out, NULL, &err) ==
		   -EINVAL && strstr(err.msg, "content"),
	   "NULL content: -EINVAL");
	tap_ok(chat_render(CHAT_CHATML, N(null_role), "", "", true, &out, NULL, &err) ==
		   -EINVAL && strstr(err.msg, "role"),
	   "NULL role: -EINVAL");
	tap_ok(chat_render(CHAT_FAMILY_COUNT, N(user_only), "", "", true, &out, NULL, &err) ==
		   -EINVAL && out == NULL,
	   "unknown family: -EINVAL");
	/* no error holder at all is fine */
	tap_ok(chat_render(CHAT_LLAMA2, N(two_users), "", "", true, &out, NULL, NULL) == -EINVAL,
	   "err NULL");
	/* NULL bos/eos are empty strings */
	out = NULL;
	tap_ok(chat_render(CHAT_LLAMA2, N(multi_nosys), NULL, NULL, true, &out, NULL, NULL) == 0 &&
		   out && strcmp(out, "[INST] Hi [/INST] Hello there. [INST] And now? [/INST]") == 0,
	   "NULL bos and eos render as empty");
	free(out);
}

/* ---- detection -------------------------------------------------------- */

static void detects(const char *srcdir, const char *file, enum chat_family want)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/tests/chat-templates/%s", srcdir, file);
	size_t len;
	char *t = tap_slurp(path, &len);
	if (!t) {
		tap_ok(0, "%s is detected as %s", file, chat_family_name(want));
		tap_diag("cannot read %s (STRATA_SRCDIR is the source tree)", path);
		return;
	}
	enum chat_family f = CHAT_FAMILY_COUNT;
	int rc = chat_detect(t, len, &f);
	if (!tap_ok(rc == 0 && f == want, "%s is detected as %s", file, chat_family_name(want)))
		tap_diag("chat_detect: %d, %s", rc, rc == 0 ? chat_family_name(f) : "-");
	free(t);
}

static void not_detected(const char *what, const char *t, size_t len)
{
	enum chat_family f = CHAT_FAMILY_COUNT;
	int rc = chat_detect(t, len, &f);
	if (!tap_ok(rc == -ENOENT && f == CHAT_FAMILY_COUNT, "%s: -ENOENT", what))
		tap_diag("chat_detect: %d, %s", rc, rc == 0 ? chat_family_name(f) : "-");
}

static void test_detect(void)
{
	const char *srcdir = getenv("STRATA_SRCDIR");
	if (!srcdir || !*srcdir)
		srcdir = ".";
	/* every fixture of the family, and the templates of other models in it */
	for (int f = 0; f < CHAT_FAMILY_COUNT; f++)
		detects(srcdir, family_model[f].fixture, (enum chat_family)f);
	detects(srcdir, "qwen2-instruct.jinja", CHAT_CHATML);
	detects(srcdir, "alia-40b-instruct.jinja", CHAT_CHATML);
	detects(srcdir, "salamandra-7b-instruct-2024-10.jinja", CHAT_CHATML);

	static const char plain[] = "{% for message in messages %}{{ message['content'] }}{% endfor %}";
	not_detected("a template of no known family", plain, strlen(plain));
	not_detected("an empty template", "", 0);
	not_detected("no template (NULL)", NULL, 0);
	static const char v7[] = "{{ bos_token }}{% if m['role'] == 'system' %}{{ '[SYSTEM_PROMPT]' + "
				 "c + '[/SYSTEM_PROMPT]' }}{% endif %}{{ '[INST]' + c + '[/INST]' }}";
	not_detected("Mistral v7 ([SYSTEM_PROMPT], not rendered)", v7, strlen(v7));
	static const char phi4[] = "{{'<|im_start|>' + message['role'] + '<|im_sep|>' + "
				   "message['content'] + '<|im_end|>'}}";
	not_detected("Phi-4 (<|im_sep|>, not chatml)", phi4, strlen(phi4));
	/* only len bytes are looked at: the marker lies past them */
	static const char cut[] = "{{ 'x' }}<|im_start|>";
	not_detected("a marker beyond len", cut, 12);
	/* and a template need not be NUL-terminated */
	char nonul[12];
	memcpy(nonul, "<|im_start|>", 12);
	enum chat_family f = CHAT_FAMILY_COUNT;
	tap_ok(chat_detect(nonul, sizeof nonul, &f) == 0 && f == CHAT_CHATML,
	   "a template without a NUL at the end");
}

/* ---- names and end-of-turn markers ------------------------------------- */

static void test_names(void)
{
	const char *list = chat_family_list();
	for (int f = 0; f < CHAT_FAMILY_COUNT; f++) {
		const char *name = chat_family_name((enum chat_family)f);
		enum chat_family g = CHAT_FAMILY_COUNT;
		/* each name appears in the list as a whole word */
		size_t k = strlen(name);
		int listed = 0;
		for (const char *p = list; (p = strstr(p, name)) != NULL; p++)
			listed |= (p == list || p[-1] == ' ') && (p[k] == ',' || p[k] == '\0');
		tap_ok(chat_family_parse(name, &g) == 0 && g == (enum chat_family)f && listed,
		   "family %d is \"%s\", parsed back and listed", f, name);
	}
	enum chat_family g = CHAT_FAMILY_COUNT;
	tap_ok(chat_family_parse("mistral-v3", &g) == 0 && g == CHAT_MISTRAL, "\"mistral-v3\" is mistral");
	tap_ok(chat_family_parse("vicuna", &g) == -EINVAL, "an unknown name: -EINVAL");
	tap_ok(chat_family_parse("", &g) == -EINVAL, "an empty name: -EINVAL");
	tap_ok(chat_family_parse(NULL, &g) == -EINVAL, "no name: -EINVAL");
	tap_ok(chat_family_parse("ChatML", &g) == -EINVAL, "names are case-sensitive");
	is_str(chat_family_name(CHAT_FAMILY_COUNT), "?", "an out-of-range family is \"?\"");

	static const struct {
		enum chat_family f;
		const char *eot;
	} eot[] = {
		{CHAT_CHATML, "<|im_end|>"}, {CHAT_LLAMA2, NULL},	  {CHAT_LLAMA3, "<|eot_id|>"},
		{CHAT_MISTRAL, NULL},	     {CHAT_GEMMA, "<end_of_turn>"}, {CHAT_PHI3, "<|end|>"},
		{CHAT_ZEPHYR, NULL},	     {CHAT_DEEPSEEK, NULL},	  {CHAT_MISTRAL_V1, NULL},
		{CHAT_MISTRAL_LEGACY, NULL}, {CHAT_DEEPSEEK_CODER, "<|EOT|>"},
	};
	for (size_t i = 0; i < sizeof eot / sizeof eot[0]; i++)
		is_str(chat_end_of_turn(eot[i].f), eot[i].eot, "%s ends a turn with %s",
		       chat_family_name(eot[i].f), eot[i].eot ? eot[i].eot : "EOS only");
	tap_ok(chat_end_of_turn(CHAT_FAMILY_COUNT) == NULL, "an out-of-range family has no marker");
}

int main(void)
{
	test_render_cases();
	test_refusals();
	test_detect();
	test_names();
	return tap_done();
}
