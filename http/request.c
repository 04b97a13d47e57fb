/* request.c: OpenAI request bodies -> strata.v1 Generate (see request.h).
 * Fields follow OpenAI's API reference: null means absent, unknown fields are
 * ignored (clients send many), and a field we cannot honour with a value other
 * than its default (penalties, logit_bias, tools, ...) is refused rather than
 * silently dropped. */
#include "config.h"

#include "http/request.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "proto/frame.h"

/* Deepest nesting accepted: messages -> message -> content -> part is 4. */
#define JSON_DEPTH 16

/* ---- reading fields ---- */

/* The member `name` of obj, or NULL when absent or null. */
static struct json_object *field(struct json_object *obj, const char *name)
{
	struct json_object *v = NULL;
	if (!json_object_object_get_ex(obj, name, &v))
		return NULL;
	return v; /* json-c represents null as NULL */
}

/* A string with no NUL and valid UTF-8 (json-c checks UTF-8 as it parses; an
 * escaped \u0000 would still cut a C string short). *out points into v. */
static int get_string(struct json_object *v, const char *param, const char **out, struct apierr *e)
{
	if (!json_object_is_type(v, json_type_string))
		return apierr_bad(e, param, "'%s' must be a string", param);
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);
	if (strlen(s) != n)
		return apierr_bad(e, param, "'%s' contains a NUL character", param);
	if (!utf8_valid(s, n))
		return apierr_bad(e, param, "'%s' is not valid UTF-8", param);
	*out = s;
	return 0;
}

static int get_bool(struct json_object *v, const char *param, bool *out, struct apierr *e)
{
	if (!json_object_is_type(v, json_type_boolean))
		return apierr_bad(e, param, "'%s' must be a boolean", param);
	*out = json_object_get_boolean(v);
	return 0;
}

/* A number (integer or not), finite. */
static int get_number(struct json_object *v, const char *param, double *out, struct apierr *e)
{
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return apierr_bad(e, param, "'%s' must be a number", param);
	double d = json_object_get_double(v);
	if (!isfinite(d))
		return apierr_bad(e, param, "'%s' must be a finite number", param);
	*out = d;
	return 0;
}

/* A non-negative integer up to max. 16.0 counts as 16 (as Python clients may
 * send it); 16.5 does not. */
static int get_uint(struct json_object *v, const char *param, uint64_t max, uint64_t *out, struct apierr *e)
{
	uint64_t u;
	if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);
		if (i < 0)
			return apierr_bad(e, param, "'%s' must be >= 0 (got %lld)", param, (long long)i);
		/* json-c keeps integers above INT64_MAX as uint64 */
		u = i == INT64_MAX ? json_object_get_uint64(v) : (uint64_t)i;
	} else if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);
		if (!isfinite(d) || d != floor(d))
			return apierr_bad(e, param, "'%s' must be an integer", param);
		if (d < 0)
			return apierr_bad(e, param, "'%s' must be >= 0 (got %g)", param, d);
		if (d >= 18446744073709551616.0)
			return apierr_bad(e, param, "'%s' is too large (at most %llu)", param,
					  (unsigned long long)max);
		u = (uint64_t)d;
	} else {
		return apierr_bad(e, param, "'%s' must be an integer", param);
	}
	if (u > max)
		return apierr_bad(e, param, "'%s' is too large (at most %llu, got %llu)", param,
				  (unsigned long long)max, (unsigned long long)u);
	*out = u;
	return 0;
}

static char *dup_or_fail(const char *s, struct apierr *e, int *rc)
{
	char *d = strdup(s);
	if (!d)
		*rc = apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
	return d;
}

/* ---- the fields both endpoints share ---- */

/* stop: null, a string, or an array of strings. */
static int parse_stop(struct json_object *v, struct api_request *r, struct apierr *e)
{
	struct json_object *one[1] = { v };
	struct json_object **items = one;
	size_t n = 1;
	int rc = 0;

	if (json_object_is_type(v, json_type_array)) {
		n = json_object_array_length(v);
		if (n > API_MAX_STOP)
			return apierr_bad(e, "stop", "'stop' has %zu strings; at most %d are allowed", n,
					  API_MAX_STOP);
		items = NULL;
	} else if (!json_object_is_type(v, json_type_string)) {
		return apierr_bad(e, "stop", "'stop' must be a string or an array of strings");
	}
	r->stop = calloc(n ? n : 1, sizeof *r->stop);
	if (!r->stop)
		return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = items ? items[i] : json_object_array_get_idx(v, i);
		const char *str;
		if (!s || get_string(s, "stop", &str, e) < 0)
			return s ? -EINVAL : apierr_bad(e, "stop", "'stop' must hold strings, not null");
		if (!*str)
			return apierr_bad(e, "stop", "a stop string must not be empty");
		if (!(r->stop[i] = dup_or_fail(str, e, &rc)))
			return rc;
		r->tmpl.n_stop = i + 1;
	}
	r->tmpl.stop = r->stop;
	return 0;
}

