/* server.c: the event loop (see server.h).
 *
 * One epoll set watches the listening socket, every connection, the signal
 * pipe (SIGTERM, SIGINT; see signals.h), the scheduler's eventfd and a 1-second timerfd (watchdog,
 * STATUS=, drain deadline). Connections are level-triggered: a readable socket
 * is read until the frame reader would block, output is queued per connection
 * and written when the socket accepts it. A connection that goes away mid-way
 * is freed only after the current batch of epoll events, so no event ever
 * points at freed memory. */
#include "config.h"

#include "daemon/server.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "daemon/notify.h"
#include "daemon/sched.h"
#include "daemon/signals.h"
#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/log.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "kernels/types.h"
#include "proto/frame.h"

/* A client that does not read its replies may not pin more than this. */
#define CONN_OUT_MAX (16u << 20)
/* Limits on stop strings: enough for chat templates, bounded for the matcher. */
#define MAX_STOPS 16
#define MAX_STOP_BYTES 256

struct conn {
	struct conn *next, *prev;
	uint64_t id;
	int fd;
	struct frame_reader rd;
	bool greeted;	    /* a request with our protocol version arrived */
	bool closing;	    /* close once the output is written */
	bool dead;	    /* closed; freed after this batch of events */
	uint32_t events;    /* the epoll mask registered now */
	uint8_t *out;	    /* (out_cap) queued frames; [out_off, out_len) unsent */
	size_t out_off, out_len, out_cap;
	uint64_t *gens;	    /* (n_gens) ids of unfinished Generates */
	uint32_t n_gens, cap_gens;
};

enum watch_tag { TAG_LISTEN = 1, TAG_SIGNAL, TAG_WAKE, TAG_TIMER };

struct server {
	const struct daemon_config *cfg;
	struct engine *e;
	struct sched *sched;
	struct listener *lis;
	int ep, wake_fd, timer_fd;
	struct conn *conns;
	struct conn *graveyard;
	uint32_t n_conns;
	uint64_t next_conn_id;
	uint64_t t_start;
	bool draining;
	uint64_t drain_deadline; /* hard stop even if a client never reads */
	uint64_t wd_interval_us;
	uint64_t wd_last_ping;
	uint64_t wd_progress;
	uint64_t wd_progress_at;
	char status_line[256];
	/* general.architecture, copied at start: status must not read the model's mapping,
	 * where a page that fails to read (disk error) raises SIGBUS */
	char arch[64];
};

/* epoll_event.data.u64 holds either a tag (< 16) or a conn pointer */
static uint64_t tag_data(enum watch_tag t)
{
	return (uint64_t)t;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- output ---- */

static void conn_close(struct server *s, struct conn *c);

/* Watch for input unless we are closing (then only for room to write). */
static void conn_update_poll(struct server *s, struct conn *c)
{
	uint32_t want = (c->closing ? 0 : EPOLLIN) | (c->out_len > c->out_off ? EPOLLOUT : 0);
	if (want == c->events || c->dead)
		return;
	struct epoll_event ev = { .events = want, .data.ptr = c };
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = want;
}

/* Write what the socket takes now; close when asked to and done. */
static void conn_flush(struct server *s, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			log_debug("client %" PRIu64 ": send: %s", c->id, strerror(errno));
			conn_close(s, c);
			return;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		if (c->closing) {
			conn_close(s, c);
			return;
		}
	}
	conn_update_poll(s, c);
}

