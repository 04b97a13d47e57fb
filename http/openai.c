/* openai.c: see openai.h. The shapes follow OpenAI's API reference for the
 * completions and chat completions objects and their chunks. */
#include "config.h"

#include "http/openai.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/utf8.h"
#include "proto/frame.h"

struct oa_choice {
	struct buf text;               /* stream: false: the generated text */
	struct json_object *gen_lp;    /* stream: false, logprobs: completions: the four
					* arrays of the generated tokens; chat: content[] */
	struct json_object *prompt_lp; /* completions, echo + logprobs: the prompt's four arrays */
	uint64_t cp;                   /* completions: code points before the next generated
					* token (text_offset counts from the prompt's start) */
	const char *finish;            /* "stop" or "length" once its Done came */
	uint32_t completion_tokens;
};

struct oa {
	const struct api_request *r;
	char *const *prompt_texts; /* (r->n_prompts) or NULL; entries may be NULL */
	const char *model;
	char id[48];
	int64_t created;
	size_t n;                  /* choices */
	struct oa_choice *ch;      /* (n) */
	uint32_t *prompt_tokens;   /* (r->n_prompts) from each prompt's Done */
	size_t n_finished;
	bool discard;              /* completions with max_tokens 0: nothing generated is shown */
};

/* ---- small pieces ---- */

static uint64_t cp_count(const char *s, size_t n)
{
	uint64_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xC0) != 0x80;
	return k;
}

/* A log-probability as JSON: 9 significant digits round-trip a float; JSON
 * has no -inf, so a token with probability 0 gets OpenAI's -9999. */
static struct json_object *jlogprob(float lp)
{
	char s[32];
	double d = isfinite(lp) ? (double)lp : -9999.0;
	snprintf(s, sizeof s, "%.9g", d);
	return json_object_new_double_s(d, s);
}

/* A token's text: its bytes when they are UTF-8, else OpenAI's spelling of
 * raw bytes, "bytes:\xe2\x80" (a token may hold part of a character). */
static struct json_object *jtoken(const ProtobufCBinaryData *b)
{
	if (utf8_valid((const char *)b->data, b->len) && !memchr(b->data, 0, b->len))
		return json_object_new_string_len((const char *)b->data, (int)b->len);
	struct buf s = { 0 };
	buf_adds(&s, "bytes:");
	for (size_t i = 0; i < b->len; i++)
		buf_addf(&s, "\\x%02x", b->data[i]);
	struct json_object *o = json_object_new_string_len(s.p ? s.p : "", (int)s.len);
	buf_free(&s);
	return o;
}

static struct json_object *jbytes(const ProtobufCBinaryData *b)
{
	struct json_object *a = json_object_new_array_ext((int)b->len);
	for (size_t i = 0; i < b->len; i++)
		json_object_array_add(a, json_object_new_int(b->data[i]));
	return a;
}

static struct json_object *jstring(const char *s, size_t n)
{
	return json_object_new_string_len(s ? s : "", (int)n);
}

/* obj serialized, appended to out (as "data: ...\n\n" when sse). */
static int emit(struct json_object *obj, bool sse, struct buf *out)
{
	size_t len;
	const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
							  &len);
	if (!s)
		return -ENOMEM;
	if (sse && buf_adds(out, "data: ") < 0)
		return -ENOMEM;
	if (buf_add(out, s, len) < 0)
		return -ENOMEM;
	return sse ? buf_adds(out, "\n\n") : 0;
}

/* ---- log-probabilities, completions' (legacy) format ---- */

static struct json_object *lp4_new(void)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "tokens", json_object_new_array());
	json_object_object_add(o, "token_logprobs", json_object_new_array());
	json_object_object_add(o, "top_logprobs", json_object_new_array());
	json_object_object_add(o, "text_offset", json_object_new_array());
	return o;
}

static struct json_object *lp4_array(struct json_object *lp, const char *name)
{
	struct json_object *a = NULL;
	json_object_object_get_ex(lp, name, &a);
	return a;
}

/* One token: its text, log-probability (null for a prompt's first token),
 * the most likely alternatives with the token itself among them ("up to
 * logprobs+1 elements", as OpenAI says), and its offset in code points. */
