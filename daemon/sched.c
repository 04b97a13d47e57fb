/* sched.c: the scheduler thread (see sched.h).
 *
 * One mutex guards the queue, the cancel marks, the event list and what is
 * published for Status (stats, each slot's progress); the thread drops it
 * for the forward pass itself, so the server can submit and cancel while a
 * pass runs. The sequences (engine/seq.h) belong to the scheduler thread
 * alone. */
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
#include "common/log.h"

/* Wake at least this often when idle, so the watchdog sees progress. */
#define SCHED_IDLE_WAKE_S 1

/* A request being served: a Generate's sequence on one KV slot, or a Score
 * on as many slots as were free when it started (one per continuation at
 * most). */
struct job {
	struct sched *s;		/* for the sink */
	struct sched_request *req;	/* owned */
	struct seq *seq;		/* GENERATE */
	struct score *score;		/* SCORE */
	uint32_t *slots;		/* (n_slots) the KV slots it holds */
	uint32_t n_slots;
	bool cancel;			/* end it before the next pass */
	bool in_pass;			/* its rows are in the pass being run */
	/* its turn at the KV cache's memory (see order_jobs) */
	uint64_t last_pass;		/* the pass it was last in (0: none yet) */
	uint64_t streak_ns;		/* wall time of its passes since it was last left out */
	uint64_t admitted;		/* admission number: ties go to the oldest */
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
	struct sched_req_info *running; /* (n_slots) published progress, by job index */
	bool *running_used;		/* (n_slots) */
	bool stopping;
	bool draining;
	uint64_t drain_deadline;
	struct sched_stats stats;

	/* scheduler thread only */
	struct job **jobs;	 /* (n_slots) running jobs in admission order, NULL-padded */
	bool *slot_busy;	 /* (n_slots) */
	uint32_t n_slots;
	uint32_t n_vocab;
	struct batch batch;	 /* the pass being built */
	float *logits;		 /* (engine_max_logits_rows, n_vocab) */
	struct drafter *drafter; /* proposes the generating sequences' drafts */
	struct seq **gen;	 /* (n_slots) scratch: the generating sequences of a step */
	uint32_t *give;		 /* (n_slots) scratch: the drafts each may have */
	double tok_s_ewma;
	struct job **order;	 /* (n_slots) the jobs in the order they get room in a pass */
	uint64_t n_passes;	 /* passes run */
	uint64_t n_admitted;
	bool left_out;		 /* the last pass left a job with rows out (no room) */
	bool flushed;		 /* the KV cache was flushed since the last pass */
};

static void job_free(struct job *j)
{
	if (!j)
		return;
	seq_free(j->seq);
	score_free(j->score);
	sched_request_free(j->req);
	free(j->slots);
	free(j);
}

void sched_request_free(struct sched_request *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < r->gen.n_stops; i++)
		free(r->stops[i]);
	free(r->stops);
	free(r->prompt);
	for (uint32_t i = 0; r->conts && i < r->score.n_conts; i++)
		free(r->conts[i]);
	free(r->conts);
	free(r->n_cont);
	free(r->context);
	free(r);
}

void sched_event_free(struct sched_event *ev)
{
	while (ev) {
		struct sched_event *next = ev->next;
		free(ev->text);
		free(ev->ids);
		free(ev->stop_string);
		free(ev->logprobs);
		score_free(ev->score);
		free(ev);
		ev = next;
	}
}

/* ---- events ---- */

/* Called with mu held. */
static void push_event_locked(struct sched *s, struct sched_event *ev)
{
	ev->next = NULL;
	*s->ev_tail = ev;
	s->ev_tail = &ev->next;
}

static void push_event(struct sched *s, struct sched_event *ev)
{
	pthread_mutex_lock(&s->mu);
	push_event_locked(s, ev);
	pthread_mutex_unlock(&s->mu);
}

static void wake_server(struct sched *s)
{
	uint64_t one = 1;
	if (s->cfg.wake_fd >= 0 && write(s->cfg.wake_fd, &one, sizeof one) < 0) {
		/* EAGAIN means the counter is already non-zero: the server will wake */
	}
}

