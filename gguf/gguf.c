/* gguf.c: the GGUF reader (see gguf.h). It maps a file, checks every length,
 * count, type and offset against the bytes that remain before using it, and
 * indexes what callers look up. It does not interpret keys (model.c does),
 * except general.alignment, and never reads tensor data. Writer: gguf_write.c. */
#include "gguf/gguf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hash.h"
#include "kernels/types.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian GGUF files by plain loads: port it for big-endian hosts"
#endif

/* Smallest encodings, used to reject counts the file cannot hold before
 * allocating for them: a kv is a 1-byte key with its u64 length, a u32 type
 * and a 1-byte value; a tensor info an empty name, n_dims, one dim, type and
 * offset; an array element inside an array of arrays is its type and count. */
#define MIN_KV_BYTES (8 + 1 + 4 + 1)
#define MIN_TENSOR_BYTES (8 + 4 + 8 + 4 + 8)
#define HEADER_BYTES (4 + 4 + 8 + 8)
#define SUBARRAY_HEADER_BYTES (4 + 8)

/* Element index of an array of arrays: where element i starts (its type
 * field, as an offset from the parent's raw) and the element's own index. */
struct sub_entry {
	uint64_t off;
	const void *index;
};

/* Bump allocator for the array indexes, freed with the gguf. */
struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	_Alignas(16) unsigned char mem[];
};
#define ARENA_CHUNK (64 * 1024)

struct gguf {
	const uint8_t *base; /* the mapping or the caller's image */
	uint64_t size;	     /* its bytes */
	bool mapped;	     /* gguf_open mapped it: gguf_close unmaps */
	char *name;	     /* path or name for messages; owned */
	uint32_t version;
	uint32_t alignment;
	uint64_t data_offset;
	uint64_t n_kv;
	struct gguf_kv *kv; /* (n_kv) in file order */
	uint64_t n_tensors;
	struct gguf_tensor *tensors; /* (n_tensors) in file order */
	/* open addressing, slot = index + 1, 0 empty; capacity mask + 1 */
	uint64_t *kv_hash, kv_mask;
	uint64_t *t_hash, t_mask;
	struct arena_chunk *arena;
};

/* ---- small helpers ---- */

static uint32_t ld_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static uint64_t ld_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static uint64_t hash_bytes(const void *p, uint64_t n)
{
	return hash_fnv1a64(HASH_FNV1A64_INIT, p, (size_t)n);
}

static bool str_eq_bytes(struct gguf_str a, const void *p, uint64_t n)
{
	return a.len == n && (n == 0 || memcmp(a.ptr, p, n) == 0);
}

bool gguf_str_eq(struct gguf_str a, const char *s)
{
	return str_eq_bytes(a, s, strlen(s));
}

/* A printable, bounded copy of file bytes for messages: keys and names come
 * from the file and may be huge or hold control bytes. */
#define SHOW_MAX 96
static const char *show(char out[SHOW_MAX], const char *p, uint64_t n)
{
	size_t o = 0;
	for (uint64_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (o + 8 >= SHOW_MAX) {
			memcpy(out + o, "...", 4);
			return out;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[o++] = (char)c;
		} else {
			snprintf(out + o, SHOW_MAX - o, "\\x%02x", c);
			o += 4;
		}
	}
	out[o] = '\0';
	return out;
}

static const char *const vtype_names[GGUF_TYPE_COUNT] = {
	[GGUF_TYPE_U8] = "u8",	   [GGUF_TYPE_I8] = "i8",     [GGUF_TYPE_U16] = "u16",
	[GGUF_TYPE_I16] = "i16",   [GGUF_TYPE_U32] = "u32",   [GGUF_TYPE_I32] = "i32",
	[GGUF_TYPE_F32] = "f32",   [GGUF_TYPE_BOOL] = "bool", [GGUF_TYPE_STRING] = "string",
	[GGUF_TYPE_ARRAY] = "array", [GGUF_TYPE_U64] = "u64", [GGUF_TYPE_I64] = "i64",
	[GGUF_TYPE_F64] = "f64",
};

const char *gguf_vtype_name(enum gguf_vtype t)
{
	return (unsigned)t < GGUF_TYPE_COUNT ? vtype_names[t] : "unknown";
}

uint64_t gguf_vtype_size(uint32_t t)
{
	switch (t) {
	case GGUF_TYPE_U8:
	case GGUF_TYPE_I8:
	case GGUF_TYPE_BOOL:
		return 1;
	case GGUF_TYPE_U16:
	case GGUF_TYPE_I16:
		return 2;
	case GGUF_TYPE_U32:
	case GGUF_TYPE_I32:
	case GGUF_TYPE_F32:
		return 4;
	case GGUF_TYPE_U64:
	case GGUF_TYPE_I64:
	case GGUF_TYPE_F64:
		return 8;
	default:
		return 0;
	}
}

static bool vtype_is_int(uint32_t t)
{
	switch (t) {
	case GGUF_TYPE_U8:
	case GGUF_TYPE_I8:
	case GGUF_TYPE_U16:
	case GGUF_TYPE_I16:
	case GGUF_TYPE_U32:
	case GGUF_TYPE_I32:
	case GGUF_TYPE_U64:
	case GGUF_TYPE_I64:
		return true;
	default:
		return false;
	}
}

