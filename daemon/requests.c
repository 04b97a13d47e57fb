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
#include "daemon/sched.h"
#include "daemon/settings.h"
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "common/log.h"
#include "engine/model.h"
#include "tokenizer/detok.h"
#include "tokenizer/tokenizer.h"
#include "kernels/types.h"

/* Limits on stop strings: enough for chat templates, bounded for the matcher. */
#define MAX_STOPS 16
#define MAX_STOP_BYTES 256

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

static int32_t *tokenize_text(const struct tokenizer *tok, const char *text, bool bos, bool special,
			      int *n_out)
{
	size_t len = strlen(text), cap = len + 4;
	int32_t *ids = malloc(cap * sizeof *ids);
	if (!ids)
		return NULL;
	int n = tokenizer_encode(tok, text, len, bos, special, ids, cap);
	if (n > (int)cap) {
		int32_t *p = realloc(ids, (size_t)n * sizeof *ids);
		if (!p) {
			free(ids);
			return NULL;
		}
		ids = p;
		n = tokenizer_encode(tok, text, len, bos, special, ids, (size_t)n);
	}
	if (n < 0) {
		free(ids);
		return NULL;
	}
	*n_out = n;
	return ids;
}

static uint64_t random_seed(void)
{
	uint64_t seed;
	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
		seed = clock_now_ns() ^ ((uint64_t)getpid() << 32);
	return seed;
}

static void handle_generate(const struct request_env *env, struct gen_ids *gens, const struct reply_to *to, uint64_t id, const Strata__V1__Generate *g)
{
	const struct tokenizer *tok = engine_tokenizer(env->e);
	uint32_t n_ctx = engine_n_ctx(env->e);
	struct sampler_params sp;
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
	sampler_params_default(&sp);
	if (FRAME_HAS(g, temperature))
		sp.temperature = g->temperature;
	if (FRAME_HAS(g, top_k))
		sp.top_k = g->top_k > INT32_MAX ? INT32_MAX : (int32_t)g->top_k;
	if (FRAME_HAS(g, top_p))
		sp.top_p = g->top_p;
	if (FRAME_HAS(g, min_p))
		sp.min_p = g->min_p;
	if (FRAME_HAS(g, repetition_penalty))
		sp.repeat_penalty = g->repetition_penalty;
	if (FRAME_HAS(g, repetition_window))
		sp.repeat_last_n = g->repetition_window > INT32_MAX ? INT32_MAX : (int32_t)g->repetition_window;
	sp.seed = FRAME_HAS(g, seed) ? g->seed : random_seed();
	if (sp.temperature < 0.0f) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			     "temperature must be >= 0 (got %g)", (double)sp.temperature);
		return;
	}
	if (sampler_params_check(&sp, &err) < 0) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "%s", err.msg);
		return;
	}
	if (g->n_stop > MAX_STOPS) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			     "%zu stop strings given; at most %d are allowed", g->n_stop, MAX_STOPS);
		return;
	}
	for (size_t i = 0; i < g->n_stop; i++) {
		size_t n = strlen(g->stop[i]);
		if (n == 0 || n > MAX_STOP_BYTES) {
			request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
				     "stop string %zu is %s (1 to %d bytes allowed)", i + 1,
				     n == 0 ? "empty" : "too long", MAX_STOP_BYTES);
			return;
		}
	}

	bool bos = FRAME_HAS(g, add_bos) ? g->add_bos : tokenizer_add_bos(tok);
	int n_prompt = 0;
	int32_t *prompt = tokenize_text(tok, g->prompt, bos, g->parse_special, &n_prompt);
	if (!prompt) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "cannot tokenize the prompt (out of memory)");
		return;
	}
	if (n_prompt == 0) {
		free(prompt);
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			     "the prompt is empty and no BOS token was added: there is nothing to continue");
		return;
	}
	if ((uint32_t)n_prompt >= n_ctx) {
		free(prompt);
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_PROMPT_TOO_LONG,
			     "the prompt has %d tokens but the context holds %u (with room for at least one "
			     "generated token); shorten it or start stratad with a larger --ctx-size",
			     n_prompt, n_ctx);
		return;
	}

	uint32_t room = n_ctx - (uint32_t)n_prompt;
	uint32_t max_tokens = g->max_tokens ? g->max_tokens : room;
	if (env->cfg->max_tokens && max_tokens > env->cfg->max_tokens)
		max_tokens = env->cfg->max_tokens;
	if (max_tokens > room)
		max_tokens = room;

	struct sched_request *r = calloc(1, sizeof *r);
	if (!r) {
		free(prompt);
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		return;
	}
	r->client_id = to->conn_id;
	r->request_id = id;
	r->prompt = prompt;
	r->n_prompt = (uint32_t)n_prompt;
	r->max_tokens = max_tokens;
	r->sampling = sp;
	r->ignore_eos = g->ignore_eos;
	r->received_ns = clock_now_ns();
	if (g->n_stop) {
		r->stops = calloc(g->n_stop, sizeof *r->stops);
		for (size_t i = 0; r->stops && i < g->n_stop; i++) {
			r->stops[i] = strdup(g->stop[i]);
			if (!r->stops[i])
				break;
			r->n_stops++;
		}
		if (r->n_stops != g->n_stop) {
			sched_request_free(r);
			request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
			return;
		}
	}
	if (gen_ids_add(gens, id) < 0) {
		sched_request_free(r);
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		return;
	}
	int rc = sched_submit(env->sched, r);
	if (rc < 0) {
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
		return;
	}
	log_debug("client %" PRIu64 " request %" PRIu64 ": generate, %d prompt tokens, up to %u more",
		  to->conn_id, id, n_prompt, max_tokens);
}

