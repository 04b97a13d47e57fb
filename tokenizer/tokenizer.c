/* tokenizer.c: loading a vocabulary from GGUF metadata, special tokens,
 * dispatch to the SPM and BPE encoders, pieces and the streaming
 * detokenizer (see tokenizer.h). The merge algorithms themselves live in
 * tok_spm.c and tok_bpe.c. What is done here follows llama.cpp's
 * llama_vocab::impl::load and tokenize, minus the model-specific workarounds
 * strata has no use for. Where we differ on purpose:
 *  - invalid UTF-8 is decoded strictly (an overlong or a surrogate is a bad
 *    byte, read as U+FFFD, where llama.cpp decodes it leniently or throws);
 *  - a byte with no byte token becomes <unk> (llama.cpp throws);
 *  - metadata is checked: merges naming unknown tokens, duplicate tokens,
 *    malformed byte tokens and short score/type arrays are load errors;
 *  - a missing or unknown tokenizer.ggml.pre selects the GPT-2 pre-tokenizer
 *    (llama.cpp: its "default" regex set, or an error);
 *  - decoding does not apply llama.cpp's optional clean-up of spaces. */
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "common/log.h"
#include "tokenizer/tok_bpe.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_spm.h"
#include "tokenizer/tok_vocab.h"
#include "tokenizer/unicode.h"
#include "common/utf8.h"

/* The longest text tokenizer_encode accepts: SPM triples a text's size when
 * it spells spaces as "▁", and offsets inside it are 32-bit. */
#define TOK_MAX_TEXT (256u << 20)

/* GGUF token types (tokenizer.ggml.token_type), numbered as llama.cpp does. */
enum {
	GGUF_TOK_UNDEFINED = 0,
	GGUF_TOK_NORMAL = 1,
	GGUF_TOK_UNKNOWN = 2,
	GGUF_TOK_CONTROL = 3,
	GGUF_TOK_USER_DEFINED = 4,
	GGUF_TOK_UNUSED = 5,
	GGUF_TOK_BYTE = 6,
};

/* ---- loading ---- */

/* Names of pre-tokenizers (tokenizer.ggml.pre) by the regex llama.cpp gives them. */
static const char *const pre_gpt2[] = {
	"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
	"a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe",
	"exaone4", "mpt", "olmo", "jais", "trillion", "granite-docling",
};
static const char *const pre_llama3_full[] = { /* also: ignore_merges, add_bos */
	"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
	"lfm2", "jina-v5-nano",
};
static const char *const pre_llama3_regex[] = { "dbrx", "smaug-bpe" };

static bool name_in(struct gguf_str s, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (gguf_str_eq(s, names[i]))
			return true;
	return false;
}
#define NAME_IN(s, list) name_in(s, list, sizeof list / sizeof list[0])

/* Token texts that end a turn (llama.cpp's list, minus the ones that only its
 * model-specific workarounds need). */
static const char *const eog_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
	"<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>",
	"<end_of_utterance>",
};
static const char *const eot_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
	"<|end_of_text|>", "<EOT>", "_<EOT>", "<end_of_utterance>",
};

static int32_t find_text(const struct tokenizer *t, const char *s)
{
	return tok_lookup(t, s, strlen(s));
}