static void conn_send(struct server *s, struct conn *c, Strata__V1__Response *r)
{
	if (c->dead)
		return;
	r->protocol_version = STRATA_PROTOCOL_VERSION;
	size_t need = frame_size(&r->base);
	if (c->out_len - c->out_off + need > CONN_OUT_MAX) {
		log_warn("client %" PRIu64 " does not read its replies (%zu bytes queued); closing it",
			 c->id, c->out_len - c->out_off);
		conn_close(s, c);
		return;
	}
	if (c->out_len + need > c->out_cap) {
		if (c->out_off > 0) { /* reuse the space already sent */
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + need)
			cap *= 2;
		uint8_t *p = realloc(c->out, cap);
		if (!p) {
			log_err("client %" PRIu64 ": out of memory for a reply; closing it", c->id);
			conn_close(s, c);
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	ssize_t n = frame_pack_into(&r->base, FRAME_RESPONSE_CAP, c->out + c->out_len,
				    c->out_cap - c->out_len);
	if (n < 0) {
		log_err("client %" PRIu64 ": cannot pack a reply: %s", c->id, strerror((int)-n));
		return;
	}
	c->out_len += (size_t)n;
	conn_flush(s, c);
}

static void send_error(struct server *s, struct conn *c, uint64_t id, Strata__V1__ErrorCode code,
		       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void send_error(struct server *s, struct conn *c, uint64_t id, Strata__V1__ErrorCode code,
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
	log_debug("client %" PRIu64 " request %" PRIu64 ": error %d: %s", c->id, id, (int)code, msg);
	conn_send(s, c, &r);
}

/* ---- connection bookkeeping ---- */

static bool conn_has_gen(const struct conn *c, uint64_t id)
{
	for (uint32_t i = 0; i < c->n_gens; i++)
		if (c->gens[i] == id)
			return true;
	return false;
}

static int conn_add_gen(struct conn *c, uint64_t id)
{
	if (c->n_gens == c->cap_gens) {
		uint32_t cap = c->cap_gens ? c->cap_gens * 2 : 4;
		uint64_t *p = realloc(c->gens, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		c->gens = p;
		c->cap_gens = cap;
	}
	c->gens[c->n_gens++] = id;
	return 0;
}

static void conn_remove_gen(struct conn *c, uint64_t id)
{
	for (uint32_t i = 0; i < c->n_gens; i++) {
		if (c->gens[i] == id) {
			c->gens[i] = c->gens[--c->n_gens];
			return;
		}
	}
}

static struct conn *conn_find(struct server *s, uint64_t id)
{
	for (struct conn *c = s->conns; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

/* Close now: cancel its requests, stop watching it, free it after the batch. */
static void conn_close(struct server *s, struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->n_gens > 0) {
		log_info("client %" PRIu64 " went away; cancelling its %u request(s)", c->id, c->n_gens);
		sched_cancel(s->sched, c->id, 0, true);
	} else {
		log_debug("client %" PRIu64 " disconnected", c->id);
	}
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	c->next = s->graveyard;
	c->prev = NULL;
	s->graveyard = c;
}

static void bury_dead(struct server *s)
{
	while (s->graveyard) {
		struct conn *c = s->graveyard;
		s->graveyard = c->next;
		frame_reader_release(&c->rd);
		free(c->out);
		free(c->gens);
		free(c);
	}
}

static void accept_clients(struct server *s)
{
	for (;;) {
		int fd = accept4(s->lis->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		struct conn *c = calloc(1, sizeof *c);
		if (!c) {
			log_err("out of memory for a new connection");
			close(fd);
			continue;
		}
		c->id = ++s->next_conn_id;
		c->fd = fd;
		frame_reader_init(&c->rd, s->cfg->max_frame);
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->n_conns++;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		c->events = EPOLLIN;
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			log_err("epoll_ctl: %s", strerror(errno));
			conn_close(s, c);
			continue;
		}
		struct ucred cred;
		socklen_t len = sizeof cred;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			log_debug("client %" PRIu64 " connected (pid %d, uid %u)", c->id, (int)cred.pid,
				  (unsigned)cred.uid);
		if (s->n_conns > s->cfg->max_clients) {
			send_error(s, c, 0, STRATA__V1__ERROR_CODE__ERROR_CODE_OVERLOADED,
				   "too many connections (%u, --max-clients); try again later",
				   s->cfg->max_clients);
			c->closing = true;
			conn_flush(s, c);
		}
	}
}

/* ---- requests ---- */

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
		seed = now_ns() ^ ((uint64_t)getpid() << 32);
	return seed;
}

static void handle_generate(struct server *s, struct conn *c, uint64_t id, const Strata__V1__Generate *g)
{
	const struct tokenizer *tok = engine_tokenizer(s->e);
	uint32_t n_ctx = engine_n_ctx(s->e);
	struct sampler_params sp;
	struct st_err err = { "" };

	if (s->draining) {
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN,
			   "stratad is shutting down and accepts no new requests");
		return;
	}
	if (conn_has_gen(c, id)) {
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
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
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			   "temperature must be >= 0 (got %g)", (double)sp.temperature);
		return;
	}
	if (sampler_params_check(&sp, &err) < 0) {
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "%s", err.msg);
		return;
	}
	if (g->n_stop > MAX_STOPS) {
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			   "%zu stop strings given; at most %d are allowed", g->n_stop, MAX_STOPS);
		return;
	}
	for (size_t i = 0; i < g->n_stop; i++) {
		size_t n = strlen(g->stop[i]);
		if (n == 0 || n > MAX_STOP_BYTES) {
			send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
				   "stop string %zu is %s (1 to %d bytes allowed)", i + 1,
				   n == 0 ? "empty" : "too long", MAX_STOP_BYTES);
			return;
		}
	}

	bool bos = FRAME_HAS(g, add_bos) ? g->add_bos : tokenizer_add_bos(tok);
	int n_prompt = 0;
	int32_t *prompt = tokenize_text(tok, g->prompt, bos, g->parse_special, &n_prompt);
	if (!prompt) {
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL,
			   "cannot tokenize the prompt (out of memory)");
		return;
	}
	if (n_prompt == 0) {
		free(prompt);
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			   "the prompt is empty and no BOS token was added: there is nothing to continue");
		return;
	}
	if ((uint32_t)n_prompt >= n_ctx) {
		free(prompt);
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_PROMPT_TOO_LONG,
			   "the prompt has %d tokens but the context holds %u (with room for at least one "
			   "generated token); shorten it or start stratad with a larger --ctx-size",
			   n_prompt, n_ctx);
		return;
	}

	uint32_t room = n_ctx - (uint32_t)n_prompt;
	uint32_t max_tokens = g->max_tokens ? g->max_tokens : room;
	if (s->cfg->max_tokens && max_tokens > s->cfg->max_tokens)
		max_tokens = s->cfg->max_tokens;
	if (max_tokens > room)
		max_tokens = room;

	struct sched_request *r = calloc(1, sizeof *r);
	if (!r) {
		free(prompt);
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		return;
	}
	r->client_id = c->id;
	r->request_id = id;
	r->prompt = prompt;
	r->n_prompt = (uint32_t)n_prompt;
	r->max_tokens = max_tokens;
	r->sampling = sp;
	r->received_ns = now_ns();
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
			send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
			return;
		}
	}
	if (conn_add_gen(c, id) < 0) {
		sched_request_free(r);
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		return;
	}
	int rc = sched_submit(s->sched, r);
	if (rc < 0) {
		conn_remove_gen(c, id);
		sched_request_free(r);
		if (rc == -EAGAIN)
			send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_OVERLOADED,
				   "%u requests are already waiting (--max-queue); try again later",
				   s->cfg->max_queue);
		else if (rc == -ESHUTDOWN)
			send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN,
				   "stratad is shutting down and accepts no new requests");
		else
			send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		return;
	}
	log_debug("client %" PRIu64 " request %" PRIu64 ": generate, %d prompt tokens, up to %u more",
		  c->id, id, n_prompt, max_tokens);
}

