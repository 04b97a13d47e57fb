/* inspect.c: the commands that look without generating: `strata tokenize`,
 * `strata detokenize` and `strata status`. One request each, one reply
 * printed. */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "client/json.h"
#include "common/parse.h"

enum { O_BOS = 256, O_SPECIAL, O_JSON };

static void usage_tokenize(FILE *f)
{
	fprintf(f,
		"Usage: %s [--socket PATH] tokenize [--bos] [--special] [TEXT]\n"
		"Print the token ids of TEXT (from stdin when absent or \"-\"), space-separated.\n"
		"\n"
		"Options:\n"
		"      --bos                add the BOS token first\n"
		"      --special            text spelling a special token becomes that token\n"
		"  -h, --help               this text\n"
		"\n"
		HELP_EXIT,
		cli_prog);
}

static void usage_detokenize(FILE *f)
{
	fprintf(f,
		"Usage: %s [--socket PATH] detokenize [--special] ID...\n"
		"Print the text of token ids.\n"
		"\n"
		"Options:\n"
		"      --special            write control tokens (BOS, EOS) as their text\n"
		"  -h, --help               this text\n"
		"\n"
		HELP_EXIT,
		cli_prog);
}

static void usage_status(FILE *f)
{
	fprintf(f,
		"Usage: %s [--socket PATH] status [--json]\n"
		"Describe the daemon, its model and its load.\n"
		"\n"
		"Options:\n"
		"      --json               the StatusReply as one JSON object (64-bit\n"
		"                           integers as strings)\n"
		"  -h, --help               this text\n"
		"\n"
		HELP_EXIT,
		cli_prog);
}

/* "40.4 B" (parameters) */
static const char *fmt_count(uint64_t c, char *buf, size_t n)
{
	if (c >= 1000000000ull)
		snprintf(buf, n, "%.1f B", (double)c / 1e9);
	else if (c >= 1000000ull)
		snprintf(buf, n, "%.1f M", (double)c / 1e6);
	else
		snprintf(buf, n, "%" PRIu64, c);
	return buf;
}

/* "2d 3h 4m 5s" */
static const char *fmt_uptime(uint64_t ms, char *buf, size_t n)
{
	uint64_t s = ms / 1000, d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;

	if (d)
		snprintf(buf, n, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "m", d, h, m);
	else if (h)
		snprintf(buf, n, "%" PRIu64 "h %" PRIu64 "m %" PRIu64 "s", h, m, s % 60);
	else if (m)
		snprintf(buf, n, "%" PRIu64 "m %" PRIu64 "s", m, s % 60);
	else
		snprintf(buf, n, "%.1fs", (double)ms / 1000);
	return buf;
}

#define TOKENIZE_SHORT ":h"
static const struct option tokenize_opts[] = {
	{ "bos", no_argument, NULL, O_BOS },
	{ "special", no_argument, NULL, O_SPECIAL },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int cmd_tokenize(int argc, char **argv)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	Strata__V1__Tokenize tok = STRATA__V1__TOKENIZE__INIT;
	Strata__V1__Response *resp;
	char *text, *owned;
	int opt, code;

	/* Without --bos no BOS is added: the command shows the text's own tokens. */
	tok.add_bos_opt_case = STRATA__V1__TOKENIZE__ADD_BOS_OPT_ADD_BOS;
	tok.add_bos = false;
	while ((opt = getopt_long(argc, argv, TOKENIZE_SHORT, tokenize_opts, NULL)) != -1) {
		switch (opt) {
		case O_BOS:
			tok.add_bos = true;
			break;
		case O_SPECIAL:
			tok.parse_special = true;
			break;
		case 'h':
			usage_tokenize(stdout);
			return EXIT_OK;
		default:
			return cli_option_error(opt, argv);
		}
	}
	code = cli_get_text(argc, argv, "text", &text, &owned);
	if (code)
		return code;
	tok.text = text;
	req.body_case = STRATA__V1__REQUEST__BODY_TOKENIZE;
	req.tokenize = &tok;
	code = cli_call(&req, STRATA__V1__RESPONSE__BODY_TOKENIZE, &resp);
	free(owned);
	if (code)
		return code;
	for (size_t i = 0; i < resp->tokenize->n_ids; i++)
		printf("%s%" PRIu32, i ? " " : "", resp->tokenize->ids[i]);
	putchar('\n');
	strata__v1__response__free_unpacked(resp, NULL);
	return cli_flush_stdout();
}

