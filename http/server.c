/* server.c: see server.h. One request's path: on_request() is called by
 * libmicrohttpd for the headers (route, method, key, declared size), again
 * for each piece of the body (kept up to the cap), and once more at the end,
 * when the endpoint's handler runs in this connection's own thread: it may
 * block on stratad, watching the client's socket for a hang-up meanwhile. */
#include "config.h"

#include "http/server.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/log.h"
#include "http/apierr.h"
#include "http/buf.h"
#include "http/job.h"
#include "http/metrics.h"
#include "http/openai.h"
#include "http/request.h"
#include "http/sse.h"
#include "http/upstream.h"

/* How long /health, /metrics and /v1/models wait for stratad's Status. */
#define STATUS_TIMEOUT_MS 5000

struct http_server {
	struct MHD_Daemon *mhd;
	const struct http_config *cfg;
	_Atomic unsigned busy;
};

/* What a path is: its endpoint, the method it takes, whether a key is needed. */
struct route {
	const char *path;
	const char *method;
	enum metrics_endpoint ep;
	bool keyed;
};

static const struct route routes[] = {
	{ "/v1/completions", "POST", EP_COMPLETIONS, true },
	{ "/v1/chat/completions", "POST", EP_CHAT, true },
	{ "/v1/models", "GET", EP_MODELS, true },
	{ "/health", "GET", EP_HEALTH, false },
	{ "/metrics", "GET", EP_METRICS, false },
};

/* One request's state, kept by libmicrohttpd between calls (con_cls). */
struct req_ctx {
	struct http_server *srv;
	const struct route *route; /* NULL: none matched */
	const char *model_id;      /* GET /v1/models/ID: the ID */
	struct buf body;           /* up to cfg->max_body bytes */
	bool too_large;
	bool answered;             /* a response is queued */
	int status;                /* its status, for the metrics */
};

/* ---- the model's name ---- */

static pthread_mutex_t name_lock = PTHREAD_MUTEX_INITIALIZER;
static char model_name[256];

/* The name replies carry: --model-name, else stratad's general.name, else
 * the GGUF file's base name without .gguf (asked once, then kept). */
static const char *the_model_name(const struct http_server *s)
{
	if (s->cfg->model_name)
		return s->cfg->model_name;
	pthread_mutex_lock(&name_lock);
	if (!model_name[0]) {
		Strata__V1__StatusReply *st;
		char msg[256];
		if (upstream_status(STATUS_TIMEOUT_MS, &st, msg, sizeof msg) == 0) {
			const char *n = st->model ? st->model->name : "";
			if (!*n && st->model && st->model->path[0]) {
				const char *slash = strrchr(st->model->path, '/');
				n = slash ? slash + 1 : st->model->path;
			}
			snprintf(model_name, sizeof model_name, "%s", *n ? n : "strata");
			size_t len = strlen(model_name);
			if (len > 5 && strcmp(model_name + len - 5, ".gguf") == 0)
				model_name[len - 5] = '\0';
			strata__v1__status_reply__free_unpacked(st, NULL);
		}
	}
	pthread_mutex_unlock(&name_lock);
	/* once set, never changed: safe to read without the lock */
	return model_name[0] ? model_name : "strata";
}

/* ---- answering ---- */

/* Queue body (malloc'd, taken over) with a status and a content type. */
static enum MHD_Result answer(struct MHD_Connection *conn, struct req_ctx *rq, int status, char *body, size_t len,
			      const char *type, unsigned retry_after)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body ? body : (char *)"",
								 body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (retry_after) {
		char s[16];
		snprintf(s, sizeof s, "%u", retry_after);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, s);
	}
	if (status == 401)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (status == 405 && rq->route)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rq->route->method);
	enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	rq->answered = true;
	rq->status = status;
	return ok;
}

static enum MHD_Result answer_json(struct MHD_Connection *conn, struct req_ctx *rq, int status,
				   struct json_object *obj)
{
	size_t len;
	const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
							  &len);
	char *copy = s ? malloc(len + 2) : NULL;
	if (copy) {
		memcpy(copy, s, len);
		copy[len++] = '\n';
		copy[len] = '\0';
	}
	json_object_put(obj);
	if (!copy)
		return MHD_NO;
	return answer(conn, rq, status, copy, len, "application/json", 0);
}

static enum MHD_Result answer_error(struct MHD_Connection *conn, struct req_ctx *rq, const struct apierr *e)
{
	char *body;
	size_t len;

