/* settings.h: stratad's settings, from SYSCONFDIR/strata/stratad.conf (or
 * --config) and then the command line, which wins. The file takes the long
 * option names as keys: `memory-budget = 6G`, `# comments`, blank lines. */
#ifndef STRATA_DAEMON_SETTINGS_H
#define STRATA_DAEMON_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/engine.h"
#include "common/err.h"
#include "common/log.h"

/* The configured sysconfdir (daemon/local.mk passes it): /etc for the
 * Debian package, /usr/local/etc for make install with the default prefix,
 * where the unit's --config points too. */
#ifndef STRATA_SYSCONFDIR
#error "STRATA_SYSCONFDIR must come from the build (daemon/local.mk)"
#endif
#define STRATAD_DEFAULT_CONFIG STRATA_SYSCONFDIR "/strata/stratad.conf"

struct daemon_config {
	char model[4096];
	char socket[108];	    /* sun_path; empty = the default (see daemon_default_socket) */
	char config_file[4096];	    /* what was read, for the log */
	struct engine_config engine;/* model_path points at .model */
	uint32_t max_clients;	    /* connections at once */
	uint32_t max_clients_per_uid; /* connections at once of one user (peer uid); 0 = half of max_clients */
	uint32_t idle_timeout;	    /* seconds a connection may sit with nothing to do; 0 = never closed */
	uint32_t frame_timeout;	    /* seconds a begun frame may take to arrive whole; 0 = no limit */
	uint32_t max_queue;	    /* requests waiting for a slot */
	uint32_t max_frame;	    /* bytes of one protocol frame */
	uint32_t max_tokens;	    /* cap on a request's max_tokens; 0 = the context */
	uint32_t shutdown_timeout;  /* seconds running requests may finish after SIGTERM */
	enum log_level log_level;
	bool show_help;
	bool show_version;
};

void daemon_config_default(struct daemon_config *c);

/* Parse argv (after reading the config file it names, or the default file if
 * it exists). Returns 0, or -EINVAL with a message for the person. */
int daemon_config_load(struct daemon_config *c, int argc, char **argv, struct st_err *err);

/* The settings in text[0..len) (a file's bytes; need not be NUL-terminated),
 * over what c holds: `key = value` lines, `#` comments, blank lines, a UTF-8
 * BOM skipped. `path` names the file in messages ("PATH:LINE: ..."). Returns
 * 0, or -EINVAL (a line that is not a setting, too long, with a NUL, an
 * unknown key, a bad value) or -EFBIG (over 1 MiB) with a message; the
 * settings before the bad line stay applied. daemon_config_load reads the
 * file and calls this; fuzz-settings calls it on any bytes. */
int daemon_config_parse(struct daemon_config *c, const char *path, const char *text, size_t len,
			struct st_err *err);

/* $RUNTIME_DIRECTORY/strata.sock under systemd, else $XDG_RUNTIME_DIR/strata.sock,
 * else /run/strata/strata.sock. */
void daemon_default_socket(char *buf, size_t cap);

void daemon_usage(FILE *f);

#endif
