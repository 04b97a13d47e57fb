#!/bin/sh
# compare-kquants.sh: strata against llama.cpp on GGUF files quantized by llama.cpp's own
# llama-quantize, for every scheme people download: the same greedy tokens? how close are the
# logits? Beside ../shared/models/kquants (made the same way, checked by tests/test-kquants),
# on models of our own: random llama models synthesized in F16 (two shapes: 4 heads per KV
# head, which changes the Q2_K/IQ4_XS recipes, and 2), quantized by llama-quantize, run by
# strata-model generate and by llref (a greedy run against libllama, F32 KV: see
# /work/llama-tools/REPORT.md), on a short prompt (the dot kernels with quantized activations,
# as llama.cpp) and on a 90-token one (its first step through the dequantize + sgemm path,
# f32 activations: expect larger differences there). "same": the 16 greedy tokens equal, or
# NO@STEP:MARGIN where they part and by how much llama.cpp's best logit led its second there
# (random weights give flat distributions: near ties that a 1e-2 difference flips). "close":
# the leading steps within 1e-5. Not run by `make check`: it needs llama.cpp.
#
#   bench/compare-kquants.sh [--builddir DIR] [--llama DIR] [--llref PROG] [--work-dir DIR]
#                            [--threads T] [SCHEME...]
#
# --llama: a llama.cpp build directory with bin/llama-quantize (default /work/llama.cpp/build);
# --llref: default /work/llama-tools/llref; --work-dir: where models and runs go (default
# /work/bench-data/compare-kquants, outside the tree). SCHEME: default every llama-quantize
# scheme strata reads.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "compare-kquants.sh: $*" >&2; exit 1; }
. "$top/bench/lib.sh"
builddir=
llama=/work/llama.cpp/build
llref=/work/llama-tools/llref
work=${STRATA_BENCH_DATA:-/work/bench-data}/compare-kquants
threads=2
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) builddir=$2; shift 2 ;;
	--llama) llama=$2; shift 2 ;;
	--llref) llref=$2; shift 2 ;;
	--work-dir) work=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	-*) sed -n '13,14p' "$0" | sed 's/^#//' >&2; exit 2 ;;
	*) break ;;
	esac
done
schemes=${*:-Q4_K_M Q4_K_S Q5_K_M Q5_K_S Q6_K Q3_K_S Q3_K_M Q3_K_L Q2_K IQ4_XS IQ4_NL Q4_0 Q4_1 Q5_0 Q5_1 Q8_0}
find_builddir "$builddir"
SMODEL=$builddir/tools/strata-model
[ -x "$llama/bin/llama-quantize" ] || die "no $llama/bin/llama-quantize (--llama)"
[ -x "$llref" ] || die "no $llref (--llref)"
data_dir "$work"
shared=${STRATA_SHARED:-$top/../shared}
vocab=builtin
[ -f "$shared/models/stories260K.gguf" ] && vocab=$shared/models/stories260K.gguf
PY=/usr/bin/python3
[ -x $PY ] || PY=python3

short="Once upon a time"
long="Once upon a time, in a small town by the sea, there lived a girl who loved to read. Every day she went to the old library and read a new book. One day she found a strange book with a golden cover. She opened it and a bright light filled the room. When the light was gone, she was in a forest full of tall trees and singing birds."

# max |a - b| over each step, the largest, the leading steps within 1e-5
cmp_logits() {
	$PY - "$1" "$2" "$3" <<'EOF'
import array, sys
a, b = array.array('f'), array.array('f')
a.frombytes(open(sys.argv[1], 'rb').read()); b.frombytes(open(sys.argv[2], 'rb').read())
v = int(sys.argv[3]); steps = min(len(a), len(b)) // v
d = [max(abs(p - q) for p, q in zip(a[s * v:(s + 1) * v], b[s * v:(s + 1) * v])) for s in range(steps)]
close = next((i for i, x in enumerate(d) if x > 1e-5), len(d))
print("%.1e %.1e %d/%d" % (d[0], max(d), close, len(d)))
EOF
}

# STEP:MARGIN where the greedy tokens of two runs part, and llama.cpp's top-1 minus top-2
# logit at that step
parting() {
	$PY - "$1" "$2" "$3" <<'PYEOF'
import array, sys
s = open(sys.argv[1]).read().split('gen:')[1].split(); l = open(sys.argv[2]).read().split('gen:')[1].split()
k = next(i for i in range(len(l)) if i >= len(s) or s[i] != l[i])
a = array.array('f'); a.frombytes(open(sys.argv[3], 'rb').read()); v = len(a) // 16
top = sorted(a[k * v:(k + 1) * v], reverse=True)
print("%d:%.0e" % (k, top[0] - top[1]))
PYEOF
}

echo "date:      $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "strata:    $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?') ($builddir), kernels $(STRATA_ISA= "$SMODEL" generate "$shared/models/stories260K.gguf" -p x -n 1 --verbose 2>&1 | sed -n 's/.*kernels \([a-z0-9]*\),.*/\1/p' | head -1)"
echo "llama.cpp: $("$llama/bin/llama-cli" --version 2>&1 | sed -n 's/^version: //p' | head -1) ($llama)"
echo "models:    vocabulary $(basename "$vocab"); 16 greedy steps, F32 KV, $threads threads"
echo
printf '%-7s %-7s %-6s %-11s %-9s %-9s %-6s %-11s %-9s %-9s %-6s\n' shape scheme "" "short: same" "step0 d" "max d" close \
	"long: same" "step0 d" "max d" close
for shape in "gqa2 --n-head 8 --n-head-kv 4" "gqa4 --n-head 8 --n-head-kv 2"; do
	set -- $shape
	tag=$1
	shift
	f16=$work/$tag-f16.gguf
	[ -f "$f16" ] || "$SMODEL" synth "$f16" --n-embd 512 --n-layer 4 "$@" --n-ff 1536 --type f16 \
		--vocab "$vocab" --seed 7 --ctx 512
	for s in $schemes; do
		m=$work/$tag-$s.gguf
		[ -f "$m" ] || "$llama/bin/llama-quantize" "$f16" "$m" "$s" >/dev/null 2>&1 || {
			echo "$tag $s: llama-quantize failed"; continue; }
		line=
		for pr in short long; do
			[ $pr = short ] && p=$short || p=$long
			r=$work/runs/$tag-$s-$pr
			mkdir -p "$work/runs"
			"$SMODEL" generate "$m" --prompt "$p" -n 16 --temperature 0 --kv-type f32 --ignore-eos \
				--threads "$threads" --ids --logits "$r.s.f32" >"$r.s.out"
			ids=$(sed -n 's/^prompt: //p' "$r.s.out")
			"$llref" -m "$m" --prompt-ids "$ids" -n 16 -t "$threads" --kv-type f32 --logits "$r.l.f32" \
				--ids-only >"$r.l.out" 2>"$r.l.err" || { line="$line llref-failed"; continue; }
			if [ "$(sed -n 's/^gen: //p' "$r.s.out")" = "$(sed -n 's/^gen: //p' "$r.l.out")" ]; then
				same=yes
			else
				same=NO@$(parting "$r.s.out" "$r.l.out" "$r.l.f32")
			fi
			v=$(($(stat -c %s "$r.s.f32") / 64))
			line="$line $same $(cmp_logits "$r.s.f32" "$r.l.f32" "$v")"
		done
		set -- $line
		printf '%-7s %-7s %-6s %-11s %-9s %-9s %-6s %-11s %-9s %-9s %-6s\n' "$tag" "$s" "" "$1" "$2" "$3" "$4" \
			"$5" "$6" "$7" "$8"
	done
done
