/* test-daemon.c: the real stratad, started here on a private socket with a
 * real NOTIFY_SOCKET, driven over real protobuf frames: readiness, status,
 * generation, 16 clients at once, every kind of bad input (each followed by
 * proof that the daemon still serves), cancel, overload, watchdog and STATUS
 * notifications, and SIGTERM while requests stream. Uses stories260K when
 * ../shared is there, else a synthetic model. Then a second stratad with
 * small limits: per-user connection shares, refusals that arrive whole, idle
 * and half-sent-frame timeouts. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernels/types.h"
#include "proto/frame.h"
#include "tests/tap.h"
#include "tools/synth.h"

#define N_CLIENTS 16
#define TIMEOUT_MS 60000

static char sock_path[100], notify_path[100], model_path[4096];
static int notify_fd = -1;
static char notes[65536]; /* every datagram received, newline-separated */
static size_t notes_len;
static pid_t daemon_pid;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Notifications are read all the time by a thread, as systemd does: a
 * daemon whose NOTIFY_SOCKET nobody reads would block in sd_notify. */
static pthread_mutex_t notes_mu = PTHREAD_MUTEX_INITIALIZER;

static void *notes_reader(void *arg)
{
	(void)arg;
	for (;;) {
		char buf[4096];
		ssize_t n = recv(notify_fd, buf, sizeof buf - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		pthread_mutex_lock(&notes_mu);
		if (notes_len + (size_t)n + 2 < sizeof notes) {
			memcpy(notes + notes_len, buf, (size_t)n);
			notes_len += (size_t)n;
			notes[notes_len++] = '\n';
			notes[notes_len] = '\0';
		}
		pthread_mutex_unlock(&notes_mu);
	}
}

static bool has_note(const char *what)
{
	pthread_mutex_lock(&notes_mu);
	bool found = strstr(notes, what) != NULL;
	pthread_mutex_unlock(&notes_mu);
	return found;
}

static bool wait_note(const char *what, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while (!has_note(what) && now_ms() < end)
		usleep(20000);
	return has_note(what);
}

static int connect_daemon(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int send_req(int fd, Strata__V1__Request *r)
{
	return frame_send(fd, &r->base, FRAME_REQUEST_CAP_DEFAULT);
}

/* Next response, or NULL on EOF or after timeout_ms. Caller frees with free_unpacked. */
static Strata__V1__Response *recv_resp_within(int fd, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	if (poll(&p, 1, timeout_ms) <= 0)
		return NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	if (frame_read(fd, FRAME_RESPONSE_CAP, &buf, &len) != 1)
		return NULL;
	Strata__V1__Response *r = strata__v1__response__unpack(NULL, len, buf);
	free(buf);
	return r;
}

static Strata__V1__Response *recv_resp(int fd)
{
	return recv_resp_within(fd, TIMEOUT_MS);
}

static void free_resp(Strata__V1__Response *r)
{
	if (r)
		strata__v1__response__free_unpacked(r, NULL);
}

/* True if the peer closed (EOF) within the timeout. */
static bool sees_eof(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	if (poll(&p, 1, TIMEOUT_MS) <= 0)
		return false;
	char c;
	return recv(fd, &c, 1, 0) == 0;
}

static void req_init(Strata__V1__Request *r, uint64_t id)
{
	strata__v1__request__init(r);
	r->id = id;
	r->protocol_version = STRATA_PROTOCOL_VERSION;
}

static int send_status(int fd, uint64_t id)
{
	Strata__V1__Request r;
	Strata__V1__Status st = STRATA__V1__STATUS__INIT;
	req_init(&r, id);
	r.body_case = STRATA__V1__REQUEST__BODY_STATUS;
	r.status = &st;
	return send_req(fd, &r);
}

/* greedy: temperature 0; long generations also ignore end-of-generation
 * tokens (n > 100), so they are surely still running when the test acts. */
static int send_generate(int fd, uint64_t id, const char *prompt, uint32_t n, bool greedy)
{
	Strata__V1__Request r;
	Strata__V1__Generate g = STRATA__V1__GENERATE__INIT;
	req_init(&r, id);
	g.prompt = (char *)prompt;
	g.max_tokens = n;
	g.ignore_eos = n > 100;
	if (greedy) {
		g.temperature_opt_case = STRATA__V1__GENERATE__TEMPERATURE_OPT_TEMPERATURE;
		g.temperature = 0.0f;
	}
	r.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
	r.generate = &g;
	return send_req(fd, &r);
}

struct gen_result {
	char text[65536];
	size_t len;
	uint32_t n_ids;
	int finish;	  /* Strata__V1__FinishReason, or -1 */
	uint32_t generated;
	int error_code;	  /* when an Error reply came instead */
};

/* Read one Generate's replies to the end. */
static void read_generation(int fd, uint64_t id, struct gen_result *g)
{
	memset(g, 0, sizeof *g);
	g->finish = -1;
	for (;;) {
		Strata__V1__Response *r = recv_resp(fd);
		if (!r)
			return;
		if (r->id != id) {
			free_resp(r);
			continue;
		}
		if (r->body_case == STRATA__V1__RESPONSE__BODY_PIECE) {
			size_t n = strlen(r->piece->text);
			if (g->len + n < sizeof g->text) {
				memcpy(g->text + g->len, r->piece->text, n);
				g->len += n;
				g->text[g->len] = '\0';
			}
			g->n_ids += (uint32_t)r->piece->n_ids;
		} else if (r->body_case == STRATA__V1__RESPONSE__BODY_DONE) {
			g->finish = r->done->finish_reason;
			g->generated = r->done->timings ? r->done->timings->generated_tokens : 0;
			free_resp(r);
			return;
		} else if (r->body_case == STRATA__V1__RESPONSE__BODY_ERROR) {
			g->error_code = r->error->code;
			free_resp(r);
			return;
		}
		free_resp(r);
	}
}

/* A fresh client can still get a Status: the daemon is alive and serving. */
static bool daemon_serves(void)
{
	int fd = connect_daemon();
	if (fd < 0)
		return false;
	bool ok = false;
	if (send_status(fd, 77) == 0) {
		Strata__V1__Response *r = recv_resp(fd);
		ok = r && r->id == 77 && r->body_case == STRATA__V1__RESPONSE__BODY_STATUS;
		free_resp(r);
	}
	close(fd);
	return ok;
}

/* An Error reply with this code (and optional words in its message). */
static bool expect_error(int fd, int code, const char *words, uint64_t *id_out)
{
	Strata__V1__Response *r = recv_resp(fd);
	bool ok = r && r->body_case == STRATA__V1__RESPONSE__BODY_ERROR && (int)r->error->code == code &&
		  (!words || strstr(r->error->message, words));
	if (!ok && r && r->body_case == STRATA__V1__RESPONSE__BODY_ERROR)
		tap_diag("got error %d: %s", r->error->code, r->error->message);
	else if (!ok)
		tap_diag("got %s", r ? "another reply" : "no reply");
	if (r && id_out)
		*id_out = r->id;
	free_resp(r);
	return ok;
}

static void write_raw(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		tap_diag("short write: %s", strerror(errno));
}

/* Append one packed Request frame to buf[*len..cap). */
static void pack_req(Strata__V1__Request *r, uint8_t *buf, size_t cap, size_t *len)
{
	ssize_t n = frame_pack_into(&r->base, FRAME_REQUEST_CAP_DEFAULT, buf + *len, cap - *len);
	if (n < 0)
		tap_bail("frame_pack_into: %s", strerror((int)-n));
	*len += (size_t)n;
}

/* Send n requests in one write(): n Status (gen == false) or n short greedy
 * Generates, ids first_id.., then count the terminal replies (Status, Done or
 * Error) until all have come or the daemon falls silent. */
static int pipelined(int fd, int n, bool gen, uint64_t first_id)
{
	static uint8_t buf[65536];
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		Strata__V1__Request r;
		Strata__V1__Status st = STRATA__V1__STATUS__INIT;
		Strata__V1__Generate g = STRATA__V1__GENERATE__INIT;
		req_init(&r, first_id + (uint64_t)i);
		if (gen) {
			g.prompt = (char *)"Once upon a time";
			g.max_tokens = 2;
			g.temperature_opt_case = STRATA__V1__GENERATE__TEMPERATURE_OPT_TEMPERATURE;
			r.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
			r.generate = &g;
		} else {
			r.body_case = STRATA__V1__REQUEST__BODY_STATUS;
			r.status = &st;
		}
		pack_req(&r, buf, sizeof buf, &len);
	}
	write_raw(fd, buf, len);
	int terminal = 0;
	while (terminal < n) {
		Strata__V1__Response *r = recv_resp_within(fd, 5000);
		if (!r)
			break;
		if (r->body_case != STRATA__V1__RESPONSE__BODY_PIECE)
			terminal++;
		free_resp(r);
	}
	return terminal;
}

static void start_daemon(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(notify_path, sizeof notify_path, "%s/notify", tap_tmpdir());
	snprintf(a.sun_path, sizeof a.sun_path, "%s", notify_path);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0 || bind(notify_fd, (struct sockaddr *)&a, sizeof a) < 0)
		tap_bail("notify socket: %s", strerror(errno));
	pthread_t reader;
	if (pthread_create(&reader, NULL, notes_reader, NULL) != 0)
		tap_bail("cannot start the notification reader");
	pthread_detach(reader);

	char stratad[4096], log_path[4096];
	snprintf(stratad, sizeof stratad, "%s/daemon/stratad", tap_builddir());
	snprintf(log_path, sizeof log_path, "%s/stratad.log", tap_tmpdir());
	daemon_pid = fork();
	if (daemon_pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (daemon_pid == 0) {
		int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (log >= 0)
			dup2(log, 2);
		setenv("NOTIFY_SOCKET", notify_path, 1);
		setenv("WATCHDOG_USEC", "400000", 1);
		unsetenv("WATCHDOG_PID");
		execl(stratad, stratad, "--model", model_path, "--socket", sock_path, "--ctx-size", "512",
		      "--parallel", "4", "--max-queue", "12", "--max-frame", "4096", "--threads", "2",
		      "--kv-type", "f32", "--shutdown-timeout", "0", "--log-level", "debug",
		      "--config", "/dev/null", (char *)NULL);
		_exit(127);
	}
}

/* The second daemon: small limits and short timeouts, on its own socket and
 * model; ready when it answers. Its log is limits.log. */
static pid_t start_limits_daemon(const char *model)
{
	char stratad[4096], log_path[4096];
	snprintf(stratad, sizeof stratad, "%s/daemon/stratad", tap_builddir());
	snprintf(log_path, sizeof log_path, "%s/limits.log", tap_tmpdir());
	pid_t pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (log >= 0)
			dup2(log, 2);
		unsetenv("NOTIFY_SOCKET");
		execl(stratad, stratad, "--model", model, "--socket", sock_path, "--ctx-size", "128",
		      "--threads", "2", "--max-clients", "8", "--max-clients-per-uid", "4",
		      "--idle-timeout", "8", "--frame-timeout", "1", "--max-frame", "33554432",
		      "--shutdown-timeout", "0", "--log-level", "debug", "--config", "/dev/null",
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 600 && !daemon_serves() && waitpid(pid, NULL, WNOHANG) == 0; i++)
		usleep(50000);
	return pid;
}

/* `strata status` run as another user (nobody): exit status, or -1. */
static int status_as_nobody(void)
{
	char strata[4096];
	snprintf(strata, sizeof strata, "%s/client/strata", tap_builddir());
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		/* gid 0 stays: the socket is group-writable (0660, group root here) */
		if (setuid(65534) != 0)
			_exit(126);
		execl(strata, strata, "--socket", sock_path, "status", (char *)NULL);
		_exit(127);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* The peer closed within timeout_ms (EOF or a reset; replies before it are skipped). */
static bool closed_within(int fd, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int left = (int)(end - now_ms());
		struct pollfd p = { fd, POLLIN, 0 };
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return false;
		char buf[4096];
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			return true;
	}
}

/* A Tokenize of `n` euro signs: each is 3 byte tokens of ids above 127, so
 * its reply takes about 15 bytes per sign. Sent with no cap of our own. */
static int send_euros(int fd, uint64_t id, size_t n)
{
	char *text = malloc(3 * n + 1);
	if (!text)
		tap_bail("out of memory");
	for (size_t i = 0; i < n; i++)
		memcpy(text + 3 * i, "\xe2\x82\xac", 3);
	text[3 * n] = '\0';
	Strata__V1__Request r;
	Strata__V1__Tokenize t = STRATA__V1__TOKENIZE__INIT;
	req_init(&r, id);
	t.text = text;
	r.body_case = STRATA__V1__REQUEST__BODY_TOKENIZE;
	r.tokenize = &t;
	int rc = frame_send(fd, &r.base, UINT32_MAX);
	free(text);
	return rc;
}

struct euro_writer {
	int fd, n;
	size_t each;
};

static void *euro_writer_main(void *arg)
{
	struct euro_writer *w = arg;
	for (int i = 0; i < w->n; i++)
		send_euros(w->fd, 600 + (uint64_t)i, w->each);
	return NULL;
}

static void test_big_replies(void)
{
	/* above the 16 MiB a connection's output queue once held: delivered */
	int fd = connect_daemon();
	send_euros(fd, 500, 1400000);
	Strata__V1__Response *r = recv_resp(fd);
	tap_ok(r && r->id == 500 && r->body_case == STRATA__V1__RESPONSE__BODY_TOKENIZE &&
		       r->tokenize->n_ids >= 4200000,
	       "a Tokenize reply of %.1f MiB (over the old 16 MiB output cap) arrives whole",
	       r ? strata__v1__response__get_packed_size(r) / 1048576.0 : 0.0);
	free_resp(r);
	/* over the 64 MiB a response frame may hold: an error, the connection lives */
	send_euros(fd, 501, 4600000);
	tap_ok(expect_error(fd, STRATA__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "64", NULL),
	       "a Tokenize whose reply would pass 64 MiB gets INVALID_ARGUMENT");
	send_status(fd, 502);
	r = recv_resp(fd);
	tap_ok(r && r->id == 502 && r->body_case == STRATA__V1__RESPONSE__BODY_STATUS,
	       "... and the connection goes on serving");
	free_resp(r);
	close(fd);

	/* three such requests sent while the client reads nothing for a while:
	 * stratad stops reading that connection's requests instead of closing it */
	fd = connect_daemon();
	struct euro_writer w = { fd, 3, 1400000 };
	pthread_t th;
	if (pthread_create(&th, NULL, euro_writer_main, &w) != 0)
		tap_bail("pthread_create failed");
	sleep(2);
	int whole = 0;
	for (int i = 0; i < 3; i++) {
		r = recv_resp(fd);
		whole += r && r->id == 600 + (uint64_t)i && r->body_case == STRATA__V1__RESPONSE__BODY_TOKENIZE &&
			 r->tokenize->n_ids >= 4200000;
		free_resp(r);
	}
	pthread_join(th, NULL);
	tap_is_int(whole, 3, "3 replies of 20 MiB to a client that reads late all arrive, in order");
	close(fd);
}

static void test_limits(void)
{
	char model[4096];
	struct st_err err = { "" };
	struct synth_params sp = { .n_embd = 32, .n_layer = 1, .n_head = 2, .n_head_kv = 2,
				   .n_ff = 64, .n_ctx = 128, .type = ST_F32, .vocab_path = "builtin",
				   .seed = 4, .name = "lim\xffits \xc3" };
	/* its path and general.name are not UTF-8: Status must still send UTF-8 */
	snprintf(model, sizeof model, "%s/limits-\xfe\xff.gguf", tap_tmpdir());
	if (synth_write(model, &sp, &err) < 0)
		tap_bail("synth: %s", err.msg);
	snprintf(sock_path, sizeof sock_path, "%s/limits.sock", tap_tmpdir());
	pid_t pid = start_limits_daemon(model);
	if (!tap_ok(daemon_serves(), "a second stratad with --max-clients 8 --max-clients-per-uid 4 "
		    "--idle-timeout 8 --frame-timeout 1 serves")) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}

	int fd = connect_daemon();
	send_status(fd, 1);
	Strata__V1__Response *r = recv_resp(fd);
	const char *field = NULL;
	tap_ok(r && r->body_case == STRATA__V1__RESPONSE__BODY_STATUS && r->status->model &&
		       frame_check_utf8(&r->base, &field) == 0,
	       "a model whose path and name are not UTF-8: Status is valid UTF-8 (bad field: %s)",
	       field ? field : "none");
	if (r && r->body_case == STRATA__V1__RESPONSE__BODY_STATUS && r->status->model) {
		tap_ok(strstr(r->status->model->path, "limits-\xef\xbf\xbd\xef\xbf\xbd.gguf") != NULL,
		       "... the path's bad bytes are each replaced by U+FFFD (%s)", r->status->model->path);
		tap_is_str(r->status->model->name, "lim\xef\xbf\xbdits \xef\xbf\xbd",
			   "... and so are the name's");
	} else {
		tap_skip("no Status");
		tap_skip("no Status");
	}
	free_resp(r);
	close(fd);

	/* one user fills its share of the slots with connections that do nothing */
	int held[4];
	bool all = true;
	for (int i = 0; i < 4; i++) {
		held[i] = connect_daemon();
		all &= held[i] >= 0;
	}
	tap_ok(all, "4 connections of one user are open and idle");
	fd = connect_daemon();
	uint64_t eid = 99;
	tap_ok(fd >= 0 && expect_error(fd, STRATA__V1__ERROR_CODE__ERROR_CODE_OVERLOADED,
				       "--max-clients-per-uid", &eid) && eid == 0,
	       "a 5th connection of the same user gets OVERLOADED naming --max-clients-per-uid");
	tap_ok(sees_eof(fd), "... and is closed");
	close(fd);
	if (getuid() == 0) {
		/* the test's directory must be passable for another user */
		chmod(tap_tmpdir(), 0711);
		int rc = status_as_nobody();
		tap_ok(rc == 0, "meanwhile another user (nobody) is served: strata status exits %d", rc);
	} else {
		tap_skip("not root: no other user to connect as");
	}

	/* a refused client that writes first still reads its OVERLOADED: the
	 * server drains its input before closing, so no reset overtakes the frame.
	 * Its write itself may still fail (EPIPE) when the server closed first
	 * (its linger deadline passed on a stalled machine, or LINGER_MAX): what a
	 * client needs is the frame, which it can read either way (cli_send does) */
	int refused = 0, write_failed = 0;
	for (int i = 0; i < 200; i++) {
		fd = connect_daemon();
		if (fd < 0)
			continue;
		if (send_status(fd, 5) < 0)
			write_failed++;
		r = recv_resp_within(fd, 5000);
		if (r && r->body_case == STRATA__V1__RESPONSE__BODY_ERROR &&
		    r->error->code == STRATA__V1__ERROR_CODE__ERROR_CODE_OVERLOADED)
			refused++;
		free_resp(r);
		close(fd);
	}
	tap_ok(refused == 200,
	       "200 refused clients that write first: each reads its OVERLOADED (%d did; %d writes failed)",
	       refused, write_failed);

	/* a frame begun and not finished is closed after --frame-timeout;
	 * the idle connections after --idle-timeout, not sooner (8 s: the
	 * checks since they went idle take ~2 s here, more on a stalled machine) */
	close(held[3]);
	usleep(100000);
	fd = connect_daemon();
	uint8_t two[2] = { 0, 0 };
	write_raw(fd, two, sizeof two);
	uint64_t t0 = now_ms();
	bool cut = closed_within(fd, 3000);
	tap_ok(cut, "2 bytes of a length prefix, then nothing: closed after --frame-timeout 1 (%.1f s)",
	       (double)(now_ms() - t0) / 1000);
	close(fd);
	int still = 0;
	for (int i = 0; i < 3; i++) {
		struct pollfd p = { held[i], POLLIN, 0 };
		still += poll(&p, 1, 0) == 0;
	}
	tap_is_int(still, 3, "the idle connections are still open then");
	int gone = 0;
	for (int i = 0; i < 3; i++) {
		gone += closed_within(held[i], 12000);
		close(held[i]);
	}
	tap_is_int(gone, 3, "the 3 idle connections are closed after --idle-timeout 8");
	tap_ok(daemon_serves(), "... and their user is served again");

	test_big_replies();

	kill(pid, SIGTERM);
	int status = 0;
	tap_ok(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "the second stratad exits 0 on SIGTERM");
}

