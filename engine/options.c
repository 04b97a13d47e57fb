/* options.c: the engine option table (see options.h). Each option checks its
 * value here, once, whichever program or settings file it comes from. */
#include "engine/options.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/parse.h"
#include "kernels/types.h"
#include "tokenizer/chat.h"

/* Bounds: generous, but a typo cannot ask for the impossible. */
#define OPT_MAX_THREADS 1024
#define OPT_MAX_CTX (1u << 24)	   /* 16 Mi positions: beyond any model's training */
#define OPT_MAX_SLOTS 1024
#define OPT_MAX_BATCH (1u << 16)
#define OPT_MAX_PREFETCH 64

static int u32_in(const char *name, const char *val, uint32_t min, uint32_t max, uint32_t *out,
		  struct st_err *err)
{
	uint32_t v;
	if (parse_u32(val, &v) < 0 || v < min || v > max)
		return st_errf(err, -EINVAL, "%s: '%s' is not an integer from %u to %u", name, val, min,
			       max);
	*out = v;
	return 0;
}

static int o_threads(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	uint32_t v = 0;
	int rc = u32_in(name, val, 1, OPT_MAX_THREADS, &v, err);
	if (rc == 0)
		c->threads = (int)v;
	return rc;
}

static int o_ctx(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	return u32_in(name, val, 2, OPT_MAX_CTX, &c->ctx_size, err);
}

static int o_parallel(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	return u32_in(name, val, 1, OPT_MAX_SLOTS, &c->n_slots, err);
}

static int o_batch(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	return u32_in(name, val, 1, OPT_MAX_BATCH, &c->batch_size, err);
}

/* A size; `zero` says what 0 means, for the message about a size that rounds to it. */
static int size_opt(const char *name, const char *val, const char *zero, uint64_t *out,
		    struct st_err *err)
{
	int rc = parse_size(val, out);
	if (rc == -ERANGE && strchr(val, '.'))
		return st_errf(err, -EINVAL, "%s: '%s' rounds to 0 bytes (0 means %s: say 0 if you "
			       "mean it)", name, val, zero);
	if (rc == -ERANGE)
		return st_errf(err, -EINVAL, "%s: '%s' is more than 2^64 bytes", name, val);
	if (rc < 0)
		return st_errf(err, -EINVAL, "%s: '%s' is not a size like 512M or 6G", name, val);
	return 0;
}

static int o_budget(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	return size_opt(name, val, "no budget", &c->memory_budget, err);
}

static int o_io(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	if (strcmp(val, "uring") == 0)
		c->io = ENGINE_IO_URING;
	else if (strcmp(val, "mmap") == 0)
		c->io = ENGINE_IO_MMAP;
	else
		return st_errf(err, -EINVAL, "%s: '%s' is not uring or mmap", name, val);
	return 0;
}

static int o_prefetch(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	return u32_in(name, val, 0, OPT_MAX_PREFETCH, &c->prefetch, err);
}

static int o_mlock(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	if (parse_bool(val, &c->mlock) < 0)
		return st_errf(err, -EINVAL, "%s: '%s' is not yes or no", name, val);
	return 0;
}

static int o_kv_type(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	enum st_type t;
	if (st_type_parse(val, &t) < 0 || (t != ST_F16 && t != ST_F32 && t != ST_Q8_0 && t != ST_Q4_0))
		return st_errf(err, -EINVAL, "%s: '%s' is not f16, f32, q8_0 or q4_0", name, val);
	c->kv_type = t;
	return 0;
}

static int o_kv_budget(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	return size_opt(name, val, "chosen from the memory budget", &c->kv_budget, err);
}

static int o_kv_disk(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	return size_opt(name, val, "no limit", &c->kv_disk_budget, err);
}

static int o_kv_dir(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	if (strlen(val) >= sizeof c->kv_cache_dir)
		return st_errf(err, -EINVAL, "%s: the path is longer than %zu bytes", name,
			       sizeof c->kv_cache_dir - 1);
	snprintf(c->kv_cache_dir, sizeof c->kv_cache_dir, "%s", val);
	return 0;
}

static int o_chat_template(struct engine_config *c, const char *name, const char *val,
			   struct st_err *err)
{
	if (chat_family_parse(val, &(enum chat_family){ 0 }) < 0)
		return st_errf(err, -EINVAL, "%s: '%s' is not one of %s", name, val, chat_family_list());
	snprintf(c->chat_template, sizeof c->chat_template, "%s", val);
	return 0;
}

static int o_draft(struct engine_config *c, const char *name, const char *val, struct st_err *err)
{
	if (!val[0])
		return st_errf(err, -EINVAL, "%s: give a draft model's file, lookup or none", name);
	if (strcmp(val, "none") == 0) {
		c->draft = DRAFT_NONE;
	} else if (strcmp(val, "lookup") == 0) {
		c->draft = DRAFT_LOOKUP;
	} else {
		if (strlen(val) >= sizeof c->draft_path)
			return st_errf(err, -EINVAL, "%s: the path is longer than %zu bytes", name,
				       sizeof c->draft_path - 1);
		c->draft = DRAFT_MODEL;
		snprintf(c->draft_path, sizeof c->draft_path, "%s", val);
	}
	return 0;
}

