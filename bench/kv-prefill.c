/* kv-prefill: writes into --kv-cache-dir the KV cache of prompts, as if requests with
 * those prompts had run, without computing it: for benchmarks of the KV cache's memory
 * and paging on models where computing thousands of prompt tokens takes hours (a
 * 40-billion-parameter model on 2 cores). The rows are random values: a request that
 * reuses them generates noise, as a synthesized model does anyway; their size, their
 * blocks and how the daemon moves them are real. Not for serving.
 *
 *   kv-prefill --model FILE --kv-cache-dir DIR [ENGINE OPTIONS] TEXT-FILE...
 *
 * Each file's text is tokenized as stratad tokenizes a prompt (the model's BOS), and
 * every position of it gets its K and V rows. The engine opens as stratad would with the
 * same options (--kv-type and --memory-budget matter: the blocks are keyed to the model
 * file and the cache type). Prints one line per file: its tokens and the blocks cached. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "engine/engine.h"
#include "engine/options.h"

#define EXIT_USAGE 2
#define O_ENGINE 1000

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (n + 4096 > cap) {
			char *p = realloc(buf, cap = cap ? 2 * cap : 65536);
			if (!p) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = p;
		}
		size_t k = fread(buf + n, 1, cap - n, f);
		n += k;
		if (k == 0)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: kv-prefill --model FILE --kv-cache-dir DIR [OPTIONS] TEXT-FILE...\n"
		   "  the KV cache of each file's text (random rows, not computed) into DIR\n"
		   "  --model FILE           the GGUF model the cache is for\n"
		   "the engine's options (as stratad's):\n");
	engine_options_usage(f, true);
}

int main(int argc, char **argv)
{
	engine_setup_process(argv);
	struct engine_config cfg;
	struct st_err err = { "" };
	struct option opts[64] = { { "model", required_argument, NULL, 'm' },
				   { "help", no_argument, NULL, 'h' } };
	int n_own = 2, c;
	engine_config_default(&cfg);
	engine_options_getopt(opts + n_own, sizeof opts / sizeof opts[0] - n_own, O_ENGINE);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'm') {
			cfg.model_path = optarg;
		} else if (c == 'h') {
			usage(stdout);
			return 0;
		} else if (engine_options_getopt_apply(&cfg, c, O_ENGINE, optarg, &err) < 0) {
			fprintf(stderr, "kv-prefill: %s\n", err.msg[0] ? err.msg : "unknown option");
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!cfg.model_path || !cfg.kv_cache_dir[0] || optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	log_set_level(LOG_LVL_NOTICE);
	struct engine *e = NULL;
	if (engine_open(&cfg, &e, &err) < 0) {
		fprintf(stderr, "kv-prefill: %s\n", err.msg);
		return 1;
	}
	int rc = 0;
	for (int i = optind; i < argc && rc == 0; i++) {
		size_t len = 0;
		char *text = slurp(argv[i], &len);
		int32_t *ids = NULL;
		uint32_t n = 0;
		if (!text || engine_tokenize(e, text, len, -1, false, &ids, &n) < 0) {
			fprintf(stderr, "kv-prefill: %s: %s\n", argv[i], text ? "cannot tokenize" : strerror(errno));
			rc = 1;
		} else if (n > engine_n_ctx(e)) {
			fprintf(stderr, "kv-prefill: %s: %u tokens, more than --ctx-size %u\n", argv[i], n,
				engine_n_ctx(e));
			rc = 1;
		} else if (engine_slot_fill(e, 0, ids, n, 0x9e3779b97f4a7c15ull + (uint64_t)i, &err) < 0) {
			fprintf(stderr, "kv-prefill: %s: %s\n", argv[i], err.msg);
			rc = 1;
		} else {
			engine_slot_reset(e, 0); /* its full blocks stay cached */
			engine_kv_flush(e);
			printf("%s: %u tokens, %u blocks\n", argv[i], n, n / engine_kv_block_pos());
		}
		free(ids);
		free(text);
	}
	engine_close(e);
	return rc;
}
