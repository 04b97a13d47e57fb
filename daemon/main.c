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

/* Loading the resident weights of a 40 GB model takes a while: systemd's
 * STATUS= says how far it got (systemctl status shows it), and the log gets a
 * line every 10%. */
struct load_report {
	const char *path;
	int last_logged;  /* tens of percent already logged, or -1 */
	int last_status;  /* percent last sent as STATUS= */
};

static void on_load_progress(void *user, uint64_t done, uint64_t total)
{
	struct load_report *lr = user;
	int pct = total ? (int)(done * 100 / total) : 100;
	if (pct != lr->last_status) {
		notify_status("Loading %s: %d%% of %.1f GiB resident weights read", lr->path, pct,
			      (double)total / (1u << 30));
		lr->last_status = pct;
	}
	if (pct / 10 > lr->last_logged) {
		lr->last_logged = pct / 10;
		log_info("loading: %d%% of %.1f GiB resident weights read", pct,
			 (double)total / (1u << 30));
	}
}

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
	struct load_report lr = { .path = cfg.model, .last_logged = -1 };
	cfg.engine.load_progress = on_load_progress;
	cfg.engine.load_progress_user = &lr;
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
