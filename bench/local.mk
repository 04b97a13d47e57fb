# rules for bench/ (included by the top Makefile.am)
# strata-bench: the engine's throughput under a memory budget (see bench/README.md).
# Built with everything else so `make check` can show that it runs; not installed.
noinst_PROGRAMS += bench/strata-bench
bench_strata_bench_SOURCES = bench/strata-bench.c
bench_strata_bench_LDADD = $(ENGINE_LIBS)
EXTRA_DIST += bench/README.md bench/compare.sh bench/big-model.sh bench/lib.sh

# It runs on a tiny synthesized model and prints both output formats.
TESTS += tests/test-bench.sh
EXTRA_DIST += tests/test-bench.sh
