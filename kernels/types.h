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

/* ggml_type ids as stored in a GGUF tensor info: the whole ggml table, the
 * types strata does not run included, so a file of any of them can be read
 * and described. Ids ggml removed (4, 5, 31-33, 36-38) are not types: the
 * reader rejects them, and any id past the table, as unknown. */
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
	ST_IQ2_XXS = 16,
	ST_IQ2_XS = 17,
	ST_IQ3_XXS = 18,
	ST_IQ1_S = 19,
	ST_IQ4_NL = 20,
	ST_IQ3_S = 21,
	ST_IQ2_S = 22,
	ST_IQ4_XS = 23,
	ST_I8 = 24,
	ST_I16 = 25,
	ST_I32 = 26,
	ST_I64 = 27,
	ST_F64 = 28,
	ST_IQ1_M = 29,
	ST_BF16 = 30,
	ST_TQ1_0 = 34,
	ST_TQ2_0 = 35,
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

/* Q4_1: 32 weights = f16 scale d, f16 minimum m and 16 bytes of nibbles
 * (laid out as Q4_0's); w = d * q + m, q in 0..15. */
#define QK4_1 32
struct block_q4_1 {
	uint16_t d;		 /* f16 scale */
	uint16_t m;		 /* f16 minimum */
	uint8_t qs[QK4_1 / 2];	 /* nibbles */
};
static_assert(sizeof(struct block_q4_1) == 4 + QK4_1 / 2, "block_q4_1 must be 20 bytes");

/* Q5_0: Q4_0's nibbles plus a fifth bit per weight: bit j of qh (read as a
 * little-endian u32) is the high bit of weight j; w = d * (q - 16). */
#define QK5_0 32
struct block_q5_0 {
	uint16_t d;		 /* f16 scale */
	uint8_t qh[4];		 /* fifth bits, weight j at bit j */
	uint8_t qs[QK5_0 / 2];	 /* low nibbles */
};
static_assert(sizeof(struct block_q5_0) == 2 + 4 + QK5_0 / 2, "block_q5_0 must be 22 bytes");

/* Q5_1: Q5_0's bits with a minimum instead of the offset: w = d * q + m. */
#define QK5_1 32
struct block_q5_1 {
	uint16_t d;		 /* f16 scale */
	uint16_t m;		 /* f16 minimum */
	uint8_t qh[4];		 /* fifth bits */
	uint8_t qs[QK5_1 / 2];	 /* low nibbles */
};
static_assert(sizeof(struct block_q5_1) == 4 + 4 + QK5_1 / 2, "block_q5_1 must be 24 bytes");

/* Q8_1: activations for Q4_1/Q5_1 weights: Q8_0 plus s = d * sum(qs) in f16,
 * which carries the weights' minimum through the dot. */
#define QK8_1 32
struct block_q8_1 {
	uint16_t d;	      /* f16 scale */
	uint16_t s;	      /* f16 d * sum of qs */
	int8_t qs[QK8_1];     /* quants */
};
static_assert(sizeof(struct block_q8_1) == 4 + QK8_1, "block_q8_1 must be 36 bytes");

/* IQ4_NL: 32 weights, a f16 scale and 16 bytes of 4-bit indexes (laid out
 * as Q4_0's) into the non-linear table st_iq4nl_values; w = d * value[q]. */
#define QK4_NL 32
struct block_iq4_nl {
	uint16_t d;		  /* f16 scale */
	uint8_t qs[QK4_NL / 2];	  /* indexes */
};
static_assert(sizeof(struct block_iq4_nl) == 2 + QK4_NL / 2, "block_iq4_nl must be 18 bytes");

/* The 16 values of IQ4_NL and IQ4_XS, ggml's kvalues_iq4nl. */
extern const int8_t st_iq4nl_values[16];

/* ---- super-blocks of 256 weights (the K-quants and IQ4_XS) ----
 * Within a super-block, quants of 4 bits or more are stored 64 weights at a
 * time: 32 bytes whose low nibbles are weights 0..31 and high nibbles 32..63
 * of that group; 2-bit quants 128 at a time: 32 bytes, bits 2k..2k+1 of
 * byte l are weight 32k + l of the group. */
#define QK_K 256
#define K_SCALE_SIZE 12

/* Q2_K: 16 sub-blocks of 16; each has a 4-bit scale (low nibble of
 * scales[j]) and a 4-bit minimum (high nibble); w = d * sc * q - dmin * m,
 * q in 0..3. */
struct block_q2_K {
	uint8_t scales[QK_K / 16]; /* scale | minimum << 4, per sub-block */
	uint8_t qs[QK_K / 4];	   /* 2-bit quants */
	uint16_t d;		   /* f16 scale of the scales */
	uint16_t dmin;		   /* f16 scale of the minimums */
};
static_assert(sizeof(struct block_q2_K) == QK_K / 16 + QK_K / 4 + 4, "block_q2_K must be 84 bytes");

/* Q3_K: 16 sub-blocks of 16 with signed 6-bit scales (stored + 32: low
 * nibbles in scales[0..7], two bits each in scales[8..11]); q in -4..3 is
 * 2 low bits in qs and a high bit in hmask (set: no -4); w = d * (sc-32) * q. */