#define DETOKENIZE_SHORT ":h"
static const struct option detokenize_opts[] = {
	{ "special", no_argument, NULL, O_SPECIAL },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int cmd_detokenize(int argc, char **argv)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	Strata__V1__Detokenize det = STRATA__V1__DETOKENIZE__INIT;
	Strata__V1__Response *resp;
	uint32_t *ids;
	size_t len;
	int opt, code;

	while ((opt = getopt_long(argc, argv, DETOKENIZE_SHORT, detokenize_opts, NULL)) != -1) {
		switch (opt) {
		case O_SPECIAL:
			det.render_special = true;
			break;
		case 'h':
			usage_detokenize(stdout);
			return EXIT_OK;
		default:
			return cli_option_error(opt, argv);
		}
	}
	if (optind >= argc)
		return cli_usage_error("detokenize wants at least one token id");
	ids = calloc((size_t)(argc - optind), sizeof *ids);
	if (!ids) {
		fprintf(stderr, "%s: out of memory\n", cli_prog);
		return EXIT_LOCAL;
	}
	for (int i = optind; i < argc; i++) {
		if (parse_u32(argv[i], &ids[det.n_ids]) < 0) {
			free(ids);
			return cli_usage_error("'%s' is not a token id", argv[i]);
		}
		det.n_ids++;
	}
	det.ids = ids;
	req.body_case = STRATA__V1__REQUEST__BODY_DETOKENIZE;
	req.detokenize = &det;
	code = cli_call(&req, STRATA__V1__RESPONSE__BODY_DETOKENIZE, &resp);
	free(ids);
	if (code)
		return code;
	len = strlen(resp->detokenize->text);
	fwrite(resp->detokenize->text, 1, len, stdout);
	cli_end_line_on_tty(len ? resp->detokenize->text[len - 1] : 0);
	strata__v1__response__free_unpacked(resp, NULL);
	return cli_flush_stdout();
}

