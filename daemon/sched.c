/* sched.c: the scheduler thread (see sched.h).
 *
 * One mutex guards the queue, the cancel marks, the event list and the
 * published stats; the thread drops it for the forward pass itself, so the
 * server can submit and cancel while a pass runs. Sequence state (tokens,
 * sampler, detokenizer) belongs to the scheduler thread alone. */
#include "config.h"

#include "daemon/sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "engine/engine.h"
#include "common/log.h"
#include "engine/model.h"
#include "tokenizer/detok.h"
#include "tokenizer/tokenizer.h"

struct seq {
	bool used;
	uint32_t slot;
	struct sched_request *req;
	int32_t *tokens;	 /* (n_prompt + max_tokens) prompt then generated ids */
	uint32_t n_tokens;
	uint32_t n_past;	 /* tokens already in the KV cache */
	uint32_t n_gen;
	struct sampler *smp;
	struct detok dt;
	char *hold;		 /* text held back: it may be the start of a stop string */
	size_t hold_len;
	size_t hold_cap;
	bool cancel;
	uint64_t t_start;	 /* first pass */
	uint64_t t_first;	 /* first generated token */
	uint64_t t_last;
	uint64_t bytes_read;
	uint64_t stall_ns;
	uint64_t compute_ns;
	int logits_row;		 /* row of this pass's logits, or -1 */
};

struct queued {
	struct queued *next;
	struct sched_request *req;
};

struct sched {
	struct engine *e;
	struct sched_config cfg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;

	/* guarded by mu */
	struct queued *queue_head, **queue_tail;
	uint32_t n_queued;
	struct sched_event *ev_head, **ev_tail;
	struct { uint64_t client, request; bool all; } *cancels;
	size_t n_cancels, cap_cancels;
	struct { uint64_t client, request; bool used; } *running; /* (n_slots) who holds each slot */
	bool stopping;
	bool draining;
	uint64_t drain_deadline;
	struct sched_stats stats;

	/* scheduler thread only */
	struct seq *seqs;	 /* (n_slots) */
	uint32_t n_slots;
	uint32_t n_vocab;
	uint32_t n_ctx;
	uint32_t max_batch;
	int32_t *b_token;	 /* (max_batch) */
	uint32_t *b_pos, *b_slot;
	uint8_t *b_want;
	float *logits;		 /* (n_slots, n_vocab) */
	char *piece;		 /* (piece_cap) text of one token */
	size_t piece_cap;
	double tok_s_ewma;
};

void sched_request_free(struct sched_request *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < r->n_stops; i++)
		free(r->stops[i]);
	free(r->stops);
	free(r->prompt);
	free(r);
}

void sched_event_free(struct sched_event *ev)
{
	while (ev) {
		struct sched_event *next = ev->next;
		free(ev->text);
		free(ev->ids);
		free(ev->stop_string);
		free(ev);
		ev = next;
	}
}

/* ---- events (called with mu held) ---- */

static void push_event_locked(struct sched *s, struct sched_event *ev)
{
	ev->next = NULL;
	*s->ev_tail = ev;
	s->ev_tail = &ev->next;
}

static void wake_server(struct sched *s)
{
	uint64_t one = 1;
	if (s->cfg.wake_fd >= 0 && write(s->cfg.wake_fd, &one, sizeof one) < 0) {
		/* EAGAIN means the counter is already non-zero: the server will wake */
	}
}

static struct sched_event *done_event(const struct sched_request *r, enum sched_finish finish)
{
	struct sched_event *ev = calloc(1, sizeof *ev);
	if (!ev)
		return NULL;
	ev->kind = SCHED_EV_DONE;
	ev->client_id = r->client_id;
	ev->request_id = r->request_id;
	ev->finish = finish;
	ev->prompt_tokens = r->n_prompt;
	ev->seed = r->sampling.seed;
	return ev;
}

/* ---- public API (server thread) ---- */

