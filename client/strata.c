/* strata.c: the `strata` command. Turns argv into one strata.v1 request, sends
 * it to stratad and prints the replies as text, JSON or a table. A thin
 * client: no engine code; everything it knows about the model comes from
 * the daemon's replies. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/conn.h"
#include "client/json.h"
#include "common/parse.h"
#include "common/utf8.h"
#include "proto/frame.h"

/* Exit codes: documented in --help and the man page; scripts rely on them. */
enum {
	EXIT_OK = 0,
	EXIT_LOCAL = 1,     /* reading input, writing output, out of memory */
	EXIT_USAGE = 2,     /* bad command line or input that is not UTF-8 */
	EXIT_CONNECT = 3,   /* cannot connect, or the connection was lost */
	EXIT_PROTOCOL = 4,  /* the server's bytes broke the protocol, or a BAD_VERSION/MALFORMED/FRAME_TOO_LARGE reply */
	EXIT_SERVER = 5,    /* an Error reply, or a generation ended by an error or a shutdown */
	EXIT_INTERRUPTED = 130, /* Ctrl-C: 128 + SIGINT, as shells report it */
};

/* Request ids on our one connection: the command's request, and a Cancel. */
#define MAIN_ID 1
#define CANCEL_ID 2

static const char *prog = "strata";

/* ---- messages and usage ---- */

/* The parts of the help, so each command's --help prints its own. */
#define HELP_GENERATE_OPTS \
	"  -n, --max-tokens N       generate at most N tokens\n" \
	"      --temperature T      sampling temperature; 0 is greedy\n" \
	"      --top-k K            keep the K most likely tokens; 0 keeps all\n" \
	"      --top-p P            nucleus sampling threshold in (0, 1]\n" \
	"      --min-p P            drop tokens below P times the most likely one\n" \
	"      --repeat-penalty R   penalize recently seen tokens; 1 is off\n" \
	"      --repeat-last-n N    how many recent tokens the penalty looks at\n" \
	"      --seed S             sampler seed (the one used is in --verbose/--json)\n" \
	"      --stop STR           stop when the text contains STR (repeatable); C escapes\n" \
	"                           such as \\n, \\t, \\\\ and \\uXXXX are understood\n" \
	"      --bos, --no-bos      add / do not add the BOS token (default: the model's)\n" \
	"      --special            text spelling a special token becomes that token\n" \
	"      --ignore-eos         go on after an end-of-generation token (up to -n)\n" \
	"      --json               one JSON object per line for each piece, then a\n" \
	"                           final {\"type\":\"done\",...} with the timings\n" \
	"                           (64-bit integers such as the seed as strings)\n" \
	"  -v, --verbose            a summary line on stderr: tokens, speed, finish reason\n" \
	"Ctrl-C cancels the generation, waits for the server to confirm and exits\n" \
	"130; a second Ctrl-C exits at once.\n"
#define HELP_EXIT \
	"Exit status: 0 success; 1 local failure (input, output, memory); 2 usage\n" \
	"error or input that is not UTF-8; 3 cannot connect or connection lost;\n" \
	"4 protocol error; 5 server error (an error reply, or generation ended by\n" \
	"an error or a shutdown); 130 interrupted.\n"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [--socket PATH] COMMAND [OPTIONS] [ARGS]\n"
		"Talk to stratad, the strata daemon.\n"
		"\n"
		"Commands (each takes --help for its own usage):\n"
		"  generate [OPTIONS] [PROMPT]  stream a continuation of PROMPT to stdout\n"
		"                               (PROMPT from stdin when absent or \"-\")\n"
		"  tokenize [--bos] [--special] [TEXT]\n"
		"                               print the token ids of TEXT, space-separated\n"
		"  detokenize [--special] ID... print the text of token ids\n"
		"  status [--json]              describe the daemon, its model and its load\n"
		"\n"
		"Generate options (unset sampling options take the server's defaults):\n"
		HELP_GENERATE_OPTS
		"\n"
		"Tokenize/detokenize options:\n"
		"      --bos                tokenize: add the BOS token first\n"
		"      --special            tokenize: parse special tokens in TEXT;\n"
		"                           detokenize: write control tokens as their text\n"
		"\n"
		"Global options (before the command):\n"
		"  -s, --socket PATH        stratad's socket (default: $STRATA_SOCKET, else\n"
		"                           $XDG_RUNTIME_DIR/strata.sock, then\n"
		"                           /run/strata/strata.sock)\n"
		"  -h, --help               this text\n"
		"  -V, --version            the client's version and protocol version\n"
		"\n"
		HELP_EXIT,
		prog);
}

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
		prog);
}

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
		prog);
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
		prog);
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
		prog);
}

