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
 * message and pack identically again. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "proto/frame.h"

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "fuzz-frame: check failed at line %d: %s\n", __LINE__, \
				#cond);                                                      \
			abort();                                                             \
		}                                                                            \
	} while (0)

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
