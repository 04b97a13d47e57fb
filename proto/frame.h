/* frame.h: length-prefixed protobuf frames on a stream socket, shared by
 * stratad and strata. A frame is a 4-byte big-endian length N, then N bytes
 * of one strata.v1 message (proto/strata.proto says what the messages mean).
 * Blocking helpers for the client, an incremental reader for the daemon's
 * event loop, pack helpers for both. Not a connection or request manager. */
#ifndef STRATA_PROTO_FRAME_H
#define STRATA_PROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

#include "proto/strata.pb-c.h"

/* The protocol this code speaks (strata.proto: ProtocolVersion). */
#define STRATA_PROTOCOL_VERSION 1

/* Bytes of the big-endian length prefix. */
#define FRAME_HEADER_BYTES 4
/* The server's default cap on a request body (stratad --max-frame), bytes. */
#define FRAME_REQUEST_CAP_DEFAULT (1u << 20)
/* The largest response body the server sends, and so the client's cap, bytes. */
#define FRAME_RESPONSE_CAP (64u << 20)
/* Bytes the incremental reader reads from its fd at a time (see frame_reader). */
#define FRAME_READER_CHUNK 4096

/* True when the optional field `field` of a generated message is set. The
 * .proto wraps optional fields in a one-member `oneof field_opt` (protoc-c 1.4
 * cannot compile proto3 `optional`); its case is 0 when the field is unset. */
#define FRAME_HAS(msg, field) ((msg)->field##_opt_case != 0)

/* ---- blocking helpers (the client; tests) ---- */

/* Send one frame whose body is the `len` bytes at `msg` (the prefix is added
 * here). Loops over partial writes and EINTR; if fd is non-blocking, waits in
 * poll() on EAGAIN, so it always blocks until everything is written. Sockets
 * are written with MSG_NOSIGNAL (a closed peer gives -EPIPE, not SIGPIPE);
 * other fds (pipes) fall back to writev() and may raise SIGPIPE.
 * Returns 0, -EMSGSIZE when len does not fit the 32-bit prefix, or -errno. */
int frame_write_all(int fd, const void *msg, size_t len);

/* Pack `msg` and send it as one frame (frame_write_all). -EMSGSIZE when its
 * packed size is above `cap` (the receiver's cap) or UINT32_MAX, -ENOMEM. */
int frame_send(int fd, const ProtobufCMessage *msg, size_t cap);

/* Read one frame. Loops over short reads and EINTR; if fd is non-blocking,
 * waits in poll() on EAGAIN. The length prefix is checked against `cap`
 * before anything is allocated.
 * Returns 1 with *buf (malloc'd, never NULL, even for a 0-byte body; the
 * caller frees it with free()) and *len = body bytes; 0 on a clean EOF
 * before the first byte of a frame (*buf NULL); -EMSGSIZE when the prefix is
 * above cap (the stream cannot be resynchronised: close it); -EPROTO on EOF
 * inside a frame; -ENOMEM; -errno from read. */
int frame_read(int fd, size_t cap, uint8_t **buf, size_t *len);

/* ---- incremental reader (the daemon's event loop) ---- */

enum frame_status {
	FRAME_AGAIN = 0, /* no complete frame yet: feed more bytes / wait for POLLIN */
	FRAME_READY = 1, /* a frame is complete: take it with frame_reader_take() */
	FRAME_EOF = 2,   /* the peer closed the stream at a frame boundary */
};

/* Assembles frames from a byte stream in any split. Memory is bounded by
 * sizeof(struct frame_reader) plus one body of at most `cap` bytes, allocated
 * once the prefix is known and found within the cap. Embed it (one per
 * connection); fields are private to frame.c, except `length` after an
 * -EMSGSIZE (for the error message). */
struct frame_reader {
	size_t cap;            /* largest body accepted, bytes */
	uint32_t length;       /* body length from the current prefix, bytes */
	uint8_t hdr[FRAME_HEADER_BYTES]; /* the prefix as it arrives */
	unsigned hdr_have;     /* prefix bytes received, 0..4 */
	uint8_t *body;         /* (length) bytes, owned until taken; NULL before the prefix */
	size_t body_have;      /* body bytes received */
	bool ready;            /* a whole frame waits in body */
	int error;             /* 0, or the sticky -errno that stopped the reader */
	size_t in_off, in_len; /* unconsumed bytes are in[in_off .. in_len) */
	uint8_t in[FRAME_READER_CHUNK]; /* bytes read from the fd, not yet consumed */
};

/* Start empty with a body cap in bytes. No allocation. */
void frame_reader_init(struct frame_reader *r, size_t cap);

/* Free what the reader holds (a partial or untaken frame). The reader can be
 * initialised again. NULL is a no-op. */
void frame_reader_release(struct frame_reader *r);

/* Consume bytes from data[0..len) until one frame is complete or the bytes run
 * out; *used says how many were consumed. Returns FRAME_READY (a frame waits;
 * the rest of data is for the next call, after frame_reader_take),
 * FRAME_AGAIN (all consumed, frame incomplete), -EMSGSIZE as soon as a
 * prefix above the cap is known (nothing was allocated for it; r->length holds
 * it), -ENOMEM. Errors are sticky. While a frame waits, consumes nothing and
 * returns FRAME_READY. */
