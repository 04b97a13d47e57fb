/* log.h: one logging path for the daemon, the engine and the tools.
 * Lines go to stderr with sd-daemon's "<N>" priority prefix, which journald
 * turns into the record's priority; no timestamps (journald adds them).
 * Off a terminal or under systemd the prefix is written; on a terminal a
 * short level word is written instead so people can read it. */
#ifndef STRATA_COMMON_LOG_H
#define STRATA_COMMON_LOG_H

#include <stdbool.h>

/* syslog priorities, as sd-daemon.h numbers them */
enum log_level {
	LOG_LVL_ERR = 3,
	LOG_LVL_WARNING = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/* Messages above `level` are dropped before they are formatted. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "err", "warning", "notice", "info", "debug" (or 3..7); -EINVAL if unknown. */
int log_parse_level(const char *s, enum log_level *out);
/* Force or suppress the "<N>" prefixes (default: prefixes unless stderr is a tty). */
void log_set_prefix(bool on);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_enabled(lvl) ((lvl) <= log_get_level())
#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...) do { if (log_enabled(LOG_LVL_INFO)) log_msg(LOG_LVL_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_enabled(LOG_LVL_DEBUG)) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
