/* test-gguf.c: the GGUF reader and writer: round trips of every value type and
 * of tensors, a table of corruptions made from a file the writer wrote (each
 * must fail with the right code and a message naming the field), every prefix
 * of a small file, and the real files in $STRATA_SHARED when present.
 * `test-gguf --write-corpus DIR` writes the fuzz seed corpus instead. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "kernels/types.h"
#include "tests/tap.h"

/* ---- helpers ---- */

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void bput(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			tap_bail("out of memory");
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void bu8(struct buf *b, uint8_t v)
{
	bput(b, &v, 1);
}

static void bu32(struct buf *b, uint32_t v)
{
	bput(b, &v, 4);
}

static void bu64(struct buf *b, uint64_t v)
{
	bput(b, &v, 8);
}

static void bstr(struct buf *b, const char *s)
{
	bu64(b, strlen(s));
	bput(b, s, strlen(s));
}

/* key and value type of a kv */
static void bkey(struct buf *b, const char *key, uint32_t type)
{
	bstr(b, key);
	bu32(b, type);
}

static void spill(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		tap_bail("write %s: %s", path, strerror(errno));
}

static char *tmp_path(const char *name)
{
	static char path[8][512];
	static int k;
	char *p = path[k++ % 8];
	snprintf(p, 512, "%s/%s", tap_tmpdir(), name);
	return p;
}

/* Offset of the first occurrence of s in the image. */
static size_t find(const uint8_t *p, size_t n, const char *s)
{
	size_t len = strlen(s);
	for (size_t i = 0; i + len <= n; i++)
		if (memcmp(p + i, s, len) == 0)
			return i;
	tap_bail("'%s' not in the image", s);
}

static void put32(uint8_t *p, size_t off, uint32_t v)
{
	memcpy(p + off, &v, 4);
}

static void put64(uint8_t *p, size_t off, uint64_t v)
{
	memcpy(p + off, &v, 8);
}

static uint64_t get64(const uint8_t *p, size_t off)
{
	uint64_t v;
	memcpy(&v, p + off, 8);
	return v;
}

static bool str_is(struct gguf_str s, const char *want)
{
	return gguf_str_eq(s, want);
}

/* Walk everything a parsed file exposes (what the fuzz target also does);
 * returns a checksum so the reads are not optimized away. */
static uint64_t walk_arr(const struct gguf_kv *kv, int depth)
{
	uint64_t h = kv->arr_len;
	for (uint64_t i = 0; i < kv->arr_len; i++) {
		if (kv->arr_type == GGUF_TYPE_STRING) {
			struct gguf_str s = gguf_arr_str(kv, i);
			h += s.len + (s.len ? (uint8_t)s.ptr[s.len - 1] : 0);
		} else if (kv->arr_type == GGUF_TYPE_ARRAY) {
			struct gguf_kv sub = gguf_arr_sub(kv, i);
			h += walk_arr(&sub, depth + 1);
		} else {
			h += (uint64_t)gguf_arr_i64(kv, i) + (uint64_t)(gguf_arr_f64(kv, i) != 0);
		}
	}
	return h;
}

static uint64_t walk(const struct gguf *g)
{
	uint64_t h = 0;
	for (uint64_t i = 0; i < gguf_n_kv(g); i++) {
		const struct gguf_kv *kv = gguf_kv_at(g, i);
		if (kv->type == GGUF_TYPE_ARRAY)
			h += walk_arr(kv, 1);
		h += kv->raw_len + kv->raw[kv->raw_len ? kv->raw_len - 1 : 0];
	}
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		const uint8_t *d = t->data;
		h += d[0] + d[t->size - 1];
	}
	return h;
}

static int parse(const void *p, size_t n, struct gguf **g, struct st_err *err)
{
	memset(err, 0, sizeof *err);
	return gguf_parse(p, n, "t.gguf", g, err);
}

/* ---- files the tests start from ---- */

