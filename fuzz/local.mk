# fuzz/: libFuzzer targets for the parsers (see fuzz/README.md). Without
# --enable-fuzzing each target links replay.c and `make check` runs it over
# its seed corpus in fuzz/corpus/<name>/ (TAP). With --enable-fuzzing
# (CC=clang) each is a libFuzzer binary, built but not run by make check.
FUZZ_GGUF_SOURCES = fuzz/fuzz-gguf.c fuzz/fuzz.h
fuzz_fuzz_gguf_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"gguf"'
fuzz_fuzz_gguf_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
if FUZZING
FUZZ_CFLAGS = -fsanitize=fuzzer
noinst_PROGRAMS += fuzz/fuzz-gguf
# the code under test is compiled into the target so that libFuzzer's
# coverage instrumentation sees it
fuzz_fuzz_gguf_SOURCES = $(FUZZ_GGUF_SOURCES) \
	engine/gguf.c engine/gguf_write.c engine/err.c kernels/types.c
fuzz_fuzz_gguf_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
fuzz_fuzz_gguf_LDADD = -lm
else
FUZZ_CFLAGS =
check_PROGRAMS += fuzz/fuzz-gguf
TESTS += fuzz/fuzz-gguf
fuzz_fuzz_gguf_SOURCES = $(FUZZ_GGUF_SOURCES) fuzz/replay.c
fuzz_fuzz_gguf_LDADD = $(ENGINE_LIBS)
endif
# the seed corpus: the whole folder (written by fuzz/mkcorpus.sh, plus crashers)
EXTRA_DIST += fuzz/README.md fuzz/gguf.dict fuzz/mkcorpus.sh fuzz/corpus
