/* gguf_write.c: the GGUF v3 writer (see gguf.h). Metadata and the tensor
 * table are built in memory; tensor data is streamed through a small buffer,
 * so converting a model never holds it in memory. The layout is llama.cpp's:
 * tensors in table order, each padded with zeros to the alignment. */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/types.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_write.c stores little-endian values by plain copies: port it for big-endian hosts"
#endif

#define GGUF_WRITE_VERSION 3
#define ALIGNMENT_KEY "general.alignment"
/* llama.cpp keeps tensor names in char[GGML_MAX_NAME = 64] with the NUL */
#define MAX_TENSOR_NAME 63
#define OUT_BUF (1u << 20) /* at most this many bytes buffered before a write(2) */

struct wtensor {
	char *name; /* owned */
	uint32_t type, n_dims;
	uint64_t ne[GGUF_MAX_DIMS];
	uint64_t size;	 /* bytes of data */
	uint64_t offset; /* from the data section start, aligned */
};

enum wstate { W_BUILD, W_DATA, W_DONE, W_FAILED };

struct gguf_writer {
	uint32_t alignment;
	bool user_align_key; /* the caller added general.alignment itself */

	/* metadata as it will be written: (key, type, value) * n_kv */
	uint8_t *meta;
	size_t meta_len, meta_cap;
	uint64_t n_kv;
	char **keys; /* (n_kv) owned copies, for duplicate checks */
	size_t keys_cap;

	struct wtensor *t; /* (n_t) in declaration order */
	uint64_t n_t, t_cap;
	uint64_t data_size; /* data section bytes, padding included */

	/* output, once begun */
	enum wstate state;
	int error; /* the failure that stopped it (W_FAILED) */
	int fd;
	char *path;
	uint8_t *buf; /* (buf_cap) bytes not yet written */
	size_t buf_len, buf_cap;
	uint64_t pos;	     /* file offset of the next byte (buffered ones counted) */
	uint64_t data_start; /* file offset of the data section */
	uint64_t cur;	     /* tensor receiving data */
	uint64_t cur_done;   /* its bytes so far */
};

struct gguf_writer *gguf_writer_new(uint32_t alignment)
{
	if (alignment == 0)
		alignment = GGUF_DEFAULT_ALIGNMENT;
	if ((alignment & (alignment - 1)) != 0)
		return NULL;
	struct gguf_writer *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->alignment = alignment;
	w->fd = -1;
	return w;
}

void gguf_writer_free(struct gguf_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0) {
		close(w->fd);
		if (w->state != W_DONE && w->path)
			unlink(w->path);
	}
	for (uint64_t i = 0; i < w->n_kv; i++)
		free(w->keys[i]);
	free(w->keys);
	for (uint64_t i = 0; i < w->n_t; i++)
		free(w->t[i].name);
	free(w->t);
	free(w->meta);
	free(w->buf);
	free(w->path);
	free(w);
}

/* ---- metadata ---- */

static int meta_put(struct gguf_writer *w, const void *p, size_t n)
{
	if (n > w->meta_cap - w->meta_len) {
		size_t cap = w->meta_cap ? w->meta_cap : 4096;
		while (cap - w->meta_len < n) {
			if (cap > SIZE_MAX / 2)
				return -EOVERFLOW;
			cap *= 2;
		}
		uint8_t *m = realloc(w->meta, cap);
		if (!m)
			return -ENOMEM;
		w->meta = m;
		w->meta_cap = cap;
	}
	if (n)
		memcpy(w->meta + w->meta_len, p, n);
	w->meta_len += n;
	return 0;
}

static int meta_u32(struct gguf_writer *w, uint32_t v)
{
	return meta_put(w, &v, sizeof v);
}

static int meta_u64(struct gguf_writer *w, uint64_t v)
{
	return meta_put(w, &v, sizeof v);
}

static int meta_str(struct gguf_writer *w, const char *s, uint64_t n)
{
	int rc = meta_u64(w, n);
	return rc < 0 ? rc : meta_put(w, s, n);
}

/* Start a key/value: checks the key, appends key and type. On a later
 * failure the caller rolls meta_len back to *mark. */