static bool vtype_is_signed(uint32_t t)
{
	return t == GGUF_TYPE_I8 || t == GGUF_TYPE_I16 || t == GGUF_TYPE_I32 ||
	       t == GGUF_TYPE_I64;
}

/* Decode one fixed-size scalar at p into the kv's value union. */
static void decode_scalar(uint32_t t, const uint8_t *p, struct gguf_kv *kv)
{
	switch (t) {
	case GGUF_TYPE_U8:
	case GGUF_TYPE_BOOL:
		kv->val.u64 = p[0];
		break;
	case GGUF_TYPE_I8:
		kv->val.i64 = (int8_t)p[0];
		break;
	case GGUF_TYPE_U16: {
		uint16_t v;
		memcpy(&v, p, 2);
		kv->val.u64 = v;
		break;
	}
	case GGUF_TYPE_I16: {
		int16_t v;
		memcpy(&v, p, 2);
		kv->val.i64 = v;
		break;
	}
	case GGUF_TYPE_U32:
		kv->val.u64 = ld_u32(p);
		break;
	case GGUF_TYPE_I32: {
		int32_t v;
		memcpy(&v, p, 4);
		kv->val.i64 = v;
		break;
	}
	case GGUF_TYPE_F32: {
		float v;
		memcpy(&v, p, 4);
		kv->val.f64 = v;
		break;
	}
	case GGUF_TYPE_U64:
		kv->val.u64 = ld_u64(p);
		break;
	case GGUF_TYPE_I64: {
		int64_t v;
		memcpy(&v, p, 8);
		kv->val.i64 = v;
		break;
	}
	case GGUF_TYPE_F64: {
		double v;
		memcpy(&v, p, 8);
		kv->val.f64 = v;
		break;
	}
	default:
		assert(!"not a fixed-size scalar");
	}
}

static void *arena_alloc(struct gguf *g, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	struct arena_chunk *c = g->arena;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		c = malloc(sizeof *c + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->used = 0;
		c->next = g->arena;
		g->arena = c;
	}
	void *p = c->mem + c->used;
	c->used += n;
	return p;
}

/* ---- parsing ---- */

struct parser {
	struct gguf *g;
	struct st_err *err;
	const uint8_t *base;
	uint64_t size;
	uint64_t pos; /* always <= size */
};

