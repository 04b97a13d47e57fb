/* engine.h: one loaded model ready to compute, and the face of the engine for
 * everything above it (stratad, strata-model, strata-bench): the model's
 * facts, the tokenizer's services (tokenize, detokenize), the memory plan and
 * its counters, and engine_decode(), one forward pass over a batch. The
 * generation core (seq.h) and the single-sequence driver (generate.h) sit on
 * top of it. Not thread-safe: one thread decodes at a time; engine_info() and
 * engine_progress() may be read from any thread. */
#ifndef STRATA_ENGINE_ENGINE_H
#define STRATA_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/batch.h"
#include "engine/draft.h"
#include "engine/sampler.h"
#include "engine/score.h"
#include "engine/seq.h"

struct tokenizer;
struct weights_stats;

/* How weights that are not resident get read. */
enum engine_io {
	ENGINE_IO_URING, /* io_uring into our own buffers, O_DIRECT (falls back to MMAP) */
	ENGINE_IO_MMAP,	 /* a mapping of the file and the page cache */
};

/* Everything a program may set (engine/options.h parses it for all of them). */
struct engine_config {
	const char *model_path;
	int threads;		/* busy compute threads (ours and OpenBLAS's); 0 = online cores */
	uint32_t ctx_size;	/* positions per sequence; 0 = min(training context, 4096) */
	uint32_t n_slots;	/* sequences decoded together; 0 = 1 */
	uint32_t batch_size;	/* most tokens in one forward pass; 0 = 512 */
	uint32_t kv_type;	/* the KV cache's element type, a weight type id (f16, f32,
				 * q8_0, q4_0) */
	uint64_t memory_budget; /* bytes of memory for everything that grows: weights
				 * (resident and stream buffers), the KV cache's memory and
				 * compute scratch; 0 = everything in memory (it must fit) */
	uint64_t kv_budget;	/* of which the KV cache's; 0 = chosen from the budget */
	char kv_cache_dir[1024];/* where KV blocks page to and outlive the process;
				 * "": a temporary swap file, nothing outlives it */
	uint64_t kv_disk_budget;/* bytes of cached KV blocks kept on disk; 0 = no limit */
	enum engine_io io;
	uint32_t prefetch;	/* units read ahead; 0 = from the budget */
	bool mlock;		/* lock resident weights in RAM */
	char chat_template[32];	/* a chat template family for every chat request,
				 * instead of the model's; "": the model's */
	/* Called while engine_open reads the resident weights (bytes done of
	 * total; at most every percent or so), for a daemon's STATUS= or a
	 * progress line. May be NULL. */
	void (*load_progress)(void *user, uint64_t done, uint64_t total);
	void *load_progress_user;
	/* speculative decoding: the drafts sequences get when they do not say */
	enum draft_source draft;/* DEFAULT and NONE: none; LOOKUP; MODEL: draft_path */
	char draft_path[4096];	/* MODEL: a GGUF with the same vocabulary, held resident
				 * and counted against memory_budget */
	uint32_t draft_max;	/* most drafts verified per pass; 0 = 8 */
	uint32_t draft_min;	/* fewest drafts k adapts down to; 0 = 1 */
};

/* --kv-disk-budget's default: cached KV blocks kept on disk. */
#define ENGINE_KV_DISK_DEFAULT (8ull << 30)

void engine_config_default(struct engine_config *c);

/* One storage type of the model's tensors. */
struct engine_weight_type {
	const char *name;   /* "q8_0", "f32": static */
	uint32_t n_tensors;
	uint64_t bytes;
};

#define ENGINE_MAX_WEIGHT_TYPES 16

/* What the model is, copied out of the file at open: reading it never touches
 * the model's mapping (where a page that fails to read raises SIGBUS). */
struct engine_info {
	char path[4096];
	char name[128];		 /* general.name, or the file's base name (raw bytes) */
	char architecture[64];	 /* general.architecture */
	uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
	uint32_t n_ctx;		 /* positions per sequence served */
	uint32_t n_slots;	 /* sequences decoded together */
	uint32_t max_batch;	 /* tokens per pass */
	int threads;
	uint64_t n_params;	 /* elements of all tensors */
	uint64_t file_bytes;
	uint64_t weight_bytes;	 /* of the tensors the forward pass reads */
	struct engine_weight_type types[ENGINE_MAX_WEIGHT_TYPES]; /* largest total first */
	uint32_t n_types;
	const char *kv_type;	 /* "f16", ... */
	uint64_t kv_bytes;	 /* the KV cache's memory (its share of the bound) */
	uint64_t kv_block_bytes; /* one block of KV_BLOCK_POS positions, all layers */
	uint32_t kv_block_pos;	 /* positions per block */
	bool kv_pages;		 /* the KV cache may page to disk (its memory cannot hold
				  * every sequence at full length) */
	bool kv_persistent;	 /* cached KV blocks outlive the process (--kv-cache-dir) */
	uint64_t memory_bound;	 /* what the memory plan is within (--memory-budget, or
				  * what everything needs when none is given) */
	uint64_t scratch_bytes;	 /* of which compute scratch */
	uint64_t memory_limit;	 /* what this process may use (cgroup or physical) */
	uint32_t layers_resident;/* layers whose weights all stay in memory */
	bool add_bos;		 /* the vocabulary's default */
	const char *chat_template; /* the family chat requests are rendered with, or NULL
				    * when the model's template is not recognized (static) */
	enum draft_source draft;  /* sequences' default drafts: NONE, LOOKUP or MODEL */
	uint32_t draft_max, draft_min;
	const struct engine_info *draft_model; /* MODEL: the draft model's facts, else NULL */
};