static int kv_begin(struct gguf_writer *w, const char *key, enum gguf_vtype type, size_t *mark)
{
	if (w->state != W_BUILD || !key || !*key)
		return -EINVAL;
	for (uint64_t i = 0; i < w->n_kv; i++)
		if (strcmp(w->keys[i], key) == 0)
			return -EEXIST;
	if (w->n_kv == w->keys_cap) {
		size_t cap = w->keys_cap ? 2 * w->keys_cap : 32;
		char **k = realloc(w->keys, cap * sizeof *k);
		if (!k)
			return -ENOMEM;
		w->keys = k;
		w->keys_cap = cap;
	}
	*mark = w->meta_len;
	int rc = meta_str(w, key, strlen(key));
	if (rc == 0)
		rc = meta_u32(w, type);
	if (rc < 0)
		w->meta_len = *mark;
	return rc;
}

/* Commit the key started by kv_begin (rc == 0), or roll it back. */
static int kv_end(struct gguf_writer *w, const char *key, size_t mark, int rc)
{
	if (rc == 0) {
		char *k = strdup(key);
		if (k) {
			w->keys[w->n_kv++] = k;
			return 0;
		}
		rc = -ENOMEM;
	}
	w->meta_len = mark;
	return rc;
}

static int add_scalar(struct gguf_writer *w, const char *key, enum gguf_vtype type, const void *v,
		      size_t n)
{
	size_t mark;
	if (key && strcmp(key, ALIGNMENT_KEY) == 0)
		return -EINVAL; /* only as a u32, see gguf_writer_add_u32 */
	int rc = kv_begin(w, key, type, &mark);
	if (rc < 0)
		return rc;
	return kv_end(w, key, mark, meta_put(w, v, n));
}

int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
	if (key && strcmp(key, ALIGNMENT_KEY) == 0) {
		/* the writer's layout decides the alignment; the caller may
		 * state it explicitly, but not contradict it */
		if (v != w->alignment || w->user_align_key || w->state != W_BUILD)
			return -EINVAL;
		size_t mark;
		int rc = kv_begin(w, key, GGUF_TYPE_U32, &mark);
		if (rc < 0)
			return rc;
		rc = kv_end(w, key, mark, meta_u32(w, v));
		if (rc == 0)
			w->user_align_key = true;
		return rc;
	}
	return add_scalar(w, key, GGUF_TYPE_U32, &v, sizeof v);
}

int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v)
{
	return add_scalar(w, key, GGUF_TYPE_I32, &v, sizeof v);
}

int gguf_writer_add_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
	return add_scalar(w, key, GGUF_TYPE_U64, &v, sizeof v);
}

int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v)
{
	return add_scalar(w, key, GGUF_TYPE_F32, &v, sizeof v);
}

int gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool v)
{
	uint8_t b = v ? 1 : 0;
	return add_scalar(w, key, GGUF_TYPE_BOOL, &b, 1);
}

int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *v)
{
	size_t mark;
	if (!v || (key && strcmp(key, ALIGNMENT_KEY) == 0))
		return -EINVAL;
	int rc = kv_begin(w, key, GGUF_TYPE_STRING, &mark);
	if (rc < 0)
		return rc;
	return kv_end(w, key, mark, meta_str(w, v, strlen(v)));
}

int gguf_writer_add_arr(struct gguf_writer *w, const char *key, enum gguf_vtype elem,
			const void *elems, uint64_t n)
{
	size_t esize = (size_t)gguf_vtype_size(elem);
	size_t mark;
	if (esize == 0 || (n && !elems) || (key && strcmp(key, ALIGNMENT_KEY) == 0))
		return -EINVAL;
	if (n > SIZE_MAX / esize)
		return -EOVERFLOW;
	if (elem == GGUF_TYPE_BOOL) {
		const uint8_t *b = elems;
		for (uint64_t i = 0; i < n; i++)
			if (b[i] > 1)
				return -EINVAL;
	}
	int rc = kv_begin(w, key, GGUF_TYPE_ARRAY, &mark);
	if (rc < 0)
		return rc;
	rc = meta_u32(w, elem);
	if (rc == 0)
		rc = meta_u64(w, n);
	if (rc == 0)
		rc = meta_put(w, elems, (size_t)n * esize);
	return kv_end(w, key, mark, rc);
}

