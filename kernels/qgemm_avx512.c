/* qgemm_avx512.c: the multi-row kernels for AVX-512, in two sets: VNNI
 * (vpdpbusd: 64 byte products summed into 16 int32 lanes in one op) and
 * F/BW/VL without it (maddubs + madd). Built without global -m flags: each
 * function names its target and isa.c picks the set the CPU runs.
 *
 * Layout: lane r of every register is weight row r of a 16-row tile. A block
 * of 32 weights of the 16 rows is transposed into 8 registers, register k
 * holding quants 4k..4k+3 of each row; activation row t's quants 4k..4k+3
 * are broadcast to all lanes, so one vpdpbusd adds 4 products to each row's
 * integer sum. After the 8 registers each lane holds its row's exact block
 * sum, and one float step per block and pair follows, as the reference:
 * acc = acc + (float)isum * (d_w * d_x). Hence bit-identical results.
 *
 * vpdpbusd multiplies unsigned by signed bytes: Q8_0 quants go in as q+128
 * (flip the top bit), Q4_0 nibbles as they are (q+8), and the activation
 * row's prepared term -(zero point * sum of its quants) starts the sum.
 * The BW set has no unsigned offset for Q8_0 (maddubs would saturate at
 * 255 * 127 * 2): |w| times x with w's sign moved onto x. Not here: the
 * layout contract (qgemm_impl.h), threads (matmul.c). */
#include "kernels/qgemm.h"
#include "kernels/qgemm_impl.h"
#include "kernels/types.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define TGT_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

#define ROWS 16 /* weight rows per tile: one per int32 / f32 lane */

/* 16 weight rows in the GGUF layout. Lanes past the matrix's last row
 * repeat that row (read and computed, never stored). */
struct tile {
	const char *w0;	 /* row 0 */
	size_t off[ROWS]; /* bytes from w0 to each lane's row */
	__m512i voff;	 /* the same as int32, for the scale gather */
	int gather;	 /* the offsets fit in int32 */
	__mmask16 store; /* lanes that are rows of the matrix */
};

INLINE TGT void tile_init(struct tile *t, const char *w0, size_t stride, int64_t rows)
{
	int32_t o[ROWS];
	t->w0 = w0;
	t->gather = stride <= INT32_MAX / ROWS;
	UNROLL
	for (int r = 0; r < ROWS; r++) {
		t->off[r] = (size_t)(r < rows ? r : rows - 1) * stride;
		o[r] = t->gather ? (int32_t)t->off[r] : 0;
	}
	t->voff = _mm512_loadu_si512(o);
	t->store = rows >= ROWS ? (__mmask16)0xffff : (__mmask16)((1u << rows) - 1);
}

/* The 4 bytes at `at` of each of the 16 rows, one row per 32-bit lane. */
INLINE TGT __m512i tile_gather(const struct tile *t, size_t at)
{
	if (t->gather)
		return _mm512_i32gather_epi32(t->voff, t->w0 + at, 1);
	int32_t v[ROWS];
	UNROLL
	for (int r = 0; r < ROWS; r++)
		memcpy(&v[r], t->w0 + t->off[r] + at, sizeof v[r]);
	return _mm512_loadu_si512(v);
}

/* The f16 d of block b of the 16 rows (each block starts with it), widened. */
INLINE TGT __m512 tile_scales(const struct tile *t, int64_t b, size_t block_bytes)
{
	/* the low word of each lane: d */
	return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(tile_gather(t, (size_t)b * block_bytes)));
}

/* 32 bytes at `at` of each of the 16 rows, transposed: k[j] lane r = bytes
 * 4j..4j+3 of row r. Rows r and r+8 share a register, then an 8x8
 * transpose of 32-bit groups runs in both halves at once: two unpack stages
 * within 128-bit lanes, one 2-source permute across them. */
INLINE TGT void tr32(const struct tile *t, size_t at, __m512i k[8])
{
	__m512i z[8], a[8], p[8];
	UNROLL
	for (int i = 0; i < 8; i++) {
		const char *lo = t->w0 + t->off[i] + at, *hi = t->w0 + t->off[i + 8] + at;
		z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)lo)),
					  _mm256_loadu_si256((const __m256i *)hi), 1);
	}
	/* 128-bit lane L of z[i]: row i (L0: groups 0-3, L1: 4-7), row i+8 (L2, L3) */
	UNROLL
	for (int i = 0; i < 8; i += 2) {
		a[i] = _mm512_unpacklo_epi32(z[i], z[i + 1]);
		a[i + 1] = _mm512_unpackhi_epi32(z[i], z[i + 1]);
	}
	/* p[j] (rows 0-3 | 8-11) and p[4+j] (rows 4-7 | 12-15): group j in lanes
	 * L0 and L2, group j+4 in L1 and L3 */
	UNROLL
	for (int h = 0; h < 8; h += 4) {
		p[h + 0] = _mm512_unpacklo_epi64(a[h + 0], a[h + 2]);
		p[h + 1] = _mm512_unpackhi_epi64(a[h + 0], a[h + 2]);
		p[h + 2] = _mm512_unpacklo_epi64(a[h + 1], a[h + 3]);
		p[h + 3] = _mm512_unpackhi_epi64(a[h + 1], a[h + 3]);
	}
	const __m512i even = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
	const __m512i odd = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
	UNROLL
	for (int j = 0; j < 4; j++) {
		k[j] = _mm512_permutex2var_epi64(p[j], even, p[4 + j]);
		k[j + 4] = _mm512_permutex2var_epi64(p[j], odd, p[4 + j]);
	}
}

/* Q8_0 block b of the 16 rows: k[j] lane r = quants 4j..4j+3 of row r. */
INLINE TGT void tr_q8_0(const struct tile *t, int64_t b, __m512i k[8])
{
	tr32(t, (size_t)b * sizeof(struct block_q8_0) + offsetof(struct block_q8_0, qs), k);
}

/* Q4_0 block b of the 16 rows as unsigned nibbles: k[j] lane r = weights
 * 4j..4j+3 of row r (byte i holds weight i low, weight i+16 high). Rows i,
 * i+4, i+8, i+12 share a register; one 4x4 transpose per 128-bit lane. */
