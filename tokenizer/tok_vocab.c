/* tok_vocab.c: the vocabulary's lookups (see tok_vocab.h): open-addressing
 * hash maps from a token's text to its id and from a pair of ids to a BPE
 * merge rank, built once at load, read by both encoders. */
#include "tokenizer/tok_vocab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t hash_bytes(const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	return h ^ (h >> 15);
}

static uint32_t slots_for(size_t n)
{
	uint32_t s = 16;
	while (s < 2 * n) /* keep the load factor at or below 1/2 */
		s <<= 1;
	return s;
}

/* The slot holding the token whose text is s[0..n), or the empty slot where
 * it would go (linear probing; the maps are at most half full). */
static uint32_t strmap_slot(const struct tokenizer *t, const char *s, size_t n)
{
	const struct tok_strmap *m = &t->by_text;
	for (uint32_t i = hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
		int32_t id = m->slots[i];
		if (id < 0)
			return i;
		size_t len;
		const char *txt = tok_text(t, id, &len);
		if (len == n && memcmp(txt, s, n) == 0)
			return i;
	}
}

int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t n)
{
	return t->by_text.slots[strmap_slot(t, s, n)];
}

int32_t tok_strmap_insert(struct tokenizer *t, int32_t id)
{
	size_t n;
	const char *s = tok_text(t, id, &n);
	uint32_t i = strmap_slot(t, s, n);
	if (t->by_text.slots[i] >= 0)
		return t->by_text.slots[i];
	t->by_text.slots[i] = id;
	return -1;
}

/* The slot holding the merge (left, right), or the empty slot for it. */
static uint32_t pairmap_slot(const struct tok_pairmap *m, uint64_t key)
{
	uint64_t h = key * 0x9E3779B97F4A7C15ull; /* Fibonacci hashing */
	for (uint32_t i = (uint32_t)(h >> 32) & m->mask;; i = (i + 1) & m->mask) {
		if (m->keys[i] == key || m->keys[i] == UINT64_MAX)
			return i;
	}
}

static inline uint64_t pair_key(int32_t left, int32_t right)
{
	return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

int32_t tok_merge_rank(const struct tokenizer *t, int32_t left, int32_t right)
{
	uint64_t key = pair_key(left, right);
	uint32_t i = pairmap_slot(&t->merges, key);
	return t->merges.keys[i] == key ? t->merges.vals[i] : -1;
}

void tok_pairmap_put(struct tok_pairmap *m, int32_t left, int32_t right, int32_t rank)
{
	uint64_t key = pair_key(left, right);
	uint32_t i = pairmap_slot(m, key);
	if (m->keys[i] == UINT64_MAX) {
		m->keys[i] = key;
		m->vals[i] = rank;
	}
}

int tok_strmap_alloc(struct tok_strmap *m, size_t n)
{
	m->mask = slots_for(n) - 1;
	m->slots = malloc(((size_t)m->mask + 1) * sizeof *m->slots);
	if (!m->slots)
		return -ENOMEM;
	memset(m->slots, 0xFF, ((size_t)m->mask + 1) * sizeof *m->slots); /* all -1 */
	return 0;
}

void tok_strmap_free(struct tok_strmap *m)
{
	free(m->slots);
	m->slots = NULL;
}

int tok_pairmap_alloc(struct tok_pairmap *m, size_t n)
{
	m->mask = slots_for(n) - 1;
	size_t slots = (size_t)m->mask + 1;
	m->keys = malloc(slots * sizeof *m->keys);
	m->vals = malloc(slots * sizeof *m->vals);
	if (!m->keys || !m->vals) {
		tok_pairmap_free(m);
		return -ENOMEM;
	}
	memset(m->keys, 0xFF, slots * sizeof *m->keys); /* all UINT64_MAX: empty */
	return 0;
}

void tok_pairmap_free(struct tok_pairmap *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
}
