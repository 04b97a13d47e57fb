/* json.c: JSON output for strata --json (see json.h). Driven by protobuf-c's
 * descriptors, so a field added to strata.proto shows up without code here. */
#include "client/json.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "proto/frame.h"

void json_put_string(FILE *f, const char *str, size_t len)
{
	const uint8_t *s = (const uint8_t *)str;
	size_t i = 0;

	fputc('"', f);
	while (i < len) {
		uint8_t c = s[i];

		if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
			fputc(c, f);
			i++;
			continue;
		}
		switch (c) {
		case '"': fputs("\\\"", f); i++; continue;
		case '\\': fputs("\\\\", f); i++; continue;
		case '\b': fputs("\\b", f); i++; continue;
		case '\f': fputs("\\f", f); i++; continue;
		case '\n': fputs("\\n", f); i++; continue;
		case '\r': fputs("\\r", f); i++; continue;
		case '\t': fputs("\\t", f); i++; continue;
		default: break;
		}
		if (c < 0x80) { /* other controls and DEL */
			fprintf(f, "\\u%04x", c);
			i++;
			continue;
		}
		uint32_t cp;
		size_t k;
		if (utf8_decode((const char *)s + i, len - i, &cp, &k) != UTF8_OK) {
			/* One U+FFFD per bad byte: simple, and never swallows a
			 * good character that follows. */
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		/* U+2028 and U+2029 are valid JSON but end lines in JavaScript. */
		if (k == 3 && s[i] == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9))
			fprintf(f, "\\u%04x", 0x2028 + (s[i + 2] - 0xA8));
		else
			fwrite(s + i, 1, k, f);
		i += k;
	}
	fputc('"', f);
}

/* Shortest %.*g of v (from `lo` digits up) that reads back as `v`, with
 * `as_float` comparing in single precision. */
static void put_real(FILE *f, double v, int lo, int hi, bool as_float)
{
	char buf[40];

	if (!isfinite(v)) {
		fputs("null", f);
		return;
	}
	for (int p = lo; p <= hi; p++) {
		double back;
		snprintf(buf, sizeof buf, "%.*g", p, v);
		back = strtod(buf, NULL);
		if (as_float ? (float)back == (float)v : back == v)
			break;
	}
	fputs(buf, f);
}

void json_put_double(FILE *f, double v)
{
	put_real(f, v, 15, 17, false);
}

const char *json_enum_name(const ProtobufCEnumDescriptor *d, int value)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
	const ProtobufCEnumValue *zero = protobuf_c_enum_descriptor_get_value(d, 0);
	static const char unspec[] = "UNSPECIFIED";
	size_t prefix = 0;

	if (!v)
		return NULL;
	/* Every strata.v1 enum starts with <PREFIX>_UNSPECIFIED = 0: that
	 * value tells how much of each name is the enum's prefix. */
	if (zero) {
		size_t n = strlen(zero->name), u = sizeof unspec - 1;
		if (n >= u && strcmp(zero->name + n - u, unspec) == 0)
			prefix = n - u;
	}
	if (strncmp(v->name, zero ? zero->name : "", prefix) != 0 || strlen(v->name) <= prefix)
		return v->name;
	return v->name + prefix;
}

static void put_enum(FILE *f, const ProtobufCEnumDescriptor *d, int value)
{
	const char *name = json_enum_name(d, value);

	if (!name) { /* a value from a newer protocol */
		fprintf(f, "%d", value);
		return;
	}
	fputc('"', f);
	for (; *name; name++)
		fputc(tolower((unsigned char)*name), f);
	fputc('"', f);
}

/* One value of field fd stored at p (the field itself, or one array element). */
static void put_value(FILE *f, const ProtobufCFieldDescriptor *fd, const void *p)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32: {
		int32_t v;
		memcpy(&v, p, sizeof v);
		fprintf(f, "%" PRId32, v);
		break;
	}
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32: {
		uint32_t v;
		memcpy(&v, p, sizeof v);
		fprintf(f, "%" PRIu32, v);
		break;
	}
	/* 64-bit integers as decimal strings, as protobuf's JSON mapping writes
	 * them: JSON numbers are doubles to most readers (jq, JavaScript), which
	 * round anything above 2^53, such as a random seed. */
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64: {
		int64_t v;
		memcpy(&v, p, sizeof v);
		fprintf(f, "\"%" PRId64 "\"", v);
		break;
	}
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: {
		uint64_t v;
		memcpy(&v, p, sizeof v);
		fprintf(f, "\"%" PRIu64 "\"", v);
		break;
	}
	case PROTOBUF_C_TYPE_FLOAT: {
		float v;
		memcpy(&v, p, sizeof v);
		put_real(f, v, 6, 9, true);
		break;
	}
	case PROTOBUF_C_TYPE_DOUBLE: {
		double v;
		memcpy(&v, p, sizeof v);
		json_put_double(f, v);
		break;
	}
	case PROTOBUF_C_TYPE_BOOL: {
		protobuf_c_boolean v;
		memcpy(&v, p, sizeof v);
		fputs(v ? "true" : "false", f);
		break;
	}
	case PROTOBUF_C_TYPE_ENUM: {
		int v;
		memcpy(&v, p, sizeof v);
		put_enum(f, fd->descriptor, v);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s;
		memcpy(&s, p, sizeof s);
		if (s)
			json_put_string(f, s, strlen(s));
		else
			fputs("null", f);
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData b;
		memcpy(&b, p, sizeof b);
		json_put_string(f, (const char *)b.data, b.len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m;
		memcpy(&m, p, sizeof m);
		if (m)
			json_put_message(f, m);
		else
			fputs("null", f);
		break;
	}
	}
}

static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 4;
	}
}

void json_put_fields(FILE *f, const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	const char *base = (const char *)msg;
	bool first = true;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		const char *p = base + fd->offset;

		if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t c;
			memcpy(&c, base + fd->quantifier_offset, sizeof c);
			if (c != fd->id)
				continue;
		}
		if (fd->type == PROTOBUF_C_TYPE_MESSAGE && fd->label != PROTOBUF_C_LABEL_REPEATED) {
			const void *m;
			memcpy(&m, p, sizeof m);
			if (!m)
				continue;
		}
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			/* an empty list is left out, as protobuf's JSON mapping does */
			size_t n;
			memcpy(&n, base + fd->quantifier_offset, sizeof n);
			if (n == 0)
				continue;
		}
		if (!first)
			fputc(',', f);
		first = false;
		fprintf(f, "\"%s\":", fd->name);
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n;
			const char *arr;
			memcpy(&n, base + fd->quantifier_offset, sizeof n);
			memcpy(&arr, p, sizeof arr);
			fputc('[', f);
			for (size_t j = 0; j < n; j++) {
				if (j)
					fputc(',', f);
				put_value(f, fd, arr + j * elem_size(fd->type));
			}
			fputc(']', f);
		} else {
			put_value(f, fd, p);
		}
	}
}

void json_put_message(FILE *f, const ProtobufCMessage *msg)
{
	fputc('{', f);
	json_put_fields(f, msg);
	fputc('}', f);
}
