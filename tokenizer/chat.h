/* chat.h: chat templates without Jinja. Recognizes the family of the Jinja
 * template an instruct model carries in tokenizer.chat_template, and renders a
 * conversation the way that template does, byte for byte, in plain C (one
 * function per family). Not a Jinja engine, not a tokenizer: it produces text,
 * which the caller tokenizes with special tokens recognized and no BOS of its
 * own (the families that want a BOS spell it, as their templates do).
 *
 * Families (the names are those of --chat-template NAME), with the templates
 * whose rendering each reproduces exactly (tests/chat-reference.py proves it
 * against jinja2 for the fixtures in tests/chat-templates/):
 *   chatml          <|im_start|>role\n...<|im_end|>\n: OpenHermes, Qwen2,
 *                   Salamandra and ALIA instruct (BSC-LT)
 *   llama2          Llama-2-chat: <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST]
 *   llama3          Meta-Llama-3-8B-Instruct: <|start_header_id|>...<|eot_id|>
 *   mistral         Mistral-7B-Instruct-v0.3 ("v3"): [INST] ...[/INST], the
 *                   system message joined to the last user message
 *   gemma           gemma-2-it: <start_of_turn>user ... <end_of_turn>, role model
 *   phi3            Phi-3-mini-4k-instruct (2024-07): <|user|>\n...<|end|>\n
 *   zephyr          zephyr-7b-beta: <|user|>\n...</s>\n
 *   deepseek        deepseek-llm-7b/67b-chat (and DeepSeek-V2): User: ...\n\n
 *   mistral-v1      Mistral-7B-Instruct-v0.1/v0.2 (2024 templates): " [INST] ... [/INST]",
 *                   the system message joined to the first user message
 *   mistral-legacy  the first Mistral-7B-Instruct-v0.2 and Mixtral-8x7B-Instruct-v0.1
 *                   template: [INST] ... [/INST]answer</s>
 *   deepseek-coder  deepseek-coder-*-instruct: ### Instruction:\n...### Response:\n
 *
 * Where the real template and strata part ways (chat.c says why at each place):
 * - No family injects a default system prompt. Qwen2 ("You are a helpful
 *   assistant."), the ALIA/Salamandra model cards ('SYSTEM MESSAGE', or in
 *   Salamandra's first template "system message. Today Date: 2024-09-30") and
 *   deepseek-coder (its long preamble) write one when the conversation has
 *   none; strata writes nothing. A caller that wants the template's exact text
 *   passes that system message itself: the rendering is then identical.
 * - gemma and mistral-legacy templates reject a system message; strata joins it
 *   to the first user message (system + "\n\n" + user, as Gemma 3 and Mistral's
 *   later templates do) instead of failing.
 * - Roles a template would silently drop (a "tool" message in llama2, a second
 *   "system" in phi3...) are refused with -EINVAL rather than lost. chatml and
 *   llama3 take any role, as their templates do. So is a system message the
 *   template would drop: alone (llama2, the mistral families and gemma write
 *   it inside a user turn), or in mistral when the conversation ends with an
 *   answer (its template joins it to the last message only if that is a user
 *   message).
 * - Templates without a generation prompt (llama2 and the mistral families)
 *   ignore add_assistant, as the templates ignore add_generation_prompt: the
 *   text after the last user message is already where the answer starts. */
#ifndef STRATA_TOKENIZER_CHAT_H
#define STRATA_TOKENIZER_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* One message. Both strings are UTF-8 and NUL-terminated; the caller owns them. */
struct chat_msg {
	const char *role; /* "system", "user", "assistant" (chatml/llama3: any) */
	const char *content;
};

/* The order is the public numbering; new families go at the end. */
enum chat_family {
	CHAT_CHATML,
	CHAT_LLAMA2,
	CHAT_LLAMA3,
	CHAT_MISTRAL,
	CHAT_GEMMA,
	CHAT_PHI3,
	CHAT_ZEPHYR,
	CHAT_DEEPSEEK,
	CHAT_MISTRAL_V1,
	CHAT_MISTRAL_LEGACY,
	CHAT_DEEPSEEK_CODER,
	CHAT_FAMILY_COUNT
};

/* Recognize the family from the template text tmpl[0..len) (need not be
 * NUL-terminated), by the markers each family's templates contain, as
 * llama.cpp's llm_chat_detect_template does. Returns 0 and sets *out, or
 * -ENOENT when no family matches (including formats we know but do not
 * render: Mistral v7's [SYSTEM_PROMPT], Phi-4's <|im_sep|>). A template of a
 * known family but of another revision than the one listed above (Llama 3.1's
 * date header, Phi-3's first template...) is still recognized: the rendering
 * is the family's, close but not byte-identical to that revision. */
int chat_detect(const char *tmpl, size_t len, enum chat_family *out);

/* The family named `name` (exactly one of the names above; "mistral-v3" is
 * accepted for "mistral"). Returns 0, or -EINVAL if the name is unknown. */
int chat_family_parse(const char *name, enum chat_family *out);
/* The name of f, a static string; "?" when f is out of range. */
const char *chat_family_name(enum chat_family f);
/* "chatml, llama2, ...": every name, for error messages. Static string. */
const char *chat_family_list(void);

/* Render msgs[0..n) as family f does. bos and eos are the model's BOS and EOS
 * token texts (the templates' bos_token and eos_token; NULL is taken as "").
 * add_assistant appends the family's generation prompt (the template's
 * add_generation_prompt). On success returns 0 and stores in *out a malloc'd,
 * NUL-terminated string the caller frees with free(), and its length in
 * *out_len (may be NULL). On failure *out is NULL and the return is
 * -EINVAL (no messages, a NULL string, a role or an order of roles the family
 * cannot express; err says which message) or -ENOMEM (err may be NULL).
 * Thread-safe: no state outside the arguments. */
int chat_render(enum chat_family f, const struct chat_msg *msgs, size_t n, const char *bos,
		const char *eos, bool add_assistant, char **out, size_t *out_len, struct st_err *err);

/* The text that ends a turn in family f ("<|im_end|>", "<|eot_id|>",
 * "<end_of_turn>", "<|end|>", "<|EOT|>"), for the engine to stop at; NULL when
 * the family ends a turn with the EOS token only (llama2, mistral*, zephyr,
 * deepseek), which the engine stops at anyway. Static string. */
const char *chat_end_of_turn(enum chat_family f);

#endif
