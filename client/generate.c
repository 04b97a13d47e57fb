/* generate.c: a Generate from the command line (the options generate and
 * chat share), its Pieces streamed to stdout as text or JSON, Ctrl-C turned
 * into a Cancel; and `strata generate` itself. chat.c builds on this. */
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

/* ---- Ctrl-C ---- */

static int wake_pipe[2] = { -1, -1 };
static volatile sig_atomic_t interrupts;
/* Set while a reply streams: a second Ctrl-C then exits at once. */
static volatile sig_atomic_t streaming;

static void on_sigint(int sig)
{
	int saved = errno;
	ssize_t n;

	(void)sig;
	if (++interrupts >= 2 && streaming)
		_exit(EXIT_INTERRUPTED);
	n = write(wake_pipe[1], "", 1); /* a full pipe already holds a wake-up */
	(void)n;
	errno = saved;
}

int gen_sigint_catch(void)
{
	struct sigaction sa;

	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		fprintf(stderr, "%s: pipe: %s\n", cli_prog, strerror(errno));
		return EXIT_LOCAL;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	/* Reads and writes resume; poll() returns EINTR all the same, and
	 * the byte in the pipe tells the loop. */
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	return 0;
}

int gen_sigint_fd(void)
{
	return wake_pipe[0];
}

void gen_sigint_clear(void)
{
	char drain[16];

	while (read(wake_pipe[0], drain, sizeof drain) > 0)
		;
	interrupts = 0;
}

/* ---- the stream ---- */

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
	if (t->prompt_tokens_cached)
		fprintf(stderr, "; %" PRIu32 " prompt tokens from the KV cache", t->prompt_tokens_cached);
	if (t->bytes_read)
		fprintf(stderr, "; read %s at %.0f MB/s, computed %.0f ms, stalled %.0f ms",
			format_size(t->bytes_read, b, sizeof b), t->read_mb_per_s, t->compute_ms, t->stall_ms);
	fprintf(stderr, "; %" PRIu32 " passes; drafted %" PRIu32 ", accepted %" PRIu32 ", %.2f tokens "
		"per pass", d->generation_passes, d->drafted_tokens, d->accepted_tokens, d->tokens_per_pass);
	fputc('\n', stderr);
}

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

/* Append s[0..n) to end->text (NUL-terminated). 0 or EXIT_LOCAL. */
static int keep_text(struct gen_end *end, const char *s, size_t n)
{
	if (end->len + n + 1 > end->cap) {
		size_t cap = end->cap ? end->cap : 256;
		char *t;
		while (cap < end->len + n + 1)
			cap *= 2;
		t = realloc(end->text, cap);
		if (!t) {
			fprintf(stderr, "%s: out of memory\n", cli_prog);
			return EXIT_LOCAL;
		}
		end->text = t;
		end->cap = cap;
	}
	memcpy(end->text + end->len, s, n);
	end->len += n;
	end->text[end->len] = 0;
	return 0;
}

void gen_end_free(struct gen_end *end)
{
	free(end->text);
	memset(end, 0, sizeof *end);
}

/* The stream of req's replies until its Done (see gen_run). */
static int stream(struct conn *c, uint64_t id, uint64_t cancel_id, const struct gen_print *o, struct gen_end *end)
{
	bool cancel_sent = false, cancel_answered = false;
	int result = -1; /* the exit code, once the request has ended */
	char last = 0;

	/* Ends when the request has, and so has the Cancel if one was sent: every
	 * request gets its one terminal reply, and one left unread would land in
	 * the next request's stream on a connection that goes on (chat). */
	while (result < 0 || (cancel_sent && !cancel_answered)) {
		Strata__V1__Response *resp;
		int code = -1;
		int rc = conn_next(c, gen_sigint_fd(), &resp);

		if (rc < 0)
			return result >= 0 ? result : cli_conn_failure(rc);
		if (rc == 0) { /* Ctrl-C */
			char drain[16];
			while (read(gen_sigint_fd(), drain, sizeof drain) > 0)
				;
			if (!cancel_sent && result < 0) {
				Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
				Strata__V1__Cancel cancel = STRATA__V1__CANCEL__INIT;
				req.id = cancel_id;
				req.body_case = STRATA__V1__REQUEST__BODY_CANCEL;
				req.cancel = &cancel;
				cancel.target_id = id;
				rc = conn_send(c, &req);
				if (rc < 0)
					return cli_conn_failure(rc);
				cancel_sent = true;
				if (isatty(STDERR_FILENO))
					fprintf(stderr, "\n%s: cancelling (Ctrl-C again to quit now)\n", cli_prog);
			}
			continue;
		}

		if (resp->id == cancel_id && cancel_sent) {
			/* CancelReply, or NOT_FOUND when the generation had already
			 * finished: either way the Done tells the outcome. */
			if (resp->body_case != STRATA__V1__RESPONSE__BODY_CANCEL &&
			    resp->body_case != STRATA__V1__RESPONSE__BODY_ERROR)
				code = cli_unexpected(resp);
			cancel_answered = true;
		} else if (resp->body_case == STRATA__V1__RESPONSE__BODY_ERROR &&
			   (resp->id == id || resp->id == 0) && result < 0) {
			if (o->json) {
				fputs("{\"type\":\"error\",", stdout);
				json_put_fields(stdout, &resp->error->base);
				fputs("}\n", stdout);
				cli_flush_stdout();
			}
			cli_end_line_on_tty(last);
			if (end)
				end->error = resp->error->code;
			code = cli_server_error(resp->error);
		} else if (resp->id != id || result >= 0) {
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
			code = end ? keep_text(end, text, len) : 0;
			if (code == 0)
				code = cli_flush_stdout();
			if (code == 0)
				code = -1; /* keep going */
		} else if (resp->body_case == STRATA__V1__RESPONSE__BODY_DONE) {
			if (o->json) {
				fputs("{\"type\":\"done\",", stdout);
				json_put_fields(stdout, &resp->done->base);
				fputs("}\n", stdout);
			} else if (o->newline && last && last != '\n') {
				fputc('\n', stdout);
			} else {
				cli_end_line_on_tty(last);
			}
			code = cli_flush_stdout();
			if (o->verbose)
				print_summary(resp->done);
			if (end)
				end->finish = resp->done->finish_reason;
			if (code == 0)
				code = finish(resp->done);
		} else {
			code = cli_unexpected(resp);
		}
		strata__v1__response__free_unpacked(resp, NULL);
		if (code >= 0) {
			/* a failure of the stream itself ends it at once */
			if (result >= 0 || code == EXIT_PROTOCOL || code == EXIT_LOCAL)
				return result >= 0 ? result : code;
			result = code;
		}
	}
	return result;
}