/* Fields that only have one value we can honour: refuse the others. */
static int parse_unsupported(struct json_object *body, struct apierr *e)
{
	static const char *const zero[] = { "presence_penalty", "frequency_penalty" };
	struct json_object *v;
	double d;

	for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++) {
		if ((v = field(body, zero[i])) == NULL)
			continue;
		if (get_number(v, zero[i], &d, e) < 0)
			return -EINVAL;
		if (d != 0.0)
			return apierr_bad(e, zero[i], "'%s' is not supported (only 0); use repeat_penalty", zero[i]);
	}
	if ((v = field(body, "logit_bias")) &&
	    (!json_object_is_type(v, json_type_object) || json_object_object_length(v) != 0))
		return apierr_bad(e, "logit_bias", "'logit_bias' is not supported");
	if ((v = field(body, "suffix")) &&
	    (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) != 0))
		return apierr_bad(e, "suffix", "'suffix' is not supported");
	if ((v = field(body, "tools")) &&
	    (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 0))
		return apierr_bad(e, "tools", "'tools' (function calling) is not supported");
	if ((v = field(body, "functions")) &&
	    (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 0))
		return apierr_bad(e, "functions", "'functions' (function calling) is not supported");
	if ((v = field(body, "response_format"))) {
		struct json_object *t = json_object_is_type(v, json_type_object) ? field(v, "type") : NULL;
		if (!t || !json_object_is_type(t, json_type_string) ||
		    strcmp(json_object_get_string(t), "text") != 0)
			return apierr_bad(e, "response_format", "only 'response_format' {\"type\": \"text\"} is supported");
	}
	return 0;
}

/* Sampling, stop, seed, n, stream and strata's extensions (top_k, min_p,
 * repeat_penalty, repeat_last_n, ignore_eos). */