INLINE TGT void tr_q4_0(const struct tile *t, int64_t b, __m512i k[8])
{
	__m512i z[4];
#define QS(r) _mm_loadu_si128((const __m128i *)((const struct block_q4_0 *)(t->w0 + t->off[r]))[b].qs)
	UNROLL
	for (int i = 0; i < 4; i++) {
		__m512i v = _mm512_castsi128_si512(QS(i));
		v = _mm512_inserti32x4(v, QS(i + 4), 1);
		v = _mm512_inserti32x4(v, QS(i + 8), 2);
		z[i] = _mm512_inserti32x4(v, QS(i + 12), 3);
	}
#undef QS
	const __m512i a = _mm512_unpacklo_epi32(z[0], z[1]), c = _mm512_unpacklo_epi32(z[2], z[3]);
	const __m512i bb = _mm512_unpackhi_epi32(z[0], z[1]), d = _mm512_unpackhi_epi32(z[2], z[3]);
	const __m512i e[4] = {
		_mm512_unpacklo_epi64(a, c), _mm512_unpackhi_epi64(a, c),
		_mm512_unpacklo_epi64(bb, d), _mm512_unpackhi_epi64(bb, d),
	};
	const __m512i m = _mm512_set1_epi8(0x0f);
	UNROLL
	for (int j = 0; j < 4; j++) {
		k[j] = _mm512_and_si512(e[j], m);
		k[j + 4] = _mm512_and_si512(_mm512_srli_epi16(e[j], 4), m);
	}
}

/* One block of the tile, ready for the integer dots: quants, scales, and
 * (BW Q8_0 only) the weights' signs. */
struct wq {
	__m512i k[8];
	__m512 d;
	__mmask64 s[8];
};

/* Bytes of one repacked block: 8 registers of quants, the scales, the signs. */
#define PACK_BYTES 640
_Static_assert(PACK_BYTES <= QGEMM_PACK_BLOCK_MAX, "scratch sized for the largest packed block");

INLINE TGT void wq_store(char *p, const struct wq *w, int signs)
{
	UNROLL
	for (int j = 0; j < 8; j++)
		_mm512_store_si512(p + 64 * j, w->k[j]);
	_mm512_store_ps(p + 512, w->d);
	if (signs)
		memcpy(p + 576, w->s, sizeof w->s);
}

INLINE TGT void wq_load(struct wq *w, const char *p, int signs)
{
	UNROLL
	for (int j = 0; j < 8; j++)
		w->k[j] = _mm512_load_si512(p + 64 * j);
	w->d = _mm512_load_ps(p + 512);
	if (signs)
		memcpy(w->s, p + 576, sizeof w->s);
}

/* How each kernel turns transposed quants into what its dot wants. */
INLINE TGT void prep_q8_0_vnni(struct wq *w) /* q + 128 as unsigned */
{
	UNROLL
	for (int j = 0; j < 8; j++)
		w->k[j] = _mm512_xor_si512(w->k[j], _mm512_set1_epi8((char)0x80));
}

INLINE TGT void prep_q8_0_bw(struct wq *w) /* |q| and q's signs */
{
	UNROLL
	for (int j = 0; j < 8; j++) {
		w->s[j] = _mm512_movepi8_mask(w->k[j]);
		w->k[j] = _mm512_abs_epi8(w->k[j]);
	}
}

INLINE TGT void prep_none(struct wq *w)
{
	(void)w;
}

static inline int32_t ld32(const int8_t *p)
{
	int32_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

/* Activation row t of a tile: its quants of block b, and the prepared terms. */
INLINE const int8_t *xq(const char *act, size_t astride, int t, int64_t b)
{
	return ((const struct block_q8_0 *)(act + (size_t)t * astride))[b].qs;
}

INLINE int32_t xneg(const char *act, size_t astride, size_t side, int64_t nb, int t, int64_t b)
{
	(void)nb;
	return ((const int32_t *)(act + (size_t)t * astride + side))[qgemm_side_neg(b)];
}

/* s[t] <- the exact integer sum of each lane's row with activation row t's
 * block b, for the NT rows of the tile. The rows' chains are interleaved
 * (group j of every row, then group j+1) so that NT dependent chains are in
 * flight at once; with one or two rows, each row gets two chains. */
INLINE TGT_VNNI void isum_vnni(const struct wq *w, const char *act, size_t astride, size_t side,
			       int64_t nb, int64_t b, __m512i *s, const int NT)
{
	const int8_t *q[QGEMM_NT];
	__m512i s2[QGEMM_NT];
	UNROLL
	for (int t = 0; t < NT; t++) {
		q[t] = xq(act, astride, t, b);
		s[t] = _mm512_set1_epi32(xneg(act, astride, side, nb, t, b));
		s2[t] = _mm512_setzero_si512();
	}
	UNROLL
	for (int j = 0; j < 8; j += 2) {
		UNROLL
		for (int t = 0; t < NT; t++) {
			s[t] = _mm512_dpbusd_epi32(s[t], w->k[j], _mm512_set1_epi32(ld32(q[t] + 4 * j)));
			if (NT <= 2)
				s2[t] = _mm512_dpbusd_epi32(s2[t], w->k[j + 1],
							    _mm512_set1_epi32(ld32(q[t] + 4 * j + 4)));
			else
				s[t] = _mm512_dpbusd_epi32(s[t], w->k[j + 1],
							   _mm512_set1_epi32(ld32(q[t] + 4 * j + 4)));
		}
	}
	if (NT <= 2) {
		UNROLL
		for (int t = 0; t < NT; t++)
			s[t] = _mm512_add_epi32(s[t], s2[t]);
	}
}

/* Q8_0 without VNNI: maddubs(|w|, x with w's sign) in int16 pairs (at most
 * 2 * 127 * 127, no saturation), widened per group: the offset term is not
 * needed. */
INLINE TGT void isum_q8_0_bw(const struct wq *w, const char *act, size_t astride, size_t side,
			     int64_t nb, int64_t b, __m512i *s, const int NT)
{
	const __m512i one = _mm512_set1_epi16(1), zero = _mm512_setzero_si512();
	(void)side;
	(void)nb;
	UNROLL
	for (int t = 0; t < NT; t++)
		s[t] = _mm512_setzero_si512();
	UNROLL
	for (int j = 0; j < 8; j++) {
		UNROLL
		for (int t = 0; t < NT; t++) {
			const __m512i x = _mm512_set1_epi32(ld32(xq(act, astride, t, b) + 4 * j));
			const __m512i sx = _mm512_mask_sub_epi8(x, w->s[j], zero, x);
			s[t] = _mm512_add_epi32(s[t], _mm512_madd_epi16(_mm512_maddubs_epi16(w->k[j], sx), one));
		}
	}
}

/* Q4_0 without VNNI: nibble (0..15) times x; the 8 groups' int16 pair sums
 * add up to at most 8 * 2 * 15 * 127 = 30480, so they stay in int16. */
INLINE TGT void isum_q4_0_bw(const struct wq *w, const char *act, size_t astride, size_t side,
			     int64_t nb, int64_t b, __m512i *s, const int NT)
{
	__m512i p[QGEMM_NT];
	UNROLL
	for (int t = 0; t < NT; t++)
		p[t] = _mm512_setzero_si512();
	UNROLL
	for (int j = 0; j < 8; j++) {
		UNROLL
		for (int t = 0; t < NT; t++)
			p[t] = _mm512_add_epi16(p[t], _mm512_maddubs_epi16(
				w->k[j], _mm512_set1_epi32(ld32(xq(act, astride, t, b) + 4 * j))));
	}
	UNROLL
	for (int t = 0; t < NT; t++)
		s[t] = _mm512_add_epi32(_mm512_set1_epi32(xneg(act, astride, side, nb, t, b)),
					_mm512_madd_epi16(p[t], _mm512_set1_epi16(1)));
}

/* The 16 partial sums of the reference (dot.c: block b's term goes to
 * partial b mod 16), added as it adds them: pairs, then pairs of pairs.
 * tree16 on 16 registers (lane r: row r's partials); lanes_tree16 on the 16
 * lanes of one register (a row kernel's partials). */
INLINE TGT __m512 tree16(__m512 *q)
{
	UNROLL
	for (int w = 8; w >= 1; w /= 2)
		UNROLL
		for (int i = 0; i < w; i++)
			q[i] = _mm512_add_ps(q[2 * i], q[2 * i + 1]);
	return q[0];
}

INLINE TGT float lanes_tree16(__m512 v)
{
	v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xb1));	      /* lane i + lane i^1 */
	v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4e));	      /* i^2 */
	v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xb1)); /* i^4 */
	v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e)); /* i^8 */
	return _mm512_cvtss_f32(v);
}