/* Counters and the plan, for Status and logs. */
struct engine_stats {
	uint64_t passes;	     /* forward passes completed */
	uint64_t tokens;	     /* rows they carried */
	uint64_t pass_ns;	     /* their wall time */
	enum engine_io io;	     /* the mode actually in use */
	uint32_t units_streamed;     /* weight units read on every pass (0: all resident) */
	uint64_t bytes_resident;     /* weights held for the engine's lifetime */
	uint64_t stream_buffer_bytes;/* buffers streamed weights pass through */
	uint64_t bytes_streamed_per_pass;
	uint64_t bytes_read;	     /* weight bytes read since open, the resident load excluded */
	uint64_t stall_ns;	     /* time passes waited for weights */
	uint64_t kv_bytes;	     /* the KV caches' memory, reserved (the draft model's included) */
	uint64_t kv_used_bytes;	     /* ... holding blocks now */
	uint64_t kv_held_bytes;	     /* ... of which sequences hold (the rest: cached prefixes) */
	uint64_t kv_disk_bytes;	     /* KV blocks on disk (store and swap file) */
	uint64_t kv_swap_bytes;	     /* ... of which in the swap file */
	uint64_t kv_cached_blocks;   /* prefix blocks kept for reuse, in memory or on disk */
	uint64_t kv_reused_tokens;   /* prompt positions taken from the cache */
	uint64_t kv_bytes_read, kv_bytes_written; /* the KV cache's disk traffic */
	uint64_t kv_io_ns;	     /* passes' time waiting for it */
	/* the draft model (0 without one); bytes_resident and kv_bytes include its share */
	uint64_t draft_bytes;	     /* its weights, resident, taken from the budget */
	uint64_t draft_kv_bytes;     /* its KV cache */
	uint64_t draft_passes;	     /* its forward passes */
	uint64_t draft_pass_ns;	     /* their wall time */
};

/* What one pass read and waited for: two snapshots around engine_decode give a
 * pass's cost (cheap: no locks, no syscalls). */
struct engine_pass_io {
	uint64_t bytes_read;
	uint64_t stall_ns;
};

struct engine;

/* Call first in main() of a program that computes: sets OpenBLAS up before it
 * starts threads (may re-execute the program once; see kernels/blas.h). */
void engine_setup_process(char **argv);

/* Load everything; logs the memory plan at info level. With a draft model
 * (cfg->draft MODEL) it is loaded first, all resident, and the target plans
 * within the budget that is left; a draft whose vocabulary differs from the
 * model's (tokens, special ids) is refused. The caller owns *out
 * (engine_close; NULL is a no-op). Errors name the file and the reason. */
int engine_open(const struct engine_config *cfg, struct engine **out, struct st_err *err);
void engine_close(struct engine *e);

const struct engine_info *engine_info(const struct engine *e);
uint32_t engine_n_ctx(const struct engine *e);
uint32_t engine_n_slots(const struct engine *e);
uint32_t engine_max_batch(const struct engine *e);
uint32_t engine_n_vocab(const struct engine *e);
int engine_threads(const struct engine *e);

/* The tokenizer, for the engine's own modules and the offline tools. */
const struct tokenizer *engine_tokenizer(const struct engine *e);

/* Tokenize n bytes of UTF-8 text: *ids (malloc'd, the caller frees) of *n_ids.
 * add_bos: 1 yes, 0 no, -1 the vocabulary's default. parse_special: text that
 * spells a control token becomes it. 0, -ENOMEM or -EOVERFLOW (over 256 MiB). */
int engine_tokenize(const struct engine *e, const char *text, size_t n, int add_bos,
		    bool parse_special, int32_t **ids, uint32_t *n_ids);
/* The text of ids (whole characters, ill-formed bytes as U+FFFD):
 * *text (malloc'd, NUL-terminated, the caller frees) of *len bytes; special:
 * control tokens as their text. 0, -EINVAL (an id outside the vocabulary:
 * *bad_index says which) or -ENOMEM. */
int engine_detokenize(const struct engine *e, const int32_t *ids, uint32_t n, bool special,
		      char **text, size_t *len, uint32_t *bad_index);
/* The raw bytes one token stands for (control tokens as their text), into
 * buf[0..cap): the length, which may exceed cap; -EINVAL for a bad id. */
int engine_token_bytes(const struct engine *e, int32_t id, char *buf, size_t cap);
/* The longest engine_token_bytes() of any token. */
size_t engine_token_bytes_max(const struct engine *e);

/* The most rows of logits one pass returns (the logits buffer a driver
 * allocates: rows x n_vocab floats): enough for every sequence's next token,
 * and for echo and scoring rows up to a fixed memory cap. */
