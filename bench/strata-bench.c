/* strata-bench: how fast the engine generates from a model under a memory budget, and
 * where the time goes: tokens/s (prompt and generation apart), bytes read per token, read
 * bandwidth, time stalled on I/O, compute time, peak RSS, next to the budget plan. One run
 * per process (peak RSS is the process's); bench/compare.sh runs the comparison around it.
 * Not a test: it asserts nothing; `make check` only checks that it runs (tests/test-bench.sh).
 *
 *   strata-bench --model FILE [--memory-budget SIZE] [--io uring|mmap] [--prompt-tokens P]
 *                [--prompt-file TEXT] [--gen-tokens N] [--warmup W] [--threads T]
 *                [--prefetch K] [--ctx-size C] [--batch-size B] [--draft FILE|lookup] [--json]
 *
 * With drafts (speculative decoding) a pass gives several tokens: the figures per token
 * stay per token, and tokens per pass, drafted and accepted tokens and the draft model's
 * time are reported beside them.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/parse.h"
#include "common/clock.h"
#include "common/log.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/options.h"
#include "tokenizer/tokenizer.h"
#include "weights/weights.h"

#define EXIT_USAGE 2
#define MB 1e6 /* bandwidths are decimal, like fio's and the disk vendors' */
#define MIB (1024.0 * 1024.0)
/* The slack allowed on top of the memory bound (weights, KV cache and scratch, all
 * within --memory-budget) for what does not grow: code, libraries, thread stacks, the
 * mapped file header, malloc's arenas. */
#define RSS_SLACK_BYTES ((uint64_t)100 << 20)
#define MAX_TOKENS (1u << 20) /* per option: more than any context */

/* ---- counters outside the engine ---- */

/* CPU time of the whole process (every thread): user, and system (the kernel working for
 * us: page cache, page tables, I/O submission) */
static void cpu_ns(uint64_t *user, uint64_t *sys)
{
	struct rusage ru;
	*user = *sys = 0;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return;
	*user = (uint64_t)ru.ru_utime.tv_sec * 1000000000ull + (uint64_t)ru.ru_utime.tv_usec * 1000ull;
	*sys = (uint64_t)ru.ru_stime.tv_sec * 1000000000ull + (uint64_t)ru.ru_stime.tv_usec * 1000ull;
}

/* Sectors read by the block device holding the model, from /sys/dev/block/M:m/stat (the
 * third field, 512-byte units). What the disk really delivered, whoever asked; the whole
 * device, so other readers on the machine count too. -1 when unknown (no block device
 * behind the file: tmpfs, overlay, NFS). */
static int64_t disk_read_bytes(const char *stat_path)
{
	if (!stat_path[0])
		return -1;
	FILE *f = fopen(stat_path, "re");
	if (!f)
		return -1;
	unsigned long long ios, merges, sectors;
	int n = fscanf(f, "%llu %llu %llu", &ios, &merges, &sectors);
	fclose(f);
	return n == 3 ? (int64_t)(sectors * 512ull) : -1;
}

/* Bytes this process (every thread, io_uring's workers included) had the block layer
 * read for it: /proc/self/io read_bytes. Unlike the device's counter, other processes do
 * not count; like it, page-cache hits do not. -1 when unknown (no task I/O accounting). */
static int64_t proc_read_bytes(void)
{
	FILE *f = fopen("/proc/self/io", "re");
	char line[128];
	int64_t v = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long long b;
		if (sscanf(line, "read_bytes: %llu", &b) == 1) {
			v = (int64_t)b;
			break;
		}
	}
	fclose(f);
	return v;
}

/* One line of /proc/self/status ("VmHWM:    123 kB"), in bytes; 0 when absent. */
static uint64_t proc_status_bytes(const char *key)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	uint64_t v = 0;
	size_t klen = strlen(key);
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long long kb;
		if (strncmp(line, key, klen) == 0 && line[klen] == ':' &&
		    sscanf(line + klen + 1, "%llu", &kb) == 1) {
			v = kb * 1024ull;
			break;
		}
	}
	fclose(f);
	return v;
}

/* The machine's CPU time by kind (/proc/stat's first line, in USER_HZ ticks): user, nice,
 * system, idle, iowait, irq, softirq, steal. Shows work done outside our threads (the
 * block layer's completions) and, under a hypervisor that reports it, time taken away. */
