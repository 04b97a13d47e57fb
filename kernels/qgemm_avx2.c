/* qgemm_avx2.c: the multi-row kernels for AVX2 (+FMA+F16C): the layout of
 * qgemm_avx512.c with 8 weight rows per tile, one per 32-bit lane of a
 * 256-bit register, and maddubs + madd for the integer dots (no VNNI).
 * Q8_0 multiplies |w| by x with w's sign moved onto x (vpsignb); Q4_0 the
 * nibbles (q+8) by x, less the prepared 8 * sum of x. Results: the scalar
 * reference's, bit for bit (see qgemm.h). Not here: the layout contract
 * (qgemm_impl.h), threads (matmul.c). */
#include "kernels/qgemm.h"
#include "kernels/qgemm_impl.h"
#include "kernels/types.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define TGT __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

#define ROWS 8 /* weight rows per tile: one per 32-bit lane */
#define NT_MAX 4 /* activation rows per register tile (16 registers); kernels_avx2.qgemm_nt */

struct tile {
	const char *w0;	   /* row 0 */
	size_t off[ROWS];  /* bytes from w0 to each lane's row (the last row repeated) */
	int rows;	   /* lanes that are rows of the matrix */
};

INLINE TGT void tile_init(struct tile *t, const char *w0, size_t stride, int64_t rows)
{
	t->w0 = w0;
	t->rows = rows < ROWS ? (int)rows : ROWS;
	UNROLL
	for (int r = 0; r < ROWS; r++)
		t->off[r] = (size_t)(r < rows ? r : rows - 1) * stride;
}

INLINE TGT __m256 tile_scales(const struct tile *t, int64_t b, size_t block_bytes)
{
	uint16_t v[ROWS];
	UNROLL
	for (int r = 0; r < ROWS; r++)
		memcpy(&v[r], t->w0 + t->off[r] + (size_t)b * block_bytes, 2);
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)v));
}

/* Q8_0 block b of the 8 rows: k[j] lane r = quants 4j..4j+3 of row r (an
 * 8x8 transpose of 32-bit groups). */
INLINE TGT void tr_q8_0(const struct tile *t, int64_t b, __m256i k[8])
{
	__m256i z[8], a[8], p[8];
	UNROLL
	for (int i = 0; i < 8; i++)
		z[i] = _mm256_loadu_si256(
			(const __m256i *)((const struct block_q8_0 *)(t->w0 + t->off[i]))[b].qs);
	UNROLL
	for (int i = 0; i < 8; i += 2) {
		a[i] = _mm256_unpacklo_epi32(z[i], z[i + 1]);
		a[i + 1] = _mm256_unpackhi_epi32(z[i], z[i + 1]);
	}
	UNROLL
	for (int h = 0; h < 8; h += 4) {
		p[h + 0] = _mm256_unpacklo_epi64(a[h + 0], a[h + 2]);
		p[h + 1] = _mm256_unpackhi_epi64(a[h + 0], a[h + 2]);
		p[h + 2] = _mm256_unpacklo_epi64(a[h + 1], a[h + 3]);
		p[h + 3] = _mm256_unpackhi_epi64(a[h + 1], a[h + 3]);
	}
	UNROLL
	for (int j = 0; j < 4; j++) {
		k[j] = _mm256_permute2x128_si256(p[j], p[4 + j], 0x20);
		k[j + 4] = _mm256_permute2x128_si256(p[j], p[4 + j], 0x31);
	}
}

/* Q4_0 block b of the 8 rows as unsigned nibbles, k[j] lane r = weights
 * 4j..4j+3 of row r. Rows i and i+4 share a register. */
