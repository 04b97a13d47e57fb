/* strata-model: offline tools over GGUF models, used by people, tests and
 * benchmarks: info, tokenize, generate, synth, quantize. It links the engine
 * directly (no daemon). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/options.h"
#include "gguf/gguf.h"
#include "kernels/types.h"
#include "tokenizer/tokenizer.h"
#include "tools/quantize.h"
#include "tools/recipe.h"
#include "tools/synth.h"

#define EXIT_USAGE 2

/* Each command's usage: printed by `strata-model COMMAND --help` (exit 0)
 * and, on a usage error, to stderr. */
static const char usage_info[] =
	"usage: strata-model info FILE\n"
	"  architecture, hyperparameters, tokenizer, the mix of tensor types and per-layer\n"
	"  sizes; a file strata cannot run is still described, with what it cannot run\n";
static const char usage_tokenize[] =
	"usage: strata-model tokenize [--bos] [--special] FILE TEXT\n"
	"  token ids of TEXT; works on vocabulary-only files\n"
	"  --bos                  put the BOS token first\n"
	"  --special              text that spells a control token becomes it\n";
static const char usage_generate[] =
	"usage: strata-model generate FILE --prompt TEXT [OPTIONS]\n"
	"  generate text offline through the engine (no daemon)\n"
	"  -p, --prompt TEXT      the prompt\n"
	"  -n N                   tokens to generate (default 128)\n"
	"  --temperature T        0 = greedy (default 0.8); also --top-k K, --top-p P,\n"
	"                         --min-p P, --repeat-penalty R, --repeat-last-n N\n"
	"  -s, --seed S           make sampling reproducible (default 0)\n"
	"  --stop STR             stop when the text contains STR (C escapes: \\n, \\t, \\uXXXX;\n"
	"                         repeatable)\n"
	"  --ids                  print 'prompt: ID ...' and 'gen: ID ...' instead of text\n"
	"  --logits OUT.f32       write every step's logits (steps x vocab f32 LE)\n"
	"  --bos, --no-bos        override the model's add-BOS setting\n"
	"  --echo                 print the prompt before the generated text\n"
	"  --ignore-eos           keep generating after an end-of-generation token\n"
	"  --verbose              log the memory plan and print timings to stderr\n"
	"  -t N                   the same as --threads N\n"
	"the engine's options:\n";
static const char usage_synth[] =
	"usage: strata-model synth OUT.gguf --n-embd E --n-layer L --n-head H [--n-head-kv K]\n"
	"                          --n-ff F --type T --vocab VOCAB.gguf|builtin [OPTIONS]\n"
	"  a random-weight llama model of that shape\n"
	"  --type T               the matrices' type (norms are f32): every matrix in T for a\n"
	"                         type (f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl q2_K q3_K\n"
	"                         q4_K q5_K q6_K iq4_xs), or a type per matrix by llama-quantize's\n"
	"                         recipe for a mixture (Q4_K_M Q4_K_S Q5_K_M Q5_K_S Q3_K_S Q3_K_M\n"
	"                         Q3_K_L: the quantize schemes that are not type names)\n"
	"  --vocab V              copy the tokenizer of V, or 'builtin' (512 tokens)\n"
	"  --n-vocab N            pad the vocabulary to N tokens with unused ones\n"
	"  --tie                  no output.weight: the head reuses token_embd\n"
	"  --seed S               the weights' seed (default 1)\n"
	"  --ctx N                the training context to record\n"
	"  --name NAME            general.name\n";
