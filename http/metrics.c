/* metrics.c: see metrics.h. */
#include "config.h"

#include "http/metrics.h"

#include <stdatomic.h>
#include <stdbool.h>

/* The statuses strata-http answers with; anything else counts as "other". */
static const int statuses[] = { 200, 400, 401, 404, 405, 413, 429, 499, 500, 503 };
#define N_STATUS (sizeof statuses / sizeof statuses[0] + 1)

static const char *const endpoint_names[EP_COUNT] = {
	"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "other",
};

static _Atomic uint64_t requests[EP_COUNT][N_STATUS];
static _Atomic uint64_t prompt_tokens, generated_tokens, cancelled;
static _Atomic int64_t in_flight;

void metrics_request(enum metrics_endpoint ep, int status)
{
	size_t s = N_STATUS - 1;
	for (size_t i = 0; i < N_STATUS - 1; i++)
		if (statuses[i] == status)
			s = i;
	if ((unsigned)ep < EP_COUNT)
		atomic_fetch_add(&requests[ep][s], 1);
}

void metrics_tokens(uint64_t prompt, uint64_t generated)
{
	atomic_fetch_add(&prompt_tokens, prompt);
	atomic_fetch_add(&generated_tokens, generated);
}

void metrics_cancelled(void)
{
	atomic_fetch_add(&cancelled, 1);
}

void metrics_in_flight(int delta)
{
	atomic_fetch_add(&in_flight, delta);
}

static int head(struct buf *b, const char *name, const char *type, const char *help)
{
	return buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample of a metric without labels. */
static int one(struct buf *b, const char *name, const char *type, const char *help, double v)
{
	int rc = head(b, name, type, help);
	return rc < 0 ? rc : buf_addf(b, "%s %.15g\n", name, v);
}

int metrics_render(struct buf *b, const Strata__V1__StatusReply *st)
{
	int rc = head(b, "strata_http_requests_total", "counter",
		      "HTTP requests answered, by endpoint and status (499: the client hung up first).");
	for (int e = 0; rc == 0 && e < EP_COUNT; e++) {
		for (size_t s = 0; rc == 0 && s < N_STATUS; s++) {
			uint64_t v = atomic_load(&requests[e][s]);
			if (!v)
				continue;
			if (s < N_STATUS - 1)
				rc = buf_addf(b, "strata_http_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
					      endpoint_names[e], statuses[s], (unsigned long long)v);
			else
				rc = buf_addf(b, "strata_http_requests_total{endpoint=\"%s\",status=\"other\"} %llu\n",
					      endpoint_names[e], (unsigned long long)v);
		}
	}
	if (rc == 0)
		rc = one(b, "strata_http_requests_in_flight", "gauge", "HTTP requests being answered now.",
			 (double)atomic_load(&in_flight));
	if (rc == 0)
		rc = one(b, "strata_http_prompt_tokens_total", "counter",
			 "Prompt tokens of the completions and chat requests strata-http served.",
			 (double)atomic_load(&prompt_tokens));
	if (rc == 0)
		rc = one(b, "strata_http_generated_tokens_total", "counter",
			 "Tokens generated for the completions and chat requests strata-http served.",
			 (double)atomic_load(&generated_tokens));
	if (rc == 0)
		rc = one(b, "strata_http_cancelled_total", "counter",
			 "Generations cancelled because the HTTP client hung up.", (double)atomic_load(&cancelled));
	if (rc == 0)
		rc = one(b, "strata_stratad_up", "gauge", "1 when stratad answered Status for this page, else 0.",
			 st ? 1 : 0);
	if (rc < 0 || !st)
		return rc;

	const struct {
		const char *name, *type, *help;
		double v;
	} s[] = {
		{ "strata_stratad_requests_active", "gauge", "Generate requests running in stratad now.",
		  st->requests_active },
		{ "strata_stratad_requests_queued", "gauge", "Generate requests waiting for a slot in stratad (queue depth).",
		  st->requests_queued },
		{ "strata_stratad_connections", "gauge", "Client connections open to stratad.", st->connections },
		{ "strata_stratad_requests_total", "counter", "Generate requests stratad finished since it started.",
		  (double)st->requests_total },
		{ "strata_stratad_prompt_tokens_total", "counter", "Prompt tokens stratad evaluated since it started.",
		  (double)st->prompt_tokens_total },
		{ "strata_stratad_generated_tokens_total", "counter", "Tokens stratad generated since it started.",
		  (double)st->generated_tokens_total },
		{ "strata_stratad_passes_total", "counter", "Forward passes over the weights since stratad started.",
		  (double)st->passes_total },
		{ "strata_stratad_streamed_bytes_total", "counter",
		  "Bytes of weights stratad read from disk since it started (start-up excluded).",
		  (double)st->bytes_read_total },
		{ "strata_stratad_stall_seconds_total", "counter",
		  "Seconds stratad's passes waited for weights still being read from disk.", st->stall_ms_total / 1e3 },
		{ "strata_stratad_compute_seconds_total", "counter", "Seconds stratad's passes spent computing.",
		  st->compute_ms_total / 1e3 },
		{ "strata_stratad_streamed_bytes_per_pass", "gauge", "Bytes of weights read from disk per pass.",
		  (double)st->bytes_streamed_per_pass },
		{ "strata_stratad_uptime_seconds", "gauge", "Seconds since stratad started.", (double)st->uptime_ms / 1e3 },
		{ "strata_stratad_memory_weights_resident_bytes", "gauge", "Weights stratad holds in RAM.",
		  st->memory ? (double)st->memory->weights_resident_bytes : 0 },
		{ "strata_stratad_memory_kv_cache_bytes", "gauge", "stratad's KV cache.",
		  st->memory ? (double)st->memory->kv_cache_bytes : 0 },
		{ "strata_stratad_memory_rss_bytes", "gauge", "stratad's resident set size.",
		  st->memory ? (double)st->memory->rss_bytes : 0 },
	};
	for (size_t i = 0; rc == 0 && i < sizeof s / sizeof s[0]; i++)
		rc = one(b, s[i].name, s[i].type, s[i].help, s[i].v);
	return rc;
}