/* One kernel: TG its target, TR the transpose, BB the weight block's bytes,
 * PREP and ISUM as above, SIGNS whether the packed block keeps signs.
 * _tile runs NT (constant) activation rows against one tile of weights,
 * from the repacked scratch (PACKED) or transposing as it goes. */
#define QGEMM_KERNEL(SC, name, TG, TR, BB, PREP, ISUM, SIGNS)                                      \
	INLINE TG void name##_block(const struct tile *tl, int64_t b, struct wq *w)                \
	{                                                                                          \
		TR(tl, b, w->k);                                                                   \
		w->d = tile_scales(tl, b, BB);                                                     \
		PREP(w);                                                                           \
	}                                                                                          \
                                                                                                   \
	INLINE TG void name##_tile(const struct tile *tl, const char *pk, int64_t nb,              \
				   const char *act, size_t astride, size_t side, float *out,       \
				   int64_t ldo, const int NT, const int PACKED)                    \
	{                                                                                          \
		/* the reference's 16 partial sums per activation row, in L1 */          \
		__m512 part[QGEMM_NT][16] __attribute__((aligned(64)));                            \
		UNROLL for (int t = 0; t < NT; t++)                                                \
			for (int k = 0; k < 16; k++) part[t][k] = _mm512_setzero_ps();             \
		for (int64_t b = 0; b < nb; b++) {                                                 \
			struct wq w;                                                               \
			if (PACKED)                                                                \
				wq_load(&w, pk + (size_t)b * PACK_BYTES, SIGNS);                   \
			else                                                                       \
				name##_block(tl, b, &w);                                           \
			__m512i s[QGEMM_NT];                                                       \
			ISUM(&w, act, astride, side, nb, b, s, NT);                                \
			UNROLL for (int t = 0; t < NT; t++) {                                      \
				const float dx = ((const float *)(act + (size_t)t * astride + side))[qgemm_side_d(b)]; \
				const __m512 sc = _mm512_mul_ps(w.d, _mm512_set1_ps(dx));          \
				__m512 *pt = &part[t][b & 15];                                     \
				*pt = _mm512_add_ps(*pt, _mm512_mul_ps(_mm512_cvtepi32_ps(s[t]), sc)); \
			}                                                                          \
		}                                                                                  \
		UNROLL for (int t = 0; t < NT; t++)                                                \
			_mm512_mask_storeu_ps(out + t * ldo, tl->store, tree16(part[t]));         \
	}                                                                                          \
                                                                                                   \
	SC TG void name(const void *w, size_t w_stride, int64_t nr, const void *act,               \
			size_t act_stride, int64_t nt, int64_t n, float *out, int64_t ldo,         \
			void *scratch)                                                             \
	{                                                                                          \
		const int64_t nb = n / 32;                                                         \
		const size_t side = qgemm_act_side(n);                                             \
		const int packed = qgemm_packs(nt, QGEMM_NT, qgemm_pack_min_rows());             \
		char *pk = scratch;                                                                \
		for (int64_t r0 = 0; r0 < nr; r0 += ROWS) {                                        \
			struct tile tl;                                                            \
			tile_init(&tl, (const char *)w + (size_t)r0 * w_stride, w_stride, nr - r0); \
			if (packed) {                                                              \
				for (int64_t b = 0; b < nb; b++) {                                 \
					struct wq q;                                               \
					name##_block(&tl, b, &q);                                  \
					wq_store(pk + (size_t)b * PACK_BYTES, &q, SIGNS);          \
				}                                                                  \
			}                                                                          \
			for (int64_t t0 = 0; t0 < nt; t0 += QGEMM_NT) {                            \
				const char *a = (const char *)act + (size_t)t0 * act_stride;       \
				float *o = out + t0 * ldo + r0;                                    \
				const int64_t m = nt - t0 < QGEMM_NT ? nt - t0 : QGEMM_NT;         \
				switch (m * 2 + packed) {                                          \
				QGEMM_CASES(name)                                                  \
				}                                                                  \
			}                                                                          \
		}                                                                                  \
	}