/* "<name>: <what>" into err; returns code. */
static int perr(struct parser *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(struct parser *p, int code, const char *fmt, ...)
{
	char msg[ST_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return st_errf(p->err, code, "%s: %s", p->g->name, msg);
}

static uint64_t remain(const struct parser *p)
{
	return p->size - p->pos;
}

/* Every short read ends here: the message always says "end of file" so
 * callers and tests can tell truncation from other damage. */
static int truncated(struct parser *p, const char *field, uint64_t need)
{
	return perr(p, -EBADMSG,
		    "%s: truncated at end of file (needs %" PRIu64 " bytes at offset %" PRIu64
		    ", file size %" PRIu64 ")",
		    field, need, p->pos, p->size);
}

/* Read n fixed bytes for `field`; NULL (with err set, *rc = code) if they are not there. */
static const uint8_t *take(struct parser *p, uint64_t n, const char *field, int *rc)
{
	if (n > remain(p)) {
		*rc = truncated(p, field, n);
		return NULL;
	}
	const uint8_t *q = p->base + p->pos;
	p->pos += n;
	return q;
}

/* A u64-length-prefixed string; *s points into the image. */
static int take_str(struct parser *p, const char *field, struct gguf_str *s)
{
	int rc = 0;
	const uint8_t *q = take(p, 8, field, &rc);
	if (!q)
		return rc;
	uint64_t len = ld_u64(q);
	if (len > remain(p))
		return perr(p, -EBADMSG,
			    "%s: string length %" PRIu64 " at offset %" PRIu64
			    " extends past end of file (%" PRIu64 " bytes remain)",
			    field, len, p->pos - 8, remain(p));
	s->ptr = (const char *)p->base + p->pos;
	s->len = len;
	p->pos += len;
	return 0;
}

/* Validate the elements of an array (the reader is at the first one) and
 * build its index. `what` names the key for messages. */
static int parse_array(struct parser *p, const char *what, uint32_t depth, uint32_t elem,
		       uint64_t n, const void **index)
{
	int rc = 0;
	*index = NULL;
	if (depth > GGUF_MAX_ARRAY_DEPTH)
		return perr(p, -EBADMSG, "%s: arrays nested deeper than %d", what,
			    GGUF_MAX_ARRAY_DEPTH);
	if (elem >= GGUF_TYPE_COUNT)
		return perr(p, -EBADMSG, "%s: array of unknown value type %" PRIu32, what, elem);

	uint64_t esize = gguf_vtype_size(elem);
	if (esize) {
		if (n > remain(p) / esize)
			return perr(p, -EBADMSG,
				    "%s: array of %" PRIu64 " %s at offset %" PRIu64
				    " extends past end of file (%" PRIu64 " bytes remain)",
				    what, n, vtype_names[elem], p->pos, remain(p));
		if (elem == GGUF_TYPE_BOOL) {
			for (uint64_t i = 0; i < n; i++) {
				uint8_t b = p->base[p->pos + i];
				if (b > 1)
					return perr(p, -EBADMSG,
						    "%s: bool element %" PRIu64
						    " is %u, not 0 or 1",
						    what, i, b);
			}
		}
		p->pos += n * esize;
		return 0;
	}

	const uint64_t start = p->pos;
	if (elem == GGUF_TYPE_STRING) {
		/* each string needs at least its 8-byte length */
		if (n > remain(p) / 8)
			return perr(p, -EBADMSG,
				    "%s: array of %" PRIu64 " strings at offset %" PRIu64
				    " extends past end of file (%" PRIu64 " bytes remain)",
				    what, n, p->pos, remain(p));
		uint64_t *off = NULL;
		if (n) {
			off = arena_alloc(p->g, n * sizeof *off);
			if (!off)
				return perr(p, -ENOMEM, "%s: out of memory indexing %" PRIu64 " strings",
					    what, n);
		}
		/* take_str inlined: a vocabulary has 256,000 of these, so the
		 * field name is only formatted when there is an error */
		for (uint64_t i = 0; i < n; i++) {
			off[i] = p->pos - start;
			if (remain(p) < 8 || ld_u64(p->base + p->pos) > remain(p) - 8) {
				char field[SHOW_MAX + 64];
				snprintf(field, sizeof field, "%s: string %" PRIu64, what, i);
				struct gguf_str s;
				rc = take_str(p, field, &s);
				assert(rc < 0);
				return rc;
			}
			p->pos += 8 + ld_u64(p->base + p->pos);
		}
		*index = off;
		return 0;
	}

	/* arrays of arrays: each element is (type u32, count u64, elements) */
	if (n > remain(p) / SUBARRAY_HEADER_BYTES)
		return perr(p, -EBADMSG,
			    "%s: array of %" PRIu64 " arrays at offset %" PRIu64
			    " extends past end of file (%" PRIu64 " bytes remain)",
			    what, n, p->pos, remain(p));
	struct sub_entry *sub = NULL;
	if (n) {
		sub = arena_alloc(p->g, n * sizeof *sub);
		if (!sub)
			return perr(p, -ENOMEM, "%s: out of memory indexing %" PRIu64 " arrays", what, n);
	}
	for (uint64_t i = 0; i < n; i++) {
		sub[i].off = p->pos - start;
		const uint8_t *q = take(p, SUBARRAY_HEADER_BYTES, what, &rc);
		if (!q)
			return rc;
		if ((rc = parse_array(p, what, depth + 1, ld_u32(q), ld_u64(q + 4), &sub[i].index)) < 0)
			return rc;
	}
	*index = sub;
	return 0;
}

/* Insert entry i (named by bytes s) into a hash table; returns the index of
 * an earlier entry with the same name, or UINT64_MAX. */
static uint64_t hash_insert(uint64_t *table, uint64_t mask, struct gguf_str s, uint64_t i,
			    struct gguf_str (*name_of)(const struct gguf *, uint64_t),
			    const struct gguf *g)
{
	uint64_t h = hash_bytes(s.ptr, s.len) & mask;
	while (table[h]) {
		uint64_t j = table[h] - 1;
		struct gguf_str o = name_of(g, j);
		if (str_eq_bytes(o, s.ptr, s.len))
			return j;
		h = (h + 1) & mask;
	}
	table[h] = i + 1;
	return UINT64_MAX;
}

static struct gguf_str kv_name(const struct gguf *g, uint64_t i)
{
	return g->kv[i].key;
}

static struct gguf_str tensor_name(const struct gguf *g, uint64_t i)
{
	return g->tensors[i].name;
}

static int hash_new(struct parser *p, uint64_t n, uint64_t **table, uint64_t *mask)
{
	uint64_t cap = 8;
	while (cap < 2 * n)
		cap *= 2;
	*table = calloc(cap, sizeof **table);
	if (!*table)
		return perr(p, -ENOMEM, "out of memory for an index of %" PRIu64 " entries", n);
	*mask = cap - 1;
	return 0;
}

static int parse_kv(struct parser *p, uint64_t i)
{
	struct gguf *g = p->g;
	struct gguf_kv *kv = &g->kv[i];
	char field[SHOW_MAX + 16], name[SHOW_MAX];
	int rc = 0;

	snprintf(field, sizeof field, "key %" PRIu64, i);
	if ((rc = take_str(p, field, &kv->key)) < 0)
		return rc;
	if (kv->key.len == 0)
		return perr(p, -EBADMSG, "key %" PRIu64 ": empty key", i);
	snprintf(field, sizeof field, "key '%s'", show(name, kv->key.ptr, kv->key.len));
	uint64_t dup = hash_insert(g->kv_hash, g->kv_mask, kv->key, i, kv_name, g);
	if (dup != UINT64_MAX)
		return perr(p, -EBADMSG, "%s: duplicate key (keys %" PRIu64 " and %" PRIu64 ")", field,
			    dup, i);

	const uint8_t *q = take(p, 4, field, &rc);
	if (!q)
		return rc;
	uint32_t type = ld_u32(q);
	if (type >= GGUF_TYPE_COUNT)
		return perr(p, -EBADMSG, "%s: unknown value type %" PRIu32, field, type);
	kv->type = (enum gguf_vtype)type;

	if (type == GGUF_TYPE_ARRAY) {
		if (!(q = take(p, SUBARRAY_HEADER_BYTES, field, &rc)))
			return rc;
		uint32_t elem = ld_u32(q);
		kv->arr_len = ld_u64(q + 4);
		kv->raw = p->base + p->pos;
		if ((rc = parse_array(p, field, 1, elem, kv->arr_len, &kv->index)) < 0)
			return rc;
		kv->arr_type = (enum gguf_vtype)elem;
		kv->raw_len = (uint64_t)(p->base + p->pos - kv->raw);
		return 0;
	}

	kv->raw = p->base + p->pos;
	if (type == GGUF_TYPE_STRING) {
		if ((rc = take_str(p, field, &kv->val.str)) < 0)
			return rc;
	} else {
		if (!(q = take(p, gguf_vtype_size(type), field, &rc)))
			return rc;
		if (type == GGUF_TYPE_BOOL && q[0] > 1)
			return perr(p, -EBADMSG, "%s: bool value is %u, not 0 or 1", field, q[0]);
		decode_scalar(type, q, kv);
	}
	kv->raw_len = (uint64_t)(p->base + p->pos - kv->raw);
	return 0;
}

/* The tensor info at the reader; offset is still relative to the data section. */
static int parse_tensor_info(struct parser *p, uint64_t i)
{
	struct gguf *g = p->g;
	struct gguf_tensor *t = &g->tensors[i];
	char field[SHOW_MAX + 16], name[SHOW_MAX];
	int rc = 0;

	snprintf(field, sizeof field, "tensor %" PRIu64, i);
	if ((rc = take_str(p, field, &t->name)) < 0)
		return rc;
	snprintf(field, sizeof field, "tensor '%s'", show(name, t->name.ptr, t->name.len));
	uint64_t dup = hash_insert(g->t_hash, g->t_mask, t->name, i, tensor_name, g);
	if (dup != UINT64_MAX)
		return perr(p, -EBADMSG, "%s: duplicate tensor name (tensors %" PRIu64 " and %" PRIu64 ")",
			    field, dup, i);

	const uint8_t *q = take(p, 4, field, &rc);
	if (!q)
		return rc;
	t->n_dims = ld_u32(q);
	if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
		return perr(p, -EBADMSG, "%s: n_dims %" PRIu32 " (must be 1 to %d)", field, t->n_dims,
			    GGUF_MAX_DIMS);
	if (!(q = take(p, 8 * (uint64_t)t->n_dims, field, &rc)))
		return rc;
	t->n_elems = 1;
	for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
		t->ne[d] = d < t->n_dims ? ld_u64(q + 8 * d) : 1;
		if (t->ne[d] == 0)
			return perr(p, -EBADMSG, "%s: dimension %" PRIu32 " is zero", field, d);
		if (t->ne[d] > GGUF_MAX_ELEMS / t->n_elems) {
			char dims[128];
			size_t o = 0;
			for (uint32_t k = 0; k < t->n_dims; k++)
				o += (size_t)snprintf(dims + o, sizeof dims - o, "%s%" PRIu64,
						      k ? ", " : "", ld_u64(q + 8 * k));
			return perr(p, -EOVERFLOW,
				    "%s: dims [%s] overflow: more than 2^50 elements", field, dims);
		}
		t->n_elems *= t->ne[d];
	}

	if (!(q = take(p, 4, field, &rc)))
		return rc;
	t->type = ld_u32(q);
	const struct st_type_info *ti = st_type_info(t->type);
	if (!ti)
		return perr(p, -EBADMSG,
			    "%s: unknown tensor type %" PRIu32 " (not in ggml's type table: a type "
			    "newer than this strata, one ggml removed, or a corrupt file)",
			    field, t->type);
	if (ti->block_elems == 0 || ti->block_bytes == 0)
		return perr(p, -EBADMSG, "%s: type %s has no known size", field, ti->name);
	if (t->ne[0] % ti->block_elems != 0)
		return perr(p, -EBADMSG,
			    "%s: row of %" PRIu64 " elements is not a whole number of %s blocks (%" PRIu32
			    " elements each)",
			    field, t->ne[0], ti->name, ti->block_elems);
	/* n_elems <= 2^50 and block_bytes is small: no overflow */
	t->size = t->n_elems / ti->block_elems * ti->block_bytes;

	if (!(q = take(p, 8, field, &rc)))
		return rc;
	t->offset = ld_u64(q);
	return 0;
}

static int cmp_tensor_offset(const void *a, const void *b)
{
	const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a;
	const struct gguf_tensor *y = *(const struct gguf_tensor *const *)b;
	return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Place the tensors in the data section: aligned, inside the file, disjoint. */
static int place_tensors(struct parser *p)
{
	struct gguf *g = p->g;
	char name[SHOW_MAX], other[SHOW_MAX];

	for (uint64_t i = 0; i < g->n_tensors; i++) {
		struct gguf_tensor *t = &g->tensors[i];
		uint64_t rel = t->offset;
		show(name, t->name.ptr, t->name.len);
		if (rel % g->alignment != 0)
			return perr(p, -EBADMSG,
				    "tensor '%s': offset %" PRIu64
				    " is not a multiple of the alignment %" PRIu32,
				    name, rel, g->alignment);
		if (g->data_offset > p->size || rel > p->size - g->data_offset ||
		    t->size > p->size - g->data_offset - rel) {
			if (rel <= UINT64_MAX - g->data_offset)
				return perr(p, -EBADMSG,
					    "tensor '%s': data [offset %" PRIu64 ", size %" PRIu64
					    "] extends past end of file (size %" PRIu64 ")",
					    name, g->data_offset + rel, t->size, p->size);
			return perr(p, -EBADMSG,
				    "tensor '%s': data [offset %" PRIu64 " + %" PRIu64 ", size %" PRIu64
				    "] extends past end of file (size %" PRIu64 ")",
				    name, g->data_offset, rel, t->size, p->size);
		}
		t->offset = g->data_offset + rel;
		t->data = p->base + t->offset;
	}
	if (g->n_tensors < 2)
		return 0;

	struct gguf_tensor **order = malloc(g->n_tensors * sizeof *order);
	if (!order)
		return perr(p, -ENOMEM, "out of memory sorting %" PRIu64 " tensors", g->n_tensors);
	for (uint64_t i = 0; i < g->n_tensors; i++)
		order[i] = &g->tensors[i];
	qsort(order, g->n_tensors, sizeof *order, cmp_tensor_offset);
	int rc = 0;
	for (uint64_t i = 1; i < g->n_tensors; i++) {
		const struct gguf_tensor *a = order[i - 1], *b = order[i];
		if (a->offset + a->size > b->offset) { /* both end inside the file: no overflow */
			rc = perr(p, -EBADMSG,
				  "tensor '%s': data [offset %" PRIu64 ", size %" PRIu64
				  "] overlaps tensor '%s' [offset %" PRIu64 ", size %" PRIu64 "]",
				  show(name, b->name.ptr, b->name.len), b->offset, b->size,
				  show(other, a->name.ptr, a->name.len), a->offset, a->size);
			break;
		}
	}
	free(order);
	return rc;
}

static int parse_header(struct parser *p, uint64_t *n_tensors, uint64_t *n_kv)
{
	int rc = 0;
	const uint8_t *q = take(p, 4, "header: magic", &rc);
	if (!q)
		return rc;
	uint32_t magic = ld_u32(q);
	if (magic != GGUF_MAGIC) {
		char shown[SHOW_MAX];
		return perr(p, -EBADMSG, "header: bad magic '%s' (not a GGUF file)",
			    show(shown, (const char *)q, 4));
	}
	if (!(q = take(p, 4, "header: version", &rc)))
		return rc;
	uint32_t version = ld_u32(q);
	if (version != 2 && version != 3) {
		if (version != 0 && (version & 0xffff) == 0)
			return perr(p, -ENOTSUP,
				    "header: version %" PRIu32
				    " is not supported (a big-endian file? only little-endian v2 and v3 are read)",
				    version);
		if (version == 1)
			return perr(p, -ENOTSUP,
				    "header: version 1 is not supported (GGUF v1 is obsolete: "
				    "convert the model again; v2 and v3 are read)");
		return perr(p, -ENOTSUP, "header: version %" PRIu32 " is not supported (only v2 and v3)",
			    version);
	}
	p->g->version = version;
	if (!(q = take(p, 16, "header: counts", &rc)))
		return rc;
	*n_tensors = ld_u64(q);
	*n_kv = ld_u64(q + 8);

	/* Reject counts the file cannot hold before allocating for them. */
	uint64_t room = remain(p);
	if (*n_kv > room / MIN_KV_BYTES)
		return perr(p, -EBADMSG,
			    "key count %" PRIu64 " cannot fit in a file of %" PRIu64
			    " bytes: extends past end of file",
			    *n_kv, p->size);
	if (*n_tensors > room / MIN_TENSOR_BYTES)
		return perr(p, -EBADMSG,
			    "tensor count %" PRIu64 " cannot fit in a file of %" PRIu64
			    " bytes: extends past end of file",
			    *n_tensors, p->size);
	if (*n_kv * MIN_KV_BYTES + *n_tensors * MIN_TENSOR_BYTES > room)
		return perr(p, -EBADMSG,
			    "key count %" PRIu64 " and tensor count %" PRIu64
			    " cannot fit in a file of %" PRIu64 " bytes: extends past end of file",
			    *n_kv, *n_tensors, p->size);
	return 0;
}

static int find_alignment(struct parser *p)
{
	struct gguf *g = p->g;
	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	const struct gguf_kv *kv = gguf_find_kv(g, "general.alignment");
	if (!kv)
		return 0;
	if (kv->type != GGUF_TYPE_U32)
		return perr(p, -EBADMSG, "key 'general.alignment': type %s, must be u32",
			    kv->type == GGUF_TYPE_ARRAY ? "array" : vtype_names[kv->type]);
	uint64_t a = kv->val.u64;
	if (a == 0 || (a & (a - 1)) != 0)
		return perr(p, -EBADMSG, "key 'general.alignment': %" PRIu64 " is not a power of two", a);
	g->alignment = (uint32_t)a;
	return 0;
}

int gguf_parse(const void *data, size_t size, const char *name, struct gguf **out,
	       struct st_err *err)
{
	int rc;
	*out = NULL;
	if (err)
		err->msg[0] = '\0';

	struct gguf *g = calloc(1, sizeof *g);
	if (!g)
		return st_errf(err, -ENOMEM, "%s: out of memory", name);
	g->name = strdup(name ? name : "(gguf)");
	if (!g->name) {
		free(g);
		return st_errf(err, -ENOMEM, "%s: out of memory", name);
	}
	g->base = data;
	g->size = size;

	struct parser p = { .g = g, .err = err, .base = data, .size = size, .pos = 0 };
	uint64_t n_tensors = 0, n_kv = 0;
	if ((rc = parse_header(&p, &n_tensors, &n_kv)) < 0)
		goto fail;

	/* counts are bounded by the file size above, so these cannot overflow */
	g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
	g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
	if (!g->kv || !g->tensors) {
		rc = perr(&p, -ENOMEM, "out of memory for %" PRIu64 " keys and %" PRIu64 " tensors",
			  n_kv, n_tensors);
		goto fail;
	}
	if ((rc = hash_new(&p, n_kv, &g->kv_hash, &g->kv_mask)) < 0)
		goto fail;
	for (uint64_t i = 0; i < n_kv; i++) {
		if ((rc = parse_kv(&p, i)) < 0)
			goto fail;
		g->n_kv = i + 1; /* the lookup table sees only parsed keys */
	}
	if ((rc = find_alignment(&p)) < 0)
		goto fail;

	if (n_tensors > remain(&p) / MIN_TENSOR_BYTES) {
		rc = perr(&p, -EBADMSG,
			  "tensor count %" PRIu64 " cannot fit in the %" PRIu64
			  " bytes after the keys: extends past end of file",
			  n_tensors, remain(&p));
		goto fail;
	}
	if ((rc = hash_new(&p, n_tensors, &g->t_hash, &g->t_mask)) < 0)
		goto fail;
	for (uint64_t i = 0; i < n_tensors; i++) {
		if ((rc = parse_tensor_info(&p, i)) < 0)
			goto fail;
		g->n_tensors = i + 1;
	}

	/* The data section starts at the next multiple of the alignment. With no
	 * tensors the padding may be absent, so data_offset may exceed the size. */
	g->data_offset = (p.pos + g->alignment - 1) / g->alignment * g->alignment;
	if ((rc = place_tensors(&p)) < 0)
		goto fail;

	*out = g;
	return 0;

fail:
	gguf_close(g);
	return rc;
}

int gguf_open_fd(int fd, const char *name, struct gguf **out, struct st_err *err)
{
	static const uint8_t empty[1];
	struct stat st;
	void *map = NULL;
	int rc;

	*out = NULL;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		return st_errf(err, rc, "%s: fstat: %s", name, strerror(-rc));
	}
	if (S_ISDIR(st.st_mode))
		return st_errf(err, -EISDIR, "%s: is a directory, not a GGUF file", name);
	if (!S_ISREG(st.st_mode))
		return st_errf(err, -EINVAL, "%s: not a regular file", name);
	if (st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			rc = -errno;
			return st_errf(err, rc, "%s: mmap of %lld bytes: %s", name,
				       (long long)st.st_size, strerror(-rc));
		}
	}
	/* an empty file fails in gguf_parse with the usual truncation message */
	rc = gguf_parse(map ? map : empty, map ? (size_t)st.st_size : 0, name, out, err);
	if (rc < 0) {
		if (map)
			munmap(map, (size_t)st.st_size);
		return rc;
	}
	(*out)->mapped = map != NULL;
	return 0;
}

