/* options.h: the one table of engine options (threads, context, budget, io,
 * KV cache...), parsed and checked in one place for every program that opens
 * an engine: stratad (command line and settings file), strata-model and
 * strata-bench. A program adds its own options beside these; it never parses
 * an engine option itself, so the programs cannot drift apart. */
#ifndef STRATA_ENGINE_OPTIONS_H
#define STRATA_ENGINE_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/err.h"
#include "engine/engine.h"

/* Which programs show an option (all of them accept every option). */
enum engine_option_scope {
	ENGINE_OPT_ALL,	   /* everywhere */
	ENGINE_OPT_SERVE,  /* meaningful with several sequences: stratad, strata-bench */
};

struct engine_option {
	const char *name;  /* long name without "--", as in settings files: "ctx-size" */
	const char *arg;   /* the value's name for usage ("N", "SIZE"); NULL: a flag */
	bool optional_arg; /* a flag that also takes =VALUE ("--mlock=no") */
	const char *help;  /* one line, with the default */
	enum engine_option_scope scope;
	/* Check val and store it in c. `name` is how the person wrote it (for messages:
	 * "--ctx-size", "stratad.conf:3: ctx-size"). 0 or -EINVAL with a message. */
	int (*apply)(struct engine_config *c, const char *name, const char *val, struct st_err *err);
};

/* The table, ended by an entry with name NULL. */
extern const struct engine_option engine_options[];

/* The option called `name` (no dashes), or NULL. */
const struct engine_option *engine_option_find(const char *name);

/* Apply the option called `key` (no dashes): 0, -ENOENT when it is not an
 * engine option (the caller tries its own), or -EINVAL with a message that
 * starts with `shown` (how the person wrote the option). */
int engine_option_apply(struct engine_config *c, const char *key, const char *shown,
			const char *val, struct st_err *err);

/* Append the table to a getopt_long option array: entry i gets
 * val = first_val + i. out has room for cap entries; the terminating zero
 * entry is written too. Returns the number of entries written (without the
 * terminator), or -ENOSPC. */
int engine_options_getopt(struct option *out, size_t cap, int first_val);

/* getopt_long returned `val`: when it is one of ours (first_val + i), apply it
 * with optarg and return 0 or -EINVAL (message in err); -ENOENT otherwise. */
int engine_options_getopt_apply(struct engine_config *c, int val, int first_val,
				const char *optarg_value, struct st_err *err);

/* Usage lines for the options of `scope` (ALL also prints SERVE ones when
 * serving is true), two-space indented like the programs' own. */
void engine_options_usage(FILE *f, bool serving);

#endif