#define N_CPU_KINDS 8
static void machine_cpu(uint64_t out[N_CPU_KINDS])
{
	FILE *f = fopen("/proc/stat", "re");
	unsigned long long v[N_CPU_KINDS] = { 0 };
	memset(out, 0, N_CPU_KINDS * sizeof *out);
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == N_CPU_KINDS)
		for (int i = 0; i < N_CPU_KINDS; i++)
			out[i] = v[i];
	fclose(f);
}

/* Per-thread scheduler accounting (/proc/self/task/T/schedstat: time on a CPU, time
 * runnable but waiting for one), to tell compute that is slow from compute that is not
 * running: on 2 cores the I/O thread, the kernel's io_uring workers and the compute
 * threads compete. Threads are matched by tid between two snapshots. */
#define MAX_THREADS 64
struct thread_time {
	int tid;
	char name[24];
	uint64_t run_ns, wait_ns;
};

static uint32_t threads_take(struct thread_time *out, uint32_t cap)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	uint32_t n = 0;
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL && n < cap) {
		char path[300];
		unsigned long long run, wait;
		int tid = atoi(de->d_name);
		if (tid <= 0)
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		int k = fscanf(f, "%llu %llu", &run, &wait);
		fclose(f);
		if (k != 2)
			continue;
		struct thread_time *t = &out[n++];
		t->tid = tid;
		t->run_ns = run;
		t->wait_ns = wait;
		snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
		t->name[0] = '\0';
		f = fopen(path, "re");
		if (f) {
			if (fgets(t->name, sizeof t->name, f))
				t->name[strcspn(t->name, "\n")] = '\0';
			fclose(f);
		}
	}
	closedir(d);
	return n;
}

/* ---- one run ---- */

/* Everything we compare, taken at one instant. */
struct snap {
	uint64_t t_ns;
	uint64_t user_ns, sys_ns;
	int64_t disk_bytes;
	int64_t proc_bytes;
	struct engine_stats es;
	struct weights_stats io;
};

struct run {
	struct engine *e;
	char disk_stat[128];	/* /sys/dev/block/M:m/stat, or "" */
	uint32_t warmup, n_gen;
	uint32_t n_seen;	/* tokens sampled so far */
	struct snap start;	/* before the prompt's first pass */
	struct snap prompt_end; /* the first token sampled: the prompt is done */
	struct snap gen0, gen1; /* the measured generation: n_gen passes between these */
	struct thread_time th0[MAX_THREADS], th1[MAX_THREADS]; /* at gen0 and gen1 */
	uint32_t n_th0, n_th1;
	uint64_t cpu0[N_CPU_KINDS], cpu1[N_CPU_KINDS];	     /* at gen0 and gen1 */
};

static void snap_take(struct run *r, struct snap *s)
{
	engine_get_stats(r->e, &s->es);
	engine_weights_stats(r->e, &s->io);
	s->disk_bytes = disk_read_bytes(r->disk_stat);
	s->proc_bytes = proc_read_bytes();
	cpu_ns(&s->user_ns, &s->sys_ns);
	s->t_ns = clock_now_ns(); /* last: the other reads cost a little time themselves */
}

/* The generation core calls this after sampling each token, so between two calls
 * there is exactly one forward pass (and one sample). */
static void on_token(void *user, struct seq *s, int32_t token, const float *logits,
		     uint32_t n_vocab)
{
	struct run *r = user;
	(void)s;
	(void)token;
	(void)logits;
	(void)n_vocab;
	if (r->n_seen == 0)
		snap_take(r, &r->prompt_end);
	if (r->n_seen == r->warmup) {
		/* the slower reads first, so the window opens after them */
		r->n_th0 = threads_take(r->th0, MAX_THREADS);
		machine_cpu(r->cpu0);
		if (r->n_seen == 0)
			r->gen0 = r->prompt_end;
		else
			snap_take(r, &r->gen0);
	}
	if (r->n_seen == r->warmup + r->n_gen) {
		snap_take(r, &r->gen1);
		r->n_th1 = threads_take(r->th1, MAX_THREADS);
		machine_cpu(r->cpu1);
	}
	r->n_seen++;
}

