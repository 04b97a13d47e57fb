/* strata-http: an OpenAI-compatible HTTP front for stratad. A client of
 * stratad's socket like strata(1): it holds no model and computes nothing;
 * each HTTP request becomes strata.v1 requests on a connection of its own.
 * This file: the command line, start-up, signals and the drain on SIGTERM. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "http/auth.h"
#include "http/job.h"
#include "http/listen.h"
#include "http/server.h"
#include "http/upstream.h"
#include "proto/frame.h"

#define DEFAULT_LISTEN "127.0.0.1:8080"

static const char *prog = "strata-http";

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [OPTIONS]\n"
		"Serve stratad's model over HTTP with OpenAI's API: /v1/completions,\n"
		"/v1/chat/completions, /v1/models, and /health and /metrics.\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH          stratad's socket (default: $STRATA_SOCKET, else\n"
		"                             $XDG_RUNTIME_DIR/strata.sock, then\n"
		"                             /run/strata/strata.sock)\n"
		"  -l, --listen ADDRESS       HOST:PORT, [IPV6]:PORT or unix:PATH to listen on\n"
		"                             (default %s; a socket passed by systemd wins)\n"
		"      --api-key-file FILE    require 'Authorization: Bearer KEY' on /v1/ with\n"
		"                             one of the keys in FILE (one per line)\n"
		"      --max-body BYTES       largest request body (default 1M; K, M, G suffixes)\n"
		"      --model-name NAME      the model's name in replies and /v1/models\n"
		"                             (default: the name stratad reports)\n"
		"      --max-connections N    HTTP connections at once, a thread each (default 64)\n"
		"      --idle-timeout SECONDS close idle connections after this (default 60)\n"
		"      --retry-after SECONDS  Retry-After of a 429 or 503 reply (default 1)\n"
		"      --shutdown-timeout SECONDS\n"
		"                             on SIGTERM, wait this long for requests being\n"
		"                             answered before cancelling them (default 10)\n"
		"      --log-level LEVEL      err, warning, notice, info or debug (default info)\n"
		"  -h, --help                 this text\n"
		"  -V, --version              the version and protocol version\n"
		"\n"
		"Exit status: 0 after SIGTERM or SIGINT; 1 when it cannot start (socket,\n"
		"key file); 2 for a bad command line.\n",
		prog, DEFAULT_LISTEN);
}

static int usage_error(const char *what, const char *val)
{
	fprintf(stderr, "%s: %s: '%s'\nTry '%s --help'.\n", prog, what, val, prog);
	return 2;
}

enum {
	OPT_API_KEY_FILE = 256,
	OPT_MAX_BODY,
	OPT_MODEL_NAME,
	OPT_MAX_CONNECTIONS,
	OPT_IDLE_TIMEOUT,
	OPT_RETRY_AFTER,
	OPT_SHUTDOWN_TIMEOUT,
	OPT_LOG_LEVEL,
};

/* Wait for SIGTERM/SIGINT (blocked in every thread), then drain: no new
 * connections, up to `grace` seconds for the requests being answered, then
 * every wait on stratad ends (stop_fd) and their connections close. */
