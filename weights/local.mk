# weights/: the weight source: from a memory budget, which byte ranges stay
# resident and which stream every pass (io_uring, O_DIRECT) or page through a
# mapping. Knows byte ranges, a budget and an order; not GGUF, not models.
noinst_LIBRARIES += weights/libweights.a
weights_libweights_a_CPPFLAGS = $(AM_CPPFLAGS) $(URING_CFLAGS)
weights_libweights_a_SOURCES = \
	weights/weights.c weights/weights.h \
	weights/plan.c weights/plan.h \
	weights/source.h weights/source_uring.c weights/source_mmap.c \
	weights/resident_load.c weights/resident_load.h weights/anon.c weights/anon.h \
	weights/sigbus.c weights/sigbus.h \
	weights/uring_reader.c weights/uring_reader.h

check_PROGRAMS += tests/test-weights tests/test-weights-fault tests/test-weights-plan \
	tests/test-weights-change
TESTS += tests/test-weights tests/test-weights-fault tests/test-weights-plan \
	tests/test-weights-change
tests_test_weights_plan_SOURCES = tests/test-weights-plan.c
tests_test_weights_plan_LDADD = $(TEST_LIBS)
tests_test_weights_change_SOURCES = tests/test-weights-change.c
tests_test_weights_change_LDADD = $(TEST_LIBS)
tests_test_weights_SOURCES = tests/test-weights.c
tests_test_weights_LDADD = $(TEST_LIBS)
tests_test_weights_fault_SOURCES = tests/test-weights-fault.c
tests_test_weights_fault_LDADD = $(TEST_LIBS)