int frame_reader_feed(struct frame_reader *r, const uint8_t *data, size_t len, size_t *used);

/* Read from a non-blocking fd until a frame is complete or read() would block.
 * Returns FRAME_READY (take it, then call again: more frames may already be
 * buffered, so with edge-triggered polling keep calling until FRAME_AGAIN),
 * FRAME_AGAIN (EAGAIN: wait for POLLIN), FRAME_EOF (clean close between
 * frames), -EPROTO (EOF inside a frame), -EMSGSIZE, -ENOMEM, -errno from
 * read(). EINTR is retried. */
int frame_reader_fill(struct frame_reader *r, int fd);

/* The end of the input, for readers fed by hand: FRAME_EOF when no partial
 * frame is pending, else -EPROTO. */
int frame_reader_finish(struct frame_reader *r);

/* true when the reader holds part of a frame: bytes of its prefix or body,
 * or bytes read from the fd and not consumed yet (a frame has begun
 * arriving); false between frames. */
bool frame_reader_started(const struct frame_reader *r);

/* Hand over the complete frame: *buf (malloc'd, never NULL; the caller frees
 * it with free()) and *len body bytes. The reader starts on the next frame.
 * -EAGAIN when no frame is ready. */
int frame_reader_take(struct frame_reader *r, uint8_t **buf, size_t *len);

/* ---- packing ---- */

/* Bytes `msg` takes as a frame: prefix plus packed body. */
size_t frame_size(const ProtobufCMessage *msg);

/* Pack `msg` as one frame (prefix + body) into a new buffer: *out (malloc'd;
 * the caller frees it with free()) of *out_len bytes. -EMSGSIZE when the body
 * would be above `cap` (the receiver's cap) or UINT32_MAX, -ENOMEM. */
int frame_pack(const ProtobufCMessage *msg, size_t cap, uint8_t **out, size_t *out_len);

/* Pack `msg` as one frame into the caller's dst[0..dst_size). Returns the
 * frame's size in bytes, -EMSGSIZE as frame_pack, -ENOSPC when dst is too
 * small (frame_size() says how much is needed). */
ssize_t frame_pack_into(const ProtobufCMessage *msg, size_t cap, uint8_t *dst, size_t dst_size);

/* ---- checking unpacked messages ---- */

/* Unpacking a body: strata__v1__request__unpack(NULL, len, buf) returns NULL
 * when the bytes are not a Request (MALFORMED); free the result with
 * strata__v1__request__free_unpacked(req, NULL). Unknown fields are kept and
 * ignored. protobuf-c does not check that strings are UTF-8 as proto3 wants,
 * its strings end at the first NUL byte whatever the wire length says, and a
 * singular sub-message sent twice replaces the first instead of merging with
 * it (as protobuf specifies and other readers do), so the server also checks
 * the body's bytes themselves: */

/* Walk the body buf[0..len) of a message of type d on the wire, driven by the
 * descriptors (sub-messages, repeated fields and oneof members at any depth):
 * every `string` field must be valid UTF-8 and free of U+0000 over its whole
 * wire length (-EILSEQ), and no singular sub-message field may appear twice in
 * one message (-EBADMSG); bytes that are not protobuf wire format, groups, or
 * nesting deeper than 32 are -EBADMSG too. Unknown fields are skipped.
 * Returns 0, or that error with *field (the static name of the field or
 * message, as the .proto spells it) and *problem (static words: "is not valid
 * UTF-8", "appears twice; strata does not merge sub-messages", ...), each
 * when non-NULL. */
int frame_check_wire(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
		     const char **field, const char **problem);

/* The same UTF-8 check on an unpacked message (the client checks replies
 * with it): */

/* 0 when every `string` field of msg (nested messages, repeated fields and set
 * oneof members included) is valid UTF-8; else -EILSEQ and *field (if
 * non-NULL) points at the static name of the first bad field as the .proto
 * spells it, e.g. "prompt". (protobuf-c strings also end at the first NUL.) */
int frame_check_utf8(const ProtobufCMessage *msg, const char **field);

/* ---- sending valid UTF-8 ---- */

/* What frame_sanitize_utf8 replaced, to put back. Zero-initialize. */
struct frame_utf8_fix {
	char **slot; /* where the string pointer lives in the message */
	char *orig;  /* the caller's string, put back by the undo */
};
struct frame_utf8_fixes {
	struct frame_utf8_fix *v; /* (n) */
	size_t n, cap;
};

/* Make every `string` field of msg (nested messages, repeated fields and set
 * oneof members included) valid UTF-8 before it is packed: a string that is
 * not is replaced in the message by a malloc'd copy in which each maximal
 * invalid subpart became U+FFFD (utf8_sanitize). The caller's strings are not
 * written to; `fixes` records each replacement, and
 * frame_utf8_fixes_undo(fixes) puts the originals back and frees the copies:
 * call it after packing, also when this fails. 0, or -ENOMEM. */
int frame_sanitize_utf8(ProtobufCMessage *msg, struct frame_utf8_fixes *fixes);
void frame_utf8_fixes_undo(struct frame_utf8_fixes *fixes);

#endif
