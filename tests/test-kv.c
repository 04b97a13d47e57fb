/* test-kv.c: the paged KV cache through the engine's API. A sequence whose
 * blocks went to disk (the swap file, or the store) and came back gives the
 * logits of a run that never left memory, to the bit; q8_0 and q4_0 caches
 * against f32 on the same model, within the tolerance the project states;
 * a prompt that begins like an earlier sequence reuses its blocks, from
 * memory and from --kv-cache-dir after a restart, and generates what a cold
 * run generates; blocks of a changed model file are not reused (and removed);
 * truncating into a sealed block copies it and leaves the original reusable;
 * a KV cache too small for one sequence is refused with the numbers. On a
 * synthesized model (head size 32, so every cache type applies); the reuse
 * tests run on stories260K when ../shared has it (a trained model's greedy
 * choices do not hang on the last bit), else on the synthesized one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/generate.h"
#include "kernels/types.h"
#include "tests/tap.h"
#include "tools/synth.h"

#define MAX_STEPS 128

static char model[4096];   /* the synthesized model */
static char trained[4096]; /* stories260K, or the synthesized model */

static struct engine *open_engine(const char *path, uint32_t kv_type, uint32_t n_slots,
				  uint32_t ctx, uint64_t kv_budget, uint64_t budget, const char *dir,
				  struct st_err *err)
{
	struct engine_config cfg;
	struct engine *e = NULL;
	engine_config_default(&cfg);
	cfg.model_path = path;
	cfg.threads = 2;
	cfg.kv_type = kv_type;
	cfg.n_slots = n_slots;
	cfg.ctx_size = ctx;
	cfg.kv_budget = kv_budget;
	cfg.memory_budget = budget;
	if (dir)
		snprintf(cfg.kv_cache_dir, sizeof cfg.kv_cache_dir, "%s", dir);
	if (engine_open(&cfg, &e, err) < 0)
		return NULL;
	return e;
}

/* What a sequence produced: its ids and each step's logits. */
struct run {
	int32_t ids[MAX_STEPS];
	float *logits; /* (MAX_STEPS, n_vocab) */
	uint32_t n, n_vocab;
};

static void on_logits(void *user, struct seq *s, int32_t token, const float *logits, uint32_t n_vocab)
{
	struct run *r = user;
	(void)s;
	if (r->n >= MAX_STEPS)
		return;
	r->ids[r->n] = token;
	if (r->logits)
		memcpy(r->logits + (size_t)r->n * n_vocab, logits, n_vocab * sizeof(float));
	r->n_vocab = n_vocab;
	r->n++;
}

static struct seq *start(struct engine *e, uint32_t slot, const int32_t *prompt, uint32_t n_prompt,
			 uint32_t max_tokens)
{
	struct seq_params p = { .prompt = prompt, .n_prompt = n_prompt, .max_tokens = max_tokens,
				.ignore_eos = true };
	sampler_params_default(&p.sampling);
	p.sampling.temperature = 0;
	struct seq *s = NULL;
	struct st_err err = { "" };
	if (seq_create(e, &p, slot, &s, &err) < 0)
		tap_bail("seq_create: %s", err.msg);
	return s;
}

/* Run s alone for up to `passes` passes (0: to its end), as a driver does. */
static int drive(struct engine *e, struct seq *s, uint32_t passes, struct run *r)
{
	struct batch b;
	uint32_t rows = engine_max_logits_rows(e);
	float *logits = malloc((size_t)rows * engine_n_vocab(e) * sizeof *logits);
	struct seq_sink sink = { .logits = on_logits, .user = r };
	int rc = 0;
	if (!logits || batch_init(&b, engine_max_batch(e), rows) < 0)
		tap_bail("out of memory");
	for (uint32_t k = 0; seq_state(s) != SEQ_FINISHED && (passes == 0 || k < passes); k++) {
		struct seq_pass pass = { 0 };
		struct st_err err = { "" };
		batch_clear(&b);
		engine_plan_begin(e);
		if (seq_add_rows(s, &b, b.cap) == 0) {
			rc = -ENOSPC;
			break;
		}
		rc = engine_decode(e, &b, logits, &err);
		if (rc < 0) {
			tap_diag("engine_decode: %s", err.msg);
			break;
		}
		seq_pass_done(s, logits, &pass, &sink);
	}
	batch_free(&b);
	free(logits);
	return rc;
}

