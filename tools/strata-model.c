/* strata-model: offline tools over GGUF models, used by people, tests and
 * benchmarks: info, tokenize, generate, synth. It links the engine directly
 * (no daemon). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "gguf/gguf.h"
#include "common/log.h"
#include "kernels/blas.h"
#include "engine/model.h"
#include "tokenizer/detok.h"
#include "tokenizer/tokenizer.h"
#include "kernels/types.h"
#include "tools/synth.h"

#define EXIT_USAGE 2

static void usage(FILE *f)
{
	fprintf(f,
		"usage: strata-model COMMAND [OPTIONS]\n"
		"\n"
		"  info FILE                     architecture, hyperparameters, tokenizer, layer sizes\n"
		"  tokenize FILE TEXT            token ids of TEXT (--bos adds BOS, --special parses\n"
		"                                control tokens); works on vocab-only files\n"
		"  generate FILE --prompt TEXT   generate text offline through the engine\n"
		"      -n N                      tokens to generate (default 128)\n"
		"      --temperature T           0 = greedy (default 0.8); --top-k K, --top-p P,\n"
		"                                --min-p P, --repeat-penalty R, --repeat-last-n N\n"
		"      --seed S                  make sampling reproducible (default 0)\n"
		"      --ids                     print 'prompt: ID ...' and 'gen: ID ...' instead of text\n"
		"      --logits OUT.f32          write every step's logits (steps x vocab f32 LE)\n"
		"      --no-bos / --bos          override the model's add-BOS setting\n"
		"      --echo                    print the prompt before the generated text\n"
		"      --ignore-eos              keep generating after an end-of-generation token\n"
		"      --threads N, --ctx-size N, --batch-size N, --kv-type f16|f32,\n"
		"      --memory-budget SIZE, --io uring|mmap, --prefetch K, --mlock\n"
		"      --verbose                 log the memory plan and print timings to stderr\n"
		"  synth OUT.gguf --n-embd E --n-layer L --n-head H --n-head-kv K --n-ff F\n"
		"      --type f32|f16|bf16|q8_0|q4_0 --vocab VOCAB.gguf [--n-vocab N] [--tie] [--seed S]\n"
		"      [--ctx N]\n"
		"                                a random-weight llama model of that shape\n"
		"\n"
		"strata-model %s\n",
		PACKAGE_VERSION);
}

/* An option's value, or a message naming the option and usage's exit. */
static int arg_u32(const char *opt, const char *s, uint32_t *out)
{
	if (parse_u32(s, out) < 0) {
		fprintf(stderr, "strata-model: %s: '%s' is not a non-negative integer\n", opt, s);
		return -EINVAL;
	}
	return 0;
}

static int arg_float(const char *opt, const char *s, float *out)
{
	if (parse_float(s, out) < 0) {
		fprintf(stderr, "strata-model: %s: '%s' is not a number\n", opt, s);
		return -EINVAL;
	}
	return 0;
}

/* ---- info ---- */

static void print_str(struct gguf_str s)
{
	fwrite(s.ptr, 1, s.len, stdout);
}