static void handle_tokenize(struct server *s, struct conn *c, uint64_t id, const Strata__V1__Tokenize *t)
{
	const struct tokenizer *tok = engine_tokenizer(s->e);
	bool bos = FRAME_HAS(t, add_bos) ? t->add_bos : tokenizer_add_bos(tok);
	int n = 0;
	int32_t *ids = tokenize_text(tok, t->text, bos, t->parse_special, &n);
	size_t piece_cap = tokenizer_max_piece(tok) + 1;
	uint32_t *uids = calloc((size_t)n + 1, sizeof *uids);
	ProtobufCBinaryData *pieces = calloc((size_t)n + 1, sizeof *pieces);
	char *buf = malloc(((size_t)n + 1) * piece_cap);
	if (!ids || !uids || !pieces || !buf) {
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
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
	conn_send(s, c, &r);
out:
	free(ids);
	free(uids);
	free(pieces);
	free(buf);
}

static void handle_detokenize(struct server *s, struct conn *c, uint64_t id,
			      const Strata__V1__Detokenize *d)
{
	const struct tokenizer *tok = engine_tokenizer(s->e);
	int32_t n_vocab = tokenizer_n_vocab(tok);
	for (size_t i = 0; i < d->n_ids; i++) {
		if (d->ids[i] >= (uint32_t)n_vocab) {
			send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
				   "token id %u (position %zu) is not below the vocabulary size %d",
				   d->ids[i], i, n_vocab);
			return;
		}
	}
	size_t step = detok_out_max(tok);
	size_t cap = (d->n_ids + 1) * step + 4;
	char *text = malloc(cap);
	if (!text) {
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
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
	conn_send(s, c, &r);
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

static void handle_status(struct server *s, struct conn *c, uint64_t id)
{
	const struct model *m = engine_model(s->e);
	const struct model_hparams *hp = &m->hp;
	struct sched_stats st;
	sched_get_stats(s->sched, &st);
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
	mm.path = (char *)s->cfg->model;
	mm.name = (char *)m->name;
	mm.architecture = s->arch;
	mm.n_layer = hp->n_layer;
	mm.n_embd = hp->n_embd;
	mm.n_head = hp->n_head;
	mm.n_head_kv = hp->n_head_kv;
	mm.n_ff = hp->n_ff;
	mm.n_vocab = hp->n_vocab;
	mm.n_ctx_train = hp->n_ctx_train;
	mm.n_ctx = engine_n_ctx(s->e);
	mm.n_params = n_params;
	mm.file_bytes = gguf_file_size(m->gguf);
	mm.n_weight_types = n_wt;
	mm.weight_types = wtp;

	Strata__V1__Memory mem = STRATA__V1__MEMORY__INIT;
	mem.weights_resident_bytes = io->bytes_resident;
	mem.stream_buffer_bytes = io->n_streamed ? (uint64_t)io->n_slots * io->slot_bytes : 0;
	mem.kv_cache_bytes = st.engine.kv_bytes;
	mem.budget_bytes = s->cfg->engine.memory_budget;
	mem.rss_bytes = read_rss_bytes();


	Strata__V1__StatusReply sr = STRATA__V1__STATUS_REPLY__INIT;
	sr.daemon_version = (char *)PACKAGE_VERSION;
	sr.protocol_version = STRATA_PROTOCOL_VERSION;
	sr.model = &mm;
	sr.memory = &mem;
	sr.io_mode = io->n_streamed == 0 ? STRATA__V1__IO_MODE__IO_MODE_RESIDENT :
		     io->io == WEIGHTS_IO_MMAP ? STRATA__V1__IO_MODE__IO_MODE_MMAP :
						  STRATA__V1__IO_MODE__IO_MODE_STREAM;
	sr.layers_resident = engine_layers_resident(s->e);
	sr.threads = (uint32_t)engine_threads(s->e);
	sr.requests_active = st.active;
	sr.requests_queued = st.queued;
	sr.connections = s->n_conns;
	sr.requests_total = st.requests_total;
	sr.generated_tokens_total = st.generated_tokens_total;
	sr.prompt_tokens_total = st.prompt_tokens_total;
	sr.bytes_read_total = io->bytes_read > io->bytes_resident ? io->bytes_read - io->bytes_resident : 0;
	sr.uptime_ms = (now_ns() - s->t_start) / 1000000;
	sr.max_frame_bytes = s->cfg->max_frame;
	sr.passes_total = st.passes;
	sr.compute_ms_total = (double)(st.pass_ns - st.stall_ns) / 1e6;
	sr.stall_ms_total = (double)st.stall_ns / 1e6;
	sr.bytes_streamed_per_pass = io->bytes_streamed_per_pass;

	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = id;
	r.body_case = STRATA__V1__RESPONSE__BODY_STATUS;
	r.status = &sr;
	conn_send(s, c, &r);
}

static void handle_cancel(struct server *s, struct conn *c, uint64_t id, const Strata__V1__Cancel *k)
{
	if (!conn_has_gen(c, k->target_id) || !sched_cancel(s->sched, c->id, k->target_id, false)) {
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
			   "no unfinished Generate with id %" PRIu64 " on this connection", k->target_id);
		return;
	}
	Strata__V1__CancelReply cr = STRATA__V1__CANCEL_REPLY__INIT;
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	r.id = id;
	r.body_case = STRATA__V1__RESPONSE__BODY_CANCEL;
	r.cancel = &cr;
	conn_send(s, c, &r);
}

static void handle_frame(struct server *s, struct conn *c, const uint8_t *buf, size_t len)
{
	Strata__V1__Request *req = strata__v1__request__unpack(NULL, len, buf);
	const char *field = NULL;

	if (!req) {
		send_error(s, c, 0, STRATA__V1__ERROR_CODE__ERROR_CODE_MALFORMED,
			   "a %zu-byte frame is not a strata.v1.Request", len);
		c->closing = true;
		conn_flush(s, c);
		return;
	}
	uint64_t id = req->id;
	if (frame_check_utf8(&req->base, &field) < 0) {
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_MALFORMED,
			   "field '%s' is not valid UTF-8", field ? field : "?");
		c->closing = true;
		conn_flush(s, c);
		goto out;
	}
	if (!c->greeted ? req->protocol_version != STRATA_PROTOCOL_VERSION
			: req->protocol_version != 0 && req->protocol_version != STRATA_PROTOCOL_VERSION) {
		if (req->protocol_version == 0)
			send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_BAD_VERSION,
				   "the first request must carry protocol_version; this server speaks "
				   "version %d", STRATA_PROTOCOL_VERSION);
		else
			send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_BAD_VERSION,
				   "client speaks protocol version %u, this server speaks version %d",
				   req->protocol_version, STRATA_PROTOCOL_VERSION);
		c->closing = true;
		conn_flush(s, c);
		goto out;
	}
	c->greeted = true;
	if (id == 0) {
		send_error(s, c, 0, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			   "request id must be non-zero");
		goto out;
	}
	switch (req->body_case) {
	case STRATA__V1__REQUEST__BODY_GENERATE:
		handle_generate(s, c, id, req->generate);
		break;
	case STRATA__V1__REQUEST__BODY_TOKENIZE:
		handle_tokenize(s, c, id, req->tokenize);
		break;
	case STRATA__V1__REQUEST__BODY_DETOKENIZE:
		handle_detokenize(s, c, id, req->detokenize);
		break;
	case STRATA__V1__REQUEST__BODY_STATUS:
		handle_status(s, c, id);
		break;
	case STRATA__V1__REQUEST__BODY_CANCEL:
		handle_cancel(s, c, id, req->cancel);
		break;
	default:
		send_error(s, c, id, STRATA__V1__ERROR_CODE__ERROR_CODE_UNKNOWN_REQUEST,
			   "this server does not know that request (no body, or a newer kind)");
		break;
	}
