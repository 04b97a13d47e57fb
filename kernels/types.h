/* types.h: the weight types strata reads, numbered and laid out exactly as
 * GGUF/ggml define them, with the scalar conversions every kernel shares.
 * This is the one place a block layout is written down; everything that
 * touches quantized bytes includes it. Arithmetic lives in dot.h/ops.h. */
#ifndef STRATA_KERNELS_TYPES_H
#define STRATA_KERNELS_TYPES_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ggml_type ids as stored in a GGUF tensor info. Only the ones strata names;
 * any other id read from a file is "unknown" and rejected by the reader. */
enum st_type {
	ST_F32 = 0,
	ST_F16 = 1,
	ST_Q4_0 = 2,
	ST_Q4_1 = 3,
	ST_Q5_0 = 6,
	ST_Q5_1 = 7,
	ST_Q8_0 = 8,
	ST_Q8_1 = 9,
	ST_Q2_K = 10,
	ST_Q3_K = 11,
	ST_Q4_K = 12,
	ST_Q5_K = 13,
	ST_Q6_K = 14,
	ST_Q8_K = 15,
	ST_I8 = 24,
	ST_I16 = 25,
	ST_I32 = 26,
	ST_I64 = 27,
	ST_F64 = 28,
	ST_BF16 = 30,
	ST_TYPE_COUNT = 40 /* upper bound for tables indexed by type */
};

/* Q8_0: 32 weights = one f16 scale d and 32 int8; w = d * q. */
#define QK8_0 32
struct block_q8_0 {
	uint16_t d;	      /* f16 scale */
	int8_t qs[QK8_0];     /* quants */
};
static_assert(sizeof(struct block_q8_0) == 2 + QK8_0, "block_q8_0 must be 34 bytes");

/* Q4_0: 32 weights = one f16 scale d and 16 bytes of nibbles; byte j holds
 * weight j in its low nibble and weight j+16 in its high nibble; w = d * (q - 8). */
#define QK4_0 32
struct block_q4_0 {
	uint16_t d;		 /* f16 scale */
	uint8_t qs[QK4_0 / 2];	 /* nibbles */
};
static_assert(sizeof(struct block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 must be 18 bytes");

/* Properties of a type; block_elems == 0 means strata cannot size it. */
struct st_type_info {
	const char *name;	/* ggml's spelling: "f32", "q8_0", ... */
	uint32_t block_elems;	/* weights per block (1 for plain floats) */
	uint32_t block_bytes;	/* bytes per block */
	bool supported;		/* strata can compute with it */
};

/* Info for a type id, or NULL for an id ggml does not define. */
const struct st_type_info *st_type_info(uint32_t type);
const char *st_type_name(uint32_t type); /* "unknown(N)" style never NULL */
/* Parse "f32", "F16", "q8_0", ...; -EINVAL if unknown. */
int st_type_parse(const char *name, enum st_type *out);
/* Bytes of one row of n weights, or 0 if n is not a whole number of blocks
 * or the type is unknown. */
size_t st_row_bytes(uint32_t type, uint64_t n);

/* IEEE half <-> float, round-to-nearest-even (bit-exact with ggml). */
float st_fp16_to_f32(uint16_t h);
uint16_t st_f32_to_fp16(float f);
/* bfloat16 <-> float; the narrowing rounds to nearest even and keeps NaN a NaN. */
static inline float st_bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}
uint16_t st_f32_to_bf16(float f);

#endif