int gguf_open(const char *path, struct gguf **out, struct st_err *err)
{
	*out = NULL;
	/* O_NONBLOCK: a FIFO given as the file must not block the open; gguf_open_fd then
	 * refuses it for not being a regular file (the mapping does not care for the flag) */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int rc = -errno;
		return st_errf(err, rc, "%s: cannot open: %s", path, strerror(-rc));
	}
	int rc = gguf_open_fd(fd, path, out, err);
	close(fd);
	return rc;
}

void gguf_close(struct gguf *g)
{
	if (!g)
		return;
	if (g->mapped)
		munmap((void *)g->base, g->size);
	for (struct arena_chunk *c = g->arena, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	free(g->kv_hash);
	free(g->t_hash);
	free(g->kv);
	free(g->tensors);
	free(g->name);
	free(g);
}

/* ---- accessors ---- */

uint32_t gguf_version(const struct gguf *g)
{
	return g->version;
}

const char *gguf_path(const struct gguf *g)
{
	return g->name;
}

uint64_t gguf_file_size(const struct gguf *g)
{
	return g->size;
}

uint32_t gguf_alignment(const struct gguf *g)
{
	return g->alignment;
}

uint64_t gguf_data_offset(const struct gguf *g)
{
	return g->data_offset;
}

const void *gguf_base(const struct gguf *g)
{
	return g->base;
}

uint64_t gguf_n_kv(const struct gguf *g)
{
	return g->n_kv;
}

const struct gguf_kv *gguf_kv_at(const struct gguf *g, uint64_t i)
{
	return i < g->n_kv ? &g->kv[i] : NULL;
}

const struct gguf_kv *gguf_find_kv(const struct gguf *g, const char *key)
{
	if (!g->kv_hash)
		return NULL;
	uint64_t n = strlen(key);
	for (uint64_t h = hash_bytes(key, n) & g->kv_mask; g->kv_hash[h]; h = (h + 1) & g->kv_mask) {
		uint64_t i = g->kv_hash[h] - 1;
		if (i < g->n_kv && str_eq_bytes(g->kv[i].key, key, n))
			return &g->kv[i];
	}
	return NULL;
}

uint64_t gguf_n_tensors(const struct gguf *g)
{
	return g->n_tensors;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf *g, uint64_t i)
{
	return i < g->n_tensors ? &g->tensors[i] : NULL;
}

size_t gguf_type_mix(const struct gguf *g, struct gguf_type_total *out, size_t max)
{
	uint64_t bytes[ST_TYPE_COUNT] = { 0 };
	uint32_t count[ST_TYPE_COUNT] = { 0 };
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		if (t->type < ST_TYPE_COUNT) { /* the parser admits only known types */
			bytes[t->type] += t->size;
			count[t->type]++;
		}
	}
	size_t n = 0;
	while (n < max) {
		int best = -1;
		for (int t = 0; t < ST_TYPE_COUNT; t++)
			if (count[t] && (best < 0 || bytes[t] > bytes[best]))
				best = t;
		if (best < 0)
			break;
		out[n++] = (struct gguf_type_total){ (uint32_t)best, count[best], bytes[best] };
		count[best] = 0;
	}
	return n;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name)
{
	if (!g->t_hash)
		return NULL;
	uint64_t n = strlen(name);
	for (uint64_t h = hash_bytes(name, n) & g->t_mask; g->t_hash[h]; h = (h + 1) & g->t_mask) {
		uint64_t i = g->t_hash[h] - 1;
		if (i < g->n_tensors && str_eq_bytes(g->tensors[i].name, name, n))
			return &g->tensors[i];
	}
	return NULL;
}

