/* fuzz-http-request.c: fuzz target for what strata-http does with the body of
 * a POST /v1/completions or /v1/chat/completions: json-c's parser under our
 * flags, then every field's checks (http/request.c), then the Generates built
 * from an accepted request.
 *
 * Input: one control byte (bit 0: chat instead of completions), then the body.
 * Checks, aborting on failure: a refused body has a 400 (or 500) status, a
 * message and a type, and its error object is valid JSON; an accepted one has
 * between 1 and API_MAX_CHOICES choices, and each choice's Generate, packed
 * into a Request, unpacks again with every string valid UTF-8 (stratad would
 * refuse it as MALFORMED otherwise) and the prompt, stop strings and messages
 * the request held. */
#include "config.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "http/openai.h"
#include "http/request.h"
#include "proto/frame.h"

static void check_refusal(const struct apierr *e)
{
	char *body;
	size_t len;

	CHECK(e->status == 400 || e->status == 500);
	CHECK(e->message[0] && e->type && e->type[0]);
	CHECK(oa_error_body(e, &body, &len) == 0);
	struct json_object *o = json_tokener_parse(body);
	CHECK(o && json_object_is_type(o, json_type_object));
	json_object_put(o);
	free(body);
}

static void check_generate(const struct api_request *r, size_t c)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	Strata__V1__Generate g;
	uint8_t *frame;
	size_t flen;

	api_request_generate(r, c, &g);
	req.id = c + 1;
	req.protocol_version = STRATA_PROTOCOL_VERSION;
	req.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
	req.generate = &g;
	CHECK(frame_pack(&req.base, (size_t)1 << 30, &frame, &flen) == 0);
	Strata__V1__Request *back = strata__v1__request__unpack(NULL, flen - FRAME_HEADER_BYTES,
								 frame + FRAME_HEADER_BYTES);
	CHECK(back && back->body_case == STRATA__V1__REQUEST__BODY_GENERATE);
	CHECK(frame_check_utf8(&back->base, NULL) == 0);
	const Strata__V1__Generate *b = back->generate;
	CHECK(strcmp(b->prompt, g.prompt) == 0 && b->n_prompt_ids == g.n_prompt_ids);
	CHECK(b->n_stop == g.n_stop && b->n_messages == g.n_messages);
	for (size_t i = 0; i < g.n_stop; i++)
		CHECK(g.stop[i][0] && strcmp(b->stop[i], g.stop[i]) == 0);
	for (size_t i = 0; i < g.n_messages; i++)
		CHECK(strcmp(b->messages[i]->content, g.messages[i]->content) == 0);
	/* a prompt: text or ids for completions, messages for chat */
	if (r->kind == API_CHAT)
		CHECK(g.n_messages > 0 && !g.prompt[0]);
	else
		CHECK(g.prompt[0] || g.n_prompt_ids > 0 || r->prompts[api_request_prompt_of(r, c)].text);
	strata__v1__request__free_unpacked(back, NULL);
	free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_request r;
	struct apierr e;

	if (size < 1)
		return 0;
	enum api_kind kind = data[0] & 1 ? API_CHAT : API_COMPLETIONS;
	if (api_request_parse(kind, (const char *)data + 1, size - 1, &r, &e) < 0) {
		check_refusal(&e);
		return 0;
	}
	size_t n = api_request_choices(&r);
	CHECK(n >= 1 && n <= API_MAX_CHOICES);
	CHECK(r.logprobs >= -1 && r.logprobs <= API_MAX_TOP_LOGPROBS);
	for (size_t c = 0; c < n; c++)
		check_generate(&r, c);
	api_request_free(&r);
	return 0;
}