static int o_draft_max(struct engine_config *c, const char *name, const char *val,
		       struct st_err *err)
{
	return u32_in(name, val, 1, DRAFT_MAX_TOKENS, &c->draft_max, err);
}

static int o_draft_min(struct engine_config *c, const char *name, const char *val,
		       struct st_err *err)
{
	return u32_in(name, val, 1, DRAFT_MAX_TOKENS, &c->draft_min, err);
}

const struct engine_option engine_options[] = {
	{ "threads", "N", false, "compute threads (default: online cores)", ENGINE_OPT_ALL, o_threads },
	{ "ctx-size", "N", false, "positions per sequence (default: min(model's, 4096))",
	  ENGINE_OPT_ALL, o_ctx },
	{ "parallel", "N", false, "sequences decoded together (default 4 in stratad, else 1)",
	  ENGINE_OPT_SERVE, o_parallel },
	{ "batch-size", "N", false, "most tokens in one pass over the weights (default 512)",
	  ENGINE_OPT_ALL, o_batch },
	{ "memory-budget", "SIZE", false, "memory for weights, KV cache and scratch, e.g. 6G "
	  "(default: all of it in RAM)", ENGINE_OPT_ALL, o_budget },
	{ "io", "uring|mmap", false, "how streamed weights are read (default uring)", ENGINE_OPT_ALL,
	  o_io },
	{ "prefetch", "K", false, "layers read ahead (default: from the budget)", ENGINE_OPT_ALL,
	  o_prefetch },
	{ "mlock", "yes|no", true, "lock resident weights in RAM (default no)", ENGINE_OPT_ALL,
	  o_mlock },
	{ "kv-type", "f16|f32|q8_0|q4_0", false, "KV cache precision (default f16)", ENGINE_OPT_ALL,
	  o_kv_type },
	{ "kv-budget", "SIZE", false, "of the memory budget, the KV cache's (default: a quarter, "
	  "at least one full context)", ENGINE_OPT_ALL, o_kv_budget },
	{ "kv-cache-dir", "DIR", false, "where the KV cache pages to and keeps prefixes across "
	  "restarts (default: a temporary file)", ENGINE_OPT_ALL, o_kv_dir },
	{ "kv-disk-budget", "SIZE", false, "disk for cached prefixes (default 8G; 0: no limit)",
	  ENGINE_OPT_ALL, o_kv_disk },
	{ "chat-template", "NAME", false, "chat template family instead of the model's (chatml, "
	  "llama3, ...)", ENGINE_OPT_SERVE, o_chat_template },
	{ "draft", "FILE|lookup", false, "speculative decoding: drafts from a small model with "
	  "the same vocabulary (resident, counted in the budget), from n-grams of the context, "
	  "or none (the default)", ENGINE_OPT_ALL, o_draft },
	{ "draft-max", "K", false, "most draft tokens verified per pass (default 8)", ENGINE_OPT_ALL,
	  o_draft_max },
	{ "draft-min", "K", false, "fewest draft tokens per pass when drafts are rejected "
	  "(default 1)", ENGINE_OPT_ALL, o_draft_min },
	{ NULL, NULL, false, NULL, ENGINE_OPT_ALL, NULL },
};

const struct engine_option *engine_option_find(const char *name)
{
	for (const struct engine_option *o = engine_options; o->name; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

int engine_option_apply(struct engine_config *c, const char *key, const char *shown,
			const char *val, struct st_err *err)
{
	const struct engine_option *o = engine_option_find(key);
	if (!o)
		return -ENOENT;
	if (!val && !o->optional_arg && o->arg)
		return st_errf(err, -EINVAL, "%s needs a value (%s)", shown, o->arg);
	return o->apply(c, shown, val, err);
}

int engine_options_getopt(struct option *out, size_t cap, int first_val)
{
	size_t n = 0;
	for (const struct engine_option *o = engine_options; o->name; o++, n++) {
		if (n + 1 >= cap)
			return -ENOSPC;
		out[n] = (struct option){
			o->name,
			!o->arg ? no_argument : o->optional_arg ? optional_argument : required_argument,
			NULL, first_val + (int)n,
		};
	}
	out[n] = (struct option){ NULL, 0, NULL, 0 };
	return (int)n;
}

int engine_options_getopt_apply(struct engine_config *c, int val, int first_val,
				const char *optarg_value, struct st_err *err)
{
	int n = 0;
	while (engine_options[n].name)
		n++;
	if (val < first_val || val >= first_val + n)
		return -ENOENT;
	const struct engine_option *o = &engine_options[val - first_val];
	char shown[64];
	snprintf(shown, sizeof shown, "--%s", o->name);
	return o->apply(c, shown, optarg_value, err);
}

void engine_options_usage(FILE *f, bool serving)
{
	for (const struct engine_option *o = engine_options; o->name; o++) {
		char left[64];
		if (o->scope == ENGINE_OPT_SERVE && !serving)
			continue;
		if (!o->arg)
			snprintf(left, sizeof left, "--%s", o->name);
		else if (o->optional_arg)
			snprintf(left, sizeof left, "--%s[=%s]", o->name, o->arg);
		else
			snprintf(left, sizeof left, "--%s %s", o->name, o->arg);
		fprintf(f, "  %-24s%s\n", left, o->help);
	}
}