static void serve_until_signal(struct http_server *srv, const sigset_t *set, int stop_fd, unsigned grace)
{
	int sig = sigwaitinfo(set, NULL);
	while (sig < 0 && errno == EINTR)
		sig = sigwaitinfo(set, NULL);
	log_notice("%s: stopping (signal %d); %u requests being answered", prog, sig, http_server_busy(srv));
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	http_server_quiesce(srv);
	uint64_t end = clock_now_ns() + (uint64_t)grace * 1000000000u;
	while (http_server_busy(srv) > 0 && clock_now_ns() < end) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		if (sigtimedwait(set, NULL, &ts) >= 0) {
			log_notice("%s: second signal: cancelling what remains", prog);
			break;
		}
	}
	if (http_server_busy(srv) > 0)
		log_notice("%s: cancelling %u requests", prog, http_server_busy(srv));
	uint64_t one = 1;
	if (write(stop_fd, &one, sizeof one) < 0)
		log_warn("eventfd: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "api-key-file", required_argument, NULL, OPT_API_KEY_FILE },
		{ "max-body", required_argument, NULL, OPT_MAX_BODY },
		{ "model-name", required_argument, NULL, OPT_MODEL_NAME },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
		{ "retry-after", required_argument, NULL, OPT_RETRY_AFTER },
		{ "shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = NULL, *listen_spec = DEFAULT_LISTEN, *key_file = NULL;
	static struct auth auth; /* 16 KiB: not on the stack */
	struct http_config cfg = {
		.max_body = 1u << 20, .model_name = NULL, .max_connections = 64, .idle_timeout = 60, .auth = &auth,
	};
	unsigned grace = 10;
	struct http_listener lis = { .fd = -1 };
	struct http_server *srv = NULL;
	struct st_err err = { "" };
	enum log_level level;
	uint32_t u;
	int c;

	while ((c = getopt_long(argc, argv, "s:l:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket_path = optarg;
			break;
		case 'l':
			listen_spec = optarg;
			break;
		case OPT_API_KEY_FILE:
			key_file = optarg;
			break;
		case OPT_MAX_BODY:
			if (parse_size(optarg, &cfg.max_body) < 0 || cfg.max_body == 0)
				return usage_error("--max-body needs a size such as 1M", optarg);
			break;
		case OPT_MODEL_NAME:
			if (!*optarg)
				return usage_error("--model-name must not be empty", optarg);
			cfg.model_name = optarg;
			break;
		case OPT_MAX_CONNECTIONS:
			if (parse_u32(optarg, &u) < 0 || u == 0 || u > 65536)
				return usage_error("--max-connections needs a number from 1 to 65536", optarg);
			cfg.max_connections = u;
			break;
		case OPT_IDLE_TIMEOUT:
			if (parse_u32(optarg, &u) < 0)
				return usage_error("--idle-timeout needs a number of seconds", optarg);
			cfg.idle_timeout = u;
			break;
		case OPT_RETRY_AFTER:
			if (parse_u32(optarg, &u) < 0)
				return usage_error("--retry-after needs a number of seconds", optarg);
			job_retry_after = u;
			break;
		case OPT_SHUTDOWN_TIMEOUT:
			if (parse_u32(optarg, &u) < 0)
				return usage_error("--shutdown-timeout needs a number of seconds", optarg);
			grace = u;
			break;
		case OPT_LOG_LEVEL:
			if (log_parse_level(optarg, &level) < 0)
				return usage_error("--log-level needs err, warning, notice, info or debug", optarg);
			log_set_level(level);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("%s %s (protocol %d)\n", prog, PACKAGE_VERSION, STRATA_PROTOCOL_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try '%s --help'.\n", prog);
			return 2;
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument", argv[optind]);
	if (key_file && auth_load(&auth, key_file, &err) < 0) {
		log_err("%s", err.msg);
		return 1;
	}

	/* Signals are taken by sigwaitinfo in this thread alone: block them
	 * before libmicrohttpd starts its threads, which inherit the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	int stop_fd = eventfd(0, EFD_CLOEXEC);
	if (stop_fd < 0) {
		log_err("eventfd: %s", strerror(errno));
		return 1;
	}
	upstream_configure(socket_path, stop_fd);
	if (http_listen_open(&lis, listen_spec, &err) < 0) {
		log_err("%s", err.msg);
		close(stop_fd);
		return 1;
	}
	if (http_server_start(&srv, &cfg, lis.fd, &err) < 0) {
		log_err("%s", err.msg);
		http_listen_close(&lis);
		close(stop_fd);
		return 1;
	}
	log_notice("%s %s: listening on %s%s for stratad at %s%s", prog, PACKAGE_VERSION, lis.where,
		   lis.activated ? " (socket activation)" : "", upstream_where(),
		   auth.n ? ", API keys required" : "");
	sd_notifyf(0, "READY=1\nSTATUS=serving on %s", lis.where);

	serve_until_signal(srv, &set, stop_fd, grace);
	http_server_stop(srv);
	http_listen_close(&lis);
	close(stop_fd);
	log_notice("%s: stopped", prog);
	return 0;
}
