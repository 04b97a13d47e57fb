/* log.c: see log.h. One fprintf per line so concurrent threads do not interleave. */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic int log_level = LOG_LVL_INFO;
static _Atomic int log_prefix = -1; /* -1: decide on first use */

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return (enum log_level)log_level;
}

void log_set_prefix(bool on)
{
	log_prefix = on;
}

int log_parse_level(const char *s, enum log_level *out)
{
	static const struct { const char *name; enum log_level lvl; } names[] = {
		{ "err", LOG_LVL_ERR },		{ "error", LOG_LVL_ERR },
		{ "warning", LOG_LVL_WARNING }, { "warn", LOG_LVL_WARNING },
		{ "notice", LOG_LVL_NOTICE },	{ "info", LOG_LVL_INFO },
		{ "debug", LOG_LVL_DEBUG },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].lvl;
			return 0;
		}
	}
	if (s[0] >= '3' && s[0] <= '7' && s[1] == '\0') {
		*out = (enum log_level)(s[0] - '0');
		return 0;
	}
	return -EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const words[8] = { "emerg", "alert", "crit", "error",
					      "warning", "notice", "info", "debug" };
	char msg[4096], out[4096 + 512];
	char prefix[16];
	va_list ap;

	if (level > log_get_level())
		return;
	if (log_prefix < 0)
		log_prefix = getenv("JOURNAL_STREAM") || !isatty(STDERR_FILENO);
	if (log_prefix)
		snprintf(prefix, sizeof prefix, "<%d>", (int)level);
	else
		snprintf(prefix, sizeof prefix, "%s: ", words[level & 7]);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);

	/* Every line gets the prefix: journald reads the priority per line. */
	size_t n = 0;
	for (const char *line = msg; *line && n < sizeof out - 1;) {
		size_t len = strcspn(line, "\n");
		int w = snprintf(out + n, sizeof out - n, "%s%.*s\n", prefix, (int)len, line);
		if (w < 0 || (size_t)w >= sizeof out - n) {
			n = sizeof out - 1;
			out[n - 1] = '\n';
			break;
		}
		n += (size_t)w;
		line += len;
		if (*line == '\n')
			line++;
	}
	out[n] = '\0';
	fputs(out, stderr); /* one write per message: threads do not interleave lines */
}