int gguf_writer_add_arr_str(struct gguf_writer *w, const char *key, const char *const *strs,
			    uint64_t n)
{
	size_t mark;
	if ((n && !strs) || (key && strcmp(key, ALIGNMENT_KEY) == 0))
		return -EINVAL;
	for (uint64_t i = 0; i < n; i++)
		if (!strs[i])
			return -EINVAL;
	int rc = kv_begin(w, key, GGUF_TYPE_ARRAY, &mark);
	if (rc < 0)
		return rc;
	rc = meta_u32(w, GGUF_TYPE_STRING);
	if (rc == 0)
		rc = meta_u64(w, n);
	for (uint64_t i = 0; rc == 0 && i < n; i++)
		rc = meta_str(w, strs[i], strlen(strs[i]));
	return kv_end(w, key, mark, rc);
}

int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv)
{
	size_t mark;
	if (!kv || kv->key.len == 0 || (unsigned)kv->type >= GGUF_TYPE_COUNT)
		return -EINVAL;
	/* keys are C strings here; a key with a NUL byte cannot be looked up */
	if (memchr(kv->key.ptr, '\0', kv->key.len))
		return -EINVAL;
	char *key = strndup(kv->key.ptr, kv->key.len);
	if (!key)
		return -ENOMEM;
	int rc = 0;
	if (strcmp(key, ALIGNMENT_KEY) == 0)
		goto out; /* the writer's own alignment decides: see gguf.h */
	if ((rc = kv_begin(w, key, kv->type, &mark)) < 0)
		goto out;
	if (kv->type == GGUF_TYPE_ARRAY) {
		rc = meta_u32(w, kv->arr_type);
		if (rc == 0)
			rc = meta_u64(w, kv->arr_len);
	}
	/* raw holds the value exactly as encoded, nested arrays included */
	if (rc == 0)
		rc = kv->raw_len > SIZE_MAX ? -EOVERFLOW : meta_put(w, kv->raw, (size_t)kv->raw_len);
	rc = kv_end(w, key, mark, rc);
out:
	free(key);
	return rc;
}

/* ---- tensors ---- */

static uint64_t pad_to(uint64_t n, uint32_t a)
{
	return (n + a - 1) / a * a;
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type,
			   uint32_t n_dims, const uint64_t *ne)
{
	if (w->state != W_BUILD || !name || !*name || !ne || n_dims == 0 || n_dims > GGUF_MAX_DIMS)
		return -EINVAL;
	if (strlen(name) > MAX_TENSOR_NAME)
		return -ENAMETOOLONG;
	const struct st_type_info *ti = st_type_info(type);
	if (!ti || ti->block_elems == 0 || ne[0] % ti->block_elems != 0)
		return -EINVAL;
	uint64_t n_elems = 1;
	for (uint32_t d = 0; d < n_dims; d++) {
		if (ne[d] == 0)
			return -EINVAL;
		if (ne[d] > GGUF_MAX_ELEMS / n_elems)
			return -EOVERFLOW;
		n_elems *= ne[d];
	}
	for (uint64_t i = 0; i < w->n_t; i++)
		if (strcmp(w->t[i].name, name) == 0)
			return -EEXIST;
	if (w->n_t >= INT_MAX)
		return -EOVERFLOW;
	if (w->n_t == w->t_cap) {
		uint64_t cap = w->t_cap ? 2 * w->t_cap : 64;
		struct wtensor *t = realloc(w->t, cap * sizeof *t);
		if (!t)
			return -ENOMEM;
		w->t = t;
		w->t_cap = cap;
	}
	struct wtensor *t = &w->t[w->n_t];
	memset(t, 0, sizeof *t);
	if (!(t->name = strdup(name)))
		return -ENOMEM;
	t->type = type;
	t->n_dims = n_dims;
	for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = d < n_dims ? ne[d] : 1;
	/* n_elems <= 2^50 and blocks are small: no overflow; the data section
	 * below 2^62 keeps every offset well inside uint64 */
	t->size = n_elems / ti->block_elems * ti->block_bytes;
	t->offset = w->data_size;
	uint64_t padded = pad_to(t->size, w->alignment);
	if (padded > (UINT64_C(1) << 62) - w->data_size) {
		free(t->name);
		return -EOVERFLOW;
	}
	w->data_size += padded;
	return (int)w->n_t++;
}

/* ---- output ---- */