out:
	strata__v1__request__free_unpacked(req, NULL);
}

static void conn_readable(struct server *s, struct conn *c)
{
	for (int frames = 0; frames < 64 && !c->dead && !c->closing; frames++) {
		int rc = frame_reader_fill(&c->rd, c->fd);
		if (rc == FRAME_AGAIN)
			return;
		if (rc == FRAME_READY) {
			uint8_t *buf;
			size_t len;
			if (frame_reader_take(&c->rd, &buf, &len) == 0) {
				handle_frame(s, c, buf, len);
				free(buf);
			}
			continue;
		}
		if (rc == FRAME_EOF) {
			conn_close(s, c);
			return;
		}
		if (rc == -EMSGSIZE) {
			send_error(s, c, 0, STRATA__V1__ERROR_CODE__ERROR_CODE_FRAME_TOO_LARGE,
				   "a frame of %u bytes is over this server's limit of %u bytes (--max-frame)",
				   c->rd.length, s->cfg->max_frame);
			c->closing = true;
			conn_flush(s, c);
			return;
		}
		if (rc == -EPROTO)
			log_debug("client %" PRIu64 " hung up in the middle of a frame", c->id);
		else if (rc != -ECONNRESET)
			log_debug("client %" PRIu64 ": read: %s", c->id, strerror(-rc));
		conn_close(s, c);
		return;
	}
	/* more frames may be waiting: level-triggered epoll will call again */
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

static void send_event(struct server *s, struct conn *c, const struct sched_event *ev)
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
			conn_send(s, c, &r);
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
	conn_send(s, c, &r);
}