static int cmd_info(int argc, char **argv)
{
	struct st_err err = { "" };
	struct gguf *g = NULL;
	struct model *m = NULL;
	struct tokenizer *tok = NULL;

	if (argc != 2) {
		fprintf(stderr, "usage: strata-model info FILE\n");
		return EXIT_USAGE;
	}
	if (gguf_open(argv[1], &g, &err) < 0) {
		fprintf(stderr, "strata-model: %s\n", err.msg);
		return 1;
	}
	printf("file:          %s\n", argv[1]);
	printf("gguf:          version %u, %" PRIu64 " keys, %" PRIu64 " tensors, alignment %u, %" PRIu64
	       " bytes\n", gguf_version(g), gguf_n_kv(g), gguf_n_tensors(g), gguf_alignment(g),
	       gguf_file_size(g));
	struct gguf_str s;
	if (gguf_get_str(g, "general.architecture", &s, NULL) == 0) {
		printf("architecture:  ");
		print_str(s);
		printf("\n");
	}
	if (gguf_get_str(g, "general.name", &s, NULL) == 0) {
		printf("name:          ");
		print_str(s);
		printf("\n");
	}
	if (tokenizer_load(g, &tok, &err) == 0) {
		printf("tokenizer:     %s, %d tokens, bos %d, eos %d, add bos %s\n",
		       tokenizer_model_name(tok), tokenizer_n_vocab(tok), tokenizer_bos(tok),
		       tokenizer_eos(tok), tokenizer_add_bos(tok) ? "yes" : "no");
		tokenizer_free(tok);
	} else {
		printf("tokenizer:     none (%s)\n", err.msg);
	}
	int rc = 0;
	if (gguf_n_tensors(g) == 0) {
		printf("tensors:       none (a vocabulary-only file)\n");
		goto out;
	}
	if (model_open(argv[1], &m, &err) < 0) {
		fprintf(stderr, "strata-model: %s\n", err.msg);
		rc = 1;
		goto out;
	}
	const struct model_hparams *hp = &m->hp;
	printf("layers:        %u\n", hp->n_layer);
	printf("embedding:     %u\n", hp->n_embd);
	printf("heads:         %u query, %u key/value, head size %u\n", hp->n_head, hp->n_head_kv,
	       hp->head_dim);
	printf("feed-forward:  %u\n", hp->n_ff);
	printf("vocabulary:    %u\n", hp->n_vocab);
	printf("context:       %u (training)\n", hp->n_ctx_train);
	printf("rms epsilon:   %g\n", (double)hp->rms_eps);
	printf("rope:          base %g, scale %g%s\n", (double)hp->rope_base, (double)hp->rope_scale,
	       m->has_rope_freqs ? ", frequency factors" : "");
	printf("output:        %s\n", m->tied_output ? "tied to token_embd" : "output.weight");
	printf("weights:       %" PRIu64 " bytes (%.2f GiB), mostly %s\n", m->weight_bytes,
	       (double)m->weight_bytes / (1u << 30), st_type_name(m->main_type));
	printf("token_embd:    %s, %" PRIu64 " bytes\n", st_type_name(m->token_embd.type),
	       m->token_embd.size);
	if (!m->tied_output)
		printf("output.weight: %s, %" PRIu64 " bytes\n", st_type_name(m->output.type),
		       m->output.size);
	printf("per layer:\n");
	for (uint32_t l = 0; l < hp->n_layer; l++) {
		const struct model_layer *ly = &m->layers[l];
		printf("  layer %3u: %12" PRIu64 " bytes  (q %s, k %s, v %s, o %s, gate %s, up %s, down %s)\n",
		       l, model_layer_bytes(m, l), st_type_name(ly->wq.type), st_type_name(ly->wk.type),
		       st_type_name(ly->wv.type), st_type_name(ly->wo.type), st_type_name(ly->w_gate.type),
		       st_type_name(ly->w_up.type), st_type_name(ly->w_down.type));
	}
out:
	model_close(m);
	gguf_close(g);
	return rc;
}

/* ---- tokenize ---- */

static int cmd_tokenize(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bos", no_argument, NULL, 'b' },
		{ "special", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	bool bos = false, special = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b': bos = true; break;
		case 's': special = true; break;
		default: return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: strata-model tokenize [--bos] [--special] FILE TEXT\n");
		return EXIT_USAGE;
	}
	struct st_err err = { "" };
	struct gguf *g = NULL;
	struct tokenizer *tok = NULL;
	int32_t *ids = NULL;
	int rc = 1;
	if (gguf_open(argv[optind], &g, &err) < 0 || tokenizer_load(g, &tok, &err) < 0) {
		fprintf(stderr, "strata-model: %s\n", err.msg);
		goto out;
	}
	const char *text = argv[optind + 1];
	size_t len = strlen(text), cap = len + 8;
	ids = malloc(cap * sizeof *ids);
	if (!ids)
		goto out;
	int n = tokenizer_encode(tok, text, len, bos, special, ids, cap);
	if (n < 0) {
		fprintf(stderr, "strata-model: cannot tokenize: %s\n", strerror(-n));
		goto out;
	}
	for (int i = 0; i < n; i++)
		printf(i ? " %d" : "%d", ids[i]);
	printf("\n");
	rc = 0;
out:
	free(ids);
	tokenizer_free(tok);
	gguf_close(g);
	return rc;
}

/* ---- generate ---- */

struct gen_out {
	const struct tokenizer *tok;
	struct detok dt;
	char *piece;	    /* (detok_out_max) */
	bool ids;
	FILE *logits;
	int32_t *gen;	    /* generated ids, for --ids */
	uint32_t n_gen;
	int write_error;
};

static int on_token(void *user, int32_t token, const float *logits, uint32_t n_vocab)
{
	struct gen_out *o = user;
	if (o->logits && fwrite(logits, sizeof(float), n_vocab, o->logits) != n_vocab)
		o->write_error = errno ? errno : EIO;
	if (o->ids) {
		o->gen[o->n_gen++] = token;
		return 0;
	}
	int n = detok_push(&o->dt, token, o->piece, detok_out_max(o->tok));
	if (n > 0) {
		fwrite(o->piece, 1, (size_t)n, stdout);
		fflush(stdout);
	}
	return 0;
}