static void lp4_add(struct json_object *lp, const Strata__V1__TokenLogprob *t, uint64_t offset)
{
	bool has = FRAME_HAS(t, logprob);

	json_object_array_add(lp4_array(lp, "tokens"), jtoken(&t->bytes));
	json_object_array_add(lp4_array(lp, "token_logprobs"), has ? jlogprob(t->logprob) : NULL);
	struct json_object *top = NULL;
	if (has) {
		top = json_object_new_object();
		for (size_t i = 0; i < t->n_top; i++) {
			struct json_object *k = jtoken(&t->top[i]->bytes);
			const char *key = json_object_get_string(k);
			/* two ids may spell the same text: keep the likelier */
			if (!json_object_object_get_ex(top, key, NULL))
				json_object_object_add(top, key, jlogprob(t->top[i]->logprob));
			json_object_put(k);
		}
		struct json_object *k = jtoken(&t->bytes);
		const char *key = json_object_get_string(k);
		if (!json_object_object_get_ex(top, key, NULL))
			json_object_object_add(top, key, jlogprob(t->logprob));
		json_object_put(k);
	}
	json_object_array_add(lp4_array(lp, "top_logprobs"), top);
	json_object_array_add(lp4_array(lp, "text_offset"), json_object_new_int64((int64_t)offset));
}

/* Append src's four arrays to dst's. */
static void lp4_append(struct json_object *dst, struct json_object *src)
{
	static const char *const names[] = { "tokens", "token_logprobs", "top_logprobs", "text_offset" };
	for (size_t k = 0; k < 4; k++) {
		struct json_object *a = lp4_array(src, names[k]), *b = lp4_array(dst, names[k]);
		for (size_t i = 0; i < json_object_array_length(a); i++)
			json_object_array_add(b, json_object_get(json_object_array_get_idx(a, i)));
	}
}

/* The prompt's tokens (echo), with offsets found by walking the prompt's
 * text: a token's bytes where they appear next, a SentencePiece token's
 * leading space dropped at the start, and control tokens (BOS), which write
 * no text, at the current place. */
static struct json_object *lp4_prompt(const Strata__V1__Done *d, const char *text)
{
	struct json_object *lp = lp4_new();
	size_t len = text ? strlen(text) : 0, pos = 0;
	uint64_t cp = 0;

	for (size_t i = 0; i < d->n_prompt_logprobs; i++) {
		const Strata__V1__TokenLogprob *t = d->prompt_logprobs[i];
		const char *b = (const char *)t->bytes.data;
		size_t n = t->bytes.len, adv = 0;
		if (n && n <= len - pos && memcmp(text + pos, b, n) == 0)
			adv = n;
		else if (n > 1 && b[0] == ' ' && n - 1 <= len - pos && memcmp(text + pos, b + 1, n - 1) == 0)
			adv = n - 1;
		lp4_add(lp, t, cp);
		cp += cp_count(text + pos, adv);
		pos += adv;
	}
	return lp;
}

/* ---- log-probabilities, chat's format ---- */

static struct json_object *chat_entry(const ProtobufCBinaryData *b, bool has, float logprob)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "token", jtoken(b));
	json_object_object_add(o, "logprob", has ? jlogprob(logprob) : NULL);
	json_object_object_add(o, "bytes", jbytes(b));
	return o;
}

static void chat_lp_add(struct json_object *content, const Strata__V1__TokenLogprob *t)
{
	struct json_object *o = chat_entry(&t->bytes, FRAME_HAS(t, logprob), t->logprob);
	struct json_object *top = json_object_new_array();
	for (size_t i = 0; i < t->n_top; i++)
		json_object_array_add(top, chat_entry(&t->top[i]->bytes, true, t->top[i]->logprob));
	json_object_object_add(o, "top_logprobs", top);
	json_object_array_add(content, o);
}

static struct json_object *chat_lp_object(struct json_object *content)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "content", content);
	json_object_object_add(o, "refusal", NULL);
	return o;
}

/* ---- the reply ---- */

struct oa *oa_new(const struct api_request *r, char *const *prompt_texts, const char *model)
{
	struct oa *o = calloc(1, sizeof *o);
	uint8_t rnd[12];