/* A phase between two snapshots, as the figures we print. */
struct phase {
	uint32_t tokens;	/* tokens processed (prompt) or generated (one pass each) */
	double wall_s;
	double cpu_s;		/* user + system, every thread */
	double sys_s;		/* of which system */
	uint64_t bytes_read;	/* by the weight source */
	int64_t disk_bytes;	/* by the device, for anyone; -1 unknown */
	int64_t proc_bytes;	/* by the block layer for this process; -1 unknown */
	double read_s;		/* time with at least one read in flight */
	double stall_s;		/* time the layer loop waited for weights */
	uint64_t passes, acquires, stalls, misses;
};

static struct phase phase_of(const struct snap *a, const struct snap *b, uint32_t tokens)
{
	struct phase p = {
		.tokens = tokens,
		.wall_s = (double)(b->t_ns - a->t_ns) / 1e9,
		.cpu_s = (double)(b->user_ns - a->user_ns + b->sys_ns - a->sys_ns) / 1e9,
		.sys_s = (double)(b->sys_ns - a->sys_ns) / 1e9,
		.bytes_read = b->io.bytes_read - a->io.bytes_read,
		.disk_bytes = a->disk_bytes >= 0 && b->disk_bytes >= 0 ? b->disk_bytes - a->disk_bytes
								      : -1,
		.proc_bytes = a->proc_bytes >= 0 && b->proc_bytes >= 0 ? b->proc_bytes - a->proc_bytes
								      : -1,
		.read_s = (double)(b->io.read_ns - a->io.read_ns) / 1e9,
		.stall_s = (double)(b->io.stall_ns - a->io.stall_ns) / 1e9,
		.passes = b->es.passes - a->es.passes,
		.acquires = b->io.n_acquires - a->io.n_acquires,
		.stalls = b->io.n_stalls - a->io.n_stalls,
		.misses = b->io.n_misses - a->io.n_misses,
	};
	return p;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static double max2(double a, double b)
{
	return a > b ? a : b;
}

/* ---- options ---- */

struct opts {
	const char *model;
	const char *prompt_file; /* a text prompt instead of synthesized ids */
	struct engine_config cfg;  /* the engine's options (engine/options.h) */
	uint32_t prompt_tokens, gen_tokens, warmup;
	bool json;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: strata-bench --model FILE [OPTIONS]\n"
		"  --prompt-tokens P     prompt length, synthesized token ids (default 16)\n"
		"  --prompt-file FILE    a text prompt instead (tokenized with BOS; P is its length)\n"
		"  --gen-tokens N        generated tokens measured (default 4; one pass each without drafts)\n"
		"  --warmup W            generated tokens before the measured ones (default 1)\n"
		"  --json                one JSON object, one key per line\n"
		"the engine's options (--ctx-size defaults to P + W + N + 1 here, P at most the\n"
		"prompt file's bytes + 1):\n");
	engine_options_usage(f, true);
	fprintf(f, "strata-bench %s\n", PACKAGE_VERSION);
}

