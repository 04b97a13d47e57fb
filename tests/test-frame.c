/* test-frame.c: the framing of proto/frame.h over real socketpairs (splits,
 * caps, EOF, EINTR, non-blocking writes) and the protobuf messages of
 * strata.proto through it (round trips, unknown fields, malformed bytes). */
#include "proto/frame.h"
#include "tests/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

static void make_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		tap_bail("socketpair: %s", strerror(errno));
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		tap_bail("fcntl: %s", strerror(errno));
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void write_raw(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			tap_bail("write: %s", strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

/* Deterministic xorshift so failures reproduce. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 32);
}

/* A frame body of `len` bytes whose content depends on `seed`. */
static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len ? len : 1);
	if (!p)
		tap_bail("out of memory");
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 8));
	return p;
}

/* The prefix for `len`, then the body unless it is NULL (header only). */
static size_t put_frame(uint8_t *dst, const uint8_t *body, uint32_t len)
{
	dst[0] = (uint8_t)(len >> 24);
	dst[1] = (uint8_t)(len >> 16);
	dst[2] = (uint8_t)(len >> 8);
	dst[3] = (uint8_t)len;
	if (!body)
		return 4;
	memcpy(dst + 4, body, len);
	return 4 + (size_t)len;
}

/* A thread that writes buf in chunks of `chunk` bytes, `delay_ms` apart,
 * then shuts down its side for writing when asked. */
struct writer {
	pthread_t th;
	int fd;
	const uint8_t *buf;
	size_t len;
	size_t chunk;
	unsigned delay_ms;
	bool shut;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	for (size_t off = 0; off < w->len;) {
		size_t k = w->len - off < w->chunk ? w->len - off : w->chunk;
		write_raw(w->fd, w->buf + off, k);
		off += k;
		if (w->delay_ms)
			sleep_ms(w->delay_ms);
	}
	if (w->shut)
		shutdown(w->fd, SHUT_WR);
	return NULL;
}

static void writer_start(struct writer *w)
{
	if (pthread_create(&w->th, NULL, writer_main, w) != 0)
		tap_bail("pthread_create failed");
}

static void writer_join(struct writer *w)
{
	pthread_join(w->th, NULL);
}

/* ---- blocking reads ---- */

static void test_one_byte_writes(void)
{
	int sv[2];
	uint8_t stream[3 * (4 + 300)];
	size_t n = 0;
	uint8_t *bodies[3];
	size_t lens[3] = { 300, 1, 77 };
	struct writer w;
	int ok = 1;

	for (int i = 0; i < 3; i++) {
		bodies[i] = pattern(lens[i], (unsigned)i);
		n += put_frame(stream + n, bodies[i], (uint32_t)lens[i]);
	}
	make_pair(sv);
	w = (struct writer){ .fd = sv[1], .buf = stream, .len = n, .chunk = 1, .shut = true };
	writer_start(&w);
	for (int i = 0; i < 3; i++) {
		uint8_t *buf;
		size_t len;
		int rc = frame_read(sv[0], 1000, &buf, &len);
		if (rc != 1 || len != lens[i] || memcmp(buf, bodies[i], len) != 0)
			ok = 0;
		free(buf);
	}
	{
		uint8_t *buf;
		size_t len;
		int rc = frame_read(sv[0], 1000, &buf, &len);
		tap_is_int(rc, 0, "frame_read: clean EOF after the last frame returns 0");
	}
	tap_ok(ok, "frame_read: 3 frames written one byte per write() arrive whole");
	writer_join(&w);
	close(sv[0]);
	close(sv[1]);
	for (int i = 0; i < 3; i++)
		free(bodies[i]);
}

static void test_many_frames_one_write(void)
{
	enum { N = 200 };
	int sv[2];
	uint8_t *stream = malloc(N * (4 + 64));
	size_t n = 0;
	int ok = 1;

	for (int i = 0; i < N; i++) {
		uint8_t *b = pattern((size_t)(i % 64), (unsigned)i);
		n += put_frame(stream + n, b, (uint32_t)(i % 64));
		free(b);
	}
	make_pair(sv);
	write_raw(sv[1], stream, n); /* ~7 KB: fits the socket buffer */
	shutdown(sv[1], SHUT_WR);
	for (int i = 0; i < N; i++) {
		uint8_t *buf, *want = pattern((size_t)(i % 64), (unsigned)i);
		size_t len;
		int rc = frame_read(sv[0], 64, &buf, &len);
		if (rc != 1 || len != (size_t)(i % 64) || memcmp(buf, want, len) != 0)
			ok = 0;
		free(buf);
		free(want);
	}
	tap_ok(ok, "frame_read: %d frames sent in one write() come out one by one", N);
	close(sv[0]);
	close(sv[1]);
	free(stream);
}

static void test_cap(void)
{
	int sv[2];
	uint8_t hdr[4];
	uint8_t *buf;
	size_t len;
	int rc;
	uint8_t *body = pattern(100, 3);
	uint8_t frame[104];

	/* Exactly at the cap is accepted. */
	make_pair(sv);
	put_frame(frame, body, 100);
	write_raw(sv[1], frame, sizeof frame);
	rc = frame_read(sv[0], 100, &buf, &len);
	tap_ok(rc == 1 && len == 100, "frame_read: a body of exactly the cap is accepted");
	free(buf);

	/* One above: rejected from the prefix alone. No body byte is ever
	 * sent and the writer stays open, so a reader that allocated and
	 * waited for the body would hang here (alarm() would fail the test). */
	put_frame(hdr, NULL, 101);
	write_raw(sv[1], hdr, 4);
	alarm(10);
	rc = frame_read(sv[0], 100, &buf, &len);
	alarm(0);
	tap_is_int(rc, -EMSGSIZE, "frame_read: cap + 1 is rejected with -EMSGSIZE from the prefix alone");
	tap_ok(buf == NULL && len == 0, "frame_read: nothing is returned for a rejected frame");

	/* A 4 GiB claim against a 1 MiB cap: if it were allocated before the
	 * check, ASan (or the 64-bit malloc) would see a 4 GiB request. */
	put_frame(hdr, NULL, 0xFFFFFFFFu);
	write_raw(sv[1], hdr, 4);
	rc = frame_read(sv[0], FRAME_REQUEST_CAP_DEFAULT, &buf, &len);
	tap_is_int(rc, -EMSGSIZE, "frame_read: a 4 GiB prefix is rejected against the 1 MiB cap");
	close(sv[0]);
	close(sv[1]);
	free(body);
}