static int parse_common(struct json_object *body, struct api_request *r, struct apierr *e)
{
	Strata__V1__Generate *g = &r->tmpl;
	struct json_object *v;
	double d;
	uint64_t u;
	bool b = false;

	if ((v = field(body, "model"))) {
		const char *s;
		int rc = 0;
		if (get_string(v, "model", &s, e) < 0)
			return -EINVAL;
		free(r->model);
		if (!(r->model = dup_or_fail(s, e, &rc)))
			return rc;
	}
	if ((v = field(body, "temperature"))) {
		if (get_number(v, "temperature", &d, e) < 0)
			return -EINVAL;
		if (d < 0 || d > 2)
			return apierr_bad(e, "temperature", "'temperature' must be between 0 and 2 (got %g)", d);
		g->temperature_opt_case = STRATA__V1__GENERATE__TEMPERATURE_OPT_TEMPERATURE;
		g->temperature = (float)d;
	}
	if ((v = field(body, "top_p"))) {
		if (get_number(v, "top_p", &d, e) < 0)
			return -EINVAL;
		if (!(d > 0 && d <= 1))
			return apierr_bad(e, "top_p", "'top_p' must be in (0, 1] (got %g)", d);
		g->top_p_opt_case = STRATA__V1__GENERATE__TOP_P_OPT_TOP_P;
		g->top_p = (float)d;
	}
	if ((v = field(body, "min_p"))) {
		if (get_number(v, "min_p", &d, e) < 0)
			return -EINVAL;
		if (d < 0 || d > 1)
			return apierr_bad(e, "min_p", "'min_p' must be in [0, 1] (got %g)", d);
		g->min_p_opt_case = STRATA__V1__GENERATE__MIN_P_OPT_MIN_P;
		g->min_p = (float)d;
	}
	if ((v = field(body, "repeat_penalty"))) {
		if (get_number(v, "repeat_penalty", &d, e) < 0)
			return -EINVAL;
		if (!(d > 0) || d > 1e6)
			return apierr_bad(e, "repeat_penalty", "'repeat_penalty' must be > 0 (got %g)", d);
		g->repetition_penalty_opt_case = STRATA__V1__GENERATE__REPETITION_PENALTY_OPT_REPETITION_PENALTY;
		g->repetition_penalty = (float)d;
	}
	if ((v = field(body, "top_k"))) {
		if (get_uint(v, "top_k", UINT32_MAX, &u, e) < 0)
			return -EINVAL;
		g->top_k_opt_case = STRATA__V1__GENERATE__TOP_K_OPT_TOP_K;
		g->top_k = (uint32_t)u;
	}
	if ((v = field(body, "repeat_last_n"))) {
		if (get_uint(v, "repeat_last_n", UINT32_MAX, &u, e) < 0)
			return -EINVAL;
		g->repetition_window_opt_case = STRATA__V1__GENERATE__REPETITION_WINDOW_OPT_REPETITION_WINDOW;
		g->repetition_window = (uint32_t)u;
	}
	if ((v = field(body, "seed"))) {
		if (get_uint(v, "seed", UINT64_MAX, &u, e) < 0)
			return -EINVAL;
		g->seed_opt_case = STRATA__V1__GENERATE__SEED_OPT_SEED;
		g->seed = u;
	}
	if ((v = field(body, "ignore_eos"))) {
		if (get_bool(v, "ignore_eos", &b, e) < 0)
			return -EINVAL;
		g->ignore_eos = b;
	}
	if ((v = field(body, "stop")) && parse_stop(v, r, e) < 0)
		return e->status >= 500 ? -ENOMEM : -EINVAL;
	if ((v = field(body, "n"))) {
		if (get_uint(v, "n", API_MAX_CHOICES, &u, e) < 0)
			return -EINVAL;
		if (u == 0)
			return apierr_bad(e, "n", "'n' must be at least 1");
		r->n = (uint32_t)u;
	}
	if ((v = field(body, "stream")) && get_bool(v, "stream", &r->stream, e) < 0)
		return -EINVAL;
	if ((v = field(body, "stream_options"))) {
		struct json_object *iu;
		if (!json_object_is_type(v, json_type_object))
			return apierr_bad(e, "stream_options", "'stream_options' must be an object");
		if (!r->stream)
			return apierr_bad(e, "stream_options", "'stream_options' is only allowed with 'stream': true");
		if ((iu = field(v, "include_usage")) &&
		    get_bool(iu, "stream_options.include_usage", &r->include_usage, e) < 0)
			return -EINVAL;
	}
	if ((v = field(body, "user"))) {
		const char *s;
		if (get_string(v, "user", &s, e) < 0)
			return -EINVAL;
	}
	return parse_unsupported(body, e);
}

/* ---- /v1/completions ---- */

/* An array of token ids (non-empty, each a uint32). */
static int parse_ids(struct json_object *arr, struct api_prompt *p, struct apierr *e)
{
	size_t n = json_object_array_length(arr);
	if (n == 0)
		return apierr_bad(e, "prompt", "a token-id prompt must not be empty");
	p->ids = malloc(n * sizeof *p->ids);
	if (!p->ids)
		return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *t = json_object_array_get_idx(arr, i);
		uint64_t u;
		if (!t || !json_object_is_type(t, json_type_int))
			return apierr_bad(e, "prompt", "'prompt' mixes token ids with other values");
		if (get_uint(t, "prompt", UINT32_MAX, &u, e) < 0)
			return -EINVAL;
		p->ids[i] = (uint32_t)u;
	}
	p->n_ids = n;
	return 0;
}

/* prompt: a string, an array of strings, an array of token ids, or an array
 * of arrays of token ids. */