uint32_t engine_max_logits_rows(const struct engine *e);

/* One chat message (UTF-8, NUL-terminated strings the caller owns). */
struct engine_chat_msg {
	const char *role;
	const char *content;
};

/* Render a conversation with the model's chat template (or the family named
 * `family`, or the engine's configured one), ready for generation (the
 * assistant's turn begins), and tokenize it with special tokens parsed and no
 * BOS beyond what the template writes: *ids (malloc'd, caller frees) of
 * *n_ids. *end_of_turn is the template's end-of-turn token, or -1 when its
 * turns end with EOS. -EINVAL with a message (no template recognized and
 * none named, an unknown family with the list of families, roles the family
 * cannot express), -ENOMEM. */
int engine_chat(const struct engine *e, const struct engine_chat_msg *msgs, uint32_t n,
		const char *family, int32_t **ids, uint32_t *n_ids, int32_t *end_of_turn,
		struct st_err *err);

/* One forward pass over b (see forward.h for the rules): logits
 * (b->n_want, n_vocab) f32 in row order of the wanted rows. -EIO when weights
 * cannot be read, -ESTALE when the model file was replaced, -ENOMEM, -EINVAL. */
int engine_decode(struct engine *e, const struct batch *b, float *logits, struct st_err *err);
/* The KV cache's slots: one per sequence being served (engine_n_slots()).
 * A slot holds positions [0, n) of its sequence as a table of blocks
 * (engine/kv.h); rows of a pass extend it (engine_decode).
 *
 * Forget a slot's positions (its link goes too). Its full blocks stay cached
 * for prefix reuse; the rest is freed. */
void engine_slot_reset(struct engine *e, uint32_t slot);
/* The draft model's own engine (--draft FILE), or NULL: its passes are
 * draft.c's, its KV cache has the target's slots, its threads are the
 * target's (the two never compute at once). Owned by e. */
struct engine *engine_draft_model(struct engine *e);
/* Positions [0, n) of slot dst read slot src's cache from now on (a Score's
 * continuations share the context stored once in src). dst is reset first.
 * -EINVAL if either is out of range, equal, or src is linked itself. */
int engine_slot_link(struct engine *e, uint32_t dst, uint32_t src, uint32_t n);
/* Positions >= n of a slot are void (rejected draft rows): a later pass
 * writes them again before anything reads them. Blocks past them are
 * dropped; a sealed block they cut is copied before it is written. */
void engine_slot_truncate(struct engine *e, uint32_t slot, uint32_t n);
/* Start a slot for a sequence whose tokens begin with ids[0..n): it is reset,
 * then takes the longest prefix of at most `max` positions that the cache
 * holds from earlier sequences (in memory or on disk, in whole blocks).
 * Returns the positions it holds: the sequence's passes start there. */
uint32_t engine_slot_reuse(struct engine *e, uint32_t slot, const int32_t *ids, uint32_t n,
			   uint32_t max);

/* For benchmarks that need the KV cache of long conversations without the
 * hours of computing it: positions [0, n) of the slot (reset first) hold
 * random K/V rows for the tokens ids[0..n), sealed and cached as computed
 * ones would be (and written to --kv-cache-dir by engine_kv_flush or at
 * close). A model attending to them produces noise, as a synthesized model
 * does anyway. 0 or -errno with a message. */
int engine_slot_fill(struct engine *e, uint32_t slot, const int32_t *ids, uint32_t n,
		     uint64_t seed, struct st_err *err);

/* Planning a pass within the KV cache's memory: begin, then for each
 * sequence (in the order it should be served) ask how many of the n rows it
 * would add at positions pos.. fit with those already planned (0..n). A
 * sequence left out keeps its positions; its blocks may go to disk to make
 * room, and come back when it is in a pass again. A driver that runs one
 * sequence need not plan: a pass that cannot fit fails with -ENOMEM. */
void engine_plan_begin(struct engine *e);
uint32_t engine_plan_rows(struct engine *e, uint32_t slot, uint32_t pos, uint32_t n);
/* Blocks the KV cache holds in memory, and positions per block: a job whose
 * blocks must all be in memory at once (a Score's context and its
 * continuations side by side) must fit in that. */
uint32_t engine_kv_blocks(const struct engine *e);
uint32_t engine_kv_block_pos(void);
/* Write cached blocks that are only in memory to --kv-cache-dir (when set),
 * so a restart finds them; the scheduler calls it when idle. */
void engine_kv_flush(struct engine *e);

void engine_get_stats(const struct engine *e, struct engine_stats *out);
void engine_pass_io(const struct engine *e, struct engine_pass_io *out);
/* The weight source's full counters (benchmarks; include weights/weights.h). */
void engine_weights_stats(const struct engine *e, struct weights_stats *out);
/* A counter that advances after every layer of every pass, the draft model's
 * included (a watchdog tells a long pass from a stuck one with it). Any thread. */
uint64_t engine_progress(const struct engine *e);
/* The memory plan, human-readable, several lines. */
void engine_describe(const struct engine *e, char *buf, size_t cap);

#endif
