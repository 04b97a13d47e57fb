# kernels/: pure functions on arrays; a scalar reference beside every fast version.
noinst_LIBRARIES += kernels/libkernels.a
kernels_libkernels_a_SOURCES = \
	kernels/types.h kernels/quant.h kernels/dot.h kernels/pool.h \
	kernels/matmul.h kernels/ops.h kernels/attn.h kernels/blas.h

kernels_libkernels_a_SOURCES += kernels/types.c

# quant, dot (per-ISA kernels)

# pool, blas, matmul, ops, attn
