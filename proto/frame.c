/* frame.c: length-prefixed protobuf frames (see frame.h). Byte plumbing and
 * a UTF-8 check only; what a message means is the daemon's and client's job. */
#include "proto/frame.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/utf8.h"

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Block until fd is ready for `events`; what went wrong (POLLERR, POLLHUP) is
 * left for the next read or write to report. */
static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		if (poll(&p, 1, -1) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int frame_write_all(int fd, const void *msg, size_t len)
{
	uint8_t hdr[FRAME_HEADER_BYTES];
	struct iovec iov[2];
	int idx = 0, cnt = len ? 2 : 1;
	bool sock = true;

	if (len > UINT32_MAX)
		return -EMSGSIZE;
	put_be32(hdr, (uint32_t)len);
	iov[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof hdr };
	iov[1] = (struct iovec){ .iov_base = (void *)msg, .iov_len = len };

	while (idx < cnt) {
		ssize_t n;

		if (sock) {
			/* sendmsg because only send* take MSG_NOSIGNAL: a client
			 * that lost its server should see -EPIPE, not die. */
			struct msghdr mh = { .msg_iov = iov + idx, .msg_iovlen = (size_t)(cnt - idx) };
			n = sendmsg(fd, &mh, MSG_NOSIGNAL);
			if (n < 0 && errno == ENOTSOCK) {
				sock = false;
				continue;
			}
		} else {
			n = writev(fd, iov + idx, cnt - idx);
		}
		if (n < 0) {
			int rc;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			rc = wait_fd(fd, POLLOUT);
			if (rc < 0)
				return rc;
			continue;
		}
		if (n == 0)
			return -EIO; /* a write that moves nothing would loop forever */
		for (size_t left = (size_t)n; left > 0;) {
			if (left >= iov[idx].iov_len) {
				left -= iov[idx].iov_len;
				idx++;
			} else {
				iov[idx].iov_base = (uint8_t *)iov[idx].iov_base + left;
				iov[idx].iov_len -= left;
				left = 0;
			}
		}
	}
	return 0;
}

int frame_send(int fd, const ProtobufCMessage *msg, size_t cap)
{
	uint8_t *frame;
	size_t len;
	int rc;

	rc = frame_pack(msg, cap, &frame, &len);
	if (rc < 0)
		return rc;
	/* frame_pack already wrote the prefix; send the body through
	 * frame_write_all so there is one write path with its loops. */
	rc = frame_write_all(fd, frame + FRAME_HEADER_BYTES, len - FRAME_HEADER_BYTES);
	free(frame);
	return rc;
}

/* Read exactly n bytes unless EOF comes first; *got says how many arrived.
 * Returns 0 (check *got for EOF) or -errno. */
static int read_full(int fd, uint8_t *p, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		ssize_t r = read(fd, p + *got, n - *got);
		if (r > 0) {
			*got += (size_t)r;
			continue;
		}
		if (r == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int rc = wait_fd(fd, POLLIN);
			if (rc < 0)
				return rc;
			continue;
		}
		return -errno;
	}
	return 0;
}

int frame_read(int fd, size_t cap, uint8_t **buf, size_t *len)
{
	uint8_t hdr[FRAME_HEADER_BYTES];
	uint8_t *body;
	uint32_t n;
	size_t got;
	int rc;

	*buf = NULL;
	*len = 0;
	rc = read_full(fd, hdr, sizeof hdr, &got);
	if (rc < 0)
		return rc;
	if (got == 0)
		return 0;
	if (got < sizeof hdr)
		return -EPROTO;
	n = get_be32(hdr);
	if (n > cap)
		return -EMSGSIZE;
	body = malloc(n ? n : 1);
	if (!body)
		return -ENOMEM;
	rc = read_full(fd, body, n, &got);
	if (rc < 0 || got < n) {
		free(body);
		return rc < 0 ? rc : -EPROTO;
	}
	*buf = body;
	*len = n;
	return 1;
}

void frame_reader_init(struct frame_reader *r, size_t cap)
{
	memset(r, 0, offsetof(struct frame_reader, in));
	r->cap = cap;
}

