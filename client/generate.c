/* generate.c: `strata generate`: the Generate request from the command line,
 * its Pieces streamed to stdout as text or JSON, and Ctrl-C turned into a
 * Cancel. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/json.h"
#include "common/parse.h"

/* Request ids on our one connection: the command's request, and a Cancel. */
#define MAIN_ID 1
#define CANCEL_ID 2

static void usage_generate(FILE *f)
{
	fprintf(f,
		"Usage: %s [--socket PATH] generate [OPTIONS] [PROMPT]\n"
		"Stream a continuation of PROMPT to stdout (PROMPT from stdin when absent or\n"
		"\"-\"). Unset sampling options take the server's defaults.\n"
		"\n"
		"Options:\n"
		HELP_GENERATE_OPTS
		"  -h, --help               this text\n"
		"\n"
		HELP_EXIT,
		cli_prog);
}

static int wake_pipe[2] = { -1, -1 };
static volatile sig_atomic_t interrupts;

static void on_sigint(int sig)
{
	int saved = errno;
	ssize_t n;

	(void)sig;
	if (++interrupts >= 2)
		_exit(EXIT_INTERRUPTED);
	n = write(wake_pipe[1], "", 1); /* a full pipe already holds a wake-up */
	(void)n;
	errno = saved;
}

static void print_summary(const Strata__V1__Done *d)
{
	const Strata__V1__Timings *t = d->timings;
	char reason[32], b[32];

	cli_lower(json_enum_name(&strata__v1__finish_reason__descriptor, d->finish_reason), reason, sizeof reason);
	if (!t) {
		fprintf(stderr, "%s: finish %s\n", cli_prog, reason);
		return;
	}
	fprintf(stderr,
		"%s: %" PRIu32 " tokens at %.2f tok/s; prompt %" PRIu32 " tokens at %.1f tok/s; "
		"first token %.0f ms; total %.2f s; seed %" PRIu64 "; finish %s",
		cli_prog, t->generated_tokens, t->generation_tokens_per_s, t->prompt_tokens, t->prompt_tokens_per_s,
		t->time_to_first_token_ms, t->total_ms / 1000, d->seed, reason);
	if (t->bytes_read)
		fprintf(stderr, "; read %s at %.0f MB/s, computed %.0f ms, stalled %.0f ms",
			cli_fmt_bytes(t->bytes_read, b, sizeof b), t->read_mb_per_s, t->compute_ms, t->stall_ms);
	fputc('\n', stderr);
}

struct gen_opts {
	bool json, verbose;
};

/* Exit code for a finished generation (message printed). */
static int finish(const Strata__V1__Done *d)
{
	if (interrupts)
		return EXIT_INTERRUPTED;
	switch (d->finish_reason) {
	case STRATA__V1__FINISH_REASON__FINISH_REASON_ERROR:
		if (d->error)
			fprintf(stderr, "%s: generation failed: %s: %s\n", cli_prog, cli_error_name(d->error->code),
				d->error->message);
		else
			fprintf(stderr, "%s: generation failed (no details from the server)\n", cli_prog);
		return EXIT_SERVER;
	case STRATA__V1__FINISH_REASON__FINISH_REASON_SHUTDOWN:
		fprintf(stderr, "%s: generation stopped: the server is shutting down\n", cli_prog);
		return EXIT_SERVER;
	case STRATA__V1__FINISH_REASON__FINISH_REASON_CANCELLED:
		fprintf(stderr, "%s: generation was cancelled by the server\n", cli_prog);
		return EXIT_SERVER;
	default:
		return EXIT_OK;
	}
}

