/* stratad: the strata daemon. Reads its settings, loads the model (the
 * weights that fit the budget become resident, the rest will stream), opens
 * the socket (activated or bound), then serves until SIGTERM. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/listen.h"
#include "daemon/notify.h"
#include "daemon/server.h"
#include "daemon/settings.h"
#include "daemon/signals.h"
#include "engine/engine.h"
#include "common/log.h"

int main(int argc, char **argv)
{
	struct daemon_config cfg;
	struct st_err err = { "" };
	struct engine *e = NULL;
	struct listener lis = { .fd = -1 };
	int rc;

	engine_setup_process(argv); /* may re-execute us with OpenBLAS set up */
	/* First of all: SIGTERM/SIGINT during start-up (settings, a model load
	 * of minutes) end the process at once (signals.h). */
	rc = signals_init();
	if (rc < 0) {
		log_err("cannot install signal handlers: %s", strerror(-rc));
		return 1;
	}
	daemon_config_default(&cfg);
	rc = daemon_config_load(&cfg, argc, argv, &err);
	if (cfg.show_help) {
		daemon_usage(stdout);
		return 0;
	}
	if (cfg.show_version) {
		printf("stratad %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (rc < 0) {
		log_err("%s", err.msg);
		return 2;
	}
	log_set_level(cfg.log_level);
	if (cfg.config_file[0])
		log_info("settings read from %s", cfg.config_file);

	/* The socket comes first when we bind it ourselves, so that a second
	 * daemon on the same path fails before spending minutes loading weights. */
	char path[sizeof cfg.socket];
	if (cfg.socket[0])
		snprintf(path, sizeof path, "%s", cfg.socket);
	else
		daemon_default_socket(path, sizeof path);
	rc = listener_open(&lis, path, &err);
	if (rc < 0) {
		log_err("%s", err.msg);
		return 1;
	}
	if (!lis.activated)
		signals_set_socket(lis.path); /* removed if start-up is stopped from here on */

	notify_status("Loading %s", cfg.model);
	log_info("loading %s", cfg.model);
	rc = engine_open(&cfg.engine, &e, &err);
	if (rc < 0) {
		log_err("%s", err.msg);
		listener_close(&lis);
		return 1;
	}
	rc = server_run(&cfg, e, &lis);
	engine_close(e);
	return rc < 0 ? 1 : 0;
}