static float frand(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

struct tspec {
	const char *name;
	uint32_t type;
	uint32_t n_dims;
	uint64_t ne[4];
};

static const struct tspec round_tensors[] = {
	{ "blk.0.attn_q.weight", ST_F32, 2, { 8, 3 } },
	{ "blk.0.ffn_up.weight", ST_F16, 2, { 16, 2 } },
	{ "output_norm.weight", ST_BF16, 1, { 5 } },
	{ "blk.0.ffn_down.weight", ST_Q8_0, 2, { 64, 2 } },
	{ "token_embd.weight", ST_Q4_0, 3, { 32, 3, 2 } },
	{ "blk.1.attn_k.weight", ST_IQ2_XXS, 2, { 256, 1 } }, /* known, unsupported: still read */
	{ "blk.1.attn_v.weight", ST_Q4_K, 2, { 512, 3 } },
	{ "blk.1.ffn_down.weight", ST_Q6_K, 2, { 256, 2 } },
	{ "blk.1.ffn_up.weight", ST_IQ4_XS, 2, { 256, 1 } },
	{ "blk.1.ffn_gate.weight", ST_Q5_1, 2, { 96, 1 } },
};
#define N_ROUND_TENSORS (sizeof round_tensors / sizeof round_tensors[0])

/* Bytes of the tensors above: valid values of each type made from floats. */
static uint8_t *tensor_bytes(const struct tspec *ts, uint64_t size, uint32_t seed)
{
	uint8_t *p = malloc(size);
	uint32_t s = seed;
	const struct st_type_info *ti = st_type_info(ts->type);
	for (uint64_t i = 0; i < size / ti->block_bytes; i++) {
		uint8_t *b = p + i * ti->block_bytes;
		if (ts->type == ST_F32) {
			float f = frand(&s);
			memcpy(b, &f, 4);
		} else if (ts->type == ST_F16) {
			uint16_t h = st_f32_to_fp16(frand(&s));
			memcpy(b, &h, 2);
		} else if (ts->type == ST_BF16) {
			uint16_t h = st_f32_to_bf16(frand(&s));
			memcpy(b, &h, 2);
		} else {
			for (uint32_t k = 0; k < ti->block_bytes; k++) {
				frand(&s);
				b[k] = (uint8_t)(s >> 24);
			}
			uint16_t d = st_f32_to_fp16(0.01f);
			memcpy(b, &d, 2);
		}
	}
	return p;
}

static uint64_t spec_size(const struct tspec *ts)
{
	const struct st_type_info *ti = st_type_info(ts->type);
	uint64_t n = 1;
	for (uint32_t d = 0; d < ts->n_dims; d++)
		n *= ts->ne[d];
	return n / ti->block_elems * ti->block_bytes;
}

/* ---- round trip through the writer ---- */

static const uint8_t arr_u8[] = { 0, 1, 255 };
static const int8_t arr_i8[] = { -128, 0, 127 };
static const uint16_t arr_u16[] = { 0, 65535 };
static const int16_t arr_i16[] = { -32768, 32767 };
static const uint32_t arr_u32[] = { 0, 4000000000u, 7 };
static const int32_t arr_i32[] = { INT32_MIN, -1, INT32_MAX };
static const float arr_f32[] = { -1.5f, 0.0f, 3.25e10f };
static const uint8_t arr_bool[] = { 1, 0, 1 };
static const uint64_t arr_u64[] = { UINT64_MAX, 0 };
static const int64_t arr_i64[] = { INT64_MIN, INT64_MAX };
static const double arr_f64[] = { 1e300, -2.5 };
static const char *const arr_strs[] = { "a", "", "ccc", "h\xc3\xa9llo" };

static void write_round_file(const char *path, uint32_t alignment, uint8_t **data)
{
	struct st_err err = { { 0 } };
	struct gguf_writer *w = gguf_writer_new(alignment);
	if (!w)
		tap_bail("gguf_writer_new");
	int rc = 0;
	rc |= gguf_writer_add_u32(w, "t.u32", 123456789u);
	rc |= gguf_writer_add_i32(w, "t.i32", -42);
	rc |= gguf_writer_add_u64(w, "t.u64", (UINT64_C(1) << 40) + 7);
	rc |= gguf_writer_add_f32(w, "t.f32", 3.25f);
	rc |= gguf_writer_add_bool(w, "t.true", true);
	rc |= gguf_writer_add_bool(w, "t.false", false);
	rc |= gguf_writer_add_str(w, "t.str", "hello, w\xc3\xb6rld");
	rc |= gguf_writer_add_str(w, "t.empty_str", "");
	rc |= gguf_writer_add_arr(w, "a.u8", GGUF_TYPE_U8, arr_u8, 3);
	rc |= gguf_writer_add_arr(w, "a.i8", GGUF_TYPE_I8, arr_i8, 3);
	rc |= gguf_writer_add_arr(w, "a.u16", GGUF_TYPE_U16, arr_u16, 2);
	rc |= gguf_writer_add_arr(w, "a.i16", GGUF_TYPE_I16, arr_i16, 2);
	rc |= gguf_writer_add_arr(w, "a.u32", GGUF_TYPE_U32, arr_u32, 3);
	rc |= gguf_writer_add_arr(w, "a.i32", GGUF_TYPE_I32, arr_i32, 3);
	rc |= gguf_writer_add_arr(w, "a.f32", GGUF_TYPE_F32, arr_f32, 3);
	rc |= gguf_writer_add_arr(w, "a.bool", GGUF_TYPE_BOOL, arr_bool, 3);
	rc |= gguf_writer_add_arr(w, "a.u64", GGUF_TYPE_U64, arr_u64, 2);
	rc |= gguf_writer_add_arr(w, "a.i64", GGUF_TYPE_I64, arr_i64, 2);
	rc |= gguf_writer_add_arr(w, "a.f64", GGUF_TYPE_F64, arr_f64, 2);
	rc |= gguf_writer_add_arr(w, "a.empty", GGUF_TYPE_U32, NULL, 0);
	rc |= gguf_writer_add_arr_str(w, "a.str", arr_strs, 4);
	rc |= gguf_writer_add_arr_str(w, "a.empty_str", NULL, 0);
	tap_ok(rc == 0, "align %u: every add_* call succeeds", alignment);

	for (size_t i = 0; i < N_ROUND_TENSORS; i++) {
		const struct tspec *ts = &round_tensors[i];
		rc = gguf_writer_add_tensor(w, ts->name, ts->type, ts->n_dims, ts->ne);
		if (rc != (int)i)
			tap_bail("add_tensor %s: %d", ts->name, rc);
	}
	if ((rc = gguf_writer_begin(w, path, &err)) < 0)
		tap_bail("begin: %s", err.msg);
	/* stream all tensors as one byte stream cut in odd pieces, so calls
	 * split tensors and span several */
	struct buf all = { 0 };
	for (size_t i = 0; i < N_ROUND_TENSORS; i++) {
		uint64_t size = spec_size(&round_tensors[i]);
		data[i] = tensor_bytes(&round_tensors[i], size, 17 + (uint32_t)i);
		bput(&all, data[i], size);
	}
	static const size_t cuts[] = { 1, 7, 100, 3, 64, 1000 };
	size_t off = 0;
	for (size_t k = 0; off < all.n; k++) {
		size_t n = cuts[k % 6];
		if (n > all.n - off)
			n = all.n - off;
		if ((rc = gguf_writer_write(w, all.p + off, n, &err)) < 0)
			tap_bail("write: %s", err.msg);
		off += n;
	}
	rc = gguf_writer_finish(w, &err);
	tap_ok(rc == 0, "align %u: writer finishes (%s)", alignment, err.msg);
	gguf_writer_free(w);
	free(all.p);
}

static void test_round_trip(uint32_t alignment)
{
	char name[64];
	snprintf(name, sizeof name, "round%u.gguf", alignment);
	const char *path = tmp_path(name);
	uint8_t *data[N_ROUND_TENSORS];
	write_round_file(path, alignment, data);

	struct gguf *g = NULL;
	struct st_err err = { { 0 } };
	int rc = gguf_open(path, &g, &err);
	if (!tap_ok(rc == 0, "align %u: reopen the written file", alignment)) {
		tap_diag("%s", err.msg);
		return;
	}
	tap_is_int(gguf_version(g), 3, "align %u: version 3", alignment);
	tap_is_int(gguf_alignment(g), alignment, "align %u: reader honors the alignment", alignment);
	tap_is_str(gguf_path(g), path, "gguf_path is the path");
	const struct gguf_kv *ak = gguf_find_kv(g, "general.alignment");
	if (alignment == 32) {
		tap_ok(ak == NULL, "align 32: no general.alignment key");
		tap_is_int(gguf_n_kv(g), 22, "align 32: 22 keys");
	} else {
		tap_ok(ak && ak->type == GGUF_TYPE_U32 && ak->val.u64 == alignment,
		       "align %u: general.alignment written as u32", alignment);
		tap_ok(ak == gguf_kv_at(g, 0), "align %u: general.alignment is the first key",
		       alignment);
		tap_is_int(gguf_n_kv(g), 23, "align %u: 23 keys", alignment);
	}
	tap_ok(gguf_data_offset(g) % alignment == 0, "align %u: data offset %" PRIu64 " is aligned",
	       alignment, gguf_data_offset(g));

	uint32_t u32 = 0;
	int32_t i32 = 0;
	uint64_t u64 = 0;
	float f32 = 0;
	bool b = false;
	struct gguf_str s = { 0 };
	tap_ok(gguf_get_u32(g, "t.u32", &u32, &err) == 0 && u32 == 123456789u, "u32 round trip");
	tap_ok(gguf_get_i32(g, "t.i32", &i32, &err) == 0 && i32 == -42, "i32 round trip");
	tap_ok(gguf_get_u64(g, "t.u64", &u64, &err) == 0 && u64 == (UINT64_C(1) << 40) + 7,
	       "u64 round trip");
	tap_ok(gguf_get_f32(g, "t.f32", &f32, &err) == 0 && f32 == 3.25f, "f32 round trip");
	tap_ok(gguf_get_bool(g, "t.true", &b, &err) == 0 && b, "bool true round trip");
	tap_ok(gguf_get_bool(g, "t.false", &b, &err) == 0 && !b, "bool false round trip");
	tap_ok(gguf_get_str(g, "t.str", &s, &err) == 0 && str_is(s, "hello, w\xc3\xb6rld"),
	       "string round trip");
	tap_ok(gguf_get_str(g, "t.empty_str", &s, &err) == 0 && s.len == 0, "empty string round trip");
	const struct gguf_kv *kv = gguf_find_kv(g, "t.str");
	tap_ok(kv && kv->raw_len == 8 + kv->val.str.len && get64(kv->raw, 0) == kv->val.str.len,
	       "a string's raw bytes start at its length");

	const struct gguf_kv *a = NULL;
	int ok = 1;
	ok &= gguf_get_arr(g, "a.u8", GGUF_TYPE_U8, &a, &err) == 0 && a->arr_len == 3 &&
	      gguf_arr_i64(a, 2) == 255 && gguf_arr_f64(a, 1) == 1.0;
	ok &= gguf_get_arr(g, "a.i8", GGUF_TYPE_I8, &a, &err) == 0 && gguf_arr_i64(a, 0) == -128 &&
	      gguf_arr_i64(a, 2) == 127;
	ok &= gguf_get_arr(g, "a.u16", GGUF_TYPE_U16, &a, &err) == 0 && gguf_arr_i64(a, 1) == 65535;
	ok &= gguf_get_arr(g, "a.i16", GGUF_TYPE_I16, &a, &err) == 0 && gguf_arr_i64(a, 0) == -32768;
	ok &= gguf_get_arr(g, "a.u32", GGUF_TYPE_U32, &a, &err) == 0 &&
	      gguf_arr_i64(a, 1) == 4000000000 && gguf_arr_i64(a, 2) == 7;
	ok &= gguf_get_arr(g, "a.i32", GGUF_TYPE_I32, &a, &err) == 0 &&
	      gguf_arr_i64(a, 0) == INT32_MIN && gguf_arr_f64(a, 1) == -1.0;
	ok &= gguf_get_arr(g, "a.f32", GGUF_TYPE_F32, &a, &err) == 0 &&
	      gguf_arr_f64(a, 0) == -1.5 && gguf_arr_f64(a, 2) == 3.25e10f && gguf_arr_i64(a, 0) == -1;
	ok &= gguf_get_arr(g, "a.bool", GGUF_TYPE_BOOL, &a, &err) == 0 && gguf_arr_i64(a, 0) == 1 &&
	      gguf_arr_i64(a, 1) == 0;
	ok &= gguf_get_arr(g, "a.u64", GGUF_TYPE_U64, &a, &err) == 0 &&
	      gguf_arr_i64(a, 0) == INT64_MAX /* saturates */ && gguf_arr_f64(a, 0) == 18446744073709551615.0;
	ok &= gguf_get_arr(g, "a.i64", GGUF_TYPE_I64, &a, &err) == 0 &&
	      gguf_arr_i64(a, 0) == INT64_MIN && gguf_arr_i64(a, 1) == INT64_MAX;
	ok &= gguf_get_arr(g, "a.f64", GGUF_TYPE_F64, &a, &err) == 0 && gguf_arr_f64(a, 0) == 1e300 &&
	      gguf_arr_i64(a, 0) == INT64_MAX && gguf_arr_f64(a, 1) == -2.5;
	tap_ok(ok, "align %u: numeric arrays of every type round trip", alignment);
	tap_ok(gguf_get_arr(g, "a.empty", GGUF_TYPE_U32, &a, &err) == 0 && a->arr_len == 0 &&
		       a->raw_len == 0,
	       "empty array round trip");
	ok = gguf_get_arr(g, "a.str", GGUF_TYPE_STRING, &a, &err) == 0 && a->arr_len == 4;
	for (uint64_t i = 0; ok && i < 4; i++)
		ok = str_is(gguf_arr_str(a, i), arr_strs[i]);
	tap_ok(ok, "string array (with an empty string) round trip");
	tap_ok(gguf_get_arr(g, "a.empty_str", GGUF_TYPE_COUNT, &a, &err) == 0 && a->arr_len == 0 &&
		       a->arr_type == GGUF_TYPE_STRING,
	       "empty string array round trip");

	tap_is_int(gguf_n_tensors(g), N_ROUND_TENSORS, "align %u: tensor count", alignment);
	uint64_t end = 0;
	for (size_t i = 0; i < N_ROUND_TENSORS; i++) {
		const struct tspec *ts = &round_tensors[i];
		const struct gguf_tensor *t = gguf_find_tensor(g, ts->name);
		uint64_t size = spec_size(ts);
		ok = t && t == gguf_tensor_at(g, i) && str_is(t->name, ts->name) &&
		     t->type == ts->type && t->n_dims == ts->n_dims && t->size == size &&
		     t->offset % alignment == 0 && t->offset >= gguf_data_offset(g) &&
		     (const uint8_t *)t->data == (const uint8_t *)gguf_base(g) + t->offset;
		for (uint32_t d = 0; ok && d < GGUF_MAX_DIMS; d++)
			ok = t->ne[d] == (d < ts->n_dims ? ts->ne[d] : 1);
		tap_ok(ok, "align %u: tensor %s (%s) header round trips", alignment, ts->name,
		       st_type_name(ts->type));
		tap_ok(t && memcmp(t->data, data[i], size) == 0, "align %u: tensor %s bytes round trip",
		       alignment, ts->name);
		if (t)
			end = t->offset + (size + alignment - 1) / alignment * alignment;
		free(data[i]);
	}
	tap_is_int(gguf_file_size(g), end, "align %u: file ends with the padded last tensor", alignment);

	/* the type mix: every type here has one tensor, so each total is its tensor's
	 * size, in falling order; a short array takes the largest only */
	struct gguf_type_total mix[N_ROUND_TENSORS + 1];
	size_t n_mix = gguf_type_mix(g, mix, N_ROUND_TENSORS + 1);
	ok = n_mix == N_ROUND_TENSORS;
	for (size_t i = 0; ok && i < n_mix; i++) {
		size_t self = N_ROUND_TENSORS;
		for (size_t j = 0; j < N_ROUND_TENSORS; j++)
			if (round_tensors[j].type == mix[i].type)
				self = j;
		ok = self < N_ROUND_TENSORS && mix[i].n_tensors == 1 &&
		     mix[i].bytes == spec_size(&round_tensors[self]) && (i == 0 || mix[i - 1].bytes >= mix[i].bytes);
	}
	struct gguf_type_total top[2];
	tap_ok(ok && gguf_type_mix(g, top, 2) == 2 && top[0].type == ST_Q4_K && top[1].type == ST_Q6_K,
	       "align %u: the type mix, largest total first (%zu types; q4_K, q6_K on top)", alignment, n_mix);
	tap_ok(gguf_find_tensor(g, "nope") == NULL && gguf_find_kv(g, "nope") == NULL &&
		       gguf_find_kv(g, "t.u3") == NULL && gguf_tensor_at(g, 99) == NULL &&
		       gguf_kv_at(g, 99) == NULL,
	       "absent names are not found");
	gguf_close(g);
}

/* ---- every value type and nested arrays, from hand-made bytes ---- */

/* A v2 file with a scalar of every type and nested arrays, no tensors. */
static void build_all_types(struct buf *b)
{
	b->n = 0;
	bu32(b, GGUF_MAGIC);
	bu32(b, 2);
	bu64(b, 0);  /* tensors */
	bu64(b, 16); /* kvs */
	bkey(b, "s.u8", GGUF_TYPE_U8), bu8(b, 200);
	bkey(b, "s.i8", GGUF_TYPE_I8), bu8(b, (uint8_t)-100);
	bkey(b, "s.u16", GGUF_TYPE_U16), bu8(b, 0x60), bu8(b, 0xea); /* 60000 */
	bkey(b, "s.i16", GGUF_TYPE_I16), bu8(b, 0x30), bu8(b, 0x8a); /* -30160 */
	bkey(b, "s.u32", GGUF_TYPE_U32), bu32(b, 4000000000u);
	bkey(b, "s.i32", GGUF_TYPE_I32), bu32(b, (uint32_t)-7);
	float f = -0.125f;
	bkey(b, "s.f32", GGUF_TYPE_F32), bput(b, &f, 4);
	bkey(b, "s.bool", GGUF_TYPE_BOOL), bu8(b, 1);
	bkey(b, "s.str", GGUF_TYPE_STRING), bstr(b, "value");
	bkey(b, "s.u64", GGUF_TYPE_U64), bu64(b, UINT64_MAX);
	bkey(b, "s.i64", GGUF_TYPE_I64), bu64(b, (uint64_t)INT64_MIN);
	double d = -2.5e300;
	bkey(b, "s.f64", GGUF_TYPE_F64), bput(b, &d, 8);
	/* [[1, 2, 3], [], [["x", "yy"], []]] */
	bkey(b, "n.nested", GGUF_TYPE_ARRAY), bu32(b, GGUF_TYPE_ARRAY), bu64(b, 3);
	bu32(b, GGUF_TYPE_U32), bu64(b, 3), bu32(b, 1), bu32(b, 2), bu32(b, 3);
	bu32(b, GGUF_TYPE_I8), bu64(b, 0);
	bu32(b, GGUF_TYPE_ARRAY), bu64(b, 2);
	bu32(b, GGUF_TYPE_STRING), bu64(b, 2), bstr(b, "x"), bstr(b, "yy");
	bu32(b, GGUF_TYPE_STRING), bu64(b, 0);
	bkey(b, "n.empty", GGUF_TYPE_ARRAY), bu32(b, GGUF_TYPE_ARRAY), bu64(b, 0);
	/* nested exactly GGUF_MAX_ARRAY_DEPTH deep: [[[...[7]...]]] */
	bkey(b, "n.deep", GGUF_TYPE_ARRAY);
	for (int k = 1; k < GGUF_MAX_ARRAY_DEPTH; k++)
		bu32(b, GGUF_TYPE_ARRAY), bu64(b, 1);
	bu32(b, GGUF_TYPE_U8), bu64(b, 1), bu8(b, 7);
	bkey(b, "n.bools", GGUF_TYPE_ARRAY), bu32(b, GGUF_TYPE_BOOL), bu64(b, 2), bu8(b, 0), bu8(b, 1);
}

static int check_all_types(const struct gguf *g, const char *what)
{
	struct st_err err = { { 0 } };
	const struct gguf_kv *kv;
	int ok = 1;
#define K(key) ((kv = gguf_find_kv(g, key)) != NULL)
	ok &= K("s.u8") && kv->type == GGUF_TYPE_U8 && kv->val.u64 == 200;
	ok &= K("s.i8") && kv->type == GGUF_TYPE_I8 && kv->val.i64 == -100;
	ok &= K("s.u16") && kv->type == GGUF_TYPE_U16 && kv->val.u64 == 60000;
	ok &= K("s.i16") && kv->type == GGUF_TYPE_I16 && kv->val.i64 == -30160;
	ok &= K("s.u32") && kv->type == GGUF_TYPE_U32 && kv->val.u64 == 4000000000u;
	ok &= K("s.i32") && kv->type == GGUF_TYPE_I32 && kv->val.i64 == -7;
	ok &= K("s.f32") && kv->type == GGUF_TYPE_F32 && kv->val.f64 == -0.125;
	ok &= K("s.bool") && kv->type == GGUF_TYPE_BOOL && kv->val.u64 == 1;
	ok &= K("s.str") && kv->type == GGUF_TYPE_STRING && str_is(kv->val.str, "value");
	ok &= K("s.u64") && kv->type == GGUF_TYPE_U64 && kv->val.u64 == UINT64_MAX;
	ok &= K("s.i64") && kv->type == GGUF_TYPE_I64 && kv->val.i64 == INT64_MIN;
	ok &= K("s.f64") && kv->type == GGUF_TYPE_F64 && kv->val.f64 == -2.5e300;
	tap_ok(ok, "%s: a scalar of each of the 12 scalar types", what);

	ok = K("n.nested") && kv->arr_type == GGUF_TYPE_ARRAY && kv->arr_len == 3;
	if (ok) {
		struct gguf_kv a0 = gguf_arr_sub(kv, 0), a1 = gguf_arr_sub(kv, 1), a2 = gguf_arr_sub(kv, 2);
		ok = a0.arr_type == GGUF_TYPE_U32 && a0.arr_len == 3 && gguf_arr_i64(&a0, 0) == 1 &&
		     gguf_arr_i64(&a0, 2) == 3 && a0.raw_len == 12 && a0.key.len == 0;
		ok &= a1.arr_type == GGUF_TYPE_I8 && a1.arr_len == 0 && a1.raw_len == 0;
		ok &= a2.arr_type == GGUF_TYPE_ARRAY && a2.arr_len == 2;
		if (ok) {
			struct gguf_kv s0 = gguf_arr_sub(&a2, 0), s1 = gguf_arr_sub(&a2, 1);
			ok = s0.arr_type == GGUF_TYPE_STRING && s0.arr_len == 2 &&
			     str_is(gguf_arr_str(&s0, 0), "x") && str_is(gguf_arr_str(&s0, 1), "yy") &&
			     s1.arr_type == GGUF_TYPE_STRING && s1.arr_len == 0;
		}
	}
	tap_ok(ok, "%s: nested arrays [[1,2,3],[],[[x,yy],[]]]", what);
	tap_ok(K("n.empty") && kv->arr_type == GGUF_TYPE_ARRAY && kv->arr_len == 0,
	       "%s: empty array of arrays", what);
	ok = K("n.deep");
	struct gguf_kv cur = ok ? *kv : (struct gguf_kv){ 0 };
	for (int k = 1; ok && k < GGUF_MAX_ARRAY_DEPTH; k++) {
		ok = cur.arr_type == GGUF_TYPE_ARRAY && cur.arr_len == 1;
		if (ok)
			cur = gguf_arr_sub(&cur, 0);
	}
	tap_ok(ok && cur.arr_type == GGUF_TYPE_U8 && gguf_arr_i64(&cur, 0) == 7,
	       "%s: arrays nested %d deep are read", what, GGUF_MAX_ARRAY_DEPTH);
	tap_ok(gguf_get_arr(g, "n.bools", GGUF_TYPE_BOOL, &kv, &err) == 0 && gguf_arr_i64(kv, 1) == 1,
	       "%s: bool array", what);
#undef K
	return ok;
}

static void test_all_types(void)
{
	struct buf b = { 0 };
	build_all_types(&b);
	struct gguf *g = NULL, *g2 = NULL;
	struct st_err err = { { 0 } };
	int rc = parse(b.p, b.n, &g, &err);
	if (!tap_ok(rc == 0, "v2 file with every value type parses")) {
		tap_diag("%s", err.msg);
		free(b.p);
		return;
	}
	tap_is_int(gguf_version(g), 2, "version 2 is read");
	tap_is_int(gguf_n_tensors(g), 0, "no tensors");
	check_all_types(g, "parsed");

	/* copy every kv through the writer and read it back */
	const char *path = tmp_path("copy.gguf");
	struct gguf_writer *w = gguf_writer_new(0);
	int ok = 1;
	for (uint64_t i = 0; i < gguf_n_kv(g); i++)
		ok &= gguf_writer_copy_kv(w, gguf_kv_at(g, i)) == 0;
	tap_ok(ok, "copy_kv accepts every kv, nested arrays too");
	ok = gguf_writer_begin(w, path, &err) == 0 && gguf_writer_finish(w, &err) == 0;
	tap_ok(ok, "writer with metadata only (%s)", err.msg);
	gguf_writer_free(w);
	gguf_close(g); /* the copies must not depend on the source */
	memset(b.p, 0, b.n);
	if (gguf_open(path, &g2, &err) == 0) {
		check_all_types(g2, "copied");
		tap_is_int(gguf_version(g2), 3, "the writer writes v3");
		tap_is_int(gguf_n_kv(g2), 16, "copy has 16 keys");
		tap_ok(gguf_data_offset(g2) == gguf_file_size(g2) && gguf_file_size(g2) % 32 == 0,
		       "metadata-only file is padded to the alignment");
		gguf_close(g2);
	} else {
		tap_ok(0, "reopen the copy: %s", err.msg);
	}

	/* one level deeper than allowed */
	build_all_types(&b);
	size_t at = find(b.p, b.n, "n.deep") + 6 + 4;
	struct buf d = { 0 };
	bput(&d, b.p, at);
	bu32(&d, GGUF_TYPE_ARRAY), bu64(&d, 1);
	bput(&d, b.p + at, b.n - at);
	rc = parse(d.p, d.n, &g, &err);
	tap_ok(rc == -EBADMSG && strstr(err.msg, "key 'n.deep'") && strstr(err.msg, "deeper"),
	       "arrays nested %d deep are rejected: %s", GGUF_MAX_ARRAY_DEPTH + 1, err.msg);
	gguf_close(g);
	free(d.p);
	free(b.p);
}

/* ---- typed getters ---- */

static void test_getters(void)
{
	struct buf b = { 0 };
	build_all_types(&b);
	struct gguf *g = NULL;
	struct st_err err = { { 0 } };
	if (parse(b.p, b.n, &g, &err) != 0)
		tap_bail("parse: %s", err.msg);
	uint32_t u32;
	int32_t i32;
	uint64_t u64;
	float f;
	bool bo;
	struct gguf_str s;
	const struct gguf_kv *kv;
	int rc;

	rc = gguf_get_u32(g, "llama.block_count", &u32, &err);
	tap_ok(rc == -ENOENT && strstr(err.msg, "t.gguf") && strstr(err.msg, "'llama.block_count'") &&
		       strstr(err.msg, "not found"),
	       "absent key: -ENOENT naming the key: %s", err.msg);
	rc = gguf_get_u32(g, "s.str", &u32, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "key 's.str'") && strstr(err.msg, "type string") &&
		       strstr(err.msg, "wanted u32"),
	       "wrong type: -EINVAL naming key, found and wanted type: %s", err.msg);
	rc = gguf_get_str(g, "n.nested", &s, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "array of array") && strstr(err.msg, "wanted string"),
	       "array as string: %s", err.msg);
	rc = gguf_get_arr(g, "n.bools", GGUF_TYPE_STRING, &kv, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "array of bool") && strstr(err.msg, "wanted array of string"),
	       "array of the wrong element type: %s", err.msg);
	rc = gguf_get_arr(g, "s.u8", GGUF_TYPE_COUNT, &kv, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "wanted array"), "scalar as array: %s", err.msg);
	rc = gguf_get_u32(g, "s.i32", &u32, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "-7") && strstr(err.msg, "does not fit u32"),
	       "negative into u32: %s", err.msg);
	rc = gguf_get_u32(g, "s.u64", &u32, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "does not fit"), "u64 max into u32: %s", err.msg);
	rc = gguf_get_i32(g, "s.u32", &i32, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "4000000000"), "4e9 into i32: %s", err.msg);
	rc = gguf_get_u64(g, "s.i64", &u64, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "-9223372036854775808"), "i64 min into u64: %s", err.msg);
	tap_ok(gguf_get_u32(g, "s.u8", &u32, &err) == 0 && u32 == 200, "u8 read as u32");
	tap_ok(gguf_get_u32(g, "s.u16", &u32, &err) == 0 && u32 == 60000, "u16 read as u32");
	tap_ok(gguf_get_i32(g, "s.i8", &i32, &err) == 0 && i32 == -100, "i8 read as i32");
	tap_ok(gguf_get_i32(g, "s.i16", &i32, &err) == 0 && i32 == -30160, "i16 read as i32");
	tap_ok(gguf_get_u64(g, "s.u32", &u64, &err) == 0 && u64 == 4000000000u, "u32 read as u64");
	tap_ok(gguf_get_u64(g, "s.u64", &u64, &err) == 0 && u64 == UINT64_MAX, "u64 max");
	tap_ok(gguf_get_f32(g, "s.f32", &f, &err) == 0 && f == -0.125f, "f32");
	rc = gguf_get_f32(g, "s.f64", &f, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "does not fit f32"), "f64 -2.5e300 into f32: %s",
	       err.msg);
	tap_ok(gguf_get_u32(g, "s.f32", &u32, &err) == -EINVAL && strstr(err.msg, "type f32"),
	       "f32 is not an integer: %s", err.msg);
	tap_ok(gguf_get_bool(g, "s.bool", &bo, &err) == 0 && bo, "bool");
	tap_ok(gguf_get_bool(g, "s.u8", &bo, &err) == -EINVAL && strstr(err.msg, "wanted bool"),
	       "u8 is not a bool: %s", err.msg);
	tap_ok(gguf_get_str(g, "s.str", &s, &err) == 0 && str_is(s, "value"), "string");
	gguf_close(g);
	free(b.p);
}