/* One line per finished request, for the journal. */
static void log_done(const struct conn *c, const struct sched_event *ev)
{
	static const char *const reasons[] = { "length", "eos", "stop string", "cancelled", "error",
					       "shutdown" };
	double gen_s = (double)ev->gen_ns / 1e9;
	log_info("client %" PRIu64 " request %" PRIu64 ": %s after %u prompt + %u generated tokens, "
		 "first token %.0f ms, %.2f tok/s, %.1f MiB read, %.0f ms stalled%s%s",
		 c->id, ev->request_id, reasons[ev->finish], ev->prompt_tokens, ev->generated_tokens,
		 (double)ev->ttft_ns / 1e6,
		 ev->generated_tokens > 1 && gen_s > 0 ? (ev->generated_tokens - 1) / gen_s : 0.0,
		 (double)ev->bytes_read / (1 << 20), (double)ev->stall_ns / 1e6,
		 ev->finish == SCHED_FINISH_ERROR ? ": " : "",
		 ev->finish == SCHED_FINISH_ERROR ? ev->message : "");
}

static void drain_events(struct server *s)
{
	uint64_t counter;
	if (read(s->wake_fd, &counter, sizeof counter) < 0) {
		/* EAGAIN: nothing new; events are taken below anyway */
	}
	struct sched_event *list = sched_take_events(s->sched);
	for (struct sched_event *ev = list; ev; ev = ev->next) {
		struct conn *c = conn_find(s, ev->client_id);
		if (!c || c->dead)
			continue; /* the client left; its requests were cancelled */
		if (ev->kind == SCHED_EV_DONE) {
			conn_remove_gen(c, ev->request_id);
			log_done(c, ev);
		}
		send_event(s, c, ev);
	}
	sched_event_free(list);
}