/* ---- typed getters ---- */

/* "array of u32" or "u32" */
static const char *kv_type_desc(const struct gguf_kv *kv, char buf[32])
{
	if (kv->type != GGUF_TYPE_ARRAY)
		return gguf_vtype_name(kv->type);
	snprintf(buf, 32, "array of %s", gguf_vtype_name(kv->arr_type));
	return buf;
}

static const struct gguf_kv *get_kv(const struct gguf *g, const char *key, int *rc,
				    struct st_err *err)
{
	const struct gguf_kv *kv = gguf_find_kv(g, key);
	if (!kv)
		*rc = st_errf(err, -ENOENT, "%s: key '%s' not found", g->name, key);
	return kv;
}

static int wrong_type(const struct gguf *g, const char *key, const struct gguf_kv *kv,
		      const char *wanted, struct st_err *err)
{
	char buf[32];
	return st_errf(err, -EINVAL, "%s: key '%s' has type %s, wanted %s", g->name, key,
		       kv_type_desc(kv, buf), wanted);
}

/* An integer kv as a signed/unsigned pair; false if not an integer type. */
static int get_int(const struct gguf *g, const char *key, const char *wanted, bool *neg,
		   uint64_t *mag, const struct gguf_kv **kvp, struct st_err *err)
{
	int rc = 0;
	const struct gguf_kv *kv = get_kv(g, key, &rc, err);
	if (!kv)
		return rc;
	if (!vtype_is_int(kv->type))
		return wrong_type(g, key, kv, wanted, err);
	*kvp = kv;
	if (vtype_is_signed(kv->type) && kv->val.i64 < 0) {
		*neg = true;
		*mag = (uint64_t)0 - (uint64_t)kv->val.i64;
	} else {
		*neg = false;
		*mag = kv->val.u64;
	}
	return 0;
}