#define QGEMM_CASE(name, NT, P)                                                 \
	case NT * 2 + P:                                                        \
		name##_tile(&tl, pk, nb, a, act_stride, side, o, ldo, NT, P);   \
		break;
#define QGEMM_CASES(name)                                                                      \
	QGEMM_CASE(name, 1, 0) QGEMM_CASE(name, 1, 1) QGEMM_CASE(name, 2, 0) QGEMM_CASE(name, 2, 1) \
	QGEMM_CASE(name, 3, 0) QGEMM_CASE(name, 3, 1) QGEMM_CASE(name, 4, 0) QGEMM_CASE(name, 4, 1) \
	QGEMM_CASE(name, 5, 0) QGEMM_CASE(name, 5, 1) QGEMM_CASE(name, 6, 0) QGEMM_CASE(name, 6, 1) \
	QGEMM_CASE(name, 7, 0) QGEMM_CASE(name, 7, 1) QGEMM_CASE(name, 8, 0) QGEMM_CASE(name, 8, 1)
_Static_assert(QGEMM_NT == 8, "QGEMM_CASES lists 1..8 rows");

QGEMM_KERNEL(static, tile_q8_0_vnni, TGT_VNNI, tr_q8_0, sizeof(struct block_q8_0), prep_q8_0_vnni, isum_vnni, 0)
QGEMM_KERNEL(static, tile_q4_0_vnni, TGT_VNNI, tr_q4_0, sizeof(struct block_q4_0), prep_none, isum_vnni, 0)
QGEMM_KERNEL(, qgemm_q8_0_avx512, TGT, tr_q8_0, sizeof(struct block_q8_0), prep_q8_0_bw, isum_q8_0_bw, 1)
QGEMM_KERNEL(, qgemm_q4_0_avx512, TGT, tr_q4_0, sizeof(struct block_q4_0), prep_none, isum_q4_0_bw, 0)

/* ---- few activation rows, VNNI: one weight row at a time ----
 * A matrix streamed from DRAM (a decode) reads faster front to back, row
 * after row, than sixteen rows side by side (measured: 21 against 15-17
 * GB/s a core). So for few activation rows each weight row is read on its
 * own, 16 blocks at a time, two blocks per register (lanes = quants, as a
 * one-row dot). Each block's 8 lanes of integer partial sums are added up
 * exactly, and the float steps are the reference's, block after block:
 * the same bits as the tile kernels, so which of the two runs may depend on
 * the row count. */

/* 16 blocks' lanes of partial sums (d[i]: blocks 2i in lanes 0-7, 2i+1 in
 * 8-15) -> their 16 sums, block order. Integer, exact in any order. */
INLINE TGT __m512i block_sums16(const __m512i d[8])
{
	__m512i a[4], b[2];
	UNROLL
	for (int m = 0; m < 4; m++)
		a[m] = _mm512_add_epi32(_mm512_unpacklo_epi32(d[2 * m], d[2 * m + 1]),
					_mm512_unpackhi_epi32(d[2 * m], d[2 * m + 1]));
	/* 128-bit lane L of b[n]: the 4-lane sums of d[4n..4n+3]'s lane L */
	UNROLL
	for (int n = 0; n < 2; n++) {
		b[n] = _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * n], a[2 * n + 1]),
					_mm512_unpackhi_epi64(a[2 * n], a[2 * n + 1]));
		b[n] = _mm512_add_epi32(b[n], _mm512_shuffle_i32x4(b[n], b[n], _MM_SHUFFLE(2, 3, 0, 1)));
	}
	/* lanes: blocks 0,2,4,6 | 1,3,5,7 | 8,10,12,14 | 9,11,13,15 */
	const __m512i f = _mm512_shuffle_i32x4(b[0], b[1], _MM_SHUFFLE(2, 0, 2, 0));
	return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15), f);
}

/* Two 32-byte quant rows (a in the low half, b in the high) as one register. */
INLINE TGT __m512i load2x32(const int8_t *a, const int8_t *b)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
				  _mm256_loadu_si256((const __m256i *)b), 1);
}

/* The 16 f16 d of 16 consecutive blocks starting at p (stride `bb`), widened. */
INLINE TGT __m512 scales16(const char *p, size_t bb)
{
	uint16_t h[16];
	UNROLL
	for (int i = 0; i < 16; i++)
		memcpy(&h[i], p + (size_t)i * bb, 2);
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
}

/* Q8_0 and Q4_0 blocks b, b+1 of a weight row as unsigned bytes, quant order. */
INLINE TGT __m512i wpair_q8_0(const void *w, int64_t b)
{
	const struct block_q8_0 *q = w;
	return _mm512_xor_si512(load2x32(q[b].qs, q[b + 1].qs), _mm512_set1_epi8((char)0x80));
}

INLINE TGT __m512i wpair_q4_0(const void *w, int64_t b)
{
	const struct block_q4_0 *q = w;
	const __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q[b].qs));
	const __m256i c = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q[b + 1].qs));
	const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(a), c, 1);
	const __m512i shift = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
	return _mm512_and_si512(_mm512_srlv_epi64(v, shift), _mm512_set1_epi8(0x0f));
}

/* One weight row against NT activation rows: out[t * ldo] for t < NT. The
 * blocks past the last multiple of 16 go one at a time, with a 256-bit dot. */
