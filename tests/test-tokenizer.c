/* test-tokenizer.c: the tokenizers against llama.cpp's own test vectors
 * (ggml-vocab-*.gguf.inp/.out), the stories260K vocabulary, round trips in
 * several languages, the streaming detokenizer, the pre-tokenizer split
 * functions, and metadata validation on small vocabularies written here.
 * Tests that need $STRATA_SHARED skip without it; the rest always run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf/gguf.h"
#include "tokenizer/tok_bpe.h"
#include "tokenizer/tok_vocab.h"
#include "tokenizer/detok.h"
#include "tokenizer/tokenizer.h"
#include "common/utf8.h"
#include "tests/tap.h"

#define MAX_IDS 8192

static struct tokenizer *load_vocab(const char *path)
{
	struct st_err err = { { 0 } };
	struct tokenizer *t = NULL;
	int rc = tokenizer_load_file(path, &t, &err);
	if (rc < 0)
		tap_diag("loading %s: %s (%d)", path, err.msg, rc);
	return t;
}

/* "a b c" for diagnostics */
static void print_ids(const char *label, const int32_t *ids, int n)
{
	char line[4096];
	size_t o = 0;
	for (int i = 0; i < n && o < sizeof line - 16; i++)
		o += (size_t)snprintf(line + o, sizeof line - o, " %d", ids[i]);
	line[o] = '\0';
	tap_diag("%s:%s", label, line);
}