static void test_zero_length(void)
{
	int sv[2];
	uint8_t hdr[4];
	uint8_t *buf;
	size_t len;
	int rc;
	Strata__V1__Request *req;

	make_pair(sv);
	put_frame(hdr, NULL, 0);
	write_raw(sv[1], hdr, 4);
	rc = frame_read(sv[0], 100, &buf, &len);
	tap_ok(rc == 1 && len == 0 && buf != NULL, "frame_read: a zero-length frame is a frame (non-NULL buffer, len 0)");
	req = strata__v1__request__unpack(NULL, len, buf);
	tap_ok(req && req->id == 0 && req->body_case == STRATA__V1__REQUEST__BODY__NOT_SET,
	       "an empty body unpacks as a Request with every field at its default");
	strata__v1__request__free_unpacked(req, NULL);
	free(buf);
	close(sv[0]);
	close(sv[1]);
}

static void test_eof(void)
{
	static const struct {
		size_t send;
		const char *what;
	} cases[] = {
		{ 2, "inside the length prefix" },
		{ 4, "right after the prefix" },
		{ 4 + 5, "inside the body" },
	};
	uint8_t *body = pattern(10, 1);
	uint8_t frame[14];

	put_frame(frame, body, 10);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int sv[2];
		uint8_t *buf;
		size_t len;
		int rc;
		make_pair(sv);
		write_raw(sv[1], frame, cases[i].send);
		close(sv[1]);
		rc = frame_read(sv[0], 100, &buf, &len);
		tap_is_int(rc, -EPROTO, "frame_read: EOF %s is -EPROTO", cases[i].what);
		close(sv[0]);
	}
	free(body);
}

/* ---- EINTR ---- */

static volatile sig_atomic_t sig_count;

static void on_sigusr1(int sig)
{
	(void)sig;
	sig_count++;
}

struct eintr_arg {
	pthread_t target;
	int fd;
	const uint8_t *frame;
	size_t len;
};

/* Interrupt the main thread while it blocks in read(), three times: before
 * any byte, inside the prefix, inside the body. */
static void *eintr_main(void *p)
{
	struct eintr_arg *a = p;
	size_t cuts[] = { 0, 2, 4 + a->len / 2 - 2, a->len };

	for (int i = 0; i < 3; i++) {
		sleep_ms(60);
		pthread_kill(a->target, SIGUSR1);
		sleep_ms(60);
		write_raw(a->fd, a->frame + cuts[i], cuts[i + 1] - cuts[i]);
	}
	return NULL;
}

static void *kick_main(void *p)
{
	sleep_ms(60);
	pthread_kill(*(pthread_t *)p, SIGUSR1);
	return NULL;
}

static void test_eintr(void)
{
	struct sigaction sa, old;
	int sv[2];
	uint8_t *body = pattern(1000, 9);
	uint8_t frame[1004];
	struct eintr_arg a;
	pthread_t self = pthread_self(), th;
	uint8_t *buf;
	size_t len;
	int rc, saved;
	ssize_t n;
	char c;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigusr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a blocked read() fails with EINTR */
	sigaction(SIGUSR1, &sa, &old);
	make_pair(sv);

	/* Control: this setup really makes a plain blocked read() fail. */
	sig_count = 0;
	if (pthread_create(&th, NULL, kick_main, &self) != 0)
		tap_bail("pthread_create failed");
	n = read(sv[0], &c, 1);
	saved = errno;
	pthread_join(th, NULL);
	tap_ok(n < 0 && saved == EINTR && sig_count == 1,
	       "control: a signal without SA_RESTART interrupts a blocked read() with EINTR");

	/* frame_read rides through three such interruptions. */
	put_frame(frame, body, 1000);
	a = (struct eintr_arg){ .target = self, .fd = sv[1], .frame = frame, .len = sizeof frame };
	sig_count = 0;
	if (pthread_create(&th, NULL, eintr_main, &a) != 0)
		tap_bail("pthread_create failed");
	rc = frame_read(sv[0], 1000, &buf, &len);
	pthread_join(th, NULL);
	tap_ok(rc == 1 && len == 1000 && memcmp(buf, body, 1000) == 0,
	       "frame_read: the frame arrives whole across signals before, inside the prefix and inside the body");
	tap_is_int(sig_count, 3, "frame_read: all three signals were delivered during the read");
	free(buf);
	free(body);
	close(sv[0]);
	close(sv[1]);
	sigaction(SIGUSR1, &old, NULL);
}

/* ---- writes ---- */

struct drain_arg {
	int fd;
	uint8_t *buf;
	size_t len;
	int rc;
};

static void *drain_main(void *p)
{
	struct drain_arg *d = p;
	sleep_ms(50); /* let the writer fill the socket buffer and hit EAGAIN */
	d->rc = frame_read(d->fd, 4u << 20, &d->buf, &d->len);
	return NULL;
}

static void test_write_nonblocking(void)
{
	size_t len = 3u << 20; /* far above a socket buffer (~200 KiB) */
	uint8_t *body = pattern(len, 5);
	struct drain_arg d = { 0 };
	pthread_t th;
	int sv[2], rc;

	make_pair(sv);
	set_nonblock(sv[1]);
	d.fd = sv[0];
	if (pthread_create(&th, NULL, drain_main, &d) != 0)
		tap_bail("pthread_create failed");
	rc = frame_write_all(sv[1], body, len);
	pthread_join(th, NULL);
	tap_is_int(rc, 0, "frame_write_all: a 3 MiB frame on a non-blocking socket is written whole (waits on EAGAIN)");
	tap_ok(d.rc == 1 && d.len == len && memcmp(d.buf, body, len) == 0,
	       "frame_read: ... and read back byte for byte");
	free(d.buf);
	free(body);
	close(sv[0]);
	close(sv[1]);
}

static void test_write_epipe(void)
{
	int sv[2], rc;
	void (*old)(int) = signal(SIGPIPE, SIG_DFL); /* SIGPIPE would kill us */

	make_pair(sv);
	close(sv[0]);
	rc = frame_write_all(sv[1], "hello", 5);
	tap_is_int(rc, -EPIPE, "frame_write_all: a closed peer gives -EPIPE, not SIGPIPE");
	rc = frame_write_all(sv[1], NULL, (size_t)UINT32_MAX + 1);
	tap_is_int(rc, -EMSGSIZE, "frame_write_all: a body above 4 GiB - 1 cannot be framed (-EMSGSIZE)");
	close(sv[1]);
	signal(SIGPIPE, old);
}

/* ---- the incremental reader ---- */

