/* settings.c: see settings.h. One table of options serves both the command line
 * and the file, so the two cannot drift apart. */
#include "config.h"

#include "common/parse.h"
#include "daemon/settings.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "engine/options.h"

enum opt_id {
	OPT_MODEL = 256,
	OPT_SOCKET,
	OPT_CONFIG,
	OPT_MAX_CLIENTS,
	OPT_MAX_CLIENTS_PER_UID,
	OPT_IDLE_TIMEOUT,
	OPT_FRAME_TIMEOUT,
	OPT_MAX_QUEUE,
	OPT_MAX_FRAME,
	OPT_MAX_TOKENS,
	OPT_SHUTDOWN_TIMEOUT,
	OPT_LOG_LEVEL,
	OPT_HELP,
	OPT_VERSION,
	OPT_ENGINE_FIRST = 1000, /* the engine's options (engine/options.h) from here */
};

static const struct option long_opts[] = {
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
	{ "max-clients-per-uid", required_argument, NULL, OPT_MAX_CLIENTS_PER_UID },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "frame-timeout", required_argument, NULL, OPT_FRAME_TIMEOUT },
	{ "max-queue", required_argument, NULL, OPT_MAX_QUEUE },
	{ "max-frame", required_argument, NULL, OPT_MAX_FRAME },
	{ "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
	{ "shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

void daemon_usage(FILE *f)
{
	fprintf(f,
		"usage: stratad --model FILE [OPTIONS]\n"
		"\n"
		"Serves a GGUF llama model over a Unix socket (protocol strata.v1), streaming\n"
		"the weights that do not fit --memory-budget from disk.\n"
		"\n"
		"  --model FILE            GGUF model to serve (required)\n"
		"  --socket PATH           listening socket (default: $RUNTIME_DIRECTORY/strata.sock,\n"
		"                          else $XDG_RUNTIME_DIR/strata.sock, else /run/strata/strata.sock;\n"
		"                          ignored under socket activation)\n"
		"  --config FILE           settings file (default %s if it exists)\n"
		"  --max-clients N         connections at once (default 64)\n"
		"  --max-clients-per-uid N connections at once of one user (default: half of --max-clients)\n"
		"  --idle-timeout SEC      close a connection idle this long; 0 never (default 300)\n"
		"  --frame-timeout SEC     close a connection whose request frame takes longer to\n"
		"                          arrive whole; 0 no limit (default 30)\n"
		"  --max-queue N           requests waiting for a free sequence (default 64)\n"
		"  --max-frame BYTES       largest protocol frame accepted (default 1048576)\n"
		"  --max-tokens N          cap on tokens generated per request (default: context)\n"
		"  --shutdown-timeout SEC  after SIGTERM, how long running requests may finish (default 10)\n"
		"  --log-level LEVEL       err, warning, notice, info, debug (default info)\n"
		"  --help, --version\n"
		"The engine's options:\n",
		STRATAD_DEFAULT_CONFIG);
	engine_options_usage(f, true);
}

void daemon_config_default(struct daemon_config *c)
{
	memset(c, 0, sizeof *c);
	engine_config_default(&c->engine);
	c->engine.n_slots = 4;
	/* under systemd (CacheDirectory=) the KV cache pages and persists there */
	const char *cache = getenv("CACHE_DIRECTORY");
	if (cache && *cache)
		snprintf(c->engine.kv_cache_dir, sizeof c->engine.kv_cache_dir, "%.*s/kv",
			 (int)strcspn(cache, ":"), cache);
	c->max_clients = 64;
	c->idle_timeout = 300;
	c->frame_timeout = 30;
	c->max_queue = 64;
	c->max_frame = 1u << 20;
	c->shutdown_timeout = 10;
	c->log_level = LOG_LVL_INFO;
}

void daemon_default_socket(char *buf, size_t cap)
{
	const char *rt = getenv("RUNTIME_DIRECTORY");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (rt && *rt) {
		/* systemd may list several directories separated by ':'; use the first */
		size_t n = strcspn(rt, ":");
		snprintf(buf, cap, "%.*s/strata.sock", (int)n, rt);
	} else if (xdg && *xdg) {
		snprintf(buf, cap, "%s/strata.sock", xdg);
	} else {
		snprintf(buf, cap, "/run/strata/strata.sock");
	}
}

static int opt_u32(const char *name, const char *s, uint32_t min, uint32_t *out, struct st_err *err)
{
	uint32_t v;
	if (parse_u32(s, &v) < 0 || v < min)
		return st_errf(err, -EINVAL, "%s: '%s' is not an integer >= %u", name, s, min);
	*out = v;
	return 0;
}

/* Apply one option, from either source. `name` is for messages. */
static int apply(struct daemon_config *c, int id, const char *name, const char *val, struct st_err *err)
{
	int rc = 0;

	switch (id) {
	case OPT_MODEL:
		if (strlen(val) >= sizeof c->model)
			return st_errf(err, -EINVAL, "%s: path too long", name);
		snprintf(c->model, sizeof c->model, "%s", val);
		break;
	case OPT_SOCKET:
		if (strlen(val) >= sizeof c->socket)
			return st_errf(err, -EINVAL, "%s: '%s' is longer than a Unix socket path may be (%zu)",
				       name, val, sizeof c->socket - 1);
		snprintf(c->socket, sizeof c->socket, "%s", val);
		break;
	case OPT_MAX_CLIENTS: rc = opt_u32(name, val, 1, &c->max_clients, err); break;
	case OPT_MAX_CLIENTS_PER_UID: rc = opt_u32(name, val, 1, &c->max_clients_per_uid, err); break;
	case OPT_IDLE_TIMEOUT: rc = opt_u32(name, val, 0, &c->idle_timeout, err); break;
	case OPT_FRAME_TIMEOUT: rc = opt_u32(name, val, 0, &c->frame_timeout, err); break;
	case OPT_MAX_QUEUE: rc = opt_u32(name, val, 0, &c->max_queue, err); break;
	case OPT_MAX_FRAME: rc = opt_u32(name, val, 64, &c->max_frame, err); break;
	case OPT_MAX_TOKENS: rc = opt_u32(name, val, 0, &c->max_tokens, err); break;
	case OPT_SHUTDOWN_TIMEOUT: rc = opt_u32(name, val, 0, &c->shutdown_timeout, err); break;
	case OPT_LOG_LEVEL:
		if (log_parse_level(val, &c->log_level) < 0)
			rc = st_errf(err, -EINVAL, "%s: '%s' is not err, warning, notice, info or debug",
				     name, val);
		break;
	default:
		rc = st_errf(err, -EINVAL, "%s: not a setting", name);
	}
	return rc;
}

/* A setting by its long name, from the file or the command line: the engine's
 * table first, then the daemon's own. -ENOENT when neither knows it. */
static int apply_setting(struct daemon_config *c, const char *key, const char *shown, const char *val,
			 struct st_err *err)
{
	int rc = engine_option_apply(&c->engine, key, shown, val, err);
	if (rc != -ENOENT)
		return rc;
	for (const struct option *o = long_opts; o->name; o++)
		if (strcmp(o->name, key) == 0 && o->val != OPT_CONFIG && o->val != OPT_HELP &&
		    o->val != OPT_VERSION)
			return apply(c, o->val, shown, val, err);
	return -ENOENT;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* A settings file is small text: these bound what a wrong --config costs. */
#define SETTINGS_MAX_BYTES (1u << 20)
#define SETTINGS_MAX_LINE 8191 /* bytes, without the newline */

static const char *file_kind(mode_t m)
{
	return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device" :
	       S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* All of a settings file into *out (malloc'd, NUL-terminated; the caller
 * frees it; NULL for /dev/null, which holds no settings), *len bytes. Opened
 * without blocking (a FIFO would wait for a writer) and taken only when it is
 * a regular file of at most SETTINGS_MAX_BYTES (/dev/zero would never end).
 * 0, 1 when it does not exist and need not, or -errno with a message. */
static int slurp(const char *path, bool must_exist, char **out, size_t *len, struct st_err *err)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int rc, fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT && !must_exist)
			return 1;
		return st_errf(err, -errno, "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		rc = st_errf(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) {
		/* the null device: "no settings", as tests and scripts say it */
		rc = 0;
		*out = NULL;
		*len = 0;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = st_errf(err, -EINVAL, "%s is %s, not a settings file", path, file_kind(st.st_mode));
		goto out;
	}
	if (st.st_size > SETTINGS_MAX_BYTES) {
		rc = st_errf(err, -EFBIG, "%s: %lld bytes; a settings file may hold at most %u (1 MiB)", path,
			     (long long)st.st_size, SETTINGS_MAX_BYTES);
		goto out;
	}
	/* read up to one byte past the cap: the file may grow while we read */
	buf = malloc(SETTINGS_MAX_BYTES + 2);
	if (!buf) {
		rc = st_errf(err, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + got, SETTINGS_MAX_BYTES + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = st_errf(err, -errno, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > SETTINGS_MAX_BYTES) {
			rc = st_errf(err, -EFBIG, "%s: more than %u bytes; a settings file may hold at most "
				     "1 MiB", path, SETTINGS_MAX_BYTES);
			goto out;
		}
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int daemon_config_parse(struct daemon_config *c, const char *path, const char *text, size_t len,
			struct st_err *err)
{
	char line[SETTINGS_MAX_LINE + 1];
	size_t pos = 0;
	unsigned lineno = 0;
	int rc = 0;

	if (len > SETTINGS_MAX_BYTES)
		return st_errf(err, -EFBIG, "%s: %zu bytes; a settings file may hold at most %u (1 MiB)",
			       path, len, SETTINGS_MAX_BYTES);
	/* a UTF-8 byte order mark, as some editors write, is not part of the first key */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *start = text + pos, *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;
		pos += n + (nl != NULL);
		lineno++;
		if (n > SETTINGS_MAX_LINE) {
			rc = st_errf(err, -EINVAL, "%s:%u: a line of %zu bytes; lines may have at most %d",
				     path, lineno, n, SETTINGS_MAX_LINE);
			break;
		}
		const char *nul = memchr(start, '\0', n);
		if (nul) {
			rc = st_errf(err, -EINVAL, "%s:%u: a NUL byte at column %zu (not a text file?)", path,
				     lineno, (size_t)(nul - start) + 1);
			break;
		}
		memcpy(line, start, n);
		line[n] = '\0';
		char *s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			rc = st_errf(err, -EINVAL, "%s:%u: expected 'key = value'", path, lineno);
			break;
		}
		*eq = '\0';
		char *key = trim(s), *val = trim(eq + 1);
		char where[64];
		snprintf(where, sizeof where, "%s:%u", path, lineno);
		char name[160];
		snprintf(name, sizeof name, "%.60s: %.90s", where, key);
		rc = apply_setting(c, key, name, val, err);
		if (rc == -ENOENT)
			rc = st_errf(err, -EINVAL, "%s:%u: unknown setting '%s'", path, lineno, key);
		if (rc < 0)
			break;
	}
	return rc < 0 ? rc : 0;
}

static int read_file(struct daemon_config *c, const char *path, bool must_exist, struct st_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = slurp(path, must_exist, &text, &len, err);

	if (rc != 0)
		return rc < 0 ? rc : 0;
	snprintf(c->config_file, sizeof c->config_file, "%s", path);
	rc = daemon_config_parse(c, path, text, len, err);
	free(text);
	return rc;
}

int daemon_config_load(struct daemon_config *c, int argc, char **argv, struct st_err *err)
{
	const char *config = NULL;
	struct option opts[64];
	size_t n_own = 0;
	int opt, rc;

	/* the daemon's options, then the engine's */
	while (long_opts[n_own].name) {
		opts[n_own] = long_opts[n_own];
		n_own++;
	}
	if (engine_options_getopt(opts + n_own, sizeof opts / sizeof opts[0] - n_own,
				  OPT_ENGINE_FIRST) < 0)
		return st_errf(err, -ENOSPC, "too many options (a bug)");

	/* First pass: only --config/--help/--version, so the file is applied first. */
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == OPT_CONFIG)
			config = optarg;
		else if (opt == OPT_HELP)
			c->show_help = true;
		else if (opt == OPT_VERSION)
			c->show_version = true;
	}
	if (c->show_help || c->show_version)
		return 0;
	rc = read_file(c, config ? config : STRATAD_DEFAULT_CONFIG, config != NULL, err);
	if (rc < 0)
		return rc;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (opt == '?')
			return st_errf(err, -EINVAL, "unknown option '%s' (try --help)", argv[optind - 1]);
		if (opt == ':')
			return st_errf(err, -EINVAL, "option '%s' needs a value", argv[optind - 1]);
		if (opt == OPT_CONFIG)
			continue;
		if (opt >= OPT_ENGINE_FIRST) {
			rc = engine_options_getopt_apply(&c->engine, opt, OPT_ENGINE_FIRST, optarg, err);
			if (rc < 0)
				return rc;
			continue;
		}
		const char *name = NULL;
		for (const struct option *o = long_opts; o->name; o++)
			if (o->val == opt)
				name = o->name;
		char flag[64];
		snprintf(flag, sizeof flag, "--%s", name ? name : "?");
		rc = apply(c, opt, flag, optarg, err);
		if (rc < 0)
			return rc;
	}
	if (optind < argc)
		return st_errf(err, -EINVAL, "unexpected argument '%s' (try --help)", argv[optind]);
	if (!c->model[0])
		return st_errf(err, -EINVAL, "no model: give --model FILE (or 'model = FILE' in %s)",
			       STRATAD_DEFAULT_CONFIG);
	c->engine.model_path = c->model;
	if (c->max_clients_per_uid == 0) /* default: one user may take half the slots */
		c->max_clients_per_uid = c->max_clients > 1 ? c->max_clients / 2 : 1;
	return 0;
}