/* ---- corruptions ---- */

/* A small file from the writer, every tensor a multiple of 32 bytes so that
 * the last one ends exactly at the end of the file. */
static uint8_t *corrupt_base(uint32_t alignment, size_t *n)
{
	char name[64];
	snprintf(name, sizeof name, "base%u.gguf", alignment);
	const char *path = tmp_path(name);
	struct st_err err = { { 0 } };
	struct gguf_writer *w = gguf_writer_new(alignment);
	static const uint32_t arr[] = { 1, 2, 3 };
	int rc = gguf_writer_add_u32(w, "c.u32", 7);
	rc |= gguf_writer_add_str(w, "c.str", "abc");
	rc |= gguf_writer_add_arr(w, "c.arr", GGUF_TYPE_U32, arr, 3);
	rc |= gguf_writer_add_bool(w, "c.bool", true);
	rc |= gguf_writer_add_u32(w, "c.dupa", 1);
	rc |= gguf_writer_add_u32(w, "c.dupb", 2);
	static const uint64_t ne_a[] = { 8 }, ne_b[] = { 32, 2 }, ne_c[] = { 8 };
	rc |= gguf_writer_add_tensor(w, "tensor.a", ST_F32, 1, ne_a);
	rc |= gguf_writer_add_tensor(w, "tensor.b", ST_Q8_0, 2, ne_b) == 1 ? 0 : 1;
	rc |= gguf_writer_add_tensor(w, "tensor.c", ST_F32, 1, ne_c) == 2 ? 0 : 1;
	if (rc || gguf_writer_begin(w, path, &err) < 0)
		tap_bail("corrupt_base: %d %s", rc, err.msg);
	uint8_t data[32 + 68 + 32];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 7);
	if (gguf_writer_write(w, data, sizeof data, &err) < 0 || gguf_writer_finish(w, &err) < 0)
		tap_bail("corrupt_base: %s", err.msg);
	gguf_writer_free(w);
	uint8_t *p = (uint8_t *)tap_slurp(path, n);
	if (!p)
		tap_bail("open %s: %s", path, strerror(errno));
	return p;
}