/* A stream of `n` frames with pseudo-random lengths up to `maxlen` (some 0). */
static uint8_t *make_stream(int n, size_t maxlen, size_t *lens, size_t *total)
{
	size_t cap = 0, off = 0;
	uint8_t *s;

	for (int i = 0; i < n; i++) {
		lens[i] = (i % 7 == 3) ? 0 : rng() % (maxlen + 1);
		cap += 4 + lens[i];
	}
	s = malloc(cap);
	for (int i = 0; i < n; i++) {
		uint8_t *b = pattern(lens[i], (unsigned)i);
		off += put_frame(s + off, b, (uint32_t)lens[i]);
		free(b);
	}
	*total = off;
	return s;
}

/* Feed `stream` to a reader in pieces of random size in [1, maxsplit] and
 * check that frame i comes out with length lens[i] and its pattern. */
static int feed_in_splits(const uint8_t *stream, size_t total, const size_t *lens, int n, size_t maxsplit)
{
	struct frame_reader r;
	size_t off = 0;
	int got = 0, ok = 1;

	frame_reader_init(&r, 1u << 16);
	while (off < total) {
		size_t piece = 1 + rng() % maxsplit, used = 0;
		if (piece > total - off)
			piece = total - off;
		for (size_t done = 0; done < piece; done += used) {
			int rc = frame_reader_feed(&r, stream + off + done, piece - done, &used);
			if (rc == FRAME_READY) {
				uint8_t *buf, *want;
				size_t len;
				frame_reader_take(&r, &buf, &len);
				want = pattern(lens[got], (unsigned)got);
				if (got >= n || len != lens[got] || memcmp(buf, want, len) != 0)
					ok = 0;
				free(want);
				free(buf);
				got++;
			} else if (rc != FRAME_AGAIN) {
				ok = 0;
				break;
			}
		}
		off += piece;
	}
	if (frame_reader_finish(&r) != FRAME_EOF)
		ok = 0;
	frame_reader_release(&r);
	return ok && got == n;
}

static void test_reader_feed(void)
{
	enum { N = 300 };
	size_t lens[N], total;
	uint8_t *stream = make_stream(N, 2000, lens, &total);
	struct frame_reader r;
	uint8_t hdr[4], *buf = NULL;
	size_t used, len;
	int rc;

	tap_ok(feed_in_splits(stream, total, lens, N, 1), "reader: %d frames fed one byte at a time", N);
	tap_ok(feed_in_splits(stream, total, lens, N, 13), "reader: the same stream in random splits of 1..13 bytes");
	tap_ok(feed_in_splits(stream, total, lens, N, 5000), "reader: ... and of 1..5000 bytes (many frames per feed)");
	tap_ok(feed_in_splits(stream, total, lens, N, total), "reader: ... and in splits up to the whole stream");
	free(stream);

	/* The cap is applied as soon as the 4th prefix byte is in. */
	frame_reader_init(&r, 1000);
	put_frame(hdr, NULL, 1001);
	rc = frame_reader_feed(&r, hdr, 3, &used);
	tap_ok(rc == FRAME_AGAIN && used == 3, "reader: 3 prefix bytes: waiting for more");
	rc = frame_reader_feed(&r, hdr + 3, 1, &used);
	tap_ok(rc == -EMSGSIZE && used == 1 && r.length == 1001 && r.body == NULL,
	       "reader: cap + 1 is rejected on the 4th prefix byte, nothing allocated, length kept for the message");
	rc = frame_reader_feed(&r, hdr, 4, &used);
	tap_ok(rc == -EMSGSIZE && used == 0, "reader: the error is sticky");
	frame_reader_release(&r);

	/* A zero-length frame is ready without any body byte. */
	frame_reader_init(&r, 1000);
	put_frame(hdr, NULL, 0);
	rc = frame_reader_feed(&r, hdr, 4, &used);
	tap_ok(rc == FRAME_READY && frame_reader_take(&r, &buf, &len) == 0 && len == 0 && buf,
	       "reader: a zero-length frame is ready after its prefix");
	free(buf);
	tap_is_int(frame_reader_take(&r, &buf, &len), -EAGAIN, "reader: take with no frame ready is -EAGAIN");
	rc = frame_reader_feed(&r, hdr, 2, &used);
	tap_is_int(frame_reader_finish(&r), -EPROTO, "reader: EOF with half a prefix pending is -EPROTO");
	frame_reader_release(&r);
	frame_reader_release(NULL);
}

static void test_reader_fill(void)
{
	enum { N = 50 };
	size_t lens[N], total;
	uint8_t *stream;
	struct frame_reader *r = malloc(sizeof *r);
	struct writer w;
	int sv[2], got = 0, ok = 1, rc, wakeups = 0;

	/* Lengths up to 3 * FRAME_READER_CHUNK exercise both the staging buffer
	 * and the direct read into a big body. Written in 1..1000-byte chunks
	 * with pauses, so the reader sees EAGAIN in the middle of frames. */
	stream = make_stream(N, 3 * FRAME_READER_CHUNK, lens, &total);
	make_pair(sv);
	set_nonblock(sv[0]);
	w = (struct writer){ .fd = sv[1], .buf = stream, .len = total, .chunk = 997, .delay_ms = 1, .shut = true };
	writer_start(&w);
	frame_reader_init(r, 1u << 20);
	for (;;) {
		struct pollfd p = { .fd = sv[0], .events = POLLIN };
		rc = frame_reader_fill(r, sv[0]);
		if (rc == FRAME_READY) {
			uint8_t *buf, *want;
			size_t len;
			frame_reader_take(r, &buf, &len);
			want = pattern(lens[got], (unsigned)got);
			if (got >= N || len != lens[got] || memcmp(buf, want, len) != 0)
				ok = 0;
			free(want);
			free(buf);
			got++;
			continue;
		}
		if (rc != FRAME_AGAIN)
			break;
		wakeups++;
		poll(&p, 1, 5000);
	}
	writer_join(&w);
	tap_ok(ok && got == N && wakeups > 1, "reader_fill: %d frames (0..%d bytes) from a non-blocking socket (%d waits)", N,
	       3 * FRAME_READER_CHUNK, wakeups);
	tap_is_int(rc, FRAME_EOF, "reader_fill: a close between frames is FRAME_EOF");
	frame_reader_release(r);
	close(sv[0]);
	close(sv[1]);

	/* A close inside a body. */
	make_pair(sv);
	set_nonblock(sv[0]);
	write_raw(sv[1], stream, 4 + lens[0] / 2 + 1);
	close(sv[1]);
	frame_reader_init(r, 1u << 20);
	rc = frame_reader_fill(r, sv[0]);
	tap_is_int(rc, -EPROTO, "reader_fill: EOF inside a frame is -EPROTO");
	frame_reader_release(r);
	close(sv[0]);

	/* Over the cap: reported before the body is even sent. */
	make_pair(sv);
	set_nonblock(sv[0]);
	{
		uint8_t hdr[4];
		put_frame(hdr, NULL, 5000);
		write_raw(sv[1], hdr, 4);
	}
	frame_reader_init(r, 4999);
	rc = frame_reader_fill(r, sv[0]);
	tap_ok(rc == -EMSGSIZE && r->length == 5000 && r->body == NULL,
	       "reader_fill: a prefix above the cap is -EMSGSIZE with nothing allocated");
	frame_reader_release(r);
	close(sv[0]);
	close(sv[1]);
	free(stream);
	free(r);
}

