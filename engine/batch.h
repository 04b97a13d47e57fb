/* batch.h: the rows of one forward pass: for each row a token, its position
 * in its sequence, the sequence's KV slot, and whether the pass must produce
 * its logits. Sequences append their rows (seq.h); the forward pass reads
 * them (forward.h). Logits come back in row order of the wanted rows. */
#ifndef STRATA_ENGINE_BATCH_H
#define STRATA_ENGINE_BATCH_H

#include <stdbool.h>
#include <stdint.h>

struct batch {
	uint32_t n;	   /* rows in use */
	uint32_t cap;	   /* rows allocated (the engine's max batch) */
	uint32_t n_want;   /* rows with want set: the logits rows the pass writes */
	uint32_t want_cap; /* at most this many (the logits buffer's rows) */
	int32_t *token;	   /* (cap) token ids */
	uint32_t *pos;	   /* (cap) position of each token in its sequence */
	uint32_t *slot;	   /* (cap) KV-cache slot of its sequence */
	uint8_t *want;	   /* (cap) non-zero: produce logits for this row */
};

/* Room for cap rows of which want_cap may want logits: 0 or -ENOMEM.
 * batch_free releases (NULL fields are fine). */
int batch_init(struct batch *b, uint32_t cap, uint32_t want_cap);
void batch_free(struct batch *b);
/* Empty it (keeps the memory). */
void batch_clear(struct batch *b);
/* Append one row; returns the index of its logits row when `want`, else -1.
 * The caller checks room first (b->n < b->cap, and b->n_want < b->want_cap
 * for a row that wants logits). */
int32_t batch_add(struct batch *b, int32_t token, uint32_t pos, uint32_t slot, bool want);

#endif