/* Offsets of a tensor info's fields in an image. */
struct tinfo {
	size_t name, n_dims, ne, type, offset;
};

static struct tinfo tensor_fields(const uint8_t *p, size_t n, const char *name)
{
	struct tinfo ti;
	ti.name = find(p, n, name);
	ti.n_dims = ti.name + strlen(name);
	uint32_t nd;
	memcpy(&nd, p + ti.n_dims, 4);
	ti.ne = ti.n_dims + 4;
	ti.type = ti.ne + 8 * nd;
	ti.offset = ti.type + 4;
	return ti;
}

/* Value of a scalar key: after the key bytes and the u32 type. */
static size_t value_at(const uint8_t *p, size_t n, const char *key)
{
	return find(p, n, key) + strlen(key) + 4;
}

struct corruption {
	const char *name;
	uint32_t alignment; /* which base file */
	void (*apply)(uint8_t *p, size_t n);
	int rc;
	const char *words[2];
};

static void c_magic(uint8_t *p, size_t n) { (void)n; p[0] = 'X'; }
static void c_v1(uint8_t *p, size_t n) { (void)n; put32(p, 4, 1); }
static void c_v99(uint8_t *p, size_t n) { (void)n; put32(p, 4, 99); }
static void c_vbig(uint8_t *p, size_t n) { (void)n; put32(p, 4, 0x03000000); }
static void c_n_kv(uint8_t *p, size_t n) { (void)n; put64(p, 16, UINT64_C(1) << 40); }
static void c_n_tensors(uint8_t *p, size_t n) { (void)n; put64(p, 8, UINT64_MAX); }
/* passes the check on the header (6 keys of the smallest size), fails once
 * the real keys are parsed */
