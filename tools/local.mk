# The model writers strata-model and the tests share: random-weight models of
# any shape and type (synth.c) and llama.cpp's per-tensor type recipes
# (recipe.c: which tensors of a Q4_K_M get Q6_K...).
noinst_LIBRARIES += tools/libsynth.a
tools_libsynth_a_SOURCES = tools/synth.c tools/synth.h tools/recipe.c tools/recipe.h

# tools/: strata-model (info, tokenize, generate, synth, quantize).
bin_PROGRAMS += tools/strata-model
tools_strata_model_SOURCES = tools/strata-model.c tools/quantize.c tools/quantize.h
tools_strata_model_LDADD = $(SYNTH_LIBS) $(ENGINE_LIBS)
EXTRA_DIST += tools/install-deps.sh tools/check.sh tools/demo.sh
