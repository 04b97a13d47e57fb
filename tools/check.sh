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

# show_failures DIR: the log of every test under DIR that failed (a failing
# point, an error exit, a bail-out, a sanitizer report), then their failing
# points again, last, where a CI page that keeps only the tail still shows them.
show_failures() {
	trs=$(find "$1" -name '*.trs' -exec grep -l ':test-result: \(FAIL\|ERROR\)' {} + 2>/dev/null || true)
	for t in $trs; do
		echo "--- ${t%.trs}.log"
		cat "${t%.trs}.log"
	done
	echo "== failing tests under $1"
	for t in $trs; do
		echo "${t%.trs}:"
		grep '^not ok\|^Bail out\|^# planned\|ERROR: \|runtime error' "${t%.trs}.log" | head -20
		grep ':test-result: ERROR' "$t"
	done
	return 0
}

autoreconf -fi

echo "== build and test (warnings are errors)"
mkdir -p build-check
(cd build-check && "$top/configure" --enable-werror && make -j"$jobs" && make -j"$jobs" check) || {
	show_failures build-check
	exit 1
}

echo "== build and test under ASan + UBSan"
mkdir -p build-asan
(cd build-asan && "$top/configure" --enable-werror --enable-sanitizers && make -j"$jobs" &&
	make -j"$jobs" check) || {
	show_failures build-asan
	exit 1
}

echo "== distcheck"
# distcheck builds the tarball's tree in build-check/strata-*/_build/sub and
# runs the suite there without ../shared; a failure leaves that tree behind.
(cd build-check && make -j"$jobs" distcheck) || {
	show_failures build-check/strata-*/_build
	exit 1
}
echo "== all checks passed"
