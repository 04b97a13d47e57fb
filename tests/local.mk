# The TAP harness shared by every C test program, and the test lists.
check_LIBRARIES += tests/libtap.a
tests_libtap_a_SOURCES = tests/tap.c tests/tap.h
TEST_LIBS = tests/libtap.a $(ENGINE_LIBS)
EXTRA_DIST += tests/run-python.sh

# The engine against a trained model and against a reference of its own.
check_PROGRAMS += tests/test-stories tests/test-forward
TESTS += tests/test-stories tests/test-forward
tests_test_stories_SOURCES = tests/test-stories.c
tests_test_stories_LDADD = $(TEST_LIBS)
tests_test_forward_SOURCES = tests/test-forward.c
tests_test_forward_LDADD = $(SYNTH_LIBS) $(TEST_LIBS)

# The engine on llama.cpp-quantized files of every K-quant mix and legacy type.
check_PROGRAMS += tests/test-kquants
TESTS += tests/test-kquants
tests_test_kquants_SOURCES = tests/test-kquants.c
tests_test_kquants_LDADD = $(SYNTH_LIBS) $(TEST_LIBS)

# The real stratad and strata, driven over the real socket.
check_PROGRAMS += tests/test-daemon
TESTS += tests/test-daemon tests/test-cli.sh tests/test-score-chat.sh tests/test-tools.sh \
	tests/test-quantize.sh
tests_test_daemon_SOURCES = tests/test-daemon.c
tests_test_daemon_CPPFLAGS = $(AM_CPPFLAGS) $(PROTOBUF_C_CFLAGS)
tests_test_daemon_LDADD = $(PROTO_LIBS) $(SYNTH_LIBS) $(TEST_LIBS) -lpthread
EXTRA_DIST += tests/lib.sh tests/test-cli.sh tests/test-score-chat.sh tests/chat-pty.py \
	tests/test-tools.sh tests/test-quantize.sh

# Batch invariance at the daemon: a greedy request's tokens and log-probabilities
# are the same alone and beside prompts of every length 1..200 (Q8_0, Q4_0, Q4_K_M).
TESTS += tests/pyclient/test-invariance.py
EXTRA_DIST += tests/pyclient/test-invariance.py

# the paged KV cache through the engine: paging, quantized caches, prefix reuse
check_PROGRAMS += tests/test-kv
TESTS += tests/test-kv
tests_test_kv_SOURCES = tests/test-kv.c
tests_test_kv_LDADD = $(SYNTH_LIBS) $(TEST_LIBS)
# ... and through stratad: refusal with the numbers, paging, reuse, restarts
TESTS += tests/test-kvcache.sh
EXTRA_DIST += tests/test-kvcache.sh

check_PROGRAMS += tests/test-sampler
TESTS += tests/test-sampler
tests_test_sampler_SOURCES = tests/test-sampler.c
tests_test_sampler_LDADD = $(TEST_LIBS)

# disk errors: a file truncated under the running stratad, a real EIO from the
# kernel (tests/eiofs, a FUSE filesystem of our own; test-weights-fault runs it
# too), and RSS under a budget far below the model.
check_PROGRAMS += tests/eiofs
tests_eiofs_SOURCES = tests/eiofs.c
TESTS += tests/test-daemon-io.sh tests/test-rss.sh
EXTRA_DIST += tests/test-daemon-io.sh tests/test-rss.sh

check_PROGRAMS += tests/test-model
TESTS += tests/test-model
tests_test_model_SOURCES = tests/test-model.c
tests_test_model_LDADD = $(TEST_LIBS)

# strata-http in front of the real stratad: curl, the openai npm package
# (tests/http, installed by tools/install-deps.sh), the socket for comparison.
TESTS += tests/test-http.sh
EXTRA_DIST += tests/test-http.sh tests/http/openai.mjs tests/http/package.json tests/http/socket-chat.py

# speculative decoding: lookup, greedy output with drafts token for token the
# same at every budget and io mode, endings inside kept runs, refusals, and
# sampled output's distribution (chi-square, fixed seeds)
check_PROGRAMS += tests/test-speculative
TESTS += tests/test-speculative
tests_test_speculative_SOURCES = tests/test-speculative.c
tests_test_speculative_LDADD = $(SYNTH_LIBS) $(TEST_LIBS)
TESTS += tests/test-draft.sh
EXTRA_DIST += tests/test-draft.sh
