/* gguf.h: a validated, read-only view of a GGUF file (v2 and v3), and a
 * writer for new ones. The reader maps the file and checks every length,
 * count, type and offset before anything else looks at it; afterwards the
 * pointers it hands out are safe to follow. It knows nothing of models:
 * model.h interprets the keys and tensors. */
#ifndef STRATA_GGUF_GGUF_H
#define STRATA_GGUF_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
/* Limits the reader enforces (and the writer, so what it writes reads back):
 * arrays may nest (arrays of arrays of ...) at most this deep, counting the
 * outermost array as 1; a tensor holds at most GGUF_MAX_ELEMS elements (2^50,
 * far above any real tensor, low enough that byte sizes cannot overflow). */
#define GGUF_MAX_ARRAY_DEPTH 8
#define GGUF_MAX_ELEMS (1ull << 50)

/* Metadata value types, numbered as the GGUF spec numbers them. */
enum gguf_vtype {
	GGUF_TYPE_U8 = 0,
	GGUF_TYPE_I8 = 1,
	GGUF_TYPE_U16 = 2,
	GGUF_TYPE_I16 = 3,
	GGUF_TYPE_U32 = 4,
	GGUF_TYPE_I32 = 5,
	GGUF_TYPE_F32 = 6,
	GGUF_TYPE_BOOL = 7,
	GGUF_TYPE_STRING = 8,
	GGUF_TYPE_ARRAY = 9,
	GGUF_TYPE_U64 = 10,
	GGUF_TYPE_I64 = 11,
	GGUF_TYPE_F64 = 12,
	GGUF_TYPE_COUNT
};

/* A string inside the file: NOT NUL-terminated; points into the mapping. */
struct gguf_str {
	const char *ptr;
	uint64_t len;
};

/* One metadata key/value. For scalars `val` holds the decoded value; for
 * arrays `val` is zero, `arr_*` describe the elements and `raw` points at the
 * first one. A string's `raw` starts at its u64 length prefix. */
struct gguf_kv {
	struct gguf_str key;
	enum gguf_vtype type;
	union {
		uint64_t u64; /* any unsigned integer type, and bool (0/1) */
		int64_t i64;  /* any signed integer type */
		double f64;   /* f32 and f64 */
		struct gguf_str str;
	} val;
	enum gguf_vtype arr_type; /* element type when type == ARRAY */
	uint64_t arr_len;	  /* element count when type == ARRAY */
	const uint8_t *raw;	  /* the value's bytes in the mapping */
	uint64_t raw_len;	  /* their length (whole array, nested ones included) */
	const void *index;	  /* reader-private: element index of string arrays and
				   * arrays of arrays (NULL otherwise); owned by the gguf */
};

/* One tensor. ne[0] is the contiguous dimension (a row); unused dims are 1. */
struct gguf_tensor {
	struct gguf_str name;
	uint32_t type;		    /* enum st_type; always a type st_type_info() knows,
				     * which strata may not run (st_type_info()->supported) */
	uint32_t n_dims;	    /* 1..GGUF_MAX_DIMS */
	uint64_t ne[GGUF_MAX_DIMS]; /* elements per dim */
	uint64_t n_elems;	    /* product of ne (checked for overflow) */
	uint64_t offset;	    /* absolute byte offset in the file (aligned) */
	uint64_t size;		    /* bytes of data */
	const void *data;	    /* base of the mapping + offset; reading it may fault */
};

struct gguf; /* opaque */

/* Open and validate `path` (mapped read-only, MAP_SHARED). On failure returns
 * -errno and an error that names the file, the field and the reason:
 *   -EBADMSG   the bytes are not a valid GGUF file: bad magic, truncation or
 *              any length, count or offset past the end of the file, unknown
 *              value or tensor type, duplicate key or tensor name, empty key,
 *              n_dims not 1..4, a zero dim, a row that is not whole blocks,
 *              misaligned or overlapping tensor data, general.alignment not a
 *              u32 power of two, a bool byte not 0/1, arrays nested too deep;
 *   -ENOTSUP   a GGUF version other than 2 and 3 (v1, a future or big-endian file);
 *   -EOVERFLOW tensor dims whose product overflows or exceeds GGUF_MAX_ELEMS;
 *   -ENOMEM;   and from gguf_open the errno of open/fstat/mmap (-ENOENT,
 *              -EACCES, ...), -EISDIR or -EINVAL for a file that is not regular.
 * The path is opened with O_NONBLOCK, so a FIFO fails at once instead of
 * blocking the open. The caller owns *out and frees it with gguf_close(). */
int gguf_open(const char *path, struct gguf **out, struct st_err *err);

/* The same from a descriptor open for reading (borrowed: the mapping outlives
 * it, so the caller may close it after return). `name` is for messages. A
 * caller that reads the file again (the weights, the embeddings) through the
 * same descriptor reads the same file, whatever happens to its path. */
int gguf_open_fd(int fd, const char *name, struct gguf **out, struct st_err *err);

/* Validate a GGUF image already in memory (`size` bytes at `data`, which must
 * stay valid until gguf_close). `name` is used in error messages. This is the
 * entry point of the fuzz target; gguf_open_fd calls it after mapping. */
int gguf_parse(const void *data, size_t size, const char *name, struct gguf **out,
	       struct st_err *err);

/* Unmap (when gguf_open or gguf_open_fd mapped) and free. gguf_close(NULL) is a no-op. */
void gguf_close(struct gguf *g);

uint32_t gguf_version(const struct gguf *g);
const char *gguf_path(const struct gguf *g); /* the path or name given */
uint64_t gguf_file_size(const struct gguf *g);
uint32_t gguf_alignment(const struct gguf *g);	/* general.alignment or 32 */
/* start of the tensor data section (aligned; past the end of a file that
 * has no tensors and no final padding) */
