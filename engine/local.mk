# engine/: everything that turns tokens into logits and text. A noinst
# library linked by stratad, the tools, the benchmark and the tests.
noinst_LIBRARIES += engine/libengine.a
engine_libengine_a_CPPFLAGS = $(AM_CPPFLAGS) $(URING_CFLAGS)
engine_libengine_a_SOURCES = \
	engine/err.c engine/err.h \
	engine/log.c engine/log.h

# gguf: reader and writer
engine_libengine_a_SOURCES += engine/gguf.h

# tokenizer

# model, forward pass, sampler, kv cache

# weights: budget plan, resident set, io_uring streaming
engine_libengine_a_SOURCES += \
	engine/weights.c engine/weights.h \
	engine/uring_reader.c engine/uring_reader.h

check_PROGRAMS += tests/test-weights
TESTS += tests/test-weights
tests_test_weights_SOURCES = tests/test-weights.c
tests_test_weights_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/test-weights-fault
TESTS += tests/test-weights-fault
tests_test_weights_fault_SOURCES = tests/test-weights-fault.c
tests_test_weights_fault_LDADD = $(TEST_LIBS)

# the weight source's benchmark (not run by make check): bench/weights-bench --help
noinst_PROGRAMS += bench/weights-bench
bench_weights_bench_SOURCES = bench/weights-bench.c
bench_weights_bench_LDADD = $(ENGINE_LIBS)
