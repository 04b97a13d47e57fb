# client/: `strata`, the thin command-line client. It links only the protocol
# library (no engine code).
bin_PROGRAMS += client/strata
client_strata_SOURCES = client/strata.c client/cli.c client/cli.h \
	client/generate.c client/chat.c client/score.c client/inspect.c \
	client/conn.c client/conn.h \
	client/json.c client/json.h
client_strata_CPPFLAGS = $(AM_CPPFLAGS) $(PROTOBUF_C_CFLAGS)
client_strata_LDADD = $(PROTO_LIBS) -lm

# JSON escaping and the descriptor-driven message printer.
check_PROGRAMS += tests/test-json
TESTS += tests/test-json
tests_test_json_SOURCES = tests/test-json.c client/json.c client/json.h
tests_test_json_CPPFLAGS = $(AM_CPPFLAGS) $(PROTOBUF_C_CFLAGS)
tests_test_json_LDADD = tests/libtap.a $(PROTO_LIBS) -lm

# The C client against Python speaking the server's side of the wire.
# The real stratad driven from Python: the API is not tied to C.
TESTS += tests/pyclient/test-daemon.py
EXTRA_DIST += tests/pyclient/test-daemon.py
