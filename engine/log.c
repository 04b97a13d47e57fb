/* log.c: see log.h. One fprintf per line so concurrent threads do not interleave. */
#include "engine/log.h"

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
	char line[2048];
	int n;
	va_list ap;

	if (level > log_get_level())
		return;
	if (log_prefix < 0)
		log_prefix = getenv("JOURNAL_STREAM") || !isatty(STDERR_FILENO);
	if (log_prefix)
		n = snprintf(line, sizeof line, "<%d>", (int)level);
	else
		n = snprintf(line, sizeof line, "%s: ", words[level & 7]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	line[n] = '\0';
	fputs(line, stderr);
}