static void print_text(const char *label, const char *s, size_t n)
{
	char buf[1024];
	size_t o = 0;
	for (size_t i = 0; i < n && o < sizeof buf - 8; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			o += (size_t)snprintf(buf + o, sizeof buf - o, "\\n");
		else if (c == '\r')
			o += (size_t)snprintf(buf + o, sizeof buf - o, "\\r");
		else if (c == '\t')
			o += (size_t)snprintf(buf + o, sizeof buf - o, "\\t");
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	tap_diag("%s: '%s'", label, buf);
}

static bool ids_eq(const int32_t *a, int na, const int32_t *b, int nb)
{
	return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

/* ---- llama.cpp's vocabulary test vectors ----
 * Read as test-tokenizer-0.cpp reads them: the .inp is split at
 * "\n__ggml_vocab_test__\n" (so the newline before each separator belongs to
 * the separator, and the text after the last one is empty and dropped), each
 * .out line is the ids of one text, encoded without BOS and without parsing
 * special tokens. */
static void test_vocab_file(const char *shared, const char *name)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/vocab/%s", shared, name);
	struct tokenizer *t = load_vocab(path);
	if (!tap_ok(t != NULL, "%s: loads", name))
		return;
	size_t ni, no;
	char p2[1100];
	snprintf(p2, sizeof p2, "%s.inp", path);
	char *inp = tap_slurp(p2, &ni);
	snprintf(p2, sizeof p2, "%s.out", path);
	char *outp = tap_slurp(p2, &no);
	if (!tap_ok(inp && outp, "%s: .inp and .out readable", name))
		goto done;

	static const char sep[] = "\n__ggml_vocab_test__\n";
	size_t pos = 0, line = 0;
	char *ol = outp;
	int32_t *want = malloc(MAX_IDS * sizeof *want), *got = malloc(MAX_IDS * sizeof *got);
	while (pos < ni) {
		const char *nx = strstr(inp + pos, sep);
		size_t len = nx ? (size_t)(nx - (inp + pos)) : ni - pos;
		const char *text = inp + pos;
		line++;

		char *eol = strchr(ol, '\n');
		if (!tap_ok(eol != NULL, "%s case %zu: has an expected line", name, line))
			break;
		*eol = '\0';
		int nw = 0;
		for (char *q = ol; *q;) {
			char *end;
			long v = strtol(q, &end, 10);
			if (end == q)
				break;
			want[nw++] = (int32_t)v;
			q = end;
		}
		ol = eol + 1;

		int n = tokenizer_encode(t, text, len, false, false, got, MAX_IDS);
		bool ok = n >= 0 && ids_eq(got, n, want, nw);
		if (!tap_ok(ok, "%s case %zu (%zu bytes)", name, line, len)) {
			print_text("text", text, len);
			print_ids("want", want, nw);
			print_ids("got ", got, n < 0 ? 0 : n);
		}
		if (!nx)
			break;
		pos += len + sizeof sep - 1;
	}
	tap_ok(*ol == '\0', "%s: as many texts as expected lines (%zu)", name, line);
	free(want);
	free(got);
done:
	free(inp);
	free(outp);
	tokenizer_free(t);
}

/* ---- stories260K: 512 tokens, SentencePiece with byte fallback ---- */

static void expect_encode(const struct tokenizer *t, const char *text, bool bos,
			  const int32_t *want, int nw, const char *what)
{
	int32_t got[256];
	int n = tokenizer_encode(t, text, strlen(text), bos, false, got, 256);
	if (!tap_ok(n >= 0 && ids_eq(got, n, want, nw), "%s: '%s'%s", what, text,
		    bos ? " with BOS" : "")) {
		print_ids("want", want, nw);
		print_ids("got ", got, n < 0 ? 0 : n);
	}
}

static void test_stories(const struct tokenizer *t)
{
	tap_is_int(tokenizer_n_vocab(t), 512, "stories260K: 512 tokens");
	tap_is_int(tokenizer_bos(t), 1, "stories260K: BOS is 1");
	tap_is_int(tokenizer_eos(t), 2, "stories260K: EOS is 2");
	tap_ok(tokenizer_add_bos(t), "stories260K: adds BOS by default");
	tap_ok(tokenizer_is_eog(t, 2) && !tokenizer_is_eog(t, 1) && !tokenizer_is_eog(t, 403),
	       "stories260K: only </s> ends generation");
	tap_is_str(tokenizer_model_name(t), "llama", "stories260K: model name");

	static const int32_t once[] = { 403, 407, 261, 378 };
	static const int32_t once_bos[] = { 1, 403, 407, 261, 378 };
	static const int32_t lily[] = { 317, 269, 274, 287 };
	/* "▁The ▁c at" and "... ▁b o y": the 512-token vocabulary has no "▁cat"
	 * or "▁boy"; these are also the first ids of llama2.c's reference runs */
	static const int32_t cat[] = { 291, 280, 294 };
	static const int32_t boy[] = { 385, 328, 432, 261, 376, 268, 414, 422 };
	expect_encode(t, "Once upon a time", false, once, 4, "stories260K");
	expect_encode(t, "Once upon a time", true, once_bos, 5, "stories260K");
	expect_encode(t, "Lily and Tom", false, lily, 4, "stories260K");
	expect_encode(t, "The cat", false, cat, 3, "stories260K");
	expect_encode(t, "One day, a little boy", false, boy, 8, "stories260K");

	/* a buffer too small: the count comes back, only max ids are written */
	int32_t small[2] = { -7, -7 };
	int n = tokenizer_encode(t, "Once upon a time", 16, false, false, small, 1);
	tap_ok(n == 4 && small[0] == 403 && small[1] == -7,
	       "encode into a short buffer returns the full count and writes only max ids");
	n = tokenizer_encode(t, "", 0, true, false, small, 2);
	tap_ok(n == 1 && small[0] == 1, "empty text with BOS is just BOS");
	n = tokenizer_encode(t, "", 0, false, false, small, 2);
	tap_is_int(n, 0, "empty text without BOS is nothing");
}

/* llama2.c's reference runs print the prompt's ids first: our encoding of
 * each prompt (without its final newline) must be where they begin. */
static void test_stories_reference(const struct tokenizer *t, const char *shared)
{
	for (int p = 1; p <= 4; p++) {
		char path[1024];
		size_t np, ni;
		snprintf(path, sizeof path, "%s/models/reference/llama2c_p%d.prompt", shared, p);
		char *prompt = tap_slurp(path, &np);
		snprintf(path, sizeof path, "%s/models/reference/llama2c_p%d.ids", shared, p);
		char *ref = tap_slurp(path, &ni);
		if (!prompt || !ref) {
			tap_skip("llama2c_p%d reference files not found", p);
			free(prompt);
			free(ref);
			continue;
		}
		while (np > 0 && prompt[np - 1] == '\n')
			np--;
		int32_t want[512], got[512];
		int nw = 0;
		for (char *q = ref; *q && nw < 512;) {
			q = strchr(q, '[');
			if (!q)
				break;
			want[nw++] = (int32_t)strtol(q + 1, &q, 10);
		}
		int n = tokenizer_encode(t, prompt, np, false, false, got, 512);
		bool ok = n > 0 && n <= nw && ids_eq(got, n, want, n);
		if (!tap_ok(ok, "stories260K: prompt %d encodes as llama2.c's run begins (%d ids)", p, n)) {
			print_ids("want", want, nw < 16 ? nw : 16);
			print_ids("got ", got, n < 0 ? 0 : n);
		}
		free(prompt);
		free(ref);
	}
}

/* ---- pieces ---- */

static void expect_piece(const struct tokenizer *t, const char *token_text, bool special,
			 const char *want, size_t wn)
{
	int32_t id = tok_lookup(t, token_text, strlen(token_text));
	char buf[64];
	int n = id < 0 ? -1 : tokenizer_piece(t, id, special, buf, sizeof buf);
	bool ok = n == (int)wn && memcmp(buf, want, wn) == 0;
	if (!tap_ok(ok, "piece of '%s'%s (id %d) is %zu bytes", token_text,
		    special ? " (special)" : "", id, wn))
		tap_diag("got %d bytes", n);
}

static void test_pieces_spm(const struct tokenizer *t)
{
	expect_piece(t, "<0x41>", false, "A", 1);
	expect_piece(t, "<0x0A>", false, "\n", 1);
	expect_piece(t, "<0x20>", false, " ", 1);
	expect_piece(t, "<0xE2>", false, "\xE2", 1);
	expect_piece(t, "<0xFF>", false, "\xFF", 1);
	expect_piece(t, "<0x00>", false, "\0", 1);
	expect_piece(t, "<s>", false, "", 0);
	expect_piece(t, "<s>", true, "<s>", 3);
	expect_piece(t, "</s>", true, "</s>", 4);
	expect_piece(t, "<unk>", false, "", 0);
	expect_piece(t, "\xE2\x96\x81the", false, " the", 4);

	char buf[4];
	int32_t the = tok_lookup(t, "\xE2\x96\x81the", 6);
	tap_ok(tokenizer_piece(t, the, false, buf, 2) == 4, "piece reports its length when cap is short");
	tap_is_int(tokenizer_piece(t, -1, false, buf, 4), -EINVAL, "piece of -1 is -EINVAL");
	tap_is_int(tokenizer_piece(t, tokenizer_n_vocab(t), false, buf, 4), -EINVAL,
		   "piece of n_vocab is -EINVAL");
	size_t tl;
	const char *tt = tokenizer_token_text(t, 1, &tl);
	tap_ok(tt && tl == 3 && memcmp(tt, "<s>", 3) == 0, "token text of 1 is <s>");
}

static void test_pieces_bpe(const struct tokenizer *t)
{
	expect_piece(t, "\xC4\xA0the", false, " the", 4); /* Ġthe */
	expect_piece(t, "\xC4\x8A", false, "\n", 1);	  /* Ċ */
	expect_piece(t, "\xC3\xA2", false, "\xE2", 1);	  /* â stands for byte E2 */
	expect_piece(t, "\xC4\x80", false, "\0", 1);	  /* Ā stands for byte 00 */
	expect_piece(t, "<|endoftext|>", false, "", 0);
	expect_piece(t, "<|endoftext|>", true, "<|endoftext|>", 13);
}

/* ---- round trips ---- */

static const char *const texts[] = {
	/* Spanish */
	"El pingüino Wenceslao hizo kilómetros bajo exhaustiva lluvia y frío, añoraba a su querido cachorro.",
	/* Catalan */
	"Jove xef, porti whisky amb quinze glaçons d'hidrogen, coi! L'àvia té raó.",
	/* Galician */
	"Xa comezaron as choivas de outono; a néboa cobre o val e os rapaces buscan castañas.",
	/* Basque */
	"Kaixo! Zer moduz zaude? Euskal Herriko mendiak ederrak dira udazkenean, ezta?",
	/* Greek */
	"Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Γαζίες καὶ μυρτιὲς δὲν θὰ βρῶ πιά.",
	/* emoji, with a ZWJ sequence and a variation selector */
	"🦙 llamas 🚀🚀 and a family 👩\u200d👩\u200d👧\u200d👦, ❤️ ok 😁?",
	/* CJK */
	"我想在apple工作1314151天～ 東京は日本の首都です。한국어 텍스트도 있습니다.",
	/* whitespace and punctuation */
	"  two leading spaces,\ttabs\tand\nnew\n\nlines\r\n'quotes' \"double\" ... end  ",
	"<s> and </s> and <|endoftext|> spelled out",
};
#define N_TEXTS (sizeof texts / sizeof texts[0])

static void test_roundtrip(const struct tokenizer *t, const char *name)
{
	int32_t *ids = malloc(MAX_IDS * sizeof *ids);
	char *buf = malloc(1 << 16);
	for (size_t i = 0; i < N_TEXTS; i++) {
		size_t n = strlen(texts[i]);
		int k = tokenizer_encode(t, texts[i], n, false, false, ids, MAX_IDS);
		int m = k < 0 ? k : tokenizer_decode(t, ids, (size_t)k, false, buf, 1 << 16);
		bool ok = m == (int)n && memcmp(buf, texts[i], n) == 0;
		if (!tap_ok(ok, "%s: decode(encode(x)) == x for text %zu (%d tokens)", name, i, k)) {
			print_text("want", texts[i], n);
			print_text("got ", buf, m < 0 ? 0 : (size_t)m);
		}
	}
	/* with BOS first, decode keeps the space the encoder added (as llama.cpp) */
	int k = tokenizer_encode(t, "Hello", 5, true, false, ids, MAX_IDS);
	int m = tokenizer_decode(t, ids, (size_t)k, true, buf, 1 << 16);
	if (tokenizer_bos(t) >= 0 && t->model == TOK_SPM)
		tap_ok(m == 9 && memcmp(buf, "<s> Hello", 9) == 0, "%s: decode of BOS + Hello with specials",
		       name);
	free(ids);
	free(buf);
}

/* ---- streaming detokenizer ---- */

/* Push ids one at a time; after every push the output so far must be valid
 * UTF-8 and a prefix of `want`; after the flush, equal to it. */
static bool stream_check(const struct tokenizer *t, const int32_t *ids, int n, const char *want,
			 size_t wn, int *n_held)
{
	struct detok d;
	detok_init(&d, t, false);
	size_t cap = detok_out_max(t);
	char *chunk = malloc(cap);
	char *acc = malloc(wn + 64);
	size_t o = 0;
	bool ok = true;
	*n_held = 0;
	for (int i = 0; i < n && ok; i++) {
		int r = detok_push(&d, ids[i], chunk, cap);
		if (r < 0 || o + (size_t)r > wn + 60) {
			ok = false;
			break;
		}
		if (r == 0 && d.n_pending > 0)
			(*n_held)++;
		memcpy(acc + o, chunk, (size_t)r);
		o += (size_t)r;
		ok = utf8_valid(acc, o) && utf8_valid(chunk, (size_t)r) && o <= wn &&
		     memcmp(acc, want, o) == 0;
	}
	if (ok) {
		int r = detok_flush(&d, chunk, cap);
		ok = r == 0 && o == wn;
	}
	free(chunk);
	free(acc);
	return ok;
}

static void test_detok_stream(const struct tokenizer *t, const char *name)
{
	int32_t *ids = malloc(MAX_IDS * sizeof *ids);
	char *want = malloc(1 << 16);
	for (size_t i = 0; i < N_TEXTS; i++) {
		size_t n = strlen(texts[i]);
		int k = tokenizer_encode(t, texts[i], n, false, false, ids, MAX_IDS);
		/* streaming keeps every space: SPM's added one comes out first */
		size_t wn = 0;
		if (t->model == TOK_SPM)
			want[wn++] = ' ';
		memcpy(want + wn, texts[i], n);
		wn += n;
		int held = 0;
		bool ok = k > 0 && stream_check(t, ids, k, want, wn, &held);
		tap_ok(ok, "%s: streamed text %zu is valid UTF-8 at every token (%d tokens, %d held back)",
		       name, i, k, held);
	}
	free(ids);
	free(want);
}

/* Byte tokens fed one by one, including bytes that never become valid. */
static void test_detok_bytes(const struct tokenizer *t)
{
	int32_t b[256];
	for (int i = 0; i < 256; i++) {
		char hex[8];
		snprintf(hex, sizeof hex, "<0x%02X>", i);
		b[i] = tok_lookup(t, hex, 6);
	}
	struct detok d;
	char out[64];
	detok_init(&d, t, false);
	/* 🦙 = F0 9F A6 99 */
	int r1 = detok_push(&d, b[0xF0], out, sizeof out);
	int r2 = detok_push(&d, b[0x9F], out, sizeof out);
	int r3 = detok_push(&d, b[0xA6], out, sizeof out);
	int r4 = detok_push(&d, b[0x99], out, sizeof out);
	tap_ok(r1 == 0 && r2 == 0 && r3 == 0 && r4 == 4 && memcmp(out, "\xF0\x9F\xA6\x99", 4) == 0,
	       "detok: a 4-byte character in byte tokens comes out whole at the last byte");

	detok_init(&d, t, false);
	r1 = detok_push(&d, b[0xE2], out, sizeof out);
	r2 = detok_push(&d, b[0x41], out, sizeof out);
	tap_ok(r1 == 0 && r2 == 4 && memcmp(out, "\xEF\xBF\xBD" "A", 4) == 0,
	       "detok: E2 then 'A' gives U+FFFD then A");

	detok_init(&d, t, false);
	r1 = detok_push(&d, b[0xE2], out, sizeof out);
	r2 = detok_push(&d, b[0x82], out, sizeof out);
	int32_t the = tok_lookup(t, "\xE2\x96\x81the", 6);
	r3 = detok_push(&d, the, out, sizeof out);
	tap_ok(r1 == 0 && r2 == 0 && r3 == 7 && memcmp(out, "\xEF\xBF\xBD the", 7) == 0,
	       "detok: E2 82 then ' the' gives one U+FFFD (maximal subpart) then ' the'");

	detok_init(&d, t, false);
	r1 = detok_push(&d, b[0x80], out, sizeof out);
	r2 = detok_push(&d, b[0xFF], out, sizeof out);
	r3 = detok_push(&d, b[0xC0], out, sizeof out);
	r4 = detok_push(&d, b[0xAF], out, sizeof out);
	tap_ok(r1 == 3 && r2 == 3 && r3 == 3 && r4 == 3,
	       "detok: stray continuation, FF and overlong C0 AF each give U+FFFD at once");

	detok_init(&d, t, false);
	r1 = detok_push(&d, b[0xF0], out, sizeof out);
	r2 = detok_push(&d, b[0x9F], out, sizeof out);
	r3 = detok_flush(&d, out, sizeof out);
	r4 = detok_flush(&d, out, sizeof out);
	tap_ok(r1 == 0 && r2 == 0 && r3 == 3 && memcmp(out, "\xEF\xBF\xBD", 3) == 0 && r4 == 0,
	       "detok: flush turns an unfinished character into one U+FFFD, then is empty");

	detok_init(&d, t, false);
	r1 = detok_push(&d, b[0xC3], out, sizeof out);
	r2 = detok_push(&d, b[0xB1], out, 1); /* ñ needs 2 bytes */
	r3 = detok_push(&d, b[0xB1], out, sizeof out);
	tap_ok(r1 == 0 && r2 == -ENOSPC && r3 == 2 && memcmp(out, "\xC3\xB1", 2) == 0,
	       "detok: -ENOSPC consumes nothing; the retry succeeds");

	detok_init(&d, t, false);
	tap_is_int(detok_push(&d, 1, out, sizeof out), 0, "detok: BOS is silent without special");
	detok_init(&d, t, true);
	r1 = detok_push(&d, 2, out, sizeof out);
	tap_ok(r1 == 4 && memcmp(out, "</s>", 4) == 0, "detok: EOS shows as </s> with special");
	tap_is_int(detok_push(&d, -3, out, sizeof out), -EINVAL, "detok: bad id is -EINVAL");

	/* every byte value, each as a byte token, in every order of two */
	unsigned bad = 0;
	for (int x = 0; x < 256; x++) {
		for (int y = 0; y < 256; y++) {
			char acc[16];
			size_t o = 0;
			detok_init(&d, t, false);
			int ra = detok_push(&d, b[x], acc, sizeof acc);
			int rb = ra < 0 ? ra : detok_push(&d, b[y], acc + ra, sizeof acc - (size_t)ra);
			int rc = rb < 0 ? rb : detok_flush(&d, acc + ra + rb, sizeof acc - (size_t)(ra + rb));
			if (rc < 0) {
				bad++;
				continue;
			}
			o = (size_t)(ra + rb + rc);
			char ref[16];
			char two[2] = { (char)x, (char)y };
			size_t rn = utf8_sanitize(two, 2, ref, sizeof ref);
			if (o != rn || memcmp(acc, ref, o) != 0 || !utf8_valid(acc, o))
				bad++;
		}
	}
	tap_is_int(bad, 0, "detok: all 65536 byte pairs give the sanitized bytes, valid UTF-8");
}

/* ---- pre-tokenizer splits ---- */

struct split_case {
	const char *text;
	const char *want; /* the words joined by '|' */
};

/* Expected splits worked out from the regexes (see enum tok_pre). */
static const struct split_case llama3_cases[] = {
	{ "Hello world", "Hello| world" },
	{ "12345678", "123|456|78" },
	{ "1234 56", "123|4| |56" },
	{ "3.14", "3|.|14" },
	{ "don't I'LL we'Ve", "don|'t| I|'LL| we|'Ve" },
	{ "'S 'Re 'd", "'S| '|Re| '|d" },
	{ "a\r\nb", "a|\r\n|b" },
	{ "x  \n\ny", "x|  \n\n|y" },
	{ "hello   world", "hello|  | world" },
	{ "trailing  ", "trailing|  " },
	{ "\t\tfoo", "\t|\tfoo" },
	{ "(ok)...", "(ok|)..." },
	{ "x!!\n\ny", "x|!!\n\n|y" },
	{ "Ünïcödé über", "Ünïcödé| über" },
	{ "你好世界", "你好世界" },
	{ "😀😀 ok", "😀😀| ok" },
	{ "٣٤٥٦ arabic digits", "٣٤٥|٦| arabic| digits" },
	{ " ", " " },
	{ "", "" },
};

static const struct split_case gpt2_cases[] = {
	{ "Hello world", "Hello| world" },
	{ "12345678", "12345678" },
	{ "don't I'LL", "don|'t| I|'|LL" },
	{ "hello   world", "hello|  | world" },
	{ "a\r\nb", "a|\r|\n|b" },
	{ " 123abc", " 123|abc" },
	{ "!!! ?", "!!!| ?" },
	{ "trailing  ", "trailing|  " },
	{ "😀😀 ok", "😀😀| ok" },
	{ "", "" },
};

static void check_split(const struct split_case *c, size_t nc, const char *name,
			size_t (*split)(const uint32_t *, size_t, uint32_t *))
{
	for (size_t i = 0; i < nc; i++) {
		uint32_t cps[256], lens[256];
		size_t n = 0, len = strlen(c[i].text);
		for (size_t k = 0; k < len;) {
			size_t l;
			utf8_decode(c[i].text + k, len - k, &cps[n++], &l);
			k += l;
		}
		size_t nw = split(cps, n, lens);
		char got[1024];
		size_t o = 0, at = 0;
		for (size_t w = 0; w < nw; w++) {
			if (w)
				got[o++] = '|';
			for (uint32_t k = 0; k < lens[w]; k++)
				o += utf8_encode(cps[at + k], got + o);
			at += lens[w];
		}
		got[o] = '\0';
		if (!tap_ok(strcmp(got, c[i].want) == 0 && at == n, "%s split %zu", name, i)) {
			print_text("text", c[i].text, len);
			print_text("want", c[i].want, strlen(c[i].want));
			print_text("got ", got, o);
		}
	}
}

/* ---- metadata validation and a synthetic BPE vocabulary ---- */

/* GPT-2's byte characters, in byte order: token i is byte i. */
static void byte_chars(char storage[256][3], const char *strs[256])
{
	for (int b = 0; b < 256; b++) {
		uint32_t cp = b;
		if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
			int k = 0;
			for (int c = 0; c < b; c++)
				k += !((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE);
			cp = 0x100 + (uint32_t)k;
		}
		size_t n = utf8_encode(cp, storage[b]);
		storage[b][n] = '\0';
		strs[b] = storage[b];
	}
}

enum {
	V_OK,
	V_SHORT_SCORES,
	V_SHORT_TYPES,
	V_MERGE_UNKNOWN,
	V_MERGE_NO_SPACE,
	V_NO_TOKENS,
	V_BAD_MODEL,
	V_DUPLICATE,
	V_TOKENS_NOT_STRINGS,
	V_BAD_BYTE_TOKEN,
	V_ADD_BOS_NO_BOS,
	V_BOS_OUT_OF_RANGE,
	V_ID_NOT_INT,
	V_NO_MERGES,
};

/* Write a small BPE vocabulary with a defect; returns 0 or -errno. */
static int write_vocab(const char *path, int defect, const char *pre)
{
	static char storage[256][3];
	const char *toks[300];
	int32_t types[300];
	float scores[300];
	byte_chars(storage, toks);
	int n = 256;
	static const char *const extra[] = { "he", "ll", "hell", "hello", "xyz",
					     "<|begin_of_text|>", "<|eot_id|>", "<tool>" };
	for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
		toks[n++] = extra[i];
	for (int i = 0; i < n; i++) {
		types[i] = 1;
		scores[i] = 0;
	}
	types[n - 3] = 3; /* <|begin_of_text|>: control */
	types[n - 2] = 3; /* <|eot_id|>: control */
	types[n - 1] = 4; /* <tool>: user-defined */
	const char *merges[] = { "h e", "l l", "he ll", "hell o" };
	int n_merges = 4;

	if (defect == V_DUPLICATE)
		toks[n - 4] = "hello";
	if (defect == V_BAD_BYTE_TOKEN)
		types[n - 4] = 6;
	if (defect == V_MERGE_UNKNOWN)
		merges[3] = "hell q!";
	if (defect == V_MERGE_NO_SPACE)
		merges[2] = "hell";

	struct st_err err = { { 0 } };
	struct gguf_writer *w = gguf_writer_new(0);
	int rc = w ? 0 : -ENOMEM;
	if (rc == 0)
		rc = gguf_writer_add_str(w, "general.architecture", "llama");
	if (rc == 0)
		rc = gguf_writer_add_str(w, "tokenizer.ggml.model", defect == V_BAD_MODEL ? "bert" : "gpt2");
	if (rc == 0 && pre)
		rc = gguf_writer_add_str(w, "tokenizer.ggml.pre", pre);
	if (rc == 0 && defect != V_NO_TOKENS) {
		if (defect == V_TOKENS_NOT_STRINGS)
			rc = gguf_writer_add_arr(w, "tokenizer.ggml.tokens", GGUF_TYPE_I32, types, (uint64_t)n);
		else
			rc = gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)n);
	}
	if (rc == 0)
		rc = gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_F32, scores,
					 (uint64_t)(defect == V_SHORT_SCORES ? n - 1 : n));
	if (rc == 0)
		rc = gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, types,
					 (uint64_t)(defect == V_SHORT_TYPES ? n - 5 : n));
	if (rc == 0 && defect != V_NO_MERGES)
		rc = gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, (uint64_t)n_merges);
	if (rc == 0 && defect != V_ADD_BOS_NO_BOS) {
		if (defect == V_ID_NOT_INT)
			rc = gguf_writer_add_str(w, "tokenizer.ggml.bos_token_id", "256");
		else
			rc = gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id",
						 defect == V_BOS_OUT_OF_RANGE ? 100000 : (uint32_t)n - 3);
	}
	if (rc == 0)
		rc = gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)n - 2);
	if (rc == 0 && defect == V_ADD_BOS_NO_BOS)
		rc = gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);
	if (rc == 0)
		rc = gguf_writer_begin(w, path, &err);
	if (rc == 0)
		rc = gguf_writer_finish(w, &err);
	if (rc < 0)
		tap_diag("writing %s: %s (%d)", path, err.msg, rc);
	gguf_writer_free(w);
	return rc;
}