/* ---- packing and the messages ---- */

/* Send msg through frame_send on a socketpair, read it back with frame_read. */
static uint8_t *through_socket(const ProtobufCMessage *msg, size_t *len)
{
	int sv[2];
	uint8_t *buf = NULL;
	int rc;

	make_pair(sv);
	rc = frame_send(sv[1], msg, FRAME_RESPONSE_CAP);
	if (rc == 0)
		rc = frame_read(sv[0], FRAME_RESPONSE_CAP, &buf, len);
	close(sv[0]);
	close(sv[1]);
	if (rc != 1)
		tap_bail("frame_send/frame_read failed: %d", rc);
	return buf;
}

static Strata__V1__Request *request_round_trip(const Strata__V1__Request *in)
{
	size_t len;
	uint8_t *buf = through_socket(&in->base, &len);
	Strata__V1__Request *out = strata__v1__request__unpack(NULL, len, buf);
	free(buf);
	if (!out)
		tap_bail("request did not unpack");
	return out;
}

static Strata__V1__Response *response_round_trip(const Strata__V1__Response *in)
{
	size_t len;
	uint8_t *buf = through_socket(&in->base, &len);
	Strata__V1__Response *out = strata__v1__response__unpack(NULL, len, buf);
	free(buf);
	if (!out)
		tap_bail("response did not unpack");
	return out;
}

static void test_requests(void)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT, *out;
	Strata__V1__Generate gen = STRATA__V1__GENERATE__INIT;
	Strata__V1__Tokenize tok = STRATA__V1__TOKENIZE__INIT;
	Strata__V1__Detokenize detok = STRATA__V1__DETOKENIZE__INIT;
	Strata__V1__Status st = STRATA__V1__STATUS__INIT;
	Strata__V1__Cancel cancel = STRATA__V1__CANCEL__INIT;
	char *stops[] = { "\n\n", "User:" };
	uint32_t ids[] = { 1, 15043, 255999, 0 };

	req.id = 0xFFFFFFFFFFull + 7;
	req.protocol_version = STRATA_PROTOCOL_VERSION;
	req.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
	req.generate = &gen;
	gen.prompt = "Érase una vez \xe2\x80\x94 once upon a time";
	gen.max_tokens = 128;
	gen.temperature_opt_case = STRATA__V1__GENERATE__TEMPERATURE_OPT_TEMPERATURE;
	gen.temperature = 0.0f; /* set to 0: distinct from unset */
	gen.top_p_opt_case = STRATA__V1__GENERATE__TOP_P_OPT_TOP_P;
	gen.top_p = 0.9f;
	gen.seed_opt_case = STRATA__V1__GENERATE__SEED_OPT_SEED;
	gen.seed = 0xDEADBEEFCAFEull;
	gen.add_bos_opt_case = STRATA__V1__GENERATE__ADD_BOS_OPT_ADD_BOS;
	gen.add_bos = false;
	gen.n_stop = 2;
	gen.stop = stops;
	gen.parse_special = true;
	out = request_round_trip(&req);
	tap_ok(out->id == req.id && out->protocol_version == 1 && out->body_case == STRATA__V1__REQUEST__BODY_GENERATE,
	       "Request(Generate): envelope survives");
	tap_ok(strcmp(out->generate->prompt, gen.prompt) == 0 && out->generate->max_tokens == 128,
	       "Generate: prompt (UTF-8) and max_tokens");
	tap_ok(FRAME_HAS(out->generate, temperature) && out->generate->temperature == 0.0f &&
	       FRAME_HAS(out->generate, top_p) && out->generate->top_p == 0.9f &&
	       !FRAME_HAS(out->generate, top_k) && !FRAME_HAS(out->generate, min_p) &&
	       !FRAME_HAS(out->generate, repetition_penalty) && !FRAME_HAS(out->generate, repetition_window),
	       "Generate: optional fields keep set (even to 0) vs unset");
	tap_ok(FRAME_HAS(out->generate, seed) && out->generate->seed == gen.seed &&
	       FRAME_HAS(out->generate, add_bos) && out->generate->add_bos == 0 && out->generate->parse_special,
	       "Generate: seed, add_bos=false (set), parse_special");
	tap_ok(out->generate->n_stop == 2 && strcmp(out->generate->stop[0], "\n\n") == 0 &&
	       strcmp(out->generate->stop[1], "User:") == 0, "Generate: stop strings");
	tap_is_int(frame_check_utf8(&out->base, NULL), 0, "Generate: its strings pass the UTF-8 check");
	strata__v1__request__free_unpacked(out, NULL);

	/* Everything unset but the prompt. */
	memset(&gen, 0, sizeof gen);
	gen = (Strata__V1__Generate)STRATA__V1__GENERATE__INIT;
	gen.prompt = "";
	out = request_round_trip(&req);
	tap_ok(!FRAME_HAS(out->generate, temperature) && !FRAME_HAS(out->generate, seed) &&
	       !FRAME_HAS(out->generate, add_bos) && out->generate->n_stop == 0 && out->generate->prompt[0] == 0,
	       "Generate: an all-default request stays all-default");
	strata__v1__request__free_unpacked(out, NULL);

	req.body_case = STRATA__V1__REQUEST__BODY_TOKENIZE;
	req.tokenize = &tok;
	tok.text = "hello <|im_start|>";
	tok.add_bos_opt_case = STRATA__V1__TOKENIZE__ADD_BOS_OPT_ADD_BOS;
	tok.add_bos = true;
	tok.parse_special = true;
	out = request_round_trip(&req);
	tap_ok(out->body_case == STRATA__V1__REQUEST__BODY_TOKENIZE && strcmp(out->tokenize->text, tok.text) == 0 &&
	       FRAME_HAS(out->tokenize, add_bos) && out->tokenize->add_bos && out->tokenize->parse_special,
	       "Request(Tokenize) round trip");
	strata__v1__request__free_unpacked(out, NULL);

	req.body_case = STRATA__V1__REQUEST__BODY_DETOKENIZE;
	req.detokenize = &detok;
	detok.n_ids = 4;
	detok.ids = ids;
	detok.render_special = true;
	out = request_round_trip(&req);
	tap_ok(out->body_case == STRATA__V1__REQUEST__BODY_DETOKENIZE && out->detokenize->n_ids == 4 &&
	       memcmp(out->detokenize->ids, ids, sizeof ids) == 0 && out->detokenize->render_special,
	       "Request(Detokenize) round trip");
	strata__v1__request__free_unpacked(out, NULL);

	req.body_case = STRATA__V1__REQUEST__BODY_STATUS;
	req.status = &st;
	req.protocol_version = 0;
	out = request_round_trip(&req);
	tap_ok(out->body_case == STRATA__V1__REQUEST__BODY_STATUS && out->status && out->protocol_version == 0,
	       "Request(Status) round trip (empty body still selects the oneof)");
	strata__v1__request__free_unpacked(out, NULL);

	req.body_case = STRATA__V1__REQUEST__BODY_CANCEL;
	req.cancel = &cancel;
	cancel.target_id = 41;
	out = request_round_trip(&req);
	tap_ok(out->body_case == STRATA__V1__REQUEST__BODY_CANCEL && out->cancel->target_id == 41,
	       "Request(Cancel) round trip");
	strata__v1__request__free_unpacked(out, NULL);
}

