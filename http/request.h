/* request.h: the body of POST /v1/completions or /v1/chat/completions, parsed
 * and checked field by field against OpenAI's definitions, and turned into the
 * strata.v1 Generate of each choice. Untrusted bytes in, a validated request
 * or an apierr naming the field out. Not the HTTP layer, not the replies. */
#ifndef STRATA_HTTP_REQUEST_H
#define STRATA_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/apierr.h"
#include "proto/strata.pb-c.h"

enum api_kind {
	API_COMPLETIONS, /* POST /v1/completions */
	API_CHAT,        /* POST /v1/chat/completions */
};

/* Most choices one request may ask for (prompts x n): each is a Generate. */
#define API_MAX_CHOICES 128
/* Most stop strings (OpenAI allows 4; stratad checks its own limit too). */
#define API_MAX_STOP 16
/* Most alternatives per token (stratad's limit for Generate.top_logprobs). */
#define API_MAX_TOP_LOGPROBS 20
/* OpenAI's default max_tokens for /v1/completions. */
#define API_COMPLETIONS_DEFAULT_MAX_TOKENS 16

/* One prompt of a completions request: text or token ids, never both. */
struct api_prompt {
	char *text;    /* NUL-terminated UTF-8, or NULL */
	uint32_t *ids; /* (n_ids) token ids, or NULL */
	size_t n_ids;
};

struct api_request {
	enum api_kind kind;
	char *model;          /* the "model" field as given; "" when absent */
	bool stream;          /* server-sent events */
	bool include_usage;   /* stream_options.include_usage: a last chunk with usage only */
	bool echo;            /* completions: the prompt comes back before the completion */
	int logprobs;         /* alternatives per token (0..20), or -1: no log-probabilities */
	uint32_t max_tokens;  /* tokens to generate; 0 means none (completions) or the
	                       * server's limit (chat, when not given) */
	uint32_t n;           /* choices per prompt */
	size_t n_prompts;     /* completions: >= 1; chat: 1 (the conversation) */
	struct api_prompt *prompts; /* (n_prompts); chat: NULL */
	/* The Generate every choice starts from: sampling fields, stop strings,
	 * messages. Its pointers point into this struct's own storage. */
	Strata__V1__Generate tmpl;
	char **stop;          /* (tmpl.n_stop) owned strings */
	Strata__V1__ChatMessage *msg_store; /* (tmpl.n_messages) owned, with their strings */
	Strata__V1__ChatMessage **msg_ptrs; /* (tmpl.n_messages) into msg_store */
	char *chat_template;  /* owned; "" when not asked */
};

/* Parse and check `len` bytes of JSON (not NUL-terminated) as a request of
 * `kind`. Returns 0 with *r filled (free it with api_request_free), or -EINVAL
 * (-ENOMEM) with e filled: status 400 and the offending field in e->param
 * (500 when out of memory). On failure *r holds nothing to free. */
int api_request_parse(enum api_kind kind, const char *body, size_t len, struct api_request *r,
		      struct apierr *e);

/* Free what r holds; r may be zeroed or already freed. */
void api_request_free(struct api_request *r);

/* The number of choices: n_prompts x n. */
size_t api_request_choices(const struct api_request *r);

/* Fill *g, the Generate of choice `choice` (0 .. api_request_choices()-1):
 * the template plus its prompt, its seed (seed + index within its prompt, so
 * n > 1 samples differ) and what echo and logprobs need. *g points into r and
 * must not outlive it; nothing is allocated. */
void api_request_generate(const struct api_request *r, size_t choice, Strata__V1__Generate *g);

/* The index of the prompt that choice `choice` continues. */
size_t api_request_prompt_of(const struct api_request *r, size_t choice);

#endif