static void test_validation(void)
{
	static const struct {
		int defect;
		const char *needle; /* the error message must name this */
	} bad[] = {
		{ V_SHORT_SCORES, "tokenizer.ggml.scores" },
		{ V_SHORT_TYPES, "tokenizer.ggml.token_type" },
		{ V_MERGE_UNKNOWN, "tokenizer.ggml.merges[3]" },
		{ V_MERGE_NO_SPACE, "tokenizer.ggml.merges[2]" },
		{ V_NO_TOKENS, "tokenizer.ggml.tokens" },
		{ V_BAD_MODEL, "tokenizer.ggml.model" },
		{ V_DUPLICATE, "duplicate" },
		{ V_TOKENS_NOT_STRINGS, "tokenizer.ggml.tokens" },
		{ V_BAD_BYTE_TOKEN, "BYTE" },
		{ V_ADD_BOS_NO_BOS, "add_bos_token" },
		{ V_ID_NOT_INT, "bos_token_id" },
		{ V_NO_MERGES, "tokenizer.ggml.merges" },
	};
	char path[512];
	snprintf(path, sizeof path, "%s/bad.gguf", tap_tmpdir());
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct st_err err = { { 0 } };
		struct tokenizer *t = NULL;
		if (write_vocab(path, bad[i].defect, "gpt-2") < 0) {
			tap_ok(0, "validation %zu: could not write the file", i);
			continue;
		}
		int rc = tokenizer_load_file(path, &t, &err);
		bool ok = rc == -EINVAL && t == NULL && strstr(err.msg, bad[i].needle) != NULL;
		if (!tap_ok(ok, "validation: defect %d refused, naming '%s'", bad[i].defect, bad[i].needle))
			tap_diag("rc %d, message '%s'", rc, err.msg);
		else
			tap_diag("  message: %s", err.msg);
		tokenizer_free(t);
	}

	/* an out-of-range id is ignored with a warning, as llama.cpp does */
	struct st_err err = { { 0 } };
	struct tokenizer *t = NULL;
	int rc = write_vocab(path, V_BOS_OUT_OF_RANGE, "gpt-2");
	if (rc == 0)
		rc = tokenizer_load_file(path, &t, &err);
	tap_ok(rc == 0 && t && tokenizer_bos(t) == -1 && tokenizer_eos(t) == 262,
	       "validation: a BOS id outside the vocabulary is ignored");
	tokenizer_free(t);
}

