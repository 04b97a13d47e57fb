/* types.c: the type table and the scalar float conversions (see types.h). */
#include "kernels/types.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>

/* The whole ggml type table (ggml-common.h, build 4748): every id a GGUF
 * file may hold, with ggml's name and block size, so the reader sizes any
 * tensor and a message can name its type. `supported` marks the weight
 * types with kernels here: a scalar reference, the SIMD versions and
 * conversions (quant_ref.h). Q8_1 and Q8_K are activation formats: converted
 * for the dot products, never weights. */
static const struct st_type_info type_table[ST_TYPE_COUNT] = {
	[ST_F32] = { "f32", 1, 4, true },
	[ST_F16] = { "f16", 1, 2, true },
	[ST_Q4_0] = { "q4_0", 32, 18, true },
	[ST_Q4_1] = { "q4_1", 32, 20, true },
	[ST_Q5_0] = { "q5_0", 32, 22, true },
	[ST_Q5_1] = { "q5_1", 32, 24, true },
	[ST_Q8_0] = { "q8_0", 32, 34, true },
	[ST_Q8_1] = { "q8_1", 32, 36, false },
	[ST_Q2_K] = { "q2_K", 256, 84, true },
	[ST_Q3_K] = { "q3_K", 256, 110, true },
	[ST_Q4_K] = { "q4_K", 256, 144, true },
	[ST_Q5_K] = { "q5_K", 256, 176, true },
	[ST_Q6_K] = { "q6_K", 256, 210, true },
	[ST_Q8_K] = { "q8_K", 256, 292, false },
	[ST_IQ2_XXS] = { "iq2_xxs", 256, 66, false },
	[ST_IQ2_XS] = { "iq2_xs", 256, 74, false },
	[ST_IQ3_XXS] = { "iq3_xxs", 256, 98, false },
	[ST_IQ1_S] = { "iq1_s", 256, 50, false },
	[ST_IQ4_NL] = { "iq4_nl", 32, 18, true },
	[ST_IQ3_S] = { "iq3_s", 256, 110, false },
	[ST_IQ2_S] = { "iq2_s", 256, 82, false },
	[ST_IQ4_XS] = { "iq4_xs", 256, 136, true },
	[ST_I8] = { "i8", 1, 1, false },
	[ST_I16] = { "i16", 1, 2, false },
	[ST_I32] = { "i32", 1, 4, false },
	[ST_I64] = { "i64", 1, 8, false },
	[ST_F64] = { "f64", 1, 8, false },
	[ST_IQ1_M] = { "iq1_m", 256, 56, false },
	[ST_BF16] = { "bf16", 1, 2, true },
	[ST_TQ1_0] = { "tq1_0", 256, 54, false },
	[ST_TQ2_0] = { "tq2_0", 256, 66, false },
};

const int8_t st_iq4nl_values[16] = { -127, -104, -83, -65, -49, -35, -22, -10,
				     1,	   13,	 25,  38,  53,	69,  89,  113 };

const struct st_type_info *st_type_info(uint32_t type)
{
	if (type >= ST_TYPE_COUNT || type_table[type].name == NULL)
		return NULL;
	return &type_table[type];
}

const char *st_type_name(uint32_t type)
{
	const struct st_type_info *ti = st_type_info(type);
	return ti ? ti->name : "unknown";
}

int st_type_parse(const char *name, enum st_type *out)
{
	for (uint32_t t = 0; t < ST_TYPE_COUNT; t++) {
		if (type_table[t].name && strcasecmp(type_table[t].name, name) == 0) {
			*out = (enum st_type)t;
			return 0;
		}
	}
	return -EINVAL;
}

size_t st_row_bytes(uint32_t type, uint64_t n)
{
	const struct st_type_info *ti = st_type_info(type);
	if (!ti || n % ti->block_elems != 0)
		return 0;
	return (size_t)(n / ti->block_elems) * ti->block_bytes;
}

static char supported_list[256];

static void build_supported_list(void)
{
	size_t o = 0;
	for (uint32_t t = 0; t < ST_TYPE_COUNT; t++)
		if (type_table[t].name && type_table[t].supported)
			o += (size_t)snprintf(supported_list + o, sizeof supported_list - o, "%s%s",
					      o ? ", " : "", type_table[t].name);
}

const char *st_supported_list(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, build_supported_list);
	return supported_list;
}

float st_fp16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t mant = h & 0x3ff;
	uint32_t u;

	if (exp == 0x1f) { /* inf / nan */
		u = sign | 0x7f800000u | (mant << 13);
	} else if (exp == 0) {
		if (mant == 0) {
			u = sign;
		} else { /* subnormal: renormalize */
			int e = -1;
			do {
				e++;
				mant <<= 1;
			} while ((mant & 0x400) == 0);
			mant &= 0x3ff;
			u = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
		}
	} else {
		u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
	}
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

uint16_t st_f32_to_fp16(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	uint32_t sign = (u >> 16) & 0x8000;
	uint32_t abs = u & 0x7fffffffu;

	if (abs > 0x7f800000u) /* nan: keep it a quiet nan */
		return (uint16_t)(sign | 0x7e00);
	if (abs >= 0x477ff000u) /* rounds to >= 65520: inf */
		return (uint16_t)(sign | 0x7c00);
	if (abs < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
		if (abs < 0x33000000u) /* < 2^-25 rounds to zero */
			return (uint16_t)sign;
		uint32_t e = abs >> 23;
		uint32_t m = (abs & 0x7fffff) | 0x800000;
		uint32_t shift = 126 - e; /* 14..24 */
		uint32_t half = m >> shift;
		uint32_t rem = m & ((1u << shift) - 1);
		uint32_t mid = 1u << (shift - 1);
		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	/* normal: rebias and round to nearest even on the 13 dropped bits */
	uint32_t h = ((abs - 0x38000000u) >> 13);
	uint32_t rem = abs & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;
	return (uint16_t)(sign | h);
}

uint16_t st_f32_to_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	if ((u & 0x7fffffffu) > 0x7f800000u) /* nan: force quiet */
		return (uint16_t)((u >> 16) | 64);
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}
