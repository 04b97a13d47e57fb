/* plan.c: see plan.h. Arithmetic on byte ranges and a budget; nothing here reads a file,
 * starts a thread or keeps state between calls. */
#include "config.h"

#include "weights/plan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"

static uint64_t align_down(uint64_t x, uint64_t a)
{
	return x / a * a;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

/* ---- extents ---- */

static int range_cmp(const void *a, const void *b)
{
	const struct weights_range *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

struct ext_ref {
	uint64_t off, end;
	uint32_t idx;
};

static int ext_ref_cmp(const void *a, const void *b)
{
	const struct ext_ref *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Round each unit's ranges out to blocks, merge close ones into extents, lay them out. */
static int build_extents(const struct plan_input *in, struct plan *p, struct st_err *err)
{
	uint32_t cap = 0, max_ranges = 0;
	for (uint32_t u = 0; u < in->n_units; u++) {
		if (in->units[u].n_ranges > 0 && !in->units[u].ranges)
			return st_errf(err, -EINVAL, "unit %u has %u ranges but no array", u,
				       in->units[u].n_ranges);
		cap += in->units[u].n_ranges;
		if (in->units[u].n_ranges > max_ranges)
			max_ranges = in->units[u].n_ranges;
	}
	p->ext = calloc(cap ? cap : 1, sizeof *p->ext);
	struct weights_range *tmp = calloc(max_ranges ? max_ranges : 1, sizeof *tmp);
	if (!p->ext || !tmp) {
		free(tmp);
		return st_errf(err, -ENOMEM, "out of memory");
	}
	uint64_t block = in->block, file_end = align_up(in->file_size, block);
	for (uint32_t u = 0; u < in->n_units; u++) {
		struct plan_unit *pu = &p->units[u];
		pu->first_ext = p->n_ext;
		memcpy(tmp, in->units[u].ranges, in->units[u].n_ranges * sizeof *tmp);
		qsort(tmp, in->units[u].n_ranges, sizeof *tmp, range_cmp);
		for (uint32_t i = 0; i < in->units[u].n_ranges; i++) {
			const struct weights_range *g = &tmp[i];
			if (g->len == 0)
				continue;
			if (g->offset > in->file_size || g->len > in->file_size - g->offset) {
				int rc = st_errf(err, -EINVAL, "unit %u: bytes %" PRIu64 "..%" PRIu64
						 " lie outside %s (%" PRIu64 " bytes)", u, g->offset,
						 g->offset + g->len, in->name, in->file_size);
				free(tmp); /* g points into it */
				return rc;
			}
			uint64_t a = align_down(g->offset, block);
			uint64_t b = align_up(g->offset + g->len, block);
			if (b > file_end)
				b = file_end;
			uint64_t end = g->offset + g->len;
			struct plan_extent *last = pu->n_ext ? &p->ext[p->n_ext - 1] : NULL;
			if (last && a <= last->file_off + last->len + PLAN_GAP_MERGE) {
				if (b > last->file_off + last->len)
					last->len = b - last->file_off;
				if (end > last->file_off + last->need)
					last->need = end - last->file_off;
			} else {
				p->ext[p->n_ext++] = (struct plan_extent){ .file_off = a, .len = b - a,
									   .need = end - a };
				pu->n_ext++;
			}
		}
		for (uint32_t i = 0; i < pu->n_ext; i++) {
			struct plan_extent *e = &p->ext[pu->first_ext + i];
			e->buf_off = pu->bytes;
			pu->bytes += e->len;
		}
		if (pu->n_ext > p->max_ext)
			p->max_ext = pu->n_ext;
		p->bytes_units += pu->bytes;
	}
	free(tmp);

	/* the drop ranges: each extent minus what any other extent overlaps */
	struct ext_ref *refs = calloc(p->n_ext ? p->n_ext : 1, sizeof *refs);
	if (!refs)
		return st_errf(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < p->n_ext; i++)
		refs[i] = (struct ext_ref){ p->ext[i].file_off, p->ext[i].file_off + p->ext[i].len, i };
	qsort(refs, p->n_ext, sizeof *refs, ext_ref_cmp);
	uint64_t max_end = 0; /* furthest end among earlier extents */
	for (uint32_t i = 0; i < p->n_ext; i++) {
		struct plan_extent *e = &p->ext[refs[i].idx];
		uint64_t lo = e->file_off, hi = e->file_off + e->len;
		if (i > 0 && max_end > lo)
			lo = max_end < hi ? max_end : hi;
		if (i + 1 < p->n_ext && refs[i + 1].off < hi)
			hi = refs[i + 1].off > lo ? refs[i + 1].off : lo;
		if (refs[i].end > max_end)
			max_end = refs[i].end;
		e->drop_off = lo;
		e->drop_len = hi - lo;
	}
	free(refs);
	return 0;
}

/* ---- the resident set and the buffers ---- */

/* Bit-reversed rank of i among pow2 >= n: ranking units by it spreads any prefix evenly over
 * the pass (0, n/2, n/4, 3n/4, ...). */
static uint32_t spread_rank(uint32_t i, uint32_t n)
{
	uint32_t bits = 0;
	while ((1u << bits) < n)
		bits++;
	uint32_t r = 0;
	for (uint32_t b = 0; b < bits; b++)
		if (i & (1u << b))
			r |= 1u << (bits - 1 - b);
	return r;
}

struct pref {
	uint64_t bytes;
	uint32_t rank, unit;
};

static int pref_cmp(const void *a, const void *b)
{
	const struct pref *x = a, *y = b;
	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* A plan for threshold m streams only units of at most m bytes (larger ones must be
 * resident), keeps min_slots buffers of m, and fills the rest of the budget with resident
 * units, largest first, equal sizes spread over the pass. The best threshold wins. */
static int choose_resident(const struct plan_input *in, struct plan *p, struct st_err *err)
{
	uint32_t n = p->n_units;
	uint64_t total = p->bytes_units, budget = in->budget;
	size_t cap = n ? n : 1;
	bool *best = calloc(cap, sizeof *best), *cur = calloc(cap, sizeof *cur);
	struct pref *pref = calloc(cap, sizeof *pref);
	int rc = 0;
	if (!best || !cur || !pref) {
		rc = st_errf(err, -ENOMEM, "out of memory");
		goto out;
	}

	if (budget == 0 || total <= budget) {
		for (uint32_t i = 0; i < n; i++)
			p->units[i].resident = true;
		goto out;
	}

	for (uint32_t i = 0; i < n; i++)
		pref[i] = (struct pref){ p->units[i].bytes, spread_rank(i, n), i };
	qsort(pref, n, sizeof *pref, pref_cmp);

	uint32_t min_slots = in->prefetch > 0 ? in->prefetch + 1 : 2;
	uint64_t best_streamed = UINT64_MAX, min_need = UINT64_MAX, best_slot = 0;
	uint32_t best_slots = 0, min_need_unit = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t m = pref[k].bytes;
		if (k > 0 && m == pref[k - 1].bytes)
			continue; /* same threshold as before */
		uint64_t forced = 0;
		for (uint32_t j = 0; j < k; j++)
			forced += pref[j].bytes;
		if (m > (UINT64_MAX - forced) / min_slots)
			continue;
		uint64_t need = forced + (uint64_t)min_slots * m;
		if (need < min_need) {
			min_need = need;
			min_need_unit = pref[k].unit;
		}
		if (need > budget)
			continue;
		uint64_t room = budget - need, resident = forced, slot = 0;
		uint32_t n_streamed = 0;
		for (uint32_t j = 0; j < n; j++) {
			uint32_t u = pref[j].unit;
			cur[u] = j < k || pref[j].bytes <= room;
			if (j >= k && cur[u]) {
				room -= pref[j].bytes;
				resident += pref[j].bytes;
			}
			if (!cur[u]) {
				n_streamed++;
				if (pref[j].bytes > slot)
					slot = pref[j].bytes;
			}
		}
		if (n_streamed == 0)
			continue; /* cannot happen: everything would fit, handled above */
		uint64_t s = in->prefetch > 0 ? min_slots : (budget - resident) / slot;
		if (s > n_streamed)
			s = n_streamed;
		uint64_t streamed = total - resident;
		if (streamed < best_streamed || (streamed == best_streamed && s > best_slots)) {
			best_streamed = streamed;
			best_slots = (uint32_t)s;
			best_slot = slot;
			memcpy(best, cur, n * sizeof *best);
		}
	}
	if (best_streamed == UINT64_MAX) {
		char b1[32], b2[32], b3[32];
		rc = st_errf(err, -ENOSPC,
			     "memory budget %s is too small for the weights in %s: the minimum is %s "
			     "(%" PRIu64 " bytes: %u streaming buffers of %s, the size of unit %u, "
			     "plus any larger units resident)",
			     format_size(budget, b1, sizeof b1), in->name,
			     format_size(min_need, b2, sizeof b2), min_need, min_slots,
			     format_size(p->units[min_need_unit].bytes, b3, sizeof b3),
			     min_need_unit);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++)
		p->units[i].resident = best[i];
	p->n_slots = best_slots;
	p->slot_bytes = align_up(best_slot, in->block);
out:
	free(best);
	free(cur);
	free(pref);
	return rc;
}

/* The streamed units in pass order, and where each unit hands the read-ahead on. */
static int order_stream(struct plan *p, struct st_err *err)
{
	uint32_t n_units = p->n_units;
	p->stream = calloc(n_units ? n_units : 1, sizeof *p->stream);
	if (!p->stream)
		return st_errf(err, -ENOMEM, "out of memory");
	for (uint32_t u = 0; u < n_units; u++) {
		struct plan_unit *pu = &p->units[u];
		pu->stream_pos = -1;
		if (pu->resident) {
			p->bytes_resident += pu->bytes;
		} else {
			pu->stream_pos = (int32_t)p->n_stream;
			p->stream[p->n_stream++] = u;
			p->bytes_streamed += pu->bytes;
		}
	}
	/* walking back over two laps, `next` is always the nearest streamed unit after k */
	uint32_t next = 0;
	for (uint64_t k = 2ull * n_units; k-- > 0;) {
		struct plan_unit *pu = &p->units[k % n_units];
		if (k < n_units)
			pu->next_stream = next;
		if (pu->stream_pos >= 0)
			next = (uint32_t)pu->stream_pos;
	}
	return 0;
}

int plan_build(const struct plan_input *in, struct plan *out, struct st_err *err)
{
	memset(out, 0, sizeof *out);
	if (in->block == 0 || (in->block & (in->block - 1)) != 0 || (in->n_units > 0 && !in->units))
		return st_errf(err, -EINVAL, "plan: block %u is not a power of two, or no units",
			       in->block);
	out->n_units = in->n_units;
	out->units = calloc(in->n_units ? in->n_units : 1, sizeof *out->units);
	if (!out->units)
		return st_errf(err, -ENOMEM, "out of memory");
	int rc = build_extents(in, out, err);
	if (rc == 0)
		rc = choose_resident(in, out, err);
	if (rc == 0)
		rc = order_stream(out, err);
	if (rc < 0)
		plan_free(out);
	return rc;
}

void plan_free(struct plan *p)
{
	free(p->units);
	free(p->ext);
	free(p->stream);
	memset(p, 0, sizeof *p);
}

const struct plan_extent *plan_find_ext(const struct plan *p, uint32_t unit, uint64_t off)
{
	const struct plan_unit *pu = &p->units[unit];
	uint32_t lo = 0, hi = pu->n_ext;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (p->ext[pu->first_ext + mid].file_off <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct plan_extent *e = &p->ext[pu->first_ext + lo - 1];
	return off < e->file_off + e->len ? e : NULL;
}

uint64_t plan_ext_file_bytes(const struct plan_extent *e, uint64_t file_size)
{
	return e->file_off + e->len > file_size ? file_size - e->file_off : e->len;
}