static void test_responses(void)
{
	Strata__V1__Response resp = STRATA__V1__RESPONSE__INIT, *out;
	Strata__V1__Piece piece = STRATA__V1__PIECE__INIT;
	Strata__V1__Done done = STRATA__V1__DONE__INIT;
	Strata__V1__Timings tim = STRATA__V1__TIMINGS__INIT;
	Strata__V1__Error err = STRATA__V1__ERROR__INIT;
	Strata__V1__TokenizeReply tr = STRATA__V1__TOKENIZE_REPLY__INIT;
	Strata__V1__DetokenizeReply dr = STRATA__V1__DETOKENIZE_REPLY__INIT;
	Strata__V1__StatusReply sr = STRATA__V1__STATUS_REPLY__INIT;
	Strata__V1__Model model = STRATA__V1__MODEL__INIT;
	Strata__V1__Memory mem = STRATA__V1__MEMORY__INIT;
	Strata__V1__WeightType wt[2] = { STRATA__V1__WEIGHT_TYPE__INIT, STRATA__V1__WEIGHT_TYPE__INIT };
	Strata__V1__WeightType *wtp[2] = { &wt[0], &wt[1] };
	Strata__V1__CancelReply cr = STRATA__V1__CANCEL_REPLY__INIT;
	uint32_t ids[] = { 29871, 30010 };
	uint8_t partial[] = { 0xE2, 0x80 }; /* the first two bytes of a 3-byte character */
	ProtobufCBinaryData pieces[2] = { { 2, partial }, { 3, (uint8_t *)"<s>" } };

	resp.id = 7;
	resp.protocol_version = STRATA_PROTOCOL_VERSION;
	resp.body_case = STRATA__V1__RESPONSE__BODY_PIECE;
	resp.piece = &piece;
	piece.text = "\xe2\x80\x94 ni\xc3\xb1o";
	piece.n_ids = 2;
	piece.ids = ids;
	out = response_round_trip(&resp);
	tap_ok(out->id == 7 && out->protocol_version == 1 && out->body_case == STRATA__V1__RESPONSE__BODY_PIECE &&
	       strcmp(out->piece->text, piece.text) == 0 && out->piece->n_ids == 2 && out->piece->ids[1] == 30010,
	       "Response(Piece) round trip");
	strata__v1__response__free_unpacked(out, NULL);

	resp.body_case = STRATA__V1__RESPONSE__BODY_DONE;
	resp.done = &done;
	done.finish_reason = STRATA__V1__FINISH_REASON__FINISH_REASON_ERROR;
	done.timings = &tim;
	done.seed = 12345;
	done.stop_string = "";
	done.error = &err;
	err.code = STRATA__V1__ERROR_CODE__ERROR_CODE_IO_ERROR;
	err.message = "reading /models/x.gguf at offset 4096: Input/output error";
	tim.prompt_tokens = 12;
	tim.generated_tokens = 3;
	tim.queued_ms = 0.5;
	tim.time_to_first_token_ms = 812.25;
	tim.prompt_tokens_per_s = 14.8;
	tim.generation_tokens_per_s = 0.75;
	tim.total_ms = 3500.125;
	tim.bytes_read = 43000000000ull;
	tim.read_mb_per_s = 1950.5;
	tim.stall_ms = 120.0;
	out = response_round_trip(&resp);
	tap_ok(out->body_case == STRATA__V1__RESPONSE__BODY_DONE &&
	       out->done->finish_reason == STRATA__V1__FINISH_REASON__FINISH_REASON_ERROR && out->done->seed == 12345 &&
	       out->done->error && out->done->error->code == STRATA__V1__ERROR_CODE__ERROR_CODE_IO_ERROR &&
	       strcmp(out->done->error->message, err.message) == 0,
	       "Response(Done): finish reason, seed, nested Error");
	tap_ok(out->done->timings && out->done->timings->prompt_tokens == 12 && out->done->timings->generated_tokens == 3 &&
	       out->done->timings->time_to_first_token_ms == 812.25 && out->done->timings->total_ms == 3500.125 &&
	       out->done->timings->bytes_read == 43000000000ull && out->done->timings->read_mb_per_s == 1950.5 &&
	       out->done->timings->stall_ms == 120.0 && out->done->timings->generation_tokens_per_s == 0.75,
	       "Response(Done): timings and I/O stats exact");
	strata__v1__response__free_unpacked(out, NULL);

	resp.body_case = STRATA__V1__RESPONSE__BODY_TOKENIZE;
	resp.tokenize = &tr;
	tr.n_ids = 2;
	tr.ids = ids;
	tr.n_pieces = 2;
	tr.pieces = pieces;
	out = response_round_trip(&resp);
	tap_ok(out->body_case == STRATA__V1__RESPONSE__BODY_TOKENIZE && out->tokenize->n_ids == 2 &&
	       out->tokenize->n_pieces == 2 && out->tokenize->pieces[0].len == 2 &&
	       memcmp(out->tokenize->pieces[0].data, partial, 2) == 0 &&
	       memcmp(out->tokenize->pieces[1].data, "<s>", 3) == 0,
	       "Response(TokenizeReply): ids and raw byte pieces (a partial character survives)");
	strata__v1__response__free_unpacked(out, NULL);

	resp.body_case = STRATA__V1__RESPONSE__BODY_DETOKENIZE;
	resp.detokenize = &dr;
	dr.text = "hello \xef\xbf\xbd";
	out = response_round_trip(&resp);
	tap_ok(out->body_case == STRATA__V1__RESPONSE__BODY_DETOKENIZE && strcmp(out->detokenize->text, dr.text) == 0,
	       "Response(DetokenizeReply) round trip");
	strata__v1__response__free_unpacked(out, NULL);

	resp.body_case = STRATA__V1__RESPONSE__BODY_STATUS;
	resp.status = &sr;
	sr.daemon_version = "0.1.0";
	sr.protocol_version = 1;
	sr.model = &model;
	sr.memory = &mem;
	sr.io_mode = STRATA__V1__IO_MODE__IO_MODE_STREAM;
	sr.layers_resident = 12;
	sr.threads = 2;
	sr.requests_active = 1;
	sr.requests_queued = 3;
	sr.connections = 4;
	sr.requests_total = 99;
	sr.generated_tokens_total = 123456789012ull;
	sr.prompt_tokens_total = 5;
	sr.bytes_read_total = 1ull << 45;
	sr.uptime_ms = 86400000ull * 30;
	sr.max_frame_bytes = FRAME_REQUEST_CAP_DEFAULT;
	model.path = "/models/alia-40b.Q8_0.gguf";
	model.name = "ALIA-40b";
	model.architecture = "llama";
	model.n_layer = 48;
	model.n_embd = 8192;
	model.n_head = 64;
	model.n_head_kv = 8;
	model.n_ff = 24576;
	model.n_vocab = 256000;
	model.n_ctx_train = 4096;
	model.n_ctx = 2048;
	model.n_params = 40400000000ull;
	model.file_bytes = 43000000000ull;
	model.n_weight_types = 2;
	model.weight_types = wtp;
	wt[0].type = "q8_0";
	wt[0].n_tensors = 337;
	wt[0].bytes = 42900000000ull;
	wt[1].type = "f32";
	wt[1].n_tensors = 97;
	wt[1].bytes = 1600000;
	mem.weights_resident_bytes = 10ull << 30;
	mem.stream_buffer_bytes = 1600ull << 20;
	mem.kv_cache_bytes = 384ull << 20;
	mem.budget_bytes = 16ull << 30;
	mem.rss_bytes = 12ull << 30;
	out = response_round_trip(&resp);
	tap_ok(out->body_case == STRATA__V1__RESPONSE__BODY_STATUS && strcmp(out->status->daemon_version, "0.1.0") == 0 &&
	       out->status->io_mode == STRATA__V1__IO_MODE__IO_MODE_STREAM && out->status->layers_resident == 12 &&
	       out->status->requests_queued == 3 && out->status->generated_tokens_total == 123456789012ull &&
	       out->status->bytes_read_total == 1ull << 45 && out->status->uptime_ms == 86400000ull * 30 &&
	       out->status->max_frame_bytes == FRAME_REQUEST_CAP_DEFAULT,
	       "Response(StatusReply): top-level fields");
	tap_ok(out->status->model && strcmp(out->status->model->name, "ALIA-40b") == 0 &&
	       out->status->model->n_head_kv == 8 && out->status->model->n_vocab == 256000 &&
	       out->status->model->n_params == 40400000000ull && out->status->model->n_weight_types == 2 &&
	       strcmp(out->status->model->weight_types[0]->type, "q8_0") == 0 &&
	       out->status->model->weight_types[1]->bytes == 1600000,
	       "Response(StatusReply): model and weight types");
	tap_ok(out->status->memory && out->status->memory->kv_cache_bytes == 384ull << 20 &&
	       out->status->memory->budget_bytes == 16ull << 30 && out->status->memory->rss_bytes == 12ull << 30,
	       "Response(StatusReply): memory");
	tap_is_int(frame_check_utf8(&out->base, NULL), 0, "StatusReply: every nested string passes the UTF-8 check");
	strata__v1__response__free_unpacked(out, NULL);

	resp.body_case = STRATA__V1__RESPONSE__BODY_CANCEL;
	resp.cancel = &cr;
	out = response_round_trip(&resp);
	tap_ok(out->body_case == STRATA__V1__RESPONSE__BODY_CANCEL && out->cancel, "Response(CancelReply) round trip");
	strata__v1__response__free_unpacked(out, NULL);

	resp.id = 0;
	resp.body_case = STRATA__V1__RESPONSE__BODY_ERROR;
	resp.error = &err;
	err.code = STRATA__V1__ERROR_CODE__ERROR_CODE_FRAME_TOO_LARGE;
	err.message = "frame of 2000000 bytes is above the limit of 1048576 bytes (stratad --max-frame)";
	out = response_round_trip(&resp);
	tap_ok(out->id == 0 && out->body_case == STRATA__V1__RESPONSE__BODY_ERROR &&
	       out->error->code == STRATA__V1__ERROR_CODE__ERROR_CODE_FRAME_TOO_LARGE &&
	       strcmp(out->error->message, err.message) == 0, "Response(Error) round trip");
	strata__v1__response__free_unpacked(out, NULL);
}