static void c_n_tensors_some(uint8_t *p, size_t n) { put64(p, 8, (n - 24 - 6 * 14) / 32); }
static void c_key_len(uint8_t *p, size_t n) { put64(p, find(p, n, "c.u32") - 8, UINT64_C(1) << 62); }
static void c_key_empty(uint8_t *p, size_t n) { put64(p, find(p, n, "c.u32") - 8, 0); }
static void c_str_len(uint8_t *p, size_t n) { put64(p, value_at(p, n, "c.str"), UINT64_C(1) << 62); }
static void c_str_len1(uint8_t *p, size_t n) { put64(p, value_at(p, n, "c.str"), n); }
static void c_arr_len(uint8_t *p, size_t n) { put64(p, value_at(p, n, "c.arr") + 4, UINT64_C(1) << 61); }
static void c_arr_type(uint8_t *p, size_t n) { put32(p, value_at(p, n, "c.arr"), 200); }
static void c_vtype(uint8_t *p, size_t n) { put32(p, value_at(p, n, "c.u32") - 4, 13); }
static void c_bool(uint8_t *p, size_t n) { p[value_at(p, n, "c.bool")] = 2; }
static void c_dup_key(uint8_t *p, size_t n) { memcpy(p + find(p, n, "c.dupb"), "c.dupa", 6); }
static void c_tname_len(uint8_t *p, size_t n) { put64(p, find(p, n, "tensor.a") - 8, UINT64_C(1) << 63); }
static void c_ttype(uint8_t *p, size_t n) { put32(p, tensor_fields(p, n, "tensor.a").type, 4); }
static void c_ttype39(uint8_t *p, size_t n) { put32(p, tensor_fields(p, n, "tensor.a").type, 39); }
static void c_ndims5(uint8_t *p, size_t n) { put32(p, tensor_fields(p, n, "tensor.a").n_dims, 5); }
static void c_ndims0(uint8_t *p, size_t n) { put32(p, tensor_fields(p, n, "tensor.a").n_dims, 0); }
static void c_dims_overflow(uint8_t *p, size_t n)
{
	struct tinfo t = tensor_fields(p, n, "tensor.b");
	put64(p, t.ne, UINT64_C(1) << 32);
	put64(p, t.ne + 8, UINT64_C(1) << 32);
}
static void c_dims_bound(uint8_t *p, size_t n)
{
	struct tinfo t = tensor_fields(p, n, "tensor.b");
	put64(p, t.ne, UINT64_C(1) << 40);
	put64(p, t.ne + 8, UINT64_C(1) << 20);
}
static void c_dim_zero(uint8_t *p, size_t n) { put64(p, tensor_fields(p, n, "tensor.b").ne + 8, 0); }
static void c_block(uint8_t *p, size_t n) { put64(p, tensor_fields(p, n, "tensor.b").ne, 33); }
/* tensor.b as q4_K: rows of 32 are not whole 256-weight super-blocks */
static void c_kblock(uint8_t *p, size_t n) { put32(p, tensor_fields(p, n, "tensor.b").type, ST_Q4_K); }
/* tensor.b as q4_K [256, 2]: 288 bytes of blocks where the file has 68 */
static void c_kcount(uint8_t *p, size_t n)
{
	struct tinfo t = tensor_fields(p, n, "tensor.b");
	put32(p, t.type, ST_Q4_K);
	put64(p, t.ne, 256);
}
static void c_misaligned(uint8_t *p, size_t n)
{
	size_t o = tensor_fields(p, n, "tensor.b").offset;
	put64(p, o, get64(p, o) + 1);
}
static void c_past_eof(uint8_t *p, size_t n)
{
	size_t o = tensor_fields(p, n, "tensor.c").offset;
	put64(p, o, get64(p, o) + 4096);
}
static void c_offset_huge(uint8_t *p, size_t n)
{
	put64(p, tensor_fields(p, n, "tensor.c").offset, UINT64_MAX - 31);
}
static void c_grow(uint8_t *p, size_t n) { put64(p, tensor_fields(p, n, "tensor.c").ne, 16); }
static void c_overlap(uint8_t *p, size_t n)
{
	size_t ob = tensor_fields(p, n, "tensor.b").offset;
	put64(p, tensor_fields(p, n, "tensor.c").offset, get64(p, ob) + 32);
}
static void c_dup_tensor(uint8_t *p, size_t n) { memcpy(p + find(p, n, "tensor.c"), "tensor.a", 8); }
static void c_align48(uint8_t *p, size_t n) { put32(p, value_at(p, n, "general.alignment"), 48); }
static void c_align0(uint8_t *p, size_t n) { put32(p, value_at(p, n, "general.alignment"), 0); }
static void c_align_type(uint8_t *p, size_t n)
{
	put32(p, value_at(p, n, "general.alignment") - 4, GGUF_TYPE_I32);
}
static void c_align_honored(uint8_t *p, size_t n)
{
	/* tensor.b sits at 64 in the data section: fine for 64, not for 128 */
	put32(p, value_at(p, n, "general.alignment"), 128);
}