static int parse_prompt(struct json_object *v, struct api_request *r, struct apierr *e)
{
	const char *s;
	int rc = 0;

	if (!v)
		return apierr_bad(e, "prompt", "'prompt' is required");
	if (json_object_is_type(v, json_type_string)) {
		if (get_string(v, "prompt", &s, e) < 0)
			return -EINVAL;
		if (!(r->prompts = calloc(1, sizeof *r->prompts)))
			return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
		r->n_prompts = 1;
		r->prompts[0].text = dup_or_fail(s, e, &rc);
		return rc;
	}
	if (!json_object_is_type(v, json_type_array))
		return apierr_bad(e, "prompt", "'prompt' must be a string, an array of strings or of token ids");
	size_t n = json_object_array_length(v);
	if (n == 0)
		return apierr_bad(e, "prompt", "'prompt' must not be an empty array");
	struct json_object *first = json_object_array_get_idx(v, 0);
	if (first && json_object_is_type(first, json_type_int)) {
		if (!(r->prompts = calloc(1, sizeof *r->prompts)))
			return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
		r->n_prompts = 1;
		return parse_ids(v, &r->prompts[0], e);
	}
	if (n > API_MAX_CHOICES)
		return apierr_bad(e, "prompt", "%zu prompts given; at most %d are allowed", n, API_MAX_CHOICES);
	if (!(r->prompts = calloc(n, sizeof *r->prompts)))
		return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
	r->n_prompts = n;
	for (size_t i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(v, i);
		if (p && json_object_is_type(p, json_type_string)) {
			if (get_string(p, "prompt", &s, e) < 0)
				return -EINVAL;
			if (!(r->prompts[i].text = dup_or_fail(s, e, &rc)))
				return rc;
		} else if (p && json_object_is_type(p, json_type_array)) {
			if (parse_ids(p, &r->prompts[i], e) < 0)
				return e->status >= 500 ? -ENOMEM : -EINVAL;
		} else {
			return apierr_bad(e, "prompt", "each prompt must be a string or an array of token ids");
		}
	}
	return 0;
}

static int parse_completions(struct json_object *body, struct api_request *r, struct apierr *e)
{
	struct json_object *v;
	uint64_t u;

	if (parse_prompt(field(body, "prompt"), r, e) < 0)
		return e->status >= 500 ? -ENOMEM : -EINVAL;
	r->max_tokens = API_COMPLETIONS_DEFAULT_MAX_TOKENS;
	if ((v = field(body, "max_tokens"))) {
		if (get_uint(v, "max_tokens", UINT32_MAX - 1, &u, e) < 0)
			return -EINVAL;
		r->max_tokens = (uint32_t)u;
	}
	if ((v = field(body, "logprobs"))) {
		/* an integer here (chat's is a boolean) */
		if (json_object_is_type(v, json_type_boolean))
			return apierr_bad(e, "logprobs", "'logprobs' of /v1/completions is an integer (0-%d)",
					  API_MAX_TOP_LOGPROBS);
		if (get_uint(v, "logprobs", API_MAX_TOP_LOGPROBS, &u, e) < 0)
			return -EINVAL;
		r->logprobs = (int)u;
	}
	if ((v = field(body, "echo")) && get_bool(v, "echo", &r->echo, e) < 0)
		return -EINVAL;
	if (r->stream && r->echo && r->logprobs >= 0)
		return apierr_bad(e, "echo", "'echo' with 'logprobs' is not supported in a stream "
				  "(the prompt's log-probabilities come at the end); leave out 'stream'");
	if ((v = field(body, "best_of"))) {
		if (get_uint(v, "best_of", API_MAX_CHOICES, &u, e) < 0)
			return -EINVAL;
		if (u != r->n)
			return apierr_bad(e, "best_of", "'best_of' other than 'n' is not supported");
	}
	return 0;
}

/* ---- /v1/chat/completions ---- */

/* content: a string, null, or an array of {"type":"text","text":...} parts
 * (joined with nothing between them, as OpenAI does). Returns an owned copy. */
static int parse_content(struct json_object *v, char **out, struct apierr *e)
{
	const char *s;
	int rc = 0;

	if (!v) {
		*out = dup_or_fail("", e, &rc);
		return rc;
	}
	if (json_object_is_type(v, json_type_string)) {
		if (get_string(v, "messages.content", &s, e) < 0)
			return -EINVAL;
		*out = dup_or_fail(s, e, &rc);
		return rc;
	}
	if (!json_object_is_type(v, json_type_array))
		return apierr_bad(e, "messages.content", "a message's 'content' must be a string or an array of parts");
	size_t n = json_object_array_length(v), total = 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *part = json_object_array_get_idx(v, i), *t, *text;
		if (!part || !json_object_is_type(part, json_type_object) || !(t = field(part, "type")) ||
		    !json_object_is_type(t, json_type_string))
			return apierr_bad(e, "messages.content", "each content part must be an object with a 'type'");
		if (strcmp(json_object_get_string(t), "text") != 0)
			return apierr_bad(e, "messages.content", "content parts of type '%s' are not supported "
					  "(only 'text')", json_object_get_string(t));
		if (!(text = field(part, "text")) || get_string(text, "messages.content.text", &s, e) < 0)
			return text ? -EINVAL : apierr_bad(e, "messages.content", "a text part needs 'text'");
		total += strlen(s);
	}
	char *buf = malloc(total + 1), *p = buf;
	if (!buf)
		return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *txt = json_object_get_string(field(json_object_array_get_idx(v, i), "text"));
		size_t k = strlen(txt);
		memcpy(p, txt, k);
		p += k;
	}
	*p = '\0';
	*out = buf;
	return 0;
}