INLINE TGT void tr_q4_0(const struct tile *t, int64_t b, __m256i k[8])
{
	__m256i z[4];
#define QS(r) _mm_loadu_si128((const __m128i *)((const struct block_q4_0 *)(t->w0 + t->off[r]))[b].qs)
	UNROLL
	for (int i = 0; i < 4; i++)
		z[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(QS(i)), QS(i + 4), 1);
#undef QS
	const __m256i a = _mm256_unpacklo_epi32(z[0], z[1]), c = _mm256_unpacklo_epi32(z[2], z[3]);
	const __m256i bb = _mm256_unpackhi_epi32(z[0], z[1]), d = _mm256_unpackhi_epi32(z[2], z[3]);
	const __m256i e[4] = {
		_mm256_unpacklo_epi64(a, c), _mm256_unpackhi_epi64(a, c),
		_mm256_unpacklo_epi64(bb, d), _mm256_unpackhi_epi64(bb, d),
	};
	const __m256i m = _mm256_set1_epi8(0x0f);
	UNROLL
	for (int j = 0; j < 4; j++) {
		k[j] = _mm256_and_si256(e[j], m);
		k[j + 4] = _mm256_and_si256(_mm256_srli_epi16(e[j], 4), m);
	}
}

/* A block of the tile: quants (Q8_0: |q|), the signed quants (Q8_0 only:
 * vpsignb takes the signs from them), the scales. */
struct wq {
	__m256i k[8];
	__m256i s[8];
	__m256 d;
};

#define PACK_BYTES 544 /* 8 + 8 registers of 32 bytes, the scales */
_Static_assert(PACK_BYTES <= QGEMM_PACK_BLOCK_MAX, "scratch sized for the largest packed block");

INLINE TGT void wq_store(char *p, const struct wq *w, int signs)
{
	UNROLL
	for (int j = 0; j < 8; j++)
		_mm256_store_si256((__m256i *)(p + 32 * j), w->k[j]);
	if (signs)
		UNROLL
		for (int j = 0; j < 8; j++)
			_mm256_store_si256((__m256i *)(p + 256 + 32 * j), w->s[j]);
	_mm256_store_ps((float *)(p + 512), w->d);
}

INLINE TGT void wq_load(struct wq *w, const char *p, int signs)
{
	UNROLL
	for (int j = 0; j < 8; j++)
		w->k[j] = _mm256_load_si256((const __m256i *)(p + 32 * j));
	if (signs)
		UNROLL
		for (int j = 0; j < 8; j++)
			w->s[j] = _mm256_load_si256((const __m256i *)(p + 256 + 32 * j));
	w->d = _mm256_load_ps((const float *)(p + 512));
}

INLINE TGT void prep_q8_0(struct wq *w)
{
	UNROLL
	for (int j = 0; j < 8; j++) {
		w->s[j] = w->k[j];
		w->k[j] = _mm256_sign_epi8(w->k[j], w->k[j]);
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

/* Exact integer sums per lane (see qgemm_avx512.c for the bounds). */
INLINE TGT __m256i isum_q8_0(const struct wq *w, const int8_t *q, int32_t neg)
{
	const __m256i one = _mm256_set1_epi16(1);
	__m256i s = _mm256_setzero_si256();
	(void)neg;
	UNROLL
	for (int j = 0; j < 8; j++) {
		const __m256i sx = _mm256_sign_epi8(_mm256_set1_epi32(ld32(q + 4 * j)), w->s[j]);
		s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(w->k[j], sx), one));
	}
	return s;
}

