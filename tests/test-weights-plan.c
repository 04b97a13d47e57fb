/* test-weights-plan.c: the weight source's plan (weights/plan.h) on hand-computed cases:
 * extents rounded to blocks and merged, drop ranges that spare shared blocks, the budget's
 * minimum and its message, which units stay resident, how many buffers, the stream order.
 * No file is read: the plan is arithmetic. Blocks are 4 KiB throughout. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "weights/plan.h"
#include "tests/tap.h"

#define K 4096u /* one block */

/* Units of one range each, [off[i], off[i] + len[i]). */
struct case_units {
	struct weights_range r[16];
	struct weights_unit u[16];
	uint32_t n;
};

/* n units of sizes[i] blocks, laid out back to back from block 1 (a header before). */
static void units_of(struct case_units *c, const uint32_t *blocks, uint32_t n)
{
	uint64_t off = K;
	c->n = n;
	for (uint32_t i = 0; i < n; i++) {
		c->r[i] = (struct weights_range){ off, (uint64_t)blocks[i] * K };
		c->u[i] = (struct weights_unit){ &c->r[i], 1 };
		off += (uint64_t)blocks[i] * K;
	}
}

static int build(const struct case_units *c, uint64_t file_size, uint64_t budget,
		 uint32_t prefetch, struct plan *p, struct st_err *err)
{
	struct plan_input in = {
		.units = c->u, .n_units = c->n, .file_size = file_size, .block = K,
		.budget = budget, .prefetch = prefetch, .name = "model.gguf",
	};
	return plan_build(&in, p, err);
}

/* "0,2,4" of the resident units */
static const char *resident_list(const struct plan *p)
{
	static char buf[128];
	size_t n = 0;
	buf[0] = '\0';
	for (uint32_t u = 0; u < p->n_units; u++)
		if (p->units[u].resident)
			n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%u", n ? "," : "", u);
	return buf;
}

