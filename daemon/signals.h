/* signals.h: SIGTERM, SIGINT and SIGHUP turned into bytes on a pipe the event
 * loop watches. A handler, not a blocked mask plus signalfd: OpenBLAS starts
 * its threads before main() runs, so no mask set in main() could cover them,
 * and a signal delivered to one of them would take its default action.
 * Before the event loop runs (settings, binding, loading the model) nobody
 * reads the pipe, so there SIGTERM and SIGINT end the process from the
 * handler itself: the socket file this process bound is removed, a line
 * "stopping during start-up" goes to stderr, and the exit status is
 * SIGNALS_STARTUP_EXIT. */
#ifndef STRATA_DAEMON_SIGNALS_H
#define STRATA_DAEMON_SIGNALS_H

/* stratad's exit status when SIGTERM/SIGINT stop it during start-up: 0, as
 * when they stop it later (a requested stop, not a failure; systemd does not
 * restart it). */
#define SIGNALS_STARTUP_EXIT 0

/* Install the handlers; 0 or -errno. Call once, early in main(). */
int signals_init(void);
/* The socket file this process bound (not one systemd passed), for the
 * handler to remove if start-up is stopped; NULL forgets it. Copied. */
void signals_set_socket(const char *path);
/* The event loop watches signals_fd() from now on: SIGTERM/SIGINT become
 * bytes on the pipe, for a graceful drain. */
void signals_loop_started(void);
/* The non-blocking read end: readable when a signal arrived. */
int signals_fd(void);
/* The next signal number received, or 0 when none is pending. */
int signals_next(void);

#endif