int sched_submit(struct sched *s, struct sched_request *r)
{
	struct queued *q = malloc(sizeof *q);
	if (!q)
		return -ENOMEM;
	pthread_mutex_lock(&s->mu);
	if (s->draining || s->stopping) {
		pthread_mutex_unlock(&s->mu);
		free(q);
		return -ESHUTDOWN;
	}
	/* Free slots count too: requests the thread has not admitted yet wait in
	 * the queue for a moment, and must not be refused for that. */
	uint32_t free_slots = s->n_slots - s->stats.active;
	if (s->n_queued >= s->cfg.max_queue + free_slots) {
		pthread_mutex_unlock(&s->mu);
		free(q);
		return -EAGAIN;
	}
	q->req = r;
	q->next = NULL;
	*s->queue_tail = q;
	s->queue_tail = &q->next;
	s->n_queued++;
	s->stats.queued = s->n_queued;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

bool sched_cancel(struct sched *s, uint64_t client_id, uint64_t request_id, bool all)
{
	bool found = false;
	pthread_mutex_lock(&s->mu);
	/* queued requests end right here */
	for (struct queued **pq = &s->queue_head; *pq;) {
		struct queued *q = *pq;
		if (q->req->client_id == client_id && (all || q->req->request_id == request_id)) {
			struct sched_event *ev = done_event(q->req, SCHED_FINISH_CANCELLED);
			if (ev)
				push_event_locked(s, ev);
			*pq = q->next;
			sched_request_free(q->req);
			free(q);
			s->n_queued--;
			found = true;
		} else {
			pq = &q->next;
		}
	}
	s->queue_tail = &s->queue_head;
	while (*s->queue_tail)
		s->queue_tail = &(*s->queue_tail)->next;
	s->stats.queued = s->n_queued;
	/* running ones are marked; the thread ends them between passes */
	if (s->n_cancels == s->cap_cancels) {
		size_t cap = s->cap_cancels ? s->cap_cancels * 2 : 16;
		void *p = realloc(s->cancels, cap * sizeof *s->cancels);
		if (p) {
			s->cancels = p;
			s->cap_cancels = cap;
		}
	}
	if (s->n_cancels < s->cap_cancels) {
		s->cancels[s->n_cancels].client = client_id;
		s->cancels[s->n_cancels].request = request_id;
		s->cancels[s->n_cancels].all = all;
		s->n_cancels++;
	}
	for (uint32_t i = 0; i < s->n_slots; i++)
		if (s->running[i].used && s->running[i].client == client_id &&
		    (all || s->running[i].request == request_id))
			found = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (found)
		wake_server(s);
	return found;
}

struct sched_event *sched_take_events(struct sched *s)
{
	pthread_mutex_lock(&s->mu);
	struct sched_event *ev = s->ev_head;
	s->ev_head = NULL;
	s->ev_tail = &s->ev_head;
	pthread_mutex_unlock(&s->mu);
	return ev;
}

void sched_drain(struct sched *s, uint64_t grace_ns)
{
	pthread_mutex_lock(&s->mu);
	if (!s->draining) {
		s->draining = true;
		s->drain_deadline = clock_now_ns() + grace_ns;
	}
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

bool sched_drained(struct sched *s)
{
	pthread_mutex_lock(&s->mu);
	bool done = s->draining && s->n_queued == 0 && s->stats.active == 0;
	pthread_mutex_unlock(&s->mu);
	return done;
}

void sched_get_stats(struct sched *s, struct sched_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->stats;
	pthread_mutex_unlock(&s->mu);
	out->progress += engine_progress(s->e);
}

/* ---- the scheduler thread ---- */

/* Append bytes to the held-back text. */
static int hold_append(struct seq *q, const char *p, size_t n)
{
	if (q->hold_len + n > q->hold_cap) {
		size_t cap = q->hold_cap ? q->hold_cap : 256;
		while (cap < q->hold_len + n)
			cap *= 2;
		char *h = realloc(q->hold, cap);
		if (!h)
			return -ENOMEM;
		q->hold = h;
		q->hold_cap = cap;
	}
	memcpy(q->hold + q->hold_len, p, n);
	q->hold_len += n;
	return 0;
}

/* Where a stop string first occurs in the held text, or -1; *which says which. */
static long find_stop(const struct seq *q, uint32_t *which)
{
	long best = -1;
	for (uint32_t i = 0; i < q->req->n_stops; i++) {
		const char *st = q->req->stops[i];
		size_t n = strlen(st);
		if (n == 0 || n > q->hold_len)
			continue;
		for (size_t at = 0; at + n <= q->hold_len; at++) {
			if (memcmp(q->hold + at, st, n) == 0) {
				if (best < 0 || (long)at < best) {
					best = (long)at;
					*which = i;
				}
				break;
			}
		}
	}
	return best;
}

/* Bytes at the end of the held text that could still grow into a stop string. */
static size_t stop_prefix_tail(const struct seq *q)
{
	size_t keep = 0;
	for (uint32_t i = 0; i < q->req->n_stops; i++) {
		const char *st = q->req->stops[i];
		size_t n = strlen(st);
		for (size_t k = n > 0 ? n - 1 : 0; k > keep; k--) {
			if (k <= q->hold_len && memcmp(q->hold + q->hold_len - k, st, k) == 0) {
				keep = k;
				break;
			}
		}
	}
	return keep;
}

/* Emit `n` bytes of held text (plus the token that made them) as a piece. */
static int emit_piece(struct sched *s, struct seq *q, size_t n, const int32_t *ids, uint32_t n_ids)
{
	struct sched_event *ev = calloc(1, sizeof *ev);
	if (!ev)
		return -ENOMEM;
	ev->kind = SCHED_EV_PIECE;
	ev->client_id = q->req->client_id;
	ev->request_id = q->req->request_id;
	if (n > 0) {
		ev->text = malloc(n);
		if (!ev->text) {
			free(ev);
			return -ENOMEM;
		}
		memcpy(ev->text, q->hold, n);
		ev->text_len = n;
		memmove(q->hold, q->hold + n, q->hold_len - n);
		q->hold_len -= n;
	}
	if (n_ids > 0) {
		ev->ids = malloc(n_ids * sizeof *ev->ids);
		if (!ev->ids) {
			sched_event_free(ev);
			return -ENOMEM;
		}
		memcpy(ev->ids, ids, n_ids * sizeof *ids);
		ev->n_ids = n_ids;
	}
	pthread_mutex_lock(&s->mu);
	push_event_locked(s, ev);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* End a sequence: final event, slot freed, request freed. */
static void finish_seq(struct sched *s, struct seq *q, enum sched_finish finish,
		       enum sched_error error, const char *message, int stop_index)
{
	uint64_t now = clock_now_ns();
	struct sched_event *ev = done_event(q->req, finish);

	if (ev) {
		ev->error = error;
		if (message)
			snprintf(ev->message, sizeof ev->message, "%s", message);
		ev->generated_tokens = q->n_gen;
		ev->queued_ns = q->t_start ? q->t_start - q->req->received_ns : now - q->req->received_ns;
		ev->ttft_ns = q->t_first ? q->t_first - q->req->received_ns : 0;
		ev->prompt_ns = q->t_first && q->t_start ? q->t_first - q->t_start : 0;
		ev->gen_ns = q->t_first && q->t_last > q->t_first ? q->t_last - q->t_first : 0;
		ev->bytes_read = q->bytes_read;
		ev->stall_ns = q->stall_ns;
		ev->compute_ns = q->compute_ns;
		ev->io_ns = q->t_start && q->t_last > q->t_start ? q->t_last - q->t_start : 0;
		if (stop_index >= 0)
			ev->stop_string = strdup(q->req->stops[stop_index]);
	}
	engine_slot_reset(s->e, q->slot);
	sampler_free(q->smp);
	free(q->tokens);
	free(q->hold);

	pthread_mutex_lock(&s->mu);
	if (ev)
		push_event_locked(s, ev);
	s->running[q->slot].used = false;
	s->stats.active--;
	s->stats.requests_total++;
	s->stats.prompt_tokens_total += q->req->n_prompt;
	s->stats.generated_tokens_total += q->n_gen;
	pthread_mutex_unlock(&s->mu);

	sched_request_free(q->req);
	uint32_t slot = q->slot;
	memset(q, 0, sizeof *q);
	q->slot = slot;
	q->logits_row = -1;
}

/* Flush whatever text is left (the detokenizer's tail, held-back bytes). */
static void flush_text(struct sched *s, struct seq *q)
{
	char tail[64];
	int n = detok_flush(&q->dt, tail, sizeof tail);
	if (n > 0)
		hold_append(q, tail, (size_t)n);
	if (q->hold_len > 0)
		emit_piece(s, q, q->hold_len, NULL, 0);
}

/* A sampled token: extend the sequence, emit text, decide whether it ends. */
static void on_token(struct sched *s, struct seq *q, int32_t t)
{
	const struct tokenizer *tok = engine_tokenizer(s->e);
	uint64_t now = clock_now_ns();

	if (!q->t_first)
		q->t_first = now;
	q->t_last = now;
	q->tokens[q->n_tokens++] = t;
	q->n_gen++;

	if (!q->req->ignore_eos && tokenizer_is_eog(tok, t)) {
		flush_text(s, q);
		finish_seq(s, q, SCHED_FINISH_EOS, SCHED_ERR_NONE, NULL, -1);
		return;
	}
	int n = detok_push(&q->dt, t, s->piece, s->piece_cap);
	if (n > 0 && hold_append(q, s->piece, (size_t)n) < 0) {
		finish_seq(s, q, SCHED_FINISH_ERROR, SCHED_ERR_INTERNAL, "out of memory", -1);
		return;
	}
	uint32_t which = 0;
	long stop = q->req->n_stops ? find_stop(q, &which) : -1;
	if (stop >= 0) {
		emit_piece(s, q, (size_t)stop, &t, 1);
		finish_seq(s, q, SCHED_FINISH_STOP, SCHED_ERR_NONE, NULL, (int)which);
		return;
	}
	size_t keep = q->req->n_stops ? stop_prefix_tail(q) : 0;
	emit_piece(s, q, q->hold_len - keep, &t, 1);
	if (q->n_gen >= q->req->max_tokens || q->n_tokens >= s->n_ctx) {
		flush_text(s, q);
		finish_seq(s, q, SCHED_FINISH_LENGTH, SCHED_ERR_NONE, NULL, -1);
	}
}

/* Give a free slot to the oldest queued request. Called with mu held. */
static void admit_locked(struct sched *s)
{
	for (uint32_t i = 0; i < s->n_slots && s->queue_head; i++) {
		struct seq *q = &s->seqs[i];
		if (q->used)
			continue;
		struct queued *head = s->queue_head;
		struct sched_request *r = head->req;
		s->queue_head = head->next;
		if (!s->queue_head)
			s->queue_tail = &s->queue_head;
		s->n_queued--;
		free(head);

		q->tokens = malloc(((size_t)r->n_prompt + r->max_tokens + 1) * sizeof *q->tokens);
		if (!q->tokens || sampler_new(&r->sampling, s->n_vocab, &q->smp) < 0) {
			struct sched_event *ev = done_event(r, SCHED_FINISH_ERROR);
			if (ev) {
				ev->error = SCHED_ERR_INTERNAL;
				snprintf(ev->message, sizeof ev->message, "out of memory");
				push_event_locked(s, ev);
			}
			free(q->tokens);
			sampler_free(q->smp);
			q->tokens = NULL;
			q->smp = NULL;
			sched_request_free(r);
			continue;
		}
		detok_init(&q->dt, engine_tokenizer(s->e), false);
		memcpy(q->tokens, r->prompt, r->n_prompt * sizeof *q->tokens);
		q->n_tokens = r->n_prompt;
		q->n_past = 0;
		q->n_gen = 0;
		q->req = r;
		q->used = true;
		q->cancel = false;
		q->logits_row = -1;
		s->running[i].client = r->client_id;
		s->running[i].request = r->request_id;
		s->running[i].used = true;
		s->stats.active++;
	}
	s->stats.queued = s->n_queued;
}

/* Apply cancel marks and the drain deadline. Called with mu held; returns
 * the sequences to end (their indexes flagged in q->cancel). */
static void mark_cancels_locked(struct sched *s)
{
	for (size_t c = 0; c < s->n_cancels; c++) {
		for (uint32_t i = 0; i < s->n_slots; i++) {
			struct seq *q = &s->seqs[i];
			if (q->used && q->req->client_id == s->cancels[c].client &&
			    (s->cancels[c].all || q->req->request_id == s->cancels[c].request))
				q->cancel = true;
		}
	}
	s->n_cancels = 0;
	if (s->draining) {
		/* queued requests will never run */
		while (s->queue_head) {
			struct queued *head = s->queue_head;
			struct sched_event *ev = done_event(head->req, SCHED_FINISH_SHUTDOWN);
			if (ev) {
				snprintf(ev->message, sizeof ev->message, "the daemon is shutting down");
				push_event_locked(s, ev);
			}
			s->queue_head = head->next;
			sched_request_free(head->req);
			free(head);
			s->n_queued--;
		}
		s->queue_tail = &s->queue_head;
		s->stats.queued = 0;
	}
}

static bool any_active(const struct sched *s)
{
	for (uint32_t i = 0; i < s->n_slots; i++)
		if (s->seqs[i].used)
			return true;
	return false;
}

/* One forward pass over every running sequence. */
static void step(struct sched *s)
{
	uint32_t n = 0, rows = 0;
	uint64_t t0 = clock_now_ns();

	/* decode tokens first: every generating sequence advances each pass */
	for (uint32_t i = 0; i < s->n_slots; i++) {
		struct seq *q = &s->seqs[i];
		q->logits_row = -1;
		if (!q->used || q->n_tokens - q->n_past != 1 || n >= s->max_batch)
			continue;
		s->b_token[n] = q->tokens[q->n_past];
		s->b_pos[n] = q->n_past;
		s->b_slot[n] = q->slot;
		s->b_want[n] = 1;
		q->logits_row = (int)rows++;
		n++;
	}
	/* then prompt chunks in the room left */
	for (uint32_t i = 0; i < s->n_slots && n < s->max_batch; i++) {
		struct seq *q = &s->seqs[i];
		if (!q->used || q->n_tokens - q->n_past <= 1)
			continue;
		uint32_t todo = q->n_tokens - q->n_past, room = s->max_batch - n;
		uint32_t take = todo < room ? todo : room;
		for (uint32_t k = 0; k < take; k++) {
			uint32_t p = q->n_past + k;
			s->b_token[n] = q->tokens[p];
			s->b_pos[n] = p;
			s->b_slot[n] = q->slot;
			s->b_want[n] = p == q->n_tokens - 1;
			n++;
		}
		if (take == todo)
			q->logits_row = (int)rows++;
		else
			q->logits_row = -2; /* in this pass, no logits yet */
		if (!q->t_start)
			q->t_start = t0;
	}
	if (n == 0)
		return;
	for (uint32_t i = 0; i < s->n_slots; i++)
		if (s->seqs[i].used && s->seqs[i].logits_row != -1 && !s->seqs[i].t_start)
			s->seqs[i].t_start = t0;

	struct engine_stats before, after;
	engine_get_stats(s->e, &before);
	pthread_mutex_lock(&s->mu);
	s->stats.busy = true;
	pthread_mutex_unlock(&s->mu);

	struct st_err err = { "" };
	struct forward_batch b = { n, s->b_token, s->b_pos, s->b_slot, s->b_want };
	int rc = engine_decode(s->e, &b, s->logits, &err);

	engine_get_stats(s->e, &after);
	uint64_t pass_ns = clock_now_ns() - t0;
	uint64_t read = after.io.bytes_read - before.io.bytes_read;
	uint64_t stall = after.io.stall_ns - before.io.stall_ns;
	uint64_t compute = pass_ns > stall ? pass_ns - stall : 0;
	uint32_t generated = 0;
	for (uint32_t i = 0; i < s->n_slots; i++) {
		struct seq *q = &s->seqs[i];
		if (!q->used || q->logits_row == -1)
			continue;
		q->bytes_read += read;
		q->stall_ns += stall;
		q->compute_ns += compute;
		if (rc < 0) {
			log_err("request %llu of client %llu failed: %s",
				(unsigned long long)q->req->request_id, (unsigned long long)q->req->client_id,
				err.msg);
			finish_seq(s, q, SCHED_FINISH_ERROR,
				   rc == -EIO || rc == -ENODATA ? SCHED_ERR_IO : SCHED_ERR_INTERNAL, err.msg, -1);
			continue;
		}
		/* advance the cache position by what this pass consumed */
		for (uint32_t k = 0; k < n; k++)
			if (s->b_slot[k] == q->slot)
				q->n_past = s->b_pos[k] + 1;
		if (q->logits_row >= 0) {
			float *lg = s->logits + (size_t)q->logits_row * s->n_vocab;
			int32_t t = sampler_sample(q->smp, lg, q->tokens, q->n_tokens);
			on_token(s, q, t);
			generated++;
		}
	}
	uint64_t dt = clock_now_ns() - t0;
	if (generated && dt) {
		double tok_s = generated / ((double)dt / 1e9);
		s->tok_s_ewma = s->tok_s_ewma ? 0.8 * s->tok_s_ewma + 0.2 * tok_s : tok_s;
	}
	pthread_mutex_lock(&s->mu);
	s->stats.busy = false;
	s->stats.passes++;
	s->stats.pass_ns += pass_ns;
	s->stats.stall_ns += stall;
	s->stats.progress++;
	s->stats.recent_tok_s = s->tok_s_ewma;
	s->stats.engine = after;
	pthread_mutex_unlock(&s->mu);
}

static void *sched_main(void *arg)
{
	struct sched *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		mark_cancels_locked(s);
		if (!s->draining)
			admit_locked(s);
		bool deadline = s->draining && clock_now_ns() >= s->drain_deadline;
		bool stopping = s->stopping;
		pthread_mutex_unlock(&s->mu);

		/* end what was cancelled or overtaken by shutdown */
		for (uint32_t i = 0; i < s->n_slots; i++) {
			struct seq *q = &s->seqs[i];
			if (!q->used)
				continue;
			if (q->cancel) {
				flush_text(s, q);
				finish_seq(s, q, SCHED_FINISH_CANCELLED, SCHED_ERR_NONE, NULL, -1);
			} else if (deadline || stopping) {
				flush_text(s, q);
				finish_seq(s, q, SCHED_FINISH_SHUTDOWN, SCHED_ERR_NONE,
					   "the daemon is shutting down", -1);
			}
		}
		if (stopping) {
			pthread_mutex_lock(&s->mu);
			break;
		}
		if (any_active(s))
			step(s);
		wake_server(s);

		pthread_mutex_lock(&s->mu);
		s->stats.progress++;
		if (!any_active(s) && !s->queue_head && s->n_cancels == 0 && !s->stopping) {
			if (s->draining) {
				/* nothing left; the server notices through sched_drained() */
				pthread_mutex_unlock(&s->mu);
				wake_server(s);
				pthread_mutex_lock(&s->mu);
			}
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1; /* wake now and then so the watchdog sees progress */
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Free s and every buffer it owns (the thread must not be running). */
static void free_buffers(struct sched *s)
{
	free(s->cancels);
	free(s->seqs);
	free(s->running);
	free(s->b_token);
	free(s->b_pos);
	free(s->b_slot);
	free(s->b_want);
	free(s->logits);
	free(s->piece);
	free(s);
}

int sched_start(struct engine *e, const struct sched_config *cfg, struct sched **out)
{
	struct sched *s = calloc(1, sizeof *s);
	int rc = -ENOMEM;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->e = e;
	s->cfg = *cfg;
	s->queue_tail = &s->queue_head;
	s->ev_tail = &s->ev_head;
	s->n_slots = engine_n_slots(e);
	s->n_vocab = engine_model(e)->hp.n_vocab;
	s->n_ctx = engine_n_ctx(e);
	s->max_batch = engine_max_batch(e);
	s->seqs = calloc(s->n_slots, sizeof *s->seqs);
	s->running = calloc(s->n_slots, sizeof *s->running);
	s->b_token = malloc(s->max_batch * sizeof *s->b_token);
	s->b_pos = malloc(s->max_batch * sizeof *s->b_pos);
	s->b_slot = malloc(s->max_batch * sizeof *s->b_slot);
	s->b_want = malloc(s->max_batch);
	s->logits = malloc((size_t)s->n_slots * s->n_vocab * sizeof *s->logits);
	s->piece_cap = detok_out_max(engine_tokenizer(e));
	s->piece = malloc(s->piece_cap);
	if (!s->piece || !s->seqs || !s->running || !s->b_token || !s->b_pos || !s->b_slot || !s->b_want || !s->logits)
		goto fail;
	for (uint32_t i = 0; i < s->n_slots; i++) {
		s->seqs[i].slot = i;
		s->seqs[i].logits_row = -1;
	}
	engine_get_stats(e, &s->stats.engine); /* before the thread owns the engine */
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	rc = -pthread_create(&s->thread, NULL, sched_main, s);
	if (rc < 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		goto fail;
	}
	pthread_setname_np(s->thread, "strata-sched");
	*out = s;
	return 0;
fail:
	free_buffers(s);
	return rc;
}

void sched_stop(struct sched *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	s->draining = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);

	/* anything still queued never ran */
	mark_cancels_locked(s);
	sched_event_free(s->ev_head);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free_buffers(s);
}