/* The command being run, for "Try 'strata CMD --help'" (NULL: none yet). */
static const char *command;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (command)
		fprintf(stderr, "\nTry '%s %s --help'.\n", prog, command);
	else
		fprintf(stderr, "\nTry '%s --help'.\n", prog);
	return EXIT_USAGE;
}

/* ---- argument parsing ---- */

/* getopt_long (with opterr = 0 and a ':' first in the option string) returned
 * '?' or ':' for argv[optind - 1]: the option as the user spelled it, without
 * a "=value", into buf. */
static const char *bad_option(char **argv, char *buf, size_t n)
{
	const char *arg = argv[optind - 1];

	if (optopt && !(arg[0] == '-' && arg[1] == '-'))
		snprintf(buf, n, "-%c", optopt); /* a short option, perhaps in a group like -vx */
	else
		snprintf(buf, n, "%.*s", (int)strcspn(arg, "="), arg);
	return buf;
}

/* The message for an option error of a command's getopt_long loop. */
static int option_error(int opt, char **argv)
{
	char name[64];

	bad_option(argv, name, sizeof name);
	if (opt == ':')
		return usage_error("option '%s' needs a value", name);
	return usage_error("unknown option '%s' for %s", name, command ? command : "strata");
}

/* The first invalid byte of s[0..n) as an offset, or -1 when it is all UTF-8. */
static long utf8_bad_offset(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k;
		if (utf8_decode(s + i, n - i, &cp, &k) != UTF8_OK)
			return (long)i;
		i += k;
	}
	return -1;
}

/* Check that text given by the user can travel in a proto3 string. */
static int check_text(const char *what, const char *s, size_t n)
{
	long bad = utf8_bad_offset(s, n);

	if (memchr(s, 0, n))
		return usage_error("%s contains a NUL byte", what);
	if (bad >= 0)
		return usage_error("%s is not valid UTF-8 (byte %ld); convert it first, e.g. with iconv", what, bad);
	return 0;
}

/* All of stdin, NUL-terminated, at most FRAME_RESPONSE_CAP bytes. */
static int read_stdin(char **out, size_t *out_len)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		goto nomem;
	for (;;) {
		size_t n;
		if (cap - len < 2) {
			char *nb;
			if (cap >= FRAME_RESPONSE_CAP) {
				free(buf);
				return usage_error("the input is larger than %u bytes", FRAME_RESPONSE_CAP);
			}
			nb = realloc(buf, cap * 2);
			if (!nb)
				goto nomem;
			buf = nb;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - len - 1, stdin);
		len += n;
		if (n == 0) {
			if (ferror(stdin)) {
				fprintf(stderr, "%s: reading stdin: %s\n", prog, strerror(errno));
				free(buf);
				return EXIT_LOCAL;
			}
			break;
		}
	}
	buf[len] = 0;
	*out = buf;
	*out_len = len;
	return 0;
nomem:
	free(buf);
	fprintf(stderr, "%s: out of memory reading stdin\n", prog);
	return EXIT_LOCAL;
}

/* TEXT from argv[optind] ("-" or absent: stdin); *owned is what to free. */
static int get_text(int argc, char **argv, const char *what, char **text, char **owned)
{
	size_t len = 0;
	int rc;

	*owned = NULL;
	if (argc - optind > 1)
		return usage_error("one %s only (quote it); got %d arguments", what, argc - optind);
	if (optind < argc && strcmp(argv[optind], "-") != 0) {
		*text = argv[optind];
		len = strlen(*text);
	} else {
		rc = read_stdin(owned, &len);
		if (rc)
			return rc;
		*text = *owned;
	}
	rc = check_text(what, *text, len);
	if (rc) {
		free(*owned);
		*owned = NULL;
	}
	return rc;
}

