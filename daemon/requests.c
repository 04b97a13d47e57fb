/* requests.c: see requests.h. The handlers take their inputs from the
 * request and the env, and leave nothing behind but a scheduler request and
 * the connection's list of unfinished Generates. */
#include "config.h"

#include "daemon/requests.h"

#include <errno.h>
#include <inttypes.h>
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

static void handle_generate(const struct request_env *env, struct gen_ids *gens,
			    const struct reply_to *to, uint64_t id, const Strata__V1__Generate *g)
{
	uint32_t n_ctx = engine_n_ctx(env->e);
	struct sched_request *r = NULL;
	struct st_err err = { "" };

	if (env->draining) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN,
			     "stratad is shutting down and accepts no new requests");
		return;
	}
	if (gen_ids_has(gens, id)) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			     "request id %" PRIu64 " is already in use on this connection", id);
		return;
	}
	r = calloc(1, sizeof *r);
	if (!r)
		goto nomem;
	r->client_id = to->conn_id;
	r->request_id = id;
	r->received_ns = clock_now_ns();
	r->ignore_eos = g->ignore_eos;
	struct sampler_params *sp = &r->sampling;
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
			r->n_stops++;
		}
		if (r->n_stops != g->n_stop)
			goto nomem;
	}

	int bos = FRAME_HAS(g, add_bos) ? g->add_bos : -1;
	if (engine_tokenize(env->e, g->prompt, strlen(g->prompt), bos, g->parse_special, &r->prompt,
			    &r->n_prompt) < 0)
		goto nomem;
	if (r->n_prompt == 0) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			     "the prompt is empty and no BOS token was added: there is nothing to continue");
		goto out;
	}
	if (r->n_prompt >= n_ctx) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_PROMPT_TOO_LONG,
			     "the prompt has %u tokens but the context holds %u (with room for at least one "
			     "generated token); shorten it or start stratad with a larger --ctx-size",
			     r->n_prompt, n_ctx);
		goto out;
	}
	uint32_t room = n_ctx - r->n_prompt;
	r->max_tokens = g->max_tokens ? g->max_tokens : room;
	if (env->cfg->max_tokens && r->max_tokens > env->cfg->max_tokens)
		r->max_tokens = env->cfg->max_tokens;
	if (r->max_tokens > room)
		r->max_tokens = room;

	/* the generation core's own checks (sampling ranges, stop strings) */
	struct seq_params p = {
		.prompt = r->prompt, .n_prompt = r->n_prompt, .max_tokens = r->max_tokens,
		.sampling = r->sampling, .stops = (const char *const *)r->stops,
		.n_stops = r->n_stops, .ignore_eos = r->ignore_eos,
	};
	if (seq_params_check(env->e, &p, &err) < 0) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "%s", err.msg);
		goto out;
	}
	if (gen_ids_add(gens, id) < 0)
		goto nomem;
	int rc = sched_submit(env->sched, r);
	if (rc < 0) {
		gen_ids_remove(gens, id);
		if (rc == -EAGAIN)
			request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_OVERLOADED,
				     "%u requests are already waiting (--max-queue); try again later",
				     env->cfg->max_queue);
		else if (rc == -ESHUTDOWN)
			request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN,
				     "stratad is shutting down and accepts no new requests");
		else
			request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		goto out;
	}
	log_debug("client %" PRIu64 " request %" PRIu64 ": generate, %u prompt tokens, up to %u more",
		  to->conn_id, id, r->n_prompt, r->max_tokens);
	return; /* the scheduler owns r now */
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
	}
	return STRATA__V1__REQUEST_STATE__REQUEST_STATE_UNSPECIFIED;
}