/* The Done of a request that never got a sequence (cancelled or refused while queued). */
static struct sched_event *done_unrun(const struct sched_request *r, enum seq_finish finish,
				      const char *message)
{
	struct sched_event *ev = calloc(1, sizeof *ev);
	if (!ev)
		return NULL;
	ev->kind = SCHED_EV_DONE;
	ev->req_kind = r->kind;
	ev->client_id = r->client_id;
	ev->request_id = r->request_id;
	ev->finish = finish;
	ev->st.n_prompt = r->kind == SCHED_GENERATE ? r->gen.n_prompt : r->score.n_context;
	ev->received_ns = r->received_ns;
	ev->done_ns = clock_now_ns();
	ev->seed = r->gen.sampling.seed;
	if (message)
		snprintf(ev->message, sizeof ev->message, "%s", message);
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
			struct sched_event *ev = done_unrun(q->req, SEQ_FINISH_CANCELLED, NULL);
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
		if (s->running_used[i] && s->running[i].client_id == client_id &&
		    (all || s->running[i].request_id == request_id))
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

uint32_t sched_list(struct sched *s, struct sched_req_info *out, uint32_t cap)
{
	uint32_t n = 0;
	pthread_mutex_lock(&s->mu);
	for (uint32_t i = 0; i < s->n_slots; i++) {
		if (!s->running_used[i])
			continue;
		if (n < cap)
			out[n] = s->running[i];
		n++;
	}
	for (struct queued *q = s->queue_head; q; q = q->next) {
		if (n < cap)
			out[n] = (struct sched_req_info){
				.client_id = q->req->client_id, .request_id = q->req->request_id,
				.state = SCHED_REQ_QUEUED,
				.prompt_tokens = q->req->kind == SCHED_GENERATE ? q->req->gen.n_prompt
									      : q->req->score.n_context,
				.max_tokens = q->req->gen.max_tokens, .received_ns = q->req->received_ns,
			};
		n++;
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ---- the scheduler thread ---- */

/* The generation core reports text here: one PIECE event per report. */
static void on_piece(void *user, struct seq *q, const struct seq_piece *p)
{
	struct job *j = user;
	(void)q;
	struct sched_event *ev = calloc(1, sizeof *ev);
	if (!ev)
		return; /* out of memory: the text is lost, the request goes on */
	ev->kind = SCHED_EV_PIECE;
	ev->req_kind = SCHED_GENERATE;
	ev->client_id = j->req->client_id;
	ev->request_id = j->req->request_id;
	if ((p->len > 0 && !(ev->text = malloc(p->len))) ||
	    (p->n_ids > 0 && !(ev->ids = malloc(p->n_ids * sizeof *ev->ids))) ||
	    (p->logprobs && !(ev->logprobs = malloc(p->n_ids * sizeof *ev->logprobs)))) {
		sched_event_free(ev);
		return;
	}
	if (p->len > 0)
		memcpy(ev->text, p->text, p->len);
	ev->text_len = p->len;
	if (p->n_ids > 0)
		memcpy(ev->ids, p->ids, p->n_ids * sizeof *ev->ids);
	ev->n_ids = p->n_ids;
	if (p->logprobs) {
		memcpy(ev->logprobs, p->logprobs, p->n_ids * sizeof *ev->logprobs);
		ev->n_logprobs = p->n_ids;
	}
	push_event(j->s, ev);
}

static struct seq_sink sink_of(struct job *j)
{
	return (struct seq_sink){ .piece = on_piece, .user = j };
}

static bool job_finished(const struct job *j)
{
	return j->seq ? seq_state(j->seq) == SEQ_FINISHED : score_done(j->score);
}

/* What Status shows of job i, published under mu. */
static void publish_locked(struct sched *s, uint32_t i)
{
	struct job *j = s->jobs[i];
	s->running_used[i] = j != NULL;
	if (!j)
		return;
	struct sched_req_info *ri = &s->running[i];
	*ri = (struct sched_req_info){
		.client_id = j->req->client_id,
		.request_id = j->req->request_id,
		.received_ns = j->req->received_ns,
	};
	bool waiting = s->left_out && j->last_pass != s->n_passes;
	if (j->seq) {
		const struct seq_stats *st = seq_stats(j->seq);
		ri->state = waiting ? SCHED_REQ_WAITING :
			    seq_state(j->seq) == SEQ_PROMPT ? SCHED_REQ_PROMPT : SCHED_REQ_GENERATING;
		ri->prompt_tokens = st->n_prompt;
		ri->prompt_done = st->n_past < st->n_prompt ? st->n_past : st->n_prompt;
		ri->generated = st->n_generated;
		ri->max_tokens = j->req->gen.max_tokens;
	} else {
		ri->state = waiting ? SCHED_REQ_WAITING : SCHED_REQ_PROMPT;
		score_progress(j->score, &ri->prompt_done, &ri->prompt_tokens);
	}
}

/* A finished job: its Done (or Score) event, its slots and request freed. */
static void retire(struct sched *s, uint32_t i)
{
	struct job *j = s->jobs[i];
	struct sched_event *ev = calloc(1, sizeof *ev);
	const char *msg = "";
	const struct seq_stats *st = j->seq ? seq_stats(j->seq) : score_stats(j->score);

	if (ev) {
		ev->kind = SCHED_EV_DONE;
		ev->req_kind = j->req->kind;
		ev->client_id = j->req->client_id;
		ev->request_id = j->req->request_id;
		ev->st = *st;
		ev->received_ns = j->req->received_ns;
		ev->done_ns = clock_now_ns();
		if (j->seq) {
			ev->finish = seq_finish_reason(j->seq);
			ev->error = seq_error(j->seq, &msg);
			ev->seed = seq_seed(j->seq);
			if (seq_stop_string(j->seq))
				ev->stop_string = strdup(seq_stop_string(j->seq));
			uint32_t n = 0;
			const struct logprob_token *lp = seq_prompt_logprobs(j->seq, &n);
			if (lp && (ev->logprobs = malloc(n * sizeof *lp))) {
				memcpy(ev->logprobs, lp, n * sizeof *lp);
				ev->n_logprobs = n;
			}
		} else {
			ev->error = score_error(j->score, &msg);
			ev->finish = ev->error ? SEQ_FINISH_ERROR : j->cancel ? SEQ_FINISH_CANCELLED
									   : SEQ_FINISH_LENGTH;
			ev->score = j->score; /* the results travel with the event */
			j->score = NULL;
		}
		snprintf(ev->message, sizeof ev->message, "%s", msg);
	}
	pthread_mutex_lock(&s->mu);
	if (ev)
		push_event_locked(s, ev);
	s->stats.active--;
	s->stats.requests_total++;
	s->stats.prompt_tokens_total += st->n_prompt;
	s->stats.generated_tokens_total += st->n_generated;
	pthread_mutex_unlock(&s->mu);

	for (uint32_t k = 0; k < j->n_slots; k++) {
		engine_slot_reset(s->e, j->slots[k]); /* the KV memory goes back to the kernel */
		s->slot_busy[j->slots[k]] = false;
	}
	job_free(j);
	/* keep admission order: close the gap */
	memmove(&s->jobs[i], &s->jobs[i + 1], (s->n_slots - i - 1) * sizeof *s->jobs);
	s->jobs[s->n_slots - 1] = NULL;
	pthread_mutex_lock(&s->mu);
	for (uint32_t k = i; k < s->n_slots; k++)
		publish_locked(s, k);
	pthread_mutex_unlock(&s->mu);
}

static uint32_t free_slots(const struct sched *s)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->n_slots; i++)
		n += !s->slot_busy[i];
	return n;
}

/* Start the oldest queued requests while slots are free: a Generate takes
 * one, a Score as many as are free up to one per continuation. Called with mu
 * held; a request whose job cannot be made ends with an ERROR Done. */
static void admit_locked(struct sched *s)
{
	uint32_t n_jobs = 0;
	while (n_jobs < s->n_slots && s->jobs[n_jobs])
		n_jobs++;
	while (s->queue_head && free_slots(s) > 0) {
		struct queued *head = s->queue_head;
		struct sched_request *r = head->req;
		s->queue_head = head->next;
		if (!s->queue_head)
			s->queue_tail = &s->queue_head;
		s->n_queued--;
		free(head);

		uint32_t want = r->kind == SCHED_GENERATE ? 1 : r->score.n_conts;
		uint32_t avail = free_slots(s), take = want < avail ? want : avail;
		struct job *j = calloc(1, sizeof *j);
		struct st_err err = { "" };
		int rc = -ENOMEM;
		if (j && (j->slots = malloc(take * sizeof *j->slots))) {
			for (uint32_t i = 0; i < s->n_slots && j->n_slots < take; i++)
				if (!s->slot_busy[i])
					j->slots[j->n_slots++] = i;
			j->s = s;
			j->req = r;
			rc = r->kind == SCHED_GENERATE
				     ? seq_create(s->e, &r->gen, j->slots[0], &j->seq, &err)
				     : score_create(s->e, &r->score, j->slots, j->n_slots, &j->score, &err);
		}
		if (rc < 0) {
			struct sched_event *ev = done_unrun(r, SEQ_FINISH_ERROR,
							    err.msg[0] ? err.msg : "out of memory");
			if (ev) {
				ev->error = rc;
				push_event_locked(s, ev);
			}
			if (j)
				j->req = NULL;
			job_free(j);
			sched_request_free(r);
			continue;
		}
		for (uint32_t k = 0; k < j->n_slots; k++)
			s->slot_busy[j->slots[k]] = true;
		j->admitted = ++s->n_admitted;
		s->jobs[n_jobs] = j;
		s->stats.active++;
		publish_locked(s, n_jobs);
		n_jobs++;
	}
	s->stats.queued = s->n_queued;
}

/* Apply cancel marks; when draining, end what waits in the queue. Called with mu held. */
static void mark_cancels_locked(struct sched *s)
{
	for (size_t c = 0; c < s->n_cancels; c++) {
		for (uint32_t i = 0; i < s->n_slots && s->jobs[i]; i++) {
			struct job *j = s->jobs[i];
			if (j->req->client_id == s->cancels[c].client &&
			    (s->cancels[c].all || j->req->request_id == s->cancels[c].request))
				j->cancel = true;
		}
	}
	s->n_cancels = 0;
	if (s->draining) {
		/* queued requests will never run */
		while (s->queue_head) {
			struct queued *head = s->queue_head;
			struct sched_event *ev = done_unrun(head->req, SEQ_FINISH_SHUTDOWN,
							    "the daemon is shutting down");
			if (ev)
				push_event_locked(s, ev);
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
	return s->n_slots > 0 && s->jobs[0] != NULL;
}

/* A job keeps its turn at the KV cache's memory for this long of pass time
 * while others wait for room: long enough that moving its blocks to disk
 * and back costs little beside it, short enough that a waiting request is
 * not left for minutes. A pass longer than this is a turn by itself. */
#define SCHED_SLICE_NS (2ull * 1000000000)

/* 0: in the last pass and its turn goes on; 1: left out (the longest-waiting
 * first); 2: its turn is over while others waited. */
static int job_group(const struct sched *s, const struct job *j)
{
	bool ran = j->last_pass != 0 && j->last_pass == s->n_passes;
	if (ran && (!s->left_out || j->streak_ns < SCHED_SLICE_NS))
		return 0;
	return ran ? 2 : 1;
}

static const struct sched *order_ctx;

static int order_cmp(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;
	int gx = job_group(order_ctx, x), gy = job_group(order_ctx, y);
	if (gx != gy)
		return gx < gy ? -1 : 1;
	if (gx == 1 && x->last_pass != y->last_pass)
		return x->last_pass < y->last_pass ? -1 : 1;
	return x->admitted < y->admitted ? -1 : x->admitted > y->admitted;
}

/* The order jobs get room in the next pass. When the KV cache's memory holds
 * every job's blocks, all run every pass and the order does not matter. When
 * it does not, the jobs in the last pass keep their place for a slice of
 * time, then the ones left out (preempted: their blocks went to disk as room
 * was needed) come first, longest waiting first. */
static uint32_t order_jobs(struct sched *s)
{
	uint32_t n = 0;
	while (n < s->n_slots && s->jobs[n]) {
		s->order[n] = s->jobs[n];
		n++;
	}
	order_ctx = s; /* the scheduler thread alone sorts */
	qsort(s->order, n, sizeof *s->order, order_cmp);
	return n;
}

static bool has_rows(const struct job *j)
{
	return j->seq ? seq_rows_pending(j->seq) > 0 : !score_done(j->score);
}

/* Drafts for the pass about to be built. Every generating sequence has its
 * last token's row, and every sequence still reading its prompt may need a
 * logits row for its last prompt token; the pass's logits rows left over go
 * to drafts, shared out one at a time in admission order until each has what
 * it asked for (so equal shares when rows are short). Then the drafter fills
 * them: lookups, and the draft model's passes, all before the target's pass
 * on this thread. */
static void draft(struct sched *s)
{
	const struct batch *b = &s->batch;
	uint32_t n = 0, n_prompt = 0, asked = 0;
	for (uint32_t i = 0; i < s->n_slots && s->jobs[i]; i++) {
		struct job *j = s->jobs[i];
		if (!j->seq || j->cancel)
			continue;
		if (seq_state(j->seq) == SEQ_PROMPT)
			n_prompt++;
		else if (seq_state(j->seq) == SEQ_GENERATING) {
			s->gen[n] = j->seq;
			s->give[n] = 0;
			asked += seq_draft_wanted(j->seq);
			n++;
		}
	}
	if (asked == 0)
		return;
	uint32_t rows = b->cap < b->want_cap ? b->cap : b->want_cap;
	uint32_t spare = rows > n + n_prompt ? rows - n - n_prompt : 0;
	for (bool more = true; spare > 0 && more;) {
		more = false;
		for (uint32_t i = 0; i < n && spare > 0; i++) {
			if (s->give[i] < seq_draft_wanted(s->gen[i])) {
				s->give[i]++;
				spare--;
				more = true;
			}
		}
	}
	for (uint32_t i = 0; i < n; i++)
		seq_draft_begin(s->gen[i], s->give[i]);
	struct st_err err = { "" };
	if (drafter_run(s->drafter, s->gen, n, &err) < 0)
		log_warn("a draft pass failed, this pass verifies fewer drafts: %s", err.msg);
}

/* One forward pass over the running jobs: decode rows first (every
 * generating sequence advances each pass, with the drafts it verifies), then
 * prompt chunks and scoring rows in the room left, in the order of
 * order_jobs; each job adds only the rows whose KV blocks fit in memory
 * beside those already in the pass (engine_plan_rows), and one that gets
 * none waits for a later pass. */
static void step(struct sched *s)
{
	struct batch *b = &s->batch;
	uint32_t n = order_jobs(s);

	pthread_mutex_lock(&s->mu);
	s->stats.busy = true;
	pthread_mutex_unlock(&s->mu);
	draft(s);
	batch_clear(b);
	engine_plan_begin(s->e);
	for (uint32_t i = 0; i < n; i++) {
		struct job *j = s->order[i];
		j->in_pass = j->seq && seq_state(j->seq) == SEQ_GENERATING && b->n < b->cap &&
			     seq_add_rows(j->seq, b, b->cap - b->n) > 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct job *j = s->order[i];
		if (j->in_pass || b->n >= b->cap)
			continue;
		if (j->seq && seq_state(j->seq) == SEQ_PROMPT)
			j->in_pass = seq_add_rows(j->seq, b, b->cap - b->n) > 0;
		else if (j->score)
			j->in_pass = score_add_rows(j->score, b, b->cap - b->n) > 0;
	}
	if (b->n == 0) {
		pthread_mutex_lock(&s->mu);
		s->stats.busy = false;
		pthread_mutex_unlock(&s->mu);
		return;
	}
	bool left_out = false;
	for (uint32_t i = 0; i < n; i++)
		left_out |= !s->order[i]->in_pass && has_rows(s->order[i]);

	struct engine_pass_io before, after;
	struct seq_pass pass = { 0 };
	engine_pass_io(s->e, &before);

	struct st_err err = { "" };
	pass.t_start = clock_now_ns();
	int rc = engine_decode(s->e, b, s->logits, &err);
	pass.t_end = clock_now_ns();
	engine_pass_io(s->e, &after);
	pass.bytes_read = after.bytes_read - before.bytes_read;
	pass.stall_ns = after.stall_ns - before.stall_ns;

	uint32_t generated = 0, drafted = 0, accepted = 0;
	s->n_passes++;
	s->left_out = left_out;
	s->flushed = false;
	for (uint32_t i = 0; i < s->n_slots && s->jobs[i]; i++) {
		struct job *j = s->jobs[i];
		if (!j->in_pass) {
			j->streak_ns = 0;
			continue;
		}
		j->streak_ns += pass.t_end - pass.t_start;
		j->last_pass = s->n_passes;
		if (rc < 0)
			log_err("request %llu of client %llu failed: %s",
				(unsigned long long)j->req->request_id,
				(unsigned long long)j->req->client_id, err.msg);
		if (j->seq) {
			struct seq_sink sink = sink_of(j);
			struct seq_stats was = *seq_stats(j->seq);
			if (rc < 0)
				seq_finish(j->seq, SEQ_FINISH_ERROR, rc, err.msg, &sink);
			else
				seq_pass_done(j->seq, s->logits, &pass, &sink);
			const struct seq_stats *now = seq_stats(j->seq);
			generated += now->n_generated - was.n_generated;
			drafted += now->drafted - was.drafted;
			accepted += now->accepted - was.accepted;
		} else if (rc < 0) {
			score_fail(j->score, rc, err.msg);
		} else {
			score_pass_done(j->score, s->logits, &pass);
		}
	}
	/* retire the finished (from the back: retire closes gaps) */
	for (uint32_t i = s->n_slots; i-- > 0;)
		if (s->jobs[i] && s->jobs[i]->in_pass && job_finished(s->jobs[i]))
			retire(s, i);
	uint64_t dt = clock_now_ns() - pass.t_start;
	if (generated && dt) {
		double tok_s = generated / ((double)dt / 1e9);
		s->tok_s_ewma = s->tok_s_ewma ? 0.8 * s->tok_s_ewma + 0.2 * tok_s : tok_s;
	}
	struct engine_stats es;
	engine_get_stats(s->e, &es);
	pthread_mutex_lock(&s->mu);
	for (uint32_t i = 0; i < s->n_slots; i++)
		publish_locked(s, i);
	s->stats.busy = false;
	s->stats.passes++;
	s->stats.pass_ns += pass.t_end - pass.t_start;
	s->stats.drafted_total += drafted;
	s->stats.accepted_total += accepted;
	if (generated) {
		s->stats.gen_passes++;
		s->stats.gen_pass_tokens += generated;
	}
	s->stats.stall_ns += pass.stall_ns;
	s->stats.progress++;
	s->stats.recent_tok_s = s->tok_s_ewma;
	s->stats.engine = es;
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

		/* end what was cancelled or overtaken by shutdown (from the back:
		 * retire closes gaps) */
		for (uint32_t i = s->n_slots; i-- > 0;) {
			struct job *j = s->jobs[i];
			if (!j)
				continue;
			bool end = j->cancel || deadline || stopping;
			if (end && j->seq) {
				struct seq_sink sink = sink_of(j);
				seq_finish(j->seq, j->cancel ? SEQ_FINISH_CANCELLED : SEQ_FINISH_SHUTDOWN, 0,
					   j->cancel ? NULL : "the daemon is shutting down", &sink);
			} else if (end) {
				score_fail(j->score, j->cancel ? -ECANCELED : -ESHUTDOWN,
					   j->cancel ? "cancelled" : "the daemon is shutting down");
			}
			if (job_finished(j))
				retire(s, i);
		}
		if (stopping) {
			pthread_mutex_lock(&s->mu);
			break;
		}
		if (any_active(s))
			step(s);
		else if (!s->flushed) {
			/* idle: cached prefixes still only in memory go to --kv-cache-dir,
			 * so a restart (or a crash) finds them */
			engine_kv_flush(s->e);
			s->flushed = true;
		}
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
			ts.tv_sec += SCHED_IDLE_WAKE_S;
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
	for (uint32_t i = 0; s->jobs && i < s->n_slots; i++)
		job_free(s->jobs[i]);
	free(s->jobs);
	free(s->order);
	free(s->slot_busy);
	drafter_free(s->drafter);
	free(s->gen);
	free(s->give);
	free(s->running);
	free(s->running_used);
	batch_free(&s->batch);
	free(s->logits);
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
	s->n_vocab = engine_n_vocab(e);
	s->jobs = calloc(s->n_slots, sizeof *s->jobs);
	s->order = calloc(s->n_slots, sizeof *s->order);
	s->slot_busy = calloc(s->n_slots, sizeof *s->slot_busy);
	s->running = calloc(s->n_slots, sizeof *s->running);
	s->running_used = calloc(s->n_slots, sizeof *s->running_used);
	s->gen = calloc(s->n_slots, sizeof *s->gen);
	s->give = calloc(s->n_slots, sizeof *s->give);
	uint32_t rows = engine_max_logits_rows(e);
	s->logits = malloc((size_t)rows * s->n_vocab * sizeof *s->logits);
	if (!s->jobs || !s->order || !s->slot_busy || !s->running || !s->running_used || !s->logits ||
	    !s->gen || !s->give || drafter_create(e, &s->drafter) < 0 ||
	    batch_init(&s->batch, engine_max_batch(e), rows) < 0)
		goto fail;
	engine_get_stats(e, &s->stats.engine); /* before the thread owns the engine */
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
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
