/* cli.c: the plumbing every command of `strata` shares (see cli.h): usage
 * errors, user text checked for the wire, the socket and the connection,
 * one-reply calls, output helpers. Nothing about what a command means. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/json.h"
#include "common/utf8.h"
#include "proto/frame.h"

const char cli_prog[] = "strata";
const char *cli_command_name;

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cli_command_name)
		fprintf(stderr, "\nTry '%s %s --help'.\n", cli_prog, cli_command_name);
	else
		fprintf(stderr, "\nTry '%s --help'.\n", cli_prog);
	return EXIT_USAGE;
}

/* ---- argument parsing ---- */

/* getopt_long (with opterr = 0 and a ':' first in the option string) returned
 * '?' or ':' for argv[optind - 1]: the option as the user spelled it, without
 * a "=value", into buf. */
const char *cli_bad_option(char **argv, char *buf, size_t n)
{
	const char *arg = argv[optind - 1];

	if (optopt && !(arg[0] == '-' && arg[1] == '-'))
		snprintf(buf, n, "-%c", optopt); /* a short option, perhaps in a group like -vx */
	else
		snprintf(buf, n, "%.*s", (int)strcspn(arg, "="), arg);
	return buf;
}

/* The message for an option error of a command's getopt_long loop. */
int cli_option_error(int opt, char **argv)
{
	char name[64];

	cli_bad_option(argv, name, sizeof name);
	if (opt == ':')
		return cli_usage_error("option '%s' needs a value", name);
	return cli_usage_error("unknown option '%s' for %s", name, cli_command_name ? cli_command_name : cli_prog);
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
int cli_check_text(const char *what, const char *s, size_t n)
{
	long bad = utf8_bad_offset(s, n);

	if (memchr(s, 0, n))
		return cli_usage_error("%s contains a NUL byte", what);
	if (bad >= 0)
		return cli_usage_error("%s is not valid UTF-8 (byte %ld); convert it first, e.g. with iconv", what,
				       bad);
	return 0;
}

/* All of stdin, NUL-terminated, at most FRAME_RESPONSE_CAP bytes. */
int cli_read_stdin(char **out, size_t *out_len)
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
				return cli_usage_error("the input is larger than %u bytes", FRAME_RESPONSE_CAP);
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
				fprintf(stderr, "%s: reading stdin: %s\n", cli_prog, strerror(errno));
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
	fprintf(stderr, "%s: out of memory reading stdin\n", cli_prog);
	return EXIT_LOCAL;
}

/* TEXT from argv[optind] ("-" or absent: stdin); *owned is what to free. */
int cli_get_text(int argc, char **argv, const char *what, char **text, char **owned)
{
	size_t len = 0;
	int rc;

	*owned = NULL;
	if (argc - optind > 1)
		return cli_usage_error("one %s only (quote it); got %d arguments", what, argc - optind);
	if (optind < argc && strcmp(argv[optind], "-") != 0) {
		*text = argv[optind];
		len = strlen(*text);
	} else {
		rc = cli_read_stdin(owned, &len);
		if (rc)
			return rc;
		*text = *owned;
	}
	rc = cli_check_text(what, *text, len);
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

void cli_choose_sockets(const char *opt)
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

int cli_connect(struct conn *c)
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
		fprintf(stderr, "%s: cannot connect to %s or %s: %s (is stratad running? see --socket)\n", cli_prog,
			socket_paths[0], socket_paths[1], strerror(-rc));
	else
		fprintf(stderr, "%s: cannot connect to %s: %s (is stratad running? see --socket)\n", cli_prog,
			socket_paths[0], strerror(-rc));
	return EXIT_CONNECT;
}