void frame_reader_release(struct frame_reader *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	r->ready = false;
	r->hdr_have = 0;
	r->body_have = 0;
	r->in_off = r->in_len = 0;
}

int frame_reader_feed(struct frame_reader *r, const uint8_t *data, size_t len, size_t *used)
{
	size_t off = 0, k;

	*used = 0;
	if (r->error)
		return r->error;
	if (r->ready)
		return FRAME_READY;
	if (r->hdr_have < FRAME_HEADER_BYTES) {
		k = FRAME_HEADER_BYTES - r->hdr_have;
		if (k > len)
			k = len;
		if (k)
			memcpy(r->hdr + r->hdr_have, data, k);
		r->hdr_have += (unsigned)k;
		off = k;
		if (r->hdr_have < FRAME_HEADER_BYTES) {
			*used = off;
			return FRAME_AGAIN;
		}
		r->length = get_be32(r->hdr);
		/* The cap decides before malloc does: a hostile prefix costs
		 * nothing but this comparison. */
		if (r->length > r->cap) {
			*used = off;
			return r->error = -EMSGSIZE;
		}
		r->body = malloc(r->length ? r->length : 1);
		if (!r->body) {
			*used = off;
			return r->error = -ENOMEM;
		}
		r->body_have = 0;
	}
	k = r->length - r->body_have;
	if (k > len - off)
		k = len - off;
	if (k)
		memcpy(r->body + r->body_have, data + off, k);
	r->body_have += k;
	off += k;
	*used = off;
	if (r->body_have < r->length)
		return FRAME_AGAIN;
	r->ready = true;
	return FRAME_READY;
}

int frame_reader_finish(struct frame_reader *r)
{
	if (r->error)
		return r->error;
	if (r->ready)
		return FRAME_READY;
	if (r->hdr_have == 0)
		return FRAME_EOF;
	return r->error = -EPROTO;
}

int frame_reader_fill(struct frame_reader *r, int fd)
{
	for (;;) {
		ssize_t n;

		if (r->error)
			return r->error;
		if (r->ready)
			return FRAME_READY;
		if (r->in_off < r->in_len) {
			size_t used;
			int rc = frame_reader_feed(r, r->in + r->in_off, r->in_len - r->in_off, &used);
			r->in_off += used;
			if (r->in_off == r->in_len)
				r->in_off = r->in_len = 0;
			if (rc != FRAME_AGAIN)
				return rc;
			continue;
		}
		if (r->hdr_have == FRAME_HEADER_BYTES && r->length - r->body_have >= sizeof r->in) {
			/* A big body: read straight into it rather than through in[]. */
			n = read(fd, r->body + r->body_have, r->length - r->body_have);
			if (n > 0) {
				r->body_have += (size_t)n;
				if (r->body_have == r->length)
					r->ready = true;
				continue;
			}
		} else {
			n = read(fd, r->in, sizeof r->in);
			if (n > 0) {
				r->in_off = 0;
				r->in_len = (size_t)n;
				continue;
			}
		}
		if (n == 0)
			return frame_reader_finish(r);
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return FRAME_AGAIN;
		return -errno;
	}
}

bool frame_reader_started(const struct frame_reader *r)
{
	return r->hdr_have > 0 || r->ready || r->in_off < r->in_len;
}

int frame_reader_take(struct frame_reader *r, uint8_t **buf, size_t *len)
{
	if (!r->ready)
		return -EAGAIN;
	*buf = r->body;
	*len = r->length;
	r->body = NULL;
	r->ready = false;
	r->hdr_have = 0;
	r->body_have = 0;
	r->length = 0;
	return 0;
}

size_t frame_size(const ProtobufCMessage *msg)
{
	return FRAME_HEADER_BYTES + protobuf_c_message_get_packed_size(msg);
}