static int does_not_fit(const struct gguf *g, const char *key, const struct gguf_kv *kv, bool neg,
			uint64_t mag, const char *wanted, struct st_err *err)
{
	return st_errf(err, -EINVAL, "%s: key '%s': value %s%" PRIu64 " (%s) does not fit %s", g->name,
		       key, neg ? "-" : "", mag, gguf_vtype_name(kv->type), wanted);
}

int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out, struct st_err *err)
{
	const struct gguf_kv *kv = NULL;
	bool neg;
	uint64_t mag;
	int rc = get_int(g, key, "u32", &neg, &mag, &kv, err);
	if (rc < 0)
		return rc;
	if (neg || mag > UINT32_MAX)
		return does_not_fit(g, key, kv, neg, mag, "u32", err);
	*out = (uint32_t)mag;
	return 0;
}

int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out, struct st_err *err)
{
	const struct gguf_kv *kv = NULL;
	bool neg;
	uint64_t mag;
	int rc = get_int(g, key, "u64", &neg, &mag, &kv, err);
	if (rc < 0)
		return rc;
	if (neg)
		return does_not_fit(g, key, kv, neg, mag, "u64", err);
	*out = mag;
	return 0;
}

int gguf_get_i32(const struct gguf *g, const char *key, int32_t *out, struct st_err *err)
{
	const struct gguf_kv *kv = NULL;
	bool neg;
	uint64_t mag;
	int rc = get_int(g, key, "i32", &neg, &mag, &kv, err);
	if (rc < 0)
		return rc;
	if (neg ? mag > (uint64_t)INT32_MAX + 1 : mag > INT32_MAX)
		return does_not_fit(g, key, kv, neg, mag, "i32", err);
	*out = neg ? (int32_t)(-(int64_t)(mag - 1) - 1) : (int32_t)mag;
	return 0;
}