	if (!o)
		return NULL;
	o->r = r;
	o->prompt_texts = prompt_texts;
	o->model = model;
	o->n = api_request_choices(r);
	o->ch = calloc(o->n ? o->n : 1, sizeof *o->ch);
	o->prompt_tokens = calloc(r->n_prompts ? r->n_prompts : 1, sizeof *o->prompt_tokens);
	if (!o->ch || !o->prompt_tokens) {
		oa_free(o);
		return NULL;
	}
	o->discard = r->kind == API_COMPLETIONS && r->max_tokens == 0;
	o->created = (int64_t)time(NULL);
	if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
		uint64_t t = (uint64_t)clock();
		memcpy(rnd, &t, sizeof t);
	}
	int k = snprintf(o->id, sizeof o->id, "%s", r->kind == API_CHAT ? "chatcmpl-" : "cmpl-");
	for (size_t i = 0; i < sizeof rnd; i++)
		k += snprintf(o->id + k, sizeof o->id - (size_t)k, "%02x", rnd[i]);
	for (size_t c = 0; c < o->n; c++) {
		const char *pt = prompt_texts ? prompt_texts[api_request_prompt_of(r, c)] : NULL;
		o->ch[c].cp = pt ? cp_count(pt, strlen(pt)) : 0;
	}
	return o;
}

void oa_free(struct oa *o)
{
	if (!o)
		return;
	for (size_t c = 0; o->ch && c < o->n; c++) {
		buf_free(&o->ch[c].text);
		json_object_put(o->ch[c].gen_lp);
		json_object_put(o->ch[c].prompt_lp);
	}
	free(o->ch);
	free(o->prompt_tokens);
	free(o);
}

static const char *finish_reason(const Strata__V1__Done *d)
{
	return d->finish_reason == STRATA__V1__FINISH_REASON__FINISH_REASON_LENGTH ? "length" : "stop";
}

/* Bookkeeping shared by both modes at a choice's Done. */
static void note_done(struct oa *o, size_t c, const Strata__V1__Done *d)
{
	struct oa_choice *ch = &o->ch[c];
	const Strata__V1__Timings *t = d->timings;

	ch->finish = o->discard ? "length" : finish_reason(d);
	ch->completion_tokens = o->discard || !t ? 0 : t->generated_tokens;
	if (t)
		o->prompt_tokens[api_request_prompt_of(o->r, c)] = t->prompt_tokens;
	o->n_finished++;
}

void oa_usage(const struct oa *o, uint64_t *prompt_tokens, uint64_t *completion_tokens)
{
	*prompt_tokens = *completion_tokens = 0;
	for (size_t p = 0; p < o->r->n_prompts; p++)
		*prompt_tokens += o->prompt_tokens[p];
	for (size_t c = 0; c < o->n; c++)
		*completion_tokens += o->ch[c].completion_tokens;
}

static struct json_object *usage_object(const struct oa *o)
{
	uint64_t p, c;
	oa_usage(o, &p, &c);
	struct json_object *u = json_object_new_object();
	json_object_object_add(u, "prompt_tokens", json_object_new_int64((int64_t)p));
	json_object_object_add(u, "completion_tokens", json_object_new_int64((int64_t)c));
	json_object_object_add(u, "total_tokens", json_object_new_int64((int64_t)(p + c)));
	return u;
}

/* The envelope every reply and chunk shares. */
static struct json_object *envelope(const struct oa *o, const char *object)
{
	struct json_object *e = json_object_new_object();
	json_object_object_add(e, "id", json_object_new_string(o->id));
	json_object_object_add(e, "object", json_object_new_string(object));
	json_object_object_add(e, "created", json_object_new_int64(o->created));
	json_object_object_add(e, "model", json_object_new_string(o->model));
	json_object_object_add(e, "system_fingerprint", json_object_new_string("strata-" PACKAGE_VERSION));
	return e;
}

/* Generated tokens of a Piece into a logprobs accumulator (either format). */
static void add_piece_logprobs(struct oa *o, struct oa_choice *ch, struct json_object *acc,
			       const Strata__V1__Piece *p)
{
	for (size_t i = 0; i < p->n_logprobs; i++) {
		if (o->r->kind == API_CHAT) {
			chat_lp_add(acc, p->logprobs[i]);
		} else {
			lp4_add(acc, p->logprobs[i], ch->cp);
			ch->cp += cp_count((const char *)p->logprobs[i]->bytes.data, p->logprobs[i]->bytes.len);
		}
	}
}

