# gguf/: the file format: a validated read-only view of a GGUF file and a
# streaming writer. Knows keys, values and tensors; not models.
noinst_LIBRARIES += gguf/libgguf.a
gguf_libgguf_a_SOURCES = gguf/gguf.h gguf/gguf.c gguf/gguf_write.c

check_PROGRAMS += tests/test-gguf
TESTS += tests/test-gguf
tests_test_gguf_SOURCES = tests/test-gguf.c
tests_test_gguf_LDADD = $(TEST_LIBS)