static void prompt_ids(uint32_t n, uint32_t seed, int32_t *out)
{
	for (uint32_t i = 0; i < n; i++)
		out[i] = i == 0 ? 1 : (int32_t)(3 + (seed * 7919u + i * 104729u) % 500);
}

/* ---- paging ---- */

static void test_paging(const char *dir_or_null, const char *what)
{
	const uint32_t ctx = 256, gen = 90;
	int32_t px[20], py[200];
	struct st_err err = { "" };
	prompt_ids(20, 1, px);
	prompt_ids(200, 2, py);

	struct run ref = { .logits = malloc((size_t)MAX_STEPS * 512 * sizeof(float)) };
	struct run got = { .logits = malloc((size_t)MAX_STEPS * 512 * sizeof(float)) };
	struct run other = { 0 };
	struct engine *e = open_engine(model, ST_F16, 2, ctx, 0, 0, NULL, &err);
	if (!e)
		tap_bail("open: %s", err.msg);
	struct seq *x = start(e, 0, px, 20, gen);
	drive(e, x, 0, &ref);
	seq_free(x);
	engine_close(e);

	/* a KV cache of one sequence at full length (the least there can be):
	 * y's 200-token prompt and its tokens push x's blocks out to disk */
	uint32_t blocks = (ctx + 15) / 16 + 1;
	uint64_t frame = 0;
	e = open_engine(model, ST_F16, 2, ctx, 1, 0, NULL, &err); /* 1 byte: to learn the size */
	if (e)
		tap_bail("a 1-byte KV budget was accepted");
	tap_ok(strstr(err.msg, "--kv-budget") && strstr(err.msg, "one sequence") &&
	       strstr(err.msg, "--ctx-size 256"),
	       "a KV budget below one sequence is refused with the numbers: %s", err.msg);
	e = open_engine(model, ST_F16, 2, ctx, 0, 0, NULL, &err);
	frame = engine_info(e)->kv_block_bytes;
	engine_close(e);
	e = open_engine(model, ST_F16, 2, ctx, blocks * frame, 0, dir_or_null, &err);
	if (!tap_ok(e != NULL, "%s: an engine with %u KV blocks in memory opens", what, blocks)) {
		tap_diag("%s", err.msg);
		return;
	}
	x = start(e, 0, px, 20, gen);
	drive(e, x, 30, &got); /* 20-token prompt, 30 tokens: 3 blocks */
	struct seq *y = start(e, 1, py, 200, 40);
	int rc = drive(e, y, 0, &other); /* 239 positions: 15 blocks of 17 */
	struct engine_stats st;
	engine_get_stats(e, &st);
	tap_ok(rc == 0 && seq_state(y) == SEQ_FINISHED && st.kv_bytes_written > 0,
	       "%s: another sequence ran to its end while x waited; x's blocks went to disk "
	       "(%llu bytes written)", what, (unsigned long long)st.kv_bytes_written);
	seq_free(y);
	engine_slot_reset(e, 1);
	drive(e, x, 0, &got);
	engine_get_stats(e, &st);
	tap_ok(st.kv_bytes_read > 0, "%s: x went on: its blocks came back (%llu bytes read)", what,
	       (unsigned long long)st.kv_bytes_read);
	tap_ok(got.n == ref.n && memcmp(got.ids, ref.ids, ref.n * sizeof *ref.ids) == 0,
	       "%s: x generated the %u tokens of the run that never left memory", what, ref.n);
	tap_ok(got.n == ref.n && memcmp(got.logits, ref.logits, (size_t)ref.n * 512 * sizeof(float)) == 0,
	       "%s: ... with the same logits, to the bit, every step", what);
	seq_free(x);
	engine_close(e);
	free(ref.logits);
	free(got.logits);
}

/* ---- quantized caches against f32 ---- */

