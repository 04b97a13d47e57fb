/* tokenizer.h: text <-> token ids for the vocabularies GGUF files carry in
 * tokenizer.ggml.*: SentencePiece ("llama") and byte-level BPE ("gpt2", with
 * the GPT-2 or the Llama 3 pre-tokenizer). Encoding matches llama.cpp token
 * for token. Also turns ids back into text, one token at a time or streamed
 * so that no UTF-8 character is ever split. Not a chat template engine. */
#ifndef STRATA_TOKENIZER_TOKENIZER_H
#define STRATA_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct gguf;
struct tokenizer;

/* Read tokenizer.ggml.* from g, check it (array lengths, types, ids, merges)
 * and copy what is needed, so g may be closed afterwards. On failure returns
 * -errno (-EINVAL for bad metadata, -ENOMEM) with a message naming the key.
 * The caller owns *out and frees it with tokenizer_free(). A loaded tokenizer
 * is read-only: any number of threads may use it at once. */
int tokenizer_load(const struct gguf *g, struct tokenizer **out, struct st_err *err);
/* The same from the GGUF file at path (a model, or a vocabulary-only file
 * such as llama.cpp's ggml-vocab-*.gguf), which is closed again: the errors
 * of gguf_open (naming the path) and of tokenizer_load. */
int tokenizer_load_file(const char *path, struct tokenizer **out, struct st_err *err);
void tokenizer_free(struct tokenizer *t); /* NULL is a no-op */

int32_t tokenizer_n_vocab(const struct tokenizer *t);
int32_t tokenizer_bos(const struct tokenizer *t); /* -1 if none */
int32_t tokenizer_eos(const struct tokenizer *t); /* -1 if none */
/* tokenizer.ggml.add_bos_token, else the model's default (llama: true, gpt2:
 * false, gpt2 with the Llama 3 pre-tokenizer: true). */
bool tokenizer_add_bos(const struct tokenizer *t);
/* End of generation: eos, eot, eom, and tokens whose text marks the end of a
 * turn (<|eot_id|>, <|im_end|>, <end_of_turn>, ...), as llama.cpp decides. */
bool tokenizer_is_eog(const struct tokenizer *t, int32_t id);
const char *tokenizer_model_name(const struct tokenizer *t); /* "llama", "gpt2" */
/* The token's text as stored in the vocabulary (SPM: "▁the", "<0x0A>"; BPE:
 * "Ġthe"); NOT NUL-terminated, *len bytes, owned by t. NULL for a bad id. */
const char *tokenizer_token_text(const struct tokenizer *t, int32_t id, size_t *len);

/* The id of the token whose text (as stored in the vocabulary) is s[0..n),
 * or -1: a chat template's end-of-turn marker, say. */
int32_t tokenizer_lookup(const struct tokenizer *t, const char *s, size_t n);

/* Encode n bytes of UTF-8 text into ids[0..max). Returns the number of tokens,
 * which may exceed max: then only max were written and the caller retries
 * with a bigger buffer. Or -errno (-ENOMEM, -EOVERFLOW for texts over 256 MiB).
 * add_bos: put the BOS token first (if the vocabulary has one).
 * parse_special: text like "<s>" or "<|endoftext|>" becomes that control token
 * instead of being spelled out (user-defined tokens are always matched, as in
 * llama.cpp). Invalid UTF-8 is encoded, not rejected: SPM falls back to byte
 * tokens, BPE reads each bad byte as U+FFFD. */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t n, bool add_bos,
		     bool parse_special, int32_t *ids, size_t max);

/* The bytes token `id` stands for in output text, into buf[0..cap) (no NUL):
 * SPM turns "▁" into " " and <0xNN> into that byte; BPE reverses the GPT-2
 * byte-to-unicode map. Control and unknown tokens give "" unless special is
 * true (then their text, e.g. "</s>"). Returns the length, which may exceed
 * cap (then nothing useful was written), or -EINVAL for a bad id. A piece may
 * be a fragment of a UTF-8 character (byte tokens): see detok.h. */
int tokenizer_piece(const struct tokenizer *t, int32_t id, bool special, char *buf, size_t cap);
/* The same piece in place: *len bytes owned by t (not NUL-terminated), or
 * NULL for a bad id. */
const char *tokenizer_piece_ref(const struct tokenizer *t, int32_t id, bool special, size_t *len);
/* The longest piece of any token, in bytes. */
size_t tokenizer_max_piece(const struct tokenizer *t);

/* Decode a whole sequence into buf[0..cap): the pieces one after another, and
 * for SPM the space the encoder put in front of the text dropped from the
 * first piece (llama.cpp's llama_detokenize without its optional clean-up of
 * spaces before punctuation). So decode(encode(x)) == x for valid UTF-8 x
 * encoded without BOS. Returns the length (may exceed cap, as above) or
 * -EINVAL for a bad id. The bytes may end inside a character when the ids do. */
int tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, bool special,
		     char *buf, size_t cap);

#endif
