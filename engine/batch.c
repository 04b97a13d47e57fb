/* batch.c: see batch.h. */
#include "engine/batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int batch_init(struct batch *b, uint32_t cap, uint32_t want_cap)
{
	memset(b, 0, sizeof *b);
	b->token = malloc((size_t)cap * sizeof *b->token);
	b->pos = malloc((size_t)cap * sizeof *b->pos);
	b->slot = malloc((size_t)cap * sizeof *b->slot);
	b->want = malloc(cap);
	if (!b->token || !b->pos || !b->slot || !b->want) {
		batch_free(b);
		return -ENOMEM;
	}
	b->cap = cap;
	b->want_cap = want_cap;
	return 0;
}

void batch_free(struct batch *b)
{
	free(b->token);
	free(b->pos);
	free(b->slot);
	free(b->want);
	memset(b, 0, sizeof *b);
}

void batch_clear(struct batch *b)
{
	b->n = 0;
	b->n_want = 0;
}

int32_t batch_add(struct batch *b, int32_t token, uint32_t pos, uint32_t slot, bool want)
{
	uint32_t i = b->n++;
	b->token[i] = token;
	b->pos[i] = pos;
	b->slot[i] = slot;
	b->want[i] = want;
	return want ? (int32_t)b->n_want++ : -1;
}