static int parse_messages(struct json_object *v, struct api_request *r, struct apierr *e)
{
	static const char *const roles[] = { "system", "user", "assistant", "developer" };
	int rc = 0;

	if (!v)
		return apierr_bad(e, "messages", "'messages' is required");
	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0)
		return apierr_bad(e, "messages", "'messages' must be a non-empty array");
	size_t n = json_object_array_length(v);
	r->msg_store = calloc(n, sizeof *r->msg_store);
	r->msg_ptrs = calloc(n, sizeof *r->msg_ptrs);
	if (!r->msg_store || !r->msg_ptrs)
		return apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(v, i), *role, *tc;
		const char *rs;
		size_t k;

		if (!m || !json_object_is_type(m, json_type_object))
			return apierr_bad(e, "messages", "each message must be an object");
		if (!(role = field(m, "role")) || get_string(role, "messages.role", &rs, e) < 0)
			return role ? -EINVAL : apierr_bad(e, "messages.role", "message %zu has no 'role'", i);
		for (k = 0; k < sizeof roles / sizeof roles[0]; k++)
			if (strcmp(rs, roles[k]) == 0)
				break;
		if (k == sizeof roles / sizeof roles[0])
			return apierr_bad(e, "messages.role", "role '%s' is not supported (system, user, "
					  "assistant, developer)", rs);
		if ((tc = field(m, "tool_calls")) &&
		    (!json_object_is_type(tc, json_type_array) || json_object_array_length(tc) != 0))
			return apierr_bad(e, "messages.tool_calls", "tool calls are not supported");
		Strata__V1__ChatMessage *cm = &r->msg_store[i];
		strata__v1__chat_message__init(cm);
		cm->role = cm->content = NULL; /* ours to free (init points them at a static "") */
		r->msg_ptrs[i] = cm;
		r->tmpl.n_messages = i + 1;
		/* OpenAI's "developer" is the newer name of "system". */
		cm->role = dup_or_fail(k == 3 ? "system" : rs, e, &rc);
		if (!cm->role)
			return rc;
		if (parse_content(field(m, "content"), &cm->content, e) < 0)
			return e->status >= 500 ? -ENOMEM : -EINVAL;
	}
	r->tmpl.messages = r->msg_ptrs;
	return 0;
}

