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
engine_libengine_a_SOURCES += \
	engine/model.c engine/model.h \
	engine/kv.c engine/kv.h \
	engine/sampler.c engine/sampler.h \
	engine/forward.c engine/forward.h \
	engine/engine.c engine/engine.h \
	engine/generate.c engine/generate.h

# weights: budget plan, resident set, io_uring streaming