static int cmd_generate(int argc, char **argv)
{
	enum {
		O_PROMPT = 256, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_REPP, O_REPN, O_SEED, O_IDS, O_LOGITS,
		O_BOS, O_NOBOS, O_ECHO, O_IGNEOS, O_THREADS, O_CTX, O_BATCH, O_KVTYPE, O_BUDGET, O_IO,
		O_PREFETCH, O_MLOCK, O_VERBOSE,
	};
	static const struct option opts[] = {
		{ "prompt", required_argument, NULL, O_PROMPT },
		{ "temperature", required_argument, NULL, O_TEMP },
		{ "temp", required_argument, NULL, O_TEMP },
		{ "top-k", required_argument, NULL, O_TOPK },
		{ "top-p", required_argument, NULL, O_TOPP },
		{ "min-p", required_argument, NULL, O_MINP },
		{ "repeat-penalty", required_argument, NULL, O_REPP },
		{ "repeat-last-n", required_argument, NULL, O_REPN },
		{ "seed", required_argument, NULL, O_SEED },
		{ "ids", no_argument, NULL, O_IDS },
		{ "logits", required_argument, NULL, O_LOGITS },
		{ "bos", no_argument, NULL, O_BOS },
		{ "no-bos", no_argument, NULL, O_NOBOS },
		{ "echo", no_argument, NULL, O_ECHO },
		{ "ignore-eos", no_argument, NULL, O_IGNEOS },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "ctx-size", required_argument, NULL, O_CTX },
		{ "batch-size", required_argument, NULL, O_BATCH },
		{ "kv-type", required_argument, NULL, O_KVTYPE },
		{ "memory-budget", required_argument, NULL, O_BUDGET },
		{ "io", required_argument, NULL, O_IO },
		{ "prefetch", required_argument, NULL, O_PREFETCH },
		{ "mlock", no_argument, NULL, O_MLOCK },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ NULL, 0, NULL, 0 },
	};
	struct engine_config cfg;
	struct sampler_params sp;
	const char *prompt = NULL, *logits_path = NULL;
	uint32_t n_predict = 128, u;
	int bos = -1, c;
	bool ids = false, echo = false, ignore_eos = false, verbose = false;

	engine_config_default(&cfg);
	sampler_params_default(&sp);
	log_set_level(LOG_LVL_WARNING);
	optind = 1;
	while ((c = getopt_long(argc, argv, "n:t:s:p:", opts, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case 'n': rc = arg_u32("-n", optarg, &n_predict); break;
		case O_PROMPT: case 'p': prompt = optarg; break;
		case O_TEMP: rc = arg_float("--temperature", optarg, &sp.temperature); break;
		case O_TOPK: rc = arg_u32("--top-k", optarg, &u); sp.top_k = (int32_t)u; break;
		case O_TOPP: rc = arg_float("--top-p", optarg, &sp.top_p); break;
		case O_MINP: rc = arg_float("--min-p", optarg, &sp.min_p); break;
		case O_REPP: rc = arg_float("--repeat-penalty", optarg, &sp.repeat_penalty); break;
		case O_REPN: rc = arg_u32("--repeat-last-n", optarg, &u); sp.repeat_last_n = (int32_t)u; break;
		case O_SEED: case 's': {
			char *end;
			errno = 0;
			sp.seed = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg) {
				fprintf(stderr, "strata-model: --seed: '%s' is not an integer\n", optarg);
				rc = -EINVAL;
			}
			break;
		}
		case O_IDS: ids = true; break;
		case O_LOGITS: logits_path = optarg; break;
		case O_BOS: bos = 1; break;
		case O_NOBOS: bos = 0; break;
		case O_ECHO: echo = true; break;
		case O_IGNEOS: ignore_eos = true; break;
		case O_THREADS: case 't': rc = arg_u32("--threads", optarg, &u); cfg.threads = (int)u; break;
		case O_CTX: rc = arg_u32("--ctx-size", optarg, &cfg.ctx_size); break;
		case O_BATCH: rc = arg_u32("--batch-size", optarg, &cfg.batch_size); break;
		case O_KVTYPE: {
			enum st_type t;
			if (st_type_parse(optarg, &t) < 0 || (t != ST_F16 && t != ST_F32)) {
				fprintf(stderr, "strata-model: --kv-type: '%s' is not f16 or f32\n", optarg);
				rc = -EINVAL;
			}
			cfg.kv_type = t;
			break;
		}
		case O_BUDGET:
			rc = parse_size(optarg, &cfg.memory_budget);
			if (rc < 0)
				fprintf(stderr, "strata-model: --memory-budget: '%s' is not a size like 512M or 2G\n", optarg);
			break;
		case O_IO:
			if (strcmp(optarg, "uring") == 0) {
				cfg.io = WEIGHTS_IO_URING;
			} else if (strcmp(optarg, "mmap") == 0) {
				cfg.io = WEIGHTS_IO_MMAP;
			} else {
				fprintf(stderr, "strata-model: --io: '%s' is not uring or mmap\n", optarg);
				rc = -EINVAL;
			}
			break;
		case O_PREFETCH: rc = arg_u32("--prefetch", optarg, &u); cfg.prefetch = (int)u; break;
		case O_MLOCK: cfg.mlock = true; break;
		case O_VERBOSE: verbose = true; log_set_level(LOG_LVL_INFO); break;
		default: return EXIT_USAGE;
		}
		if (rc < 0)
			return EXIT_USAGE;
	}
	if (argc - optind != 1 || !prompt) {
		fprintf(stderr, "usage: strata-model generate FILE --prompt TEXT [-n N] [OPTIONS]\n");
		return EXIT_USAGE;
	}
	cfg.model_path = argv[optind];

	struct st_err err = { "" };
	struct engine *e = NULL;
	int32_t *prompt_ids = NULL;
	struct gen_out out = { .ids = ids };
	int rc = 1;

	if (engine_open(&cfg, &e, &err) < 0) {
		fprintf(stderr, "strata-model: %s\n", err.msg);
		return 1;
	}
	const struct tokenizer *tok = engine_tokenizer(e);
	out.tok = tok;
	bool add_bos = bos < 0 ? tokenizer_add_bos(tok) : bos == 1;
	size_t cap = strlen(prompt) + 8;
	prompt_ids = malloc(cap * sizeof *prompt_ids);
	out.gen = malloc(((size_t)n_predict + 1) * sizeof *out.gen);
	detok_init(&out.dt, tok, false);
	out.piece = malloc(detok_out_max(tok));
	if (!prompt_ids || !out.gen || !out.piece) {
		fprintf(stderr, "strata-model: out of memory\n");
		goto done;
	}
	int n_prompt = tokenizer_encode(tok, prompt, strlen(prompt), add_bos, false, prompt_ids, cap);
	if (n_prompt <= 0) {
		fprintf(stderr, "strata-model: the prompt gives no tokens\n");
		goto done;
	}
	if (logits_path) {
		out.logits = fopen(logits_path, "wb");
		if (!out.logits) {
			fprintf(stderr, "strata-model: %s: %s\n", logits_path, strerror(errno));
			goto done;
		}
	}
	if (echo && !ids) {
		fputs(prompt, stdout);
		fflush(stdout);
	}
	struct gen_request req = {
		.prompt = prompt_ids,
		.n_prompt = (uint32_t)n_prompt,
		.max_tokens = n_predict,
		.sampling = sp,
		.slot = 0,
		.stop_at_eog = !ignore_eos,
	};
	struct gen_result res;
	if (generate(e, &req, on_token, &out, &res, &err) < 0) {
		fprintf(stderr, "\nstrata-model: %s\n", err.msg);
		goto done;
	}
	if (ids) {
		printf("prompt:");
		for (int i = 0; i < n_prompt; i++)
			printf(" %d", prompt_ids[i]);
		printf("\ngen:");
		for (uint32_t i = 0; i < out.n_gen; i++)
			printf(" %d", out.gen[i]);
		printf("\n");
	} else {
		char buf[64];
		int n = detok_flush(&out.dt, buf, sizeof buf);
		if (n > 0)
			fwrite(buf, 1, (size_t)n, stdout);
		printf("\n");
	}
	if (out.logits && (fclose(out.logits) != 0 || out.write_error)) {
		out.logits = NULL;
		fprintf(stderr, "strata-model: %s: write failed\n", logits_path);
		goto done;
	}
	out.logits = NULL;
	fflush(stdout);
	if (verbose) {
		struct engine_stats st;
		engine_get_stats(e, &st);
		double pt = (double)res.prompt_ns / 1e9, gt = (double)res.gen_ns / 1e9;
		fprintf(stderr,
			"prompt: %u tokens in %.3f s (%.1f tok/s); generated: %u tokens in %.3f s "
			"(%.2f tok/s); streamed %.1f MiB from disk, waited %.3f s for it\n",
			res.n_prompt, pt, pt > 0 ? res.n_prompt / pt : 0.0, res.n_generated, gt,
			gt > 0 && res.n_generated > 1 ? (res.n_generated - 1) / gt : 0.0,
			(double)(st.io.bytes_read > st.io.bytes_resident ?
					 st.io.bytes_read - st.io.bytes_resident : 0) / (1 << 20),
			(double)st.io.stall_ns / 1e9);
	}
	rc = 0;