int gen_run(struct conn *c, Strata__V1__Request *req, uint64_t cancel_id, const struct gen_print *o,
	    struct gen_end *end)
{
	int code;

	if (end)
		memset(end, 0, sizeof *end);
	code = cli_send(c, req);
	if (code)
		return code;
	streaming = 1;
	code = stream(c, req->id, cancel_id, o, end);
	streaming = 0;
	return code;
}

/* ---- the Generate options ---- */

int gen_args_init(struct gen_args *a, int argc)
{
	memset(a, 0, sizeof *a);
	strata__v1__generate__init(&a->gen);
	a->stops = calloc((size_t)argc, sizeof *a->stops); /* --stop can appear at most argc times */
	if (!a->stops) {
		fprintf(stderr, "%s: out of memory\n", cli_prog);
		return EXIT_LOCAL;
	}
	a->gen.stop = a->stops;
	return 0;
}

void gen_args_free(struct gen_args *a)
{
	for (size_t i = 0; a->stops && i < a->gen.n_stop; i++)
		free(a->stops[i]);
	free(a->stops);
	a->stops = NULL;
	a->gen.stop = NULL;
	a->gen.n_stop = 0;
}

/* --stop STR: C escapes, as llama-cli takes them (--stop "\n\n"). */
static int take_stop(struct gen_args *a, const char *arg)
{
	size_t cap = strlen(arg) + 1;
	char *stop = malloc(cap);
	int n = stop ? parse_escapes(arg, stop, cap) : -ENOMEM;

	if (n < 0) {
		free(stop);
		if (n == -ENOMEM) {
			fprintf(stderr, "%s: out of memory\n", cli_prog);
			return EXIT_LOCAL;
		}
		return cli_usage_error("--stop '%s': a \\x escape without hex digits, or one that makes a NUL, "
				       "a surrogate or a code point past U+10FFFF", arg);
	}
	a->stops[a->gen.n_stop++] = stop;
	if (n == 0)
		return cli_usage_error("--stop wants a non-empty string");
	return cli_check_text("--stop", stop, (size_t)n);
}