static const char usage_quantize[] =
	"usage: strata-model quantize [OPTIONS] IN.gguf OUT.gguf TYPE\n"
	"  rewrite a model with its matrices quantized as llama.cpp's llama-quantize does:\n"
	"  the same per-tensor recipe (output.weight in q6_K, more bits for some layers'\n"
	"  attn_v and ffn_down, fallback types for rows that are not whole blocks) and the\n"
	"  same quantizers (no importance matrix), one tensor at a time in bounded memory\n"
	"  TYPE: Q4_K_M Q4_K_S Q5_K_M Q5_K_S Q3_K_S Q3_K_M Q3_K_L Q2_K Q6_K IQ4_XS IQ4_NL\n"
	"        Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 F16 BF16 F32 (Q4_K, Q5_K, Q3_K: the _M ones)\n"
	"  --pure                 every matrix in TYPE, no recipe (TYPE may then be any\n"
	"                         type strata runs: q4_K, q6_K, iq4_xs, ...)\n"
	"  -t, --threads N        quantizing threads (default: every CPU)\n"
	"  --quiet                no progress line, warnings or summary\n"
	"  IN: f32, f16 or bf16 matrices; quantized ones (q8_0, ...) are requantized, with a\n"
	"  warning. general.file_type is set as llama.cpp numbers it.\n";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: strata-model COMMAND [OPTIONS]   (strata-model COMMAND --help for its options)\n"
		"\n"
		"  info FILE                     architecture, hyperparameters, tokenizer, layer sizes\n"
		"  tokenize FILE TEXT            token ids of TEXT (--bos adds BOS, --special parses\n"
		"                                control tokens); works on vocab-only files\n"
		"  generate FILE --prompt TEXT   generate text offline through the engine\n"
		"  synth OUT.gguf --n-embd E --n-layer L --n-head H --n-head-kv K --n-ff F\n"
		"      --type TYPE --vocab VOCAB.gguf [--n-vocab N] [--tie] [--seed S] [--ctx N]\n"
		"                                a random-weight llama model of that shape; TYPE a\n"
		"                                type (f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl\n"
		"                                q2_K q3_K q4_K q5_K q6_K iq4_xs) or a mixture (Q4_K_M\n"
		"                                Q4_K_S Q5_K_M Q5_K_S Q3_K_S Q3_K_M Q3_K_L)\n"
		"  quantize [--pure] IN.gguf OUT.gguf TYPE\n"
		"                                quantize a model as llama-quantize does: TYPE one of\n"
		"                                Q4_K_M Q4_K_S Q5_K_M Q5_K_S Q3_K_S Q3_K_M Q3_K_L Q2_K\n"
		"                                Q6_K IQ4_XS IQ4_NL Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 F16 BF16\n"
		"\n"
		"strata-model %s\n",
		PACKAGE_VERSION);
}

/* --help anywhere among a command's arguments: its usage on stdout. */
static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

static int usage_error(const char *usage_text, bool engine_opts)
{
	fputs(usage_text, stderr);
	if (engine_opts)
		engine_options_usage(stderr, false);
	return EXIT_USAGE;
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

/* "types:" the tensors by type, largest total first, marking the types
 * strata does not run. */
static void print_type_mix(const struct gguf *g)
{
	struct gguf_type_total mix[ST_TYPE_COUNT];
	size_t n = gguf_type_mix(g, mix, ST_TYPE_COUNT);
	printf("types:        ");
	for (size_t i = 0; i < n; i++)
		printf("%s %s %u tensor%s (%.1f MiB)%s", i ? "," : "", st_type_name(mix[i].type), mix[i].n_tensors,
		       mix[i].n_tensors == 1 ? "" : "s", (double)mix[i].bytes / (1 << 20),
		       st_type_info(mix[i].type)->supported ? "" : " [strata does not run it]");
	printf("\n");
}

/* Every tensor: name, type, shape; for a file that is not a model strata reads. */
static void print_tensors(const struct gguf *g)
{
	printf("tensors:\n");
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		printf("  %-40.*s %-8s [", (int)(t->name.len < 64 ? t->name.len : 64), t->name.ptr,
		       st_type_name(t->type));
		for (uint32_t d = 0; d < t->n_dims; d++)
			printf(d ? ", %" PRIu64 : "%" PRIu64, t->ne[d]);
		printf("]%s\n", st_type_info(t->type)->supported ? "" : "  cannot run");
	}
}