static void handle_status(const struct request_env *env, const struct reply_to *to, uint64_t id)
{
	const struct engine_info *in = engine_info(env->e);
	const struct engine_stats *es;
	struct sched_stats st;
	sched_get_stats(env->sched, &st);
	es = &st.engine;

	Strata__V1__WeightType wt[ENGINE_MAX_WEIGHT_TYPES];
	Strata__V1__WeightType *wtp[ENGINE_MAX_WEIGHT_TYPES];
	for (uint32_t i = 0; i < in->n_types; i++) {
		strata__v1__weight_type__init(&wt[i]);
		wt[i].type = (char *)in->types[i].name;
		wt[i].n_tensors = in->types[i].n_tensors;
		wt[i].bytes = in->types[i].bytes;
		wtp[i] = &wt[i];
	}

	Strata__V1__Model mm = STRATA__V1__MODEL__INIT;
	mm.path = (char *)in->path;
	mm.name = (char *)in->name;
	mm.architecture = (char *)in->architecture;
	mm.n_layer = in->n_layer;
	mm.n_embd = in->n_embd;
	mm.n_head = in->n_head;
	mm.n_head_kv = in->n_head_kv;
	mm.n_ff = in->n_ff;
	mm.n_vocab = in->n_vocab;
	mm.n_ctx_train = in->n_ctx_train;
	mm.n_ctx = in->n_ctx;
	mm.n_params = in->n_params;
	mm.file_bytes = in->file_bytes;
	mm.n_weight_types = in->n_types;
	mm.weight_types = wtp;

	Strata__V1__Memory mem = STRATA__V1__MEMORY__INIT;
	mem.weights_resident_bytes = es->bytes_resident;
	mem.stream_buffer_bytes = es->stream_buffer_bytes;
	mem.kv_cache_bytes = es->kv_bytes;
	mem.budget_bytes = env->cfg->engine.memory_budget;
	mem.rss_bytes = read_rss_bytes();

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

static void piece_reply(const struct sched_event *ev, const struct reply_to *to)
{
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	char *text = proto_text(ev->text ? ev->text : "", ev->text_len);
	uint32_t *uids = malloc((ev->n_ids + 1) * sizeof *uids);
	if (text && uids) {
		for (uint32_t i = 0; i < ev->n_ids; i++)
			uids[i] = (uint32_t)ev->ids[i];
		Strata__V1__Piece p = STRATA__V1__PIECE__INIT;
		p.text = text;
		p.n_ids = ev->n_ids;
		p.ids = uids;
		r.id = ev->request_id;
		r.body_case = STRATA__V1__RESPONSE__BODY_PIECE;
		r.piece = &p;
		to->send(to->user, &r);
	} else {
		log_err("client %" PRIu64 " request %" PRIu64 ": out of memory for a piece of text",
			to->conn_id, ev->request_id);
	}
	free(text);
	free(uids);
}

void request_event_reply(const struct sched_event *ev, const struct reply_to *to)
{
	if (ev->kind == SCHED_EV_PIECE) {
		piece_reply(ev, to);
		return;
	}
	const struct seq_stats *st = &ev->st;
	uint64_t prompt_ns = span(st->t_first_pass, st->t_first_token);
	uint64_t gen_ns = span(st->t_first_token, st->t_last_token);
	uint64_t io_ns = span(st->t_first_pass, st->t_last_token ? st->t_last_token : ev->done_ns);

	Strata__V1__Timings tm = STRATA__V1__TIMINGS__INIT;
	tm.prompt_tokens = st->n_prompt;
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

	Strata__V1__Error err = STRATA__V1__ERROR__INIT;
	Strata__V1__Done d = STRATA__V1__DONE__INIT;
	d.finish_reason = finish_reason(ev->finish);
	d.timings = &tm;
	d.seed = ev->seed;
	if (ev->stop_string)
		d.stop_string = ev->stop_string;
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
	log_info("client %" PRIu64 " request %" PRIu64 ": %s after %u prompt + %u generated tokens, "
		 "first token %.0f ms, %.2f tok/s, %.1f MiB read, %.0f ms stalled%s%s",
		 conn_id, ev->request_id, reasons[ev->finish], st->n_prompt, st->n_generated,
		 ns_ms(span(ev->received_ns, st->t_first_token)),
		 st->n_generated > 1 && gen_s > 0 ? (st->n_generated - 1) / gen_s : 0.0,
		 (double)st->bytes_read / (1 << 20), ns_ms(st->stall_ns),
		 ev->finish == SEQ_FINISH_ERROR ? ": " : "",
		 ev->finish == SEQ_FINISH_ERROR ? ev->message : "");
}