static void test_pack(void)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	Strata__V1__Generate gen = STRATA__V1__GENERATE__INIT;
	uint8_t *buf, small[8], big[256];
	size_t len, body;
	ssize_t n;

	req.id = 1;
	req.protocol_version = 1;
	req.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
	req.generate = &gen;
	gen.prompt = "The quick brown fox";
	body = strata__v1__request__get_packed_size(&req);
	tap_is_int((int64_t)frame_size(&req.base), (int64_t)(body + 4), "frame_size = 4 + packed size");
	tap_is_int(frame_pack(&req.base, body - 1, &buf, &len), -EMSGSIZE, "frame_pack: a body above the cap is -EMSGSIZE");
	tap_ok(frame_pack(&req.base, body, &buf, &len) == 0 && len == body + 4 && buf[0] == 0 && buf[1] == 0 &&
	       buf[2] == (uint8_t)(body >> 8) && buf[3] == (uint8_t)body,
	       "frame_pack: exactly at the cap, with a big-endian prefix");
	n = frame_pack_into(&req.base, body, small, sizeof small);
	tap_is_int(n, -ENOSPC, "frame_pack_into: a small destination is -ENOSPC");
	n = frame_pack_into(&req.base, body, big, sizeof big);
	tap_ok(n == (ssize_t)len && memcmp(big, buf, len) == 0, "frame_pack_into: same bytes as frame_pack");
	free(buf);
}

