/* fuzz-tokenize.c: fuzz target for what stratad does with a client's text and
 * token ids: the tokenizer (tokenizer/: SentencePiece and byte-level BPE,
 * special-token parsing, byte fallback) and the streaming detokenizer
 * (tokenizer/detok.c) that turns generated ids back into text.
 *
 * Input: one control byte, then the payload.
 *   bits 0-1  the vocabulary: 0 our SentencePiece (synth's built-in 512
 *             tokens, byte fallback), 1 a byte-level BPE written here (GPT-2's
 *             byte alphabet, a few merges, control and user-defined tokens,
 *             the llama-bpe pre-tokenizer), 2 llama.cpp's llama-spm and
 *             3 its gpt-2 vocabulary from $STRATA_SHARED/vocab (32,000 and
 *             50,257 tokens; when absent, 0 and 1 stand in, said once on stderr)
 *   bit 2     add BOS
 *   bit 3     parse special tokens ("<s>", "<|eot_id|>" become control tokens);
 *             also the detokenizer's `special`
 *   bit 4     the payload is token ids (little-endian u16, taken modulo the
 *             vocabulary) for the detokenizer, instead of text to encode
 *   bits 5-7  the first encode's room, 0..7 ids (the retry path)
 * Checks, aborting on failure:
 *   - every id the encoder gives is inside the vocabulary; a first call with
 *     too little room returns the full count and writes the same prefix;
 *   - decode(encode(text)) == text, encoded without BOS and specials, for
 *     valid UTF-8 text ("▁" U+2581 is SentencePiece's space: it decodes as
 *     " "). SPM's byte tokens carry any bytes, so for SPM it holds for
 *     invalid UTF-8 too, once "▁" is read as a space on both sides: like
 *     llama.cpp, the encoder cuts the text into characters by their lead
 *     bytes' lengths, so a bad lead byte can swallow the "▁" a following
 *     space became, which then comes back spelled in byte tokens;
 *   - the streaming detokenizer, fed one id at a time, gives only valid UTF-8
 *     and, with its flush, exactly utf8_sanitize() of the pieces joined
 *     (every ill-formed part one U+FFFD, whatever the token boundaries);
 *   - tokenizer_piece and tokenizer_piece_ref agree. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/utf8.h"
#include "fuzz/fuzz.h"
#include "gguf/gguf.h"
#include "tokenizer/detok.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "tools/synth.h"

enum { V_SPM, V_BPE, V_LLAMA_SPM, V_GPT2, V_COUNT };

static struct tokenizer *vocab[V_COUNT];
static bool is_spm[V_COUNT];

static void die(const char *what, const struct st_err *err, int rc)
{
	fprintf(stderr, "fuzz-tokenize: %s: %s (%d)\n", what, err->msg, rc);
	exit(1);
}

static struct tokenizer *load(const char *path)
{
	struct st_err err = { { 0 } };
	struct tokenizer *t = NULL;
	int rc = tokenizer_load_file(path, &t, &err);
	if (rc < 0)
		die(path, &err, rc);
	return t;
}

/* A byte-level BPE vocabulary: the 256 byte tokens of GPT-2's alphabet, merges
 * that build a few English and Spanish words, BOS/EOT control tokens and a
 * user-defined one (matched even without parse_special). */
static int write_bpe(const char *path, struct st_err *err)
{
	static const char *const words[] = { "t h", "th e", "a n", "an d", "e s", "Ġ the",
					      "Ġ es", "q u", "qu e", "Ġ que", "Ã ±" };
	static const char *const merged[] = { "th", "the", "an", "and", "es", "Ġthe",
					      "Ġes", "qu", "que", "Ġque", "Ã±" };
	static const char *const specials[] = { "<|begin_of_text|>", "<|eot_id|>", "<tool>" };
	enum { NW = sizeof words / sizeof words[0], NS = sizeof specials / sizeof specials[0] };
	enum { N = 256 + NW + NS };
	static char bytes[256][UTF8_MAX_LEN + 1];
	const char *toks[N];
	int32_t types[N];
	float scores[N];
	int n = 0;
	for (int b = 0; b < 256; b++) {
		bytes[b][utf8_encode(unicode_byte_to_cp((uint8_t)b), bytes[b])] = '\0';
		toks[n++] = bytes[b];
	}
	for (int i = 0; i < NW; i++)
		toks[n++] = merged[i];
	for (int i = 0; i < NS; i++)
		toks[n++] = specials[i];
	for (int i = 0; i < N; i++) {
		types[i] = i >= N - NS ? (i == N - 1 ? 4 : 3) : 1; /* 3 control, 4 user-defined */
		scores[i] = 0.0f;
	}
	struct gguf_writer *w = gguf_writer_new(0);
	int rc = w ? 0 : -ENOMEM;
	if (rc == 0)
		rc = gguf_writer_add_str(w, "general.architecture", "llama");
	if (rc == 0)
		rc = gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
	if (rc == 0)
		rc = gguf_writer_add_str(w, "tokenizer.ggml.pre", "llama-bpe");
	if (rc == 0)
		rc = gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, N);
	if (rc == 0)
		rc = gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_F32, scores, N);
	if (rc == 0)
		rc = gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, types, N);
	if (rc == 0)
		rc = gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", words, NW);
	if (rc == 0)
		rc = gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", N - NS);
	if (rc == 0)
		rc = gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", N - NS + 1);
	if (rc == 0)
		rc = gguf_writer_begin(w, path, err);
	if (rc == 0)
		rc = gguf_writer_finish(w, err);
	gguf_writer_free(w);
	return rc;
}

