/* requests.c: see requests.h. The handlers take their inputs from the
 * request and the env, and leave nothing behind but a scheduler request and
 * the connection's list of unfinished Generates. */
#include "config.h"

#include "daemon/requests.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/sched.h"
#include "daemon/settings.h"
#include "engine/engine.h"

/* ---- a connection's unfinished Generates ---- */

bool gen_ids_has(const struct gen_ids *g, uint64_t id)
{
	for (uint32_t i = 0; i < g->n; i++)
		if (g->ids[i] == id)
			return true;
	return false;
}

int gen_ids_add(struct gen_ids *g, uint64_t id)
{
	if (g->n == g->cap) {
		uint32_t cap = g->cap ? g->cap * 2 : 4;
		uint64_t *p = realloc(g->ids, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		g->ids = p;
		g->cap = cap;
	}
	g->ids[g->n++] = id;
	return 0;
}

void gen_ids_remove(struct gen_ids *g, uint64_t id)
{
	for (uint32_t i = 0; i < g->n; i++) {
		if (g->ids[i] == id) {
			g->ids[i] = g->ids[--g->n];
			return;
		}
	}
}

void gen_ids_free(struct gen_ids *g)
{
	free(g->ids);
	g->ids = NULL;
	g->n = g->cap = 0;
}

/* ---- replies ---- */

void request_error(const struct reply_to *to, uint64_t id, Strata__V1__ErrorCode code,
		   const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);

	Strata__V1__Error err = STRATA__V1__ERROR__INIT;
	err.code = code;
	err.message = msg;
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = id;
	r.body_case = STRATA__V1__RESPONSE__BODY_ERROR;
	r.error = &err;
	log_debug("client %" PRIu64 " request %" PRIu64 ": error %d: %s", to->conn_id, id, (int)code, msg);
	to->send(to->user, &r);
}

/* ---- the requests ---- */

static uint64_t random_seed(void)
{
	uint64_t seed;
	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
		seed = clock_now_ns() ^ ((uint64_t)getpid() << 32);
	return seed;
}

/* The prompt's tokens, from whichever of text, ids or chat messages the
 * request gives (exactly one). 0, or -EINVAL with a message, or -ENOMEM. */
static int generate_prompt(const struct request_env *env, const Strata__V1__Generate *g,
			   struct sched_request *r, struct st_err *err)
{
	bool text = g->prompt[0] != '\0', ids = g->n_prompt_ids > 0, chat = g->n_messages > 0;
	if (text + ids + chat > 1)
		return st_errf(err, -EINVAL, "give one of prompt, prompt_ids and messages");
	if (ids) {
		uint32_t n_vocab = engine_n_vocab(env->e);
		if (!(r->prompt = malloc(g->n_prompt_ids * sizeof *r->prompt)))
			return -ENOMEM;
		for (size_t i = 0; i < g->n_prompt_ids; i++) {
			if (g->prompt_ids[i] >= n_vocab)
				return st_errf(err, -EINVAL, "prompt_ids[%zu] is %u, not below the vocabulary "
					       "size %u", i, g->prompt_ids[i], n_vocab);
			r->prompt[i] = (int32_t)g->prompt_ids[i];
		}
		r->gen.n_prompt = (uint32_t)g->n_prompt_ids;
		return 0;
	}
	if (chat) {
		struct engine_chat_msg *m = calloc(g->n_messages, sizeof *m);
		if (!m)
			return -ENOMEM;
		for (size_t i = 0; i < g->n_messages; i++)
			m[i] = (struct engine_chat_msg){ g->messages[i]->role, g->messages[i]->content };
		int32_t eot = -1;
		int rc = engine_chat(env->e, m, (uint32_t)g->n_messages, g->chat_template, &r->prompt,
				     &r->gen.n_prompt, &eot, err);
		free(m);
		r->gen.has_end_of_turn = eot >= 0;
		r->gen.end_of_turn = eot;
		return rc;
	}
	int bos = FRAME_HAS(g, add_bos) ? g->add_bos : -1;
	int rc = engine_tokenize(env->e, g->prompt, strlen(g->prompt), bos, g->parse_special,
				 &r->prompt, &r->gen.n_prompt);
	if (rc == 0 && r->gen.n_prompt == 0)
		return st_errf(err, -EINVAL, "the prompt is empty and no BOS token was added: there "
			       "is nothing to continue");
	return rc;
}

static void submit(const struct request_env *env, struct gen_ids *gens, const struct reply_to *to,
		   uint64_t id, struct sched_request *r)
{
	if (gen_ids_add(gens, id) < 0) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		sched_request_free(r);
		return;
	}
	int rc = sched_submit(env->sched, r);
	if (rc == 0)
		return; /* the scheduler owns r now */
	gen_ids_remove(gens, id);
	sched_request_free(r);
	if (rc == -EAGAIN)
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_OVERLOADED,
			      "%u requests are already waiting (--max-queue); try again later",
			      env->cfg->max_queue);
	else if (rc == -ESHUTDOWN)
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN,
			      "stratad is shutting down and accepts no new requests");
	else
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
}

/* Checks every request that starts work shares. false: answered with an error. */
static bool may_start(const struct request_env *env, const struct gen_ids *gens,
		      const struct reply_to *to, uint64_t id)
{
	if (env->draining) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN,
			      "stratad is shutting down and accepts no new requests");
		return false;
	}
	if (gen_ids_has(gens, id)) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			      "request id %" PRIu64 " is already in use on this connection", id);
		return false;
	}
	return true;
}