static int fail(struct gguf_writer *w, struct st_err *err, int code, const char *what)
{
	w->state = W_FAILED;
	w->error = code;
	return st_errf(err, code, "%s: %s: %s", w->path, what, strerror(-code));
}

static int write_all(struct gguf_writer *w, const void *p, size_t n, struct st_err *err)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t k = write(w->fd, b, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return fail(w, err, -errno, "write");
		}
		if (k == 0)
			return fail(w, err, -EIO, "write returned 0");
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static int flush(struct gguf_writer *w, struct st_err *err)
{
	int rc = write_all(w, w->buf, w->buf_len, err);
	w->buf_len = 0;
	return rc;
}

static int out(struct gguf_writer *w, const void *p, size_t n, struct st_err *err)
{
	int rc;
	if (n == 0) /* p may be NULL (no metadata) */
		return 0;
	if (n > w->buf_cap - w->buf_len) {
		if ((rc = flush(w, err)) < 0)
			return rc;
		if (n >= w->buf_cap) { /* big tensor chunks go straight through */
			if ((rc = write_all(w, p, n, err)) < 0)
				return rc;
			w->pos += n;
			return 0;
		}
	}
	memcpy(w->buf + w->buf_len, p, n);
	w->buf_len += n;
	w->pos += n;
	return 0;
}

static int out_u32(struct gguf_writer *w, uint32_t v, struct st_err *err)
{
	return out(w, &v, sizeof v, err);
}

static int out_u64(struct gguf_writer *w, uint64_t v, struct st_err *err)
{
	return out(w, &v, sizeof v, err);
}

static int out_pad(struct gguf_writer *w, struct st_err *err)
{
	static const uint8_t zeros[4096];
	uint64_t n = pad_to(w->pos, w->alignment) - w->pos;
	while (n) {
		size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
		int rc = out(w, zeros, k, err);
		if (rc < 0)
			return rc;
		n -= k;
	}
	return 0;
}

/* Refuse calls in the wrong state with a message that says which. */
static int check_state(struct gguf_writer *w, enum wstate want, const char *call,
		       struct st_err *err)
{
	if (w->state == want)
		return 0;
	const char *path = w->path ? w->path : "(gguf writer)";
	if (w->state == W_FAILED)
		return st_errf(err, w->error < 0 ? w->error : -EIO, "%s: %s: the writer failed earlier",
			       path, call);
	return st_errf(err, -EINVAL, "%s: %s called %s", path, call,
		       w->state == W_BUILD ? "before gguf_writer_begin"
		       : w->state == W_DONE ? "after gguf_writer_finish"
					    : "after gguf_writer_begin");
}

int gguf_writer_begin(struct gguf_writer *w, const char *path, struct st_err *err)
{
	int rc;
	if (w->state != W_BUILD)
		return check_state(w, W_BUILD, "gguf_writer_begin", err);
	/* a small file needs no 1 MiB buffer: size it from what is known */
	uint64_t est = 4096 + w->meta_len + w->data_size;
	for (uint64_t i = 0; i < w->n_t; i++)
		est += strlen(w->t[i].name) + 64;
	w->buf_cap = est < OUT_BUF ? (size_t)est : OUT_BUF;
	if (!(w->path = strdup(path)) || !(w->buf = malloc(w->buf_cap)))
		return st_errf(err, -ENOMEM, "%s: out of memory", path);
	w->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		rc = -errno;
		w->state = W_FAILED;
		w->error = rc;
		return st_errf(err, rc, "%s: cannot create: %s", path, strerror(-rc));
	}
	/* A regular file only, truncated once we know it is one: a failed write
	 * removes its output, and /dev/null must never be that output. */
	struct stat st;
	rc = 0;
	if (fstat(w->fd, &st) != 0)
		rc = -errno;
	else if (!S_ISREG(st.st_mode))
		rc = -EINVAL;
	else if (ftruncate(w->fd, 0) != 0)
		rc = -errno;
	if (rc < 0) {
		close(w->fd);
		w->fd = -1;
		w->state = W_FAILED;
		w->error = rc;
		return st_errf(err, rc, "%s: %s", path,
			       rc == -EINVAL ? "not a regular file (a GGUF file is written to one)" : strerror(-rc));
	}
	w->state = W_DATA;

	bool align_key = w->alignment != GGUF_DEFAULT_ALIGNMENT && !w->user_align_key;
	const char header[4] = { 'G', 'G', 'U', 'F' };
	if ((rc = out(w, header, 4, err)) < 0 || (rc = out_u32(w, GGUF_WRITE_VERSION, err)) < 0 ||
	    (rc = out_u64(w, w->n_t, err)) < 0 || (rc = out_u64(w, w->n_kv + align_key, err)) < 0)
		return rc;
	if (align_key) {
		static const char key[] = ALIGNMENT_KEY;
		if ((rc = out_u64(w, sizeof key - 1, err)) < 0 || (rc = out(w, key, sizeof key - 1, err)) < 0 ||
		    (rc = out_u32(w, GGUF_TYPE_U32, err)) < 0 || (rc = out_u32(w, w->alignment, err)) < 0)
			return rc;
	}
	if ((rc = out(w, w->meta, w->meta_len, err)) < 0)
		return rc;
	for (uint64_t i = 0; i < w->n_t; i++) {
		const struct wtensor *t = &w->t[i];
		uint64_t len = strlen(t->name);
		if ((rc = out_u64(w, len, err)) < 0 || (rc = out(w, t->name, len, err)) < 0 ||
		    (rc = out_u32(w, t->n_dims, err)) < 0)
			return rc;
		for (uint32_t d = 0; d < t->n_dims; d++)
			if ((rc = out_u64(w, t->ne[d], err)) < 0)
				return rc;
		if ((rc = out_u32(w, t->type, err)) < 0 || (rc = out_u64(w, t->offset, err)) < 0)
			return rc;
	}
	if ((rc = out_pad(w, err)) < 0)
		return rc;
	w->data_start = w->pos;
	w->cur = 0;
	w->cur_done = 0;
	return 0;
}