#define QGEMM_ROW(name, WPAIR, BB, WQS1)                                                           \
	INLINE TGT_VNNI void name##_row(const char *w, const char *act, size_t astride, int64_t nb, \
					size_t side, float *out, int64_t ldo, const int NT)        \
	{                                                                                          \
		__m512 acc[QGEMM_NT]; /* lane k: the reference's partial sum k */                 \
		UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();                  \
		int64_t b = 0;                                                                     \
		for (; b + 16 <= nb; b += 16) {                                                    \
			__m512i wq[8];                                                             \
			UNROLL for (int i = 0; i < 8; i++) wq[i] = WPAIR(w, b + 2 * i);            \
			const __m512 dw = scales16(w + (size_t)b * BB, BB);                        \
			UNROLL for (int t = 0; t < NT; t++) {                                      \
				const char *xa = act + (size_t)t * astride;                        \
				const struct block_q8_0 *x = (const struct block_q8_0 *)xa;        \
				__m512i d[8];                                                      \
				UNROLL for (int i = 0; i < 8; i++)                                 \
					d[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[i],  \
						load2x32(x[b + 2 * i].qs, x[b + 2 * i + 1].qs));   \
				const __m512i isum = _mm512_add_epi32(block_sums16(d),             \
					_mm512_loadu_si512((const int32_t *)(xa + side) + qgemm_side_neg(b))); \
				const __m512 dx = _mm512_loadu_ps((const float *)(xa + side) + qgemm_side_d(b)); \
				acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_cvtepi32_ps(isum), \
									     _mm512_mul_ps(dw, dx))); \
			}                                                                          \
		}                                                                                  \
		for (; b < nb; b++) { /* into lane b mod 16 */                                     \
			const __m256i wb = WQS1(w, b);                                             \
			uint16_t h16;                                                              \
			memcpy(&h16, w + (size_t)b * BB, 2);                                       \
			const float dwb = _cvtsh_ss(h16);                                          \
			UNROLL for (int t = 0; t < NT; t++) {                                      \
				const char *xa = act + (size_t)t * astride;                        \
				const struct block_q8_0 *x = (const struct block_q8_0 *)xa;        \
				const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wb,  \
					_mm256_loadu_si256((const __m256i *)x[b].qs));             \
				__m128i h = _mm_add_epi32(_mm256_castsi256_si128(s),               \
							  _mm256_extracti128_si256(s, 1)); \
				h = _mm_add_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(1, 0, 3, 2))); \
				h = _mm_add_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(2, 3, 0, 1))); \
				const int32_t isum = _mm_cvtsi128_si32(h) +                        \
						     ((const int32_t *)(xa + side))[qgemm_side_neg(b)]; \
				const float dx = ((const float *)(xa + side))[qgemm_side_d(b)];    \
				acc[t] = _mm512_mask_add_ps(acc[t], (__mmask16)(1u << (b & 15)), acc[t], \
							    _mm512_set1_ps((float)isum * (dwb * dx))); \
			}                                                                          \
		}                                                                                  \
		UNROLL for (int t = 0; t < NT; t++) out[t * ldo] = lanes_tree16(acc[t]);           \
	}

INLINE TGT __m256i w1_q8_0(const char *w, int64_t b)
{
	const struct block_q8_0 *q = (const void *)w;
	return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)q[b].qs), _mm256_set1_epi8((char)0x80));
}

INLINE TGT __m256i w1_q4_0(const char *w, int64_t b)
{
	const struct block_q4_0 *q = (const void *)w;
	const __m128i v = _mm_loadu_si128((const __m128i *)q[b].qs);
	return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
}

QGEMM_ROW(q8_0, wpair_q8_0, sizeof(struct block_q8_0), w1_q8_0)
QGEMM_ROW(q4_0, wpair_q4_0, sizeof(struct block_q4_0), w1_q4_0)

/* The VNNI kernels: the row kernel for up to qgemm_row_max_rows(type) activation
 * rows, the tile kernel above that (bench/matmul-bench, from DRAM). */
#define QGEMM_VNNI(type, TYPE, TILE)                                                               \
	TGT_VNNI void qgemm_##type##_vnni(const void *w, size_t w_stride, int64_t nr,              \
					  const void *act, size_t act_stride, int64_t nt,          \
					  int64_t n, float *out, int64_t ldo, void *scratch)       \
	{                                                                                          \
		if (nt > qgemm_row_max_rows(ST_##TYPE)) {                                          \
			TILE(w, w_stride, nr, act, act_stride, nt, n, out, ldo, scratch);          \
			return;                                                                    \
		}                                                                                  \
		const size_t side = qgemm_act_side(n);                                             \
		for (int64_t r = 0; r < nr; r++) {                                                 \
			const char *wr = (const char *)w + (size_t)r * w_stride;                   \
			for (int64_t t0 = 0; t0 < nt; t0 += 4) { /* the weight row stays in L1 */  \
				const char *a = (const char *)act + (size_t)t0 * act_stride;       \
				float *o = out + t0 * ldo + r;                                     \
				switch (nt - t0) {                                                 \
				case 1: type##_row(wr, a, act_stride, n / 32, side, o, ldo, 1); break; \
				case 2: type##_row(wr, a, act_stride, n / 32, side, o, ldo, 2); break; \
				case 3: type##_row(wr, a, act_stride, n / 32, side, o, ldo, 3); break; \
				default: type##_row(wr, a, act_stride, n / 32, side, o, ldo, 4); break; \
				}                                                                  \
			}                                                                          \
		}                                                                                  \
	}

QGEMM_VNNI(q8_0, Q8_0, tile_q8_0_vnni)
QGEMM_VNNI(q4_0, Q4_0, tile_q4_0_vnni)

/* ---- super-block types, VNNI: Q4_K and Q6_K (the two of a Q4_K_M file) ----
 * 256 weights per block in sub-blocks of 32 (Q4_K) or 16 (Q6_K) with
 * integer scales. Per pair and super-block the integer sum is the
 * reference's, exactly: each sub-block's dot (vpdpbusd on unsigned quants)
 * times its scale (vpmulld), Q4_K's minimums times the activations' 16-sums
 * and Q6_K's -32 offset times them (vpdpwssd); then the reference's float
 * steps in its order. A super-block of the tile is repacked into a buffer:
 * all of them into the scratch when more than one register tile of
 * activation rows follows, else one at a time into a buffer on the stack. */

#define NTK QGEMM_NT_K

/* The 8 bytes of v's 32-bit lanes, byte e: (v >> 8e) & mask. */
#define BYTE(v, e, mask) _mm512_and_si512(_mm512_srli_epi32((v), 8 * (e)), _mm512_set1_epi32(mask))

/* Q4_K: super-block b of the tile into p (QGEMM_PACK_Q4_K bytes):
 *   [0, 4096)     register 8j+g: sub-block j's nibbles, group g, per lane
 *   [4096, 4608)  sub-block j's scale (int32); [4608, 5120) its minimum,
 *                 twice as int16 (for vpdpwssd with the 16-sums)
 *   [5120, 5184)  d, [5184, 5248) dmin, f32
 * The 6-bit scales and minimums unpacked as st_q4k_scale_min does. */
INLINE TGT void pack_q4_K(const struct tile *t, int64_t b, char *p, const int quants)
{
	const size_t at = (size_t)b * sizeof(struct block_q4_K);
	const __m512i m4 = _mm512_set1_epi8(0x0f);
	__m512i *k = (__m512i *)p, *sc = k + 64, *mm = k + 72;
	UNROLL
	for (int g = 0; g < 4; g++) {
		if (!quants)
			break;
		__m512i v[8];
		tr32(t, at + offsetof(struct block_q4_K, qs) + 32 * (size_t)g, v);
		UNROLL
		for (int i = 0; i < 8; i++) {
			_mm512_store_si512(&k[16 * g + i], _mm512_and_si512(v[i], m4));
			_mm512_store_si512(&k[16 * g + 8 + i], _mm512_and_si512(_mm512_srli_epi16(v[i], 4), m4));
		}
	}
	const __m512i dd = tile_gather(t, at); /* d | dmin << 16 */
	const __m512i q0 = tile_gather(t, at + offsetof(struct block_q4_K, scales));
	const __m512i q1 = tile_gather(t, at + offsetof(struct block_q4_K, scales) + 4);
	const __m512i q2 = tile_gather(t, at + offsetof(struct block_q4_K, scales) + 8);
	__m512i m[8];
#define Q4K_SCALES(e)                                                                           \
	_mm512_store_si512(&sc[e], BYTE(q0, e, 63));                                            \
	m[e] = BYTE(q1, e, 63);                                                                 \
	_mm512_store_si512(&sc[(e) + 4], _mm512_or_si512(BYTE(q2, e, 15),                      \
						     _mm512_srli_epi32(BYTE(q0, e, 192), 6 - 4)));  \
	m[(e) + 4] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(q2, 8 * (e) + 4),       \
						      _mm512_set1_epi32(15)),                   \
				     _mm512_srli_epi32(BYTE(q1, e, 192), 6 - 4));
	Q4K_SCALES(0) Q4K_SCALES(1) Q4K_SCALES(2) Q4K_SCALES(3)