/* ---- timer: watchdog, STATUS=, drain ---- */

static void on_timer(struct server *s)
{
	uint64_t expirations;
	if (read(s->timer_fd, &expirations, sizeof expirations) < 0) {
		/* EAGAIN on a spurious wake-up */
	}
	uint64_t now = now_ns();
	struct sched_stats st;
	sched_get_stats(s->sched, &st);

	if (st.progress != s->wd_progress) {
		s->wd_progress = st.progress;
		s->wd_progress_at = now;
	}
	if (s->wd_interval_us && now - s->wd_last_ping >= s->wd_interval_us * 1000ull) {
		/* Ping only while the scheduler is alive: it advances its counter every
		 * layer of a pass and every second when idle. A stuck engine stops the
		 * pings and systemd restarts us. */
		uint64_t stale = 2 * s->wd_interval_us * 1000ull + 2000000000ull;
		if (now - s->wd_progress_at < stale) {
			notify_watchdog();
			s->wd_last_ping = now;
		} else {
			log_err("the scheduler made no progress for %.1f s; withholding the watchdog ping",
				(double)(now - s->wd_progress_at) / 1e9);
		}
	}

	char line[256];
	const struct model *m = engine_model(s->e);
	if (s->draining)
		snprintf(line, sizeof line, "Stopping: %u request(s) finishing", st.active);
	else
		snprintf(line, sizeof line, "Serving %s: %u active, %u queued, %.1f tok/s, %" PRIu64
			 " requests done", m->name, st.active, st.queued, st.active ? st.recent_tok_s : 0.0,
			 st.requests_total);
	if (strcmp(line, s->status_line) != 0) {
		snprintf(s->status_line, sizeof s->status_line, "%s", line);
		notify_status("%s", line);
	}
}

static void begin_drain(struct server *s, int signo)
{
	if (s->draining)
		return;
	s->draining = true;
	struct sched_stats st;
	sched_get_stats(s->sched, &st);
	log_notice("%s: stopping; %u running request(s) get %u s to finish, %u queued are refused",
		   strsignal(signo), st.active, s->cfg->shutdown_timeout, st.queued);
	notify_stopping("Stopping: finishing running requests");
	if (s->lis->fd >= 0) {
		epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lis->fd, NULL);
		listener_close(s->lis);
	}
	uint64_t grace = (uint64_t)s->cfg->shutdown_timeout * 1000000000ull;
	sched_drain(s->sched, grace);
	s->drain_deadline = now_ns() + grace + 5000000000ull;
}