int gguf_writer_write(struct gguf_writer *w, const void *data, size_t n, struct st_err *err)
{
	int rc = check_state(w, W_DATA, "gguf_writer_write", err);
	if (rc < 0)
		return rc;
	const uint8_t *p = data;
	while (n) {
		if (w->cur == w->n_t) {
			w->state = W_FAILED;
			w->error = -EINVAL;
			return st_errf(err, -EINVAL,
				       "%s: %zu bytes of data past the last tensor (the %" PRIu64
				       " tensors declare %" PRIu64 " bytes)",
				       w->path, n, w->n_t, w->data_size);
		}
		const struct wtensor *t = &w->t[w->cur];
		uint64_t left = t->size - w->cur_done;
		size_t k = n < left ? n : (size_t)left;
		if ((rc = out(w, p, k, err)) < 0)
			return rc;
		p += k;
		n -= k;
		w->cur_done += k;
		if (w->cur_done == t->size) {
			if ((rc = out_pad(w, err)) < 0)
				return rc;
			w->cur++;
			w->cur_done = 0;
		}
	}
	return 0;
}

int gguf_writer_finish(struct gguf_writer *w, struct st_err *err)
{
	int rc = check_state(w, W_DATA, "gguf_writer_finish", err);
	if (rc < 0)
		return rc;
	if (w->cur < w->n_t) {
		const struct wtensor *t = &w->t[w->cur];
		w->state = W_FAILED;
		w->error = -EINVAL;
		return st_errf(err, -EINVAL,
			       "%s: tensor '%s' got %" PRIu64 " of its %" PRIu64
			       " bytes (tensor %" PRIu64 " of %" PRIu64 ")",
			       w->path, t->name, w->cur_done, t->size, w->cur + 1, w->n_t);
	}
	if ((rc = flush(w, err)) < 0)
		return rc;
	uint64_t want = w->data_start + w->data_size;
	struct stat st;
	if (fstat(w->fd, &st) != 0)
		return fail(w, err, -errno, "fstat");
	if (w->pos != want || (uint64_t)st.st_size != want) {
		w->state = W_FAILED;
		w->error = -EIO;
		return st_errf(err, -EIO, "%s: file is %lld bytes, expected %" PRIu64, w->path,
			       (long long)st.st_size, want);
	}
	int fd = w->fd;
	w->fd = -1;
	if (close(fd) != 0) {
		rc = -errno;
		w->state = W_FAILED;
		w->error = rc;
		unlink(w->path);
		return st_errf(err, rc, "%s: close: %s", w->path, strerror(-rc));
	}
	w->state = W_DONE;
	return 0;
}
