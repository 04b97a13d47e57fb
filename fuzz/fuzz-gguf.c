/* fuzz-gguf.c: fuzz target for the GGUF reader and writer. Parses the input;
 * when it is accepted, walks everything the reader exposes (every kv, array
 * element and tensor byte), then copies it through the writer into a memfd
 * and checks that the copy parses back to the same keys, values and tensors.
 * Any mismatch aborts, which libFuzzer reports as a crash. */
#include "config.h" /* _GNU_SOURCE: memfd_create */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "fuzz/fuzz.h"

static volatile uint64_t sink; /* keeps the reads */

static bool has_nul(struct gguf_str s)
{
	return s.len && memchr(s.ptr, '\0', s.len) != NULL;
}

static uint64_t walk_arr(const struct gguf_kv *kv, int depth)
{
	uint64_t h = 0;
	CHECK(depth <= GGUF_MAX_ARRAY_DEPTH);
	CHECK(kv->type == GGUF_TYPE_ARRAY && kv->arr_type < GGUF_TYPE_COUNT);
	const uint8_t *end = kv->raw + kv->raw_len;
	for (uint64_t i = 0; i < kv->arr_len; i++) {
		switch (kv->arr_type) {
		case GGUF_TYPE_STRING: {
			struct gguf_str s = gguf_arr_str(kv, i);
			CHECK((const uint8_t *)s.ptr >= kv->raw && s.len <= (uint64_t)(end - (const uint8_t *)s.ptr));
			if (s.len)
				h += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
			break;
		}
		case GGUF_TYPE_ARRAY: {
			struct gguf_kv sub = gguf_arr_sub(kv, i);
			CHECK(sub.raw >= kv->raw && sub.raw_len <= (uint64_t)(end - sub.raw));
			h += walk_arr(&sub, depth + 1);
			break;
		}
		default:
			h += (uint64_t)gguf_arr_i64(kv, i);
			h += gguf_arr_f64(kv, i) > 0;
		}
	}
	return h;
}

static void walk(const struct gguf *g, const uint8_t *data, size_t size)
{
	struct st_err err;
	uint64_t h = 0;
	uint32_t u32;
	uint64_t u64;
	int32_t i32;
	float f;
	bool b;
	struct gguf_str s;
	const struct gguf_kv *arr;

	CHECK(gguf_base(g) == data && gguf_file_size(g) == size);
	CHECK(gguf_version(g) == 2 || gguf_version(g) == 3);
	uint32_t a = gguf_alignment(g);
	CHECK(a && (a & (a - 1)) == 0 && gguf_data_offset(g) % a == 0);
	for (uint64_t i = 0; i < gguf_n_kv(g); i++) {
		const struct gguf_kv *kv = gguf_kv_at(g, i);
		CHECK(kv && kv->key.len > 0 && kv->type < GGUF_TYPE_COUNT);
		CHECK(kv->raw >= data && kv->raw_len <= (uint64_t)(data + size - kv->raw));
		if (kv->raw_len)
			h += kv->raw[0] + kv->raw[kv->raw_len - 1];
		if (kv->type == GGUF_TYPE_ARRAY)
			h += walk_arr(kv, 1);
		if (has_nul(kv->key) || kv->key.len > 4096)
			continue;
		char key[4097];
		memcpy(key, kv->key.ptr, kv->key.len);
		key[kv->key.len] = '\0';
		CHECK(gguf_find_kv(g, key) == kv);
		/* every getter on every key: either a value or a message */
		h += gguf_get_u32(g, key, &u32, &err) == 0 ? u32 : strlen(err.msg);
		h += gguf_get_u64(g, key, &u64, &err) == 0 ? u64 : strlen(err.msg);
		h += gguf_get_i32(g, key, &i32, &err) == 0 ? (uint64_t)i32 : strlen(err.msg);
		h += gguf_get_f32(g, key, &f, &err) == 0 ? (f > 0) : strlen(err.msg);
		h += gguf_get_bool(g, key, &b, &err) == 0 ? b : strlen(err.msg);
		h += gguf_get_str(g, key, &s, &err) == 0 ? s.len : strlen(err.msg);
		h += gguf_get_arr(g, key, GGUF_TYPE_COUNT, &arr, &err) == 0 ? arr->arr_len : strlen(err.msg);
		h += gguf_get_arr(g, key, GGUF_TYPE_STRING, &arr, &err) == 0 ? arr->arr_len : strlen(err.msg);
	}
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		CHECK(t && t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS && t->size > 0);
		CHECK(t->offset % a == 0 && t->offset >= gguf_data_offset(g));
		CHECK(t->offset <= size && t->size <= size - t->offset);
		CHECK((const uint8_t *)t->data == data + t->offset);
		const uint8_t *d = t->data;
		for (uint64_t k = 0; k < t->size; k++)
			h += d[k];
		if (!has_nul(t->name) && t->name.len <= 4096) {
			char name[4097];
			memcpy(name, t->name.ptr, t->name.len);
			name[t->name.len] = '\0';
			CHECK(gguf_find_tensor(g, name) == t);
		}
	}
	CHECK(gguf_kv_at(g, gguf_n_kv(g)) == NULL && gguf_tensor_at(g, gguf_n_tensors(g)) == NULL);
	sink += h;
}

