/* job.c: see job.h. */
#include "config.h"

#include "http/job.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

unsigned job_retry_after = 1;

/* Request ids: choice i is i + 1; the Detokenize of prompt p is DETOK_ID + p. */
#define DETOK_ID ((uint64_t)1 << 32)

/* stratad's Error as the HTTP error OpenAI would give. */
static int map_error(const struct job *j, const Strata__V1__Error *err, struct apierr *e)
{
	const char *what = j->req->kind == API_CHAT ? "messages" : "prompt";

	switch (err->code) {
	case STRATA__V1__ERROR_CODE__ERROR_CODE_PROMPT_TOO_LONG:
		return apierr_set(e, 400, "invalid_request_error", "context_length_exceeded", what, "%s",
				  err->message);
	case STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT:
		return apierr_set(e, 400, "invalid_request_error", NULL, NULL, "%s", err->message);
	case STRATA__V1__ERROR_CODE__ERROR_CODE_OVERLOADED:
		apierr_set(e, 429, "rate_limit_error", "rate_limit_exceeded", NULL, "stratad is busy: %s",
			   err->message);
		e->retry_after = job_retry_after;
		return -EBUSY;
	case STRATA__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN:
		apierr_set(e, 503, "server_error", "service_unavailable", NULL, "%s", err->message);
		e->retry_after = job_retry_after;
		return -ESHUTDOWN;
	case STRATA__V1__ERROR_CODE__ERROR_CODE_FRAME_TOO_LARGE:
		return apierr_set(e, 413, "invalid_request_error", "request_too_large", NULL,
				  "the request is too large for stratad: %s", err->message);
	case STRATA__V1__ERROR_CODE__ERROR_CODE_IO_ERROR:
	case STRATA__V1__ERROR_CODE__ERROR_CODE_INTERNAL:
		return apierr_set(e, 500, "server_error", NULL, NULL, "%s", err->message);
	default:
		/* BAD_VERSION, MALFORMED, UNKNOWN_REQUEST: this stratad does
		 * not speak what strata-http sent (another version?) */
		return apierr_set(e, 500, "server_error", NULL, NULL, "stratad could not handle the request "
				  "(is it older than strata-http?): %s", err->message);
	}
}

/* A failed wait or send as an HTTP error. */
static int map_conn(const struct job *j, int rc, struct apierr *e)
{
	switch (rc) {
	case -ECONNABORTED:
		/* nginx's "client closed request": never sent, counted in metrics */
		return apierr_set(e, 499, "client_closed", NULL, NULL, "the client closed the connection");
	case -ESHUTDOWN:
		apierr_set(e, 503, "server_error", "service_unavailable", NULL, "strata-http is shutting down");
		e->retry_after = job_retry_after;
		return rc;
	case -ECONNRESET:
	case -EPIPE:
	case -EPROTO:
		apierr_set(e, 503, "server_error", "service_unavailable", NULL,
			   "stratad at %s closed the connection before answering", j->up.path);
		e->retry_after = job_retry_after;
		return rc;
	default:
		return apierr_set(e, 500, "server_error", NULL, NULL, "talking to stratad at %s: %s", j->up.path,
				  strerror(-rc));
	}
}

/* Detokenize every token-id prompt, for replies that show the prompt as text. */
static int fetch_prompt_texts(struct job *j, struct apierr *e)
{
	const struct api_request *r = j->req;
	size_t waiting = 0;
	int rc;

	for (size_t p = 0; p < r->n_prompts; p++) {
		if (r->prompts[p].text) {
			if (!(j->prompt_texts[p] = strdup(r->prompts[p].text)))
				return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
			continue;
		}
		Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
		Strata__V1__Detokenize dt = STRATA__V1__DETOKENIZE__INIT;
		dt.ids = r->prompts[p].ids;
		dt.n_ids = r->prompts[p].n_ids;
		req.id = DETOK_ID + p;
		req.body_case = STRATA__V1__REQUEST__BODY_DETOKENIZE;
		req.detokenize = &dt;
		if ((rc = upstream_send(&j->up, &req)) < 0)
			return map_conn(j, rc, e);
		waiting++;
	}
	while (waiting > 0) {
		Strata__V1__Response *resp;
		if ((rc = upstream_next(&j->up, -1, &resp)) < 0)
			return map_conn(j, rc, e);
		uint64_t p = resp->id - DETOK_ID;
		if (resp->id < DETOK_ID || p >= r->n_prompts || j->prompt_texts[p]) {
			strata__v1__response__free_unpacked(resp, NULL);
			return apierr_set(e, 500, "server_error", NULL, NULL, "stratad answered a request it "
					  "was not asked (id %" PRIu64 ")", resp->id);
		}
		if (resp->body_case == STRATA__V1__RESPONSE__BODY_ERROR) {
			rc = map_error(j, resp->error, e);
			strata__v1__response__free_unpacked(resp, NULL);
			return rc;
		}
		if (resp->body_case != STRATA__V1__RESPONSE__BODY_DETOKENIZE) {
			strata__v1__response__free_unpacked(resp, NULL);
			return apierr_set(e, 500, "server_error", NULL, NULL, "stratad answered Detokenize "
					  "with something else");
		}
		j->prompt_texts[p] = strdup(resp->detokenize->text);
		strata__v1__response__free_unpacked(resp, NULL);
		if (!j->prompt_texts[p])
			return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
		waiting--;
	}
	return 0;
}