static int parse_chat(struct json_object *body, struct api_request *r, struct apierr *e)
{
	struct json_object *v, *mt;
	uint64_t u;
	bool lp = false;
	const char *s;
	int rc = 0;

	if (parse_messages(field(body, "messages"), r, e) < 0)
		return e->status >= 500 ? -ENOMEM : -EINVAL;
	r->n_prompts = 1;
	r->max_tokens = 0; /* the server's limit: up to the context */
	/* max_completion_tokens replaces max_tokens; either may come */
	mt = field(body, "max_completion_tokens");
	if ((v = mt ? mt : field(body, "max_tokens"))) {
		const char *name = mt ? "max_completion_tokens" : "max_tokens";
		if (get_uint(v, name, UINT32_MAX - 1, &u, e) < 0)
			return -EINVAL;
		if (u == 0)
			return apierr_bad(e, name, "'%s' must be at least 1", name);
		r->max_tokens = (uint32_t)u;
	}
	if ((v = field(body, "logprobs"))) {
		if (get_bool(v, "logprobs", &lp, e) < 0)
			return -EINVAL;
		if (lp)
			r->logprobs = 0;
	}
	if ((v = field(body, "top_logprobs"))) {
		if (get_uint(v, "top_logprobs", API_MAX_TOP_LOGPROBS, &u, e) < 0)
			return -EINVAL;
		if (!lp)
			return apierr_bad(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
		r->logprobs = (int)u;
	}
	if ((v = field(body, "chat_template"))) {
		if (get_string(v, "chat_template", &s, e) < 0)
			return -EINVAL;
		free(r->chat_template);
		if (!(r->chat_template = dup_or_fail(s, e, &rc)))
			return rc;
		r->tmpl.chat_template = r->chat_template;
	}
	return 0;
}

/* ---- the request ---- */

int api_request_parse(enum api_kind kind, const char *body, size_t len, struct api_request *r,
		      struct apierr *e)
{
	struct json_tokener *tok;
	struct json_object *root = NULL;
	int rc;

	memset(r, 0, sizeof *r);
	r->kind = kind;
	r->logprobs = -1;
	r->n = 1;
	strata__v1__generate__init(&r->tmpl);
	if (!(r->model = strdup("")) || !(r->chat_template = strdup("")))
		goto nomem;
	r->tmpl.chat_template = r->chat_template;
	if (len > INT32_MAX) {
		rc = apierr_bad(e, NULL, "the request body is too large");
		goto fail;
	}
	if (!(tok = json_tokener_new_ex(JSON_DEPTH)))
		goto nomem;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, body, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (jerr == json_tokener_continue) {
		rc = apierr_bad(e, NULL, "the request body is not valid JSON: it ends too early");
		goto fail;
	}
	if (jerr != json_tokener_success || !root) {
		rc = apierr_bad(e, NULL, "the request body is not valid JSON: %s at byte %zu",
				jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "null", used);
		goto fail;
	}
	for (; used < len; used++) {
		if (!strchr(" \t\r\n", body[used]) || !body[used]) {
			rc = apierr_bad(e, NULL, "the request body is not valid JSON: text after the object "
					"at byte %zu", used);
			goto fail;
		}
	}
	if (!json_object_is_type(root, json_type_object)) {
		rc = apierr_bad(e, NULL, "the request body must be a JSON object");
		goto fail;
	}
	rc = parse_common(root, r, e);
	if (rc == 0)
		rc = kind == API_CHAT ? parse_chat(root, r, e) : parse_completions(root, r, e);
	if (rc == 0 && api_request_choices(r) > API_MAX_CHOICES)
		rc = apierr_bad(e, "n", "%zu prompts x n %u is more than %d choices", r->n_prompts, r->n,
				API_MAX_CHOICES);
	if (rc < 0)
		goto fail;
	json_object_put(root);
	return 0;

nomem:
	rc = apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
fail:
	json_object_put(root);
	api_request_free(r);
	return rc;
}

void api_request_free(struct api_request *r)
{
	for (size_t i = 0; r->prompts && i < r->n_prompts; i++) {
		free(r->prompts[i].text);
		free(r->prompts[i].ids);
	}
	free(r->prompts);
	for (size_t i = 0; r->stop && i < r->tmpl.n_stop; i++)
		free(r->stop[i]);
	free(r->stop);
	for (size_t i = 0; r->msg_store && i < r->tmpl.n_messages; i++) {
		free(r->msg_store[i].role);
		free(r->msg_store[i].content);
	}
	free(r->msg_store);
	free(r->msg_ptrs);
	free(r->chat_template);
	free(r->model);
	memset(r, 0, sizeof *r);
}

size_t api_request_choices(const struct api_request *r)
{
	return r->n_prompts * r->n;
}

size_t api_request_prompt_of(const struct api_request *r, size_t choice)
{
	return choice / r->n;
}

void api_request_generate(const struct api_request *r, size_t choice, Strata__V1__Generate *g)
{
	*g = r->tmpl;
	g->prompt = (char *)"";
	if (r->kind == API_COMPLETIONS) {
		const struct api_prompt *p = &r->prompts[api_request_prompt_of(r, choice)];
		if (p->text) {
			g->prompt = p->text;
			/* as llama.cpp's server and Hugging Face tokenizers do: text
			 * that spells a special token is that token */
			g->parse_special = true;
		} else {
			g->prompt_ids = p->ids;
			g->n_prompt_ids = p->n_ids;
		}
		/* max_tokens 0 (the prompt's log-probabilities only): one token
		 * is generated, from the logits the prompt's pass makes anyway,
		 * and dropped (0 means "the server's limit" to stratad). */
		g->max_tokens = r->max_tokens ? r->max_tokens : 1;
		g->echo_logprobs = r->echo && r->logprobs >= 0;
	} else {
		g->max_tokens = r->max_tokens;
	}
	if (r->logprobs >= 0) {
		g->top_logprobs_opt_case = STRATA__V1__GENERATE__TOP_LOGPROBS_OPT_TOP_LOGPROBS;
		g->top_logprobs = (uint32_t)r->logprobs;
	}
	if (FRAME_HAS(g, seed))
		g->seed += choice % r->n;
}
