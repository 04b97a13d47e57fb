#!/bin/sh
# The whole test suite, as CI runs it: a warnings-as-errors build and
# `make check`, the same under AddressSanitizer + UndefinedBehaviorSanitizer,
# then `make distcheck`. Builds out of tree in build/ and build-asan/.
# Tests find ../shared (the trained model and tokenizer vectors) next to the
# source tree when it is there, and skip what needs it when it is not.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

autoreconf -fi

echo "== build and test (warnings are errors)"
mkdir -p build
(cd build && "$top/configure" --enable-werror && make -j"$jobs" && make -j"$jobs" check) || {
	find build/tests build/fuzz -name '*.log' -newer build/config.status 2>/dev/null |
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
(cd build && make -j"$jobs" distcheck)
echo "== all checks passed"
