/* openai.h: strata.v1 replies shaped as OpenAI's objects: text_completion and
 * chat.completion, their streamed chunks (server-sent events), usage, the two
 * log-probability formats (completions' tokens/token_logprobs/top_logprobs/
 * text_offset and chat's content[]), and the error object. JSON out; it never
 * talks to stratad or to the network. */
#ifndef STRATA_HTTP_OPENAI_H
#define STRATA_HTTP_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/apierr.h"
#include "http/buf.h"
#include "http/request.h"

struct oa;

/* Start shaping the reply to r. prompt_texts (r->n_prompts entries, may be
 * NULL or hold NULLs) is each prompt as text, for echo and text_offset; model
 * is the name replies carry. Both are read until oa_free. NULL when out of
 * memory. */
struct oa *oa_new(const struct api_request *r, char *const *prompt_texts, const char *model);
void oa_free(struct oa *o);

/* ---- a whole reply (stream: false) ---- */

/* Take in a Piece or the Done of a choice. 0 or -ENOMEM. */
int oa_add_piece(struct oa *o, size_t choice, const Strata__V1__Piece *p);
int oa_add_done(struct oa *o, size_t choice, const Strata__V1__Done *d);
/* The reply's JSON body: 0 with *body (free with free()) and *len, or -ENOMEM. */
int oa_reply(struct oa *o, char **body, size_t *len);

/* ---- a stream (stream: true): each call appends whole events to out ---- */

/* The first chunk of every choice: chat's {"role":"assistant"} delta, or the
 * echoed prompt of completions. */
int oa_stream_start(struct oa *o, struct buf *out);
int oa_stream_piece(struct oa *o, size_t choice, const Strata__V1__Piece *p, struct buf *out);
/* A choice's last chunk, with its finish_reason. The usage of the whole
 * request rides on the last choice's (when stream_options.include_usage is
 * not set; with it, oa_stream_end writes OpenAI's separate usage chunk). */
int oa_stream_done(struct oa *o, size_t choice, const Strata__V1__Done *d, struct buf *out);
/* The usage chunk if asked, then "data: [DONE]". */
int oa_stream_end(struct oa *o, struct buf *out);
/* An error in the middle of a stream, as OpenAI sends it: data: {"error":{...}}. */
int oa_stream_error(const struct apierr *e, struct buf *out);

/* Tokens counted so far: prompts (each prompt once, however many choices
 * continue it) and generated (0 for completions with max_tokens 0). */
void oa_usage(const struct oa *o, uint64_t *prompt_tokens, uint64_t *completion_tokens);

/* ---- errors ---- */

/* {"error":{"message","type","param","code"}}: 0 with *body (free()) and *len. */
int oa_error_body(const struct apierr *e, char **body, size_t *len);

#endif
