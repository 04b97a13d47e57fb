/* fuzz-frame.c: fuzz target for what stratad does with a client's untrusted
 * bytes: the incremental frame reader (proto/frame.c) fed in random splits,
 * then each frame unpacked as a strata.v1 Request and UTF-8 checked.
 *
 * Input: one control byte, then the byte stream. The control byte picks the
 * reader's cap (16 B .. 2 KiB, so oversized prefixes are common) and the
 * largest split; the splits themselves come from a PRNG seeded by the input.
 * Checks, aborting on failure: the reader yields exactly the frames (and the
 * same final status: EOF, truncated, too large) as a plain whole-buffer
 * parser; every accepted Request packs back to bytes that unpack to the same
 * message and pack identically again; and the daemon's wire check
 * (frame_check_wire) agrees with an oracle written here on its own: a small
 * protobuf decoder that collects the bytes of every string field at any depth
 * and counts repeats of singular sub-messages. Whenever the daemon accepts a
 * frame, every such string is valid UTF-8 without NUL and no singular
 * sub-message repeats; whenever it refuses one that unpacks, the oracle sees
 * why. (The old oracle used the unpacked C strings, which end at a NUL, so it
 * could not see what hides behind one.) */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "fuzz/fuzz.h"
#include "proto/frame.h"

static volatile size_t sink; /* keeps the reads of unpacked fields */

/* The reference: the next frame of data[*off..size) parsed from the whole
 * buffer. FRAME_READY with body/len, FRAME_EOF, -EPROTO or -EMSGSIZE. */
static int ref_next(const uint8_t *data, size_t size, size_t *off, size_t cap, const uint8_t **body, size_t *len)
{
	size_t left = size - *off;
	uint32_t n;

	if (left == 0)
		return FRAME_EOF;
	if (left < FRAME_HEADER_BYTES)
		return -EPROTO;
	n = (uint32_t)data[*off] << 24 | (uint32_t)data[*off + 1] << 16 | (uint32_t)data[*off + 2] << 8 |
	    data[*off + 3];
	if (n > cap)
		return -EMSGSIZE;
	if (left - FRAME_HEADER_BYTES < n)
		return -EPROTO;
	*body = data + *off + FRAME_HEADER_BYTES;
	*len = n;
	*off += FRAME_HEADER_BYTES + n;
	return FRAME_READY;
}

static void touch(const char *s)
{
	sink += strlen(s);
}

/* Whether m or any message inside it kept unknown fields. */
static bool has_unknown(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	if (m->n_unknown_fields)
		return true;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const ProtobufCMessage *sub;
		uint32_t c;

		/* Request's messages are all singular, most in oneofs. */
		if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			memcpy(&c, base + f->quantifier_offset, sizeof c);
			if (c != f->id)
				continue;
		}
		memcpy(&sub, base + f->offset, sizeof sub);
		if (sub && has_unknown(sub))
			return true;
	}
	return false;
}

/* ---- the oracle: an independent reading of the wire ---- */

struct oracle {
	size_t n_strings, n_bad_strings; /* string fields seen; those with NUL or bad UTF-8 */
	size_t n_repeats;                /* singular sub-messages seen again in one message */
	bool broken;                     /* bytes this decoder cannot read as protobuf */
};

/* Base-128 varint at buf[*at..size); false when it runs off the end or past 10 bytes. */
static bool o_varint(const uint8_t *buf, size_t size, size_t *at, uint64_t *out)
{
	uint64_t v = 0;
	for (int i = 0; i < 10; i++) {
		if (*at >= size)
			return false;
		uint8_t b = buf[(*at)++];
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (b < 0x80) {
			*out = v;
			return true;
		}
	}
	return false;
}

/* The field of d with number `num`, by a plain scan (no binary search). */
static const ProtobufCFieldDescriptor *o_field(const ProtobufCMessageDescriptor *d, uint64_t num)
{
	for (unsigned i = 0; i < d->n_fields; i++)
		if (d->fields[i].id == num)
			return &d->fields[i];
	return NULL;
}