/* Exit code and message for a failed conn_next/conn_send. */
int cli_conn_failure(int rc)
{
	switch (rc) {
	case -ECONNRESET:
	case -EPIPE:
		fprintf(stderr, "%s: %s closed the connection before answering\n", cli_prog, socket_used);
		return EXIT_CONNECT;
	case -EPROTO:
		fprintf(stderr, "%s: the connection to %s broke in the middle of a reply\n", cli_prog, socket_used);
		return EXIT_CONNECT;
	case -EMSGSIZE:
		fprintf(stderr, "%s: protocol error: a reply from %s is larger than %u bytes\n", cli_prog, socket_used,
			FRAME_RESPONSE_CAP);
		return EXIT_PROTOCOL;
	case -EBADMSG:
		fprintf(stderr, "%s: protocol error: %s sent bytes that are not a strata.v1 Response (is it stratad?)\n",
			cli_prog, socket_used);
		return EXIT_PROTOCOL;
	case -EILSEQ:
		fprintf(stderr, "%s: protocol error: %s sent text that is not UTF-8\n", cli_prog, socket_used);
		return EXIT_PROTOCOL;
	default:
		fprintf(stderr, "%s: talking to %s: %s\n", cli_prog, socket_used, strerror(-rc));
		return EXIT_CONNECT;
	}
}

const char *cli_error_name(int code)
{
	const char *n = json_enum_name(&strata__v1__error_code__descriptor, code);
	return n ? n : "UNKNOWN_ERROR";
}

/* Print an Error reply; its exit code. */
int cli_server_error(const Strata__V1__Error *e)
{
	bool proto = e->code == STRATA__V1__ERROR_CODE__ERROR_CODE_BAD_VERSION ||
		     e->code == STRATA__V1__ERROR_CODE__ERROR_CODE_MALFORMED ||
		     e->code == STRATA__V1__ERROR_CODE__ERROR_CODE_FRAME_TOO_LARGE;

	fprintf(stderr, "%s: %s %s: %s\n", cli_prog, proto ? "protocol error" : "server error",
		cli_error_name(e->code), e->message);
	return proto ? EXIT_PROTOCOL : EXIT_SERVER;
}

int cli_unexpected(const Strata__V1__Response *r)
{
	fprintf(stderr, "%s: protocol error: unexpected reply (id %" PRIu64 ", body %d) from %s\n", cli_prog, r->id,
		(int)r->body_case, socket_used);
	return EXIT_PROTOCOL;
}

/* Send req; if the server hung up first, read the Error it may have left. */
int cli_send(struct conn *c, Strata__V1__Request *req)
{
	int rc = conn_send(c, req);

	if (rc == -EPIPE || rc == -ECONNRESET) {
		Strata__V1__Response *resp;
		if (conn_next(c, -1, &resp) == 1) {
			int code = resp->body_case == STRATA__V1__RESPONSE__BODY_ERROR ? cli_server_error(resp->error)
											   : cli_unexpected(resp);
			strata__v1__response__free_unpacked(resp, NULL);
			return code;
		}
	}
	if (rc == -EMSGSIZE) {
		fprintf(stderr, "%s: the request is too large to send\n", cli_prog);
		return EXIT_USAGE;
	}
	return rc < 0 ? cli_conn_failure(rc) : 0;
}

/* The id of a cli_call's request: the only one on its connection. */
#define CALL_ID 1

int cli_call(Strata__V1__Request *req, Strata__V1__Response__BodyCase want, Strata__V1__Response **out)
{
	struct conn c;
	int code;

	*out = NULL;
	code = cli_connect(&c);
	if (code)
		return code;
	req->id = CALL_ID;
	code = cli_send(&c, req);
	while (code == 0) {
		Strata__V1__Response *resp;
		int rc = conn_next(&c, -1, &resp);
		if (rc < 0) {
			code = cli_conn_failure(rc);
			break;
		}
		if (resp->body_case == STRATA__V1__RESPONSE__BODY_ERROR && (resp->id == CALL_ID || resp->id == 0))
			code = cli_server_error(resp->error);
		else if (resp->id != CALL_ID || resp->body_case != want)
			code = cli_unexpected(resp);
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
void cli_end_line_on_tty(char last)
{
	if (last && last != '\n' && isatty(STDOUT_FILENO))
		fputc('\n', stdout);
}

int cli_flush_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: writing stdout: %s\n", cli_prog, strerror(errno));
		return EXIT_LOCAL;
	}
	return 0;
}

void cli_lower(const char *s, char *buf, size_t n)
{
	size_t i = 0;

	for (; s && s[i] && i + 1 < n; i++)
		buf[i] = (char)tolower((unsigned char)s[i]);
	buf[i] = 0;
}