/* A printable, bounded rendering of a token's text for error messages. */
static const char *shown(const char *s, size_t n, char buf[64])
{
	size_t o = 0;
	for (size_t i = 0; i < n && o < 56; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c < 0x20 || c == 0x7F)
			o += (size_t)snprintf(buf + o, 64 - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	if (o >= 56) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static bool is_int_type(enum gguf_vtype ty)
{
	switch (ty) {
	case GGUF_TYPE_U8: case GGUF_TYPE_I8: case GGUF_TYPE_U16: case GGUF_TYPE_I16:
	case GGUF_TYPE_U32: case GGUF_TYPE_I32: case GGUF_TYPE_U64: case GGUF_TYPE_I64:
		return true;
	default:
		return false;
	}
}

/* An optional integer key holding a token id: leaves *id alone when the key
 * is absent or out of range (with a warning, as llama.cpp does; 0xFFFFFFFF and
 * -1 are the usual "unset" markers and only noted at debug level). */
static int read_special_id(const struct gguf *g, const char *key, int32_t n_vocab,
			   int32_t *id, struct st_err *err)
{
	const struct gguf_kv *kv = gguf_find_kv(g, key);
	if (!kv)
		return 0;
	int64_t v;
	switch (kv->type) {
	case GGUF_TYPE_U8: case GGUF_TYPE_U16: case GGUF_TYPE_U32: case GGUF_TYPE_U64:
		v = kv->val.u64 > INT64_MAX ? -1 : (int64_t)kv->val.u64;
		if (kv->type == GGUF_TYPE_U32 && kv->val.u64 == UINT32_MAX)
			v = -1;
		break;
	case GGUF_TYPE_I8: case GGUF_TYPE_I16: case GGUF_TYPE_I32: case GGUF_TYPE_I64:
		v = kv->val.i64;
		break;
	default:
		return st_errf(err, -EINVAL, "%s: a token id must be an integer, not %s", key,
			       gguf_vtype_name(kv->type));
	}
	if (v < 0) {
		log_debug("tokenizer: %s is unset (%lld)", key, (long long)v);
		return 0;
	}
	if (v >= n_vocab) {
		log_warn("tokenizer: %s = %lld is outside the vocabulary (%d tokens); ignored",
			 key, (long long)v, n_vocab);
		return 0;
	}
	*id = (int32_t)v;
	return 0;
}

/* An optional bool key; leaves *out alone when absent. */
static int read_bool(const struct gguf *g, const char *key, bool *out, struct st_err *err)
{
	int rc = gguf_get_bool(g, key, out, err);
	return rc == -ENOENT ? 0 : rc;
}

/* Parse "<0xNN>" into its byte; -1 if s is not of that form. */
static int parse_byte_token(const char *s, size_t n)
{
	if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
		return -1;
	int v = 0;
	for (int i = 3; i < 5; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0'
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
			: c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* Step 1: the token texts, scores and types. */
static int load_vocab(struct tokenizer *t, const struct gguf *g, struct st_err *err)
{
	const struct gguf_kv *toks, *scores = NULL, *types = NULL;
	int rc = gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &toks, err);
	if (rc == -ENOENT)
		return st_errf(err, -EINVAL, "tokenizer.ggml.tokens: missing (no vocabulary)");
	if (rc < 0)
		return rc;
	if (toks->arr_len == 0 || toks->arr_len > INT32_MAX / 4)
		return st_errf(err, -EINVAL, "tokenizer.ggml.tokens: %llu tokens is not a vocabulary",
			       (unsigned long long)toks->arr_len);
	int32_t n = (int32_t)toks->arr_len;
	t->n_vocab = n;

	rc = gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_TYPE_COUNT, &scores, err);
	if (rc == -ENOENT)
		scores = NULL;
	else if (rc < 0)
		return rc;
	if (scores && scores->arr_type != GGUF_TYPE_F32 && scores->arr_type != GGUF_TYPE_I32)
		return st_errf(err, -EINVAL, "tokenizer.ggml.scores: an array of %s, not of f32",
			       gguf_vtype_name(scores->arr_type));
	if (scores && scores->arr_len != (uint64_t)n) {
		if (scores->arr_len < (uint64_t)n)
			return st_errf(err, -EINVAL,
				       "tokenizer.ggml.scores: %llu scores for %d tokens",
				       (unsigned long long)scores->arr_len, n);
		log_warn("tokenizer: %llu scores for %d tokens; the extra ones are ignored",
			 (unsigned long long)scores->arr_len, n);
	}

	rc = gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_TYPE_COUNT, &types, err);
	if (rc == -ENOENT)
		types = NULL;
	else if (rc < 0)
		return rc;
	if (types && !is_int_type(types->arr_type))
		return st_errf(err, -EINVAL, "tokenizer.ggml.token_type: an array of %s, not of i32",
			       gguf_vtype_name(types->arr_type));
	if (types && types->arr_len != (uint64_t)n) {
		if (types->arr_len < (uint64_t)n)
			return st_errf(err, -EINVAL,
				       "tokenizer.ggml.token_type: %llu types for %d tokens",
				       (unsigned long long)types->arr_len, n);
		log_warn("tokenizer: %llu token types for %d tokens; the extra ones are ignored",
			 (unsigned long long)types->arr_len, n);
	}

	/* texts: empty ones get a placeholder, as in llama.cpp, so that every
	 * token has a distinct, non-empty text */
	size_t total = 0;
	for (int32_t i = 0; i < n; i++) {
		struct gguf_str s = gguf_arr_str(toks, (uint64_t)i);
		total += s.len ? s.len : 24;
		if (total > UINT32_MAX / 2)
			return st_errf(err, -EINVAL, "tokenizer.ggml.tokens: texts too long");
	}
	t->text = malloc(total ? total : 1);
	t->text_off = malloc(((size_t)n + 1) * sizeof *t->text_off);
	t->scores = calloc((size_t)n, sizeof *t->scores);
	t->attr = malloc((size_t)n * sizeof *t->attr);
	if (!t->text || !t->text_off || !t->scores || !t->attr ||
	    tok_strmap_alloc(&t->by_text, (size_t)n) < 0)
		return st_errf(err, -ENOMEM, "tokenizer: out of memory for %d tokens", n);

	size_t off = 0;
	for (int32_t i = 0; i < n; i++) {
		struct gguf_str s = gguf_arr_str(toks, (uint64_t)i);
		t->text_off[i] = (uint32_t)off;
		if (s.len == 0) {
			log_warn("tokenizer: empty token at index %d", i);
			off += (size_t)snprintf(t->text + off, 24, "[EMPTY_%d]", i);
		} else {
			memcpy(t->text + off, s.ptr, s.len);
			off += s.len;
		}
		t->text_off[i + 1] = (uint32_t)off;

		if (scores)
			t->scores[i] = (float)gguf_arr_f64(scores, (uint64_t)i);
		t->attr[i] = TOK_ATTR_NORMAL;
		if (types) {
			int64_t ty = gguf_arr_i64(types, (uint64_t)i);
			switch (ty) {
			case GGUF_TOK_NORMAL: t->attr[i] = TOK_ATTR_NORMAL; break;
			case GGUF_TOK_UNKNOWN: t->attr[i] = TOK_ATTR_UNKNOWN; break;
			case GGUF_TOK_CONTROL: t->attr[i] = TOK_ATTR_CONTROL; break;
			case GGUF_TOK_USER_DEFINED: t->attr[i] = TOK_ATTR_USER_DEFINED; break;
			case GGUF_TOK_UNUSED: t->attr[i] = TOK_ATTR_UNUSED; break;
			case GGUF_TOK_BYTE: t->attr[i] = TOK_ATTR_BYTE; break;
			default: t->attr[i] = TOK_ATTR_UNDEFINED; break;
			}
		}
		int32_t dup = tok_strmap_insert(t, i);
		if (dup >= 0) {
			char buf[64];
			size_t len;
			const char *txt = tok_text(t, i, &len);
			return st_errf(err, -EINVAL,
				       "tokenizer.ggml.tokens: duplicate token '%s' (ids %d and %d)",
				       shown(txt, len, buf), dup, i);
		}
		if (t->attr[i] & TOK_ATTR_BYTE) {
			size_t len;
			const char *txt = tok_text(t, i, &len);
			if (parse_byte_token(txt, len) < 0) {
				char buf[64];
				return st_errf(err, -EINVAL,
					       "tokenizer.ggml.token_type: token %d '%s' is a BYTE token "
					       "but not of the form <0xNN>", i, shown(txt, len, buf));
			}
		}
	}
	return 0;
}

/* Step 2 (BPE): the merges, "left right" with rank = index. */
static int load_merges(struct tokenizer *t, const struct gguf *g, struct st_err *err)
{
	const struct gguf_kv *m;
	int rc = gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &m, err);
	if (rc == -ENOENT)
		return st_errf(err, -EINVAL, "tokenizer.ggml.merges: missing (a gpt2 vocabulary needs merges)");
	if (rc < 0)
		return rc;
	if (m->arr_len > INT32_MAX / 4)
		return st_errf(err, -EINVAL, "tokenizer.ggml.merges: %llu merges is too many",
			       (unsigned long long)m->arr_len);
	size_t n = (size_t)m->arr_len;
	if (tok_pairmap_alloc(&t->merges, n) < 0)
		return st_errf(err, -ENOMEM, "tokenizer: out of memory for %zu merges", n);

	for (size_t i = 0; i < n; i++) {
		struct gguf_str s = gguf_arr_str(m, i);
		char buf[64], buf2[64];
		/* the first space after the first byte separates the halves (a
		 * byte-level vocabulary spells spaces as "Ġ", so none is inside) */
		const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
		if (!sp)
			return st_errf(err, -EINVAL, "tokenizer.ggml.merges[%zu] '%s': not two tokens "
				       "separated by a space", i, shown(s.ptr, s.len, buf));
		size_t nl = (size_t)(sp - s.ptr), nr = s.len - nl - 1;
		int32_t l = tok_lookup(t, s.ptr, nl), r = tok_lookup(t, sp + 1, nr);
		if (l < 0 || r < 0)
			return st_errf(err, -EINVAL, "tokenizer.ggml.merges[%zu] '%s': '%s' is not a token",
				       i, shown(s.ptr, s.len, buf),
				       l < 0 ? shown(s.ptr, nl, buf2) : shown(sp + 1, nr, buf2));
		tok_pairmap_put(&t->merges, l, r, (int32_t)i);
	}
	return 0;
}