int gguf_get_f32(const struct gguf *g, const char *key, float *out, struct st_err *err)
{
	int rc = 0;
	const struct gguf_kv *kv = get_kv(g, key, &rc, err);
	if (!kv)
		return rc;
	if (kv->type != GGUF_TYPE_F32 && kv->type != GGUF_TYPE_F64)
		return wrong_type(g, key, kv, "f32", err);
	double v = kv->val.f64;
	if (isfinite(v) && fabs(v) > FLT_MAX)
		return st_errf(err, -EINVAL, "%s: key '%s': value %g (f64) does not fit f32", g->name,
			       key, v);
	*out = (float)v;
	return 0;
}

int gguf_get_bool(const struct gguf *g, const char *key, bool *out, struct st_err *err)
{
	int rc = 0;
	const struct gguf_kv *kv = get_kv(g, key, &rc, err);
	if (!kv)
		return rc;
	if (kv->type != GGUF_TYPE_BOOL)
		return wrong_type(g, key, kv, "bool", err);
	*out = kv->val.u64 != 0;
	return 0;
}

int gguf_get_str(const struct gguf *g, const char *key, struct gguf_str *out, struct st_err *err)
{
	int rc = 0;
	const struct gguf_kv *kv = get_kv(g, key, &rc, err);
	if (!kv)
		return rc;
	if (kv->type != GGUF_TYPE_STRING)
		return wrong_type(g, key, kv, "string", err);
	*out = kv->val.str;
	return 0;
}