/* ---- the connection ---- */

static char socket_paths[2][4096]; /* candidates, in order */
static int n_socket_paths;
static const char *socket_used; /* the one we connected to (for messages) */

static void choose_sockets(const char *opt)
{
	const char *env = getenv("STRATA_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	n_socket_paths = 0;
	if (opt || (env && *env)) {
		snprintf(socket_paths[n_socket_paths++], sizeof socket_paths[0], "%s", opt ? opt : env);
		return;
	}
	/* Same order as stratad picks its default; the system path follows as a
	 * fallback so a user session finds a system-wide daemon too. */
	if (xdg && *xdg)
		snprintf(socket_paths[n_socket_paths++], sizeof socket_paths[0], "%s/strata.sock", xdg);
	snprintf(socket_paths[n_socket_paths++], sizeof socket_paths[0], "%s", "/run/strata/strata.sock");
}

static int open_conn(struct conn *c)
{
	int rc = -ENOENT;

	for (int i = 0; i < n_socket_paths; i++) {
		rc = conn_open(c, socket_paths[i]);
		if (rc == 0) {
			socket_used = socket_paths[i];
			return 0;
		}
		/* Only "nobody is there" moves on to the next candidate. */
		if (rc != -ENOENT && rc != -ECONNREFUSED)
			break;
	}
	if (n_socket_paths > 1)
		fprintf(stderr, "%s: cannot connect to %s or %s: %s (is stratad running? see --socket)\n", prog,
			socket_paths[0], socket_paths[1], strerror(-rc));
	else
		fprintf(stderr, "%s: cannot connect to %s: %s (is stratad running? see --socket)\n", prog,
			socket_paths[0], strerror(-rc));
	return EXIT_CONNECT;
}

/* Exit code and message for a failed conn_next/conn_send. */
static int conn_failure(int rc)
{
	switch (rc) {
	case -ECONNRESET:
	case -EPIPE:
		fprintf(stderr, "%s: %s closed the connection before answering\n", prog, socket_used);
		return EXIT_CONNECT;
	case -EPROTO:
		fprintf(stderr, "%s: the connection to %s broke in the middle of a reply\n", prog, socket_used);
		return EXIT_CONNECT;
	case -EMSGSIZE:
		fprintf(stderr, "%s: protocol error: a reply from %s is larger than %u bytes\n", prog, socket_used,
			FRAME_RESPONSE_CAP);
		return EXIT_PROTOCOL;
	case -EBADMSG:
		fprintf(stderr, "%s: protocol error: %s sent bytes that are not a strata.v1 Response (is it stratad?)\n",
			prog, socket_used);
		return EXIT_PROTOCOL;
	case -EILSEQ:
		fprintf(stderr, "%s: protocol error: %s sent text that is not UTF-8\n", prog, socket_used);
		return EXIT_PROTOCOL;
	default:
		fprintf(stderr, "%s: talking to %s: %s\n", prog, socket_used, strerror(-rc));
		return EXIT_CONNECT;
	}
}

static const char *error_name(int code)
{
	const char *n = json_enum_name(&strata__v1__error_code__descriptor, code);
	return n ? n : "UNKNOWN_ERROR";
}

/* Print an Error reply; its exit code. */
static int server_error(const Strata__V1__Error *e)
{
	bool proto = e->code == STRATA__V1__ERROR_CODE__ERROR_CODE_BAD_VERSION ||
		     e->code == STRATA__V1__ERROR_CODE__ERROR_CODE_MALFORMED ||
		     e->code == STRATA__V1__ERROR_CODE__ERROR_CODE_FRAME_TOO_LARGE;

	fprintf(stderr, "%s: %s %s: %s\n", prog, proto ? "protocol error" : "server error", error_name(e->code),
		e->message);
	return proto ? EXIT_PROTOCOL : EXIT_SERVER;
}

static int unexpected(const Strata__V1__Response *r)
{
	fprintf(stderr, "%s: protocol error: unexpected reply (id %" PRIu64 ", body %d) from %s\n", prog, r->id,
		(int)r->body_case, socket_used);
	return EXIT_PROTOCOL;
}

/* Send req; if the server hung up first, read the Error it may have left. */
static int send_req(struct conn *c, Strata__V1__Request *req)
{
	int rc = conn_send(c, req);

	if (rc == -EPIPE || rc == -ECONNRESET) {
		Strata__V1__Response *resp;
		if (conn_next(c, -1, &resp) == 1) {
			int code = resp->body_case == STRATA__V1__RESPONSE__BODY_ERROR ? server_error(resp->error)
										       : unexpected(resp);
			strata__v1__response__free_unpacked(resp, NULL);
			return code;
		}
	}
	if (rc == -EMSGSIZE) {
		fprintf(stderr, "%s: the request is too large to send\n", prog);
		return EXIT_USAGE;
	}
	return rc < 0 ? conn_failure(rc) : 0;
}

/* Send req, wait for its one reply. 0 with *out whose body is `want`, or an
 * exit code (message printed). */
static int call(Strata__V1__Request *req, Strata__V1__Response__BodyCase want, Strata__V1__Response **out)
{
	struct conn c;
	int code;

	*out = NULL;
	code = open_conn(&c);
	if (code)
		return code;
	req->id = MAIN_ID;
	code = send_req(&c, req);
	while (code == 0) {
		Strata__V1__Response *resp;
		int rc = conn_next(&c, -1, &resp);
		if (rc < 0) {
			code = conn_failure(rc);
			break;
		}
		if (resp->body_case == STRATA__V1__RESPONSE__BODY_ERROR && (resp->id == MAIN_ID || resp->id == 0))
			code = server_error(resp->error);
		else if (resp->id != MAIN_ID || resp->body_case != want)
			code = unexpected(resp);
		else {
			*out = resp;
			break;
		}
		strata__v1__response__free_unpacked(resp, NULL);
	}
	conn_close(&c);
	return code;
}

/* ---- output helpers ---- */

/* Text mode ends with a newline on a terminal so the prompt does not land
 * after the text; pipes get the text exactly. */
static void end_line_on_tty(char last)
{
	if (last && last != '\n' && isatty(STDOUT_FILENO))
		fputc('\n', stdout);
}

static int flush_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: writing stdout: %s\n", prog, strerror(errno));
		return EXIT_LOCAL;
	}
	return 0;
}