static void test_unknown_and_malformed(void)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT, *out;
	Strata__V1__Status st = STRATA__V1__STATUS__INIT;
	uint8_t buf[128];
	size_t n;

	req.id = 5;
	req.protocol_version = 1;
	req.body_case = STRATA__V1__REQUEST__BODY_STATUS;
	req.status = &st;
	n = strata__v1__request__pack(&req, buf);
	/* What a newer client might add: field 3 varint 9, field 99 bytes "xyz",
	 * field 20 (an unknown oneof member) fixed32. */
	buf[n++] = (3 << 3) | 0;
	buf[n++] = 9;
	buf[n++] = (uint8_t)(((99 << 3) | 2) | 0x80);
	buf[n++] = (uint8_t)(((99 << 3) | 2) >> 7);
	buf[n++] = 3;
	memcpy(buf + n, "xyz", 3);
	n += 3;
	buf[n++] = (uint8_t)(((20 << 3) | 5) | 0x80);
	buf[n++] = (uint8_t)(((20 << 3) | 5) >> 7);
	memset(buf + n, 0xAB, 4);
	n += 4;
	out = strata__v1__request__unpack(NULL, n, buf);
	tap_ok(out && out->id == 5 && out->protocol_version == 1 && out->body_case == STRATA__V1__REQUEST__BODY_STATUS,
	       "unknown fields (varint, bytes, fixed32) are skipped and the known ones kept");
	strata__v1__request__free_unpacked(out, NULL);

	{
		/* A Request with only an unknown oneof member: no body the
		 * server knows (UNKNOWN_REQUEST, not MALFORMED). */
		uint8_t b[] = { 0x08, 0x02, ((21 << 3) | 2) | 0x80, ((21 << 3) | 2) >> 7, 0x00 };
		out = strata__v1__request__unpack(NULL, sizeof b, b);
		tap_ok(out && out->id == 2 && out->body_case == STRATA__V1__REQUEST__BODY__NOT_SET,
		       "a body from a newer protocol unpacks with body_case NOT_SET");
		strata__v1__request__free_unpacked(out, NULL);
	}

	{
		static const struct {
			const char *what;
			uint8_t len;
			uint8_t b[8];
		} bad[] = {
			{ "a truncated varint", 2, { 0x08, 0x80 } },
			{ "a length past the end", 3, { 0x52, 0x05, 0x0a } },
			{ "a known field with the wrong wire type", 3, { 0x0a, 0x01, 0x00 } },
			{ "field number 0", 2, { 0x00, 0x01 } },
			{ "wire type 7", 2, { 0x0f, 0x01 } },
			{ "a truncated fixed64", 5, { 0x09, 1, 2, 3, 4 } },
			{ "a nested message that is itself garbage", 4, { 0x52, 0x02, 0x08, 0x80 } },
		};
		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			out = strata__v1__request__unpack(NULL, bad[i].len, bad[i].b);
			tap_ok(out == NULL, "malformed: %s is rejected by unpack", bad[i].what);
			strata__v1__request__free_unpacked(out, NULL);
		}
	}
}

static void test_utf8(void)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	Strata__V1__Generate gen = STRATA__V1__GENERATE__INIT;
	char *stops[] = { "ok", "bad\xc3" };
	const char *field = NULL;

	req.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
	req.generate = &gen;
	gen.prompt = "fine";
	tap_is_int(frame_check_utf8(&req.base, &field), 0, "check_utf8: a valid request passes");
	gen.prompt = "caf\xe9"; /* Latin-1 */
	tap_ok(frame_check_utf8(&req.base, &field) == -EILSEQ && field && strcmp(field, "prompt") == 0,
	       "check_utf8: a Latin-1 prompt is -EILSEQ and names the field");
	gen.prompt = "fine";
	gen.n_stop = 2;
	gen.stop = stops;
	tap_ok(frame_check_utf8(&req.base, &field) == -EILSEQ && field && strcmp(field, "stop") == 0,
	       "check_utf8: a bad byte in the second stop string is found");
}

/* The sending side: a Status whose nested strings are not UTF-8 goes out
 * valid, and the caller's message is as it was afterwards. */
static void test_sanitize(void)
{
	Strata__V1__Response r = STRATA__V1__RESPONSE__INIT;
	Strata__V1__StatusReply sr = STRATA__V1__STATUS_REPLY__INIT;
	Strata__V1__Model m = STRATA__V1__MODEL__INIT;
	Strata__V1__WeightType wt[2] = { STRATA__V1__WEIGHT_TYPE__INIT, STRATA__V1__WEIGHT_TYPE__INIT };
	Strata__V1__WeightType *wtp[2] = { &wt[0], &wt[1] };
	char path[] = "/models/caf\xe9.gguf", name[] = "ALIA \xf0\x9f\x98", arch[] = "llama";
	struct frame_utf8_fixes fx = { 0 };
	const char *field = NULL;

	r.body_case = STRATA__V1__RESPONSE__BODY_STATUS;
	r.status = &sr;
	sr.model = &m;
	m.path = path;
	m.name = name;
	m.architecture = arch;
	wt[0].type = "q8_0";
	wt[1].type = "\xff";
	m.n_weight_types = 2;
	m.weight_types = wtp;
	tap_ok(frame_check_utf8(&r.base, &field) == -EILSEQ, "sanitize: the Status starts out invalid");
	int rc = frame_sanitize_utf8(&r.base, &fx);
	tap_ok(rc == 0 && fx.n == 3, "sanitize: 3 strings replaced (%zu)", fx.n);
	tap_is_int(frame_check_utf8(&r.base, &field), 0, "sanitize: then every string is UTF-8");
	tap_is_str(m.path, "/models/caf\xef\xbf\xbd.gguf", "sanitize: a Latin-1 byte becomes U+FFFD");
	tap_is_str(m.name, "ALIA \xef\xbf\xbd", "sanitize: a cut character becomes one U+FFFD");
	tap_is_str(wt[1].type, "\xef\xbf\xbd", "sanitize: ... in repeated nested messages too");
	uint8_t *buf;
	size_t len;
	tap_ok(frame_pack(&r.base, FRAME_RESPONSE_CAP, &buf, &len) == 0, "sanitize: the result packs");
	frame_utf8_fixes_undo(&fx);
	tap_ok(m.path == path && m.name == name && m.architecture == arch && strcmp(wt[0].type, "q8_0") == 0 &&
		       strcmp(wt[1].type, "\xff") == 0 && fx.n == 0 && fx.v == NULL,
	       "sanitize: undo puts the caller's strings back");
	Strata__V1__Response *out = strata__v1__response__unpack(NULL, len - 4, buf + 4);
	tap_ok(out && frame_check_utf8(&out->base, NULL) == 0 &&
		       strcmp(out->status->model->name, "ALIA \xef\xbf\xbd") == 0,
	       "sanitize: the packed frame reads back as valid UTF-8");
	strata__v1__response__free_unpacked(out, NULL);
	free(buf);
}