static bool all_flushed(const struct server *s)
{
	for (const struct conn *c = s->conns; c; c = c->next)
		if (c->out_len > c->out_off)
			return false;
	return true;
}

/* ---- setup and loop ---- */

static int watch(struct server *s, int fd, uint64_t data)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };
	return epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int server_run(const struct daemon_config *cfg, struct engine *e, struct listener *l)
{
	struct server srv = { .cfg = cfg, .e = e, .lis = l, .ep = -1, .wake_fd = -1, .timer_fd = -1 };
	struct server *s = &srv;
	int rc = 0;

	s->t_start = now_ns();
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->ep < 0 || s->wake_fd < 0 || s->timer_fd < 0) {
		rc = -errno;
		log_err("cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	struct itimerspec its = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	s->wd_interval_us = notify_watchdog_interval_usec();
	if (s->wd_interval_us && s->wd_interval_us < 1000000) {
		/* tick at least as often as the watchdog wants a ping */
		its.it_interval.tv_sec = 0;
		its.it_interval.tv_nsec = (long)s->wd_interval_us * 1000;
		its.it_value = its.it_interval;
	}
	timerfd_settime(s->timer_fd, 0, &its, NULL);

	struct sched_config sc = { .max_queue = cfg->max_queue, .wake_fd = s->wake_fd };
	rc = sched_start(e, &sc, &s->sched);
	if (rc < 0) {
		log_err("cannot start the scheduler: %s", strerror(-rc));
		goto out;
	}
	if ((rc = watch(s, l->fd, tag_data(TAG_LISTEN))) < 0 ||
	    (rc = watch(s, signals_fd(), tag_data(TAG_SIGNAL))) < 0 ||
	    (rc = watch(s, s->wake_fd, tag_data(TAG_WAKE))) < 0 ||
	    (rc = watch(s, s->timer_fd, tag_data(TAG_TIMER))) < 0) {
		log_err("epoll_ctl: %s", strerror(-rc));
		goto out;
	}

	const struct model *m = engine_model(e);
	struct gguf_str arch = { "", 0 };
	gguf_get_str(m->gguf, "general.architecture", &arch, NULL);
	snprintf(s->arch, sizeof s->arch, "%.*s", (int)(arch.len < 63 ? arch.len : 63), arch.ptr);
	if (l->activated)
		log_notice("listening on the socket systemd passed (socket activation)");
	else
		log_notice("listening on %s", l->path);
	snprintf(s->status_line, sizeof s->status_line, "Serving %s: ready", m->name);
	notify_ready(s->status_line);
	s->wd_progress_at = now_ns();
	if (s->wd_interval_us) {
		notify_watchdog();
		s->wd_last_ping = now_ns();
	}

	while (!s->draining || !sched_drained(s->sched) || !all_flushed(s)) {
		if (s->draining && now_ns() > s->drain_deadline) {
			log_warn("stopping with replies still unsent to slow clients");
			break;
		}
		struct epoll_event evs[64];
		int n = epoll_wait(s->ep, evs, 64, s->draining ? 200 : -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			log_err("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t data = evs[i].data.u64;
			if (data == TAG_LISTEN) {
				if (!s->draining)
					accept_clients(s);
			} else if (data == TAG_SIGNAL) {
				for (int signo; (signo = signals_next()) != 0;) {
					if (signo == SIGHUP)
						log_notice("SIGHUP ignored: restart stratad to change its settings");
					else
						begin_drain(s, signo);
				}
			} else if (data == TAG_WAKE) {
				drain_events(s);
			} else if (data == TAG_TIMER) {
				on_timer(s);
			} else {
				struct conn *c = evs[i].data.ptr;
				if (c->dead)
					continue;
				if (evs[i].events & EPOLLOUT)
					conn_flush(s, c);
				if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
					conn_readable(s, c);
			}
		}
		bury_dead(s);
	}
	drain_events(s);
	log_notice("stopped");
out:
	sched_stop(s->sched);
	while (s->conns)
		conn_close(s, s->conns);
	bury_dead(s);
	if (s->timer_fd >= 0)
		close(s->timer_fd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	if (s->ep >= 0)
		close(s->ep);
	listener_close(l);
	return rc;
}