uint64_t gguf_data_offset(const struct gguf *g);
const void *gguf_base(const struct gguf *g);	 /* start of the mapping */

/* Metadata. Lookups by key compare the whole key; NULL when absent. */
uint64_t gguf_n_kv(const struct gguf *g);
const struct gguf_kv *gguf_kv_at(const struct gguf *g, uint64_t i);
const struct gguf_kv *gguf_find_kv(const struct gguf *g, const char *key);

/* Typed getters. 0 on success; -ENOENT if the key is absent; -EINVAL (with a
 * message naming the key, the type found and the type wanted) if it has the
 * wrong type or its value does not fit. Integer getters accept any integer
 * type whose value fits; float getters accept f32 and f64. */
int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out, struct st_err *err);
int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out, struct st_err *err);
int gguf_get_i32(const struct gguf *g, const char *key, int32_t *out, struct st_err *err);
int gguf_get_f32(const struct gguf *g, const char *key, float *out, struct st_err *err);
int gguf_get_bool(const struct gguf *g, const char *key, bool *out, struct st_err *err);
int gguf_get_str(const struct gguf *g, const char *key, struct gguf_str *out, struct st_err *err);
/* An array key with elements of `elem` type (GGUF_TYPE_COUNT accepts any). */
int gguf_get_arr(const struct gguf *g, const char *key, enum gguf_vtype elem,
		 const struct gguf_kv **out, struct st_err *err);

/* Array elements. Index must be < arr_len (checked with assert).
 * Numeric elements (and bools, 0/1) are converted: gguf_arr_i64 truncates
 * floats toward zero and saturates (NaN is 0, u64 above INT64_MAX is
 * INT64_MAX). String elements are O(1) (the reader indexes string arrays
 * while validating). Arrays of arrays are validated but only reachable
 * through gguf_arr_sub(); its result cannot be given to copy_kv (no key). */
int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t i);
double gguf_arr_f64(const struct gguf_kv *kv, uint64_t i);
struct gguf_str gguf_arr_str(const struct gguf_kv *kv, uint64_t i);
/* Element i of an array of arrays, as a kv of its own (key empty). */
struct gguf_kv gguf_arr_sub(const struct gguf_kv *kv, uint64_t i);

/* Tensors, in file order. */
uint64_t gguf_n_tensors(const struct gguf *g);
const struct gguf_tensor *gguf_tensor_at(const struct gguf *g, uint64_t i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name);

/* The file's tensor types by their total bytes, largest first: what a model's
 * description calls its type mix ("q4_K 193 tensors, q6_K 49, f32 97"). Fills at
 * most max entries and returns how many. */
struct gguf_type_total {
	uint32_t type; /* ST_TYPE_* (kernels/types.h) */
	uint32_t n_tensors;
	uint64_t bytes;
};
size_t gguf_type_mix(const struct gguf *g, struct gguf_type_total *out, size_t max);

const char *gguf_vtype_name(enum gguf_vtype t);
/* Bytes of one fixed-size value of type t; 0 for string, array and unknown types. */
uint64_t gguf_vtype_size(uint32_t t);
/* true if the string equals the NUL-terminated s */
bool gguf_str_eq(struct gguf_str a, const char *s);

/* ---- Writer ----
 * Build the metadata and tensor table in memory, then stream the tensor data
 * in table order: a multi-gigabyte model is never held in memory. Keys are
 * written in the order added. Functions return 0 or -errno (with err set). */
struct gguf_writer;

/* alignment 0 means GGUF_DEFAULT_ALIGNMENT; it is written as general.alignment
 * (the first key) when it differs from the default. NULL when alignment is
 * not a power of two, or out of memory. Caller frees with gguf_writer_free().
 * The add functions return 0, or -EINVAL (NULL or empty key, bad type, bad
 * bool, called after begin), -EEXIST (key or tensor name already added),
 * -ENAMETOOLONG (tensor name of 64 bytes or more: llama.cpp cannot read it),
 * -EOVERFLOW, -ENOMEM. general.alignment belongs to the writer: adding it is
 * accepted only as a u32 equal to the writer's alignment, and copy_kv skips it. */
struct gguf_writer *gguf_writer_new(uint32_t alignment);
/* NULL is a no-op. An unfinished file (begun, not finished) is closed and
 * removed, so a failed conversion never leaves a plausible-looking file. */
void gguf_writer_free(struct gguf_writer *w);

int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_u64(struct gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *v);
/* An array of `n` fixed-size scalars of type `elem`, read from `elems`. */
int gguf_writer_add_arr(struct gguf_writer *w, const char *key, enum gguf_vtype elem,
			const void *elems, uint64_t n);
int gguf_writer_add_arr_str(struct gguf_writer *w, const char *key, const char *const *strs,
			    uint64_t n);
/* Copy a key/value (any type, arrays of arrays too) from another file; the
 * bytes are copied, so the source may be closed afterwards. */
int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv);

/* Declare a tensor; returns its index (>= 0) or -errno. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type,
			   uint32_t n_dims, const uint64_t *ne);
/* Create `path` (or truncate it: a regular file only, -EINVAL otherwise, so
 * that a failed write, which removes its output, never removes a device)
 * and write header, metadata and tensor table. */
int gguf_writer_begin(struct gguf_writer *w, const char *path, struct st_err *err);
/* Append data for the tensors in the order declared; calls may split a
 * tensor or span several; padding between tensors is inserted by the writer. */
int gguf_writer_write(struct gguf_writer *w, const void *data, size_t n, struct st_err *err);
/* Check every tensor got exactly its bytes, flush and close. */
int gguf_writer_finish(struct gguf_writer *w, struct st_err *err);

#endif
