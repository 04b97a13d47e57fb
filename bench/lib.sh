# shellcheck shell=sh disable=SC2154 # `top` and `die` are the sourcing script's
# bench/lib.sh: what the benchmark scripts share. Sourced (`. "$top/bench/lib.sh"`) by
# scripts that set `top` (the source tree) and define `die MESSAGE` first.

# find_builddir DIR: set builddir to the first of DIR, ., $top and $top/build that holds
# bench/strata-bench and tools/strata-model; die when none does
find_builddir() {
	for b in "$1" . "$top" "$top/build"; do
		if [ -n "$b" ] && [ -x "$b/bench/strata-bench" ] && [ -x "$b/tools/strata-model" ]; then
			builddir=$(cd "$b" && pwd)
			return 0
		fi
	done
	die "build first (no bench/strata-bench; use --builddir)"
}

# data_dir DIR: make the directory for models and results; it must be outside the tree
data_dir() {
	case $1 in "$top"|"$top"/*) die "the data directory must be outside the repository" ;; esac
	mkdir -p "$1"
}

# synth_once MODEL BYTES SIZE-TEXT SYNTH-ARGS...: synthesize MODEL (BYTES long) with
# `strata-model synth`, unless it is there; refuses without BYTES + 1 GiB free on its disk
synth_once() {
	so_model=$1 so_bytes=$2 so_text=$3
	shift 3
	[ -f "$so_model" ] && return 0
	so_need_kb=$((so_bytes / 1024 + 1048576))
	so_avail_kb=$(df -Pk "$(dirname "$so_model")" | awk 'NR == 2 { print $4 }')
	[ "$so_avail_kb" -ge "$so_need_kb" ] ||
		die "no room for the $so_text model $so_model: $((so_avail_kb / 1048576)) GiB free, $((so_need_kb / 1048576)) GiB needed"
	echo "synthesizing $so_model ($so_text, once) ..." >&2
	"$builddir/tools/strata-model" synth "$so_model.tmp" "$@"
	mv "$so_model.tmp" "$so_model"
}

# drop: write dirty pages back and drop the page cache (root only; otherwise just sync)
drop() {
	sync
	[ "$(id -u)" -ne 0 ] || echo 3 >/proc/sys/vm/drop_caches
}

# cap_begin NAME SIZE: a cgroup v1 memory group NAME capped at SIZE (its path in cg), removed
# when the script exits
cap_begin() {
	cg=/sys/fs/cgroup/memory/$1
	mkdir "$cg"
	trap cap_end EXIT
	trap 'exit 130' INT TERM
	echo "$2" >"$cg/memory.limit_in_bytes"
}
# cap_end: empty and remove the group of cap_begin, if any (twice is harmless)
cap_end() {
	if [ -n "${cg:-}" ] && [ -d "$cg" ]; then
		echo 0 >"$cg/memory.force_empty" 2>/dev/null || true
		rmdir "$cg" 2>/dev/null || echo "$(basename "$0"): could not remove $cg" >&2
	fi
	cg=
}
# incap CMD...: run CMD inside the group of cap_begin, its peak usage reset first
incap() {
	echo 0 >"$cg/memory.force_empty" 2>/dev/null || true
	echo 0 >"$cg/memory.max_usage_in_bytes"
	sh -c 'echo $$ >"$1/tasks" && shift && exec "$@"' sh "$cg" "$@"
}

# fio_read FILE BS: the disk's sequential O_DIRECT read of FILE in BS reads, 32 in flight,
# MB/s (1e6), at most 10 s, the page cache dropped first
fio_read() {
	drop
	fio --name=seq --filename="$1" --rw=read --bs="$2" --iodepth=32 --ioengine=io_uring \
		--direct=1 --readonly --runtime=10 --output-format=terse --terse-version=3 2>/dev/null |
		awk -F';' '$9 > 0 { printf "%.0f\n", $6 * 1.024 / $9 }'
}

# jget FILE KEY: a value from strata-bench's JSON (one key per line)
jget() { sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1"; }
