# kernels/: pure functions on arrays; a scalar reference beside every fast version.
noinst_LIBRARIES += kernels/libkernels.a
# No contraction of a*b+c into an FMA: the references must round as ggml's
# (built without FMA) do, whatever -march the user builds with, and the
# multi-row kernels must round as the references do (qgemm.h); the SIMD
# files ask for FMA by intrinsic where they want it.
kernels_libkernels_a_CFLAGS = $(AM_CFLAGS) -ffp-contract=off
kernels_libkernels_a_SOURCES = \
	kernels/types.h kernels/quant.h kernels/dot.h kernels/pool.h \
	kernels/matmul.h kernels/ops.h kernels/attn.h kernels/blas.h

kernels_libkernels_a_SOURCES += kernels/types.c

# isa (which instruction set), quant_ref (the definitions), quant and dot
# (per-ISA kernels). The SIMD files need no -m flags: each function names its
# target and isa.c picks the set the running CPU runs.
kernels_libkernels_a_SOURCES += kernels/isa.c kernels/isa.h kernels/simd_x86.h \
	kernels/quant_ref.c kernels/quant_ref.h kernels/quant_kref.c kernels/quant_kref.h \
	kernels/quant.c kernels/dot.c \
	kernels/dot_avx2.c kernels/dot_avx512.c \
	kernels/qgemm.c kernels/qgemm.h kernels/qgemm_impl.h kernels/qgemm_avx2.c kernels/qgemm_avx512.c
check_PROGRAMS += tests/test-quant tests/test-dot tests/test-qgemm
TESTS += tests/test-quant tests/test-dot tests/test-qgemm
tests_test_quant_SOURCES = tests/test-quant.c
tests_test_quant_LDADD = $(TEST_LIBS)
tests_test_dot_SOURCES = tests/test-dot.c
tests_test_dot_LDADD = $(TEST_LIBS)
tests_test_qgemm_SOURCES = tests/test-qgemm.c
tests_test_qgemm_LDADD = $(TEST_LIBS)

# pool, blas, matmul, ops; attention (attn.c: dispatch, scalar, reference;
# one file per instruction set beside it)
kernels_libkernels_a_SOURCES += kernels/pool.c kernels/blas.c kernels/matmul.c \
	kernels/ops.c kernels/attn.c kernels/attn_impl.h kernels/attn_avx2.c \
	kernels/attn_avx512.c

check_PROGRAMS += tests/test-pool tests/test-matmul tests/test-ops tests/test-attn
TESTS += tests/test-pool tests/test-matmul tests/test-ops tests/test-attn
tests_test_pool_SOURCES = tests/test-pool.c
tests_test_pool_LDADD = $(TEST_LIBS)
tests_test_matmul_SOURCES = tests/test-matmul.c
tests_test_matmul_LDADD = $(TEST_LIBS)
tests_test_ops_SOURCES = tests/test-ops.c
tests_test_ops_LDADD = $(TEST_LIBS)
tests_test_attn_SOURCES = tests/test-attn.c
tests_test_attn_LDADD = $(TEST_LIBS)