static void o_message(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t size, int depth,
		      struct oracle *o)
{
	uint32_t count[64] = { 0 }; /* occurrences of each field, by index (strata: < 64 fields) */
	size_t at = 0;

	if (depth > 40) {
		o->broken = true;
		return;
	}
	while (at < size && !o->broken) {
		uint64_t key, skip;
		if (!o_varint(buf, size, &at, &key)) {
			o->broken = true;
			return;
		}
		unsigned type = (unsigned)(key & 7);
		if (type == 0) {
			if (!o_varint(buf, size, &at, &skip))
				o->broken = true;
			continue;
		}
		if (type == 1 || type == 5) {
			size_t n = type == 1 ? 8 : 4;
			if (size - at < n)
				o->broken = true;
			else
				at += n;
			continue;
		}
		if (type != 2 || !o_varint(buf, size, &at, &skip) || skip > size - at) {
			o->broken = true;
			return;
		}
		const uint8_t *val = buf + at;
		size_t len = (size_t)skip;
		at += len;
		const ProtobufCFieldDescriptor *f = o_field(d, key >> 3);
		if (!f)
			continue;
		if (f->type == PROTOBUF_C_TYPE_STRING) {
			o->n_strings++;
			if (memchr(val, 0, len) || !utf8_valid((const char *)val, len))
				o->n_bad_strings++;
		} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			size_t idx = (size_t)(f - d->fields);
			CHECK(idx < 64);
			if (f->label != PROTOBUF_C_LABEL_REPEATED && count[idx]++ > 0)
				o->n_repeats++;
			o_message(f->descriptor, val, len, depth + 1, o);
		}
	}
}

/* The wire check of the daemon against the oracle, for a frame that unpacks. */
static void check_wire(const uint8_t *body, size_t len)
{
	const ProtobufCMessageDescriptor *d = &strata__v1__request__descriptor;
	const char *field = NULL, *problem = NULL;
	struct oracle o = { 0 };
	int rc = frame_check_wire(d, body, len, &field, &problem);

	o_message(d, body, len, 0, &o);
	if (rc == 0) {
		/* accepted: what the daemon will read as text is clean */
		CHECK(!o.broken);
		CHECK(o.n_bad_strings == 0);
		CHECK(o.n_repeats == 0);
	} else {
		/* refused, with a reason a person can read, that the oracle shares */
		CHECK(rc == -EILSEQ || rc == -EBADMSG);
		CHECK(field != NULL && problem != NULL);
		CHECK(o.broken || o.n_bad_strings > 0 || o.n_repeats > 0);
		if (rc == -EILSEQ)
			CHECK(o.n_bad_strings > 0);
	}
}

/* What the daemon does with a frame: unpack, check the strings, read the
 * fields it would use. Plus: the message survives a pack/unpack cycle. */