int oa_add_piece(struct oa *o, size_t c, const Strata__V1__Piece *p)
{
	struct oa_choice *ch = &o->ch[c];

	if (o->discard)
		return 0;
	if (buf_adds(&ch->text, p->text) < 0)
		return -ENOMEM;
	if (o->r->logprobs >= 0) {
		if (!ch->gen_lp)
			ch->gen_lp = o->r->kind == API_CHAT ? json_object_new_array() : lp4_new();
		if (!ch->gen_lp)
			return -ENOMEM;
		add_piece_logprobs(o, ch, ch->gen_lp, p);
	}
	return 0;
}

int oa_add_done(struct oa *o, size_t c, const Strata__V1__Done *d)
{
	struct oa_choice *ch = &o->ch[c];

	note_done(o, c, d);
	if (o->r->kind == API_COMPLETIONS && o->r->echo && o->r->logprobs >= 0) {
		const char *pt = o->prompt_texts ? o->prompt_texts[api_request_prompt_of(o->r, c)] : NULL;
		ch->prompt_lp = lp4_prompt(d, pt);
		if (!ch->prompt_lp)
			return -ENOMEM;
	}
	return 0;
}

int oa_reply(struct oa *o, char **body, size_t *len)
{
	bool chat = o->r->kind == API_CHAT;
	struct json_object *root = envelope(o, chat ? "chat.completion" : "text_completion");
	struct json_object *choices = json_object_new_array();
	struct buf out = { 0 };

	for (size_t c = 0; c < o->n; c++) {
		struct oa_choice *ch = &o->ch[c];
		struct json_object *cj = json_object_new_object(), *lp = NULL;
		json_object_object_add(cj, "index", json_object_new_int64((int64_t)c));
		if (chat) {
			struct json_object *m = json_object_new_object();
			json_object_object_add(m, "role", json_object_new_string("assistant"));
			json_object_object_add(m, "content", jstring(ch->text.p, ch->text.len));
			json_object_object_add(m, "refusal", NULL);
			json_object_object_add(cj, "message", m);
			if (o->r->logprobs >= 0)
				lp = chat_lp_object(ch->gen_lp ? json_object_get(ch->gen_lp) : json_object_new_array());
		} else {
			struct buf t = { 0 };
			const char *pt = o->prompt_texts ? o->prompt_texts[api_request_prompt_of(o->r, c)] : NULL;
			if (o->r->echo && pt)
				buf_adds(&t, pt);
			buf_add(&t, ch->text.p, ch->text.len);
			json_object_object_add(cj, "text", jstring(t.p, t.len));
			buf_free(&t);
			if (o->r->logprobs >= 0) {
				lp = lp4_new();
				if (ch->prompt_lp)
					lp4_append(lp, ch->prompt_lp);
				if (ch->gen_lp)
					lp4_append(lp, ch->gen_lp);
			}
		}
		json_object_object_add(cj, "logprobs", lp);
		json_object_object_add(cj, "finish_reason", ch->finish ? json_object_new_string(ch->finish) : NULL);
		json_object_array_add(choices, cj);
	}
	json_object_object_add(root, "choices", choices);
	json_object_object_add(root, "usage", usage_object(o));
	int rc = emit(root, false, &out);
	json_object_put(root);
	if (rc < 0) {
		buf_free(&out);
		return rc;
	}
	*len = out.len;
	*body = buf_take(&out);
	return *body ? 0 : -ENOMEM;
}

/* ---- streams ---- */

/* One chunk of choice c: completions' {"text",...} or chat's {"delta",...}. */
static int chunk(struct oa *o, size_t c, struct json_object *delta_or_text, struct json_object *logprobs,
		 const char *finish, bool with_usage, struct buf *out)
{
	bool chat = o->r->kind == API_CHAT;
	struct json_object *root = envelope(o, chat ? "chat.completion.chunk" : "text_completion");
	struct json_object *choices = json_object_new_array(), *cj = json_object_new_object();

	json_object_object_add(cj, "index", json_object_new_int64((int64_t)c));
	json_object_object_add(cj, chat ? "delta" : "text", delta_or_text);
	json_object_object_add(cj, "logprobs", logprobs);
	json_object_object_add(cj, "finish_reason", finish ? json_object_new_string(finish) : NULL);
	json_object_array_add(choices, cj);
	json_object_object_add(root, "choices", choices);
	if (with_usage)
		json_object_object_add(root, "usage", usage_object(o));
	int rc = emit(root, true, out);
	json_object_put(root);
	return rc;
}

