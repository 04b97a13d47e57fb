/* test-json.c: client/json.c, the JSON output of `strata --json`: string
 * escaping of UTF-8, control characters and invalid bytes, numbers that read
 * back exactly, and strata.v1 messages printed from their descriptors. */
#include "client/json.h"
#include "proto/frame.h"
#include "tests/tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *out_buf;
static size_t out_len;

static FILE *open_out(void)
{
	FILE *f = open_memstream(&out_buf, &out_len);
	if (!f)
		tap_bail("open_memstream failed");
	return f;
}

/* Close f and compare what was written with want; frees the buffer. */
static int check(FILE *f, const char *want, const char *what)
{
	int ok;
	fclose(f);
	ok = tap_is_str(out_buf, want, "%s", what);
	free(out_buf);
	out_buf = NULL;
	return ok;
}

static void test_strings(void)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
		const char *what;
	} cases[] = {
		{ "hello", 5, "\"hello\"", "plain ASCII" },
		{ "", 0, "\"\"", "empty" },
		{ "a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"", "quote and backslash escaped, slash left alone" },
		{ "\n\t\r\b\f", 5, "\"\\n\\t\\r\\b\\f\"", "the short escapes" },
		{ "\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"", "other controls and DEL as \\u00XX" },
		{ "a\0b", 3, "\"a\\u0000b\"", "an embedded NUL (length-based)" },
		{ "ni\xc3\xb1o \xe2\x80\x94 \xf0\x9f\x98\x80", 14, "\"ni\xc3\xb1o \xe2\x80\x94 \xf0\x9f\x98\x80\"",
		  "valid UTF-8 passes through" },
		{ "\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\\u2028\\u2029\"", "U+2028/U+2029 escaped for JavaScript" },
		{ "a\xff" "b", 3, "\"a\\ufffdb\"", "an invalid byte becomes \\ufffd" },
		{ "x\xe2\x82", 3, "\"x\\ufffd\\ufffd\"", "a truncated character at the end" },
		{ "\xc0\xaf", 2, "\"\\ufffd\\ufffd\"", "an overlong form" },
		{ "\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"", "a surrogate" },
		{ "\xe2\x82" "A", 3, "\"\\ufffd\\ufffdA\"", "a character cut short does not swallow the next one" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		FILE *f = open_out();
		json_put_string(f, cases[i].in, cases[i].len);
		check(f, cases[i].want, cases[i].what);
	}
}

static void test_numbers(void)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
		{ 0.0, "0" }, { 0.1, "0.1" }, { 812.25, "812.25" }, { 14.8, "14.8" },
		{ 1.0 / 3, "0.3333333333333333" }, { 1e300, "1e+300" }, { -2.5, "-2.5" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		FILE *f = open_out();
		json_put_double(f, cases[i].v);
		fclose(f);
		tap_ok(strcmp(out_buf, cases[i].want) == 0 && strtod(out_buf, NULL) == cases[i].v,
		       "double %s: shortest form that reads back (got %s)", cases[i].want, out_buf);
		free(out_buf);
	}
	{
		FILE *f = open_out();
		json_put_double(f, NAN);
		fputc(' ', f);
		json_put_double(f, INFINITY);
		check(f, "null null", "NaN and infinity (not JSON) are null");
	}
}

static void test_messages(void)
{
	Strata__V1__Done done = STRATA__V1__DONE__INIT;
	Strata__V1__Timings t = STRATA__V1__TIMINGS__INIT;
	Strata__V1__Generate gen = STRATA__V1__GENERATE__INIT;
	Strata__V1__TokenizeReply tr = STRATA__V1__TOKENIZE_REPLY__INIT;
	Strata__V1__StatusReply sr = STRATA__V1__STATUS_REPLY__INIT;
	Strata__V1__Model model = STRATA__V1__MODEL__INIT;
	Strata__V1__WeightType wt = STRATA__V1__WEIGHT_TYPE__INIT;
	Strata__V1__WeightType *wtp = &wt;
	Strata__V1__Error err = STRATA__V1__ERROR__INIT;
	uint32_t ids[] = { 1, 29871 };
	uint8_t partial[] = { 0xE2, 0x80 };
	ProtobufCBinaryData pieces[2] = { { 3, (uint8_t *)"<s>" }, { 2, partial } };
	char *stops[] = { "\n" };
	FILE *f;

	done.finish_reason = STRATA__V1__FINISH_REASON__FINISH_REASON_STOP_STRING;
	done.seed = 18446744073709551615ull;
	done.stop_string = "User:";
	done.timings = &t;
	t.prompt_tokens = 12;
	t.generated_tokens = 40;
	t.time_to_first_token_ms = 812.25;
	t.generation_tokens_per_s = 14.8;
	t.total_ms = 3500.5;
	f = open_out();
	json_put_message(f, &done.base);
	check(f,
	      "{\"finish_reason\":\"stop_string\",\"timings\":{\"prompt_tokens\":12,\"generated_tokens\":40,"
	      "\"queued_ms\":0,\"time_to_first_token_ms\":812.25,\"prompt_tokens_per_s\":0,"
	      "\"generation_tokens_per_s\":14.8,\"total_ms\":3500.5,\"bytes_read\":\"0\",\"read_mb_per_s\":0,"
	      "\"stall_ms\":0,\"compute_ms\":0,\"prompt_tokens_cached\":0},\"seed\":\"18446744073709551615\",\"stop_string\":\"User:\",\"passes\":0,"
	      "\"generation_passes\":0,\"drafted_tokens\":0,\"accepted_tokens\":0,\"tokens_per_pass\":0}",
	      "Done: enum by short name, nested Timings, uint64 as a string in full, unset Error left out");

	done.finish_reason = STRATA__V1__FINISH_REASON__FINISH_REASON_ERROR;
	done.timings = NULL;
	done.stop_string = "";
	done.error = &err;
	err.code = STRATA__V1__ERROR_CODE__ERROR_CODE_IO_ERROR;
	err.message = "read failed: \"Input/output error\"";
	f = open_out();
	fputs("{\"type\":\"done\",", f);
	json_put_fields(f, &done.base);
	fputc('}', f);
	check(f,
	      "{\"type\":\"done\",\"finish_reason\":\"error\",\"seed\":\"18446744073709551615\",\"stop_string\":\"\","
	      "\"error\":{\"code\":\"io_error\",\"message\":\"read failed: \\\"Input/output error\\\"\"},"
	      "\"passes\":0,\"generation_passes\":0,\"drafted_tokens\":0,\"accepted_tokens\":0,"
	      "\"tokens_per_pass\":0}",
	      "json_put_fields lets the caller add keys; nested Error with an escaped message");

	gen.prompt = "hi";
	gen.temperature_opt_case = STRATA__V1__GENERATE__TEMPERATURE_OPT_TEMPERATURE;
	gen.temperature = 0.7f;
	gen.n_stop = 1;
	gen.stop = stops;
	f = open_out();
	json_put_message(f, &gen.base);
	check(f,
	      "{\"prompt\":\"hi\",\"max_tokens\":0,\"temperature\":0.7,\"stop\":[\"\\n\"],\"parse_special\":false,\"ignore_eos\":false,"
	      "\"chat_template\":\"\",\"echo_logprobs\":false,\"draft\":\"unspecified\"}",
	      "Generate: a set optional float (shortest float form), unset optionals and empty lists left out, repeated string");

	tr.n_ids = 2;
	tr.ids = ids;
	tr.n_pieces = 2;
	tr.pieces = pieces;
	f = open_out();
	json_put_message(f, &tr.base);
	check(f, "{\"ids\":[1,29871],\"pieces\":[\"<s>\",\"\\ufffd\\ufffd\"]}",
	      "TokenizeReply: repeated uint32, bytes as strings (partial characters replaced)");

	sr.daemon_version = "0.1.0";
	sr.io_mode = STRATA__V1__IO_MODE__IO_MODE_STREAM;
	sr.model = &model;
	model.n_weight_types = 1;
	model.weight_types = &wtp;
	wt.type = "q8_0";
	wt.n_tensors = 337;
	wt.bytes = 42900000000ull;
	f = open_out();
	json_put_message(f, &sr.base);
	fclose(f);
	tap_ok(strstr(out_buf, "\"io_mode\":\"stream\"") &&
	       strstr(out_buf, "\"weight_types\":[{\"type\":\"q8_0\",\"n_tensors\":337,\"bytes\":\"42900000000\"}]") &&
	       !strstr(out_buf, "\"memory\""),
	       "StatusReply: enum, repeated messages, an unset sub-message left out");
	free(out_buf);

	tap_is_str(json_enum_name(&strata__v1__error_code__descriptor, STRATA__V1__ERROR_CODE__ERROR_CODE_PROMPT_TOO_LONG),
		   "PROMPT_TOO_LONG", "json_enum_name strips the enum's prefix");
	tap_ok(json_enum_name(&strata__v1__error_code__descriptor, 999) == NULL,
	       "json_enum_name: an unknown value is NULL");
	done.finish_reason = 42; /* from a newer server */
	done.error = NULL;
	f = open_out();
	json_put_message(f, &done.base);
	fclose(f);
	tap_ok(strncmp(out_buf, "{\"finish_reason\":42,", 20) == 0, "an unknown enum value is written as its number");
	free(out_buf);
}

int main(void)
{
	test_strings();
	test_numbers();
	test_messages();
	return tap_done();
}