static void handle_tokenize(const struct request_env *env, const struct reply_to *to, uint64_t id, const Strata__V1__Tokenize *t)
{
	const struct tokenizer *tok = engine_tokenizer(env->e);
	bool bos = FRAME_HAS(t, add_bos) ? t->add_bos : tokenizer_add_bos(tok);
	int n = 0;
	int32_t *ids = tokenize_text(tok, t->text, bos, t->parse_special, &n);
	size_t piece_cap = tokenizer_max_piece(tok) + 1;
	uint32_t *uids = calloc((size_t)n + 1, sizeof *uids);
	ProtobufCBinaryData *pieces = calloc((size_t)n + 1, sizeof *pieces);
	char *buf = malloc(((size_t)n + 1) * piece_cap);
	if (!ids || !uids || !pieces || !buf) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		goto out;
	}
	char *p = buf;
	for (int i = 0; i < n; i++) {
		uids[i] = (uint32_t)ids[i];
		int len = tokenizer_piece(tok, ids[i], true, p, piece_cap);
		if (len < 0 || (size_t)len > piece_cap)
			len = 0;
		pieces[i].data = (uint8_t *)p;
		pieces[i].len = (size_t)len;
		p += len;
	}
	Strata__V1__TokenizeReply tr = STRATA__V1__TOKENIZE_REPLY__INIT;
	tr.n_ids = (size_t)n;
	tr.ids = uids;
	tr.n_pieces = (size_t)n;
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
	const struct tokenizer *tok = engine_tokenizer(env->e);
	int32_t n_vocab = tokenizer_n_vocab(tok);
	for (size_t i = 0; i < d->n_ids; i++) {
		if (d->ids[i] >= (uint32_t)n_vocab) {
			request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
				     "token id %u (position %zu) is not below the vocabulary size %d",
				     d->ids[i], i, n_vocab);
			return;
		}
	}
	size_t step = detok_out_max(tok);
	size_t cap = (d->n_ids + 1) * step + 4;
	char *text = malloc(cap);
	if (!text) {
		request_error(to, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		return;
	}
	struct detok dt;
	size_t len = 0;
	detok_init(&dt, tok, d->render_special);
	for (size_t i = 0; i < d->n_ids; i++) {
		int n = detok_push(&dt, (int32_t)d->ids[i], text + len, cap - len);
		if (n > 0)
			len += (size_t)n;
	}
	int n = detok_flush(&dt, text + len, cap - len);
	if (n > 0)
		len += (size_t)n;
	text[len] = '\0';
	Strata__V1__DetokenizeReply dr = STRATA__V1__DETOKENIZE_REPLY__INIT;
	dr.text = text;
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = id;
	r.body_case = STRATA__V1__RESPONSE__BODY_DETOKENIZE;
	r.detokenize = &dr;
	to->send(to->user, &r);
	free(text);
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

static void handle_status(const struct request_env *env, const struct reply_to *to, uint64_t id)
{
	const struct model *m = engine_model(env->e);
	const struct model_hparams *hp = &m->hp;
	struct sched_stats st;
	sched_get_stats(env->sched, &st);
	const struct weights_stats *io = &st.engine.io;

	/* weight types by total bytes, from the tensor table */
	uint64_t bytes[ST_TYPE_COUNT] = { 0 };
	uint32_t count[ST_TYPE_COUNT] = { 0 };
	uint64_t n_params = 0;
	for (uint64_t i = 0; i < gguf_n_tensors(m->gguf); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(m->gguf, i);
		if (t->type < ST_TYPE_COUNT) {
			bytes[t->type] += t->size;
			count[t->type]++;
		}
		n_params += t->n_elems;
	}
	Strata__V1__WeightType wt[ST_TYPE_COUNT];
	Strata__V1__WeightType *wtp[ST_TYPE_COUNT];
	size_t n_wt = 0;
	for (;;) {
		int best = -1;
		for (int t = 0; t < ST_TYPE_COUNT; t++)
			if (count[t] && (best < 0 || bytes[t] > bytes[best]))
				best = t;
		if (best < 0)
			break;
		strata__v1__weight_type__init(&wt[n_wt]);
		wt[n_wt].type = (char *)st_type_name((uint32_t)best);
		wt[n_wt].n_tensors = count[best];
		wt[n_wt].bytes = bytes[best];
		wtp[n_wt] = &wt[n_wt];
		n_wt++;
		count[best] = 0;
	}

	Strata__V1__Model mm = STRATA__V1__MODEL__INIT;
	mm.path = (char *)env->cfg->model;
	mm.name = (char *)m->name;
	mm.architecture = (char *)env->arch;
	mm.n_layer = hp->n_layer;
	mm.n_embd = hp->n_embd;
	mm.n_head = hp->n_head;
	mm.n_head_kv = hp->n_head_kv;
	mm.n_ff = hp->n_ff;
	mm.n_vocab = hp->n_vocab;
	mm.n_ctx_train = hp->n_ctx_train;
	mm.n_ctx = engine_n_ctx(env->e);
	mm.n_params = n_params;
	mm.file_bytes = gguf_file_size(m->gguf);
	mm.n_weight_types = n_wt;
	mm.weight_types = wtp;

	Strata__V1__Memory mem = STRATA__V1__MEMORY__INIT;
	mem.weights_resident_bytes = io->bytes_resident;
	mem.stream_buffer_bytes = io->n_streamed ? (uint64_t)io->n_slots * io->slot_bytes : 0;
	mem.kv_cache_bytes = st.engine.kv_bytes;
	mem.budget_bytes = env->cfg->engine.memory_budget;
	mem.rss_bytes = read_rss_bytes();

	Strata__V1__StatusReply sr = STRATA__V1__STATUS_REPLY__INIT;
	sr.daemon_version = (char *)PACKAGE_VERSION;
	sr.protocol_version = STRATA_PROTOCOL_VERSION;
	sr.model = &mm;
	sr.memory = &mem;
	sr.io_mode = io->n_streamed == 0 ? STRATA__V1__IO_MODE__IO_MODE_RESIDENT :
		     io->io == WEIGHTS_IO_MMAP ? STRATA__V1__IO_MODE__IO_MODE_MMAP :
						  STRATA__V1__IO_MODE__IO_MODE_STREAM;
	sr.layers_resident = engine_layers_resident(env->e);
	sr.threads = (uint32_t)engine_threads(env->e);
	sr.requests_active = st.active;
	sr.requests_queued = st.queued;
	sr.connections = env->n_conns;
	sr.requests_total = st.requests_total;
	sr.generated_tokens_total = st.generated_tokens_total;
	sr.prompt_tokens_total = st.prompt_tokens_total;
	sr.bytes_read_total = io->bytes_read > io->bytes_resident ? io->bytes_read - io->bytes_resident : 0;
	sr.uptime_ms = env->uptime_ms;
	sr.max_frame_bytes = env->cfg->max_frame;
	sr.passes_total = st.passes;
	sr.compute_ms_total = (double)(st.pass_ns - st.stall_ns) / 1e6;
	sr.stall_ms_total = (double)st.stall_ns / 1e6;
	sr.bytes_streamed_per_pass = io->bytes_streamed_per_pass;

	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = id;
	r.body_case = STRATA__V1__RESPONSE__BODY_STATUS;
	r.status = &sr;
	to->send(to->user, &r);
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

static Strata__V1__FinishReason finish_reason(enum sched_finish f)
{
	switch (f) {
	case SCHED_FINISH_LENGTH: return STRATA__V1__FINISH_REASON__FINISH_REASON_LENGTH;
	case SCHED_FINISH_EOS: return STRATA__V1__FINISH_REASON__FINISH_REASON_EOS;
	case SCHED_FINISH_STOP: return STRATA__V1__FINISH_REASON__FINISH_REASON_STOP_STRING;
	case SCHED_FINISH_CANCELLED: return STRATA__V1__FINISH_REASON__FINISH_REASON_CANCELLED;
	case SCHED_FINISH_ERROR: return STRATA__V1__FINISH_REASON__FINISH_REASON_ERROR;
	case SCHED_FINISH_SHUTDOWN: return STRATA__V1__FINISH_REASON__FINISH_REASON_SHUTDOWN;
	}
	return STRATA__V1__FINISH_REASON__FINISH_REASON_UNSPECIFIED;
}

void request_event_reply(const struct sched_event *ev, const struct reply_to *to)
{
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = ev->request_id;

	if (ev->kind == SCHED_EV_PIECE) {
		char empty[1] = "";
		char *text = empty;
		char stack[512];
		if (ev->text_len > 0) {
			text = ev->text_len < sizeof stack ? stack : malloc(ev->text_len + 1);
			if (!text)
				return;
			memcpy(text, ev->text, ev->text_len);
			text[ev->text_len] = '\0';
		}
		uint32_t ids[64];
		uint32_t *uids = ev->n_ids <= 64 ? ids : malloc(ev->n_ids * sizeof *uids);
		if (uids) {
			for (uint32_t i = 0; i < ev->n_ids; i++)
				uids[i] = (uint32_t)ev->ids[i];
			Strata__V1__Piece p = STRATA__V1__PIECE__INIT;
			p.text = text;
			p.n_ids = ev->n_ids;
			p.ids = uids;
			r.body_case = STRATA__V1__RESPONSE__BODY_PIECE;
			r.piece = &p;
			to->send(to->user, &r);
		}
		if (uids != ids)
			free(uids);
		if (text != empty && text != stack)
			free(text);
		return;
	}

	Strata__V1__Timings tm = STRATA__V1__TIMINGS__INIT;
	tm.prompt_tokens = ev->prompt_tokens;
	tm.generated_tokens = ev->generated_tokens;
	tm.queued_ms = (double)ev->queued_ns / 1e6;
	tm.time_to_first_token_ms = (double)ev->ttft_ns / 1e6;
	tm.prompt_tokens_per_s = ev->prompt_ns ? ev->prompt_tokens / ((double)ev->prompt_ns / 1e9) : 0.0;
	tm.generation_tokens_per_s = ev->generated_tokens > 1 && ev->gen_ns ?
		(ev->generated_tokens - 1) / ((double)ev->gen_ns / 1e9) : 0.0;
	tm.bytes_read = ev->bytes_read;
	tm.read_mb_per_s = ev->io_ns ? (double)ev->bytes_read / ((double)ev->io_ns / 1e9) / 1e6 : 0.0;
	tm.stall_ms = (double)ev->stall_ns / 1e6;
	tm.compute_ms = (double)ev->compute_ns / 1e6;
	tm.total_ms = (double)(ev->queued_ns + ev->prompt_ns + ev->gen_ns) / 1e6;

	Strata__V1__Error err = STRATA__V1__ERROR__INIT;
	Strata__V1__Done d = STRATA__V1__DONE__INIT;
	d.finish_reason = finish_reason(ev->finish);
	d.timings = &tm;
	d.seed = ev->seed;
	if (ev->stop_string)
		d.stop_string = ev->stop_string;
	if (ev->finish == SCHED_FINISH_ERROR) {
		err.code = ev->error == SCHED_ERR_IO ? STRATA__V1__ERROR_CODE__ERROR_CODE_IO_ERROR :
						       STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL;
		err.message = (char *)ev->message;
		d.error = &err;
	}
	r.body_case = STRATA__V1__RESPONSE__BODY_DONE;
	r.done = &d;
	to->send(to->user, &r);
}

/* One line per finished request, for the journal. */
void request_log_done(uint64_t conn_id, const struct sched_event *ev)
{
	static const char *const reasons[] = { "length", "eos", "stop string", "cancelled", "error",
					       "shutdown" };
	double gen_s = (double)ev->gen_ns / 1e9;
	log_info("client %" PRIu64 " request %" PRIu64 ": %s after %u prompt + %u generated tokens, "
		 "first token %.0f ms, %.2f tok/s, %.1f MiB read, %.0f ms stalled%s%s",
		 conn_id, ev->request_id, reasons[ev->finish], ev->prompt_tokens, ev->generated_tokens,
		 (double)ev->ttft_ns / 1e6,
		 ev->generated_tokens > 1 && gen_s > 0 ? (ev->generated_tokens - 1) / gen_s : 0.0,
		 (double)ev->bytes_read / (1 << 20), (double)ev->stall_ns / 1e6,
		 ev->finish == SCHED_FINISH_ERROR ? ": " : "",
		 ev->finish == SCHED_FINISH_ERROR ? ev->message : "");
}

