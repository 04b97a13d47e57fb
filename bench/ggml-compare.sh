#!/bin/sh
# ggml-compare.sh: build bench/ggml-compare.c against a llama.cpp build and
# run it: strata's quantizers, dequantizers and dot products against ggml's
# own (bit for bit where they must be), and every tensor of the given GGUF
# files (default: ../shared/models/kquants/kq-*.gguf) dequantized both ways.
#   bench/ggml-compare.sh [BUILD_DIR] [FILE.gguf...]
#   bench/ggml-compare.sh [BUILD_DIR] speed [ROWS COLS]   (dot speed, ggml's and ours)
# LLAMA_CPP (default /work/llama.cpp) must hold ggml/include and build/bin.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=${1:-$top/build}
[ $# -gt 0 ] && shift
llama=${LLAMA_CPP:-/work/llama.cpp}
bin=$llama/build/bin
[ -f "$bin/libggml-base.so" ] || { echo "ggml-compare: no $bin/libggml-base.so (set LLAMA_CPP)" >&2; exit 77; }
[ -f "$build/kernels/libkernels.a" ] || { echo "ggml-compare: build strata in $build first" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
${CC:-cc} -O2 -std=gnu11 -I"$top" -I"$build" -I"$llama/ggml/include" -o "$out/ggml-compare" \
	"$here/ggml-compare.c" "$build/gguf/libgguf.a" "$build/kernels/libkernels.a" \
	"$build/common/libcommon.a" -L"$bin" -Wl,-rpath,"$bin" -lggml-cpu -lggml-base -lggml -lm -lpthread
if [ "${1:-}" = speed ]; then
	shift
	"$out/ggml-compare" speed "$@"
	exit
fi
rc=0
"$out/ggml-compare" quant || rc=1
if [ $# -eq 0 ]; then
	set -- "$top"/../shared/models/kquants/kq-*.gguf
fi
[ -f "$1" ] && { "$out/ggml-compare" file "$@" || rc=1; }
exit $rc
