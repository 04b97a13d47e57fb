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
	gguf/gguf.c gguf/gguf_write.c common/err.c common/hash.c kernels/types.c
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

# fuzz-frame: what stratad does with a client's bytes: the incremental frame
# reader in random splits, each frame unpacked as a Request (proto/).
FUZZ_FRAME_SOURCES = fuzz/fuzz-frame.c fuzz/fuzz.h
fuzz_fuzz_frame_CPPFLAGS = $(AM_CPPFLAGS) $(PROTOBUF_C_CFLAGS) -DFUZZ_CORPUS='"frame"'
fuzz_fuzz_frame_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
if FUZZING
noinst_PROGRAMS += fuzz/fuzz-frame
# frame.c and the generated code compiled in, for coverage (as above)
fuzz_fuzz_frame_SOURCES = $(FUZZ_FRAME_SOURCES) proto/frame.c common/utf8.c
nodist_fuzz_fuzz_frame_SOURCES = proto/strata.pb-c.c proto/strata.pb-c.h
fuzz_fuzz_frame_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
fuzz_fuzz_frame_LDADD = $(PROTOBUF_C_LIBS)
else
check_PROGRAMS += fuzz/fuzz-frame
TESTS += fuzz/fuzz-frame
fuzz_fuzz_frame_SOURCES = $(FUZZ_FRAME_SOURCES) fuzz/replay.c
fuzz_fuzz_frame_LDADD = $(PROTO_LIBS)
endif
EXTRA_DIST += fuzz/mkcorpus-frame.py

# fuzz-http-request: the body of an OpenAI request as strata-http reads it
# (json-c's parser, http/request.c's checks, the Generates it builds).
FUZZ_HTTP_SOURCES = fuzz/fuzz-http-request.c fuzz/fuzz.h
fuzz_fuzz_http_request_CPPFLAGS = $(AM_CPPFLAGS) $(PROTOBUF_C_CFLAGS) $(JSONC_CFLAGS) -DFUZZ_CORPUS='"http-request"'
fuzz_fuzz_http_request_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
# the code under test is compiled in (so libFuzzer's coverage sees it when fuzzing)
FUZZ_HTTP_UNDER_TEST = $(HTTP_CORE_SOURCES) http/openai.c http/openai.h
if FUZZING
noinst_PROGRAMS += fuzz/fuzz-http-request
fuzz_fuzz_http_request_SOURCES = $(FUZZ_HTTP_SOURCES) $(FUZZ_HTTP_UNDER_TEST) proto/frame.c common/utf8.c
nodist_fuzz_fuzz_http_request_SOURCES = proto/strata.pb-c.c proto/strata.pb-c.h
fuzz_fuzz_http_request_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
fuzz_fuzz_http_request_LDADD = $(PROTOBUF_C_LIBS) $(JSONC_LIBS) -lm
else
check_PROGRAMS += fuzz/fuzz-http-request
TESTS += fuzz/fuzz-http-request
fuzz_fuzz_http_request_SOURCES = $(FUZZ_HTTP_SOURCES) $(FUZZ_HTTP_UNDER_TEST) fuzz/replay.c
fuzz_fuzz_http_request_LDADD = $(PROTO_LIBS) $(JSONC_LIBS) -lm
endif
EXTRA_DIST += fuzz/mkcorpus-http.sh

# fuzz-tokenize: a client's text through the tokenizer (SentencePiece, BPE,
# special tokens, byte fallback) and ids through the streaming detokenizer.
# Its vocabularies: two written at start-up (synth's built-in SentencePiece, a
# BPE of its own) and llama.cpp's from $STRATA_SHARED/vocab when present.
FUZZ_TOKENIZE_SOURCES = fuzz/fuzz-tokenize.c fuzz/fuzz.h
fuzz_fuzz_tokenize_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"tokenize"'
fuzz_fuzz_tokenize_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
if FUZZING
noinst_PROGRAMS += fuzz/fuzz-tokenize
# the tokenizer compiled in, for coverage; the rest (synth, gguf) from the libraries
fuzz_fuzz_tokenize_SOURCES = $(FUZZ_TOKENIZE_SOURCES) $(tokenizer_libtokenizer_a_SOURCES) \
	common/utf8.c
fuzz_fuzz_tokenize_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
fuzz_fuzz_tokenize_LDADD = $(SYNTH_LIBS) $(ENGINE_LIBS)
else
check_PROGRAMS += fuzz/fuzz-tokenize
TESTS += fuzz/fuzz-tokenize
fuzz_fuzz_tokenize_SOURCES = $(FUZZ_TOKENIZE_SOURCES) fuzz/replay.c
fuzz_fuzz_tokenize_LDADD = $(SYNTH_LIBS) $(ENGINE_LIBS)
endif

# fuzz-chat: a template's text through chat_detect, and a client's messages
# through every family's renderer.
FUZZ_CHAT_SOURCES = fuzz/fuzz-chat.c fuzz/fuzz.h
fuzz_fuzz_chat_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"chat"'
fuzz_fuzz_chat_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
if FUZZING
noinst_PROGRAMS += fuzz/fuzz-chat
fuzz_fuzz_chat_SOURCES = $(FUZZ_CHAT_SOURCES) tokenizer/chat.c common/utf8.c common/err.c
fuzz_fuzz_chat_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
fuzz_fuzz_chat_LDADD = common/libcommon.a
else
check_PROGRAMS += fuzz/fuzz-chat
TESTS += fuzz/fuzz-chat
fuzz_fuzz_chat_SOURCES = $(FUZZ_CHAT_SOURCES) fuzz/replay.c
fuzz_fuzz_chat_LDADD = tokenizer/libtokenizer.a common/libcommon.a
endif
EXTRA_DIST += fuzz/mkcorpus-text.sh

# fuzz-settings: a settings file's bytes through stratad's parser (and the
# engine option table's value parsers).
FUZZ_SETTINGS_SOURCES = fuzz/fuzz-settings.c fuzz/fuzz.h
fuzz_fuzz_settings_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"settings"' \
	-DSTRATA_SYSCONFDIR='"$(sysconfdir)"'
fuzz_fuzz_settings_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
if FUZZING
noinst_PROGRAMS += fuzz/fuzz-settings
# the parsers compiled in, for coverage; the rest from the libraries
fuzz_fuzz_settings_SOURCES = $(FUZZ_SETTINGS_SOURCES) daemon/settings.c engine/options.c \
	common/parse.c
fuzz_fuzz_settings_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
fuzz_fuzz_settings_LDADD = $(ENGINE_LIBS)
else
check_PROGRAMS += fuzz/fuzz-settings
TESTS += fuzz/fuzz-settings
fuzz_fuzz_settings_SOURCES = $(FUZZ_SETTINGS_SOURCES) daemon/settings.c fuzz/replay.c
fuzz_fuzz_settings_LDADD = $(ENGINE_LIBS)
endif