	if (e->status == 499) { /* the client is gone: nothing to say, close */
		rq->status = 499;
		return MHD_NO;
	}
	if (e->status >= 500)
		log_warn("%s: %d: %s", rq->route ? rq->route->path : "?", e->status, e->message);
	if (oa_error_body(e, &body, &len) < 0)
		return MHD_NO;
	return answer(conn, rq, e->status, body, len, "application/json", e->retry_after);
}

static enum MHD_Result answer_errorf(struct MHD_Connection *conn, struct req_ctx *rq, int status, const char *type,
				     const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static enum MHD_Result answer_errorf(struct MHD_Connection *conn, struct req_ctx *rq, int status, const char *type,
				     const char *code, const char *fmt, ...)
{
	struct apierr e;
	va_list ap;

	apierr_set(&e, status, type, code, NULL, "%s", "");
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof e.message, fmt, ap);
	va_end(ap);
	return answer_error(conn, rq, &e);
}

/* ---- the endpoints ---- */

static int client_fd(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	return ci ? ci->connect_fd : -1;
}

/* POST /v1/completions and /v1/chat/completions. */
static enum MHD_Result handle_generate(struct MHD_Connection *conn, struct req_ctx *rq, enum api_kind kind)
{
	struct api_request req;
	struct apierr e;
	struct job job = { .up.c.fd = -1 };
	struct oa *oa = NULL;
	enum MHD_Result ok;

	if (api_request_parse(kind, rq->body.p ? rq->body.p : "", rq->body.len, &req, &e) < 0)
		return answer_error(conn, rq, &e);
	const char *model = the_model_name(rq->srv);
	if (job_start(&job, &req, client_fd(conn), &e) < 0) {
		ok = answer_error(conn, rq, &e);
		goto out;
	}

	if (req.stream) {
		struct sse *s = malloc(sizeof *s);
		if (!s) {
			apierr_set(&e, 500, "server_error", NULL, NULL, "out of memory");
			ok = answer_error(conn, rq, &e);
			goto out;
		}
		/* s owns req and job from here, also when this fails */
		if (sse_begin(s, &req, &job, model, &e) < 0) {
			if (e.status == 499)
				s->hung_up = true;
			ok = answer_error(conn, rq, &e);
			sse_free(s);
			return ok;
		}
		struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, s,
									   sse_free);
		if (!r) {
			sse_free(s);
			return MHD_NO;
		}
		s->streaming = true;
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
		MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* proxies: do not hold events back */
		ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
		MHD_destroy_response(r);
		rq->answered = true;
		rq->status = 200;
		return ok;
	}

	oa = oa_new(&req, job.prompt_texts, model);
	if (!oa) {
		apierr_set(&e, 500, "server_error", NULL, NULL, "out of memory");
		ok = answer_error(conn, rq, &e);
		goto out;
	}
	for (;;) {
		struct job_event ev;
		int rc = job_next(&job, &ev, &e);
		if (rc == 0)
			break;
		if (rc < 0) {
			if (e.status == 499)
				metrics_cancelled();
			ok = answer_error(conn, rq, &e);
			goto out;
		}
		rc = ev.kind == JOB_PIECE ? oa_add_piece(oa, ev.choice, ev.resp->piece)
					  : oa_add_done(oa, ev.choice, ev.resp->done);
		job_event_release(&ev);
		if (rc < 0) {
			apierr_set(&e, 500, "server_error", NULL, NULL, "out of memory");
			ok = answer_error(conn, rq, &e);
			goto out;
		}
	}
	char *body;
	size_t len;
	uint64_t p, g;
	oa_usage(oa, &p, &g);
	metrics_tokens(p, g);
	if (oa_reply(oa, &body, &len) < 0) {
		ok = MHD_NO;
		goto out;
	}
	ok = answer(conn, rq, 200, body, len, "application/json", 0);
out:
	oa_free(oa);
	job_free(&job);
	api_request_free(&req);
	return ok;
}