/* "1.5 GiB" */
static const char *fmt_bytes(uint64_t b, char *buf, size_t n)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)b;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%" PRIu64 " B", b);
	else
		snprintf(buf, n, "%.1f %s", v, unit[u]);
	return buf;
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

static void lower(const char *s, char *buf, size_t n)
{
	size_t i = 0;

	for (; s && s[i] && i + 1 < n; i++)
		buf[i] = (char)tolower((unsigned char)s[i]);
	buf[i] = 0;
}

/* ---- generate ---- */

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

	lower(json_enum_name(&strata__v1__finish_reason__descriptor, d->finish_reason), reason, sizeof reason);
	if (!t) {
		fprintf(stderr, "%s: finish %s\n", prog, reason);
		return;
	}
	fprintf(stderr,
		"%s: %" PRIu32 " tokens at %.2f tok/s; prompt %" PRIu32 " tokens at %.1f tok/s; "
		"first token %.0f ms; total %.2f s; seed %" PRIu64 "; finish %s",
		prog, t->generated_tokens, t->generation_tokens_per_s, t->prompt_tokens, t->prompt_tokens_per_s,
		t->time_to_first_token_ms, t->total_ms / 1000, d->seed, reason);
	if (t->bytes_read)
		fprintf(stderr, "; read %s at %.0f MB/s, computed %.0f ms, stalled %.0f ms",
			fmt_bytes(t->bytes_read, b, sizeof b), t->read_mb_per_s, t->compute_ms, t->stall_ms);
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
			fprintf(stderr, "%s: generation failed: %s: %s\n", prog, error_name(d->error->code),
				d->error->message);
		else
			fprintf(stderr, "%s: generation failed (no details from the server)\n", prog);
		return EXIT_SERVER;
	case STRATA__V1__FINISH_REASON__FINISH_REASON_SHUTDOWN:
		fprintf(stderr, "%s: generation stopped: the server is shutting down\n", prog);
		return EXIT_SERVER;
	case STRATA__V1__FINISH_REASON__FINISH_REASON_CANCELLED:
		fprintf(stderr, "%s: generation was cancelled by the server\n", prog);
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
			return conn_failure(rc);
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
					return conn_failure(rc);
				cancel_sent = true;
				if (isatty(STDERR_FILENO))
					fprintf(stderr, "\n%s: cancelling (Ctrl-C again to quit now)\n", prog);
			}
			continue;
		}

		if (resp->id == CANCEL_ID && cancel_sent) {
			/* CancelReply, or NOT_FOUND when the generation had already
			 * finished: either way the Done tells the outcome. */
			if (resp->body_case != STRATA__V1__RESPONSE__BODY_CANCEL &&
			    resp->body_case != STRATA__V1__RESPONSE__BODY_ERROR)
				code = unexpected(resp);
		} else if (resp->body_case == STRATA__V1__RESPONSE__BODY_ERROR &&
			   (resp->id == MAIN_ID || resp->id == 0)) {
			if (o->json) {
				fputs("{\"type\":\"error\",", stdout);
				json_put_fields(stdout, &resp->error->base);
				fputs("}\n", stdout);
				flush_stdout();
			}
			end_line_on_tty(last);
			code = server_error(resp->error);
		} else if (resp->id != MAIN_ID) {
			code = unexpected(resp);
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
			code = flush_stdout();
			if (code == 0)
				code = -1; /* keep going */
		} else if (resp->body_case == STRATA__V1__RESPONSE__BODY_DONE) {
			if (o->json) {
				fputs("{\"type\":\"done\",", stdout);
				json_put_fields(stdout, &resp->done->base);
				fputs("}\n", stdout);
			} else {
				end_line_on_tty(last);
			}
			code = flush_stdout();
			if (o->verbose)
				print_summary(resp->done);
			if (code == 0)
				code = finish(resp->done);
		} else {
			code = unexpected(resp);
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
		fprintf(stderr, "%s: out of memory\n", prog);
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
					fprintf(stderr, "%s: out of memory\n", prog);
					code = EXIT_LOCAL;
				} else {
					code = usage_error("--stop '%s': a \\x escape without hex digits, or one that "
							   "makes a NUL, a surrogate or a code point past U+10FFFF",
							   optarg);
				}
				goto out;
			}
			stops[gen.n_stop++] = stop;
			if (n == 0) {
				code = usage_error("--stop wants a non-empty string");
				goto out;
			}
			code = check_text("--stop", stop, (size_t)n);
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
			code = option_error(opt, argv);
			goto out;
		}
		li = -1; /* getopt_long sets it only for long options */
	}
	gen.stop = stops;
	code = get_text(argc, argv, "prompt", &prompt, &owned);
	if (code)
		goto out;
	gen.prompt = prompt;
	req.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
	req.generate = &gen;
	req.id = MAIN_ID;

	code = open_conn(&c);
	if (code)
		goto out;
	/* Ctrl-C from here on: the handler only wakes the loop, which sends
	 * the Cancel (a second one exits from the handler). */
	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
		code = EXIT_LOCAL;
		goto out_conn;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);

	code = send_req(&c, &req);
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
	code = usage_error("--%s wants a whole number in range, not '%s'",
			   li >= 0 ? generate_opts[li].name : "max-tokens", optarg);
	goto out;
