/* job.h: the strata.v1 side of one completions or chat request: every choice
 * as a Generate on one stratad connection (sent together, so stratad decodes
 * them in shared passes), their Pieces and Dones as events, and stratad's
 * failures as HTTP errors. Not the JSON of the replies (openai.c). */
#ifndef STRATA_HTTP_JOB_H
#define STRATA_HTTP_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include "http/apierr.h"
#include "http/request.h"
#include "http/upstream.h"

struct job {
	const struct api_request *req; /* not owned; outlives the job */
	struct upstream up;
	size_t n_choices;
	size_t n_done;
	bool *done;          /* (n_choices) whether each choice's Done came */
	char **prompt_texts; /* (req->n_prompts) owned: each prompt as text (its own,
			      * or stratad's Detokenize of its ids) when the reply
			      * needs it (echo, logprobs' text_offset); else NULL */
};

enum job_event_kind {
	JOB_PIECE, /* resp->piece: text and tokens of choice `choice` */
	JOB_DONE,  /* resp->done: choice `choice` ended (length, EOS or a stop string) */
};

struct job_event {
	enum job_event_kind kind;
	size_t choice;
	Strata__V1__Response *resp; /* owned by the caller: job_event_release() */
};

/* Seconds a 429 or 503 reply asks the client to wait (Retry-After). */
extern unsigned job_retry_after;

/* Connect to stratad and send every choice's Generate. client_fd (or -1) is
 * the HTTP client's socket: if it hangs up, job_next fails with status 499
 * and closing the job cancels the generations. 0, or -errno with e filled
 * (503 when stratad cannot be reached). Call job_free in both cases. */
int job_start(struct job *j, const struct api_request *r, int client_fd, struct apierr *e);

/* The next event. 1 with *ev; 0 when every choice is done; -errno with e
 * filled when the request failed (a stratad Error, a generation that ended in
 * an error, shutdown or cancel, a lost connection; status 499 when the HTTP
 * client hung up). After a failure the job is finished: free it. */
int job_next(struct job *j, struct job_event *ev, struct apierr *e);

void job_event_release(struct job_event *ev);

/* Close the connection (stratad cancels what still runs) and free. */
void job_free(struct job *j);

#endif