static int cmd_info(int argc, char **argv)
{
	struct st_err err = { "" };
	struct gguf *g = NULL;
	struct model *m = NULL;
	struct tokenizer *tok = NULL;

	if (wants_help(argc, argv)) {
		fputs(usage_info, stdout);
		return 0;
	}
	if (argc != 2)
		return usage_error(usage_info, false);
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
	print_type_mix(g);
	if (model_open_any(argv[1], &m, &err) < 0) {
		/* not a model strata reads (shapes, keys): the tensors, as they are */
		printf("runs:          no: %s\n", err.msg);
		print_tensors(g);
		rc = 1;
		goto out;
	}
	if (m->n_unsupported)
		printf("runs:          no: %u tensors of types strata does not run; the first: %s\n",
		       m->n_unsupported, m->unsupported);
	else
		printf("runs:          yes\n");
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
	/* rc 1 for a file strata cannot run: described, but not usable */
	rc = m->n_unsupported ? 1 : 0;
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
	if (wants_help(argc, argv)) {
		fputs(usage_tokenize, stdout);
		return 0;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b': bos = true; break;
		case 's': special = true; break;
		default: return usage_error(usage_tokenize, false);
		}
	}
	if (argc - optind != 2)
		return usage_error(usage_tokenize, false);
	struct st_err err = { "" };
	struct tokenizer *tok = NULL;
	int32_t *ids = NULL;
	int rc = 1;
	if (tokenizer_load_file(argv[optind], &tok, &err) < 0) {
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
	return rc;
}

/* ---- generate ---- */

struct gen_out {
	bool ids;	    /* print ids at the end instead of text as it comes */
	FILE *logits;	    /* --logits: every step's logits */
	int write_error;
};

static void on_piece(void *user, struct seq *s, const struct seq_piece *p)
{
	struct gen_out *o = user;
	(void)s;
	if (o->ids || p->len == 0)
		return;
	fwrite(p->text, 1, p->len, stdout);
	fflush(stdout);
}

static void on_logits(void *user, struct seq *s, int32_t token, const float *logits,
		      uint32_t n_vocab)
{
	struct gen_out *o = user;
	(void)s;
	(void)token;
	if (fwrite(logits, sizeof(float), n_vocab, o->logits) != n_vocab)
		o->write_error = errno ? errno : EIO;
}