static const struct corruption corruptions[] = {
	{ "bad magic", 32, c_magic, -EBADMSG, { "header", "magic" } },
	{ "version 1", 32, c_v1, -ENOTSUP, { "header", "version 1 " } },
	{ "version 99", 32, c_v99, -ENOTSUP, { "header", "version 99 " } },
	{ "big-endian version", 32, c_vbig, -ENOTSUP, { "version", "big-endian" } },
	{ "n_kv huge", 32, c_n_kv, -EBADMSG, { "key count 1099511627776", "cannot fit" } },
	{ "n_tensors huge", 32, c_n_tensors, -EBADMSG, { "tensor count", "cannot fit" } },
	{ "n_tensors too big after the keys", 32, c_n_tensors_some, -EBADMSG, { "tensor count", "after the keys" } },
	{ "key length huge", 32, c_key_len, -EBADMSG, { "key 0", "past end of file" } },
	{ "empty key", 32, c_key_empty, -EBADMSG, { "key 0", "empty key" } },
	{ "string length huge", 32, c_str_len, -EBADMSG, { "key 'c.str'", "past end of file" } },
	{ "string length = file size", 32, c_str_len1, -EBADMSG, { "key 'c.str'", "past end of file" } },
	{ "array length huge", 32, c_arr_len, -EBADMSG, { "key 'c.arr'", "past end of file" } },
	{ "array of a bad type", 32, c_arr_type, -EBADMSG, { "key 'c.arr'", "unknown value type 200" } },
	{ "bad value type", 32, c_vtype, -EBADMSG, { "key 'c.u32'", "unknown value type 13" } },
	{ "bool 2", 32, c_bool, -EBADMSG, { "key 'c.bool'", "not 0 or 1" } },
	{ "duplicate key", 32, c_dup_key, -EBADMSG, { "key 'c.dupa'", "duplicate key" } },
	{ "tensor name length huge", 32, c_tname_len, -EBADMSG, { "tensor 0", "past end of file" } },
	{ "tensor type 4 (removed q4_2)", 32, c_ttype, -EBADMSG, { "tensor 'tensor.a'", "unknown tensor type 4" } },
	{ "tensor type 39", 32, c_ttype39, -EBADMSG, { "tensor 'tensor.a'", "unknown tensor type 39" } },
	{ "n_dims 5", 32, c_ndims5, -EBADMSG, { "tensor 'tensor.a'", "n_dims 5" } },
	{ "n_dims 0", 32, c_ndims0, -EBADMSG, { "tensor 'tensor.a'", "n_dims 0" } },
	{ "dims product overflows", 32, c_dims_overflow, -EOVERFLOW, { "tensor 'tensor.b'", "overflow" } },
	{ "dims past 2^50", 32, c_dims_bound, -EOVERFLOW, { "tensor 'tensor.b'", "[1099511627776, 1048576]" } },
	{ "zero dim", 32, c_dim_zero, -EBADMSG, { "tensor 'tensor.b'", "dimension 1 is zero" } },
	{ "row not whole blocks", 32, c_block, -EBADMSG, { "tensor 'tensor.b'", "not a whole number of q8_0 blocks" } },
	{ "q4_K row of 32", 32, c_kblock, -EBADMSG, { "tensor 'tensor.b'", "row of 32 elements is not a whole number of q4_K blocks (256" } },
	{ "q4_K blocks past EOF", 32, c_kcount, -EBADMSG, { "tensor 'tensor.b': data [offset", "size 288] extends past end of file" } },
	{ "offset misaligned", 32, c_misaligned, -EBADMSG, { "tensor 'tensor.b'", "not a multiple of the alignment 32" } },
	{ "data past EOF", 32, c_past_eof, -EBADMSG, { "tensor 'tensor.c': data [offset", "extends past end of file" } },
	{ "offset near 2^64", 32, c_offset_huge, -EBADMSG, { "tensor 'tensor.c'", "extends past end of file" } },
	{ "tensor grown past EOF", 32, c_grow, -EBADMSG, { "tensor 'tensor.c'", "size 64] extends past end of file" } },
	{ "overlapping data", 32, c_overlap, -EBADMSG, { "tensor 'tensor.c'", "overlaps tensor 'tensor.b'" } },
	{ "duplicate tensor name", 32, c_dup_tensor, -EBADMSG, { "tensor 'tensor.a'", "duplicate tensor name" } },
	{ "alignment 48", 64, c_align48, -EBADMSG, { "key 'general.alignment'", "48 is not a power of two" } },
	{ "alignment 0", 64, c_align0, -EBADMSG, { "key 'general.alignment'", "0 is not a power of two" } },
	{ "alignment i32", 64, c_align_type, -EBADMSG, { "key 'general.alignment'", "must be u32" } },
	{ "alignment 128 (honored)", 64, c_align_honored, -EBADMSG, { "tensor '", "not a multiple of the alignment 128" } },
};
#define N_CORRUPTIONS (sizeof corruptions / sizeof corruptions[0])

static void test_corruptions(void)
{
	size_t n32, n64;
	uint8_t *base32 = corrupt_base(32, &n32), *base64 = corrupt_base(64, &n64);
	struct gguf *g = NULL;
	struct st_err err = { { 0 } };

	tap_ok(parse(base32, n32, &g, &err) == 0, "the uncorrupted base file parses (%s)", err.msg);
	if (g) {
		const struct gguf_tensor *c = gguf_find_tensor(g, "tensor.c");
		tap_ok(c && c->offset + c->size == n32, "its last tensor ends at the end of the file");
		gguf_close(g);
	}
	tap_ok(parse(base64, n64, &g, &err) == 0 && gguf_alignment(g) == 64,
	       "the 64-aligned base file parses (%s)", err.msg);
	gguf_close(g);

	uint8_t *p = malloc(n32 > n64 ? n32 : n64);
	for (size_t i = 0; i < N_CORRUPTIONS; i++) {
		const struct corruption *c = &corruptions[i];
		size_t n = c->alignment == 32 ? n32 : n64;
		memcpy(p, c->alignment == 32 ? base32 : base64, n);
		c->apply(p, n);
		g = NULL;
		int rc = parse(p, n, &g, &err);
		int ok = rc == c->rc && g == NULL && strncmp(err.msg, "t.gguf: ", 8) == 0 &&
			 strstr(err.msg, c->words[0]) && strstr(err.msg, c->words[1]);
		tap_ok(ok, "%s: %s", c->name, err.msg);
		if (!ok)
			tap_diag("rc %d (want %d), want words '%s' and '%s'", rc, c->rc, c->words[0],
				 c->words[1]);
		gguf_close(g);
	}

	/* every proper prefix fails cleanly, with a truncation message */
	size_t bad = 0, first_bad = 0;
	for (size_t len = 0; len < n32; len++) {
		uint8_t *q = malloc(len ? len : 1); /* exact size: ASan sees overreads */
		memcpy(q, base32, len);
		g = NULL;
		int rc = parse(q, len, &g, &err);
		if (rc != -EBADMSG || g || !strstr(err.msg, "t.gguf: ") || !strstr(err.msg, "end of file")) {
			if (!bad++)
				first_bad = len;
			gguf_close(g);
		}
		free(q);
	}
	tap_ok(bad == 0, "all %zu prefixes fail with -EBADMSG and 'end of file' (first bad: %zu)", n32,
	       first_bad);

	/* byte mutations: nothing crashes, what parses can be walked */
	static const uint8_t vals[] = { 0x00, 0xff, 0x80, 0x01, 0x7f, 0x20 };
	size_t parsed = 0, runs = 0;
	uint64_t h = 0;
	for (size_t pos = 0; pos < n64; pos++) {
		for (size_t k = 0; k < sizeof vals; k++) {
			memcpy(p, base64, n64);
			p[pos] = vals[k];
			runs++;
			if (parse(p, n64, &g, &err) == 0) {
				parsed++;
				h += walk(g);
				gguf_close(g);
			} else if (!err.msg[0]) {
				tap_diag("no message at %zu=%u", pos, vals[k]);
				parsed = SIZE_MAX;
			}
		}
	}
	tap_ok(parsed != SIZE_MAX, "%zu single-byte mutations: %zu parse, none crash, all errors have "
				   "messages (walk %" PRIu64 ")",
	       runs, parsed, h);
	free(p);
	free(base32);
	free(base64);
}

/* ---- gguf_open and the writer's errors ---- */