#undef Q4K_SCALES
	UNROLL
	for (int j = 0; j < 8; j++)
		_mm512_store_si512(&mm[j], _mm512_or_si512(m[j], _mm512_slli_epi32(m[j], 16)));
	_mm512_store_ps(p + 5120, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd)));
	_mm512_store_ps(p + 5184, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16))));
}

/* Q6_K: super-block b of the tile into p (QGEMM_PACK_Q6_K bytes):
 *   [0, 4096)     register 8c+g: the 6-bit quants (q+32, 0..63) of chunk c
 *                 (weights 32c..32c+31), group g, per lane
 *   [4096, 5120)  sub-block s's scale (int32), s = 0..15
 *   [5120, 5632)  scales 2i and 2i+1 as an int16 pair (for vpdpwssd)
 *   [5632, 5696)  d, f32
 * Weight 128h + 32k + l: low 4 bits from ql[64h + 32(k%2) + l] (the high
 * nibble for k >= 2), high 2 bits at 2k of qh[32h + l]. */
INLINE TGT void pack_q6_K(const struct tile *t, int64_t b, char *p, const int quants)
{
	const size_t at = (size_t)b * sizeof(struct block_q6_K);
	const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
	__m512i *u = (__m512i *)p, *sc = u + 64, *scp = u + 80;
	UNROLL
	for (int h = 0; h < 2; h++) {
		if (!quants)
			break;
		__m512i lo[2][8], hi[8];
		tr32(t, at + offsetof(struct block_q6_K, ql) + 64 * (size_t)h, lo[0]);
		tr32(t, at + offsetof(struct block_q6_K, ql) + 64 * (size_t)h + 32, lo[1]);
		tr32(t, at + offsetof(struct block_q6_K, qh) + 32 * (size_t)h, hi);
		UNROLL
		for (int k = 0; k < 4; k++) {
			UNROLL
			for (int i = 0; i < 8; i++) {
				const __m512i l4 = _mm512_and_si512(_mm512_srli_epi16(lo[k & 1][i], 4 * (k >> 1)), m4);
				const __m512i h2 = _mm512_and_si512(_mm512_srli_epi16(hi[i], 2 * k), m2);
				_mm512_store_si512(&u[8 * (4 * h + k) + i], _mm512_or_si512(l4, _mm512_slli_epi16(h2, 4)));
			}
		}
	}
	__m512i s16[16];
	UNROLL
	for (int q = 0; q < 4; q++) {
		const __m512i g = tile_gather(t, at + offsetof(struct block_q6_K, scales) + 4 * (size_t)q);
		s16[4 * q + 0] = _mm512_srai_epi32(_mm512_slli_epi32(g, 24), 24);
		s16[4 * q + 1] = _mm512_srai_epi32(_mm512_slli_epi32(g, 16), 24);
		s16[4 * q + 2] = _mm512_srai_epi32(_mm512_slli_epi32(g, 8), 24);
		s16[4 * q + 3] = _mm512_srai_epi32(g, 24);
	}
	UNROLL
	for (int s = 0; s < 16; s++)
		_mm512_store_si512(&sc[s], s16[s]);
	UNROLL
	for (int i = 0; i < 8; i++)
		_mm512_store_si512(&scp[i], _mm512_or_si512(_mm512_and_si512(s16[2 * i], _mm512_set1_epi32(0xffff)),
							    _mm512_slli_epi32(s16[2 * i + 1], 16)));
	/* d is the block's last 2 bytes: gather the 4 ending there */
	const __m512i dg = tile_gather(t, at + offsetof(struct block_q6_K, d) - 2);
	_mm512_store_ps(p + 5632, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dg, 16))));
}

/* Activation row t's Q8_K super-block b. */
INLINE const struct block_q8_K *xk(const char *act, size_t astride, int t, int64_t b)
{
	return (const struct block_q8_K *)(act + (size_t)t * astride) + b;
}

/* s[t] += the dot of `ng` groups of 4 unsigned quants (registers w[0..ng))
 * with activation quants q[t][0..4ng), for NT rows; with one or two rows in
 * two chains (latency). */
