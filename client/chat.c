/* chat.c: `strata chat`: a conversation with the model, rendered by stratad
 * with the model's chat template (Generate.messages). On a terminal: turns
 * typed at a prompt, each sent with the whole conversation so far on one
 * connection; otherwise all of stdin is one message with one reply. The
 * Generate options, the stream and Ctrl-C are generate.c's. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli.h"
#include "common/utf8.h"

static void usage_chat(FILE *f)
{
	fprintf(f,
		"Usage: %s [--socket PATH] chat [OPTIONS]\n"
		"Talk with the model; stratad renders the conversation with the model's chat\n"
		"template. On a terminal: type a message and Enter; the reply streams to stdout\n"
		"and the conversation goes on (each request carries all of it). Ctrl-C stops\n"
		"a reply (what it said so far stays in the conversation), Ctrl-C at the prompt\n"
		"drops the line, Ctrl-D on an empty line ends. Otherwise all of stdin is one\n"
		"message (final newlines removed) and its reply is printed once.\n"
		"\n"
		"Options:\n"
		HELP_CHAT_OPTS
		HELP_SAMPLING_OPTS
		"      --ignore-eos         go on after an end-of-generation token (up to -n)\n"
		"      --json               one JSON object per line for each piece, then a\n"
		"                           {\"type\":\"done\",...} with the timings, for each reply\n"
		"                           (64-bit integers such as the seed as strings)\n"
		"  -v, --verbose            a summary line on stderr after each reply: tokens\n"
		"                           (the prompt's hold the whole conversation), speed,\n"
		"                           finish reason\n"
		"  -h, --help               this text\n"
		"\n"
		HELP_EXIT,
		cli_prog);
}

enum { O_SYSTEM = GEN_O_END, O_TEMPLATE };
#define CHAT_SHORT ":" GEN_SHORT "h"
static const struct option chat_opts[] = {
	GEN_OPTIONS,
	{ "system", required_argument, NULL, O_SYSTEM },
	{ "template", required_argument, NULL, O_TEMPLATE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* ---- the conversation ---- */

static char role_system[] = "system", role_user[] = "user", role_assistant[] = "assistant";

/* The messages so far, oldest first: the system's (if any), then the user's
 * and the assistant's in turn. */
struct history {
	Strata__V1__ChatMessage *msgs;  /* n of cap; each content owned (malloc) */
	Strata__V1__ChatMessage **ptrs; /* cap of them: &msgs[i], for the request */
	size_t n, cap;
};

/* Append a copy of text[0..len) as `role`'s message: 0 or EXIT_LOCAL. */
static int history_add(struct history *h, char *role, const char *text, size_t len)
{
	char *content;

	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 16;
		Strata__V1__ChatMessage *m = realloc(h->msgs, cap * sizeof *m);
		if (!m)
			goto nomem;
		h->msgs = m;
		Strata__V1__ChatMessage **p = realloc(h->ptrs, cap * sizeof *p);
		if (!p)
			goto nomem;
		h->ptrs = p;
		h->cap = cap;
	}
	content = malloc(len + 1);
	if (!content)
		goto nomem;
	if (len)
		memcpy(content, text, len);
	content[len] = 0;
	strata__v1__chat_message__init(&h->msgs[h->n]);
	h->msgs[h->n].role = role;
	h->msgs[h->n].content = content;
	h->n++;
	return 0;
nomem:
	fprintf(stderr, "%s: out of memory\n", cli_prog);
	return EXIT_LOCAL;
}

/* Forget the messages after the first n. */
static void history_cut(struct history *h, size_t n)
{
	while (h->n > n)
		free(h->msgs[--h->n].content);
}

static void history_free(struct history *h)
{
	history_cut(h, 0);
	free(h->msgs);
	free(h->ptrs);
}

/* The conversation as gen's messages (valid until the next history_add). */
static void history_attach(struct history *h, Strata__V1__Generate *gen)
{
	for (size_t i = 0; i < h->n; i++)
		h->ptrs[i] = &h->msgs[i];
	gen->messages = h->ptrs;
	gen->n_messages = h->n;
}

/* ---- one message from a pipe ---- */