static const char *stream_list(const struct plan *p)
{
	static char buf[128];
	size_t n = 0;
	buf[0] = '\0';
	for (uint32_t i = 0; i < p->n_stream; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%u", n ? "," : "", p->stream[i]);
	return buf;
}

static void test_fits(void)
{
	/* 2 + 3 + 1 blocks = 24 KiB: a budget of 0 (none) or of exactly that keeps all */
	static const uint32_t blocks[] = { 2, 3, 1 };
	struct case_units c;
	units_of(&c, blocks, 3);
	struct plan p;
	struct st_err err = { "" };
	for (int i = 0; i < 2; i++) {
		uint64_t budget = i == 0 ? 0 : 6 * K;
		int rc = build(&c, 7 * K, budget, 0, &p, &err);
		tap_ok(rc == 0 && p.n_stream == 0 && p.n_slots == 0 && p.slot_bytes == 0 &&
		       p.bytes_units == 6 * K && p.bytes_resident == 6 * K && p.bytes_streamed == 0 &&
		       !strcmp(resident_list(&p), "0,1,2"),
		       "budget %s: everything resident, no buffers (%s)", i ? "= total" : "none",
		       err.msg);
		plan_free(&p);
	}
	plan_free(&p); /* twice: a freed plan is a zeroed plan */
}

static void test_minimum(void)
{
	/* 6 units of 16 KiB: the least that works is 2 buffers of 16 KiB, nothing resident */
	static const uint32_t blocks[] = { 4, 4, 4, 4, 4, 4 };
	struct case_units c;
	units_of(&c, blocks, 6);
	struct plan p;
	struct st_err err = { "" };
	int rc = build(&c, 25 * K, 1, 0, &p, &err);
	tap_ok(rc == -ENOSPC && strstr(err.msg, "model.gguf") &&
	       strstr(err.msg, "the minimum is 32.0 KiB (32768 bytes: 2 streaming buffers of 16.0 KiB"),
	       "a 1-byte budget: -ENOSPC stating the minimum: %s", err.msg);
	tap_ok(p.units == NULL && p.n_units == 0, "a failed plan holds nothing");
	rc = build(&c, 25 * K, 8 * K - 1, 0, &p, &err);
	tap_is_int(rc, -ENOSPC, "one byte under the minimum: -ENOSPC");
	rc = build(&c, 25 * K, 8 * K, 0, &p, &err);
	tap_ok(rc == 0 && p.n_stream == 6 && p.n_slots == 2 && p.slot_bytes == 4 * K &&
	       p.bytes_resident == 0 && p.bytes_streamed == 24 * K &&
	       !strcmp(stream_list(&p), "0,1,2,3,4,5"),
	       "the minimum: all 6 streamed in pass order through 2 buffers of 16 KiB");
	plan_free(&p);
	/* read-ahead 3 asks for 4 buffers: the minimum doubles */
	rc = build(&c, 25 * K, 16 * K - 1, 3, &p, &err);
	tap_ok(rc == -ENOSPC && strstr(err.msg, "(65536 bytes: 4 streaming buffers"),
	       "prefetch 3: the minimum is 4 buffers: %s", err.msg);
	rc = build(&c, 25 * K, 16 * K, 3, &p, &err);
	tap_ok(rc == 0 && p.n_slots == 4 && p.n_stream == 6, "prefetch 3 at its minimum: 4 buffers");
	plan_free(&p);
}

static void test_largest_resident(void)
{
	/* sizes 2, 16, 2, 2, 2, 8 blocks (128 KiB), budget 120 KiB. Streaming the 64 KiB or the
	 * 32 KiB unit needs two buffers of it: too much. So both stay resident (96 KiB), two
	 * 8 KiB buffers (16 KiB) leave 8 KiB: one 8 KiB unit more, the first by spread rank
	 * (unit 0); units 2, 3, 4 stream. */
	static const uint32_t blocks[] = { 2, 16, 2, 2, 2, 8 };
	struct case_units c;
	units_of(&c, blocks, 6);
	struct plan p;
	struct st_err err = { "" };
	int rc = build(&c, 40 * K, 30 * K, 0, &p, &err);
	if (!tap_ok(rc == 0, "sizes 2,16,2,2,2,8 blocks, budget 30 blocks: a plan (%s)", err.msg))
		return;
	tap_is_str(resident_list(&p), "0,1,5", "the two largest units and one small one resident");
	tap_is_str(stream_list(&p), "2,3,4", "units 2, 3, 4 stream, in pass order");
	tap_ok(p.n_slots == 2 && p.slot_bytes == 2 * K && p.bytes_resident == 26 * K &&
	       p.bytes_streamed == 6 * K,
	       "2 buffers of 8 KiB; 104 KiB resident, 24 KiB streamed per pass");
	/* where read-ahead goes after each unit: the next streamed unit's stream position */
	static const uint32_t next[] = { 0, 0, 1, 2, 0, 0 };
	bool ok = true;
	for (uint32_t u = 0; u < 6; u++)
		ok &= p.units[u].next_stream == next[u] &&
		      p.units[u].stream_pos == (p.units[u].resident ? -1 : (int32_t)u - 2);
	tap_ok(ok, "next_stream: after units 0-1 comes unit 2, after 4 (and 5) unit 2 again");
	plan_free(&p);
}

static void test_spread_and_prefetch(void)
{
	/* 8 equal units of 8 KiB, budget 48 KiB. Auto: 2 buffers (16 KiB) and 4 resident,
	 * every other one so the disk has work between them. Prefetch 3: 4 buffers (32 KiB)
	 * leave room for 2 resident, half a pass apart. */
	static const uint32_t blocks[] = { 2, 2, 2, 2, 2, 2, 2, 2 };
	struct case_units c;
	units_of(&c, blocks, 8);
	struct plan p;
	struct st_err err = { "" };
	int rc = build(&c, 20 * K, 12 * K, 0, &p, &err);
	tap_ok(rc == 0 && !strcmp(resident_list(&p), "0,2,4,6") && p.n_slots == 2 &&
	       !strcmp(stream_list(&p), "1,3,5,7"),
	       "equal units, auto read-ahead: resident %s, streamed %s, %u buffers",
	       resident_list(&p), stream_list(&p), p.n_slots);
	plan_free(&p);
	rc = build(&c, 20 * K, 12 * K, 3, &p, &err);
	tap_ok(rc == 0 && !strcmp(resident_list(&p), "0,4") && p.n_slots == 4 &&
	       !strcmp(stream_list(&p), "1,2,3,5,6,7"),
	       "equal units, prefetch 3: resident %s, %u buffers", resident_list(&p), p.n_slots);
	plan_free(&p);
	/* prefetch 1 asks for what auto chose */
	rc = build(&c, 20 * K, 12 * K, 1, &p, &err);
	tap_ok(rc == 0 && !strcmp(resident_list(&p), "0,2,4,6") && p.n_slots == 2,
	       "equal units, prefetch 1: the same as auto");
	plan_free(&p);
}

static void test_outside(void)
{
	struct weights_range r[2] = { { 100, 50 }, { 9990, 20 } };
	struct weights_unit u[2] = { { &r[0], 1 }, { &r[1], 1 } };
	struct plan_input in = { .units = u, .n_units = 2, .file_size = 10000, .block = K,
				 .name = "model.gguf" };
	struct plan p;
	struct st_err err = { "" };
	int rc = plan_build(&in, &p, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "unit 1") && strstr(err.msg, "9990..10010") &&
	       strstr(err.msg, "model.gguf") && strstr(err.msg, "10000 bytes"),
	       "a range past the end of the file: -EINVAL naming unit, bytes, file: %s", err.msg);
	r[1] = (struct weights_range){ 9980, 20 };
	rc = plan_build(&in, &p, &err);
	tap_ok(rc == 0 && p.ext[1].file_off == 2 * K && p.ext[1].len == K &&
	       p.ext[1].need == 9980 + 20 - 2 * K &&
	       plan_ext_file_bytes(&p.ext[1], 10000) == 10000 - 2 * K,
	       "a range ending at the end of the file: its block padded, %llu bytes to read",
	       (unsigned long long)plan_ext_file_bytes(&p.ext[1], 10000));
	plan_free(&p);
	r[1] = (struct weights_range){ 10000, 0 };
	rc = plan_build(&in, &p, &err);
	tap_ok(rc == 0 && p.units[1].n_ext == 0 && p.units[1].bytes == 0,
	       "an empty range at the end of the file is ignored");
	plan_free(&p);
	u[1] = (struct weights_unit){ NULL, 3 };
	rc = plan_build(&in, &p, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "unit 1 has 3 ranges"), "ranges without an array: %s",
	       err.msg);
	in.block = 3000;
	u[1] = (struct weights_unit){ &r[1], 1 };
	tap_is_int(plan_build(&in, &p, &err), -EINVAL, "a block that is not a power of two");
}

