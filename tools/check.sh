#!/bin/sh
# The whole test suite, as CI runs it: a warnings-as-errors build and
# `make check`, the same under AddressSanitizer + UndefinedBehaviorSanitizer,
# then `make distcheck`. Builds out of tree in build-check/ and build-asan/,
# so it never touches build/, where the README's quick start builds.
# Tests find ../shared (the trained model and tokenizer vectors) next to the
# source tree when it is there, and skip what needs it when it is not.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

# An in-tree configure (./configure in the source folder) makes out-of-tree
# builds impossible ("source directory already configured"): say so plainly.
if [ -f config.status ]; then
	echo "check.sh: this source tree was configured in place (./configure here);" >&2
	echo "check.sh: run 'make distclean' here first, or build in a folder of its own" >&2
	echo "check.sh: as the README does: (mkdir -p build && cd build && ../configure && make)" >&2
	exit 1
fi

autoreconf -fi

echo "== build and test (warnings are errors)"
mkdir -p build-check
(cd build-check && "$top/configure" --enable-werror && make -j"$jobs" && make -j"$jobs" check) || {
	find build-check/tests build-check/fuzz -name '*.log' -newer build-check/config.status 2>/dev/null |
		while read -r f; do grep -q '^not ok\|^Bail out' "$f" && { echo "--- $f"; cat "$f"; }; done
	exit 1
}

echo "== build and test under ASan + UBSan"
mkdir -p build-asan
(cd build-asan && "$top/configure" --enable-werror --enable-sanitizers && make -j"$jobs" &&
	make -j"$jobs" check) || {
	find build-asan/tests build-asan/fuzz -name '*.log' -newer build-asan/config.status 2>/dev/null |
		while read -r f; do grep -q '^not ok\|^Bail out\|ERROR: \|runtime error' "$f" && { echo "--- $f"; cat "$f"; }; done
	exit 1
}

echo "== distcheck"
(cd build-check && make -j"$jobs" distcheck)
echo "== all checks passed"