struct block_q3_K {
	uint8_t hmask[QK_K / 8];   /* high bits: weight 32k+l at bit k of hmask[l] */
	uint8_t qs[QK_K / 4];	   /* low 2 bits */
	uint8_t scales[12];	   /* 16 6-bit scales, packed */
	uint16_t d;		   /* f16 scale of the scales */
};
static_assert(sizeof(struct block_q3_K) == QK_K / 8 + QK_K / 4 + 12 + 2, "block_q3_K must be 110 bytes");

/* Q4_K: 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit minimum
 * packed in 12 bytes (st_q4k_scale_min); w = d * sc * q - dmin * m, q 0..15. */
struct block_q4_K {
	uint16_t d;		      /* f16 scale of the scales */
	uint16_t dmin;		      /* f16 scale of the minimums */
	uint8_t scales[K_SCALE_SIZE]; /* 8 scales and 8 minimums, 6 bits each */
	uint8_t qs[QK_K / 2];	      /* 4-bit quants */
};
static_assert(sizeof(struct block_q4_K) == 4 + K_SCALE_SIZE + QK_K / 2, "block_q4_K must be 144 bytes");

/* Q5_K: Q4_K plus a fifth bit per weight: weight 32k+l's at bit k of qh[l]. */
struct block_q5_K {
	uint16_t d;		      /* f16 scale of the scales */
	uint16_t dmin;		      /* f16 scale of the minimums */
	uint8_t scales[K_SCALE_SIZE]; /* as Q4_K */
	uint8_t qh[QK_K / 8];	      /* fifth bits */
	uint8_t qs[QK_K / 2];	      /* low 4 bits */
};
static_assert(sizeof(struct block_q5_K) == 4 + K_SCALE_SIZE + QK_K / 8 + QK_K / 2,
	      "block_q5_K must be 176 bytes");

/* Q6_K: 16 sub-blocks of 16 with int8 scales; q in 0..63 is 4 low bits in
 * ql and 2 high bits in qh, 128 weights at a time; w = d * sc * (q - 32). */
struct block_q6_K {
	uint8_t ql[QK_K / 2];	   /* low 4 bits */
	uint8_t qh[QK_K / 4];	   /* high 2 bits */
	int8_t scales[QK_K / 16];  /* per sub-block */
	uint16_t d;		   /* f16 scale of the scales */
};
static_assert(sizeof(struct block_q6_K) == QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, "block_q6_K must be 210 bytes");

/* Q8_K: activations for the K-quants and IQ4_XS. A float scale (not f16),
 * 256 int8 and the sums of each 16 quants (what the minimums multiply). */
struct block_q8_K {
	float d;		  /* scale */
	int8_t qs[QK_K];	  /* quants in -127..127 */
	int16_t bsums[QK_K / 16]; /* sum of qs[16j .. 16j+15] */
};
static_assert(sizeof(struct block_q8_K) == 4 + QK_K + QK_K / 16 * 2, "block_q8_K must be 292 bytes");

/* IQ4_XS: 8 sub-blocks of 32 with signed 6-bit scales (stored + 32: low
 * nibbles in scales_l, two bits each in scales_h) and IQ4_NL's 4-bit indexes
 * (each 32 laid out as an IQ4_NL block); w = d * (ls - 32) * value[q]. */
struct block_iq4_xs {
	uint16_t d;		   /* f16 scale of the scales */
	uint16_t scales_h;	   /* high 2 bits of the 8 scales */
	uint8_t scales_l[QK_K / 64]; /* low 4 bits of the 8 scales */
	uint8_t qs[QK_K / 2];	   /* indexes */
};
static_assert(sizeof(struct block_iq4_xs) == 4 + QK_K / 64 + QK_K / 2, "block_iq4_xs must be 136 bytes");

/* Scale and minimum of sub-block j (0..7) of a Q4_K/Q5_K block: 6 bits each,
 * in the packing ggml calls get_scale_min_k4. */
static inline void st_q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/* Properties of a type. */
struct st_type_info {
	const char *name;	/* ggml's spelling: "f32", "q8_0", "q4_K", "iq4_xs", ... */
	uint32_t block_elems;	/* weights per block (1 for plain numbers) */
	uint32_t block_bytes;	/* bytes per block */
	bool supported;		/* strata computes with weights of this type */
};

/* Info for a type id, or NULL for an id ggml does not define (or removed). */
const struct st_type_info *st_type_info(uint32_t type);
/* ggml's name, or "unknown" for an id without one; never NULL. */
const char *st_type_name(uint32_t type);
/* Parse "f32", "F16", "q8_0", "Q4_K", ... (any case); -EINVAL if unknown. */
int st_type_parse(const char *name, enum st_type *out);
/* Bytes of one row of n weights, or 0 if n is not a whole number of blocks
 * or the type is unknown. */
size_t st_row_bytes(uint32_t type, uint64_t n);
/* The weight types strata runs, comma-separated ("f32, f16, ..."), for
 * messages. Static string. */
const char *st_supported_list(void);

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