/* Load the vocabularies once. The built-in ones are written to a scratch
 * folder and read back as any model's would be. */
static void init(void)
{
	struct st_err err = { { 0 } };
	const char *tmp = getenv("TMPDIR");
	char path[4096];
	char tmpl[4096];
	snprintf(tmpl, sizeof tmpl, "%s/fuzz-tokenize.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	char *d = mkdtemp(tmpl);
	if (!d) {
		perror(tmpl);
		exit(1);
	}
	struct synth_params p = {
		.n_embd = 8, .n_layer = 1, .n_head = 1, .n_head_kv = 1, .n_ff = 8, .n_ctx = 16,
		.type = 0 /* f32 */, .vocab_path = "builtin", .seed = 1, .name = "fuzz",
	};
	snprintf(path, sizeof path, "%s/spm.gguf", d);
	int rc = synth_write(path, &p, &err);
	if (rc < 0)
		die("writing the built-in SentencePiece vocabulary", &err, rc);
	vocab[V_SPM] = load(path);
	unlink(path);
	snprintf(path, sizeof path, "%s/bpe.gguf", d);
	if ((rc = write_bpe(path, &err)) < 0)
		die("writing the BPE vocabulary", &err, rc);
	vocab[V_BPE] = load(path);
	unlink(path);
	rmdir(d);

	const char *shared = getenv("STRATA_SHARED");
	static const char *const files[] = { [V_LLAMA_SPM] = "ggml-vocab-llama-spm.gguf",
					     [V_GPT2] = "ggml-vocab-gpt-2.gguf" };
	for (int v = V_LLAMA_SPM; v <= V_GPT2; v++) {
		snprintf(path, sizeof path, "%s/vocab/%s", shared ? shared : "", files[v]);
		if (shared && access(path, R_OK) == 0) {
			vocab[v] = load(path);
		} else {
			fprintf(stderr, "fuzz-tokenize: %s not found ($STRATA_SHARED/vocab): "
				"the built-in %s vocabulary stands in\n", files[v],
				v == V_LLAMA_SPM ? "SentencePiece" : "BPE");
			vocab[v] = vocab[v - V_LLAMA_SPM];
		}
	}
	for (int v = 0; v < V_COUNT; v++)
		is_spm[v] = strcmp(tokenizer_model_name(vocab[v]), "llama") == 0;
}

/* The streaming detokenizer over ids[0..n) against the whole-buffer
 * sanitizer over the joined pieces. */
static void check_detok(const struct tokenizer *t, const int32_t *ids, size_t n, bool special)
{
	size_t max_piece = tokenizer_max_piece(t), out_max = detok_out_max(t);
	char *joined = malloc(n * max_piece + 1), *streamed = malloc(n * out_max + 3 + 1);
	char *piece = malloc(max_piece + 1);
	CHECK(joined && streamed && piece);
	size_t nj = 0, ns = 0;
	struct detok d;
	detok_init(&d, t, special);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *ref = tokenizer_piece_ref(t, ids[i], special, &len);
		CHECK(ref && len <= max_piece);
		CHECK(tokenizer_piece(t, ids[i], special, piece, max_piece + 1) == (int)len);
		CHECK(memcmp(piece, ref, len) == 0);
		memcpy(joined + nj, ref, len);
		nj += len;
		int k = detok_push(&d, ids[i], streamed + ns, out_max);
		CHECK(k >= 0 && (size_t)k <= out_max);
		CHECK(utf8_valid(streamed + ns, (size_t)k));
		ns += (size_t)k;
	}
	int k = detok_flush(&d, streamed + ns, 3);
	CHECK(k == 0 || k == 3);
	ns += (size_t)k;
	CHECK(utf8_valid(streamed, ns));

	size_t need = utf8_sanitize(joined, nj, NULL, 0);
	char *clean = malloc(need + 1);
	CHECK(clean);
	CHECK(utf8_sanitize(joined, nj, clean, need) == need);
	if (need != ns || memcmp(clean, streamed, ns) != 0) {
		fprintf(stderr, "fuzz-tokenize: streamed %zu bytes, the sanitized pieces %zu\n", ns,
			need);
		CHECK(!"the streaming detokenizer differs from utf8_sanitize of the pieces");
	}
	free(clean);
	free(joined);
	free(streamed);
	free(piece);
}