static void show_log(void)
{
	char path[4096], line[1024];
	snprintf(path, sizeof path, "%s/stratad.log", tap_tmpdir());
	FILE *f = fopen(path, "r");
	for (int i = 0; f && fgets(line, sizeof line, f) && i < 200; i++)
		printf("# stratad: %s", line);
	if (f)
		fclose(f);
}

int main(void)
{
	const char *shared = tap_shared_dir();
	struct stat st;
	snprintf(sock_path, sizeof sock_path, "%s/s.sock", tap_tmpdir());
	if (shared && (snprintf(model_path, sizeof model_path, "%s/models/stories260K.gguf", shared),
		       stat(model_path, &st) == 0)) {
		tap_diag("model: stories260K");
	} else {
		struct st_err err = { "" };
		struct synth_params sp = { .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
					   .n_ff = 128, .n_ctx = 512, .type = ST_F32,
					   .vocab_path = "builtin", .seed = 3 };
		snprintf(model_path, sizeof model_path, "%s/synth.gguf", tap_tmpdir());
		if (synth_write(model_path, &sp, &err) < 0)
			tap_bail("synth: %s", err.msg);
		tap_diag("model: synthetic (../shared is absent)");
	}
	signal(SIGPIPE, SIG_IGN);
	start_daemon();

	/* ---- readiness ---- */
	bool ready = wait_note("READY=1", TIMEOUT_MS);
	if (!tap_ok(ready, "READY=1 arrives on NOTIFY_SOCKET")) {
		show_log();
		kill(daemon_pid, SIGKILL);
		tap_bail("stratad did not become ready");
	}
	tap_ok(stat(sock_path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0660,
	       "the socket exists with mode 0660");
	tap_ok(has_note("STATUS=Loading") && has_note("100% of"),
	       "STATUS= says the model is loading, in percent of the resident weights, up to 100%%");

	/* ---- status ---- */
	int fd = connect_daemon();
	tap_ok(fd >= 0 && send_status(fd, 1) == 0, "connect and ask for status");
	Strata__V1__Response *r = recv_resp(fd);
	tap_ok(r && r->id == 1 && r->body_case == STRATA__V1__RESPONSE__BODY_STATUS && r->status->model &&
		       r->status->model->n_layer > 0 && r->status->model->n_ctx == 512 &&
		       r->protocol_version == STRATA_PROTOCOL_VERSION,
	       "status names the model and the context");
	free_resp(r);

	/* ---- one generation ---- */
	struct gen_result *solo = malloc(sizeof *solo);
	send_generate(fd, 2, "Once upon a time", 48, true);
	read_generation(fd, 2, solo);
	tap_ok(solo->finish == STRATA__V1__FINISH_REASON__FINISH_REASON_LENGTH && solo->generated == 48 &&
		       solo->n_ids == 48 && solo->len > 0,
	       "a greedy generation streams 48 tokens and ends with LENGTH (%u tokens, %zu bytes)",
	       solo->generated, solo->len);
	close(fd);

	/* ---- 16 clients at once ---- */
	int fds[N_CLIENTS];
	bool all_sent = true;
	for (int i = 0; i < N_CLIENTS; i++) {
		fds[i] = connect_daemon();
		all_sent &= fds[i] >= 0 && send_generate(fds[i], 100 + (uint64_t)i, "Once upon a time", 48, true) == 0;
	}
	tap_ok(all_sent, "16 clients connect and send a request each");
	int same = 0;
	for (int i = 0; i < N_CLIENTS; i++) {
		struct gen_result *g = malloc(sizeof *g);
		read_generation(fds[i], 100 + (uint64_t)i, g);
		if (g->finish == STRATA__V1__FINISH_REASON__FINISH_REASON_LENGTH && g->len == solo->len &&
		    memcmp(g->text, solo->text, solo->len) == 0)
			same++;
		else
			tap_diag("client %d: finish %d, %zu bytes: %.80s", i, g->finish, g->len, g->text);
		free(g);
		close(fds[i]);
	}
	tap_is_int(same, N_CLIENTS, "all 16 clients get the complete, correct answer");

	/* ---- bad input, each followed by a check that the daemon still serves ---- */
	fd = connect_daemon();
	uint8_t big[4] = { 0x00, 0x10, 0x00, 0x00 }; /* 1 MiB > --max-frame 4096 */
	write_raw(fd, big, 4);
	uint64_t eid = 99;
	tap_ok(expect_error(fd, STRATA__V1__ERROR_CODE__ERROR_CODE_FRAME_TOO_LARGE, "4096", &eid) && eid == 0,
	       "a length prefix over the cap gets FRAME_TOO_LARGE (id 0) naming the cap");
	tap_ok(sees_eof(fd), "... and the connection is closed");
	close(fd);
	tap_ok(daemon_serves(), "the daemon still serves");

	fd = connect_daemon();
	uint8_t garbage[14] = { 0, 0, 0, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	write_raw(fd, garbage, sizeof garbage);
	tap_ok(expect_error(fd, STRATA__V1__ERROR_CODE__ERROR_CODE_MALFORMED, NULL, NULL),
	       "garbage bytes get MALFORMED");
	tap_ok(sees_eof(fd), "... and the connection is closed");
	close(fd);
	tap_ok(daemon_serves(), "the daemon still serves");

	fd = connect_daemon();
	uint8_t partial[8] = { 0, 0, 0, 100, 8, 1, 16, 1 };
	write_raw(fd, partial, sizeof partial);
	close(fd);
	tap_ok(daemon_serves(), "a truncated frame then hang-up: the daemon still serves");

	fd = connect_daemon();
	Strata__V1__Request req;
	Strata__V1__Status stb = STRATA__V1__STATUS__INIT;
	req_init(&req, 5);
	req.protocol_version = 99;
	req.body_case = STRATA__V1__REQUEST__BODY_STATUS;
	req.status = &stb;
	send_req(fd, &req);
	Strata__V1__Response *vr = recv_resp(fd);
	tap_ok(vr && vr->body_case == STRATA__V1__RESPONSE__BODY_ERROR &&
		       vr->error->code == STRATA__V1__ERROR_CODE__ERROR_CODE_BAD_VERSION &&
		       strstr(vr->error->message, "99") && strstr(vr->error->message, "1"),
	       "a wrong version gets BAD_VERSION naming both versions (%s)",
	       vr && vr->body_case == STRATA__V1__RESPONSE__BODY_ERROR ? vr->error->message : "-");
	free_resp(vr);
	close(fd);

	fd = connect_daemon();
	req_init(&req, 6);
	req.protocol_version = 0;
	req.body_case = STRATA__V1__REQUEST__BODY_STATUS;
	req.status = &stb;
	send_req(fd, &req);
	tap_ok(expect_error(fd, STRATA__V1__ERROR_CODE__ERROR_CODE_BAD_VERSION, NULL, NULL),
	       "a first request without a version gets BAD_VERSION");
	close(fd);

	fd = connect_daemon();
	req_init(&req, 7); /* no body */
	send_req(fd, &req);
	tap_ok(expect_error(fd, STRATA__V1__ERROR_CODE__ERROR_CODE_UNKNOWN_REQUEST, NULL, NULL),
	       "a request without a known body gets UNKNOWN_REQUEST");
	send_status(fd, 8);
	r = recv_resp(fd);
	tap_ok(r && r->id == 8 && r->body_case == STRATA__V1__RESPONSE__BODY_STATUS,
	       "... and the same connection goes on serving");
	free_resp(r);

	static char long_prompt[60000];
	size_t lp = 0;
	while (lp + 12 < sizeof long_prompt)
		lp += (size_t)snprintf(long_prompt + lp, sizeof long_prompt - lp, "Once upon a ");
	Strata__V1__Generate gen = STRATA__V1__GENERATE__INIT;
	req_init(&req, 9);
	gen.prompt = long_prompt;
	req.body_case = STRATA__V1__REQUEST__BODY_GENERATE;
	req.generate = &gen;
	/* over --max-frame 4096: a frame this big is refused before parsing; so send
	 * a prompt that fits the frame but not the 512-token context */
	long_prompt[3900] = '\0';
	send_req(fd, &req);
	tap_ok(expect_error(fd, STRATA__V1__ERROR_CODE__ERROR_CODE_PROMPT_TOO_LONG, "512", NULL),
	       "a prompt longer than the context gets PROMPT_TOO_LONG naming the context size");

	gen.prompt = (char *)"caf\xc3";
	req.id = 10;
	send_req(fd, &req);
	tap_ok(expect_error(fd, STRATA__V1__ERROR_CODE__ERROR_CODE_MALFORMED, "prompt", NULL),
	       "a prompt that is not UTF-8 gets MALFORMED naming the field");
	close(fd);
	tap_ok(daemon_serves(), "the daemon still serves");

	/* NUL inside a string: protobuf-c's C string would stop at it ("Hi") */
	static const uint8_t nul_text[] = { 0, 0, 0, 17, 0x08, 11, 0x10, 1, 0x5a, 11,
					    0x0a, 9, 'H', 'i', 0, ' ', 't', 'h', 'e', 'r', 'e' };
	fd = connect_daemon();
	write_raw(fd, nul_text, sizeof nul_text);
	eid = 0;
	tap_ok(expect_error(fd, STRATA__V1__ERROR_CODE__ERROR_CODE_MALFORMED, "field 'text'", &eid) &&
		       eid == 11, "a Tokenize of \"Hi\\0 there\" gets MALFORMED naming the field (not the "
		       "tokens of \"Hi\")");
	tap_ok(sees_eof(fd), "... and the connection is closed");
	close(fd);
	/* a Generate twice in one frame: Python merges the two, protobuf-c would
	 * have kept the second alone */
	static const uint8_t twice[] = { 0, 0, 0, 21, 0x08, 12, 0x10, 1, 0x52, 6, 0x0a, 4, 'O', 'n',
					 'c', 'e', 0x52, 7, 0x10, 4, 0x1d, 0, 0, 0, 0 };
	fd = connect_daemon();
	write_raw(fd, twice, sizeof twice);
	tap_ok(expect_error(fd, STRATA__V1__ERROR_CODE__ERROR_CODE_MALFORMED, "appears twice", NULL),
	       "a Generate sent twice in one Request gets MALFORMED (\"appears twice\")");
	close(fd);
	tap_ok(daemon_serves(), "the daemon still serves");

	/* cancel, and cancel of an unknown id */
	fd = connect_daemon();
	send_generate(fd, 20, "Once upon a time", 400, false);
	r = recv_resp(fd); /* first piece: it is running */
	bool running = r && r->id == 20 && r->body_case == STRATA__V1__RESPONSE__BODY_PIECE;
	free_resp(r);
	Strata__V1__Cancel cancel = STRATA__V1__CANCEL__INIT;
	req_init(&req, 21);
	cancel.target_id = 20;
	req.body_case = STRATA__V1__REQUEST__BODY_CANCEL;
	req.cancel = &cancel;
	send_req(fd, &req);
	bool got_reply = false, got_done = false;
	for (int i = 0; i < 1000 && !(got_reply && got_done); i++) {
		r = recv_resp(fd);
		if (!r)
			break;
		if (r->id == 21 && r->body_case == STRATA__V1__RESPONSE__BODY_CANCEL)
			got_reply = true;
		if (r->id == 20 && r->body_case == STRATA__V1__RESPONSE__BODY_DONE)
			got_done = r->done->finish_reason == STRATA__V1__FINISH_REASON__FINISH_REASON_CANCELLED;
		free_resp(r);
	}
	tap_ok(running && got_reply && got_done, "Cancel stops a running Generate (CancelReply, Done CANCELLED)");
	req.id = 22;
	cancel.target_id = 12345;
	send_req(fd, &req);
	tap_ok(expect_error(fd, STRATA__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND, NULL, NULL),
	       "Cancel of an unknown id gets NOT_FOUND");
	close(fd);

	/* a client that disconnects mid-stream */
	fd = connect_daemon();
	send_generate(fd, 30, "Once upon a time", 400, false);
	r = recv_resp(fd);
	tap_ok(r && r->body_case == STRATA__V1__RESPONSE__BODY_PIECE, "a long generation starts streaming");
	free_resp(r);
	close(fd);
	bool freed = false;
	for (int i = 0; i < 100 && !freed; i++) {
		int s2 = connect_daemon();
		send_status(s2, 31);
		r = recv_resp(s2);
		freed = r && r->body_case == STRATA__V1__RESPONSE__BODY_STATUS && r->status->requests_active == 0;
		free_resp(r);
		close(s2);
		if (!freed)
			usleep(20000);
	}
	tap_ok(freed, "... the client hangs up: its request is cancelled and its slot freed");

	/* more frames in one read than one connection is served per turn: the
	 * rest wait in the reader's buffer, and every one must still be answered */
	fd = connect_daemon();
	int got = pipelined(fd, 70, false, 1000);
	tap_is_int(got, 70, "70 Status requests in one write: 70 replies");
	got = pipelined(fd, 100, true, 2000);
	tap_is_int(got, 100, "100 pipelined Generates in one write: each gets its Done or OVERLOADED");
	close(fd);

	/* overload: 4 running + 12 queued fit; more are refused */
	fd = connect_daemon();
	for (uint64_t i = 0; i < 20; i++)
		send_generate(fd, 200 + i, "Once upon a time", 400, false);
	int overloaded = 0, finished = 0;
	for (int i = 0; i < 20000 && finished + overloaded < 20; i++) {
		r = recv_resp(fd);
		if (!r)
			break;
		if (r->body_case == STRATA__V1__RESPONSE__BODY_ERROR &&
		    r->error->code == STRATA__V1__ERROR_CODE__ERROR_CODE_OVERLOADED)
			overloaded++;
		if (r->body_case == STRATA__V1__RESPONSE__BODY_DONE)
			finished++;
		free_resp(r);
	}
	tap_ok(overloaded == 4 && finished == 16, "20 requests at once: 16 served, 4 refused with OVERLOADED "
	       "(%d served, %d refused)", finished, overloaded);
	close(fd);

	/* ---- systemd notifications ---- */
	tap_ok(wait_note("WATCHDOG=1", 2000), "WATCHDOG=1 pings arrive (WATCHDOG_USEC set)");
	tap_ok(wait_note("STATUS=Serving", 2000), "STATUS= lines describe the service");

	/* ---- SIGTERM while requests stream ---- */
	int sfd[4];
	for (int i = 0; i < 4; i++) {
		sfd[i] = connect_daemon();
		send_generate(sfd[i], 300 + (uint64_t)i, "Once upon a time", 450, false);
	}
	bool streaming = true;
	for (int i = 0; i < 4; i++) {
		r = recv_resp(sfd[i]);
		streaming &= r && r->body_case == STRATA__V1__RESPONSE__BODY_PIECE;
		free_resp(r);
	}
	tap_ok(streaming, "4 requests are streaming");
	kill(daemon_pid, SIGTERM);
	int shutdown_reasons = 0, clear = 0;
	for (int i = 0; i < 4; i++) {
		struct gen_result *g = malloc(sizeof *g);
		read_generation(sfd[i], 300 + (uint64_t)i, g);
		if (g->finish == STRATA__V1__FINISH_REASON__FINISH_REASON_SHUTDOWN)
			shutdown_reasons++;
		if (g->finish == STRATA__V1__FINISH_REASON__FINISH_REASON_SHUTDOWN ||
		    g->finish == STRATA__V1__FINISH_REASON__FINISH_REASON_LENGTH ||
		    g->finish == STRATA__V1__FINISH_REASON__FINISH_REASON_EOS)
			clear++;
		free(g);
		close(sfd[i]);
	}
	tap_ok(clear == 4 && shutdown_reasons > 0,
	       "after SIGTERM every stream ends with a clear finish reason (%d of 4 SHUTDOWN)",
	       shutdown_reasons);
	int status = 0;
	pid_t w = waitpid(daemon_pid, &status, 0);
	tap_ok(w == daemon_pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "stratad exits 0");
	tap_ok(wait_note("STOPPING=1", 2000), "STOPPING=1 was sent");
	tap_ok(stat(sock_path, &st) != 0 && errno == ENOENT, "the socket file is removed");

	test_limits();

	int rc = tap_done();
	if (rc)
		show_log();
	free(solo);
	return rc;
}