_Static_assert(TOK_MAX_EOG >= 3 + sizeof eog_texts / sizeof eog_texts[0],
	       "room for eos, eot, eom and every end-of-turn text");

static void add_eog(struct tokenizer *t, int32_t id)
{
	for (int32_t j = 0; j < t->n_eog; j++)
		if (t->eog[j] == id)
			return;
	if (id >= 0)
		t->eog[t->n_eog++] = id;
}

/* Step 3: special token ids, flags, end-of-generation set. */
static int load_specials(struct tokenizer *t, const struct gguf *g, struct st_err *err)
{
	int32_t n = t->n_vocab;
	int rc;

	t->bos = t->eos = t->eot = t->eom = t->unk = t->pad = t->sep = -1;
	if (t->model == TOK_SPM) {
		/* llama.cpp's defaults for SentencePiece, when in range */
		t->unk = n > 0 ? 0 : -1;
		t->bos = n > 1 ? 1 : -1;
		t->eos = n > 2 ? 2 : -1;
	}
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{ "tokenizer.ggml.bos_token_id", offsetof(struct tokenizer, bos) },
		{ "tokenizer.ggml.eos_token_id", offsetof(struct tokenizer, eos) },
		{ "tokenizer.ggml.eot_token_id", offsetof(struct tokenizer, eot) },
		{ "tokenizer.ggml.eom_token_id", offsetof(struct tokenizer, eom) },
		{ "tokenizer.ggml.unknown_token_id", offsetof(struct tokenizer, unk) },
		{ "tokenizer.ggml.seperator_token_id", offsetof(struct tokenizer, sep) },
		{ "tokenizer.ggml.padding_token_id", offsetof(struct tokenizer, pad) },
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		rc = read_special_id(g, keys[i].key, n, (int32_t *)((char *)t + keys[i].off), err);
		if (rc < 0)
			return rc;
	}

	rc = read_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err);
	if (rc < 0)
		return rc;
	if (t->add_bos && t->bos < 0)
		return st_errf(err, -EINVAL, "tokenizer.ggml.add_bos_token is true but the vocabulary "
			       "has no BOS token (tokenizer.ggml.bos_token_id)");
	if (t->model == TOK_SPM) {
		rc = read_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err);
		if (rc < 0)
			return rc;
	}

	/* End-of-turn tokens found by their text mark the end of generation and
	 * are control tokens, whatever the file says (llama.cpp does the same:
	 * converters have not always typed them). */
	if (t->eot < 0) {
		for (size_t i = 0; i < sizeof eot_texts / sizeof eot_texts[0] && t->eot < 0; i++)
			t->eot = find_text(t, eot_texts[i]);
	}
	if (t->eom < 0)
		t->eom = find_text(t, "<|eom_id|>");

	add_eog(t, t->eos);
	add_eog(t, t->eot);
	add_eog(t, t->eom);
	for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
		int32_t id = find_text(t, eog_texts[i]);
		if (id >= 0 && !(t->attr[id] & TOK_ATTR_CONTROL)) {
			log_warn("tokenizer: token %d '%s' ends a turn but is not a control token; "
				 "treating it as one", id, eog_texts[i]);
			t->attr[id] |= TOK_ATTR_CONTROL;
		}
		add_eog(t, id);
	}

	/* the special tokens tokenizer_encode looks for, longest first */
	int32_t ns = 0;
	for (int32_t i = 0; i < n; i++)
		ns += (t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) != 0;
	t->specials = malloc(((size_t)ns + 1) * sizeof *t->specials);
	if (!t->specials)
		return st_errf(err, -ENOMEM, "tokenizer: out of memory");
	for (int32_t i = 0; i < n; i++) {
		if (!(t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)))
			continue;
		/* insertion keeps (length desc, id asc); there are few specials */
		size_t len = t->text_off[i + 1] - t->text_off[i];
		int32_t k = t->n_specials++;
		while (k > 0) {
			int32_t o = t->specials[k - 1];
			if (t->text_off[o + 1] - t->text_off[o] >= len)
				break;
			t->specials[k] = o;
			k--;
		}
		t->specials[k] = i;
	}

	/* SPM byte fallback: <0xNN>, else the byte as a one-byte token */
	for (int b = 0; b < 256; b++) {
		char hex[7];
		snprintf(hex, sizeof hex, "<0x%02X>", b);
		int32_t id = tok_lookup(t, hex, 6);
		if (id < 0) {
			char c = (char)b;
			id = tok_lookup(t, &c, 1);
		}
		t->byte_token[b] = id;
	}
	return 0;
}

