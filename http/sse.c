/* sse.c: see sse.h. */
#include "config.h"

#include "http/sse.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "http/metrics.h"

/* Format the next strata.v1 event (or the end) into s->out. 0, or -errno
 * with e filled when the request failed. */
static int step(struct sse *s, struct apierr *e)
{
	struct job_event ev;
	int rc = job_next(&s->job, &ev, e);

	if (rc == 0) {
		s->finished = true;
		return oa_stream_end(s->oa, &s->out) < 0 ? -ENOMEM : 0;
	}
	if (rc < 0)
		return rc;
	if (ev.kind == JOB_PIECE)
		rc = oa_stream_piece(s->oa, ev.choice, ev.resp->piece, &s->out);
	else
		rc = oa_stream_done(s->oa, ev.choice, ev.resp->done, &s->out);
	job_event_release(&ev);
	if (rc < 0)
		return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
	return 0;
}

int sse_begin(struct sse *s, struct api_request *req, struct job *job, const char *model, struct apierr *e)
{
	memset(s, 0, sizeof *s);
	s->req = *req;
	memset(req, 0, sizeof *req);
	s->job = *job;
	s->job.req = &s->req;
	memset(job, 0, sizeof *job);
	job->up.c.fd = -1;
	s->oa = oa_new(&s->req, s->job.prompt_texts, model);
	if (!s->oa || oa_stream_start(s->oa, &s->out) < 0)
		return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
	/* the first event: a refusal (429, 400) still gets its own status */
	return step(s, e);
}

ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *s = cls;
	struct apierr e;

	(void)pos;
	while (s->off == s->out.len) {
		s->out.len = 0;
		s->off = 0;
		if (s->finished)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (step(s, &e) < 0) {
			if (e.status == 499) {
				s->hung_up = true;
				return MHD_CONTENT_READER_END_WITH_ERROR;
			}
			/* OpenAI's way: an error event, then the stream ends */
			s->out.len = 0;
			if (oa_stream_error(&e, &s->out) < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			s->finished = true;
		}
	}
	size_t n = s->out.len - s->off;
	if (n > max)
		n = max;
	memcpy(buf, s->out.p + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

void sse_free(void *cls)
{
	struct sse *s = cls;
	uint64_t p = 0, g = 0;

	if (!s)
		return;
	/* a client that left before the end: closing the connection below
	 * cancels the generations still running in stratad */
	if (s->streaming && !s->finished)
		s->hung_up = true;
	if (s->hung_up)
		metrics_cancelled();
	if (s->oa) {
		oa_usage(s->oa, &p, &g);
		metrics_tokens(p, g);
	}
	job_free(&s->job);
	oa_free(s->oa);
	api_request_free(&s->req);
	buf_free(&s->out);
	free(s);
}