int gen_args_take(struct gen_args *a, int opt, const char *name)
{
	Strata__V1__Generate *gen = &a->gen;
	uint64_t u;
	uint32_t u32;

	switch (opt) {
	case 'n':
		if (parse_u32(optarg, &u32) < 0)
			goto bad_int;
		gen->max_tokens = u32;
		return 0;
	case GEN_O_TEMP:
		if (parse_float(optarg, &gen->temperature) < 0)
			goto bad_float;
		gen->temperature_opt_case = STRATA__V1__GENERATE__TEMPERATURE_OPT_TEMPERATURE;
		return 0;
	case GEN_O_TOPK:
		if (parse_u32(optarg, &u32) < 0)
			goto bad_int;
		gen->top_k = u32;
		gen->top_k_opt_case = STRATA__V1__GENERATE__TOP_K_OPT_TOP_K;
		return 0;
	case GEN_O_TOPP:
		if (parse_float(optarg, &gen->top_p) < 0)
			goto bad_float;
		gen->top_p_opt_case = STRATA__V1__GENERATE__TOP_P_OPT_TOP_P;
		return 0;
	case GEN_O_MINP:
		if (parse_float(optarg, &gen->min_p) < 0)
			goto bad_float;
		gen->min_p_opt_case = STRATA__V1__GENERATE__MIN_P_OPT_MIN_P;
		return 0;
	case GEN_O_PEN:
		if (parse_float(optarg, &gen->repetition_penalty) < 0)
			goto bad_float;
		gen->repetition_penalty_opt_case = STRATA__V1__GENERATE__REPETITION_PENALTY_OPT_REPETITION_PENALTY;
		return 0;
	case GEN_O_WIN:
		if (parse_u32(optarg, &u32) < 0)
			goto bad_int;
		gen->repetition_window = u32;
		gen->repetition_window_opt_case = STRATA__V1__GENERATE__REPETITION_WINDOW_OPT_REPETITION_WINDOW;
		return 0;
	case GEN_O_SEED:
		if (parse_u64(optarg, &u) < 0)
			goto bad_int;
		gen->seed = u;
		gen->seed_opt_case = STRATA__V1__GENERATE__SEED_OPT_SEED;
		return 0;
	case GEN_O_STOP:
		return take_stop(a, optarg);
	case GEN_O_IGNORE_EOS:
		gen->ignore_eos = true;
		return 0;
	case GEN_O_DRAFT:
		if (strcmp(optarg, "lookup") == 0)
			gen->draft = STRATA__V1__DRAFT_SOURCE__DRAFT_SOURCE_LOOKUP;
		else if (strcmp(optarg, "model") == 0)
			gen->draft = STRATA__V1__DRAFT_SOURCE__DRAFT_SOURCE_MODEL;
		else if (strcmp(optarg, "none") == 0)
			gen->draft = STRATA__V1__DRAFT_SOURCE__DRAFT_SOURCE_NONE;
		else
			return cli_usage_error("--draft wants lookup, model or none, not '%s'", optarg);
		return 0;
	case GEN_O_DRAFT_MAX:
		if (parse_u32(optarg, &u32) < 0)
			goto bad_int;
		gen->draft_max = u32;
		gen->draft_max_opt_case = STRATA__V1__GENERATE__DRAFT_MAX_OPT_DRAFT_MAX;
		return 0;
	case GEN_O_DRAFT_MIN:
		if (parse_u32(optarg, &u32) < 0)
			goto bad_int;
		gen->draft_min = u32;
		gen->draft_min_opt_case = STRATA__V1__GENERATE__DRAFT_MIN_OPT_DRAFT_MIN;
		return 0;
	case GEN_O_JSON:
		a->print.json = true;
		return 0;
	case 'v':
		a->print.verbose = true;
		return 0;
	default:
		return GEN_NOT_MINE;
	}
bad_int:
	return cli_usage_error("--%s wants a whole number in range, not '%s'", name ? name : "max-tokens", optarg);
bad_float:
	return cli_usage_error("--%s wants a number, not '%s'", name, optarg);
}

/* ---- strata generate ---- */

enum { O_BOS = GEN_O_END, O_NOBOS, O_SPECIAL };
#define GENERATE_SHORT ":" GEN_SHORT "h"
/* At file scope: main() looks in it to say where an option given before the
 * command belongs. */
static const struct option generate_opts[] = {
	GEN_OPTIONS,
	{ "bos", no_argument, NULL, O_BOS },
	{ "no-bos", no_argument, NULL, O_NOBOS },
	{ "special", no_argument, NULL, O_SPECIAL },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int cmd_generate(int argc, char **argv)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	struct gen_args a;
	char *prompt, *owned = NULL;
	struct conn c;
	int opt, code, li = -1;

	code = gen_args_init(&a, argc);
	if (code)
		return code;
	while ((opt = getopt_long(argc, argv, GENERATE_SHORT, generate_opts, &li)) != -1) {
		switch (opt) {
		case O_BOS:
		case O_NOBOS:
			a.gen.add_bos_opt_case = STRATA__V1__GENERATE__ADD_BOS_OPT_ADD_BOS;
			a.gen.add_bos = opt == O_BOS;
			break;
		case O_SPECIAL:
			a.gen.parse_special = true;
			break;
		case 'h':
			usage_generate(stdout);
			code = EXIT_OK;
			goto out;
		default:
			code = gen_args_take(&a, opt, li >= 0 ? generate_opts[li].name : NULL);
			if (code == GEN_NOT_MINE)
				code = cli_option_error(opt, argv);
			if (code)
				goto out;
		}
		li = -1; /* getopt_long sets it only for long options */
	}
	code = cli_get_text(argc, argv, "prompt", &prompt, &owned);
	if (code)
		goto out;
	a.gen.prompt = prompt;
	req.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
	req.generate = &a.gen;
	req.id = MAIN_ID;

	code = cli_connect(&c);
	if (code)
		goto out;
	/* Ctrl-C from here on: the handler only wakes the loop, which sends
	 * the Cancel (a second one exits from the handler). */
	code = gen_sigint_catch();
	if (code == 0)
		code = gen_run(&c, &req, CANCEL_ID, &a.print, NULL);
	conn_close(&c);
out:
	free(owned);
	gen_args_free(&a);
	return code;
}

const struct cli_command cli_generate = { "generate", cmd_generate, generate_opts, GENERATE_SHORT };
