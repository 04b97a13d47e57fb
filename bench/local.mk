# bench/: every benchmark program and script, and their results (README.md).
# The programs are built with everything else so `make check` can show that
# they run; they are not installed and assert nothing.

# strata-bench: the engine's throughput under a memory budget.
noinst_PROGRAMS += bench/strata-bench
bench_strata_bench_SOURCES = bench/strata-bench.c
bench_strata_bench_LDADD = $(ENGINE_LIBS)

# weights-bench: the weight source alone (read bandwidth, queue depth, chunk size).
noinst_PROGRAMS += bench/weights-bench
bench_weights_bench_SOURCES = bench/weights-bench.c
bench_weights_bench_LDADD = $(ENGINE_LIBS)

# kernels-bench: each dot kernel per instruction set.
noinst_PROGRAMS += bench/kernels-bench
bench_kernels_bench_SOURCES = bench/kernels-bench.c
bench_kernels_bench_LDADD = $(ENGINE_LIBS)

# matmul-bench: GFLOP/s of the GEMM path and GB/s of the GEMV path.
noinst_PROGRAMS += bench/matmul-bench
bench_matmul_bench_SOURCES = bench/matmul-bench.c
bench_matmul_bench_LDADD = $(ENGINE_LIBS)

# quant-rms: the RMS error of each quantized tensor against its source, for
# two quantized files (bench/quant-quality.sh: llama-quantize's and ours).
noinst_PROGRAMS += bench/quant-rms
bench_quant_rms_SOURCES = bench/quant-rms.c
bench_quant_rms_LDADD = $(ENGINE_LIBS)

# kv-prefill: the KV cache of long prompts written to --kv-cache-dir without computing
# it (random rows), for kv-bench.sh on models too big to compute them in time.
noinst_PROGRAMS += bench/kv-prefill
bench_kv_prefill_SOURCES = bench/kv-prefill.c
bench_kv_prefill_LDADD = $(ENGINE_LIBS)

EXTRA_DIST += bench/README.md bench/compare.sh bench/big-model.sh bench/lib.sh bench/startup.py \
	bench/compare-llamacpp.sh bench/ggml-compare.sh bench/ggml-compare.c \
	bench/quant-quality.sh bench/compare-kquants.sh bench/kv-bench.sh bench/speculative.sh \
	bench/matrix.sh bench/score-passes.py

# It runs on a tiny synthesized model and prints both output formats.
TESTS += tests/test-bench.sh
EXTRA_DIST += tests/test-bench.sh