int job_start(struct job *j, const struct api_request *r, int client_fd, struct apierr *e)
{
	int rc;

	memset(j, 0, sizeof *j);
	j->req = r;
	j->up.c.fd = -1;
	j->n_choices = api_request_choices(r);
	j->done = calloc(j->n_choices ? j->n_choices : 1, sizeof *j->done);
	j->prompt_texts = calloc(r->n_prompts ? r->n_prompts : 1, sizeof *j->prompt_texts);
	if (!j->done || !j->prompt_texts)
		return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
	rc = upstream_open(&j->up, client_fd);
	if (rc < 0) {
		apierr_set(e, 503, "server_error", "service_unavailable", NULL,
			   "cannot connect to stratad at %s: %s", upstream_where(), strerror(-rc));
		e->retry_after = job_retry_after;
		return rc;
	}
	if (r->kind == API_COMPLETIONS && (r->echo || r->logprobs >= 0) &&
	    (rc = fetch_prompt_texts(j, e)) < 0)
		return rc;
	for (size_t c = 0; c < j->n_choices; c++) {
		Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
		Strata__V1__Generate g;
		api_request_generate(r, c, &g);
		req.id = c + 1;
		req.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
		req.generate = &g;
		if ((rc = upstream_send(&j->up, &req)) < 0) {
			if (rc == -EMSGSIZE)
				return apierr_set(e, 413, "invalid_request_error", "request_too_large", NULL,
						  "the request does not fit in one strata.v1 frame");
			return map_conn(j, rc, e);
		}
	}
	return 0;
}

int job_next(struct job *j, struct job_event *ev, struct apierr *e)
{
	ev->resp = NULL;
	while (j->n_done < j->n_choices) {
		Strata__V1__Response *resp;
		int rc = upstream_next(&j->up, -1, &resp);
		if (rc < 0)
			return map_conn(j, rc, e);
		size_t c = (size_t)(resp->id - 1);
		if (resp->body_case == STRATA__V1__RESPONSE__BODY_ERROR) {
			/* id 0 is about the connection (too many clients: OVERLOADED) */
			rc = map_error(j, resp->error, e);
			strata__v1__response__free_unpacked(resp, NULL);
			return rc;
		}
		if (resp->id == 0 || c >= j->n_choices || j->done[c]) {
			strata__v1__response__free_unpacked(resp, NULL);
			return apierr_set(e, 500, "server_error", NULL, NULL,
					  "stratad answered a request it was not asked");
		}
		if (resp->body_case == STRATA__V1__RESPONSE__BODY_PIECE) {
			/* a stratad from before log-probabilities ignores the field */
			if (j->req->logprobs >= 0 && resp->piece->n_logprobs != resp->piece->n_ids) {
				strata__v1__response__free_unpacked(resp, NULL);
				return apierr_set(e, 500, "server_error", "logprobs_unsupported", "logprobs",
						  "stratad sent no log-probabilities (is it older than strata-http?)");
			}
			ev->kind = JOB_PIECE;
			ev->choice = c;
			ev->resp = resp;
			return 1;
		}
		if (resp->body_case != STRATA__V1__RESPONSE__BODY_DONE) {
			strata__v1__response__free_unpacked(resp, NULL);
			return apierr_set(e, 500, "server_error", NULL, NULL,
					  "stratad answered Generate with something else");
		}
		j->done[c] = true;
		j->n_done++;
		const Strata__V1__Done *d = resp->done;
		switch (d->finish_reason) {
		case STRATA__V1__FINISH_REASON__FINISH_REASON_LENGTH:
		case STRATA__V1__FINISH_REASON__FINISH_REASON_EOS:
		case STRATA__V1__FINISH_REASON__FINISH_REASON_STOP_STRING:
			if (j->req->echo && j->req->logprobs >= 0 && d->n_prompt_logprobs == 0) {
				strata__v1__response__free_unpacked(resp, NULL);
				return apierr_set(e, 500, "server_error", "logprobs_unsupported", "echo",
						  "stratad sent no prompt log-probabilities (is it older than "
						  "strata-http?)");
			}
			ev->kind = JOB_DONE;
			ev->choice = c;
			ev->resp = resp;
			return 1;
		case STRATA__V1__FINISH_REASON__FINISH_REASON_ERROR:
			if (d->error)
				rc = map_error(j, d->error, e);
			else
				rc = apierr_set(e, 500, "server_error", NULL, NULL, "the generation failed");
			break;
		case STRATA__V1__FINISH_REASON__FINISH_REASON_SHUTDOWN:
			rc = apierr_set(e, 503, "server_error", "service_unavailable", NULL,
					"stratad is shutting down and stopped the generation");
			e->retry_after = job_retry_after;
			break;
		default:
			rc = apierr_set(e, 500, "server_error", NULL, NULL, "stratad ended the generation "
					"(finish reason %d)", (int)d->finish_reason);
			break;
		}
		strata__v1__response__free_unpacked(resp, NULL);
		return rc;
	}
	return 0;
}

void job_event_release(struct job_event *ev)
{
	if (ev->resp)
		strata__v1__response__free_unpacked(ev->resp, NULL);
	ev->resp = NULL;
}

void job_free(struct job *j)
{
	upstream_close(&j->up);
	for (size_t p = 0; j->prompt_texts && j->req && p < j->req->n_prompts; p++)
		free(j->prompt_texts[p]);
	free(j->prompt_texts);
	free(j->done);
	j->prompt_texts = NULL;
	j->done = NULL;
}