static void handle_generate(const struct request_env *env, struct gen_ids *gens,
			    const struct reply_to *to, uint64_t id, const Strata__V1__Generate *g)
{
	uint32_t n_ctx = engine_n_ctx(env->e);
	struct sched_request *r = NULL;
	struct st_err err = { "" };
	int rc;

	if (!may_start(env, gens, to, id))
		return;
	r = calloc(1, sizeof *r);
	if (!r)
		goto nomem;
	r->kind = SCHED_GENERATE;
	r->client_id = to->conn_id;
	r->request_id = id;
	r->received_ns = clock_now_ns();
	struct seq_params *gp = &r->gen;
	gp->ignore_eos = g->ignore_eos;
	struct sampler_params *sp = &gp->sampling;
	sampler_params_default(sp);
	if (FRAME_HAS(g, temperature))
		sp->temperature = g->temperature;
	if (FRAME_HAS(g, top_k))
		sp->top_k = g->top_k > INT32_MAX ? INT32_MAX : (int32_t)g->top_k;
	if (FRAME_HAS(g, top_p))
		sp->top_p = g->top_p;
	if (FRAME_HAS(g, min_p))
		sp->min_p = g->min_p;
	if (FRAME_HAS(g, repetition_penalty))
		sp->repeat_penalty = g->repetition_penalty;
	if (FRAME_HAS(g, repetition_window))
		sp->repeat_last_n = g->repetition_window > INT32_MAX ? INT32_MAX : (int32_t)g->repetition_window;
	sp->seed = FRAME_HAS(g, seed) ? g->seed : random_seed();
	if (sp->temperature < 0.0f) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			      "temperature must be >= 0 (got %g)", (double)sp->temperature);
		goto out;
	}
	if (FRAME_HAS(g, top_logprobs)) {
		gp->logprobs = true;
		gp->top_logprobs = g->top_logprobs;
	}
	gp->echo_logprobs = g->echo_logprobs;
	switch (g->draft) {
	case STRATA__V1__DRAFT_SOURCE__DRAFT_SOURCE_NONE: gp->draft = DRAFT_NONE; break;
	case STRATA__V1__DRAFT_SOURCE__DRAFT_SOURCE_LOOKUP: gp->draft = DRAFT_LOOKUP; break;
	case STRATA__V1__DRAFT_SOURCE__DRAFT_SOURCE_MODEL: gp->draft = DRAFT_MODEL; break;
	default: gp->draft = DRAFT_DEFAULT; break; /* an unknown value (a newer client): the default */
	}
	if (FRAME_HAS(g, draft_max) || FRAME_HAS(g, draft_min)) {
		uint32_t dmax = FRAME_HAS(g, draft_max) ? g->draft_max : engine_info(env->e)->draft_max;
		uint32_t dmin = FRAME_HAS(g, draft_min) ? g->draft_min : engine_info(env->e)->draft_min;
		if (dmax < 1 || dmax > DRAFT_MAX_TOKENS || dmin < 1 || dmin > dmax) {
			request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
				      "draft_max %u and draft_min %u: 1 <= draft_min <= draft_max <= %d", dmax,
				      dmin, DRAFT_MAX_TOKENS);
			goto out;
		}
		gp->draft_max = dmax;
		gp->draft_min = dmin;
	}
	if (g->n_stop > SEQ_MAX_STOPS) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			      "%zu stop strings given; at most %d are allowed", g->n_stop, SEQ_MAX_STOPS);
		goto out;
	}
	if (g->n_stop) {
		r->stops = calloc(g->n_stop, sizeof *r->stops);
		for (size_t i = 0; r->stops && i < g->n_stop; i++) {
			if (!(r->stops[i] = strdup(g->stop[i])))
				break;
			gp->n_stops++;
		}
		if (gp->n_stops != g->n_stop)
			goto nomem;
	}

	rc = generate_prompt(env, g, r, &err);
	if (rc == -ENOMEM)
		goto nomem;
	if (rc < 0) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "%s", err.msg);
		goto out;
	}
	if (gp->n_prompt >= n_ctx) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_PROMPT_TOO_LONG,
			      "the prompt has %u tokens but the context holds %u (with room for at least one "
			      "generated token); shorten it or start stratad with a larger --ctx-size",
			      gp->n_prompt, n_ctx);
		goto out;
	}
	uint32_t room = n_ctx - gp->n_prompt;
	gp->max_tokens = g->max_tokens ? g->max_tokens : room;
	if (env->cfg->max_tokens && gp->max_tokens > env->cfg->max_tokens)
		gp->max_tokens = env->cfg->max_tokens;
	if (gp->max_tokens > room)
		gp->max_tokens = room;
	gp->prompt = r->prompt;
	gp->stops = (const char *const *)r->stops;

	/* the generation core's own checks (sampling ranges, stop strings, logprobs) */
	if (seq_params_check(env->e, gp, &err) < 0) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "%s", err.msg);
		goto out;
	}
	log_debug("client %" PRIu64 " request %" PRIu64 ": generate, %u prompt tokens, up to %u more",
		  to->conn_id, id, gp->n_prompt, gp->max_tokens);
	submit(env, gens, to, id, r);
	return;
nomem:
	request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
out:
	sched_request_free(r);
}

/* The continuation's tokens as lm-evaluation-harness makes them: whitespace
 * ending the context moves to the continuation, then context + continuation
 * is tokenized whole and the continuation is what follows the context's own
 * tokens. (Tokenizing the continuation alone would give SentencePiece's
 * leading "▁" to a word that follows a space inside the text.) */