/* Step 4: the output bytes of every token (with special = true). */
static size_t piece_of(const struct tokenizer *t, int32_t id, char *out)
{
	size_t n;
	const char *s = tok_text(t, id, &n);
	uint16_t a = t->attr[id];
	if (a & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN | TOK_ATTR_USER_DEFINED)) {
		memcpy(out, s, n);
		return n;
	}
	if (a & TOK_ATTR_NORMAL) {
		size_t o = 0;
		if (t->model == TOK_SPM) {
			/* "▁" (E2 96 81) is how SentencePiece spells a space */
			for (size_t i = 0; i < n;) {
				if (i + 3 <= n && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
					out[o++] = ' ';
					i += 3;
				} else {
					out[o++] = s[i++];
				}
			}
			return o;
		}
		/* byte-level BPE: each code point of the text stands for one byte;
		 * one that is not in the map is kept as it is */
		for (size_t i = 0; i < n;) {
			uint32_t cp;
			size_t len;
			int b = -1;
			if (utf8_decode(s + i, n - i, &cp, &len) == UTF8_OK)
				b = unicode_cp_to_byte(cp);
			if (b >= 0) {
				out[o++] = (char)b;
			} else {
				memcpy(out + o, s + i, len);
				o += len;
			}
			i += len;
		}
		return o;
	}
	if (a & TOK_ATTR_BYTE) {
		out[0] = (char)parse_byte_token(s, n);
		return 1;
	}
	return 0; /* unused and undefined tokens print nothing */
}