static int chat_once(struct gen_args *a, struct history *h)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	struct conn c;
	char *text;
	size_t len;
	int code;

	code = cli_read_stdin(&text, &len);
	if (code)
		return code;
	/* `echo Hi |` means the message "Hi", as typing it at the prompt would */
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (len == 0)
		code = cli_usage_error("no message on stdin (run chat on a terminal to converse)");
	if (code == 0)
		code = cli_check_text("the message", text, len);
	if (code == 0)
		code = history_add(h, role_user, text, len);
	free(text);
	if (code)
		return code;
	history_attach(h, &a->gen);
	req.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
	req.generate = &a->gen;
	req.id = 1;
	code = cli_connect(&c);
	if (code)
		return code;
	code = gen_sigint_catch();
	if (code == 0)
		code = gen_run(&c, &req, 2, &a->print, NULL);
	conn_close(&c);
	return code;
}

/* ---- a conversation on a terminal ---- */

/* Bytes typed at the prompt: whole lines, and the start of the next one. */
struct typed {
	char *buf; /* len of cap bytes */
	size_t len, cap;
	bool eof;  /* read() gave 0: Ctrl-D on an empty line, or the terminal is gone */
};

/* The longest line taken: far more than a terminal's line discipline lets
 * anyone type (4095 bytes), and within stratad's default --max-frame. */
#define LINE_MAX_BYTES (256u << 10)

/* What typed_line found; negative, apart from the exit codes it may return. */
enum { LINE_OK = -1, LINE_EOF = -2, LINE_INTERRUPTED = -3 };

/* While waiting at the prompt the connection should be silent; stratad
 * closes one that stays idle past its --idle-timeout, or when it stops.
 * Close our end too: the next turn connects again. */
static void idle_conn_event(struct conn *c)
{
	Strata__V1__Response *resp;
	int rc = conn_next(c, gen_sigint_fd(), &resp);

	if (rc == 0)
		return; /* a Ctrl-C: the caller's poll sees it */
	if (rc == 1) {
		if (resp->body_case == STRATA__V1__RESPONSE__BODY_ERROR)
			cli_server_error(resp->error);
		else
			cli_unexpected(resp);
		strata__v1__response__free_unpacked(resp, NULL);
	}
	conn_close(c);
}

/* Wait for the next line typed: LINE_OK with it at t->buf[0..*n) (without
 * its newline; take it with typed_take), LINE_EOF, LINE_INTERRUPTED (Ctrl-C:
 * what was typed is dropped, as the terminal drops its own line), or an exit
 * code (message printed). Text ended by Ctrl-D rather than Enter is a line
 * too. */
static int typed_line(struct typed *t, struct conn *c, size_t *n)
{
	for (;;) {
		char *nl = t->len ? memchr(t->buf, '\n', t->len) : NULL;
		struct pollfd p[3] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = gen_sigint_fd(), .events = POLLIN },
			{ .fd = c->fd, .events = POLLIN },
		};
		ssize_t got;

		if (nl) {
			*n = (size_t)(nl - t->buf);
			return LINE_OK;
		}
		if (t->eof) {
			*n = t->len;
			return t->len ? LINE_OK : LINE_EOF;
		}
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: poll: %s\n", cli_prog, strerror(errno));
			return EXIT_LOCAL;
		}
		if (p[1].revents) {
			gen_sigint_clear();
			t->len = 0;
			return LINE_INTERRUPTED;
		}
		if (p[2].revents)
			idle_conn_event(c);
		if (!p[0].revents)
			continue;
		if (t->cap - t->len < 4096) {
			size_t cap = t->cap ? 2 * t->cap : 8192;
			char *b = t->len + 4096 > LINE_MAX_BYTES ? NULL : realloc(t->buf, cap);
			if (!b) {
				fprintf(stderr, "\n%s: a line longer than %u bytes; it was dropped\n", cli_prog,
					LINE_MAX_BYTES);
				t->len = 0;
				return LINE_INTERRUPTED;
			}
			t->buf = b;
			t->cap = cap;
		}
		got = read(STDIN_FILENO, t->buf + t->len, t->cap - t->len);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fprintf(stderr, "%s: reading the terminal: %s\n", cli_prog, strerror(errno));
			return EXIT_LOCAL;
		}
		if (got == 0)
			t->eof = true;
		t->len += (size_t)got;
	}
}

/* Forget the line typed_line gave (n bytes and its newline, if any). */
static void typed_take(struct typed *t, size_t n)
{
	if (n < t->len && t->buf[n] == '\n')
		n++;
	memmove(t->buf, t->buf + n, t->len - n);
	t->len -= n;
}

/* Whether a turn that failed (gen_run's code, how it ended) leaves the
 * conversation able to go on: the server refused or failed that one
 * request; the connection and the server are still there. */