static struct json_object *model_object(const char *name, const Strata__V1__StatusReply *st)
{
	struct json_object *m = json_object_new_object();
	json_object_object_add(m, "id", json_object_new_string(name));
	json_object_object_add(m, "object", json_object_new_string("model"));
	/* OpenAI's "created" is the model's; ours: when stratad started */
	int64_t created = st ? (int64_t)time(NULL) - (int64_t)(st->uptime_ms / 1000) : (int64_t)time(NULL);
	json_object_object_add(m, "created", json_object_new_int64(created));
	json_object_object_add(m, "owned_by", json_object_new_string("strata"));
	if (st && st->model) {
		/* not OpenAI's: what a client may want to know about the model */
		struct json_object *meta = json_object_new_object();
		json_object_object_add(meta, "n_ctx", json_object_new_int64(st->model->n_ctx));
		json_object_object_add(meta, "n_vocab", json_object_new_int64(st->model->n_vocab));
		json_object_object_add(meta, "n_params", json_object_new_int64((int64_t)st->model->n_params));
		json_object_object_add(meta, "architecture", json_object_new_string(st->model->architecture));
		json_object_object_add(m, "meta", meta);
	}
	return m;
}

/* GET /v1/models and /v1/models/ID. */
static enum MHD_Result handle_models(struct MHD_Connection *conn, struct req_ctx *rq)
{
	Strata__V1__StatusReply *st = NULL;
	char msg[512];
	int rc = upstream_status(STATUS_TIMEOUT_MS, &st, msg, sizeof msg);
	if (rc < 0 && !rq->srv->cfg->model_name)
		return answer_errorf(conn, rq, 503, "server_error", "service_unavailable", "%s", msg);
	const char *name = the_model_name(rq->srv);
	struct json_object *obj;
	if (rq->model_id) {
		if (strcmp(rq->model_id, name) != 0) {
			if (st)
				strata__v1__status_reply__free_unpacked(st, NULL);
			struct apierr e;
			apierr_set(&e, 404, "invalid_request_error", "model_not_found", "model",
				   "the model '%s' does not exist; this server serves '%s'", rq->model_id, name);
			return answer_error(conn, rq, &e);
		}
		obj = model_object(name, st);
	} else {
		obj = json_object_new_object();
		struct json_object *data = json_object_new_array();
		json_object_array_add(data, model_object(name, st));
		json_object_object_add(obj, "object", json_object_new_string("list"));
		json_object_object_add(obj, "data", data);
	}
	if (st)
		strata__v1__status_reply__free_unpacked(st, NULL);
	return answer_json(conn, rq, 200, obj);
}

/* GET /health: 200 when stratad answers Status, else 503. */
static enum MHD_Result handle_health(struct MHD_Connection *conn, struct req_ctx *rq)
{
	Strata__V1__StatusReply *st = NULL;
	char msg[512];
	struct json_object *obj = json_object_new_object();

	if (upstream_status(STATUS_TIMEOUT_MS, &st, msg, sizeof msg) < 0) {
		json_object_object_add(obj, "status", json_object_new_string("unavailable"));
		json_object_object_add(obj, "error", json_object_new_string(msg));
		return answer_json(conn, rq, 503, obj);
	}
	struct json_object *d = json_object_new_object();
	json_object_object_add(d, "version", json_object_new_string(st->daemon_version));
	json_object_object_add(d, "model", json_object_new_string(st->model ? st->model->path : ""));
	json_object_object_add(d, "requests_active", json_object_new_int64(st->requests_active));
	json_object_object_add(d, "requests_queued", json_object_new_int64(st->requests_queued));
	json_object_object_add(obj, "status", json_object_new_string("ok"));
	json_object_object_add(obj, "stratad", d);
	strata__v1__status_reply__free_unpacked(st, NULL);
	return answer_json(conn, rq, 200, obj);
}

/* GET /metrics. */
static enum MHD_Result handle_metrics(struct MHD_Connection *conn, struct req_ctx *rq)
{
	Strata__V1__StatusReply *st = NULL;
	char msg[512];
	struct buf b = { 0 };

	if (upstream_status(STATUS_TIMEOUT_MS, &st, msg, sizeof msg) < 0)
		log_debug("/metrics: %s", msg);
	int rc = metrics_render(&b, st);
	if (st)
		strata__v1__status_reply__free_unpacked(st, NULL);
	if (rc < 0) {
		buf_free(&b);
		return MHD_NO;
	}
	size_t len = b.len;
	return answer(conn, rq, 200, buf_take(&b), len, "text/plain; version=0.0.4; charset=utf-8", 0);
}

/* ---- libmicrohttpd's callbacks ---- */