/* Hand-built wire bytes: a key, then a length and bytes (lengths < 128). */
static size_t wire_ld(uint8_t *p, unsigned field, const void *b, size_t n)
{
	p[0] = (uint8_t)(field << 3 | 2);
	p[1] = (uint8_t)n;
	memcpy(p + 2, b, n);
	return 2 + n;
}

/* Request{id 1, version 1, <body field> { <string field 1> = s[0..n) } } */
static size_t wire_request(uint8_t *out, unsigned body, const char *s, size_t n)
{
	uint8_t sub[128];
	size_t k = wire_ld(sub, 1, s, n), len = 0;
	out[len++] = 0x08, out[len++] = 1; /* id */
	out[len++] = 0x10, out[len++] = 1; /* protocol_version */
	return len + wire_ld(out + len, body, sub, k);
}

static bool same_name(const char *got, const char *want)
{
	return !want || (got && strcmp(got, want) == 0);
}

static void test_wire(void)
{
	const ProtobufCMessageDescriptor *d = &strata__v1__request__descriptor;
	uint8_t w[512];
	size_t n;
	const char *field, *problem;
	int rc;

#define WIRE(rc_want, field_want, what)                                                            \
	do {                                                                                       \
		field = problem = NULL;                                                            \
		rc = frame_check_wire(d, w, n, &field, &problem);                                  \
		tap_ok(rc == (rc_want) && same_name(field, field_want),                            \
		       "wire: %s (%d, %s %s)", what, rc, field ? field : "-", problem ? problem : ""); \
	} while (0)

	n = wire_request(w, 10, "Once upon a time", 16);
	WIRE(0, NULL, "a Generate with a plain prompt passes");
	n = wire_request(w, 10, "Hi\0 there", 9);
	WIRE(-EILSEQ, "prompt", "\"Hi\\0 there\" is refused, naming the prompt");
	Strata__V1__Request *req = strata__v1__request__unpack(NULL, n, w);
	tap_ok(req && strcmp(req->generate->prompt, "Hi") == 0 && frame_check_utf8(&req->base, NULL) == 0,
	       "wire: ... where the unpacked message shows only \"Hi\" and passes the unpacked check");
	strata__v1__request__free_unpacked(req, NULL);
	tap_ok(problem && strstr(problem, "U+0000"), "wire: ... and the problem names U+0000 (%s)", problem);
	n = wire_request(w, 10, "\0Once", 5);
	WIRE(-EILSEQ, "prompt", "a prompt that starts with NUL is refused");
	n = wire_request(w, 10, "ok\0\xff\xfe", 5);
	WIRE(-EILSEQ, "prompt", "invalid bytes after a NUL are caught");
	n = wire_request(w, 10, "caf\xc3", 4);
	WIRE(-EILSEQ, "prompt", "a prompt cut inside a character is refused");
	tap_ok(problem && strstr(problem, "UTF-8"), "wire: ... as not UTF-8");
	n = wire_request(w, 11, "a\0b", 3);
	WIRE(-EILSEQ, "text", "a Tokenize text with NUL is refused, naming the text");

	/* a stop string with a NUL, in second place */
	{
		uint8_t sub[64];
		size_t k = wire_ld(sub, 1, "go", 2);
		k += wire_ld(sub + k, 10, "\n\n", 2);
		k += wire_ld(sub + k, 10, "Us\0er", 5);
		n = 0;
		w[n++] = 0x08, w[n++] = 3;
		n += wire_ld(w + n, 10, sub, k);
	}
	WIRE(-EILSEQ, "stop", "a NUL in the second stop string is found");

	/* the Generate sub-message twice: protobuf merges, protobuf-c replaces */
	n = wire_request(w, 10, "first", 5);
	{
		uint8_t sub[16];
		size_t k = wire_ld(sub, 1, "second", 6);
		n += wire_ld(w + n, 10, sub, k);
	}
	WIRE(-EBADMSG, "generate", "a Generate sent twice in one Request is refused");
	tap_ok(problem && strstr(problem, "twice"), "wire: ... saying it appears twice (%s)", problem);
	/* two different members of the oneof: the last wins everywhere, no merge */
	n = wire_request(w, 10, "first", 5);
	n += wire_ld(w + n, 13, "", 0);
	WIRE(0, NULL, "two different oneof members pass (the last one wins)");
	/* repeated stop strings are repeated, not a repeat */
	{
		uint8_t sub[64];
		size_t k = wire_ld(sub, 10, "a", 1);
		k += wire_ld(sub + k, 10, "b", 1);
		n = 0;
		n += wire_ld(w + n, 10, sub, k);
	}
	WIRE(0, NULL, "two stop strings pass");
	/* bytes that are not text: an unknown field and packed ids may hold 0 and 0xff */
	n = wire_request(w, 10, "ok", 2);
	n += wire_ld(w + n, 99, "\0\xff", 2);
	WIRE(0, NULL, "an unknown length-delimited field with NUL and 0xff passes");
	{
		uint8_t sub[16];
		size_t k = wire_ld(sub, 1, "\0\x80\x01\xff\x01", 5); /* Detokenize.ids, packed */
		n = 0;
		n += wire_ld(w + n, 12, sub, k);
	}
	WIRE(0, NULL, "packed token ids (0, 128, 255) pass");
	n = wire_request(w, 10, "Once upon a time", 16) - 3;
	WIRE(-EBADMSG, NULL, "a body cut short is not wire format");
	w[0] = 0x0b, n = 1; /* field 1 as a group */
	WIRE(-EBADMSG, NULL, "a group is refused");
	n = 0;
	WIRE(0, NULL, "an empty body passes");
#undef WIRE
}

int main(void)
{
	test_one_byte_writes();
	test_many_frames_one_write();
	test_cap();
	test_zero_length();
	test_eof();
	test_eintr();
	test_write_nonblocking();
	test_write_epipe();
	test_reader_feed();
	test_reader_fill();
	test_requests();
	test_responses();
	test_pack();
	test_unknown_and_malformed();
	test_utf8();
	test_sanitize();
	test_wire();
	return tap_done();
}
