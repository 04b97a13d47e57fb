# tools/: strata-model (info, tokenize, generate, synth).
bin_PROGRAMS += tools/strata-model
tools_strata_model_SOURCES = tools/strata-model.c tools/synth.c tools/synth.h
tools_strata_model_LDADD = $(ENGINE_LIBS)
EXTRA_DIST += tools/install-deps.sh tools/check.sh tools/demo.sh
