/* signals.h: SIGTERM, SIGINT and SIGHUP turned into bytes on a pipe the event
 * loop watches. A handler, not a blocked mask plus signalfd: OpenBLAS starts
 * its threads before main() runs, so no mask set in main() could cover them,
 * and a signal delivered to one of them would take its default action. */
#ifndef STRATA_DAEMON_SIGNALS_H
#define STRATA_DAEMON_SIGNALS_H

/* Install the handlers; 0 or -errno. Call once, early in main(). */
int signals_init(void);
/* The non-blocking read end: readable when a signal arrived. */
int signals_fd(void);
/* The next signal number received, or 0 when none is pending. */
int signals_next(void);

#endif