int gguf_get_arr(const struct gguf *g, const char *key, enum gguf_vtype elem,
		 const struct gguf_kv **out, struct st_err *err)
{
	int rc = 0;
	const struct gguf_kv *kv = get_kv(g, key, &rc, err);
	if (!kv)
		return rc;
	if (kv->type != GGUF_TYPE_ARRAY || (elem != GGUF_TYPE_COUNT && kv->arr_type != elem)) {
		char wanted[32];
		if (elem == GGUF_TYPE_COUNT)
			snprintf(wanted, sizeof wanted, "array");
		else
			snprintf(wanted, sizeof wanted, "array of %s", gguf_vtype_name(elem));
		return wrong_type(g, key, kv, wanted, err);
	}
	*out = kv;
	return 0;
}

/* ---- array elements ---- */

/* Saturating float -> int64: a cast of an out-of-range double is UB. */
static int64_t f64_to_i64(double d)
{
	if (isnan(d))
		return 0;
	if (d >= 9223372036854775808.0)
		return INT64_MAX;
	if (d < -9223372036854775808.0)
		return INT64_MIN;
	return (int64_t)d;
}

int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t i)
{
	assert(kv->type == GGUF_TYPE_ARRAY && i < kv->arr_len);
	uint64_t esize = gguf_vtype_size(kv->arr_type);
	assert(esize != 0);
	struct gguf_kv v = { 0 };
	decode_scalar(kv->arr_type, kv->raw + i * esize, &v);
	switch (kv->arr_type) {
	case GGUF_TYPE_F32:
	case GGUF_TYPE_F64:
		return f64_to_i64(v.val.f64);
	case GGUF_TYPE_U64:
		return v.val.u64 > INT64_MAX ? INT64_MAX : (int64_t)v.val.u64;
	default:
		return v.val.i64; /* smaller unsigned values were zero-extended */
	}
}

double gguf_arr_f64(const struct gguf_kv *kv, uint64_t i)
{
	assert(kv->type == GGUF_TYPE_ARRAY && i < kv->arr_len);
	uint64_t esize = gguf_vtype_size(kv->arr_type);
	assert(esize != 0);
	struct gguf_kv v = { 0 };
	decode_scalar(kv->arr_type, kv->raw + i * esize, &v);
	switch (kv->arr_type) {
	case GGUF_TYPE_F32:
	case GGUF_TYPE_F64:
		return v.val.f64;
	case GGUF_TYPE_I8:
	case GGUF_TYPE_I16:
	case GGUF_TYPE_I32:
	case GGUF_TYPE_I64:
		return (double)v.val.i64;
	default:
		return (double)v.val.u64;
	}
}

struct gguf_str gguf_arr_str(const struct gguf_kv *kv, uint64_t i)
{
	assert(kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING && i < kv->arr_len);
	const uint64_t *off = kv->index;
	const uint8_t *p = kv->raw + off[i];
	struct gguf_str s = { (const char *)p + 8, ld_u64(p) };
	return s;
}

struct gguf_kv gguf_arr_sub(const struct gguf_kv *kv, uint64_t i)
{
	assert(kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_ARRAY && i < kv->arr_len);
	const struct sub_entry *sub = kv->index;
	const uint8_t *p = kv->raw + sub[i].off;
	uint64_t end = i + 1 < kv->arr_len ? sub[i + 1].off : kv->raw_len;
	struct gguf_kv s = { 0 };
	s.key.ptr = "";
	s.type = GGUF_TYPE_ARRAY;
	s.arr_type = (enum gguf_vtype)ld_u32(p);
	s.arr_len = ld_u64(p + 4);
	s.raw = p + SUBARRAY_HEADER_BYTES;
	s.raw_len = end - sub[i].off - SUBARRAY_HEADER_BYTES;
	s.index = sub[i].index;
	return s;
}