done:
	if (out.logits)
		fclose(out.logits);
	free(out.piece);
	free(out.gen);
	free(prompt_ids);
	engine_close(e);
	return rc;
}

/* ---- synth ---- */

static int cmd_synth(int argc, char **argv)
{
	enum { O_EMBD = 256, O_LAYER, O_HEAD, O_HEADKV, O_FF, O_TYPE, O_VOCAB, O_TIE, O_SEED, O_CTX, O_NAME,
	       O_NVOCAB };
	static const struct option opts[] = {
		{ "n-embd", required_argument, NULL, O_EMBD },
		{ "n-layer", required_argument, NULL, O_LAYER },
		{ "n-head", required_argument, NULL, O_HEAD },
		{ "n-head-kv", required_argument, NULL, O_HEADKV },
		{ "n-ff", required_argument, NULL, O_FF },
		{ "type", required_argument, NULL, O_TYPE },
		{ "vocab", required_argument, NULL, O_VOCAB },
		{ "tie", no_argument, NULL, O_TIE },
		{ "n-vocab", required_argument, NULL, O_NVOCAB },
		{ "seed", required_argument, NULL, O_SEED },
		{ "ctx", required_argument, NULL, O_CTX },
		{ "name", required_argument, NULL, O_NAME },
		{ NULL, 0, NULL, 0 },
	};
	struct synth_params p = { .type = ST_F32, .seed = 1 };
	uint32_t seed32 = 1;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case O_EMBD: rc = arg_u32("--n-embd", optarg, &p.n_embd); break;
		case O_LAYER: rc = arg_u32("--n-layer", optarg, &p.n_layer); break;
		case O_HEAD: rc = arg_u32("--n-head", optarg, &p.n_head); break;
		case O_HEADKV: rc = arg_u32("--n-head-kv", optarg, &p.n_head_kv); break;
		case O_FF: rc = arg_u32("--n-ff", optarg, &p.n_ff); break;
		case O_CTX: rc = arg_u32("--ctx", optarg, &p.n_ctx); break;
		case O_NVOCAB: {
			uint32_t nv = 0;
			rc = arg_u32("--n-vocab", optarg, &nv);
			p.n_vocab = nv;
			break;
		}
		case O_SEED: rc = arg_u32("--seed", optarg, &seed32); p.seed = seed32; break;
		case O_TYPE: {
			enum st_type t;
			if (st_type_parse(optarg, &t) < 0) {
				fprintf(stderr, "strata-model: --type: unknown type '%s'\n", optarg);
				rc = -EINVAL;
			}
			p.type = t;
			break;
		}
		case O_VOCAB: p.vocab_path = optarg; break;
		case O_TIE: p.tie = true; break;
		case O_NAME: p.name = optarg; break;
		default: return EXIT_USAGE;
		}
		if (rc < 0)
			return EXIT_USAGE;
	}
	if (argc - optind != 1 || !p.vocab_path || !p.n_embd || !p.n_layer || !p.n_head || !p.n_ff) {
		fprintf(stderr, "usage: strata-model synth OUT.gguf --n-embd E --n-layer L --n-head H "
				"[--n-head-kv K] --n-ff F --type T --vocab VOCAB.gguf [--n-vocab N] [--tie] "
				"[--seed S]\n");
		return EXIT_USAGE;
	}
	if (!p.n_head_kv)
		p.n_head_kv = p.n_head;
	struct st_err err = { "" };
	if (synth_write(argv[optind], &p, &err) < 0) {
		fprintf(stderr, "strata-model: %s\n", err.msg);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	blas_setup_process(argv); /* may re-execute us with OpenBLAS set up (blas.h) */
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("strata-model %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (strcmp(cmd, "info") == 0)
		return cmd_info(argc - 1, argv + 1);
	if (strcmp(cmd, "tokenize") == 0)
		return cmd_tokenize(argc - 1, argv + 1);
	if (strcmp(cmd, "generate") == 0)
		return cmd_generate(argc - 1, argv + 1);
	if (strcmp(cmd, "synth") == 0)
		return cmd_synth(argc - 1, argv + 1);
	fprintf(stderr, "strata-model: unknown command '%s' (try --help)\n", cmd);
	return EXIT_USAGE;
}