/* The writer must turn anything the reader accepted (and it can express)
 * into a file that reads back the same. */
static bool writable(const struct gguf *g)
{
	if (gguf_alignment(g) > 4096) /* padding would dominate the run time */
		return false;
	for (uint64_t i = 0; i < gguf_n_kv(g); i++)
		if (has_nul(gguf_kv_at(g, i)->key))
			return false;
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		struct gguf_str n = gguf_tensor_at(g, i)->name;
		if (n.len == 0 || n.len > 63 || has_nul(n))
			return false;
	}
	return true;
}

static const struct gguf_kv *next_kv(const struct gguf *g, uint64_t *i)
{
	while (*i < gguf_n_kv(g)) {
		const struct gguf_kv *kv = gguf_kv_at(g, (*i)++);
		if (!gguf_str_eq(kv->key, "general.alignment"))
			return kv;
	}
	return NULL;
}

static void round_trip(const struct gguf *g)
{
	static int fd = -2;
	static char path[64];
	struct st_err err;

	if (fd == -2) {
		fd = memfd_create("fuzz-gguf", MFD_CLOEXEC);
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (fd < 0 || !writable(g))
		return;

	struct gguf_writer *w = gguf_writer_new(gguf_alignment(g));
	CHECK(w);
	for (uint64_t i = 0; i < gguf_n_kv(g); i++)
		CHECK(gguf_writer_copy_kv(w, gguf_kv_at(g, i)) == 0);
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		char name[64];
		memcpy(name, t->name.ptr, t->name.len);
		name[t->name.len] = '\0';
		CHECK(gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne) == (int)i);
	}
	if (gguf_writer_begin(w, path, &err) < 0) {
		gguf_writer_free(w); /* the environment, not the code */
		return;
	}
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		/* two pieces, so calls split tensors */
		CHECK(gguf_writer_write(w, t->data, t->size / 2, &err) == 0);
		CHECK(gguf_writer_write(w, (const uint8_t *)t->data + t->size / 2, t->size - t->size / 2,
					&err) == 0);
	}
	CHECK(gguf_writer_finish(w, &err) == 0);
	gguf_writer_free(w);

	struct stat st;
	CHECK(fstat(fd, &st) == 0 && st.st_size > 0);
	size_t n = (size_t)st.st_size;
	uint8_t *copy = malloc(n);
	CHECK(copy && pread(fd, copy, n, 0) == (ssize_t)n);
	struct gguf *c = NULL;
	if (gguf_parse(copy, n, "copy", &c, &err) != 0) {
		fprintf(stderr, "fuzz-gguf: the writer's copy does not parse: %s\n", err.msg);
		abort();
	}
	CHECK(gguf_version(c) == 3 && gguf_alignment(c) == gguf_alignment(g));
	uint64_t i = 0, j = 0;
	const struct gguf_kv *a, *b;
	while ((a = next_kv(g, &i)) != NULL) {
		b = next_kv(c, &j);
		CHECK(b && a->key.len == b->key.len && memcmp(a->key.ptr, b->key.ptr, a->key.len) == 0);
		CHECK(a->type == b->type && a->raw_len == b->raw_len &&
		      memcmp(a->raw, b->raw, a->raw_len) == 0);
		CHECK(a->type != GGUF_TYPE_ARRAY || (a->arr_type == b->arr_type && a->arr_len == b->arr_len));
	}
	CHECK(next_kv(c, &j) == NULL);
	CHECK(gguf_n_tensors(c) == gguf_n_tensors(g));
	for (uint64_t k = 0; k < gguf_n_tensors(g); k++) {
		const struct gguf_tensor *x = gguf_tensor_at(g, k), *y = gguf_tensor_at(c, k);
		CHECK(x->name.len == y->name.len && memcmp(x->name.ptr, y->name.ptr, x->name.len) == 0);
		CHECK(x->type == y->type && x->n_dims == y->n_dims && x->size == y->size &&
		      memcmp(x->ne, y->ne, sizeof x->ne) == 0 && memcmp(x->data, y->data, x->size) == 0);
	}
	gguf_close(c);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gguf *g = NULL;
	struct st_err err = { { 0 } };
	int rc = gguf_parse(data, size, "fuzz.gguf", &g, &err);
	if (rc < 0) {
		CHECK(g == NULL);
		CHECK(strncmp(err.msg, "fuzz.gguf: ", 11) == 0);
		CHECK(rc == -EBADMSG || rc == -ENOTSUP || rc == -EOVERFLOW || rc == -ENOMEM);
		return 0;
	}
	CHECK(g != NULL);
	walk(g, data, size);
	round_trip(g);
	gguf_close(g);
	return 0;
}