/* Logits of every position of a 96-token prompt (one pass, every row wanted). */
static float *prompt_logits(uint32_t kv_type, uint32_t n, uint32_t *n_vocab)
{
	struct st_err err = { "" };
	struct engine *e = open_engine(model, kv_type, 1, 256, 0, 0, NULL, &err);
	if (!e)
		tap_bail("open (%s): %s", st_type_name(kv_type), err.msg);
	*n_vocab = engine_n_vocab(e);
	struct batch b;
	float *lg = malloc((size_t)n * *n_vocab * sizeof *lg);
	if (!lg || batch_init(&b, n, n) < 0)
		tap_bail("out of memory");
	int32_t ids[128];
	prompt_ids(n, 3, ids);
	for (uint32_t i = 0; i < n; i++)
		batch_add(&b, ids[i], i, 0, true);
	if (engine_decode(e, &b, lg, &err) < 0)
		tap_bail("decode (%s): %s", st_type_name(kv_type), err.msg);
	batch_free(&b);
	engine_close(e);
	return lg;
}

static void test_quantized(void)
{
	const uint32_t n = 96;
	uint32_t nv;
	float *ref = prompt_logits(ST_F32, n, &nv);
	static const struct {
		uint32_t type;
		double tol;
	} types[] = { { ST_F16, 1e-3 }, { ST_Q8_0, 1e-2 }, { ST_Q4_0, 1e-1 } };
	for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
		float *got = prompt_logits(types[t].type, n, &nv);
		double worst = 0, amax = 0;
		for (size_t i = 0; i < (size_t)n * nv; i++) {
			worst = fmax(worst, fabs((double)got[i] - ref[i]));
			amax = fmax(amax, fabs(ref[i]));
		}
		tap_ok(worst / amax <= types[t].tol,
		       "a %s KV cache: logits of %u positions within %.0e of f32's largest (%.3g; "
		       "max |d| %.3g of %.3g)", st_type_name(types[t].type), n, types[t].tol,
		       worst / amax, worst, amax);
		free(got);
	}
	free(ref);
}

/* ---- prefix reuse ---- */

static uint32_t tokenize(struct engine *e, const char *text, int32_t *out, uint32_t cap)
{
	int32_t *ids;
	uint32_t n;
	if (engine_tokenize(e, text, strlen(text), 1, false, &ids, &n) < 0 || n > cap)
		tap_bail("tokenize");
	memcpy(out, ids, n * sizeof *ids);
	free(ids);
	return n;
}

/* The second turn of a chat: the first prompt, what was generated, more. */
struct turns {
	int32_t p1[64], p2[256];
	uint32_t n1, n2;
};

static void make_turns(struct turns *t, struct engine *e, const struct run *first)
{
	/* the first turn's tokens in the cache: its prompt and all but the last sampled */
	memcpy(t->p2, t->p1, t->n1 * sizeof *t->p1);
	memcpy(t->p2 + t->n1, first->ids, first->n * sizeof *first->ids);
	int32_t more[64];
	uint32_t k = tokenize(e, " Then the dog ran to the park and", more, 64);
	memcpy(t->p2 + t->n1 + first->n, more + 1, (k - 1) * sizeof *more); /* no BOS */
	t->n2 = t->n1 + first->n + k - 1;
}

static uint32_t count_blocks(const char *dir)
{
	uint32_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		n += strstr(de->d_name, ".kvb") != NULL;
	if (d)
		closedir(d);
	return n;
}

