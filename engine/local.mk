# engine/: a loaded model ready to compute: the model's view of its GGUF file,
# the KV cache, the sampler, the forward pass, the generation core (seq.c),
# speculative decoding's drafts (draft.c) and the one table of engine options
# (options.c). A noinst library linked by stratad, the tools, the benchmarks
# and the tests; the daemon reaches it through engine.h.
noinst_LIBRARIES += engine/libengine.a
engine_libengine_a_SOURCES = \
	engine/model.c engine/model.h \
	engine/kv.c engine/kv.h \
	engine/kv_io.c engine/kv_io.h \
	engine/kv_store.c engine/kv_store.h \
	engine/memplan.c engine/memplan.h \
	engine/sampler.c engine/sampler.h \
	engine/forward.c engine/forward.h \
	engine/batch.c engine/batch.h \
	engine/engine.c engine/engine.h \
	engine/options.c engine/options.h \
	engine/logprob.c engine/logprob.h \
	engine/seq.c engine/seq.h \
	engine/draft.c engine/draft.h \
	engine/score.c engine/score.h \
	engine/generate.c engine/generate.h

# log-probabilities, echo and scoring (a synthesized model; stories260K's
# against llama.cpp's logits when ../shared is there)
check_PROGRAMS += tests/test-logprob
TESTS += tests/test-logprob
tests_test_logprob_SOURCES = tests/test-logprob.c
tests_test_logprob_LDADD = $(SYNTH_LIBS) $(TEST_LIBS)

# the memory plan's arithmetic
check_PROGRAMS += tests/test-memplan
TESTS += tests/test-memplan
tests_test_memplan_SOURCES = tests/test-memplan.c
tests_test_memplan_LDADD = $(TEST_LIBS)