static int score_continuation(const struct request_env *env, const char *context, size_t n_ctx_text,
			      const char *cont, int bos, bool special, uint32_t n_context_ids,
			      int32_t **out, uint32_t *n_out)
{
	size_t cl = strlen(cont);
	char *whole = malloc(n_ctx_text + cl + 1);
	int32_t *ids = NULL;
	uint32_t n = 0;
	if (!whole)
		return -ENOMEM;
	memcpy(whole, context, n_ctx_text);
	memcpy(whole + n_ctx_text, cont, cl + 1);
	int rc = engine_tokenize(env->e, whole, n_ctx_text + cl, bos, special, &ids, &n);
	free(whole);
	if (rc < 0)
		return rc;
	if (n <= n_context_ids) {
		free(ids);
		return -EINVAL;
	}
	*n_out = n - n_context_ids;
	*out = malloc(*n_out * sizeof **out);
	if (*out)
		memcpy(*out, ids + n_context_ids, *n_out * sizeof **out);
	free(ids);
	return *out ? 0 : -ENOMEM;
}

static void handle_score(const struct request_env *env, struct gen_ids *gens,
			 const struct reply_to *to, uint64_t id, const Strata__V1__Score *q)
{
	struct sched_request *r = NULL;
	struct st_err err = { "" };
	uint32_t n_vocab = engine_n_vocab(env->e);
	int rc = 0;

	if (!may_start(env, gens, to, id))
		return;
	bool by_ids = q->n_context_ids > 0 || q->n_continuation_ids > 0;
	size_t n_conts = by_ids ? q->n_continuation_ids : q->n_continuations;
	if (by_ids && (q->context[0] || q->n_continuations)) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			      "give the context and continuations as text or as ids, not both");
		return;
	}
	if (n_conts == 0 || n_conts > SCORE_MAX_CONTINUATIONS) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			      "%zu continuations given; 1 to %d are allowed", n_conts,
			      SCORE_MAX_CONTINUATIONS);
		return;
	}
	if (!(r = calloc(1, sizeof *r)) || !(r->conts = calloc(n_conts, sizeof *r->conts)) ||
	    !(r->n_cont = calloc(n_conts, sizeof *r->n_cont)))
		goto nomem;
	r->kind = SCHED_SCORE;
	r->client_id = to->conn_id;
	r->request_id = id;
	r->received_ns = clock_now_ns();
	struct score_params *sp = &r->score;
	sp->n_conts = (uint32_t)n_conts;
	sp->token_logprobs = q->token_logprobs;
	sp->top_logprobs = q->top_logprobs;
	if (by_ids) {
		if (!(r->context = malloc((q->n_context_ids + 1) * sizeof *r->context)))
			goto nomem;
		for (size_t i = 0; i < q->n_context_ids; i++)
			r->context[i] = q->context_ids[i] < n_vocab ? (int32_t)q->context_ids[i] : -1;
		sp->n_context = (uint32_t)q->n_context_ids;
		for (size_t c = 0; c < n_conts; c++) {
			const Strata__V1__TokenIds *t = q->continuation_ids[c];
			if (!(r->conts[c] = malloc((t->n_ids + 1) * sizeof *r->conts[c])))
				goto nomem;
			for (size_t i = 0; i < t->n_ids; i++)
				r->conts[c][i] = t->ids[i] < n_vocab ? (int32_t)t->ids[i] : -1;
			r->n_cont[c] = (uint32_t)t->n_ids;
		}
	} else {
		int bos = FRAME_HAS(q, add_bos) ? q->add_bos : -1;
		size_t ctx_len = strlen(q->context);
		while (ctx_len > 0 && (q->context[ctx_len - 1] == ' ' || q->context[ctx_len - 1] == '\t' ||
				       q->context[ctx_len - 1] == '\n'))
			ctx_len--; /* that whitespace belongs to the continuation (lm-eval) */
		rc = engine_tokenize(env->e, q->context, ctx_len, bos, q->parse_special, &r->context,
				     &sp->n_context);
		if (rc < 0)
			goto nomem;
		for (size_t c = 0; c < n_conts; c++) {
			if (!q->continuations[c][0]) {
				request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
					      "continuation %zu is empty", c + 1);
				goto out;
			}
			/* the moved whitespace is the context text's tail */
			size_t tail = strlen(q->context) - ctx_len;
			char *cont = malloc(tail + strlen(q->continuations[c]) + 1);
			if (!cont)
				goto nomem;
			memcpy(cont, q->context + ctx_len, tail);
			strcpy(cont + tail, q->continuations[c]);
			rc = score_continuation(env, q->context, ctx_len, cont, bos, q->parse_special,
						sp->n_context, &r->conts[c], &r->n_cont[c]);
			free(cont);
			if (rc == -EINVAL) {
				request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
					      "continuation %zu gives no tokens after the context's", c + 1);
				goto out;
			}
			if (rc < 0)
				goto nomem;
		}
	}
	sp->context = r->context;
	sp->conts = (const int32_t *const *)r->conts;
	sp->n_cont = r->n_cont;
	if (score_params_check(env->e, sp, &err) < 0) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "%s", err.msg);
		goto out;
	}
	log_debug("client %" PRIu64 " request %" PRIu64 ": score, %u context tokens, %u continuations",
		  to->conn_id, id, sp->n_context, sp->n_conts);
	submit(env, gens, to, id, r);
	return;
nomem:
	request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
out:
	sched_request_free(r);
}