static void test_reuse(void)
{
	struct st_err err = { "" };
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/kvcache", tap_tmpdir());
	struct turns t;
	struct run first = { 0 }, again = { 0 }, cold = { 0 }, warm = { 0 }, disk = { 0 };
	struct run third = { 0 }, stale = { 0 };

	/* cold: a fresh engine reads the whole second prompt */
	struct engine *e = open_engine(trained, ST_F32, 2, 256, 0, 0, NULL, &err);
	if (!e)
		tap_bail("open: %s", err.msg);
	t.n1 = tokenize(e, "Once upon a time, there was a little girl", t.p1, 64);
	struct seq *s = start(e, 0, t.p1, t.n1, 40);
	drive(e, s, 0, &first);
	seq_free(s);
	engine_close(e);
	e = open_engine(trained, ST_F32, 2, 256, 0, 0, NULL, &err);
	make_turns(&t, e, &first);
	s = start(e, 0, t.p2, t.n2, 40);
	tap_ok(seq_stats(s)->n_cached == 0, "cold: nothing cached in a fresh engine");
	drive(e, s, 0, &cold);
	seq_free(s);
	engine_close(e);

	/* from memory: the same engine ran the first turn */
	e = open_engine(trained, ST_F32, 2, 256, 0, 0, dir, &err);
	if (!e)
		tap_bail("open: %s", err.msg);
	s = start(e, 0, t.p1, t.n1, 40);
	drive(e, s, 0, &again);
	seq_free(s);
	engine_slot_reset(e, 0);
	tap_ok(again.n == first.n && memcmp(again.ids, first.ids, first.n * sizeof *first.ids) == 0,
	       "the first turn generates the same %u tokens again", first.n);
	s = start(e, 1, t.p2, t.n2, 40);
	uint32_t cached = seq_stats(s)->n_cached, in_cache = t.n1 + first.n - 1;
	tap_ok(cached == in_cache / 16 * 16 && cached > 0,
	       "from memory: the second turn starts with %u of its %u prompt tokens cached (the "
	       "first turn's %u, in whole blocks of 16)", cached, t.n2, in_cache);
	drive(e, s, 0, &warm);
	tap_ok(warm.n == cold.n && memcmp(warm.ids, cold.ids, cold.n * sizeof *cold.ids) == 0,
	       "... and generates the %u tokens of the cold run", cold.n);
	seq_free(s);
	engine_close(e); /* cached blocks go to the directory */
	uint32_t files = count_blocks(dir);
	tap_ok(files >= in_cache / 16, "closing wrote the cached blocks to --kv-cache-dir (%u files)",
	       files);

	/* from disk: a new engine (a restart) on the same directory */
	e = open_engine(trained, ST_F32, 2, 256, 0, 0, dir, &err);
	if (!e)
		tap_bail("open: %s", err.msg);
	s = start(e, 0, t.p2, t.n2, 40);
	cached = seq_stats(s)->n_cached;
	drive(e, s, 0, &disk);
	struct engine_stats st;
	engine_get_stats(e, &st);
	/* the warm second turn's own blocks were cached too */
	tap_ok(cached == (t.n2 - 1) / 16 * 16 && st.kv_bytes_read > 0,
	       "after a restart: %u prompt tokens came from the directory (%llu bytes read)", cached,
	       (unsigned long long)st.kv_bytes_read);
	tap_ok(disk.n == cold.n && memcmp(disk.ids, cold.ids, cold.n * sizeof *cold.ids) == 0,
	       "... and the second turn generates the %u tokens of the cold run", cold.n);
	seq_free(s);
	engine_close(e);

	/* a changed model file (its modification time): nothing reused, blocks removed */
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, 0 } };
	struct stat sb;
	stat(trained, &sb);
	char copy[4200];
	snprintf(copy, sizeof copy, "%s/changed.gguf", tap_tmpdir());
	/* the shared model is read-only: work on a copy with the same bytes */
	char cmd[9000];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", trained, copy);
	if (system(cmd) != 0)
		tap_bail("cannot copy the model");
	snprintf(dir, sizeof dir, "%s/kvcache2", tap_tmpdir());
	e = open_engine(copy, ST_F32, 2, 256, 0, 0, dir, &err);
	s = start(e, 0, t.p1, t.n1, 40);
	drive(e, s, 0, &third);
	seq_free(s);
	engine_close(e);
	uint32_t before = count_blocks(dir);
	ts[1].tv_sec = sb.st_mtime + 100;
	utimensat(AT_FDCWD, copy, ts, 0);
	e = open_engine(copy, ST_F32, 2, 256, 0, 0, dir, &err);
	s = start(e, 0, t.p2, t.n2, 40);
	tap_ok(before > 0 && seq_stats(s)->n_cached == 0 && count_blocks(dir) == 0,
	       "the model file changed (mtime): none of its %u cached blocks is reused, all removed",
	       before);
	drive(e, s, 0, &stale);
	tap_ok(stale.n == cold.n && memcmp(stale.ids, cold.ids, cold.n * sizeof *cold.ids) == 0,
	       "... and the second turn computes everything: the cold run's tokens");
	seq_free(s);

	/* the file written again while the engine runs: what it cached before is not reused */
	struct run fourth = { 0 };
	engine_slot_reset(e, 0);
	s = start(e, 0, t.p1, t.n1, 40);
	drive(e, s, 0, &fourth);
	seq_free(s);
	engine_slot_reset(e, 0);
	engine_kv_flush(e);
	uint32_t held = count_blocks(dir);
	ts[1].tv_sec = sb.st_mtime + 200;
	utimensat(AT_FDCWD, copy, ts, 0);
	s = start(e, 1, t.p2, t.n2, 40);
	tap_ok(seq_stats(s)->n_cached == 0,
	       "the model file changed under a running engine: its cached blocks are not reused");
	seq_free(s);
	engine_close(e);
	tap_ok(held > 0 && count_blocks(dir) == 0, "... and their %u files are gone (%u left)", held,
	       count_blocks(dir));
}

