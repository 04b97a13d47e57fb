# http/: strata-http, the OpenAI-compatible HTTP front. Another client of
# stratad's socket (it links the protocol library and the client's connection,
# no engine code), with libmicrohttpd for HTTP and json-c for JSON.
bin_PROGRAMS += http/strata-http
HTTP_CORE_SOURCES = \
	http/apierr.c http/apierr.h \
	http/buf.c http/buf.h \
	http/request.c http/request.h
http_strata_http_SOURCES = http/main.c \
	$(HTTP_CORE_SOURCES) \
	http/auth.c http/auth.h \
	http/listen.c http/listen.h \
	http/server.c http/server.h \
	http/upstream.c http/upstream.h \
	http/job.c http/job.h \
	http/openai.c http/openai.h \
	http/sse.c http/sse.h \
	http/metrics.c http/metrics.h \
	client/conn.c client/conn.h
http_strata_http_CPPFLAGS = $(AM_CPPFLAGS) $(PROTOBUF_C_CFLAGS) $(MHD_CFLAGS) $(JSONC_CFLAGS) $(SYSTEMD_CFLAGS)
http_strata_http_LDADD = $(PROTO_LIBS) $(MHD_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS) -lm
