# tools/: strata-model (info, tokenize, generate, synth, quantize).
bin_PROGRAMS += tools/strata-model
tools_strata_model_SOURCES = tools/strata-model.c tools/synth.c tools/synth.h \
	tools/recipe.c tools/recipe.h tools/quantize.c tools/quantize.h
tools_strata_model_LDADD = $(ENGINE_LIBS)
EXTRA_DIST += tools/install-deps.sh tools/check.sh tools/demo.sh