static int build_pieces(struct tokenizer *t, struct st_err *err)
{
	/* a piece is never longer than its text */
	size_t total = t->text_off[t->n_vocab];
	t->piece = malloc(total ? total : 1);
	t->piece_off = malloc(((size_t)t->n_vocab + 1) * sizeof *t->piece_off);
	if (!t->piece || !t->piece_off)
		return st_errf(err, -ENOMEM, "tokenizer: out of memory");
	size_t off = 0;
	for (int32_t i = 0; i < t->n_vocab; i++) {
		t->piece_off[i] = (uint32_t)off;
		size_t len = piece_of(t, i, t->piece + off);
		if (len > t->max_piece)
			t->max_piece = (uint32_t)len;
		off += len;
	}
	t->piece_off[t->n_vocab] = (uint32_t)off;
	return 0;
}

int tokenizer_load_file(const char *path, struct tokenizer **out, struct st_err *err)
{
	struct gguf *g = NULL;
	*out = NULL;
	int rc = gguf_open(path, &g, err);
	if (rc == 0)
		rc = tokenizer_load(g, out, err);
	gguf_close(g); /* the tokenizer keeps its own copy */
	return rc;
}

int tokenizer_load(const struct gguf *g, struct tokenizer **out, struct st_err *err)
{
	struct tokenizer *t = calloc(1, sizeof *t);
	struct gguf_str model, pre;
	int rc;

	*out = NULL;
	if (!t)
		return st_errf(err, -ENOMEM, "tokenizer: out of memory");
	rc = gguf_get_str(g, "tokenizer.ggml.model", &model, err);
	if (rc == -ENOENT)
		rc = st_errf(err, -EINVAL, "tokenizer.ggml.model: missing (no tokenizer in this file)");
	if (rc < 0)
		goto fail;
	if (gguf_str_eq(model, "llama")) {
		t->model = TOK_SPM;
		t->add_bos = true;
		t->add_space_prefix = true;
	} else if (gguf_str_eq(model, "gpt2")) {
		t->model = TOK_BPE;
	} else {
		char buf[64];
		rc = st_errf(err, -EINVAL, "tokenizer.ggml.model: '%s' is not supported "
			     "(strata knows llama and gpt2)", shown(model.ptr, model.len, buf));
		goto fail;
	}
	snprintf(t->model_name, sizeof t->model_name, "%s", t->model == TOK_SPM ? "llama" : "gpt2");

	rc = load_vocab(t, g, err);
	if (rc < 0)
		goto fail;

	if (t->model == TOK_BPE) {
		rc = gguf_get_str(g, "tokenizer.ggml.pre", &pre, err);
		if (rc < 0 && rc != -ENOENT)
			goto fail;
		t->pre = TOK_PRE_GPT2;
		if (rc == -ENOENT) {
			log_warn("tokenizer: no tokenizer.ggml.pre; using the GPT-2 pre-tokenizer");
		} else if (NAME_IN(pre, pre_llama3_full)) {
			t->pre = TOK_PRE_LLAMA3;
			t->ignore_merges = true;
			t->add_bos = true;
		} else if (NAME_IN(pre, pre_llama3_regex)) {
			t->pre = TOK_PRE_LLAMA3;
		} else if (!NAME_IN(pre, pre_gpt2)) {
			char buf[64];
			log_warn("tokenizer: pre-tokenizer '%s' is not known to strata; using GPT-2's "
				 "(the text may be split differently from the model's training)",
				 shown(pre.ptr, pre.len, buf));
		}
		rc = load_merges(t, g, err);
		if (rc < 0)
			goto fail;
	}

	rc = load_specials(t, g, err);
	if (rc < 0)
		goto fail;
	rc = build_pieces(t, err);
	if (rc < 0)
		goto fail;
	*out = t;
	return 0;

fail:
	tokenizer_free(t);
	return rc;
}