static int arg_u32(const char *opt, const char *s, uint32_t *out)
{
	if (parse_u32(s, out) < 0) {
		fprintf(stderr, "strata-bench: %s: '%s' is not a non-negative integer\n", opt, s);
		return -EINVAL;
	}
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_MODEL = 256, O_PROMPT, O_PROMPT_FILE, O_GEN, O_WARM, O_JSON, O_HELP, O_ENGINE = 1000 };
	static const struct option own[] = {
		{ "model", required_argument, NULL, O_MODEL },
		{ "prompt-file", required_argument, NULL, O_PROMPT_FILE },
		{ "prompt-tokens", required_argument, NULL, O_PROMPT },
		{ "gen-tokens", required_argument, NULL, O_GEN },
		{ "warmup", required_argument, NULL, O_WARM },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
	};
	struct option lo[64];
	struct st_err err = { "" };
	int c;
	memcpy(lo, own, sizeof own);
	engine_options_getopt(lo + sizeof own / sizeof own[0],
			      sizeof lo / sizeof lo[0] - sizeof own / sizeof own[0], O_ENGINE);
	*o = (struct opts){ .prompt_tokens = 16, .gen_tokens = 4, .warmup = 1 };
	engine_config_default(&o->cfg);
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case O_MODEL: o->model = optarg; break;
		case O_PROMPT_FILE: o->prompt_file = optarg; break;
		case O_PROMPT: rc = arg_u32("--prompt-tokens", optarg, &o->prompt_tokens); break;
		case O_GEN: rc = arg_u32("--gen-tokens", optarg, &o->gen_tokens); break;
		case O_WARM: rc = arg_u32("--warmup", optarg, &o->warmup); break;
		case O_JSON: o->json = true; break;
		case O_HELP: usage(stdout); exit(0);
		default:
			rc = engine_options_getopt_apply(&o->cfg, c, O_ENGINE, optarg, &err);
			if (rc == -ENOENT) {
				usage(stderr);
				return -EINVAL;
			}
			if (rc < 0)
				fprintf(stderr, "strata-bench: %s\n", err.msg);
			break;
		}
		if (rc < 0)
			return rc;
	}
	if (optind != argc || !o->model) {
		usage(stderr);
		return -EINVAL;
	}
	if (o->prompt_tokens == 0 || o->gen_tokens == 0) {
		fprintf(stderr, "strata-bench: --prompt-tokens and --gen-tokens must be at least 1\n");
		return -EINVAL;
	}
	/* so P + W + N + 1 (the default context) cannot wrap */
	if (o->prompt_tokens > MAX_TOKENS || o->gen_tokens > MAX_TOKENS || o->warmup > MAX_TOKENS) {
		fprintf(stderr, "strata-bench: --prompt-tokens, --gen-tokens and --warmup are at most %u\n",
			MAX_TOKENS);
		return -EINVAL;
	}
	o->cfg.model_path = o->model;
	if (o->cfg.ctx_size == 0) {
		/* room for the prompt (a text has at most a token per byte, and BOS) and the rest */
		uint64_t p = o->prompt_tokens;
		struct stat st;
		if (o->prompt_file && stat(o->prompt_file, &st) == 0)
			p = (uint64_t)st.st_size + 1 < MAX_TOKENS ? (uint64_t)st.st_size + 1 : MAX_TOKENS;
		o->cfg.ctx_size = (uint32_t)p + o->warmup + o->gen_tokens + 1;
	}
	return 0;
}

/* The prompt: the text of --prompt-file tokenized (with BOS), or P synthesized ids. 0 or
 * -errno with a message printed. *ids is malloc'd. */
static int make_prompt(struct engine *e, const struct opts *o, int32_t **ids, uint32_t *n)
{
	const struct engine_info *m = engine_info(e);
	const struct tokenizer *tok = engine_tokenizer(e);
	if (o->prompt_file) {
		FILE *f = fopen(o->prompt_file, "re");
		char *text = NULL;
		size_t len = 0;
		if (!f) {
			fprintf(stderr, "strata-bench: %s: %s\n", o->prompt_file, strerror(errno));
			return -errno;
		}
		text = malloc(MAX_TOKENS);
		if (text)
			len = fread(text, 1, MAX_TOKENS, f);
		fclose(f);
		int rc = text ? engine_tokenize(e, text, len, 1, false, ids, n) : -ENOMEM;
		free(text);
		if (rc == 0 && *n < 2)
			rc = -EINVAL;
		if (rc < 0)
			fprintf(stderr, "strata-bench: %s: %s\n", o->prompt_file,
				rc == -EINVAL ? "no text to prompt with" : "out of memory");
		return rc;
	}
	/* A fixed prompt: BOS, then ids spread over the vocabulary (the weights do not care
	 * what the text says; the same ids every run make runs comparable). */
	*ids = malloc(o->prompt_tokens * sizeof **ids);
	if (!*ids) {
		fprintf(stderr, "strata-bench: out of memory\n");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < o->prompt_tokens; i++)
		(*ids)[i] = (int32_t)((i * 7919u + 13u) % m->n_vocab);
	if (tokenizer_bos(tok) >= 0)
		(*ids)[0] = tokenizer_bos(tok);
	*n = o->prompt_tokens;
	return 0;
}

/* ---- output ---- */

struct result {
	const struct opts *o;
	const struct engine_info *m;
	struct engine_stats end;	/* counters after the run: the plan */
	struct weights_stats io_end;
	int threads;
	uint32_t n_ctx;
	double open_s;
	struct phase prompt, gen;
	uint64_t peak_rss;
	const struct run *run;	/* for the per-thread times */
	const struct seq_stats *st; /* the whole generation: passes, drafts */
	const char *draft;	/* the drafts' source */
};

/* Share of the machine's CPU time (all CPUs) that was busy, and busy with other processes
 * than this one, during the measured generation: a disturbed run shows here. */