/* Stream the replies to the Generate until its Done; returns the exit code. */
static int stream_generation(struct conn *c, const struct gen_opts *o)
{
	bool cancel_sent = false;
	char last = 0;

	for (;;) {
		Strata__V1__Response *resp;
		int code = -1;
		int rc = conn_next(c, wake_pipe[0], &resp);

		if (rc < 0)
			return cli_conn_failure(rc);
		if (rc == 0) { /* Ctrl-C */
			char drain[16];
			while (read(wake_pipe[0], drain, sizeof drain) > 0)
				;
			if (!cancel_sent) {
				Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
				Strata__V1__Cancel cancel = STRATA__V1__CANCEL__INIT;
				req.id = CANCEL_ID;
				req.body_case = STRATA__V1__REQUEST__BODY_CANCEL;
				req.cancel = &cancel;
				cancel.target_id = MAIN_ID;
				rc = conn_send(c, &req);
				if (rc < 0)
					return cli_conn_failure(rc);
				cancel_sent = true;
				if (isatty(STDERR_FILENO))
					fprintf(stderr, "\n%s: cancelling (Ctrl-C again to quit now)\n", cli_prog);
			}
			continue;
		}

		if (resp->id == CANCEL_ID && cancel_sent) {
			/* CancelReply, or NOT_FOUND when the generation had already
			 * finished: either way the Done tells the outcome. */
			if (resp->body_case != STRATA__V1__RESPONSE__BODY_CANCEL &&
			    resp->body_case != STRATA__V1__RESPONSE__BODY_ERROR)
				code = cli_unexpected(resp);
		} else if (resp->body_case == STRATA__V1__RESPONSE__BODY_ERROR &&
			   (resp->id == MAIN_ID || resp->id == 0)) {
			if (o->json) {
				fputs("{\"type\":\"error\",", stdout);
				json_put_fields(stdout, &resp->error->base);
				fputs("}\n", stdout);
				cli_flush_stdout();
			}
			cli_end_line_on_tty(last);
			code = cli_server_error(resp->error);
		} else if (resp->id != MAIN_ID) {
			code = cli_unexpected(resp);
		} else if (resp->body_case == STRATA__V1__RESPONSE__BODY_PIECE) {
			const char *text = resp->piece->text;
			size_t len = strlen(text);
			if (o->json) {
				fputs("{\"type\":\"piece\",", stdout);
				json_put_fields(stdout, &resp->piece->base);
				fputs("}\n", stdout);
			} else if (len) {
				fwrite(text, 1, len, stdout);
				last = text[len - 1];
			}
			code = cli_flush_stdout();
			if (code == 0)
				code = -1; /* keep going */
		} else if (resp->body_case == STRATA__V1__RESPONSE__BODY_DONE) {
			if (o->json) {
				fputs("{\"type\":\"done\",", stdout);
				json_put_fields(stdout, &resp->done->base);
				fputs("}\n", stdout);
			} else {
				cli_end_line_on_tty(last);
			}
			code = cli_flush_stdout();
			if (o->verbose)
				print_summary(resp->done);
			if (code == 0)
				code = finish(resp->done);
		} else {
			code = cli_unexpected(resp);
		}
		strata__v1__response__free_unpacked(resp, NULL);
		if (code >= 0)
			return code;
	}
}

/* Each command's options, at file scope: main() looks in them to say where
 * an option given before the command belongs. */
enum { O_TEMP = 256, O_TOPK, O_TOPP, O_MINP, O_PEN, O_WIN, O_SEED, O_STOP, O_BOS, O_NOBOS, O_SPECIAL, O_JSON,
       O_IGNORE_EOS };