static void print_status(const Strata__V1__StatusReply *s)
{
	const Strata__V1__Model *m = s->model;
	const Strata__V1__Memory *mem = s->memory;
	char a[32], b[32], c[32], d[32], e[32], f[32], io[32];

	printf("%-13s stratad %s, protocol %" PRIu32 ", up %s\n", "daemon", s->daemon_version, s->protocol_version,
	       fmt_uptime(s->uptime_ms, a, sizeof a));
	if (m) {
		printf("%-13s %s (%s)\n", "model", *m->name ? m->name : "(unnamed)", m->architecture);
		printf("%-13s %s, %s, %s parameters\n", "file", m->path, format_size(m->file_bytes, a, sizeof a),
		       fmt_count(m->n_params, b, sizeof b));
		printf("%-13s %" PRIu32 " layers, %" PRIu32 " embd, %" PRIu32 " heads (%" PRIu32 " KV), %" PRIu32
		       " ff, %" PRIu32 " vocab\n",
		       "shape", m->n_layer, m->n_embd, m->n_head, m->n_head_kv, m->n_ff, m->n_vocab);
		printf("%-13s %" PRIu32 " tokens (trained on %" PRIu32 ")\n", "context", m->n_ctx, m->n_ctx_train);
		printf("%-13s", "weights");
		for (size_t i = 0; i < m->n_weight_types; i++)
			printf("%s %s: %" PRIu32 " tensors, %s", i ? ";" : "", m->weight_types[i]->type,
			       m->weight_types[i]->n_tensors, format_size(m->weight_types[i]->bytes, a, sizeof a));
		printf("\n");
	} else {
		printf("%-13s (none loaded)\n", "model");
	}
	cli_lower(json_enum_name(&strata__v1__io_mode__descriptor, s->io_mode), io, sizeof io);
	printf("%-13s %s, %" PRIu32 " of %" PRIu32 " layers resident, %" PRIu32 " threads\n", "io", io,
	       s->layers_resident, m ? m->n_layer : 0, s->threads);
	if (mem) {
		printf("%-13s weights %s, stream buffers %s, KV cache %s, scratch %s; budget %s, RSS %s",
		       "memory", format_size(mem->weights_resident_bytes, a, sizeof a),
		       format_size(mem->stream_buffer_bytes, b, sizeof b),
		       format_size(mem->kv_cache_bytes, c, sizeof c),
		       format_size(mem->scratch_bytes, f, sizeof f),
		       mem->budget_bytes ? format_size(mem->budget_bytes, d, sizeof d) : "none",
		       format_size(mem->rss_bytes, e, sizeof e));
		if (mem->limit_bytes)
			printf(", may use %s", format_size(mem->limit_bytes, a, sizeof a));
		printf("\n%-13s %s in use (%s for requests, the rest cached prefixes); %s on disk; "
		       "%" PRIu64 " blocks cached, %" PRIu64 " prompt tokens reused; %s read, %s written\n",
		       "KV cache", format_size(mem->kv_used_bytes, a, sizeof a),
		       format_size(mem->kv_held_bytes, b, sizeof b),
		       format_size(mem->kv_disk_bytes, c, sizeof c), mem->kv_cached_blocks,
		       mem->kv_reused_tokens, format_size(mem->kv_bytes_read, d, sizeof d),
		       format_size(mem->kv_bytes_written, e, sizeof e));
	}
	printf("%-13s %" PRIu32 " active, %" PRIu32 " queued, %" PRIu32 " connections\n", "requests",
	       s->requests_active, s->requests_queued, s->connections);
	printf("%-13s %" PRIu64 " requests, %" PRIu64 " prompt tokens, %" PRIu64 " generated tokens, %s read\n",
	       "since start", s->requests_total, s->prompt_tokens_total, s->generated_tokens_total,
	       format_size(s->bytes_read_total, a, sizeof a));
	double pass_ms = s->compute_ms_total + s->stall_ms_total;
	printf("%-13s %" PRIu64 " passes, %s streamed each; %.1f s computing, %.1f s waiting for the disk"
	       " (%.0f%%)\n", "weights read", s->passes_total, format_size(s->bytes_streamed_per_pass, a, sizeof a),
	       s->compute_ms_total / 1e3, s->stall_ms_total / 1e3,
	       pass_ms > 0 ? 100.0 * s->stall_ms_total / pass_ms : 0.0);
	char ds[32];
	cli_lower(json_enum_name(&strata__v1__draft_source__descriptor, s->draft), ds, sizeof ds);
	if (s->draft_model)
		printf("%-13s model %s (%s, %s parameters), %s resident, KV cache %s; %" PRIu32 " to %" PRIu32
		       " per pass\n", "drafts", s->draft_model->path, *s->draft_model->name ?
		       s->draft_model->name : "(unnamed)", fmt_count(s->draft_model->n_params, a, sizeof a),
		       format_size(mem ? mem->draft_weights_bytes : 0, b, sizeof b),
		       format_size(mem ? mem->draft_kv_cache_bytes : 0, c, sizeof c), s->draft_min,
		       s->draft_max);
	printf("%-13s default %s; %" PRIu64 " drafted, %" PRIu64 " accepted (%.0f%%); %.2f tokens per "
	       "pass over %" PRIu64 " generation passes; %" PRIu64 " draft-model passes, %.1f s\n",
	       "speculation", ds, s->drafted_tokens_total, s->accepted_tokens_total,
	       s->drafted_tokens_total ? 100.0 * s->accepted_tokens_total / s->drafted_tokens_total : 0.0,
	       s->tokens_per_pass, s->generation_passes_total, s->draft_passes_total,
	       s->draft_ms_total / 1e3);
	printf("%-13s %s\n", "max request", format_size(s->max_frame_bytes, a, sizeof a));
}

#define STATUS_SHORT ":h"
static const struct option status_opts[] = {
	{ "json", no_argument, NULL, O_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int cmd_status(int argc, char **argv)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	Strata__V1__Status st = STRATA__V1__STATUS__INIT;
	Strata__V1__Response *resp;
	bool json = false;
	int opt, code;

	while ((opt = getopt_long(argc, argv, STATUS_SHORT, status_opts, NULL)) != -1) {
		switch (opt) {
		case O_JSON:
			json = true;
			break;
		case 'h':
			usage_status(stdout);
			return EXIT_OK;
		default:
			return cli_option_error(opt, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("status takes no arguments");
	req.body_case = STRATA__V1__REQUEST__BODY_STATUS;
	req.status = &st;
	code = cli_call(&req, STRATA__V1__RESPONSE__BODY_STATUS, &resp);
	if (code)
		return code;
	if (json) {
		json_put_message(stdout, &resp->status->base);
		putchar('\n');
	} else {
		print_status(resp->status);
	}
	strata__v1__response__free_unpacked(resp, NULL);
	return cli_flush_stdout();
}

const struct cli_command cli_tokenize = { "tokenize", cmd_tokenize, tokenize_opts, TOKENIZE_SHORT };
const struct cli_command cli_detokenize = { "detokenize", cmd_detokenize, detokenize_opts, DETOKENIZE_SHORT };
const struct cli_command cli_status = { "status", cmd_status, status_opts, STATUS_SHORT };