static void test_synthetic_bpe(void)
{
	char path[512];
	struct st_err err = { { 0 } };
	struct tokenizer *g2 = NULL, *l3 = NULL, *unk = NULL;
	snprintf(path, sizeof path, "%s/gpt2.gguf", tap_tmpdir());
	int rc = write_vocab(path, V_OK, "gpt-2");
	if (rc == 0)
		rc = tokenizer_load_file(path, &g2, &err);
	snprintf(path, sizeof path, "%s/llama3.gguf", tap_tmpdir());
	if (rc == 0)
		rc = write_vocab(path, V_OK, "llama-bpe");
	if (rc == 0)
		rc = tokenizer_load_file(path, &l3, &err);
	snprintf(path, sizeof path, "%s/unknown-pre.gguf", tap_tmpdir());
	if (rc == 0)
		rc = write_vocab(path, V_OK, "no-such-pre");
	if (rc == 0)
		rc = tokenizer_load_file(path, &unk, &err);
	if (!tap_ok(rc == 0, "synthetic BPE vocabularies load")) {
		tap_diag("%s (%d)", err.msg, rc);
		goto out;
	}
	const int32_t hello = 259, xyz = 260, bot = 261, eot = 262, tool = 263;
	int32_t ids[64];
	int n;

	n = tokenizer_encode(g2, "hello", 5, false, false, ids, 64);
	tap_ok(n == 1 && ids[0] == hello, "bpe: merges build 'hello'");
	n = tokenizer_encode(g2, "xyz", 3, false, false, ids, 64);
	/* token b < 256 is byte b (see write_vocab) */
	tap_ok(n == 3 && ids[0] == 'x' && ids[1] == 'y' && ids[2] == 'z',
	       "bpe (gpt-2): 'xyz' has no merges: 3 byte tokens");
	n = tokenizer_encode(l3, "xyz", 3, false, false, ids, 64);
	tap_ok(n == 1 && ids[0] == xyz, "bpe (llama3): a word that is a token is taken whole");
	tap_ok(!tokenizer_add_bos(g2) && tokenizer_add_bos(l3),
	       "bpe: add_bos defaults to false for gpt-2, true for llama-bpe");
	tap_ok(tokenizer_is_eog(g2, eot) && !tokenizer_is_eog(g2, bot) && !tokenizer_is_eog(g2, hello),
	       "bpe: <|eot_id|> ends generation (eos), <|begin_of_text|> does not");

	n = tokenizer_encode(l3, "<|eot_id|>hello", 15, false, true, ids, 64);
	tap_ok(n == 2 && ids[0] == eot && ids[1] == hello, "bpe: parse_special finds <|eot_id|>");
	n = tokenizer_encode(l3, "<|eot_id|>hello", 15, false, false, ids, 64);
	tap_ok(n > 2 && ids[0] != eot, "bpe: without parse_special <|eot_id|> is spelled out (%d tokens)", n);
	n = tokenizer_encode(l3, "hello<tool>hello", 16, false, false, ids, 64);
	tap_ok(n == 3 && ids[0] == hello && ids[1] == tool && ids[2] == hello,
	       "bpe: user-defined <tool> is matched even without parse_special");
	n = tokenizer_encode(l3, "hi", 2, true, false, ids, 64);
	tap_ok(n == 3 && ids[0] == bot, "bpe: add_bos puts <|begin_of_text|> first");

	n = tokenizer_encode(unk, "hello", 5, false, false, ids, 64);
	tap_ok(n == 1 && ids[0] == hello, "bpe: an unknown pre-tokenizer falls back to GPT-2's");

	/* invalid UTF-8: each bad byte reads as U+FFFD (EF BF BD -> 3 byte tokens) */
	n = tokenizer_encode(g2, "\xFF", 1, false, false, ids, 64);
	tap_ok(n == 3 && ids[0] == 0xEF && ids[1] == 0xBF && ids[2] == 0xBD,
	       "bpe: a bad byte encodes as U+FFFD's bytes");
out:
	tokenizer_free(g2);
	tokenizer_free(l3);
	tokenizer_free(unk);
}