int oa_stream_start(struct oa *o, struct buf *out)
{
	for (size_t c = 0; c < o->n; c++) {
		int rc = 0;
		if (o->r->kind == API_CHAT) {
			struct json_object *d = json_object_new_object();
			json_object_object_add(d, "role", json_object_new_string("assistant"));
			json_object_object_add(d, "content", json_object_new_string(""));
			rc = chunk(o, c, d, NULL, NULL, false, out);
		} else if (o->r->echo) {
			const char *pt = o->prompt_texts ? o->prompt_texts[api_request_prompt_of(o->r, c)] : NULL;
			rc = chunk(o, c, jstring(pt, pt ? strlen(pt) : 0), NULL, NULL, false, out);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int oa_stream_piece(struct oa *o, size_t c, const Strata__V1__Piece *p, struct buf *out)
{
	struct json_object *lp = NULL, *acc = NULL;

	if (o->discard)
		return 0;
	if (o->r->logprobs >= 0) {
		acc = o->r->kind == API_CHAT ? json_object_new_array() : lp4_new();
		add_piece_logprobs(o, &o->ch[c], acc, p);
		lp = o->r->kind == API_CHAT ? chat_lp_object(acc) : acc;
	} else if (!p->text[0]) {
		return 0; /* a token that ends inside a character: nothing to show yet */
	}
	if (o->r->kind == API_CHAT) {
		struct json_object *d = json_object_new_object();
		json_object_object_add(d, "content", json_object_new_string(p->text));
		return chunk(o, c, d, lp, NULL, false, out);
	}
	return chunk(o, c, json_object_new_string(p->text), lp, NULL, false, out);
}

int oa_stream_done(struct oa *o, size_t c, const Strata__V1__Done *d, struct buf *out)
{
	note_done(o, c, d);
	bool usage_here = !o->r->include_usage && o->n_finished == o->n;
	struct json_object *body = o->r->kind == API_CHAT ? json_object_new_object() : json_object_new_string("");
	return chunk(o, c, body, NULL, o->ch[c].finish, usage_here, out);
}

int oa_stream_end(struct oa *o, struct buf *out)
{
	if (o->r->include_usage) {
		bool chat = o->r->kind == API_CHAT;
		struct json_object *root = envelope(o, chat ? "chat.completion.chunk" : "text_completion");
		json_object_object_add(root, "choices", json_object_new_array());
		json_object_object_add(root, "usage", usage_object(o));
		int rc = emit(root, true, out);
		json_object_put(root);
		if (rc < 0)
			return rc;
	}
	return buf_adds(out, "data: [DONE]\n\n");
}

static struct json_object *error_object(const struct apierr *e)
{
	struct json_object *root = json_object_new_object(), *err = json_object_new_object();
	json_object_object_add(err, "message", json_object_new_string(e->message));
	json_object_object_add(err, "type", json_object_new_string(e->type ? e->type : "server_error"));
	json_object_object_add(err, "param", e->param[0] ? json_object_new_string(e->param) : NULL);
	json_object_object_add(err, "code", e->code ? json_object_new_string(e->code) : NULL);
	json_object_object_add(root, "error", err);
	return root;
}

int oa_stream_error(const struct apierr *e, struct buf *out)
{
	struct json_object *root = error_object(e);
	int rc = emit(root, true, out);
	json_object_put(root);
	return rc;
}

int oa_error_body(const struct apierr *e, char **body, size_t *len)
{
	struct json_object *root = error_object(e);
	struct buf out = { 0 };
	int rc = emit(root, false, &out);
	json_object_put(root);
	if (rc == 0)
		rc = buf_adds(&out, "\n");
	if (rc < 0) {
		buf_free(&out);
		return rc;
	}
	*len = out.len;
	*body = buf_take(&out);
	return 0;
}