static void test_open_errors(void)
{
	struct gguf *g = NULL;
	struct st_err err = { { 0 } };
	const char *missing = tmp_path("missing.gguf");
	int rc = gguf_open(missing, &g, &err);
	tap_ok(rc == -ENOENT && g == NULL && strstr(err.msg, missing), "missing file: -ENOENT: %s",
	       err.msg);
	rc = gguf_open(tap_tmpdir(), &g, &err);
	tap_ok(rc == -EISDIR && strstr(err.msg, "directory"), "a directory: -EISDIR: %s", err.msg);
	const char *empty = tmp_path("empty.gguf");
	spill(empty, "", 0);
	rc = gguf_open(empty, &g, &err);
	tap_ok(rc == -EBADMSG && strstr(err.msg, empty) && strstr(err.msg, "header") &&
		       strstr(err.msg, "end of file"),
	       "empty file: %s", err.msg);
	gguf_close(NULL);
	gguf_writer_free(NULL);
	tap_ok(1, "gguf_close(NULL) and gguf_writer_free(NULL) are no-ops");
}

static void test_writer_errors(void)
{
	struct st_err err = { { 0 } };
	tap_ok(gguf_writer_new(48) == NULL, "alignment 48 is refused");
	struct gguf_writer *w = gguf_writer_new(64);
	static const uint64_t ne[] = { 32, 2 }, ne0[] = { 0 }, ne33[] = { 33 };
	static const uint64_t ne_big[] = { UINT64_C(1) << 30, UINT64_C(1) << 30 };
	static const uint8_t bad_bool[] = { 0, 2 };
	static const char *const null_str[] = { "a", NULL };
	tap_is_int(gguf_writer_add_u32(w, "k", 1), 0, "add a key");
	tap_is_int(gguf_writer_add_str(w, "k", "x"), -EEXIST, "duplicate key: -EEXIST");
	tap_is_int(gguf_writer_add_u32(w, "", 1), -EINVAL, "empty key: -EINVAL");
	tap_is_int(gguf_writer_add_u32(w, NULL, 1), -EINVAL, "NULL key: -EINVAL");
	tap_is_int(gguf_writer_add_u32(w, "general.alignment", 32), -EINVAL,
		   "general.alignment contradicting the writer: -EINVAL");
	tap_is_int(gguf_writer_add_str(w, "general.alignment", "64"), -EINVAL,
		   "general.alignment as a string: -EINVAL");
	tap_is_int(gguf_writer_add_u32(w, "general.alignment", 64), 0,
		   "general.alignment equal to the writer's: accepted");
	tap_is_int(gguf_writer_add_arr(w, "b", GGUF_TYPE_BOOL, bad_bool, 2), -EINVAL, "bool 2: -EINVAL");
	tap_is_int(gguf_writer_add_arr(w, "b", GGUF_TYPE_STRING, bad_bool, 2), -EINVAL,
		   "add_arr of strings: -EINVAL");
	tap_is_int(gguf_writer_add_arr_str(w, "b", null_str, 2), -EINVAL, "NULL string: -EINVAL");
	tap_is_int(gguf_writer_add_tensor(w, "t", 4, 2, ne), -EINVAL, "unknown type: -EINVAL");
	tap_is_int(gguf_writer_add_tensor(w, "t", ST_F32, 5, ne), -EINVAL, "n_dims 5: -EINVAL");
	tap_is_int(gguf_writer_add_tensor(w, "t", ST_F32, 1, ne0), -EINVAL, "zero dim: -EINVAL");
	tap_is_int(gguf_writer_add_tensor(w, "t", ST_Q8_0, 1, ne33), -EINVAL, "partial block: -EINVAL");
	tap_is_int(gguf_writer_add_tensor(w, "t", ST_F32, 2, ne_big), -EOVERFLOW, "2^60 elements: -EOVERFLOW");
	char long_name[65];
	memset(long_name, 'n', 64);
	long_name[64] = '\0';
	tap_is_int(gguf_writer_add_tensor(w, long_name, ST_F32, 2, ne), -ENAMETOOLONG,
		   "64-byte tensor name: -ENAMETOOLONG");
	long_name[63] = '\0';
	tap_is_int(gguf_writer_add_tensor(w, long_name, ST_F32, 2, ne), 0, "63-byte tensor name: fine");
	tap_is_int(gguf_writer_add_tensor(w, "t0", ST_F32, 2, ne), 1, "tensor 1");
	tap_is_int(gguf_writer_add_tensor(w, "t1", ST_Q8_0, 2, ne), 2, "tensor 2");
	tap_is_int(gguf_writer_add_tensor(w, "t1", ST_F32, 2, ne), -EEXIST, "duplicate tensor: -EEXIST");
	int rc = gguf_writer_write(w, "x", 1, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "before gguf_writer_begin"), "write before begin: %s",
	       err.msg);

	const char *path = tmp_path("partial.gguf");
	tap_is_int(gguf_writer_begin(w, path, &err), 0, "begin");
	tap_is_int(gguf_writer_add_u32(w, "late", 1), -EINVAL, "add after begin: -EINVAL");
	static uint8_t zeros[256 + 68];
	tap_is_int(gguf_writer_write(w, zeros, 100, &err), 0, "write part of a tensor");
	rc = gguf_writer_finish(w, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, path) && strstr(err.msg, "tensor 'nnn") &&
		       strstr(err.msg, "100 of its 256 bytes (tensor 1 of 3)"),
	       "finish with a short tensor: %s", err.msg);
	rc = gguf_writer_write(w, zeros, 1, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, "failed earlier"), "writer stays failed: %s", err.msg);
	gguf_writer_free(w);
	tap_ok(access(path, F_OK) != 0, "an unfinished file is removed by gguf_writer_free");

	w = gguf_writer_new(0);
	gguf_writer_add_tensor(w, "t0", ST_F32, 2, ne);
	gguf_writer_begin(w, path, &err);
	rc = gguf_writer_write(w, zeros, 257, &err);
	tap_ok(rc == -EINVAL && strstr(err.msg, path) && strstr(err.msg, "past the last tensor"),
	       "too much data: %s", err.msg);
	gguf_writer_free(w);

	w = gguf_writer_new(0);
	char nodir[600];
	snprintf(nodir, sizeof nodir, "%s/no/such/dir.gguf", tap_tmpdir());
	rc = gguf_writer_begin(w, nodir, &err);
	tap_ok(rc == -ENOENT && strstr(err.msg, nodir), "begin in a missing directory: %s", err.msg);
	gguf_writer_free(w);

	/* a path that is not a regular file: refused, and left alone (a failed
	 * write removes its output: /dev/null once went that way) */
	w = gguf_writer_new(0);
	gguf_writer_add_tensor(w, "t0", ST_F32, 2, ne);
	rc = gguf_writer_begin(w, "/dev/null", &err);
	gguf_writer_free(w);
	struct stat devnull;
	tap_ok(rc == -EINVAL && strstr(err.msg, "not a regular file") && stat("/dev/null", &devnull) == 0 &&
		       S_ISCHR(devnull.st_mode),
	       "begin on /dev/null: -EINVAL, and /dev/null stays a device: %s", err.msg);

	/* a write error: a file size limit makes write(2) fail with EFBIG
	 * (SIGXFSZ ignored), the way a full disk fails with ENOSPC */
	struct rlimit old;
	getrlimit(RLIMIT_FSIZE, &old);
	struct rlimit lim = { 4096, old.rlim_max };
	signal(SIGXFSZ, SIG_IGN);
	w = gguf_writer_new(0);
	static const uint64_t ne_1m[] = { 1 << 18 };
	gguf_writer_add_tensor(w, "t0", ST_F32, 1, ne_1m);
	path = tmp_path("limited.gguf");
	if (gguf_writer_begin(w, path, &err) == 0 && setrlimit(RLIMIT_FSIZE, &lim) == 0) {
		static uint8_t big[1 << 20];
		rc = gguf_writer_write(w, big, sizeof big, &err);
		if (rc == 0)
			rc = gguf_writer_finish(w, &err);
		setrlimit(RLIMIT_FSIZE, &old);
		tap_ok(rc == -EFBIG && strstr(err.msg, path) && strstr(err.msg, "write"),
		       "a failing write(2): %s", err.msg);
	} else {
		tap_skip("cannot limit the file size");
	}
	gguf_writer_free(w);
}

/* ---- real files ---- */