static void handle_frame(const uint8_t *body, size_t len)
{
	Strata__V1__Request *req = strata__v1__request__unpack(NULL, len, body), *again;
	const char *field = NULL;
	uint8_t *packed, *frame;
	size_t n, flen;

	if (!req)
		return; /* MALFORMED */
	check_wire(body, len);
	if (frame_check_utf8(&req->base, &field) < 0)
		CHECK(field != NULL);
	switch (req->body_case) {
	case STRATA__V1__REQUEST__BODY_GENERATE:
		touch(req->generate->prompt);
		for (size_t i = 0; i < req->generate->n_stop; i++)
			touch(req->generate->stop[i]);
		sink += FRAME_HAS(req->generate, temperature) + FRAME_HAS(req->generate, seed) +
			FRAME_HAS(req->generate, add_bos) + req->generate->max_tokens;
		break;
	case STRATA__V1__REQUEST__BODY_TOKENIZE:
		touch(req->tokenize->text);
		break;
	case STRATA__V1__REQUEST__BODY_DETOKENIZE:
		for (size_t i = 0; i < req->detokenize->n_ids; i++)
			sink += req->detokenize->ids[i];
		break;
	case STRATA__V1__REQUEST__BODY_CANCEL:
		sink += req->cancel->target_id;
		break;
	default:
		break;
	}

	/* Pack and unpack again. protobuf-c keeps some unknown fields it
	 * should have refused (field number 0 spelled as an overlong varint,
	 * "80 00 04", at any depth) and writes them back in a form its own
	 * unpack rejects; stratad never re-packs a request, so that case is
	 * tolerated, and only that case. */
	n = strata__v1__request__get_packed_size(req);
	packed = malloc(n ? n : 1);
	CHECK(packed);
	CHECK(strata__v1__request__pack(req, packed) == n);
	again = strata__v1__request__unpack(NULL, n, packed);
	if (!again) {
		CHECK(has_unknown(&req->base));
		free(packed);
		strata__v1__request__free_unpacked(req, NULL);
		return;
	}
	CHECK(again->id == req->id && again->protocol_version == req->protocol_version &&
	      again->body_case == req->body_case);
	CHECK(strata__v1__request__get_packed_size(again) == n);

	/* The daemon's pack helper frames the same bytes (so packing again is
	 * identical), and refuses a cap one byte short. */
	CHECK(frame_pack(&again->base, n, &frame, &flen) == 0);
	CHECK(flen == FRAME_HEADER_BYTES + n && memcmp(frame + FRAME_HEADER_BYTES, packed, n) == 0);
	free(frame);
	if (n > 0) {
		CHECK(frame_pack(&again->base, n - 1, &frame, &flen) == -EMSGSIZE);
		CHECK(frame == NULL);
	}
	free(packed);
	strata__v1__request__free_unpacked(again, NULL);
	strata__v1__request__free_unpacked(req, NULL);
}

static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_reader *r;
	size_t cap, maxsplit, off = 0, ref_off = 0;
	uint32_t rng;
	int rc = FRAME_AGAIN, want;
	const uint8_t *ref_body;
	size_t ref_len;

	if (size < 1)
		return 0;
	cap = (size_t)16 << (data[0] & 7);
	maxsplit = (size_t)1 << ((data[0] >> 3) & 7);
	rng = 0x9E3779B9u ^ data[0] ^ (uint32_t)size * 2654435761u;
	data++;
	size--;

	r = malloc(sizeof *r);
	CHECK(r);
	frame_reader_init(r, cap);
	while (off < size && rc >= 0) {
		size_t piece = 1 + next_rand(&rng) % maxsplit, done = 0;
		if (piece > size - off)
			piece = size - off;
		while (done < piece) {
			size_t used;
			rc = frame_reader_feed(r, data + off + done, piece - done, &used);
			CHECK(used <= piece - done);
			done += used;
			if (rc == FRAME_READY) {
				uint8_t *body;
				size_t len;
				CHECK(frame_reader_take(r, &body, &len) == 0);
				CHECK(ref_next(data, size, &ref_off, cap, &ref_body, &ref_len) == FRAME_READY);
				CHECK(len == ref_len && memcmp(body, ref_body, len) == 0);
				CHECK(off + done == ref_off);
				handle_frame(body, len);
				free(body);
				continue;
			}
			if (rc < 0)
				break;
			CHECK(rc == FRAME_AGAIN && done == piece);
		}
		off += done;
	}
	if (rc >= 0)
		rc = frame_reader_finish(r);
	/* The reader stopped where the reference says the stream stops. */
	want = ref_next(data, size, &ref_off, cap, &ref_body, &ref_len);
	if (rc == -EMSGSIZE) {
		CHECK(want == -EMSGSIZE);
		CHECK(r->body == NULL);
	} else {
		CHECK(rc == want);
	}
	frame_reader_release(r);
	free(r);
	return 0;
}