void tokenizer_free(struct tokenizer *t)
{
	if (!t)
		return;
	free(t->text);
	free(t->text_off);
	free(t->scores);
	free(t->attr);
	tok_strmap_free(&t->by_text);
	free(t->piece);
	free(t->piece_off);
	free(t->specials);
	tok_pairmap_free(&t->merges);
	free(t);
}

/* ---- queries ---- */

int32_t tokenizer_n_vocab(const struct tokenizer *t)
{
	return t->n_vocab;
}

int32_t tokenizer_bos(const struct tokenizer *t)
{
	return t->bos;
}

int32_t tokenizer_eos(const struct tokenizer *t)
{
	return t->eos;
}

bool tokenizer_add_bos(const struct tokenizer *t)
{
	return t->add_bos;
}

bool tokenizer_is_eog(const struct tokenizer *t, int32_t id)
{
	for (int32_t i = 0; i < t->n_eog; i++)
		if (t->eog[i] == id)
			return id >= 0;
	return false;
}

const char *tokenizer_model_name(const struct tokenizer *t)
{
	return t->model_name;
}

int32_t tokenizer_lookup(const struct tokenizer *t, const char *s, size_t n)
{
	return tok_lookup(t, s, n);
}

const char *tokenizer_token_text(const struct tokenizer *t, int32_t id, size_t *len)
{
	if (id < 0 || id >= t->n_vocab)
		return NULL;
	return tok_text(t, id, len);
}

/* ---- encoding ---- */

/* A stretch of the input: plain text (id < 0) or a special token. */
struct frag {
	size_t off, len;
	int32_t id;
};

struct frags {
	struct frag *v;
	size_t n, cap;
};

static int frags_push(struct frags *f, size_t off, size_t len, int32_t id)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 16;
		struct frag *v = realloc(f->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = (struct frag){ off, len, id };
	return 0;
}

static const char *find_bytes(const char *hay, size_t n, const char *needle, size_t m)
{
	if (m == 0 || m > n)
		return NULL;
	const char *end = hay + n - m + 1;
	for (const char *p = hay; p < end;) {
		p = memchr(p, needle[0], (size_t)(end - p));
		if (!p)
			return NULL;
		if (memcmp(p, needle, m) == 0)
			return p;
		p++;
	}
	return NULL;
}

/* Cut the special tokens out of the text, longest first, as llama.cpp's
 * tokenizer_st_partition does: each token splits every plain stretch left by
 * the ones before it at each of its occurrences, left to right. */