/* ---- performance ---- */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_speed(const struct tokenizer *t, const char *name)
{
	size_t size = 100 * 1024, o = 0;
	char *text = malloc(size + 512);
	for (size_t i = 0; o < size; i++) {
		size_t n = strlen(texts[i % N_TEXTS]);
		memcpy(text + o, texts[i % N_TEXTS], n);
		o += n;
		text[o++] = ' ';
	}
	int32_t *ids = malloc((o + 1) * sizeof *ids);
	/* the best of three runs: the machine may be busy with other builds */
	double best = 1e9;
	int n = 0;
	for (int run = 0; run < 3; run++) {
		double t0 = now_ms();
		n = tokenizer_encode(t, text, o, false, false, ids, o + 1);
		double t1 = now_ms();
		if (t1 - t0 < best)
			best = t1 - t0;
	}
	char *back = malloc(o + 64);
	int m = n < 0 ? n : tokenizer_decode(t, ids, (size_t)n, false, back, o + 64);
	tap_diag("%s: encoded %zu bytes into %d tokens in %.1f ms", name, o, n, best);
	tap_ok(n > 0 && m == (int)o && memcmp(back, text, o) == 0,
	       "%s: 100 KiB round trip", name);
	/* generous bound: milliseconds are expected, seconds mean a quadratic bug
	 * (and sanitizer builds are several times slower) */
	tap_ok(best < 2000, "%s: 100 KiB encoded in %.1f ms (< 2 s)", name, best);
	free(text);
	free(ids);
	free(back);
}