/* text[0..n) into out, with SentencePiece's space character U+2581 (E2 96
 * 81) read as a space when spm: what decode(encode(text)) must give. Returns
 * the length; out may be text (it never gets ahead of the reading). */
static size_t spm_spaces(bool spm, const uint8_t *text, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (spm && i + 2 < n && text[i] == 0xE2 && text[i + 1] == 0x96 && text[i + 2] == 0x81) {
			out[o++] = ' ';
			i += 2;
		} else {
			out[o++] = (char)text[i];
		}
	}
	return o;
}

static void check_encode(int v, const uint8_t *text, size_t n, bool add_bos, bool special,
			 size_t first_room)
{
	const struct tokenizer *t = vocab[v];
	int32_t n_vocab = tokenizer_n_vocab(t);
	int32_t first[8];
	int count = tokenizer_encode(t, (const char *)text, n, add_bos, special, first, first_room);
	CHECK(count >= 0);
	int32_t *ids = malloc(((size_t)count + 1) * sizeof *ids);
	CHECK(ids);
	int again = tokenizer_encode(t, (const char *)text, n, add_bos, special, ids, (size_t)count);
	CHECK(again == count);
	CHECK(memcmp(first, ids, ((size_t)count < first_room ? (size_t)count : first_room) *
					 sizeof *ids) == 0);
	for (int i = 0; i < count; i++)
		CHECK(ids[i] >= 0 && ids[i] < n_vocab);

	bool valid = utf8_valid((const char *)text, n);
	if (!add_bos && !special && (is_spm[v] || valid)) {
		char *want = malloc(n + 1);
		CHECK(want);
		size_t nw = spm_spaces(is_spm[v], text, n, want);
		/* decoded: at most n bytes, or 3 a space when they come back as "▁" */
		size_t cap = 3 * n + 1;
		char *got = malloc(cap);
		CHECK(got);
		int len = tokenizer_decode(t, ids, (size_t)count, false, got, cap);
		CHECK(len >= 0 && (size_t)len < cap);
		if (!valid) /* SPM: "▁" read as a space on this side too (above) */
			len = (int)spm_spaces(true, (const uint8_t *)got, (size_t)len, got);
		if ((size_t)len != nw || memcmp(got, want, nw) != 0) {
			fprintf(stderr, "fuzz-tokenize: vocabulary %d: %zu bytes decode to %d, want %zu\n",
				v, n, len, nw);
			CHECK(!"decode(encode(text)) != text");
		}
		free(got);
		free(want);
	}
	check_detok(t, ids, (size_t)count, special);
	free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!vocab[V_SPM])
		init();
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	int v = ctl & 3;
	bool add_bos = ctl & 4, special = ctl & 8, as_ids = ctl & 16;
	size_t first_room = ctl >> 5;
	data++;
	size--;
	if (!as_ids) {
		check_encode(v, data, size, add_bos, special, first_room);
		return 0;
	}
	size_t n = size / 2;
	int32_t *ids = malloc((n + 1) * sizeof *ids);
	CHECK(ids);
	int32_t n_vocab = tokenizer_n_vocab(vocab[v]);
	for (size_t i = 0; i < n; i++)
		ids[i] = (int32_t)((data[2 * i] | (uint32_t)data[2 * i + 1] << 8) % (uint32_t)n_vocab);
	check_detok(vocab[v], ids, n, special);
	/* decode takes any valid ids too (no round trip to check) */
	char buf[64];
	CHECK(tokenizer_decode(vocab[v], ids, n, special, buf, sizeof buf) >= 0);
	free(ids);
	return 0;
}