static int partition(const struct tokenizer *t, const char *text, size_t n, bool parse_special,
		     struct frags *cur)
{
	struct frags next = { 0 };
	int rc = frags_push(cur, 0, n, -1);
	if (rc < 0)
		return rc;
	for (int32_t s = 0; s < t->n_specials; s++) {
		int32_t id = t->specials[s];
		if (!parse_special && (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)))
			continue; /* user-defined tokens are matched even then */
		size_t m;
		const char *tt = tok_text(t, id, &m);
		bool any = false;
		next.n = 0;
		for (size_t i = 0; i < cur->n && rc == 0; i++) {
			struct frag f = cur->v[i];
			const char *p;
			if (f.id >= 0 || !(p = find_bytes(text + f.off, f.len, tt, m))) {
				rc = frags_push(&next, f.off, f.len, f.id);
				continue;
			}
			any = true;
			size_t at = f.off, end = f.off + f.len;
			while (p && rc == 0) {
				size_t pos = (size_t)(p - text);
				if (pos > at)
					rc = frags_push(&next, at, pos - at, -1);
				if (rc == 0)
					rc = frags_push(&next, pos, m, id);
				at = pos + m;
				p = find_bytes(text + at, end - at, tt, m);
			}
			if (rc == 0 && at < end)
				rc = frags_push(&next, at, end - at, -1);
		}
		if (rc < 0)
			break;
		if (any) {
			struct frags tmp = *cur;
			*cur = next;
			next = tmp;
		}
	}
	free(next.v);
	return rc;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t n, bool add_bos,
		     bool parse_special, int32_t *ids, size_t max)
{
	struct tok_out out = { ids, max, 0 };
	struct frags fr = { 0 };
	int rc = 0;

	if (n > TOK_MAX_TEXT)
		return -EOVERFLOW;
	if (add_bos && t->bos >= 0)
		tok_out_push(&out, t->bos);
	if (n > 0)
		rc = partition(t, text, n, parse_special, &fr);

	/* SPM puts a space before the text and after every special token
	 * ("<s>Hello" reads as "<s> Hello"), as SentencePiece's add_dummy_prefix */
	bool prev_special = true;
	for (size_t i = 0; i < fr.n && rc >= 0; i++) {
		struct frag f = fr.v[i];
		if (f.id >= 0) {
			tok_out_push(&out, f.id);
			prev_special = true;
		} else if (t->model == TOK_SPM) {
			rc = tok_spm_encode(t, text + f.off, f.len, t->add_space_prefix && prev_special,
					    &out);
			prev_special = false;
		} else {
			rc = tok_bpe_encode(t, text + f.off, f.len, &out);
		}
	}
	free(fr.v);
	if (rc < 0)
		return rc;
	return out.n > INT_MAX ? -EOVERFLOW : (int)out.n;
}

/* ---- decoding ---- */

const char *tokenizer_piece_ref(const struct tokenizer *t, int32_t id, bool special, size_t *len)
{
	if (id < 0 || id >= t->n_vocab)
		return NULL;
	if (!special && (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) {
		*len = 0;
		return t->piece;
	}
	*len = t->piece_off[id + 1] - t->piece_off[id];
	return t->piece + t->piece_off[id];
}

int tokenizer_piece(const struct tokenizer *t, int32_t id, bool special, char *buf, size_t cap)
{
	if (id < 0 || id >= t->n_vocab)
		return -EINVAL;
	size_t len = 0; /* set by piece_ref for a valid id; gcc -O1 + ASan cannot see that */
	const char *p = tokenizer_piece_ref(t, id, special, &len);
	if (len <= cap && len > 0)
		memcpy(buf, p, len);
	return (int)len;
}

size_t tokenizer_max_piece(const struct tokenizer *t)
{
	return t->max_piece;
}

int tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, bool special,
		     char *buf, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] < 0 || ids[i] >= t->n_vocab)
			return -EINVAL;
		size_t len;
		const char *p = tokenizer_piece_ref(t, ids[i], special, &len);
		if (i == 0 && t->add_space_prefix && len > 0 && p[0] == ' ') {
			p++; /* the space the encoder added */
			len--;
		}
		if (o + len <= cap && len > 0)
			memcpy(buf + o, p, len);
		o += len;
		if (o > INT_MAX)
			return -EOVERFLOW;
	}
	return (int)o;
}