static int cmd_generate(int argc, char **argv)
{
	enum {
		O_PROMPT = 256, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_REPP, O_REPN, O_SEED, O_IDS, O_LOGITS,
		O_BOS, O_NOBOS, O_ECHO, O_IGNEOS, O_VERBOSE, O_STOP, O_ENGINE = 1000,
	};
	static const struct option own[] = {
		{ "prompt", required_argument, NULL, O_PROMPT },
		{ "temperature", required_argument, NULL, O_TEMP },
		{ "temp", required_argument, NULL, O_TEMP },
		{ "top-k", required_argument, NULL, O_TOPK },
		{ "top-p", required_argument, NULL, O_TOPP },
		{ "min-p", required_argument, NULL, O_MINP },
		{ "repeat-penalty", required_argument, NULL, O_REPP },
		{ "repeat-last-n", required_argument, NULL, O_REPN },
		{ "seed", required_argument, NULL, O_SEED },
		{ "stop", required_argument, NULL, O_STOP },
		{ "ids", no_argument, NULL, O_IDS },
		{ "logits", required_argument, NULL, O_LOGITS },
		{ "bos", no_argument, NULL, O_BOS },
		{ "no-bos", no_argument, NULL, O_NOBOS },
		{ "echo", no_argument, NULL, O_ECHO },
		{ "ignore-eos", no_argument, NULL, O_IGNEOS },
		{ "verbose", no_argument, NULL, O_VERBOSE },
	};
	struct option opts[64];
	struct engine_config cfg;
	struct sampler_params sp;
	const char *prompt = NULL, *logits_path = NULL;
	char *stops[SEQ_MAX_STOPS];
	uint32_t n_stops = 0, n_predict = 128, u;
	int bos = -1, c, exit_code = EXIT_USAGE;
	bool echo = false, ignore_eos = false, verbose = false;
	struct gen_out out = { 0 };
	struct st_err err = { "" };

	if (wants_help(argc, argv)) {
		fputs(usage_generate, stdout);
		engine_options_usage(stdout, false);
		return 0;
	}
	size_t n_own = sizeof own / sizeof own[0];
	memcpy(opts, own, sizeof own);
	engine_options_getopt(opts + n_own, sizeof opts / sizeof opts[0] - n_own, O_ENGINE);
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
		case O_SEED: case 's':
			if (parse_u64(optarg, &sp.seed) < 0) {
				fprintf(stderr, "strata-model: --seed: '%s' is not an integer\n", optarg);
				rc = -EINVAL;
			}
			break;
		case O_STOP: {
			if (n_stops == SEQ_MAX_STOPS) {
				fprintf(stderr, "strata-model: at most %d --stop strings\n", SEQ_MAX_STOPS);
				rc = -EINVAL;
				break;
			}
			size_t cap = strlen(optarg) + 1;
			char *st = malloc(cap);
			if (!st || parse_escapes(optarg, st, cap) <= 0) {
				fprintf(stderr, "strata-model: --stop: '%s' is empty or has a bad escape\n",
					optarg);
				free(st);
				rc = -EINVAL;
				break;
			}
			stops[n_stops++] = st;
			break;
		}
		case O_IDS: out.ids = true; break;
		case O_LOGITS: logits_path = optarg; break;
		case O_BOS: bos = 1; break;
		case O_NOBOS: bos = 0; break;
		case O_ECHO: echo = true; break;
		case O_IGNEOS: ignore_eos = true; break;
		case O_VERBOSE: verbose = true; log_set_level(LOG_LVL_INFO); break;
		case 't':
			rc = engine_option_apply(&cfg, "threads", "-t", optarg, &err);
			break;
		default:
			rc = engine_options_getopt_apply(&cfg, c, O_ENGINE, optarg, &err);
			if (rc == -ENOENT) {
				usage_error(usage_generate, true);
				goto out;
			}
			break;
		}
		if (rc < 0) {
			if (err.msg[0])
				fprintf(stderr, "strata-model: %s\n", err.msg);
			goto out;
		}
	}
	if (argc - optind != 1 || !prompt) {
		usage_error(usage_generate, true);
		goto out;
	}
	cfg.model_path = argv[optind];
	exit_code = 1;

	struct engine *e = NULL;
	struct seq *sq = NULL;
	int32_t *prompt_ids = NULL;
	uint32_t n_prompt = 0;
	if (engine_open(&cfg, &e, &err) < 0) {
		fprintf(stderr, "strata-model: %s\n", err.msg);
		goto out;
	}
	if (engine_tokenize(e, prompt, strlen(prompt), bos, false, &prompt_ids, &n_prompt) < 0) {
		fprintf(stderr, "strata-model: out of memory\n");
		goto done;
	}
	if (logits_path && !(out.logits = fopen(logits_path, "wb"))) {
		fprintf(stderr, "strata-model: %s: %s\n", logits_path, strerror(errno));
		goto done;
	}
	struct seq_params p = {
		.prompt = prompt_ids, .n_prompt = n_prompt, .max_tokens = n_predict, .sampling = sp,
		.stops = (const char *const *)stops, .n_stops = n_stops, .ignore_eos = ignore_eos,
	};
	if (n_predict == 0) {
		exit_code = 0; /* nothing asked */
		goto done;
	}
	if (seq_create(e, &p, 0, &sq, &err) < 0) {
		fprintf(stderr, "strata-model: %s\n", err.msg);
		goto done;
	}
	if (echo && !out.ids) {
		fputs(prompt, stdout);
		fflush(stdout);
	}
	struct seq_sink sink = { .piece = on_piece, .logits = out.logits ? on_logits : NULL,
				 .user = &out };
	if (generate_run(e, sq, &sink, &err) < 0) {
		fprintf(stderr, "\nstrata-model: %s\n", err.msg);
		goto done;
	}
	if (seq_finish_reason(sq) == SEQ_FINISH_ERROR) {
		const char *msg;
		seq_error(sq, &msg);
		fprintf(stderr, "\nstrata-model: %s\n", msg);
		goto done;
	}
	uint32_t n_all;
	const int32_t *all = seq_tokens(sq, &n_all);
	if (out.ids) {
		printf("prompt:");
		for (uint32_t i = 0; i < n_prompt; i++)
			printf(" %d", all[i]);
		printf("\ngen:");
		for (uint32_t i = n_prompt; i < n_all; i++)
			printf(" %d", all[i]);
		printf("\n");
	} else {
		printf("\n");
	}
	if (out.logits) {
		int bad = fclose(out.logits) != 0 || out.write_error;
		out.logits = NULL;
		if (bad) {
			fprintf(stderr, "strata-model: %s: write failed\n", logits_path);
			goto done;
		}
	}
	fflush(stdout);
	if (verbose) {
		const struct seq_stats *st = seq_stats(sq);
		struct engine_stats es;
		engine_get_stats(e, &es);
		double pt = st->t_first_token > st->t_first_pass ?
				    (double)(st->t_first_token - st->t_first_pass) / 1e9 : 0;
		double gt = st->t_last_token > st->t_first_token ?
				    (double)(st->t_last_token - st->t_first_token) / 1e9 : 0;
		fprintf(stderr,
			"prompt: %u tokens in %.3f s (%.1f tok/s); generated: %u tokens in %.3f s "
			"(%.2f tok/s); streamed %.1f MiB from disk, waited %.3f s for it; passes %u; "
			"drafts %s: drafted %u, accepted %u (%.0f%%), %.2f tokens per pass in %u "
			"generating passes, %" PRIu64 " draft-model passes (%.3f s); %u prompt tokens from "
			"the KV cache\n",
			st->n_prompt, pt, pt > 0 ? st->n_prompt / pt : 0.0, st->n_generated, gt,
			gt > 0 && st->n_generated > 1 ? (st->n_generated - 1) / gt : 0.0,
			(double)es.bytes_read / (1 << 20), (double)es.stall_ns / 1e9, st->passes,
			draft_source_name(seq_draft_source(sq)), st->drafted, st->accepted,
			st->drafted ? 100.0 * st->accepted / st->drafted : 0.0,
			st->gen_passes ? (double)st->n_generated / st->gen_passes : 0.0, st->gen_passes,
			es.draft_passes, (double)es.draft_pass_ns / 1e9, st->n_cached);
	}
	exit_code = 0;
