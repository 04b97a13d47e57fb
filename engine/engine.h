/* engine.h: one loaded model ready to compute: the model's description, its
 * tokenizer, the weight source built from the memory budget, the KV cache,
 * the compute threads and the forward pass. The daemon's scheduler, the
 * tools and the benchmark all drive it through engine_decode(). It is not
 * thread-safe: one thread decodes at a time. */
#ifndef STRATA_ENGINE_ENGINE_H
#define STRATA_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/forward.h"
#include "weights/weights.h"

struct model;
struct tokenizer;

struct engine_config {
	const char *model_path;
	int threads;		 /* compute threads (ours and OpenBLAS's); 0 = online cores */
	uint32_t ctx_size;	 /* positions per sequence; 0 = min(training context, 4096) */
	uint32_t n_slots;	 /* sequences decoded together; 0 = 1 */
	uint32_t batch_size;	 /* most tokens in one forward pass; 0 = 512 */
	uint32_t kv_type;	 /* ST_F16 or ST_F32 */
	uint64_t memory_budget;	 /* bytes of weights held in memory; 0 = the whole model */
	enum weights_io io;	 /* WEIGHTS_IO_URING (falls back to mmap) or WEIGHTS_IO_MMAP */
	int prefetch;		 /* units read ahead; 0 = auto */
	bool mlock;		 /* lock resident weights in RAM */
};

void engine_config_default(struct engine_config *c);

struct engine_stats {
	struct forward_stats fwd;
	struct weights_stats io;
	size_t kv_bytes;	 /* reserved for the KV cache */
};

struct engine;

/* Load everything; logs the memory plan at info level. The caller owns *out
 * (engine_close; NULL is a no-op). Errors name the file and the reason. */
int engine_open(const struct engine_config *cfg, struct engine **out, struct st_err *err);
void engine_close(struct engine *e);

const struct model *engine_model(const struct engine *e);
const struct tokenizer *engine_tokenizer(const struct engine *e);
uint32_t engine_n_ctx(const struct engine *e);
uint32_t engine_n_slots(const struct engine *e);
uint32_t engine_max_batch(const struct engine *e);
int engine_threads(const struct engine *e);

/* One forward pass; see forward_run() for the batch rules. */
int engine_decode(struct engine *e, const struct forward_batch *b, float *logits,
		  struct st_err *err);
/* Forget a slot's cache (its memory goes back to the kernel). */
void engine_slot_reset(struct engine *e, uint32_t slot);

void engine_get_stats(const struct engine *e, struct engine_stats *out);
/* Layers whose weights the plan keeps in memory (fixed after engine_open:
 * any thread may ask). */
uint32_t engine_layers_resident(const struct engine *e);
/* See forward_progress(): readable from any thread. */
uint64_t engine_progress(const struct engine *e);
/* The memory plan, human-readable, several lines. */
void engine_describe(const struct engine *e, char *buf, size_t cap);

#endif