static void machine_busy(const struct result *r, double *busy, double *other)
{
	const uint64_t *a = r->run->cpu0, *b = r->run->cpu1;
	double tot = 0, idle = (double)(b[3] - a[3]) + (double)(b[4] - a[4]);
	for (int i = 0; i < N_CPU_KINDS; i++)
		tot += (double)(b[i] - a[i]);
	long hz = sysconf(_SC_CLK_TCK);
	double ours = r->gen.cpu_s * (double)(hz > 0 ? hz : 100);
	*busy = ratio(tot - idle, tot);
	*other = tot > 0 && tot - idle > ours ? (tot - idle - ours) / tot : 0;
}

/* s as a JSON string, quotes included */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* The JSON: flat, one "key": value per line, so shell scripts read it with sed. */
static void print_json(const struct result *r)
{
	const struct weights_stats *io = &r->io_end;
	const struct phase *g = &r->gen, *p = &r->prompt;
	double n = g->tokens;
	double compute = g->wall_s - g->stall_s;
	uint64_t bound = r->m->memory_bound + RSS_SLACK_BYTES;
	printf("{\n");
	printf("  \"model\": ");
	json_str(r->o->model);
	printf(",\n");
	printf("  \"n_layer\": %u,\n", r->m->n_layer);
	printf("  \"weight_type\": \"%s\",\n", r->m->types[0].name);
	printf("  \"model_weight_bytes\": %" PRIu64 ",\n", r->m->weight_bytes);
	printf("  \"budget_bytes\": %" PRIu64 ",\n", r->o->cfg.memory_budget);
	printf("  \"io\": \"%s\",\n", io->io == WEIGHTS_IO_URING ? "uring" : "mmap");
	printf("  \"io_asked\": \"%s\",\n", r->o->cfg.io == ENGINE_IO_URING ? "uring" : "mmap");
	printf("  \"direct\": %s,\n", io->direct ? "true" : "false");
	printf("  \"registered\": %s,\n", io->registered ? "true" : "false");
	printf("  \"threads\": %d,\n", r->threads);
	printf("  \"ctx_size\": %u,\n", r->n_ctx);
	printf("  \"units\": %u,\n", io->n_units);
	printf("  \"units_resident\": %u,\n", io->n_resident);
	printf("  \"units_streamed\": %u,\n", io->n_streamed);
	printf("  \"unit_bytes\": %" PRIu64 ",\n", io->bytes_units);
	printf("  \"resident_bytes\": %" PRIu64 ",\n", io->bytes_resident);
	printf("  \"streamed_bytes_per_pass\": %" PRIu64 ",\n", io->bytes_streamed_per_pass);
	printf("  \"slots\": %u,\n", io->n_slots);
	printf("  \"slot_bytes\": %" PRIu64 ",\n", io->slot_bytes);
	printf("  \"prefetch\": %u,\n", io->prefetch);
	printf("  \"queue_depth\": %u,\n", io->queue_depth);
	printf("  \"chunk_bytes\": %u,\n", io->chunk_bytes);
	printf("  \"kv_bytes\": %" PRIu64 ",\n", r->end.kv_bytes);
	printf("  \"kv_type\": \"%s\",\n", r->m->kv_type);
	printf("  \"scratch_bytes\": %" PRIu64 ",\n", r->m->scratch_bytes);
	printf("  \"memory_bound_bytes\": %" PRIu64 ",\n", r->m->memory_bound);
	printf("  \"open_s\": %.4f,\n", r->open_s);
	printf("  \"prompt_tokens\": %u,\n", p->tokens);
	printf("  \"prompt_s\": %.4f,\n", p->wall_s);
	printf("  \"prompt_tok_s\": %.4f,\n", ratio(p->tokens, p->wall_s));
	printf("  \"prompt_bytes_read\": %" PRIu64 ",\n", p->bytes_read);
	printf("  \"prompt_stall_s\": %.4f,\n", p->stall_s);
	printf("  \"warmup_tokens\": %u,\n", r->o->warmup);
	printf("  \"gen_tokens\": %u,\n", g->tokens);
	printf("  \"gen_passes\": %" PRIu64 ",\n", g->passes);
	printf("  \"gen_s\": %.4f,\n", g->wall_s);
	printf("  \"gen_tok_s\": %.4f,\n", ratio(n, g->wall_s));
	printf("  \"gen_bytes_read\": %" PRIu64 ",\n", g->bytes_read);
	printf("  \"gen_bytes_per_token\": %.0f,\n", ratio((double)g->bytes_read, n));
	printf("  \"gen_proc_read_bytes_per_token\": %.0f,\n",
	       g->proc_bytes >= 0 ? ratio((double)g->proc_bytes, n) : -1.0);
	printf("  \"gen_disk_bytes_per_token\": %.0f,\n",
	       g->disk_bytes >= 0 ? ratio((double)g->disk_bytes, n) : -1.0);
	printf("  \"gen_read_s\": %.4f,\n", g->read_s);
	printf("  \"gen_stall_s\": %.4f,\n", g->stall_s);
	printf("  \"gen_cpu_s\": %.4f,\n", g->cpu_s);
	printf("  \"gen_sys_s\": %.4f,\n", g->sys_s);
	printf("  \"read_mbps_inflight\": %.1f,\n", ratio((double)g->bytes_read / MB, g->read_s));
	printf("  \"read_mbps_wall\": %.1f,\n", ratio((double)g->bytes_read / MB, g->wall_s));
	printf("  \"stall_fraction\": %.4f,\n", ratio(g->stall_s, g->wall_s));
	printf("  \"wall_ms_per_token\": %.2f,\n", ratio(g->wall_s * 1e3, n));
	printf("  \"compute_ms_per_token\": %.2f,\n", ratio(compute * 1e3, n));
	printf("  \"io_ms_per_token\": %.2f,\n", ratio(g->read_s * 1e3, n));
	printf("  \"overlap\": %.4f,\n",
	       ratio(g->wall_s, max2(g->read_s, compute)));
	printf("  \"cpu_utilisation\": %.3f,\n", ratio(g->cpu_s, g->wall_s * r->threads));
	double busy, other;
	machine_busy(r, &busy, &other);
	printf("  \"machine_busy_fraction\": %.3f,\n", busy);
	printf("  \"machine_other_fraction\": %.3f,\n", other);
	printf("  \"gen_acquires\": %" PRIu64 ",\n", g->acquires);
	printf("  \"gen_stalls\": %" PRIu64 ",\n", g->stalls);
	printf("  \"gen_misses\": %" PRIu64 ",\n", g->misses);
	printf("  \"draft\": \"%s\",\n", r->draft);
	printf("  \"draft_model_bytes\": %" PRIu64 ",\n", r->end.draft_bytes);
	printf("  \"gen_passes_all\": %u,\n", r->st->gen_passes);
	printf("  \"tokens_per_pass\": %.4f,\n", ratio(r->st->n_generated, r->st->gen_passes));
	printf("  \"drafted\": %u,\n", r->st->drafted);
	printf("  \"accepted\": %u,\n", r->st->accepted);
	printf("  \"acceptance\": %.4f,\n", ratio(r->st->accepted, r->st->drafted));
	printf("  \"draft_passes\": %" PRIu64 ",\n", r->end.draft_passes);
	printf("  \"draft_s\": %.4f,\n", (double)r->end.draft_pass_ns / 1e9);
	printf("  \"peak_rss_bytes\": %" PRIu64 ",\n", r->peak_rss);
	printf("  \"rss_bound_bytes\": %" PRIu64 "\n", bound);
	printf("}\n");
}

