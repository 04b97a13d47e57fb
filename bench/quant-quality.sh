#!/bin/sh
# quant-quality.sh: strata-model quantize against llama.cpp's llama-quantize on the same F16
# input, for every scheme: the RMS error of every dequantized tensor against the F16 source
# (bench/quant-rms; the issue's bar: strata's no worse than 1.01x llama-quantize's, tensor by
# tensor), whether the bytes are the same, and whether llama.cpp loads and runs strata's
# output (llref, 4 greedy steps). Inputs: stories260K (trained weights; rows of 64 and 172,
# so llama.cpp's fallback types), and random llama models synthesized in F16 (rows of 512 and
# 1536: the K-quants proper). Not run by `make check`: it needs llama.cpp.
#
#   bench/quant-quality.sh [--builddir DIR] [--llama DIR] [--llref PROG] [--work-dir DIR]
#                          [SCHEME...]
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "quant-quality.sh: $*" >&2; exit 1; }
. "$top/bench/lib.sh"
builddir=
llama=/work/llama.cpp/build
llref=/work/llama-tools/llref
work=${STRATA_BENCH_DATA:-/work/bench-data}/quant-quality
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) builddir=$2; shift 2 ;;
	--llama) llama=$2; shift 2 ;;
	--llref) llref=$2; shift 2 ;;
	--work-dir) work=$2; shift 2 ;;
	-*) sed -n '10,11p' "$0" | sed 's/^#//' >&2; exit 2 ;;
	*) break ;;
	esac
done
schemes=${*:-Q4_K_M Q4_K_S Q5_K_M Q5_K_S Q6_K Q3_K_S Q3_K_M Q3_K_L Q2_K IQ4_XS IQ4_NL Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 BF16}
find_builddir "$builddir"
SMODEL=$builddir/tools/strata-model
RMS=$builddir/bench/quant-rms
[ -x "$RMS" ] || die "no $RMS (make)"
[ -x "$llama/bin/llama-quantize" ] || die "no $llama/bin/llama-quantize (--llama)"
data_dir "$work"
shared=${STRATA_SHARED:-$top/../shared}

echo "date:      $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "strata:    $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?') ($builddir)"
echo "llama.cpp: $("$llama/bin/llama-cli" --version 2>&1 | sed -n 's/^version: //p' | head -1) ($llama)"
echo

# the F16 inputs
inputs=
if [ -f "$shared/models/stories260K.gguf" ]; then
	[ -f "$work/stories-f16.gguf" ] ||
		"$SMODEL" quantize --quiet "$shared/models/stories260K.gguf" "$work/stories-f16.gguf" F16
	inputs="stories:$work/stories-f16.gguf"
fi
for shape in "gqa2 --n-head 8 --n-head-kv 4" "gqa4 --n-head 8 --n-head-kv 2"; do
	set -- $shape
	tag=$1
	shift
	[ -f "$work/$tag-f16.gguf" ] || "$SMODEL" synth "$work/$tag-f16.gguf" --n-embd 512 --n-layer 8 "$@" \
		--n-ff 1536 --type f16 --vocab builtin --seed 11
	inputs="$inputs $tag:$work/$tag-f16.gguf"
done

printf '%-7s %-7s %8s %10s %12s %13s %12s  %s\n' input scheme tensors identical "worst B/A" "mean rms A" "mean rms B" \
	"llama.cpp on strata's file"
rc=0
for in in $inputs; do
	tag=${in%%:*} f16=${in#*:}
	for s in $schemes; do
		a=$work/$tag-$s.llama.gguf b=$work/$tag-$s.strata.gguf
		"$llama/bin/llama-quantize" "$f16" "$a" "$s" >"$work/$tag-$s.llama.log" 2>&1
		la=$?
		"$SMODEL" quantize --quiet "$f16" "$b" "$s" 2>"$work/$tag-$s.strata.err"
		sa=$?
		if [ $la -ne 0 ] || [ $sa -ne 0 ]; then
			# llama.cpp has no fallback for the 32-weight types: rows of 172 stop both
			[ $la -ne 0 ] && [ $sa -ne 0 ] && r=both || { r=ONE; rc=1; }
			printf '%-7s %-7s %s refuse: llama.cpp "%s"; strata "%s"\n' "$tag" "$s" "$r" \
				"$(grep -v '^$' "$work/$tag-$s.llama.log" | tail -2 | head -1)" "$(cat "$work/$tag-$s.strata.err")"
			continue
		fi
		"$RMS" "$f16" "$a" "$b" >"$work/$tag-$s.rms.txt" || rc=1
		# "# N tensors compared: I byte-identical, worst rms B/A W, mean rms A x B y; K over 1.01"
		set -- $(tail -1 "$work/$tag-$s.rms.txt" | tr -d ';,' |
			awk '{ print $2, $5, $10, $14, $16, $17 }')
		runs=-
		if [ -x "$llref" ]; then
			"$llref" -m "$b" -n 4 --ids-only >"$work/$tag-$s.llref.txt" 2>&1 &&
				runs="loads, generates ($(sed -n 's/^gen: //p' "$work/$tag-$s.llref.txt"))" ||
				runs="FAILS: $(tail -1 "$work/$tag-$s.llref.txt")"
		fi
		printf '%-7s %-7s %8s %10s %12s %13s %12s  %s\n' "$tag" "$s" "$1" "$2" "$3" "$4" "$5" "$runs"
		[ "$6" = 0 ] || rc=1
	done
done
exit $rc