bad_float:
	code = usage_error("--%s wants a number, not '%s'", generate_opts[li].name, optarg);
	goto out;
}

/* ---- tokenize, detokenize, status ---- */

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
			return option_error(opt, argv);
		}
	}
	code = get_text(argc, argv, "text", &text, &owned);
	if (code)
		return code;
	tok.text = text;
	req.body_case = STRATA__V1__REQUEST__BODY_TOKENIZE;
	req.tokenize = &tok;
	code = call(&req, STRATA__V1__RESPONSE__BODY_TOKENIZE, &resp);
	free(owned);
	if (code)
		return code;
	for (size_t i = 0; i < resp->tokenize->n_ids; i++)
		printf("%s%" PRIu32, i ? " " : "", resp->tokenize->ids[i]);
	putchar('\n');
	strata__v1__response__free_unpacked(resp, NULL);
	return flush_stdout();
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
			return option_error(opt, argv);
		}
	}
	if (optind >= argc)
		return usage_error("detokenize wants at least one token id");
	ids = calloc((size_t)(argc - optind), sizeof *ids);
	if (!ids) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_LOCAL;
	}
	for (int i = optind; i < argc; i++) {
		if (parse_u32(argv[i], &ids[det.n_ids]) < 0) {
			free(ids);
			return usage_error("'%s' is not a token id", argv[i]);
		}
		det.n_ids++;
	}
	det.ids = ids;
	req.body_case = STRATA__V1__REQUEST__BODY_DETOKENIZE;
	req.detokenize = &det;
	code = call(&req, STRATA__V1__RESPONSE__BODY_DETOKENIZE, &resp);
	free(ids);
	if (code)
		return code;
	len = strlen(resp->detokenize->text);
	fwrite(resp->detokenize->text, 1, len, stdout);
	end_line_on_tty(len ? resp->detokenize->text[len - 1] : 0);
	strata__v1__response__free_unpacked(resp, NULL);
	return flush_stdout();
}

