/* notify.h: what stratad tells systemd (READY=1, STATUS=, WATCHDOG=1,
 * STOPPING=1). Every call is a no-op when NOTIFY_SOCKET is unset. */
#ifndef STRATA_DAEMON_NOTIFY_H
#define STRATA_DAEMON_NOTIFY_H

#include <stdint.h>

void notify_ready(const char *status);
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notify_stopping(const char *status);
void notify_watchdog(void);
/* The interval at which WATCHDOG=1 should be sent (half of WATCHDOG_USEC),
 * in microseconds, or 0 when systemd does not watch us. */
uint64_t notify_watchdog_interval_usec(void);

#endif