static void print_text(const struct result *r, const char *plan)
{
	const struct weights_stats *io = &r->io_end;
	const struct phase *g = &r->gen, *p = &r->prompt;
	double n = g->tokens;
	double compute = g->wall_s - g->stall_s;
	uint64_t bound = r->m->memory_bound + RSS_SLACK_BYTES;

	printf("%s\n", plan);
	printf("plan:       %u resident units (%.1f MiB), %u streamed (%.1f MiB per pass), %u slots "
	       "of %.1f MiB, prefetch %u, io %s%s\n",
	       io->n_resident, io->bytes_resident / MIB, io->n_streamed,
	       io->bytes_streamed_per_pass / MIB, io->n_slots, io->slot_bytes / MIB, io->prefetch,
	       io->io == WEIGHTS_IO_URING ? "uring" : "mmap",
	       io->io == WEIGHTS_IO_URING ? (io->direct ? " O_DIRECT" : " buffered") : "");
	printf("open:       %.2f s (resident weights read)\n", r->open_s);
	printf("prompt:     %u tokens in %.3f s: %.2f tok/s; %.1f MiB read, %.3f s stalled\n",
	       p->tokens, p->wall_s, ratio(p->tokens, p->wall_s), p->bytes_read / MIB, p->stall_s);
	printf("generation: %u tokens in %.3f s: %.3f tok/s (after %u warm-up tokens), %" PRIu64
	       " passes\n", g->tokens, g->wall_s, ratio(n, g->wall_s), r->o->warmup, g->passes);
	printf("  drafts:    %s: %u drafted, %u accepted (%.0f%%); %.2f tokens per pass over the whole "
	       "generation (%u tokens, %u passes); the draft model: %.1f MiB, %" PRIu64 " passes, "
	       "%.3f s\n", r->draft, r->st->drafted, r->st->accepted,
	       100 * ratio(r->st->accepted, r->st->drafted), ratio(r->st->n_generated, r->st->gen_passes),
	       r->st->n_generated, r->st->gen_passes, r->end.draft_bytes / MIB, r->end.draft_passes,
	       (double)r->end.draft_pass_ns / 1e9);
	printf("  per token: wall %.1f ms, compute %.1f ms, I/O %.1f ms (reads in flight), "
	       "stalled %.1f ms; overlap %.3f (wall / max(I/O, compute))\n",
	       ratio(g->wall_s * 1e3, n), ratio(compute * 1e3, n), ratio(g->read_s * 1e3, n),
	       ratio(g->stall_s * 1e3, n), ratio(g->wall_s, max2(g->read_s, compute)));
	printf("  read:      %.1f MiB per token (plan: %.1f MiB streamed per pass)",
	       ratio((double)g->bytes_read, n) / MIB, io->bytes_streamed_per_pass / MIB);
	if (g->proc_bytes >= 0)
		printf("; the block layer read %.1f MiB per token for us",
		       ratio((double)g->proc_bytes, n) / MIB);
	if (g->disk_bytes >= 0)
		printf(", the device %.1f MiB (for everyone)", ratio((double)g->disk_bytes, n) / MIB);
	printf("\n");
	printf("  bandwidth: %.0f MB/s while reads were in flight, %.0f MB/s over the wall time\n",
	       ratio((double)g->bytes_read / MB, g->read_s),
	       ratio((double)g->bytes_read / MB, g->wall_s));
	printf("  stalls:    %.1f%% of the wall time, %" PRIu64 " of %" PRIu64 " acquires waited, "
	       "%" PRIu64 " not read ahead\n", 100 * ratio(g->stall_s, g->wall_s), g->stalls,
	       g->acquires, g->misses);
	printf("  cpu:       %.0f%% of %d threads busy; per token %.0f ms of CPU, %.0f ms of it in "
	       "the kernel\n", 100 * ratio(g->cpu_s, g->wall_s * r->threads), r->threads,
	       ratio(g->cpu_s * 1e3, n), ratio(g->sys_s * 1e3, n));
	printf("  threads:   on a CPU / runnable but waiting, %% of the wall time:");
	for (uint32_t i = 0; i < r->run->n_th1; i++) {
		const struct thread_time *b = &r->run->th1[i], *a = NULL;
		for (uint32_t j = 0; j < r->run->n_th0; j++)
			if (r->run->th0[j].tid == b->tid)
				a = &r->run->th0[j];
		double run = (double)(b->run_ns - (a ? a->run_ns : 0)) / 1e9;
		double wait = (double)(b->wait_ns - (a ? a->wait_ns : 0)) / 1e9;
		if (run < 0.001 * g->wall_s)
			continue; /* idle all along: not worth a column */
		printf(" %s %.0f/%.0f", b->name, 100 * ratio(run, g->wall_s), 100 * ratio(wait, g->wall_s));
	}
	printf("\n");
	static const char *const kinds[N_CPU_KINDS] = { "user", "nice", "system", "idle", "iowait",
							 "irq", "softirq", "steal" };
	uint64_t tot = 0;
	for (int i = 0; i < N_CPU_KINDS; i++)
		tot += r->run->cpu1[i] - r->run->cpu0[i];
	printf("  machine:  ");
	for (int i = 0; i < N_CPU_KINDS; i++)
		if (r->run->cpu1[i] > r->run->cpu0[i])
			printf(" %s %.0f%%", kinds[i],
			       100 * ratio((double)(r->run->cpu1[i] - r->run->cpu0[i]), (double)tot));
	double busy, other;
	machine_busy(r, &busy, &other);
	printf(" (of all CPUs); busy %.0f%%, of which other processes %.0f%%\n", 100 * busy,
	       100 * other);
	printf("memory:     peak RSS %.1f MiB; bound %.1f MiB (%s: weights %.1f + KV cache %.1f + "
	       "scratch %.1f) + 100 MiB = %.1f MiB\n", r->peak_rss / MIB, r->m->memory_bound / MIB,
	       r->o->cfg.memory_budget ? "--memory-budget" : "no budget",
	       (r->m->memory_bound - r->m->kv_bytes - r->m->scratch_bytes) / MIB, r->m->kv_bytes / MIB,
	       r->m->scratch_bytes / MIB, bound / MIB);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	engine_setup_process(argv); /* as stratad does: may re-execute with OpenBLAS set up */
	struct opts o;
	struct st_err err = { "" };
	struct engine *e = NULL;
	struct seq *sq = NULL;
	int32_t *prompt = NULL;
	int rc = 1;

	if (parse_opts(argc, argv, &o) < 0)
		return EXIT_USAGE;
	log_set_level(LOG_LVL_WARNING);

	struct run r = { .warmup = o.warmup, .n_gen = o.gen_tokens };
	struct stat st;
	if (stat(o.model, &st) == 0)
		snprintf(r.disk_stat, sizeof r.disk_stat, "/sys/dev/block/%u:%u/stat",
			 major(st.st_dev), minor(st.st_dev));

	uint64_t t0 = clock_now_ns();
	if (engine_open(&o.cfg, &e, &err) < 0) {
		fprintf(stderr, "strata-bench: %s\n", err.msg);
		return 1;
	}
	r.e = e;
	double open_s = (double)(clock_now_ns() - t0) / 1e9;
	const struct engine_info *m = engine_info(e);
	uint32_t n_prompt = 0;
	if (make_prompt(e, &o, &prompt, &n_prompt) < 0)
		goto out;
	if (n_prompt + o.warmup + o.gen_tokens + 1 > engine_n_ctx(e)) {
		fprintf(stderr, "strata-bench: %u prompt + %u generated tokens do not fit the %u-token "
			"context: give --ctx-size\n", n_prompt, o.warmup + o.gen_tokens + 1,
			engine_n_ctx(e));
		goto out;
	}

	struct seq_params p = {
		.prompt = prompt,
		.n_prompt = n_prompt,
		.max_tokens = o.warmup + o.gen_tokens + 1, /* the first comes from the prompt pass */
		.ignore_eos = true, /* random weights may well say EOS: keep going */
	};
	sampler_params_default(&p.sampling);
	p.sampling.temperature = 0; /* greedy: the sampler costs next to nothing */
	if (seq_create(e, &p, 0, &sq, &err) < 0) {
		fprintf(stderr, "strata-bench: %s\n", err.msg);
		goto out;
	}
	struct seq_sink sink = { .logits = on_token, .user = &r };
	snap_take(&r, &r.start);
	if (generate_run(e, sq, &sink, &err) < 0) {
		fprintf(stderr, "strata-bench: %s\n", err.msg);
		goto out;
	}
	if (r.n_seen != p.max_tokens) {
		fprintf(stderr, "strata-bench: generated %u tokens, expected %u (context %u)\n",
			r.n_seen, p.max_tokens, engine_n_ctx(e));
		goto out;
	}

	struct result res = {
		.o = &o,
		.m = m,
		.threads = engine_threads(e),
		.n_ctx = engine_n_ctx(e),
		.open_s = open_s,
		.prompt = phase_of(&r.start, &r.prompt_end, n_prompt),
		.gen = phase_of(&r.gen0, &r.gen1, o.gen_tokens),
		.peak_rss = proc_status_bytes("VmHWM"),
		.run = &r,
		.st = seq_stats(sq),
		.draft = draft_source_name(seq_draft_source(sq)),
	};
	engine_get_stats(e, &res.end);
	engine_weights_stats(e, &res.io_end);
	if (o.json) {
		print_json(&res);
	} else {
		char plan[3072];
		engine_describe(e, plan, sizeof plan);
		print_text(&res, plan);
	}
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	seq_free(sq);
	free(prompt);
	engine_close(e);
	return rc;
}