static void print_status(const Strata__V1__StatusReply *s)
{
	const Strata__V1__Model *m = s->model;
	const Strata__V1__Memory *mem = s->memory;
	char a[32], b[32], c[32], d[32], e[32], io[32];

	printf("%-13s stratad %s, protocol %" PRIu32 ", up %s\n", "daemon", s->daemon_version, s->protocol_version,
	       fmt_uptime(s->uptime_ms, a, sizeof a));
	if (m) {
		printf("%-13s %s (%s)\n", "model", *m->name ? m->name : "(unnamed)", m->architecture);
		printf("%-13s %s, %s, %s parameters\n", "file", m->path, fmt_bytes(m->file_bytes, a, sizeof a),
		       fmt_count(m->n_params, b, sizeof b));
		printf("%-13s %" PRIu32 " layers, %" PRIu32 " embd, %" PRIu32 " heads (%" PRIu32 " KV), %" PRIu32
		       " ff, %" PRIu32 " vocab\n",
		       "shape", m->n_layer, m->n_embd, m->n_head, m->n_head_kv, m->n_ff, m->n_vocab);
		printf("%-13s %" PRIu32 " tokens (trained on %" PRIu32 ")\n", "context", m->n_ctx, m->n_ctx_train);
		printf("%-13s", "weights");
		for (size_t i = 0; i < m->n_weight_types; i++)
			printf("%s %s: %" PRIu32 " tensors, %s", i ? ";" : "", m->weight_types[i]->type,
			       m->weight_types[i]->n_tensors, fmt_bytes(m->weight_types[i]->bytes, a, sizeof a));
		printf("\n");
	} else {
		printf("%-13s (none loaded)\n", "model");
	}
	lower(json_enum_name(&strata__v1__io_mode__descriptor, s->io_mode), io, sizeof io);
	printf("%-13s %s, %" PRIu32 " of %" PRIu32 " layers resident, %" PRIu32 " threads\n", "io", io,
	       s->layers_resident, m ? m->n_layer : 0, s->threads);
	if (mem)
		printf("%-13s weights %s, stream buffers %s, KV cache %s, budget %s, RSS %s\n", "memory",
		       fmt_bytes(mem->weights_resident_bytes, a, sizeof a),
		       fmt_bytes(mem->stream_buffer_bytes, b, sizeof b), fmt_bytes(mem->kv_cache_bytes, c, sizeof c),
		       mem->budget_bytes ? fmt_bytes(mem->budget_bytes, d, sizeof d) : "none",
		       fmt_bytes(mem->rss_bytes, e, sizeof e));
	printf("%-13s %" PRIu32 " active, %" PRIu32 " queued, %" PRIu32 " connections\n", "requests",
	       s->requests_active, s->requests_queued, s->connections);
	printf("%-13s %" PRIu64 " requests, %" PRIu64 " prompt tokens, %" PRIu64 " generated tokens, %s read\n",
	       "since start", s->requests_total, s->prompt_tokens_total, s->generated_tokens_total,
	       fmt_bytes(s->bytes_read_total, a, sizeof a));
	double pass_ms = s->compute_ms_total + s->stall_ms_total;
	printf("%-13s %" PRIu64 " passes, %s streamed each; %.1f s computing, %.1f s waiting for the disk"
	       " (%.0f%%)\n", "weights read", s->passes_total, fmt_bytes(s->bytes_streamed_per_pass, a, sizeof a),
	       s->compute_ms_total / 1e3, s->stall_ms_total / 1e3,
	       pass_ms > 0 ? 100.0 * s->stall_ms_total / pass_ms : 0.0);
	printf("%-13s %s\n", "max request", fmt_bytes(s->max_frame_bytes, a, sizeof a));
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
			return option_error(opt, argv);
		}
	}
	if (optind < argc)
		return usage_error("status takes no arguments");
	req.body_case = STRATA__V1__REQUEST__BODY_STATUS;
	req.status = &st;
	code = call(&req, STRATA__V1__RESPONSE__BODY_STATUS, &resp);
	if (code)
		return code;
	if (json) {
		json_put_message(stdout, &resp->status->base);
		putchar('\n');
	} else {
		print_status(resp->status);
	}
	strata__v1__response__free_unpacked(resp, NULL);
	return flush_stdout();
}