INLINE TGT_VNNI void dots_vnni(const __m512i *w, int ng, const int8_t *const *q, __m512i *s, const int NT)
{
	if (NT <= 2) {
		__m512i s2[2] = { _mm512_setzero_si512(), _mm512_setzero_si512() };
		UNROLL
		for (int g = 0; g < ng; g += 2) {
			const __m512i w0 = _mm512_load_si512(&w[g]), w1 = _mm512_load_si512(&w[g + 1]);
			UNROLL
			for (int t = 0; t < NT; t++) {
				s[t] = _mm512_dpbusd_epi32(s[t], w0, _mm512_set1_epi32(ld32(q[t] + 4 * g)));
				s2[t] = _mm512_dpbusd_epi32(s2[t], w1, _mm512_set1_epi32(ld32(q[t] + 4 * g + 4)));
			}
		}
		UNROLL
		for (int t = 0; t < NT; t++)
			s[t] = _mm512_add_epi32(s[t], s2[t]);
		return;
	}
	UNROLL
	for (int g = 0; g < ng; g++) {
		const __m512i wg = _mm512_load_si512(&w[g]);
		UNROLL
		for (int t = 0; t < NT; t++)
			s[t] = _mm512_dpbusd_epi32(s[t], wg, _mm512_set1_epi32(ld32(q[t] + 4 * g)));
	}
}

/* sumi[t] += sc * (the dot of ng groups of unsigned quants w with q[t]). */
INLINE TGT_VNNI void sub_dot(const __m512i *w, int ng, __m512i sc, const int8_t *const *q, __m512i *sumi,
			     const int NT)
{
	__m512i s[NTK];
	UNROLL
	for (int t = 0; t < NT; t++)
		s[t] = _mm512_setzero_si512();
	dots_vnni(w, ng, q, s, NT);
	UNROLL
	for (int t = 0; t < NT; t++)
		sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(s[t], sc));
}

/* s[t] += the vpdpwssd of the 8 int16 pairs p[i] with the 16-sums of row t. */
INLINE TGT_VNNI void bsum_dot(const __m512i *p, const struct block_q8_K *const *x, __m512i *s, const int NT)
{
	UNROLL
	for (int i = 0; i < 8; i++) {
		const __m512i pi = _mm512_load_si512(&p[i]);
		UNROLL
		for (int t = 0; t < NT; t++)
			s[t] = _mm512_dpwssd_epi32(s[t], pi, _mm512_set1_epi32(ld32((const int8_t *)x[t]->bsums + 4 * i)));
	}
}

/* The reference's Q4_K step for NT rows, from a repacked super-block (w
 * NULL: p's quants) or with the quants transposed here from the tile (the
 * scales still from p): sum += (d_x d) * (float)sumi - (d_x dmin) * (float)summ. */
INLINE TGT_VNNI void sb_q4_K_any(const char *p, const struct tile *tl, int64_t b, const char *act,
				 size_t astride, __m512 *acc, const int NT)
{
	const __m512i *k = (const __m512i *)p, *sc = k + 64, *mm = k + 72;
	const struct block_q8_K *x[NTK];
	const int8_t *q[NTK];
	__m512i sumi[NTK], summ[NTK];
	UNROLL
	for (int t = 0; t < NT; t++) {
		x[t] = xk(act, astride, t, b);
		sumi[t] = _mm512_setzero_si512();
		summ[t] = _mm512_setzero_si512();
	}
	UNROLL
	for (int g = 0; g < 4; g++) {
		__m512i lo[8], hi[8];
		if (tl) {
			const __m512i m4 = _mm512_set1_epi8(0x0f);
			tr32(tl, (size_t)b * sizeof(struct block_q4_K) + offsetof(struct block_q4_K, qs) + 32 * (size_t)g, lo);
			UNROLL
			for (int i = 0; i < 8; i++) {
				hi[i] = _mm512_and_si512(_mm512_srli_epi16(lo[i], 4), m4);
				lo[i] = _mm512_and_si512(lo[i], m4);
			}
		}
		UNROLL
		for (int t = 0; t < NT; t++)
			q[t] = x[t]->qs + 64 * g;
		sub_dot(tl ? lo : k + 16 * g, 8, _mm512_load_si512(&sc[2 * g]), q, sumi, NT);
		UNROLL
		for (int t = 0; t < NT; t++)
			q[t] = x[t]->qs + 64 * g + 32;
		sub_dot(tl ? hi : k + 16 * g + 8, 8, _mm512_load_si512(&sc[2 * g + 1]), q, sumi, NT);
	}
	bsum_dot(mm, x, summ, NT);
	const __m512 d = _mm512_load_ps(p + 5120), dmin = _mm512_load_ps(p + 5184);
	UNROLL
	for (int t = 0; t < NT; t++) {
		const __m512 dx = _mm512_set1_ps(x[t]->d);
		const __m512 t1 = _mm512_mul_ps(_mm512_mul_ps(dx, d), _mm512_cvtepi32_ps(sumi[t]));
		const __m512 t2 = _mm512_mul_ps(_mm512_mul_ps(dx, dmin), _mm512_cvtepi32_ps(summ[t]));
		acc[t] = _mm512_add_ps(acc[t], _mm512_sub_ps(t1, t2));
	}
}

/* The reference's Q6_K step: sum += (d_x d) * (float)sumi, with
 * sumi = sum_s sc_s (sum (q+32) x) - 32 sum_s sc_s bsum_s; quants from p or,
 * with tl, transposed here (ql's two halves one after the other, so that
 * only one of them and qh are live at a time). */
