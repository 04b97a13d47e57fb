#!/bin/sh
# mkcorpus.sh: regenerate the GGUF seed corpus (fuzz/corpus/gguf/) from the
# valid files and the corruption table of tests/test-gguf. Files named
# crash-* (inputs that once found a bug) are kept.
# usage: sh fuzz/mkcorpus.sh BUILDDIR
set -eu
build=${1:?usage: mkcorpus.sh BUILDDIR}
dir=$(dirname "$0")/corpus/gguf
mkdir -p "$dir"
rm -f "$dir"/valid-* "$dir"/bad-* "$dir"/truncated-*
"$build/tests/test-gguf" --write-corpus "$dir"
ls -l "$dir"