static const struct command {
	const char *name;
	int (*fn)(int, char **);
	const struct option *opts;
	const char *short_opts;
} commands[] = {
	{ "generate", cmd_generate, generate_opts, GENERATE_SHORT },
	{ "tokenize", cmd_tokenize, tokenize_opts, TOKENIZE_SHORT },
	{ "detokenize", cmd_detokenize, detokenize_opts, DETOKENIZE_SHORT },
	{ "status", cmd_status, status_opts, STATUS_SHORT },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* Whether cmd takes the option spelled `name` ("--json", "-n"). */
static bool command_has(const struct command *cmd, const char *name)
{
	if (name[0] == '-' && name[1] == '-') {
		for (const struct option *o = cmd->opts; o->name; o++)
			if (strcmp(o->name, name + 2) == 0)
				return true;
		return false;
	}
	return name[0] == '-' && name[1] && name[1] != ':' && strchr(cmd->short_opts, name[1]) != NULL;
}

/* An option main() does not know, given before the command: if a command
 * takes it, say so and show where it goes. */
static int misplaced_option(int argc, char **argv, const char *name)
{
	const struct command *named = NULL, *takes[N_COMMANDS];
	size_t n = 0;

	for (int i = optind; i < argc && !named; i++)
		for (size_t k = 0; k < N_COMMANDS; k++)
			if (strcmp(argv[i], commands[k].name) == 0)
				named = &commands[k];
	if (named && command_has(named, name))
		return usage_error("%s is an option of '%s': %s %s %s", name, named->name, prog, named->name, name);
	for (size_t k = 0; k < N_COMMANDS; k++)
		if (command_has(&commands[k], name))
			takes[n++] = &commands[k];
	if (n == 0)
		return usage_error("unknown option '%s'", name);
	char list[128] = "";
	for (size_t k = 0; k < n; k++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'",
			 k == 0 ? "" : k + 1 == n ? " and " : ", ", takes[k]->name);
	return usage_error("%s is an option of %s, not of strata itself: give it after the command, "
			   "e.g. %s %s %s", name, list, prog, takes[0]->name, name);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL;
	char name[64];
	int opt;

	/* Errors are ours to word, always as "strata: ..." (getopt would name
	 * argv[0], which for a command's options is the command). */
	opterr = 0;
	/* "+": stop at the command; its options are parsed by the command. */
	while ((opt = getopt_long(argc, argv, "+:s:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("strata %s (protocol %d)\n", PACKAGE_VERSION, STRATA_PROTOCOL_VERSION);
			return EXIT_OK;
		case ':':
			return usage_error("option '%s' needs a value", bad_option(argv, name, sizeof name));
		default:
			return misplaced_option(argc, argv, bad_option(argv, name, sizeof name));
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	if (sock && !*sock)
		return usage_error("--socket wants a path");
	choose_sockets(sock);
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			int sub_argc = argc - optind;
			char **sub_argv = argv + optind;
			command = commands[i].name;
			optind = 0; /* glibc: restart getopt for the command's own options */
			return commands[i].fn(sub_argc, sub_argv);
		}
	}
	return usage_error("unknown command '%s'", argv[optind]);
}