/* ---- truncation into a sealed block ---- */

/* Feed ids[from..to) one per pass in slot 0, logits of each into lg. */
static void feed(struct engine *e, const int32_t *ids, uint32_t from, uint32_t to, float *lg)
{
	struct batch b;
	struct st_err err = { "" };
	uint32_t nv = engine_n_vocab(e);
	batch_init(&b, 1, 1);
	for (uint32_t p = from; p < to; p++) {
		batch_clear(&b);
		batch_add(&b, ids[p], p, 0, true);
		if (engine_decode(e, &b, lg + (size_t)p * nv, &err) < 0)
			tap_bail("decode: %s", err.msg);
	}
	batch_free(&b);
}

static void test_truncate(void)
{
	struct st_err err = { "" };
	struct engine *e = open_engine(model, ST_F16, 2, 256, 0, 0, NULL, &err);
	if (!e)
		tap_bail("open: %s", err.msg);
	uint32_t nv = engine_n_vocab(e);
	int32_t ids[64];
	prompt_ids(64, 5, ids);
	float *a = malloc((size_t)64 * nv * sizeof *a), *b = malloc((size_t)64 * nv * sizeof *b);
	engine_slot_reset(e, 0);
	feed(e, ids, 0, 50, a); /* blocks 0-2 sealed: positions [0, 48) */
	engine_slot_truncate(e, 0, 40);
	feed(e, ids, 40, 50, b);
	tap_ok(memcmp(a + (size_t)40 * nv, b + (size_t)40 * nv, (size_t)10 * nv * sizeof *a) == 0,
	       "truncated to 40 (inside a sealed block) and fed again: the same logits, to the bit");
	/* other tokens from 40 on: the sealed block is copied, not changed */
	int32_t alt[64];
	memcpy(alt, ids, sizeof alt);
	for (int i = 40; i < 50; i++)
		alt[i] = (alt[i] + 17) % 500 + 3;
	engine_slot_truncate(e, 0, 40);
	feed(e, alt, 40, 50, b);
	uint32_t got = engine_slot_reuse(e, 1, ids, 64, 63);
	tap_ok(got == 48, "... and after other tokens were written there, the original 48 "
	       "positions are still reusable (%u)", got);
	engine_slot_reset(e, 1);
	engine_slot_reset(e, 0);
	feed(e, ids, 0, 1, b);
	tap_ok(memcmp(a, b, (size_t)nv * sizeof *a) == 0, "a reset slot starts afresh");
	free(a);
	free(b);
	engine_close(e);
}

int main(void)
{
	struct st_err err = { "" };
	snprintf(model, sizeof model, "%s/kv.gguf", tap_tmpdir());
	struct synth_params sp = { .n_embd = 128, .n_layer = 3, .n_head = 4, .n_head_kv = 2,
				   .n_ff = 256, .n_ctx = 512, .type = ST_F32, .vocab_path = "builtin",
				   .seed = 9, .name = "kv-test" };
	if (!tap_ok(synth_write(model, &sp, &err) == 0, "synthesize a 3-layer model, heads of 32"))
		tap_bail("%s", err.msg);
	const char *shared = tap_shared_dir();
	if (shared)
		snprintf(trained, sizeof trained, "%s/models/stories260K.gguf", shared);
	if (!shared || access(trained, R_OK) != 0)
		snprintf(trained, sizeof trained, "%s", model);
	tap_diag("prefix reuse on %s", trained);

	test_paging(NULL, "swap file");
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/paging-store", tap_tmpdir());
	test_paging(dir, "store");
	test_quantized();
	test_reuse();
	test_truncate();
	return tap_done();
}