INLINE TGT __m256i isum_q4_0(const struct wq *w, const int8_t *q, int32_t neg)
{
	__m256i p = _mm256_setzero_si256();
	UNROLL
	for (int j = 0; j < 8; j++)
		p = _mm256_add_epi16(p, _mm256_maddubs_epi16(w->k[j], _mm256_set1_epi32(ld32(q + 4 * j))));
	return _mm256_add_epi32(_mm256_set1_epi32(neg), _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* The 8 lanes' results of activation row t, the lanes past the matrix dropped. */
INLINE TGT void store_rows(float *out, __m256 v, int rows)
{
	if (rows == ROWS) {
		_mm256_storeu_ps(out, v);
		return;
	}
	float tmp[ROWS];
	_mm256_storeu_ps(tmp, v);
	memcpy(out, tmp, (size_t)rows * sizeof *out);
}

/* The reference's 16 partial sums (dot.c), added as it adds them. */
INLINE TGT __m256 tree16(__m256 *q)
{
	UNROLL
	for (int w = 8; w >= 1; w /= 2)
		UNROLL
		for (int i = 0; i < w; i++)
			q[i] = _mm256_add_ps(q[2 * i], q[2 * i + 1]);
	return q[0];
}

#define QGEMM_KERNEL(name, TR, BB, PREP, ISUM, SIGNS)                                              \
	INLINE TGT void name##_block(const struct tile *tl, int64_t b, struct wq *w)               \
	{                                                                                          \
		TR(tl, b, w->k);                                                                   \
		w->d = tile_scales(tl, b, BB);                                                     \
		PREP(w);                                                                           \
	}                                                                                          \
                                                                                                   \
	INLINE TGT void name##_tile(const struct tile *tl, const char *pk, int64_t nb,             \
				    const char *act, size_t astride, size_t side, float *out,      \
				    int64_t ldo, const int NT, const int PACKED)                   \
	{                                                                                          \
		/* the reference's 16 partial sums per activation row, in L1 */          \
		__m256 part[NT_MAX][16] __attribute__((aligned(32)));                              \
		UNROLL for (int t = 0; t < NT; t++)                                                \
			for (int k = 0; k < 16; k++) part[t][k] = _mm256_setzero_ps();             \
		for (int64_t b = 0; b < nb; b++) {                                                 \
			struct wq w;                                                               \
			if (PACKED)                                                                \
				wq_load(&w, pk + (size_t)b * PACK_BYTES, SIGNS);                   \
			else                                                                       \
				name##_block(tl, b, &w);                                           \
			UNROLL for (int t = 0; t < NT; t++) {                                      \
				const char *xa = act + (size_t)t * astride;                        \
				const float dx = ((const float *)(xa + side))[qgemm_side_d(b)];    \
				const int32_t neg = ((const int32_t *)(xa + side))[qgemm_side_neg(b)]; \
				const __m256i s = ISUM(&w, ((const struct block_q8_0 *)xa)[b].qs,  \
						       neg);                                       \
				const __m256 sc = _mm256_mul_ps(w.d, _mm256_set1_ps(dx));          \
				__m256 *pt = &part[t][b & 15];                                     \
				*pt = _mm256_add_ps(*pt, _mm256_mul_ps(_mm256_cvtepi32_ps(s), sc)); \
			}                                                                          \
		}                                                                                  \
		UNROLL for (int t = 0; t < NT; t++) store_rows(out + t * ldo, tree16(part[t]), tl->rows); \
	}                                                                                          \
                                                                                                   \
	TGT void name(const void *w, size_t w_stride, int64_t nr, const void *act,                 \
		      size_t act_stride, int64_t nt, int64_t n, float *out, int64_t ldo,           \
		      void *scratch)                                                               \
	{                                                                                          \
		const int64_t nb = n / 32;                                                         \
		const size_t side = qgemm_act_side(n);                                             \
		const int packed = qgemm_packs(nt, NT_MAX, qgemm_pack_min_rows());               \
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
			for (int64_t t0 = 0; t0 < nt; t0 += NT_MAX) {                              \
				const char *a = (const char *)act + (size_t)t0 * act_stride;       \
				float *o = out + t0 * ldo + r0;                                    \
				const int64_t m = nt - t0 < NT_MAX ? nt - t0 : NT_MAX;             \
				switch (m * 2 + packed) {                                          \
				QGEMM_CASE(name, 1, 0) QGEMM_CASE(name, 1, 1)                      \
				QGEMM_CASE(name, 2, 0) QGEMM_CASE(name, 2, 1)                      \
				QGEMM_CASE(name, 3, 0) QGEMM_CASE(name, 3, 1)                      \
				QGEMM_CASE(name, 4, 0) QGEMM_CASE(name, 4, 1)                      \
				}                                                                  \
			}                                                                          \
		}                                                                                  \
	}

#define QGEMM_CASE(name, NT, P)                                                 \
	case NT * 2 + P:                                                        \
		name##_tile(&tl, pk, nb, a, act_stride, side, o, ldo, NT, P);   \
		break;

QGEMM_KERNEL(qgemm_q8_0_avx2, tr_q8_0, sizeof(struct block_q8_0), prep_q8_0, isum_q8_0, 1)
QGEMM_KERNEL(qgemm_q4_0_avx2, tr_q4_0, sizeof(struct block_q4_0), prep_none, isum_q4_0, 0)

#endif /* __x86_64__ */