static bool turn_recoverable(int code, const struct gen_end *end)
{
	return code == EXIT_SERVER && end->finish != STRATA__V1__FINISH_REASON__FINISH_REASON_SHUTDOWN &&
	       end->error != STRATA__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN;
}

static int chat_tty(struct gen_args *a, struct history *h)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	struct typed t = { 0 };
	struct conn c;
	uint64_t next_id = 1;
	int code;

	req.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
	req.generate = &a->gen;
	a->print.newline = true; /* replies on lines of their own, in a file too */
	code = cli_connect(&c); /* now, so that a missing daemon shows before the first line */
	if (code)
		return code;
	code = gen_sigint_catch();
	if (code)
		goto out;
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "%s chat: Enter sends a line, Ctrl-C stops a reply, Ctrl-D ends.\n", cli_prog);
	for (;;) {
		struct gen_end end;
		size_t n, len, kept = h->n;
		int got;

		fputs("> ", stderr);
		got = typed_line(&t, &c, &n);
		if (got == LINE_EOF) {
			fputc('\n', stderr); /* the shell's prompt on a line of its own */
			code = EXIT_OK;
			break;
		}
		if (got == LINE_INTERRUPTED) {
			fputs("\n(Ctrl-D ends the conversation)\n", stderr);
			continue;
		}
		if (got != LINE_OK) {
			code = got;
			break;
		}
		len = n > 0 && t.buf[n - 1] == '\r' ? n - 1 : n; /* a terminal that sends CR LF */
		if (len == 0) { /* an empty line: nothing to say */
			typed_take(&t, n);
			continue;
		}
		if (memchr(t.buf, 0, len) || !utf8_valid(t.buf, len)) {
			fprintf(stderr, "%s: that line is not UTF-8 (is the terminal's encoding UTF-8?); "
				"it was not sent\n", cli_prog);
			typed_take(&t, n);
			continue;
		}
		code = history_add(h, role_user, t.buf, len);
		typed_take(&t, n);
		if (code)
			break;
		if (c.fd < 0) { /* stratad closed the idle connection: a new one */
			code = cli_connect(&c);
			if (code)
				break;
		}
		history_attach(h, &a->gen);
		req.id = next_id++;
		gen_sigint_clear();
		code = gen_run(&c, &req, next_id++, &a->print, &end);
		if (code == EXIT_OK || code == EXIT_INTERRUPTED) {
			/* A cancelled reply stays as far as it was printed: the
			 * model sees what the user saw, and turns keep alternating. */
			code = history_add(h, role_assistant, end.text ? end.text : "", end.len);
		} else if (turn_recoverable(code, &end)) {
			history_cut(h, kept);
			fprintf(stderr, "%s: that message is left out of the conversation\n", cli_prog);
			code = EXIT_OK;
		}
		gen_end_free(&end);
		if (code)
			break;
	}
out:
	conn_close(&c);
	free(t.buf);
	return code;
}

static int cmd_chat(int argc, char **argv)
{
	struct history h = { 0 };
	struct gen_args a;
	const char *system = NULL;
	int opt, code, li = -1;

	code = gen_args_init(&a, argc);
	if (code)
		return code;
	while ((opt = getopt_long(argc, argv, CHAT_SHORT, chat_opts, &li)) != -1) {
		switch (opt) {
		case O_SYSTEM:
			system = optarg;
			code = cli_check_text("--system", optarg, strlen(optarg));
			break;
		case O_TEMPLATE:
			a.gen.chat_template = optarg;
			code = cli_check_text("--template", optarg, strlen(optarg));
			break;
		case 'h':
			usage_chat(stdout);
			goto out;
		default:
			code = gen_args_take(&a, opt, li >= 0 ? chat_opts[li].name : NULL);
			if (code == GEN_NOT_MINE)
				code = cli_option_error(opt, argv);
		}
		if (code)
			goto out;
		li = -1; /* getopt_long sets it only for long options */
	}
	if (optind < argc) {
		code = cli_usage_error("chat takes no arguments: the messages come from stdin");
		goto out;
	}
	if (system && *system)
		code = history_add(&h, role_system, system, strlen(system));
	if (code == 0)
		code = isatty(STDIN_FILENO) ? chat_tty(&a, &h) : chat_once(&a, &h);
out:
	history_free(&h);
	gen_args_free(&a);
	return code;
}

const struct cli_command cli_chat = { "chat", cmd_chat, chat_opts, CHAT_SHORT };