static uint64_t ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Copy a whole file through the writer, then compare. */
static void copy_and_compare(const struct gguf *g, const char *what)
{
	const char *path = tmp_path("copy-real.gguf");
	struct st_err err = { { 0 } };
	struct gguf_writer *w = gguf_writer_new(gguf_alignment(g));
	int ok = 1;
	for (uint64_t i = 0; i < gguf_n_kv(g); i++)
		ok &= gguf_writer_copy_kv(w, gguf_kv_at(g, i)) == 0;
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		char name[128];
		snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
		ok &= gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne) == (int)i;
	}
	ok &= gguf_writer_begin(w, path, &err) == 0;
	for (uint64_t i = 0; ok && i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		ok &= gguf_writer_write(w, t->data, t->size, &err) == 0;
	}
	ok &= gguf_writer_finish(w, &err) == 0;
	gguf_writer_free(w);
	if (!tap_ok(ok, "%s: copied through the writer (%s)", what, err.msg))
		return;
	struct gguf *c = NULL;
	if (!tap_ok(gguf_open(path, &c, &err) == 0, "%s: copy reopens (%s)", what, err.msg))
		return;
	ok = gguf_n_kv(c) == gguf_n_kv(g) && gguf_n_tensors(c) == gguf_n_tensors(g);
	for (uint64_t i = 0; ok && i < gguf_n_kv(g); i++) {
		const struct gguf_kv *a = gguf_kv_at(g, i), *b = gguf_kv_at(c, i);
		ok = a->key.len == b->key.len && memcmp(a->key.ptr, b->key.ptr, a->key.len) == 0 &&
		     a->type == b->type && a->arr_type == b->arr_type && a->arr_len == b->arr_len &&
		     a->raw_len == b->raw_len && memcmp(a->raw, b->raw, a->raw_len) == 0;
	}
	for (uint64_t i = 0; ok && i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *a = gguf_tensor_at(g, i), *b = gguf_tensor_at(c, i);
		ok = a->type == b->type && a->size == b->size && a->n_dims == b->n_dims &&
		     memcmp(a->ne, b->ne, sizeof a->ne) == 0 && memcmp(a->data, b->data, a->size) == 0;
	}
	tap_ok(ok, "%s: the copy has the same keys, values, tensors and bytes", what);
	gguf_close(c);
}

static void test_shared(void)
{
	const char *shared = tap_shared_dir();
	if (!shared) {
		tap_skip("STRATA_SHARED absent: stories260K.gguf and the vocab files are not checked");
		return;
	}
	char path[1024];
	struct gguf *g = NULL;
	struct st_err err = { { 0 } };
	struct gguf_str s;
	uint32_t u32;
	const struct gguf_kv *kv;

	snprintf(path, sizeof path, "%s/models/stories260K.gguf", shared);
	if (access(path, R_OK) != 0) {
		tap_skip("%s absent", path);
	} else if (tap_ok(gguf_open(path, &g, &err) == 0, "open stories260K.gguf (%s)", err.msg)) {
		tap_ok(gguf_get_str(g, "general.architecture", &s, &err) == 0 && str_is(s, "llama"),
		       "general.architecture is llama");
		tap_ok(gguf_get_u32(g, "llama.block_count", &u32, &err) == 0 && u32 == 5,
		       "llama.block_count is 5");
		tap_ok(gguf_get_u32(g, "llama.embedding_length", &u32, &err) == 0 && u32 == 64,
		       "llama.embedding_length is 64");
		/* 9 per layer (2 norms, q k v o, gate up down) + token_embd,
		 * output_norm and output */
		tap_is_int(gguf_n_tensors(g), 5 * 9 + 3, "48 tensors");
		const struct gguf_tensor *o = gguf_find_tensor(g, "output.weight");
		tap_ok(o && o->type == ST_F32 && o->ne[0] == 64 && o->ne[1] == 512,
		       "output.weight is f32 {64, 512}");
		const struct gguf_tensor *t = gguf_find_tensor(g, "token_embd.weight");
		tap_ok(t && t->type == ST_F32 && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512 &&
			       t->size == 64 * 512 * 4,
		       "token_embd.weight is f32 {64, 512}");
		tap_ok(gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &kv, &err) == 0 &&
			       kv->arr_len == 512,
		       "512 tokens");
		uint64_t sum = 0;
		for (uint64_t i = 0; i < gguf_n_tensors(g); i++)
			sum += gguf_tensor_at(g, i)->size;
		tap_diag("stories260K: version %u, %" PRIu64 " keys, %" PRIu64 " tensors, %" PRIu64
			 " bytes of weights, data at %" PRIu64 ", alignment %u",
			 gguf_version(g), gguf_n_kv(g), gguf_n_tensors(g), sum, gguf_data_offset(g),
			 gguf_alignment(g));
		copy_and_compare(g, "stories260K");
		gguf_close(g);
	}

	snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", shared);
	if (access(path, R_OK) != 0) {
		tap_skip("%s absent", path);
	} else {
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int rc = gguf_open(path, &g, &err);
		uint64_t ms = ms_since(&t0);
		if (tap_ok(rc == 0, "open llama-spm vocab (%s)", err.msg)) {
			tap_ok(gguf_get_str(g, "tokenizer.ggml.model", &s, &err) == 0 && str_is(s, "llama"),
			       "tokenizer.ggml.model is llama");
			rc = gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &kv, &err);
			tap_ok(rc == 0 && kv->arr_len == 32000, "tokenizer.ggml.tokens: 32000 strings");
			if (rc == 0) {
				tap_ok(str_is(gguf_arr_str(kv, 0), "<unk>") &&
					       str_is(gguf_arr_str(kv, 1), "<s>") &&
					       str_is(gguf_arr_str(kv, 2), "</s>") &&
					       str_is(gguf_arr_str(kv, 3), "<0x00>"),
				       "tokens 0-3 are <unk> <s> </s> <0x00>");
				struct gguf_str last = gguf_arr_str(kv, kv->arr_len - 1);
				tap_ok(last.ptr + last.len == (const char *)kv->raw + kv->raw_len,
				       "the last token ends where the array ends");
			}
			tap_ok(gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_TYPE_F32, &kv, &err) == 0 &&
				       kv->arr_len == 32000,
			       "tokenizer.ggml.scores: 32000 f32");
			tap_diag("llama-spm vocab: %" PRIu64 " keys, opened in %" PRIu64 " ms", gguf_n_kv(g),
				 ms);
			copy_and_compare(g, "llama-spm vocab");
			gguf_close(g);
		}
	}

	snprintf(path, sizeof path, "%s/vocab/ggml-vocab-gpt-2.gguf", shared);
	if (access(path, R_OK) != 0) {
		tap_skip("%s absent", path);
	} else if (tap_ok(gguf_open(path, &g, &err) == 0, "open gpt-2 vocab (%s)", err.msg)) {
		tap_ok(gguf_get_str(g, "tokenizer.ggml.model", &s, &err) == 0 && str_is(s, "gpt2"),
		       "tokenizer.ggml.model is gpt2");
		tap_ok(gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &kv, &err) == 0 &&
			       kv->arr_len == 50257,
		       "gpt-2: 50257 tokens");
		tap_ok(gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &kv, &err) == 0 &&
			       kv->arr_len == 50000,
		       "gpt-2: 50000 merges");
		gguf_close(g);
	}
}

/* ---- the fuzz seed corpus ---- */

static void write_corpus(const char *dir)
{
	char path[1024];
	size_t n32, n64;
	uint8_t *b32 = corrupt_base(32, &n32), *b64 = corrupt_base(64, &n64);
	uint8_t *p = malloc(n32 > n64 ? n32 : n64);
	struct buf b = { 0 };

	snprintf(path, sizeof path, "%s/valid-align32.gguf", dir);
	spill(path, b32, n32);
	snprintf(path, sizeof path, "%s/valid-align64.gguf", dir);
	spill(path, b64, n64);
	build_all_types(&b);
	snprintf(path, sizeof path, "%s/valid-v2-all-types.gguf", dir);
	spill(path, b.p, b.n);
	snprintf(path, sizeof path, "%s/truncated-in-tensor-table.gguf", dir);
	spill(path, b32, n32 / 2);
	for (size_t i = 0; i < N_CORRUPTIONS; i++) {
		const struct corruption *c = &corruptions[i];
		size_t n = c->alignment == 32 ? n32 : n64;
		memcpy(p, c->alignment == 32 ? b32 : b64, n);
		c->apply(p, n);
		char name[128];
		size_t k = 0;
		for (const char *s = c->name; *s && k < sizeof name - 1; s++) {
			char ch = *s >= 'A' && *s <= 'Z' ? (char)(*s - 'A' + 'a') : *s;
			if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
				name[k++] = ch;
			else if (k && name[k - 1] != '-')
				name[k++] = '-';
		}
		while (k && name[k - 1] == '-')
			k--;
		name[k] = '\0';
		snprintf(path, sizeof path, "%s/bad-%s.gguf", dir, name);
		spill(path, p, n);
	}
	free(p);
	free(b.p);
	free(b32);
	free(b64);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) {
		write_corpus(argv[2]);
		return 0;
	}
	test_round_trip(32);
	test_round_trip(64);
	test_all_types();
	test_getters();
	test_corruptions();
	test_open_errors();
	test_writer_errors();
	test_shared();
	return tap_done();
}