static void test_merge(void)
{
	/* ranges handed over unsorted. 4096+100 and 73728+100 are 64 KiB apart once rounded
	 * to blocks: one extent; 147456 is a block further: a second one */
	struct weights_range r[3] = { { 147456 + 10, 100 }, { 73728, 100 }, { 4096, 100 } };
	struct weights_unit u = { r, 3 };
	struct plan_input in = { .units = &u, .n_units = 1, .file_size = 200000, .block = K,
				 .name = "m" };
	struct plan p;
	struct st_err err = { "" };
	if (!tap_ok(plan_build(&in, &p, &err) == 0, "three ranges: a plan (%s)", err.msg))
		return;
	const struct plan_extent *e = p.ext;
	tap_ok(p.units[0].n_ext == 2 && p.max_ext == 2 && e[0].file_off == 4096 &&
	       e[0].len == 73728 && e[0].need == 73728 + 100 - 4096 && e[0].buf_off == 0 &&
	       e[1].file_off == 147456 && e[1].len == K && e[1].need == 110 &&
	       e[1].buf_off == 73728 && p.units[0].bytes == 73728 + K,
	       "ranges 64 KiB apart merge, farther ones do not; laid out back to back");
	tap_ok(plan_find_ext(&p, 0, 4096) == &e[0] && plan_find_ext(&p, 0, 77823) == &e[0] &&
	       plan_find_ext(&p, 0, 77824) == NULL && plan_find_ext(&p, 0, 4095) == NULL &&
	       plan_find_ext(&p, 0, 147456 + 4000) == &e[1] && plan_find_ext(&p, 0, 151552) == NULL,
	       "find_ext: inside, in the gap, before and after");
	plan_free(&p);
}

static void test_drop_ranges(void)
{
	/* A ends inside block 2, which B starts in (GGUF packs tensors 32 bytes apart): that
	 * block is A's and B's, so neither drops it. C starts on B's end block boundary. */
	struct weights_range r[3] = { { 4096, 5000 }, { 9120, 8000 }, { 20490, 100 } };
	struct weights_unit u[3] = { { &r[0], 1 }, { &r[1], 1 }, { &r[2], 1 } };
	struct plan_input in = { .units = u, .n_units = 3, .file_size = 22000, .block = K,
				 .name = "m" };
	struct plan p;
	struct st_err err = { "" };
	if (!tap_ok(plan_build(&in, &p, &err) == 0, "three neighbours: a plan (%s)", err.msg))
		return;
	const struct plan_extent *e = p.ext;
	tap_ok(e[0].file_off == 4096 && e[0].len == 2 * K && e[1].file_off == 2 * K &&
	       e[1].len == 3 * K && e[2].file_off == 5 * K && e[2].len == K,
	       "extents: A blocks 1-2, B blocks 2-4, C block 5");
	tap_ok(e[0].drop_off == K && e[0].drop_len == K && e[1].drop_off == 3 * K &&
	       e[1].drop_len == 2 * K && e[2].drop_off == 5 * K && e[2].drop_len == K,
	       "drop ranges leave out block 2, shared by A and B: A [%llu,+%llu) B [%llu,+%llu)",
	       (unsigned long long)e[0].drop_off, (unsigned long long)e[0].drop_len,
	       (unsigned long long)e[1].drop_off, (unsigned long long)e[1].drop_len);
	plan_free(&p);
}

int main(void)
{
	test_fits();
	test_minimum();
	test_largest_resident();
	test_spread_and_prefetch();
	test_outside();
	test_merge();
	test_drop_ranges();
	return tap_done();
}