INLINE TGT_VNNI void sb_q6_K_any(const char *p, const struct tile *tl, int64_t b, const char *act,
				 size_t astride, __m512 *acc, const int NT)
{
	const __m512i *u = (const __m512i *)p, *sc = u + 64, *scp = u + 80;
	const struct block_q8_K *x[NTK];
	const int8_t *q[NTK];
	__m512i sumi[NTK];
	UNROLL
	for (int t = 0; t < NT; t++) {
		x[t] = xk(act, astride, t, b);
		sumi[t] = _mm512_setzero_si512();
	}
	bsum_dot(scp, x, sumi, NT);
	UNROLL
	for (int t = 0; t < NT; t++)
		sumi[t] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sumi[t], 5));
	const size_t at = (size_t)b * sizeof(struct block_q6_K);
	UNROLL
	for (int h = 0; h < 2; h++) {
		__m512i hi[8];
		if (tl)
			tr32(tl, at + offsetof(struct block_q6_K, qh) + 32 * (size_t)h, hi);
		UNROLL
		for (int half = 0; half < 2; half++) {
			__m512i lo[8];
			if (tl)
				tr32(tl, at + offsetof(struct block_q6_K, ql) + 64 * (size_t)h + 32 * (size_t)half, lo);
			UNROLL
			for (int kk = 0; kk < 2; kk++) {
				const int k = half + 2 * kk, c = 4 * h + k; /* chunk of 32 */
				__m512i uu[8];
				if (tl) {
					UNROLL
					for (int i = 0; i < 8; i++) {
						const __m512i l4 = _mm512_and_si512(_mm512_srli_epi16(lo[i], 4 * kk),
										    _mm512_set1_epi8(0x0f));
						const __m512i h2 = _mm512_and_si512(_mm512_srli_epi16(hi[i], 2 * k),
										    _mm512_set1_epi8(3));
						uu[i] = _mm512_or_si512(l4, _mm512_slli_epi16(h2, 4));
					}
				}
				UNROLL
				for (int sub = 0; sub < 2; sub++) {
					UNROLL
					for (int t = 0; t < NT; t++)
						q[t] = x[t]->qs + 32 * c + 16 * sub;
					sub_dot(tl ? uu + 4 * sub : u + 8 * c + 4 * sub, 4,
						_mm512_load_si512(&sc[2 * c + sub]), q, sumi, NT);
				}
			}
		}
	}
	const __m512 d = _mm512_load_ps(p + 5632);
	UNROLL
	for (int t = 0; t < NT; t++)
		acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(x[t]->d), d),
							     _mm512_cvtepi32_ps(sumi[t])));
}

/* One super-block kernel: PACK a super-block of the tile (PB bytes; only its
 * scales when the quants are transposed on the fly), SB the reference's step
 * for NT activation rows, ROW the one-row dot with the reference's bits for
 * up to qgemm_row_max_rows(type) rows. As QGEMM_KERNEL otherwise. */
#define QGEMM_SUPER(name, TYPE, PACK, PB, SB, ROW)                                                 \
	INLINE TGT_VNNI void name##_tile(const struct tile *tl, const char *pk, int64_t nb,        \
					 const char *act, size_t astride, float *out, int64_t ldo, \
					 const int NT, const int PACKED)                           \
	{                                                                                          \
		__m512 acc[NTK];                                                                   \
		char buf[PB] __attribute__((aligned(64)));                                       \
		UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();                  \
		for (int64_t b = 0; b < nb; b++) {                                                 \
			if (PACKED) {                                                              \
				SB(pk + (size_t)b * PB, NULL, b, act, astride, acc, NT);           \
			} else {                                                                   \
				PACK(tl, b, buf, 0); /* the scales; the quants come from tl */     \
				SB(buf, tl, b, act, astride, acc, NT);                             \
			}                                                                          \
		}                                                                                  \
		UNROLL for (int t = 0; t < NT; t++)                                                \
			_mm512_mask_storeu_ps(out + t * ldo, tl->store, acc[t]);                   \
	}                                                                                          \
                                                                                                   \
	TGT_VNNI void name(const void *w, size_t w_stride, int64_t nr, const void *act,            \
			   size_t act_stride, int64_t nt, int64_t n, float *out, int64_t ldo,      \
			   void *scratch)                                                          \
	{                                                                                          \
		const int64_t nb = n / 256;                                                        \
		const int packed = qgemm_packs(nt, NTK, qgemm_pack_min_rows());                    \
		if (nt <= qgemm_row_max_rows(ST_##TYPE)) { /* front to back, row after row */      \
			for (int64_t r = 0; r < nr; r++)                                           \
				for (int64_t t = 0; t < nt; t++)                                   \
					out[t * ldo + r] = ROW((const char *)w + (size_t)r * w_stride, \
							       (const char *)act + (size_t)t * act_stride, n); \
			return;                                                                    \
		}                                                                                  \
		char *pk = scratch;                                                                \
		for (int64_t r0 = 0; r0 < nr; r0 += ROWS) {                                        \
			struct tile tl;                                                            \
			tile_init(&tl, (const char *)w + (size_t)r0 * w_stride, w_stride, nr - r0); \
			if (packed)                                                                \
				for (int64_t b = 0; b < nb; b++)                                   \
					PACK(&tl, b, pk + (size_t)b * PB, 1);                      \
			for (int64_t t0 = 0; t0 < nt; t0 += NTK) {                                 \
				const char *a = (const char *)act + (size_t)t0 * act_stride;       \
				float *o = out + t0 * ldo + r0;                                    \
				switch ((nt - t0 < NTK ? nt - t0 : NTK) * 2 + packed) {            \
				QGEMM_SUPER_CASE(name, 1, 0) QGEMM_SUPER_CASE(name, 1, 1)          \
				QGEMM_SUPER_CASE(name, 2, 0) QGEMM_SUPER_CASE(name, 2, 1)          \
				QGEMM_SUPER_CASE(name, 3, 0) QGEMM_SUPER_CASE(name, 3, 1)          \
				QGEMM_SUPER_CASE(name, 4, 0) QGEMM_SUPER_CASE(name, 4, 1)          \
				}                                                                  \
			}                                                                          \
		}                                                                                  \
	}

#define QGEMM_SUPER_CASE(name, NT, P)                                        \
	case NT * 2 + P:                                                     \
		name##_tile(&tl, pk, nb, a, act_stride, o, ldo, NT, P);      \
		break;
_Static_assert(QGEMM_NT_K == 4, "QGEMM_SUPER lists 1..4 rows");

QGEMM_SUPER(qgemm_q4_K_vnni, Q4_K, pack_q4_K, QGEMM_PACK_Q4_K, sb_q4_K_any, dot_q4_K_exact)
QGEMM_SUPER(qgemm_q6_K_vnni, Q6_K, pack_q6_K, QGEMM_PACK_Q6_K, sb_q6_K_any, dot_q6_K_exact)

#endif /* __x86_64__ */