ssize_t frame_pack_into(const ProtobufCMessage *msg, size_t cap, uint8_t *dst, size_t dst_size)
{
	size_t body = protobuf_c_message_get_packed_size(msg);
	size_t packed;

	if (body > cap || body > UINT32_MAX)
		return -EMSGSIZE;
	if (dst_size < FRAME_HEADER_BYTES + body)
		return -ENOSPC;
	put_be32(dst, (uint32_t)body);
	packed = protobuf_c_message_pack(msg, dst + FRAME_HEADER_BYTES);
	assert(packed == body);
	(void)packed;
	return (ssize_t)(FRAME_HEADER_BYTES + body);
}

int frame_pack(const ProtobufCMessage *msg, size_t cap, uint8_t **out, size_t *out_len)
{
	size_t body = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf;
	ssize_t n;

	*out = NULL;
	*out_len = 0;
	if (body > cap || body > UINT32_MAX)
		return -EMSGSIZE;
	buf = malloc(FRAME_HEADER_BYTES + body);
	if (!buf)
		return -ENOMEM;
	n = frame_pack_into(msg, cap, buf, FRAME_HEADER_BYTES + body);
	assert(n == (ssize_t)(FRAME_HEADER_BYTES + body));
	(void)n;
	*out = buf;
	*out_len = FRAME_HEADER_BYTES + body;
	return 0;
}

/* Calls fn for every string field of m that is set (nested messages,
 * repeated fields and set oneof members included), with the place that holds
 * its pointer, until fn returns non-zero. Walks protobuf-c's descriptors, so
 * a string field added to the .proto is covered without touching this code. */
typedef int string_fn(const ProtobufCFieldDescriptor *f, char **slot, void *ctx);

static int visit_strings(ProtobufCMessage *m, string_fn *fn, void *ctx)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	char *base = (char *)m;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		size_t n = 1;
		void **vals = (void **)(base + f->offset);
		int rc;

		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			/* protobuf-c stores a oneof's case as the member's field number */
			uint32_t c;
			memcpy(&c, base + f->quantifier_offset, sizeof c);
			if (c != f->id)
				continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			memcpy(&n, base + f->quantifier_offset, sizeof n);
			memcpy(&vals, base + f->offset, sizeof vals);
		}
		for (size_t j = 0; j < n; j++) {
			if (!vals[j])
				continue;
			if (f->type == PROTOBUF_C_TYPE_MESSAGE)
				rc = visit_strings(vals[j], fn, ctx);
			else
				rc = fn(f, (char **)&vals[j], ctx);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int check_string(const ProtobufCFieldDescriptor *f, char **slot, void *ctx)
{
	const char **field = ctx;
	if (utf8_valid(*slot, strlen(*slot)))
		return 0;
	if (field)
		*field = f->name;
	return -EILSEQ;
}

int frame_check_utf8(const ProtobufCMessage *msg, const char **field)
{
	if (field)
		*field = NULL;
	/* visit_strings takes a mutable message; check_string only reads */
	return visit_strings((ProtobufCMessage *)msg, check_string, (void *)field);
}

/* ---- the wire walker ---- */

/* Nesting deeper than this is refused (strata.proto nests 3 deep). */
#define WIRE_MAX_DEPTH 32
/* Singular sub-message fields tracked per message for repeats (by index). */
#define WIRE_MAX_FIELDS 256

/* A varint at p[0..end): *v and the position after it, or NULL. */
static const uint8_t *wire_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned shift = 0; shift < 64 && p < end; shift += 7) {
		uint8_t b = *p++;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return p;
		}
	}
	return NULL;
}

struct wire_err {
	const char *field;   /* static name, as the .proto spells it */
	const char *problem; /* static words for a person */
};

static int wire_fail(struct wire_err *e, int rc, const char *field, const char *problem)
{
	e->field = field;
	e->problem = problem;
	return rc;
}

