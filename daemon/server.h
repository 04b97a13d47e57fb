/* server.h: stratad's event loop: accepts connections, reads frames,
 * answers Tokenize/Detokenize/Status itself, hands Generate to the scheduler,
 * streams the scheduler's events back, talks to systemd, and drains on
 * SIGTERM. Everything here runs on one thread and never blocks on compute. */
#ifndef STRATA_DAEMON_SERVER_H
#define STRATA_DAEMON_SERVER_H

#include "daemon/listen.h"
#include "daemon/settings.h"

struct engine;

/* Serve until SIGTERM/SIGINT and the drain that follows. Returns 0 on a clean
 * stop, -errno on a setup failure (logged). `l` is open; it is closed here.
 * signals_init() must have run: the loop reads SIGTERM/SIGINT from its pipe. */
int server_run(const struct daemon_config *cfg, struct engine *e, struct listener *l);

#endif