/* Text as a protobuf-c string: a C string, so a NUL byte (a model may produce
 * one through a <0x00> byte token) would cut it short. It is sent as U+FFFD
 * instead (strata.proto, STRINGS); the token ids carry the exact bytes.
 * Returns a malloc'd NUL-terminated copy, or NULL when out of memory. */
static char *proto_text(const char *s, size_t n)
{
	size_t nul = 0;
	for (size_t i = 0; i < n; i++)
		nul += s[i] == '\0';
	char *out = malloc(n + 2 * nul + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\0') {
			memcpy(o, "\xEF\xBF\xBD", 3);
			o += 3;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static void handle_tokenize(const struct request_env *env, const struct reply_to *to, uint64_t id,
			    const Strata__V1__Tokenize *t)
{
	int bos = FRAME_HAS(t, add_bos) ? t->add_bos : -1;
	int32_t *ids = NULL;
	uint32_t n = 0;
	size_t piece_cap = engine_token_bytes_max(env->e) + 1;
	uint32_t *uids = NULL;
	ProtobufCBinaryData *pieces = NULL;
	char *buf = NULL;
	if (engine_tokenize(env->e, t->text, strlen(t->text), bos, t->parse_special, &ids, &n) < 0 ||
	    !(uids = calloc((size_t)n + 1, sizeof *uids)) ||
	    !(pieces = calloc((size_t)n + 1, sizeof *pieces)) ||
	    !(buf = malloc(((size_t)n + 1) * piece_cap))) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		goto out;
	}
	char *p = buf;
	for (uint32_t i = 0; i < n; i++) {
		uids[i] = (uint32_t)ids[i];
		int len = engine_token_bytes(env->e, ids[i], p, piece_cap);
		if (len < 0 || (size_t)len > piece_cap)
			len = 0;
		pieces[i].data = (uint8_t *)p;
		pieces[i].len = (size_t)len;
		p += len;
	}
	Strata__V1__TokenizeReply tr = STRATA__V1__TOKENIZE_REPLY__INIT;
	tr.n_ids = n;
	tr.ids = uids;
	tr.n_pieces = n;
	tr.pieces = pieces;
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = id;
	r.body_case = STRATA__V1__RESPONSE__BODY_TOKENIZE;
	r.tokenize = &tr;
	to->send(to->user, &r);
out:
	free(ids);
	free(uids);
	free(pieces);
	free(buf);
}

static void handle_detokenize(const struct request_env *env, const struct reply_to *to, uint64_t id,
			      const Strata__V1__Detokenize *d)
{
	int32_t *ids = malloc((d->n_ids + 1) * sizeof *ids);
	char *text = NULL, *sent = NULL;
	size_t len = 0;
	uint32_t bad = 0;
	if (!ids) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		return;
	}
	for (size_t i = 0; i < d->n_ids; i++)
		ids[i] = d->ids[i] > INT32_MAX ? -1 : (int32_t)d->ids[i];
	int rc = engine_detokenize(env->e, ids, (uint32_t)d->n_ids, d->render_special, &text, &len, &bad);
	if (rc == -EINVAL) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			     "token id %u (position %u) is not below the vocabulary size %u",
			     d->ids[bad], bad, engine_n_vocab(env->e));
		goto out;
	}
	if (rc < 0 || !(sent = proto_text(text, len))) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		goto out;
	}
	Strata__V1__DetokenizeReply dr = STRATA__V1__DETOKENIZE_REPLY__INIT;
	dr.text = sent;
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = id;
	r.body_case = STRATA__V1__RESPONSE__BODY_DETOKENIZE;
	r.detokenize = &dr;
	to->send(to->user, &r);
out:
	free(ids);
	free(text);
	free(sent);
}

static uint64_t read_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, rss = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &rss) != 2)
		rss = 0;
	fclose(f);
	return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Requests listed in Status, at most (Status stays small however busy we are). */
#define STATUS_MAX_REQUESTS 256

static Strata__V1__RequestState request_state(enum sched_req_state st)
{
	switch (st) {
	case SCHED_REQ_QUEUED: return STRATA__V1__REQUEST_STATE__REQUEST_STATE_QUEUED;
	case SCHED_REQ_PROMPT: return STRATA__V1__REQUEST_STATE__REQUEST_STATE_PROMPT;
	case SCHED_REQ_GENERATING: return STRATA__V1__REQUEST_STATE__REQUEST_STATE_GENERATING;
	case SCHED_REQ_WAITING: return STRATA__V1__REQUEST_STATE__REQUEST_STATE_WAITING;
	}
	return STRATA__V1__REQUEST_STATE__REQUEST_STATE_UNSPECIFIED;
}

/* A model's facts as a Model message (strings and types point into in). */
static void model_msg(const struct engine_info *in, Strata__V1__Model *mm, Strata__V1__WeightType *wt,
		      Strata__V1__WeightType **wtp)
{
	for (uint32_t i = 0; i < in->n_types; i++) {
		strata__v1__weight_type__init(&wt[i]);
		wt[i].type = (char *)in->types[i].name;
		wt[i].n_tensors = in->types[i].n_tensors;
		wt[i].bytes = in->types[i].bytes;
		wtp[i] = &wt[i];
	}
	strata__v1__model__init(mm);
	mm->path = (char *)in->path;
	mm->name = (char *)in->name;
	mm->architecture = (char *)in->architecture;
	mm->n_layer = in->n_layer;
	mm->n_embd = in->n_embd;
	mm->n_head = in->n_head;
	mm->n_head_kv = in->n_head_kv;
	mm->n_ff = in->n_ff;
	mm->n_vocab = in->n_vocab;
	mm->n_ctx_train = in->n_ctx_train;
	mm->n_ctx = in->n_ctx;
	mm->n_params = in->n_params;
	mm->file_bytes = in->file_bytes;
	mm->n_weight_types = in->n_types;
	mm->weight_types = wtp;
}