static const struct route *find_route(const char *url, const char **model_id)
{
	*model_id = NULL;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (strcmp(url, routes[i].path) == 0)
			return &routes[i];
	if (strncmp(url, "/v1/models/", 11) == 0 && url[11]) {
		*model_id = url + 11;
		return &routes[2];
	}
	return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http_server *s = cls;
	struct req_ctx *rq = *con_cls;

	(void)version;
	if (!rq) {
		/* the headers: decide what can be decided before the body */
		if (!(rq = calloc(1, sizeof *rq)))
			return MHD_NO;
		*con_cls = rq;
		rq->srv = s;
		atomic_fetch_add(&s->busy, 1);
		metrics_in_flight(1);
		rq->route = find_route(url, &rq->model_id);
		if (!rq->route)
			return answer_errorf(conn, rq, 404, "invalid_request_error", "unknown_url",
					     "Invalid URL (%s %s)", method, url);
		bool head = strcmp(method, "HEAD") == 0 && strcmp(rq->route->method, "GET") == 0;
		if (strcmp(method, rq->route->method) != 0 && !head)
			return answer_errorf(conn, rq, 405, "invalid_request_error", "method_not_allowed",
					     "%s takes %s, not %s", rq->route->path, rq->route->method, method);
		if (rq->route->keyed &&
		    !auth_check(s->cfg->auth, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
									  MHD_HTTP_HEADER_AUTHORIZATION)))
			return answer_errorf(conn, rq, 401, "invalid_request_error", "invalid_api_key",
					     "a valid API key is required: send 'Authorization: Bearer KEY'");
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > s->cfg->max_body)
			return answer_errorf(conn, rq, 413, "invalid_request_error", "request_too_large",
					     "the request body has %s bytes; this server takes at most %llu (--max-body)",
					     cl, (unsigned long long)s->cfg->max_body);
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* a piece of the body: keep it while under the cap */
		if (!rq->answered && !rq->too_large) {
			if (rq->body.len + *upload_data_size > s->cfg->max_body) {
				rq->too_large = true;
				buf_free(&rq->body);
			} else if (buf_add(&rq->body, upload_data, *upload_data_size) < 0) {
				return MHD_NO;
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->answered)
		return MHD_YES;
	if (rq->too_large)
		return answer_errorf(conn, rq, 413, "invalid_request_error", "request_too_large",
				     "the request body is larger than %llu bytes (--max-body)",
				     (unsigned long long)s->cfg->max_body);
	switch (rq->route->ep) {
	case EP_COMPLETIONS:
		return handle_generate(conn, rq, API_COMPLETIONS);
	case EP_CHAT:
		return handle_generate(conn, rq, API_CHAT);
	case EP_MODELS:
		return handle_models(conn, rq);
	case EP_HEALTH:
		return handle_health(conn, rq);
	case EP_METRICS:
		return handle_metrics(conn, rq);
	default:
		return MHD_NO;
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	struct req_ctx *rq = *con_cls;

	(void)conn;
	if (!rq)
		return;
	int status = rq->status ? rq->status : 499;
	/* a stream whose client left before the end */
	if (status == 200 && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		status = 499;
	metrics_request(rq->route ? rq->route->ep : EP_OTHER, status);
	log_debug("%s: %d", rq->route ? rq->route->path : "?", status);
	buf_free(&rq->body);
	free(rq);
	*con_cls = NULL;
	atomic_fetch_sub(&s->busy, 1);
	metrics_in_flight(-1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[1024];
	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	/* mostly clients that went away ("Closing connection ..."): routine */
	log_info("libmicrohttpd: %s", msg);
}

int http_server_start(struct http_server **out, const struct http_config *cfg, int listen_fd,
		      struct st_err *err)
{
	struct http_server *s = calloc(1, sizeof *s);

	*out = NULL;
	if (!s)
		return st_errf(err, -ENOMEM, "out of memory");
	s->cfg = cfg;
	s->mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
					  MHD_USE_ERROR_LOG | MHD_USE_ITC,
				  0, NULL, NULL, on_request, s,
				  /* first, so that every message of libmicrohttpd comes here */
				  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
				  MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->idle_timeout,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_END);
	if (!s->mhd) {
		free(s);
		return st_errf(err, -EIO, "libmicrohttpd could not start on the listening socket");
	}
	*out = s;
	return 0;
}

void http_server_quiesce(struct http_server *s)
{
	/* the listening socket stays open (systemd's, or closed by main) */
	MHD_quiesce_daemon(s->mhd);
}

unsigned http_server_busy(const struct http_server *s)
{
	return atomic_load(&s->busy);
}

void http_server_stop(struct http_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->mhd);
	free(s);
}