#define GENERATE_SHORT ":n:vh"
static const struct option generate_opts[] = {
	{ "max-tokens", required_argument, NULL, 'n' },
	{ "temperature", required_argument, NULL, O_TEMP },
	{ "top-k", required_argument, NULL, O_TOPK },
	{ "top-p", required_argument, NULL, O_TOPP },
	{ "min-p", required_argument, NULL, O_MINP },
	{ "repeat-penalty", required_argument, NULL, O_PEN },
	{ "repeat-last-n", required_argument, NULL, O_WIN },
	{ "seed", required_argument, NULL, O_SEED },
	{ "stop", required_argument, NULL, O_STOP },
	{ "bos", no_argument, NULL, O_BOS },
	{ "no-bos", no_argument, NULL, O_NOBOS },
	{ "special", no_argument, NULL, O_SPECIAL },
	{ "ignore-eos", no_argument, NULL, O_IGNORE_EOS },
	{ "json", no_argument, NULL, O_JSON },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int cmd_generate(int argc, char **argv)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	Strata__V1__Generate gen = STRATA__V1__GENERATE__INIT;
	struct gen_opts o = { 0 };
	struct sigaction sa;
	char **stops = NULL, *prompt, *owned = NULL;
	struct conn c;
	uint64_t u;
	uint32_t u32;
	int opt, code, li = -1;

	stops = calloc((size_t)argc, sizeof *stops); /* --stop can appear at most argc times */
	if (!stops) {
		fprintf(stderr, "%s: out of memory\n", cli_prog);
		return EXIT_LOCAL;
	}
	while ((opt = getopt_long(argc, argv, GENERATE_SHORT, generate_opts, &li)) != -1) {
		switch (opt) {
		case 'n':
			if (parse_u32(optarg, &u32) < 0)
				goto bad_int;
			gen.max_tokens = u32;
			break;
		case O_TEMP:
			if (parse_float(optarg, &gen.temperature) < 0)
				goto bad_float;
			gen.temperature_opt_case = STRATA__V1__GENERATE__TEMPERATURE_OPT_TEMPERATURE;
			break;
		case O_TOPK:
			if (parse_u32(optarg, &u32) < 0)
				goto bad_int;
			gen.top_k = u32;
			gen.top_k_opt_case = STRATA__V1__GENERATE__TOP_K_OPT_TOP_K;
			break;
		case O_TOPP:
			if (parse_float(optarg, &gen.top_p) < 0)
				goto bad_float;
			gen.top_p_opt_case = STRATA__V1__GENERATE__TOP_P_OPT_TOP_P;
			break;
		case O_MINP:
			if (parse_float(optarg, &gen.min_p) < 0)
				goto bad_float;
			gen.min_p_opt_case = STRATA__V1__GENERATE__MIN_P_OPT_MIN_P;
			break;
		case O_PEN:
			if (parse_float(optarg, &gen.repetition_penalty) < 0)
				goto bad_float;
			gen.repetition_penalty_opt_case = STRATA__V1__GENERATE__REPETITION_PENALTY_OPT_REPETITION_PENALTY;
			break;
		case O_WIN:
			if (parse_u32(optarg, &u32) < 0)
				goto bad_int;
			gen.repetition_window = u32;
			gen.repetition_window_opt_case = STRATA__V1__GENERATE__REPETITION_WINDOW_OPT_REPETITION_WINDOW;
			break;
		case O_SEED:
			if (parse_u64(optarg, &u) < 0)
				goto bad_int;
			gen.seed = u;
			gen.seed_opt_case = STRATA__V1__GENERATE__SEED_OPT_SEED;
			break;
		case O_STOP: {
			/* C escapes, as llama-cli takes them: --stop "\n\n" */
			size_t cap = strlen(optarg) + 1;
			char *stop = malloc(cap);
			int n = stop ? parse_escapes(optarg, stop, cap) : -ENOMEM;
			if (n < 0) {
				free(stop);
				if (n == -ENOMEM) {
					fprintf(stderr, "%s: out of memory\n", cli_prog);
					code = EXIT_LOCAL;
				} else {
					code = cli_usage_error("--stop '%s': a \\x escape without hex digits, or one "
							       "that makes a NUL, a surrogate or a code point past "
							       "U+10FFFF", optarg);
				}
				goto out;
			}
			stops[gen.n_stop++] = stop;
			if (n == 0) {
				code = cli_usage_error("--stop wants a non-empty string");
				goto out;
			}
			code = cli_check_text("--stop", stop, (size_t)n);
			if (code)
				goto out;
			break;
		}
		case O_BOS:
		case O_NOBOS:
			gen.add_bos_opt_case = STRATA__V1__GENERATE__ADD_BOS_OPT_ADD_BOS;
			gen.add_bos = opt == O_BOS;
			break;
		case O_SPECIAL:
			gen.parse_special = true;
			break;
		case O_IGNORE_EOS:
			gen.ignore_eos = true;
			break;
		case O_JSON:
			o.json = true;
			break;
		case 'v':
			o.verbose = true;
			break;
		case 'h':
			usage_generate(stdout);
			code = EXIT_OK;
			goto out;
		default:
			code = cli_option_error(opt, argv);
			goto out;
		}
		li = -1; /* getopt_long sets it only for long options */
	}
	gen.stop = stops;
	code = cli_get_text(argc, argv, "prompt", &prompt, &owned);
	if (code)
		goto out;
	gen.prompt = prompt;
	req.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
	req.generate = &gen;
	req.id = MAIN_ID;

	code = cli_connect(&c);
	if (code)
		goto out;
	/* Ctrl-C from here on: the handler only wakes the loop, which sends
	 * the Cancel (a second one exits from the handler). */
	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		fprintf(stderr, "%s: pipe: %s\n", cli_prog, strerror(errno));
		code = EXIT_LOCAL;
		goto out_conn;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);

	code = cli_send(&c, &req);
	if (code == 0)
		code = stream_generation(&c, &o);
out_conn:
	conn_close(&c);
out:
	free(owned);
	for (size_t i = 0; i < gen.n_stop; i++)
		free(stops[i]);
	free(stops);
	return code;
bad_int:
	code = cli_usage_error("--%s wants a whole number in range, not '%s'",
			       li >= 0 ? generate_opts[li].name : "max-tokens", optarg);
	goto out;
bad_float:
	code = cli_usage_error("--%s wants a number, not '%s'", generate_opts[li].name, optarg);
	goto out;
}


const struct cli_command cli_generate = { "generate", cmd_generate, generate_opts, GENERATE_SHORT };