static Strata__V1__DraftSource draft_source_msg(enum draft_source d)
{
	switch (d) {
	case DRAFT_LOOKUP: return STRATA__V1__DRAFT_SOURCE__DRAFT_SOURCE_LOOKUP;
	case DRAFT_MODEL: return STRATA__V1__DRAFT_SOURCE__DRAFT_SOURCE_MODEL;
	case DRAFT_NONE: return STRATA__V1__DRAFT_SOURCE__DRAFT_SOURCE_NONE;
	case DRAFT_DEFAULT: break;
	}
	return STRATA__V1__DRAFT_SOURCE__DRAFT_SOURCE_UNSPECIFIED;
}

static void handle_status(const struct request_env *env, const struct reply_to *to, uint64_t id)
{
	const struct engine_info *in = engine_info(env->e);
	const struct engine_stats *es;
	struct sched_stats st;
	sched_get_stats(env->sched, &st);
	es = &st.engine;

	Strata__V1__WeightType wt[ENGINE_MAX_WEIGHT_TYPES], dwt[ENGINE_MAX_WEIGHT_TYPES];
	Strata__V1__WeightType *wtp[ENGINE_MAX_WEIGHT_TYPES], *dwtp[ENGINE_MAX_WEIGHT_TYPES];
	Strata__V1__Model mm, dm;
	model_msg(in, &mm, wt, wtp);
	if (in->draft_model)
		model_msg(in->draft_model, &dm, dwt, dwtp);

	Strata__V1__Memory mem = STRATA__V1__MEMORY__INIT;
	mem.weights_resident_bytes = es->bytes_resident;
	mem.stream_buffer_bytes = es->stream_buffer_bytes;
	mem.kv_cache_bytes = es->kv_bytes;
	mem.budget_bytes = env->cfg->engine.memory_budget;
	mem.rss_bytes = read_rss_bytes();
	mem.bound_bytes = in->memory_bound;
	mem.scratch_bytes = in->scratch_bytes;
	mem.limit_bytes = in->memory_limit;
	mem.kv_used_bytes = es->kv_used_bytes;
	mem.kv_held_bytes = es->kv_held_bytes;
	mem.kv_disk_bytes = es->kv_disk_bytes;
	mem.kv_cached_blocks = es->kv_cached_blocks;
	mem.kv_reused_tokens = es->kv_reused_tokens;
	mem.kv_bytes_read = es->kv_bytes_read;
	mem.kv_bytes_written = es->kv_bytes_written;
	mem.draft_weights_bytes = es->draft_bytes;
	mem.draft_kv_cache_bytes = es->draft_kv_bytes;

	/* where each request stands: a long prompt shows its progress here */
	struct sched_req_info *list = calloc(STATUS_MAX_REQUESTS, sizeof *list);
	Strata__V1__RequestInfo *ri = calloc(STATUS_MAX_REQUESTS, sizeof *ri);
	Strata__V1__RequestInfo **rip = calloc(STATUS_MAX_REQUESTS, sizeof *rip);
	uint32_t n_list = 0;
	if (list && ri && rip) {
		n_list = sched_list(env->sched, list, STATUS_MAX_REQUESTS);
		if (n_list > STATUS_MAX_REQUESTS)
			n_list = STATUS_MAX_REQUESTS;
	}
	uint64_t now = clock_now_ns();
	for (uint32_t i = 0; i < n_list; i++) {
		strata__v1__request_info__init(&ri[i]);
		ri[i].connection = list[i].client_id;
		ri[i].id = list[i].request_id;
		ri[i].state = request_state(list[i].state);
		ri[i].prompt_tokens = list[i].prompt_tokens;
		ri[i].prompt_tokens_done = list[i].prompt_done;
		ri[i].generated_tokens = list[i].generated;
		ri[i].max_tokens = list[i].max_tokens;
		ri[i].age_ms = (double)(now - list[i].received_ns) / 1e6;
		rip[i] = &ri[i];
	}

	Strata__V1__StatusReply sr = STRATA__V1__STATUS_REPLY__INIT;
	sr.daemon_version = (char *)PACKAGE_VERSION;
	sr.protocol_version = STRATA_PROTOCOL_VERSION;
	sr.model = &mm;
	sr.memory = &mem;
	sr.io_mode = es->units_streamed == 0 ? STRATA__V1__IO_MODE__IO_MODE_RESIDENT :
		     es->io == ENGINE_IO_MMAP ? STRATA__V1__IO_MODE__IO_MODE_MMAP :
						 STRATA__V1__IO_MODE__IO_MODE_STREAM;
	sr.layers_resident = in->layers_resident;
	sr.threads = (uint32_t)in->threads;
	sr.requests_active = st.active;
	sr.requests_queued = st.queued;
	sr.connections = env->n_conns;
	sr.requests_total = st.requests_total;
	sr.generated_tokens_total = st.generated_tokens_total;
	sr.prompt_tokens_total = st.prompt_tokens_total;
	sr.bytes_read_total = es->bytes_read;
	sr.uptime_ms = env->uptime_ms;
	sr.max_frame_bytes = env->cfg->max_frame;
	sr.passes_total = st.passes;
	sr.compute_ms_total = (double)(st.pass_ns - st.stall_ns) / 1e6;
	sr.stall_ms_total = (double)st.stall_ns / 1e6;
	sr.bytes_streamed_per_pass = es->bytes_streamed_per_pass;
	sr.n_requests = n_list;
	sr.requests = rip;
	sr.draft = draft_source_msg(in->draft);
	sr.draft_max = in->draft_max;
	sr.draft_min = in->draft_min;
	sr.draft_model = in->draft_model ? &dm : NULL;
	sr.generation_passes_total = st.gen_passes;
	sr.generation_pass_tokens_total = st.gen_pass_tokens;
	sr.tokens_per_pass = st.gen_passes ? (double)st.gen_pass_tokens / (double)st.gen_passes : 0.0;
	sr.drafted_tokens_total = st.drafted_total;
	sr.accepted_tokens_total = st.accepted_total;
	sr.draft_passes_total = es->draft_passes;
	sr.draft_ms_total = (double)es->draft_pass_ns / 1e6;

	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = id;
	r.body_case = STRATA__V1__RESPONSE__BODY_STATUS;
	r.status = &sr;
	to->send(to->user, &r);
	free(list);
	free(ri);
	free(rip);
}