static int wire_message(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
			unsigned depth, struct wire_err *e)
{
	uint64_t seen[WIRE_MAX_FIELDS / 64] = { 0 };

	if (depth > WIRE_MAX_DEPTH)
		return wire_fail(e, -EBADMSG, d->name, "nests too deep");
	while (p < end) {
		uint64_t key, len;
		p = wire_varint(p, end, &key);
		if (!p)
			return wire_fail(e, -EBADMSG, d->name, "is not protobuf wire format");
		switch (key & 7) {
		case 0: /* varint */
			p = wire_varint(p, end, &len);
			if (!p)
				return wire_fail(e, -EBADMSG, d->name, "is not protobuf wire format");
			continue;
		case 1: /* 64-bit */
			if (end - p < 8)
				return wire_fail(e, -EBADMSG, d->name, "is not protobuf wire format");
			p += 8;
			continue;
		case 5: /* 32-bit */
			if (end - p < 4)
				return wire_fail(e, -EBADMSG, d->name, "is not protobuf wire format");
			p += 4;
			continue;
		case 2: /* length-delimited: below */
			break;
		default: /* groups (3, 4), which protobuf-c does not read either, and 6, 7 */
			return wire_fail(e, -EBADMSG, d->name, "is not protobuf wire format");
		}
		p = wire_varint(p, end, &len);
		if (!p || len > (uint64_t)(end - p))
			return wire_fail(e, -EBADMSG, d->name, "is not protobuf wire format");
		const uint8_t *v = p;
		p += len;
		const ProtobufCFieldDescriptor *f =
			key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
		if (!f)
			continue; /* an unknown field: its bytes are nobody's text */
		if (f->type == PROTOBUF_C_TYPE_STRING) {
			/* the whole wire length: protobuf-c's C string ends at a NUL,
			 * and whatever follows it would escape any later check */
			if (memchr(v, 0, len))
				return wire_fail(e, -EILSEQ, f->name,
						 "contains U+0000 (NUL), which strata refuses in strings");
			if (!utf8_valid((const char *)v, len))
				return wire_fail(e, -EILSEQ, f->name, "is not valid UTF-8");
		} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			size_t i = (size_t)(f - d->fields);
			if (f->label != PROTOBUF_C_LABEL_REPEATED && i < WIRE_MAX_FIELDS) {
				/* protobuf merges a repeated sub-message; protobuf-c
				 * replaces it, so other readers would see other values */
				if (seen[i / 64] >> (i % 64) & 1)
					return wire_fail(e, -EBADMSG, f->name,
							 "appears twice; strata does not merge sub-messages");
				seen[i / 64] |= 1ull << (i % 64);
			}
			int rc = wire_message(f->descriptor, v, v + len, depth + 1, e);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int frame_check_wire(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
		     const char **field, const char **problem)
{
	struct wire_err e = { NULL, NULL };
	int rc = wire_message(d, buf, buf + len, 0, &e);
	if (field)
		*field = e.field;
	if (problem)
		*problem = e.problem;
	return rc;
}

static int fix_string(const ProtobufCFieldDescriptor *f, char **slot, void *ctx)
{
	struct frame_utf8_fixes *fx = ctx;
	size_t n = strlen(*slot), len;
	char *copy;

	(void)f;
	if (utf8_valid(*slot, n))
		return 0;
	if (fx->n == fx->cap) {
		size_t cap = fx->cap ? 2 * fx->cap : 4;
		struct frame_utf8_fix *v = realloc(fx->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		fx->v = v;
		fx->cap = cap;
	}
	len = utf8_sanitize(*slot, n, NULL, 0);
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	utf8_sanitize(*slot, n, copy, len + 1);
	copy[len] = '\0';
	fx->v[fx->n].slot = slot;
	fx->v[fx->n].orig = *slot;
	fx->n++;
	*slot = copy;
	return 0;
}

int frame_sanitize_utf8(ProtobufCMessage *msg, struct frame_utf8_fixes *fixes)
{
	return visit_strings(msg, fix_string, fixes);
}

void frame_utf8_fixes_undo(struct frame_utf8_fixes *fixes)
{
	if (!fixes)
		return;
	for (size_t i = fixes->n; i-- > 0;) {
		free(*fixes->v[i].slot);
		*fixes->v[i].slot = fixes->v[i].orig;
	}
	free(fixes->v);
	memset(fixes, 0, sizeof *fixes);
}