done:
	if (out.logits)
		fclose(out.logits);
	seq_free(sq);
	free(prompt_ids);
	engine_close(e);
out:
	for (uint32_t i = 0; i < n_stops; i++)
		free(stops[i]);
	return exit_code;
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
	struct recipe_scheme mix;
	uint32_t seed32 = 1;
	int c;
	if (wants_help(argc, argv)) {
		fputs(usage_synth, stdout);
		return 0;
	}
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
			/* a type strata runs: every matrix in it; else a mixture */
			enum st_type t;
			if (st_type_parse(optarg, &t) == 0 && st_type_info(t)->supported) {
				p.type = t;
				p.mix = NULL;
			} else if (recipe_scheme_parse(optarg, false, &mix) == 0) {
				p.mix = &mix;
			} else {
				fprintf(stderr, "strata-model: --type: '%s' is neither a type strata runs (%s) nor a "
					"mixture (%s)\n", optarg, st_supported_list(), recipe_scheme_names());
				rc = -EINVAL;
			}
			break;
		}
		case O_VOCAB: p.vocab_path = optarg; break;
		case O_TIE: p.tie = true; break;
		case O_NAME: p.name = optarg; break;
		default: return usage_error(usage_synth, false);
		}
		if (rc < 0)
			return EXIT_USAGE;
	}
	if (argc - optind != 1 || !p.vocab_path || !p.n_embd || !p.n_layer || !p.n_head || !p.n_ff)
		return usage_error(usage_synth, false);
	if (!p.n_head_kv)
		p.n_head_kv = p.n_head;
	struct st_err err = { "" };
	if (synth_write(argv[optind], &p, &err) < 0) {
		fprintf(stderr, "strata-model: %s\n", err.msg);
		return 1;
	}
	return 0;
}