static void handle_cancel(const struct request_env *env, struct gen_ids *gens, const struct reply_to *to, uint64_t id, const Strata__V1__Cancel *k)
{
	if (!gen_ids_has(gens, k->target_id) || !sched_cancel(env->sched, to->conn_id, k->target_id, false)) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
			     "no unfinished Generate with id %" PRIu64 " on this connection", k->target_id);
		return;
	}
	Strata__V1__CancelReply cr = STRATA__V1__CANCEL_REPLY__INIT;
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = id;
	r.body_case = STRATA__V1__RESPONSE__BODY_CANCEL;
	r.cancel = &cr;
	to->send(to->user, &r);
}

void request_handle(const struct request_env *env, struct gen_ids *gens,
		    const Strata__V1__Request *req, const struct reply_to *to)
{
	uint64_t id = req->id;
	switch (req->body_case) {
	case STRATA__V1__REQUEST__BODY_GENERATE:
		handle_generate(env, gens, to, id, req->generate);
		break;
	case STRATA__V1__REQUEST__BODY_TOKENIZE:
		handle_tokenize(env, to, id, req->tokenize);
		break;
	case STRATA__V1__REQUEST__BODY_DETOKENIZE:
		handle_detokenize(env, to, id, req->detokenize);
		break;
	case STRATA__V1__REQUEST__BODY_STATUS:
		handle_status(env, to, id);
		break;
	case STRATA__V1__REQUEST__BODY_CANCEL:
		handle_cancel(env, gens, to, id, req->cancel);
		break;
	case STRATA__V1__REQUEST__BODY_SCORE:
		handle_score(env, gens, to, id, req->score);
		break;
	default:
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_UNKNOWN_REQUEST,
			      "this server does not know that request (no body, or a newer kind)");
		break;
	}
}

/* ---- scheduler events ---- */

static Strata__V1__FinishReason finish_reason(enum seq_finish f)
{
	switch (f) {
	case SEQ_FINISH_LENGTH: return STRATA__V1__FINISH_REASON__FINISH_REASON_LENGTH;
	case SEQ_FINISH_EOG: return STRATA__V1__FINISH_REASON__FINISH_REASON_EOS;
	case SEQ_FINISH_STOP: return STRATA__V1__FINISH_REASON__FINISH_REASON_STOP_STRING;
	case SEQ_FINISH_CANCELLED: return STRATA__V1__FINISH_REASON__FINISH_REASON_CANCELLED;
	case SEQ_FINISH_ERROR: return STRATA__V1__FINISH_REASON__FINISH_REASON_ERROR;
	case SEQ_FINISH_SHUTDOWN: return STRATA__V1__FINISH_REASON__FINISH_REASON_SHUTDOWN;
	case SEQ_FINISH_NONE: break;
	}
	return STRATA__V1__FINISH_REASON__FINISH_REASON_UNSPECIFIED;
}

static double ns_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* b - a, or 0 when either moment did not happen */
static uint64_t span(uint64_t a, uint64_t b)
{
	return a && b && b > a ? b - a : 0;
}

/* Log-probabilities as protobuf messages: everything one reply needs in
 * allocations freed together (lp_free) after it is sent. */
struct lp_msgs {
	Strata__V1__TokenLogprob *tok;	 /* (n) */
	Strata__V1__TokenLogprob **tokp; /* (n) */
	Strata__V1__TopLogprob *top;	 /* (n * LOGPROB_MAX_TOP) */
	Strata__V1__TopLogprob **topp;
	char *bytes;			 /* each token's bytes and its alternatives' */
	size_t n;
};

static void lp_free(struct lp_msgs *m)
{
	free(m->tok);
	free(m->tokp);
	free(m->top);
	free(m->topp);
	free(m->bytes);
}

/* The bytes of id into *p (advancing it), as a protobuf bytes field. */
static ProtobufCBinaryData token_bytes(const struct engine *e, int32_t id, char **p, size_t cap)
{
	int n = engine_token_bytes(e, id, *p, cap);
	ProtobufCBinaryData b = { 0, (uint8_t *)*p };
	if (n > 0 && (size_t)n <= cap) {
		b.len = (size_t)n;
		*p += n;
	}
	return b;
}

