# engine/: everything that turns tokens into logits and text. A noinst
# library linked by stratad, the tools, the benchmark and the tests.
noinst_LIBRARIES += engine/libengine.a
engine_libengine_a_CPPFLAGS = $(AM_CPPFLAGS) $(URING_CFLAGS)
engine_libengine_a_SOURCES = \
	engine/err.c engine/err.h \
	engine/log.c engine/log.h

# gguf: reader and writer
engine_libengine_a_SOURCES += engine/gguf.h engine/gguf.c engine/gguf_write.c
check_PROGRAMS += tests/test-gguf
TESTS += tests/test-gguf
tests_test_gguf_SOURCES = tests/test-gguf.c
tests_test_gguf_LDADD = $(TEST_LIBS)

# tokenizer

# model, forward pass, sampler, kv cache

# weights: budget plan, resident set, io_uring streaming