/* ---- quantize ---- */

static int cmd_quantize(int argc, char **argv)
{
	enum { O_PURE = 256, O_QUIET };
	static const struct option opts[] = {
		{ "pure", no_argument, NULL, O_PURE },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "threads", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct quantize_params p = { 0 };
	bool pure = false;
	uint32_t threads = 0;
	int c;
	if (wants_help(argc, argv)) {
		fputs(usage_quantize, stdout);
		return 0;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
		switch (c) {
		case O_PURE: pure = true; break;
		case O_QUIET: p.quiet = true; break;
		case 't':
			if (arg_u32("--threads", optarg, &threads) < 0 || threads == 0 || threads > 1024)
				return usage_error(usage_quantize, false);
			break;
		default: return usage_error(usage_quantize, false);
		}
	}
	if (argc - optind != 3)
		return usage_error(usage_quantize, false);
	p.in_path = argv[optind];
	p.out_path = argv[optind + 1];
	if (recipe_scheme_parse(argv[optind + 2], pure, &p.scheme) < 0) {
		fprintf(stderr, "strata-model: quantize: unknown TYPE '%s' (%s%s%s)\n", argv[optind + 2],
			recipe_scheme_names(), pure ? "; with --pure also: " : "", pure ? st_supported_list() : "");
		return EXIT_USAGE;
	}
	if (strcmp(p.in_path, p.out_path) == 0) {
		fprintf(stderr, "strata-model: quantize: IN and OUT are the same file\n");
		return EXIT_USAGE;
	}
	p.threads = (int)threads;
	p.progress = !p.quiet && isatty(STDERR_FILENO);

	struct st_err err = { "" };
	struct quantize_stats st;
	if (quantize_file(&p, &st, &err) < 0) {
		fprintf(stderr, "strata-model: %s\n", err.msg);
		return 1;
	}
	if (!p.quiet) {
		fprintf(stderr, "strata-model: %s: %s, %" PRIu64 " tensors (", p.out_path, p.scheme.name,
			st.n_tensors);
		bool first = true;
		for (uint32_t t = 0; t < ST_TYPE_COUNT; t++)
			if (st.count[t]) {
				fprintf(stderr, "%s%s %u", first ? "" : ", ", st_type_name(t), st.count[t]);
				first = false;
			}
		fprintf(stderr, "), %.2f GiB -> %.2f GiB", (double)st.bytes_in / (1u << 30),
			(double)st.bytes_out / (1u << 30));
		if (st.n_fallback)
			fprintf(stderr, "; %" PRIu64 " tensors took a fallback type (rows not whole blocks)",
				st.n_fallback);
		fprintf(stderr, "\n");
	}
	return 0;
}

int main(int argc, char **argv)
{
	engine_setup_process(argv); /* may re-execute us with OpenBLAS set up */
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
	if (strcmp(cmd, "quantize") == 0)
		return cmd_quantize(argc - 1, argv + 1);
	fprintf(stderr, "strata-model: unknown command '%s' (try --help)\n", cmd);
	return EXIT_USAGE;
}