/* 0 or -ENOMEM. n may be 0 (then nothing is allocated). */
static int lp_build(struct lp_msgs *m, const struct engine *e, const struct logprob_token *lp,
		    size_t n)
{
	size_t piece = engine_token_bytes_max(e) + 1, slots = n * (LOGPROB_MAX_TOP + 1);
	memset(m, 0, sizeof *m);
	m->n = n;
	if (n == 0)
		return 0;
	m->tok = calloc(n, sizeof *m->tok);
	m->tokp = calloc(n, sizeof *m->tokp);
	m->top = calloc(n * LOGPROB_MAX_TOP, sizeof *m->top);
	m->topp = calloc(n * LOGPROB_MAX_TOP, sizeof *m->topp);
	m->bytes = malloc(slots * piece);
	if (!m->tok || !m->tokp || !m->top || !m->topp || !m->bytes) {
		lp_free(m);
		return -ENOMEM;
	}
	char *bp = m->bytes;
	for (size_t i = 0; i < n; i++) {
		Strata__V1__TokenLogprob *t = &m->tok[i];
		strata__v1__token_logprob__init(t);
		t->id = (uint32_t)lp[i].id;
		if (!isnan(lp[i].logprob)) {
			t->logprob_opt_case = STRATA__V1__TOKEN_LOGPROB__LOGPROB_OPT_LOGPROB;
			t->logprob = lp[i].logprob;
		}
		t->bytes = token_bytes(e, lp[i].id, &bp, piece);
		t->n_top = lp[i].n_top;
		t->top = &m->topp[i * LOGPROB_MAX_TOP];
		for (uint32_t k = 0; k < lp[i].n_top; k++) {
			Strata__V1__TopLogprob *o = &m->top[i * LOGPROB_MAX_TOP + k];
			strata__v1__top_logprob__init(o);
			o->id = (uint32_t)lp[i].top[k].id;
			o->logprob = lp[i].top[k].logprob;
			o->bytes = token_bytes(e, lp[i].top[k].id, &bp, piece);
			t->top[k] = o;
		}
		m->tokp[i] = t;
	}
	return 0;
}

static void piece_reply(const struct engine *e, const struct sched_event *ev,
			const struct reply_to *to)
{
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	char *text = proto_text(ev->text ? ev->text : "", ev->text_len);
	uint32_t *uids = malloc((ev->n_ids + 1) * sizeof *uids);
	struct lp_msgs lm;
	int lrc = lp_build(&lm, e, ev->logprobs, ev->n_logprobs);
	if (text && uids && lrc == 0) {
		for (uint32_t i = 0; i < ev->n_ids; i++)
			uids[i] = (uint32_t)ev->ids[i];
		Strata__V1__Piece p = STRATA__V1__PIECE__INIT;
		p.text = text;
		p.n_ids = ev->n_ids;
		p.ids = uids;
		p.n_logprobs = lm.n;
		p.logprobs = lm.tokp;
		r.id = ev->request_id;
		r.body_case = STRATA__V1__RESPONSE__BODY_PIECE;
		r.piece = &p;
		to->send(to->user, &r);
	} else {
		log_err("client %" PRIu64 " request %" PRIu64 ": out of memory for a piece of text",
			to->conn_id, ev->request_id);
	}
	if (lrc == 0)
		lp_free(&lm);
	free(text);
	free(uids);
}

static void score_reply(const struct engine *e, const struct sched_event *ev,
			const Strata__V1__Timings *tm, const struct reply_to *to)
{
	const struct score_result *res = score_results(ev->score);
	size_t n_conts = 0;
	if (res)
		n_conts = score_n_continuations(ev->score);
	Strata__V1__ContinuationScore cs[SCORE_MAX_CONTINUATIONS], *csp[SCORE_MAX_CONTINUATIONS];
	struct lp_msgs lm[SCORE_MAX_CONTINUATIONS];
	size_t built = 0;
	for (; built < n_conts; built++) {
		strata__v1__continuation_score__init(&cs[built]);
		cs[built].logprob = res[built].logprob;
		cs[built].greedy = res[built].greedy;
		cs[built].token_count = res[built].n_tokens;
		if (lp_build(&lm[built], e, res[built].tokens, res[built].tokens ? res[built].n_tokens : 0) < 0)
			break;
		cs[built].n_tokens = lm[built].n;
		cs[built].tokens = lm[built].tokp;
		csp[built] = &cs[built];
	}
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = ev->request_id;
	if (built < n_conts) {
		request_error(to, ev->request_id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL,
			      "out of memory");
	} else {
		Strata__V1__ScoreReply sr = STRATA__V1__SCORE_REPLY__INIT;
		sr.n_scores = n_conts;
		sr.scores = csp;
		sr.context_tokens = score_n_context(ev->score);
		sr.passes = ev->st.passes;
		sr.timings = (Strata__V1__Timings *)tm;
		r.body_case = STRATA__V1__RESPONSE__BODY_SCORE;
		r.score = &sr;
		to->send(to->user, &r);
	}
	for (size_t i = 0; i < built; i++)
		lp_free(&lm[i]);
}