int main(void)
{
	check_split(llama3_cases, sizeof llama3_cases / sizeof llama3_cases[0], "llama3",
		    tok_split_llama3);
	check_split(gpt2_cases, sizeof gpt2_cases / sizeof gpt2_cases[0], "gpt2", tok_split_gpt2);
	test_validation();
	test_synthetic_bpe();

	const char *shared = tap_shared_dir();
	if (!shared) {
		tap_skip("$STRATA_SHARED not set: llama.cpp vocabularies and stories260K not tested");
		return tap_done();
	}
	test_vocab_file(shared, "ggml-vocab-llama-spm.gguf");
	test_vocab_file(shared, "ggml-vocab-gpt-2.gguf");

	char path[1024];
	snprintf(path, sizeof path, "%s/models/stories260K.gguf", shared);
	struct tokenizer *st = load_vocab(path);
	if (tap_ok(st != NULL, "stories260K loads")) {
		test_stories(st);
		test_stories_reference(st, shared);
		test_pieces_spm(st);
		test_roundtrip(st, "stories260K");
		test_detok_stream(st, "stories260K");
		test_detok_bytes(st);
	}
	tokenizer_free(st);

	snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", shared);
	struct tokenizer *spm = load_vocab(path);
	if (tap_ok(spm != NULL, "llama-spm loads")) {
		test_pieces_spm(spm);
		test_roundtrip(spm, "llama-spm");
		test_detok_stream(spm, "llama-spm");
		test_speed(spm, "llama-spm");
	}
	tokenizer_free(spm);

	snprintf(path, sizeof path, "%s/vocab/ggml-vocab-gpt-2.gguf", shared);
	struct tokenizer *bpe = load_vocab(path);
	if (tap_ok(bpe != NULL, "gpt-2 loads")) {
		test_pieces_bpe(bpe);
		test_roundtrip(bpe, "gpt-2");
		test_detok_stream(bpe, "gpt-2");
		test_speed(bpe, "gpt-2");
	}
	tokenizer_free(bpe);
	return tap_done();
}