void request_event_reply(const struct engine *e, const struct sched_event *ev,
			 const struct reply_to *to)
{
	if (ev->kind == SCHED_EV_PIECE) {
		piece_reply(e, ev, to);
		return;
	}
	const struct seq_stats *st = &ev->st;
	uint64_t prompt_ns = span(st->t_first_pass, st->t_first_token);
	uint64_t gen_ns = span(st->t_first_token, st->t_last_token);
	uint64_t io_ns = span(st->t_first_pass, st->t_last_token ? st->t_last_token : ev->done_ns);

	Strata__V1__Timings tm = STRATA__V1__TIMINGS__INIT;
	tm.prompt_tokens = st->n_prompt;
	tm.prompt_tokens_cached = st->n_cached;
	tm.generated_tokens = st->n_generated;
	tm.queued_ms = ns_ms(span(ev->received_ns, st->t_first_pass ? st->t_first_pass : ev->done_ns));
	tm.time_to_first_token_ms = ns_ms(span(ev->received_ns, st->t_first_token));
	tm.prompt_tokens_per_s = prompt_ns ? st->n_prompt / ((double)prompt_ns / 1e9) : 0.0;
	tm.generation_tokens_per_s = st->n_generated > 1 && gen_ns ?
		(st->n_generated - 1) / ((double)gen_ns / 1e9) : 0.0;
	tm.bytes_read = st->bytes_read;
	tm.read_mb_per_s = io_ns ? (double)st->bytes_read / ((double)io_ns / 1e9) / 1e6 : 0.0;
	tm.stall_ms = ns_ms(st->stall_ns);
	tm.compute_ms = ns_ms(st->compute_ns);
	tm.total_ms = ns_ms(span(ev->received_ns, ev->done_ns));
	if (ev->score && ev->finish != SEQ_FINISH_ERROR && ev->finish != SEQ_FINISH_CANCELLED &&
	    ev->finish != SEQ_FINISH_SHUTDOWN) {
		score_reply(e, ev, &tm, to);
		return;
	}
	if (ev->req_kind == SCHED_SCORE) {
		/* a Score that failed, was cancelled or stopped: an Error ends it */
		Strata__V1__ErrorCode code =
			ev->finish == SEQ_FINISH_CANCELLED ? STRATA__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND :
			ev->finish == SEQ_FINISH_SHUTDOWN ? STRATA__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN :
			ev->error == -EIO || ev->error == -ESTALE ? STRATA__V1__ERROR_CODE__ERROR_CODE_IO_ERROR :
								   STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL;
		request_error(to, ev->request_id, code, "%s", ev->message[0] ? ev->message :
			      ev->finish == SEQ_FINISH_CANCELLED ? "cancelled" : "the score failed");
		return;
	}

	Strata__V1__Error err = STRATA__V1__ERROR__INIT;
	Strata__V1__Done d = STRATA__V1__DONE__INIT;
	d.finish_reason = finish_reason(ev->finish);
	d.timings = &tm;
	d.seed = ev->seed;
	d.passes = ev->st.passes;
	d.generation_passes = ev->st.gen_passes;
	d.drafted_tokens = ev->st.drafted;
	d.accepted_tokens = ev->st.accepted;
	d.tokens_per_pass = ev->st.gen_passes ? (double)ev->st.n_generated / ev->st.gen_passes : 0.0;
	if (ev->stop_string)
		d.stop_string = ev->stop_string;
	struct lp_msgs lm;
	if (lp_build(&lm, e, ev->logprobs, ev->n_logprobs) == 0) {
		d.n_prompt_logprobs = lm.n;
		d.prompt_logprobs = lm.tokp;
	} else {
		memset(&lm, 0, sizeof lm); /* the Done goes out without them */
	}
	if (ev->finish == SEQ_FINISH_ERROR) {
		err.code = ev->error == -EIO || ev->error == -ENODATA || ev->error == -ESTALE ?
				   STRATA__V1__ERROR_CODE__ERROR_CODE_IO_ERROR :
			   ev->error == -EINVAL ? STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT :
						  STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL;
		err.message = (char *)ev->message;
		d.error = &err;
	}
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = ev->request_id;
	r.body_case = STRATA__V1__RESPONSE__BODY_DONE;
	r.done = &d;
	to->send(to->user, &r);
	lp_free(&lm);
}

/* One line per finished request, for the journal. */
void request_log_done(uint64_t conn_id, const struct sched_event *ev)
{
	static const char *const reasons[] = {
		[SEQ_FINISH_NONE] = "?", [SEQ_FINISH_LENGTH] = "length", [SEQ_FINISH_EOG] = "eos",
		[SEQ_FINISH_STOP] = "stop string", [SEQ_FINISH_CANCELLED] = "cancelled",
		[SEQ_FINISH_ERROR] = "error", [SEQ_FINISH_SHUTDOWN] = "shutdown",
	};
	const struct seq_stats *st = &ev->st;
	double gen_s = (double)span(st->t_first_token, st->t_last_token) / 1e9;
	char drafts[96] = "";
	if (st->drafted)
		snprintf(drafts, sizeof drafts, ", %u of %u drafts kept (%.2f tokens per pass)",
			 st->accepted, st->drafted,
			 st->gen_passes ? (double)st->n_generated / st->gen_passes : 0.0);
	log_info("client %" PRIu64 " request %" PRIu64 ": %s after %u prompt + %u generated tokens, "
		 "first token %.0f ms, %.2f tok/s, %.1f MiB read, %.0f ms stalled%s%s%s",
		 conn_id, ev->request_id, reasons[ev->finish], st->n_prompt, st->n_generated,
		 ns_ms(span(ev->received_ns, st->t_first_token)),
		 st->n_generated > 1 && gen_s > 0 ? (st->n_generated - 1) / gen_s : 0.0,
		 (double)st->bytes_read / (1 << 20), ns_ms(st->stall_ns), drafts,
		 ev->finish == SEQ_FINISH_ERROR ? ": " : "",
		 ev->finish == SEQ_FINISH_ERROR ? ev->message : "");
}
