#!/bin/sh
# compare-llamacpp.sh: strata next to llama.cpp on the same GGUF files: the logits of a greedy
# run and tokenization (do we compute what llama.cpp computes?), then prompt and generation
# speed, unconstrained and under a cgroup memory cap. Not run by `make check`: it needs a
# llama.cpp build (never part of this repository) and, for the speed half, root.
#
#   bench/compare-llamacpp.sh LLAMA_BUILD_DIR [--builddir DIR] [--logits-dump PROG]
#        [--shared DIR] [--work-dir DIR] [--model-7b FILE] [--only outputs|speed]
#        [--repeat R] [--threads T] [--prompt-tokens P] [--gen-tokens N]
#        [--capped-gen-tokens N] [--cap SIZE] [--budget SIZE]
#   bench/compare-llamacpp.sh LLAMA_BUILD_DIR --table WORK_DIR/speed-DATE.txt   (a past run's table)
#
# LLAMA_BUILD_DIR holds bin/llama-bench and bin/llama-tokenize (bin/llama-quantize and
# bin/llama-cli are used when present). --builddir is strata's build directory (default: the
# current directory, as in bench/compare.sh).
#
# Logits need a greedy-decoding program against libllama, PROG (not part of strata; see
# bench/README.md). Its interface:  PROG MODEL OUT.f32 N_GEN THREADS ID...
# It decodes the prompt ids (BOS included) in one batch with an F32 KV cache, then N_GEN
# greedy steps (argmax, first index on a tie), appending each step's logits (n_vocab f32,
# native endianness) to OUT.f32, and prints "gen: ID ..." on stdout. Without --logits-dump
# that part is skipped (llama-bench still loads and runs every model).
#
# Models (synthesized once into --work-dir, default /work/bench-data/compare-llamacpp, outside
# the repository): stories260K, and one random llama model per weight type strata writes
# (256 wide, 4 layers, 8/4 heads, 768 ff) on the real 32000-token llama-spm vocabulary.
# shellcheck disable=SC2046 # set -- $(...) splits a line of figures into words on purpose
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '7,11p' "$0" | sed 's/^#//' >&2; exit 2; }
[ $# -ge 1 ] || usage
llama=$(cd "$1" && pwd) || exit 2
shift
builddir=${STRATA_BUILDDIR:-.}
dump=
shared=${STRATA_SHARED:-/work/shared}
work=${STRATA_BENCH_DATA:-/work/bench-data}/compare-llamacpp
model7b=${STRATA_BENCH_DATA:-/work/bench-data}/7b-q8_0.gguf
only=
table_file=
repeat=1
threads=2
prompt=128
gen=16
capgen=4
cap=2G
budget=1536M
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) builddir=$2; shift 2 ;;
	--logits-dump) dump=$2; shift 2 ;;
	--shared) shared=$2; shift 2 ;;
	--work-dir) work=$2; shift 2 ;;
	--model-7b) model7b=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--table) only=table; table_file=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--prompt-tokens) prompt=$2; shift 2 ;;
	--gen-tokens) gen=$2; shift 2 ;;
	--capped-gen-tokens) capgen=$2; shift 2 ;;
	--cap) cap=$2; shift 2 ;;
	--budget) budget=$2; shift 2 ;;
	*) usage ;;
	esac
done
SMODEL=$builddir/tools/strata-model
SBENCH=$builddir/bench/strata-bench
for p in "$SMODEL" "$SBENCH" "$llama/bin/llama-bench" "$llama/bin/llama-tokenize"; do
	[ -x "$p" ] || { echo "compare-llamacpp.sh: $p is missing (build it first)" >&2; exit 1; }
done
case $work in "$top"/*) echo "compare-llamacpp.sh: --work-dir must be outside the repository" >&2; exit 2 ;; esac
runs=$work/runs # per-run outputs: prompt ids, greedy tokens, logits
mkdir -p "$runs"
# Debian's python3 when there (only its standard library is used)
PY=/usr/bin/python3
[ -x $PY ] || PY=python3

vocab=$shared/vocab/ggml-vocab-llama-spm.gguf
stories=$shared/models/stories260K.gguf
types="f32 f16 bf16 q8_0 q4_0"
short="Once upon a time"
long="In the beginning of the long summer, the children of the small village by the sea would gather every morning at the old stone bridge, waiting for the fishermen to return with their boats full of silver fish, and they would run along the shore shouting and laughing until the sun was high in the sky."

echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC'); $(uname -srm); $(nproc) CPUs: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "strata:   $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?') ($builddir)"
cc=$llama/CMakeCache.txt
if [ -f "$cc" ]; then
	echo "llama.cpp: $(git -C "$llama/.." rev-parse --short HEAD 2>/dev/null || echo '?'); $(sed -n 's/^\(CMAKE_BUILD_TYPE\|GGML_NATIVE\|GGML_BLAS\|GGML_OPENMP\|GGML_LLAMAFILE\|GGML_CPU_AARCH64\|LLAMA_CURL\):[A-Z]*=\(.*\)/\1=\2/p' "$cc" | tr '\n' ' ')"
fi
if [ -x "$llama/bin/llama-cli" ]; then
	sys=$("$llama/bin/llama-cli" -m "$stories" -n 1 -p x -no-cnv -t "$threads" </dev/null 2>&1 |
		sed -n 's/^system_info: .*CPU : //p' | head -1)
	echo "llama.cpp CPU features: $sys"
fi

# ---- outputs ----

# cmp_logits A.f32 B.f32 N_VOCAB: "step-0 max|d| rel  all-steps max|d| rel  close/steps" of A
# against B, relative to max|B| of the same step; close = the leading steps with rel <= 1e-5
cmp_logits() {
	$PY - "$1" "$2" "$3" <<'EOF'
import array, sys
a, b = array.array('f'), array.array('f')
a.frombytes(open(sys.argv[1], 'rb').read()); b.frombytes(open(sys.argv[2], 'rb').read())
v = int(sys.argv[3]); steps = min(len(a), len(b)) // v
r = []
for s in range(steps):
    x, y = a[s * v:(s + 1) * v], b[s * v:(s + 1) * v]
    d = max(abs(p - q) for p, q in zip(x, y)); m = max(abs(q) for q in y)
    r.append((d, d / m if m else 0.0))
close = next((i for i, t in enumerate(r) if t[1] > 1e-5), len(r))
print("%.2e %.1e %.2e %.1e %d/%d" % (r[0][0], r[0][1], max(t[0] for t in r), max(t[1] for t in r), close, len(r)))
EOF
}
# same_tokens A B: "yes", or the first step (0-based) where the greedy tokens part
same_tokens() {
	awk 'NR == FNR { for (i = 1; i <= NF; i++) a[i] = $i; n = NF; next }
	     { for (i = 1; i <= (NF > n ? NF : n); i++) if (a[i] != $i) { print "no, step " i - 1; exit }
	       print "yes" }' "$1" "$2"
}
# strata_run MODEL TAG PROMPT: greedy 16 tokens; TAG.ids (prompt ids), TAG.s.gen, TAG.s.f32
strata_run() {
	"$SMODEL" generate "$1" --prompt "$3" -n 16 --temperature 0 --kv-type f32 --ignore-eos \
		--threads "$threads" --ids --logits "$runs/$2.s.f32" >"$runs/$2.out"
	sed -n 's/^prompt: //p' "$runs/$2.out" >"$runs/$2.ids"
	sed -n 's/^gen: //p' "$runs/$2.out" >"$runs/$2.s.gen"
}
# llama_run MODEL TAG: the same prompt ids through PROG; TAG.l.gen, TAG.l.f32
llama_run() {
	"$dump" "$1" "$runs/$2.l.f32" 16 "$threads" $(cat "$runs/$2.ids") 2>"$runs/$2.l.err" |
		sed -n 's/^gen: //p' >"$runs/$2.l.gen"
}

outputs() {
	for t in $types; do
		m=$work/synth-$t.gguf
		[ -f "$m" ] || "$SMODEL" synth "$m" --n-embd 256 --n-layer 4 --n-head 8 --n-head-kv 4 \
			--n-ff 768 --type "$t" --vocab "$vocab" --seed 1 >/dev/null
		# the f32 model llama.cpp dequantizes this one to: the same weights, exact arithmetic
		[ "$t" = f32 ] || [ ! -x "$llama/bin/llama-quantize" ] || [ -f "$work/up32-$t.gguf" ] ||
			"$llama/bin/llama-quantize" --allow-requantize "$m" "$work/up32-$t.gguf" F32 >/dev/null 2>&1
	done

	echo
	echo "Does llama.cpp read strata's files? (llama-bench -p 0 -n 4: every tensor loaded, 4 tokens generated)"
	for m in "$stories" $(for t in $types; do echo "$work/synth-$t.gguf"; done); do
		ts=$("$llama/bin/llama-bench" -m "$m" -t "$threads" -p 0 -n 4 -r 1 -o csv 2>/dev/null |
			tr -d '"' | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
				{ printf "%s, %.0f tok/s\n", $k["model_type"], $k["avg_ts"] }') || ts=
		[ -n "$ts" ] && echo "  reads: $(basename "$m") ($ts)" || echo "  FAILS: $(basename "$m")"
	done

	echo
	echo "Tokenization, llama-spm vocabulary: strata-model tokenize --bos against llama-tokenize"
	for s in "El veloz murciélago hindú comía feliz cardillo y kiwi." \
		"Niño, ñandú, pingüino: 12,50 € (IVA incl.)." \
		"  Dos  espacios,   tres   y un salto
de línea: ¿qué tal? ¡Olé!" \
		"L'àvia va collir cireres al jardí, però en Jordi no hi era." \
		"La col·lecció del col·legi és a l'Ajuntament de Lleida." \
		"A nena galega colleu unha chaiva de ouro na ribeira do río." \
		"Xoán e Uxía foron á Coruña; Iñaki eta Begoña Donostiara." \
		"Gaur goizean mendira igo gara eta euria hasi zaigu bidean." \
		" 𝔘nicode ❤ 日本語 テスト"; do
		a=$("$llama/bin/llama-tokenize" -m "$vocab" -p "$s" --ids --log-disable --no-escape 2>/dev/null | tr -d '[],')
		b=$("$SMODEL" tokenize "$vocab" "$s" --bos)
		[ "$a" = "$b" ] && r=same || r=DIFFERENT
		printf '  %-9s %3d tokens  %s\n' "$r" "$(echo "$b" | wc -w)" "$(echo "$s" | tr '\n' ' ')"
		[ "$r" = same ] || printf '    llama.cpp: %s\n    strata:    %s\n' "$a" "$b"
	done

	if [ -z "$dump" ]; then
		echo
		echo "(no --logits-dump: logits not compared)"
		return 0
	fi
	echo
	echo "Logits of a greedy run, strata-model generate --kv-type f32 against libllama (F32 KV), same prompt ids,"
	echo "16 steps; max|d| = max over the vocabulary of |strata - llama.cpp|, rel = max|d| / max|llama.cpp logit|."
	echo "exact: the same weights dequantized to f32 by llama-quantize, run by strata (rel to that run's logits)."
	echo "close: the leading steps within 1e-5 rel."
	printf '%-8s %-5s %6s %-11s %9s %7s %9s %7s %6s  %-17s\n' model prompt tokens "greedy same" \
		"step0 d" rel "16-step d" rel close "exact: s / l"
	for m in stories:"$stories" $(for t in $types; do echo "$t:$work/synth-$t.gguf"; done); do
		t=${m%%:*} f=${m#*:}
		for pr in short long; do
			[ $pr = short ] && p=$short || p=$long
			[ "$t" = stories ] && [ $pr = long ] && continue # 128-token training context
			tag=$t-$pr
			strata_run "$f" "$tag" "$p"
			llama_run "$f" "$tag"
			if [ ! -s "$runs/$tag.l.f32" ]; then
				echo "$t $pr: llama.cpp failed: $(tail -1 "$runs/$tag.l.err")"
				continue
			fi
			v=$(($(stat -c %s "$runs/$tag.s.f32") / 64))
			set -- $(cmp_logits "$runs/$tag.s.f32" "$runs/$tag.l.f32" "$v")
			ex=-
			if [ -f "$work/up32-$t.gguf" ]; then
				strata_run "$work/up32-$t.gguf" "up-$tag" "$p"
				ex="$(cmp_logits "$runs/$tag.s.f32" "$runs/up-$tag.s.f32" "$v" | cut -d' ' -f4) / $(cmp_logits "$runs/$tag.l.f32" "$runs/up-$tag.s.f32" "$v" | cut -d' ' -f4)"
			fi
			printf '%-8s %-5s %6s %-11s %9s %7s %9s %7s %6s  %-17s\n' "$t" $pr \
				"$(wc -w <"$runs/$tag.ids")" "$(same_tokens "$runs/$tag.s.gen" "$runs/$tag.l.gen")" \
				"$1" "$2" "$3" "$4" "$5" "$ex"
		done
	done
}

# ---- speed ----

# drop, cap_begin, cap_end, incap
. "$top/bench/lib.sh"
# quiet: wait (up to 2 minutes) until other processes leave the CPUs alone (< 10% busy over 2 s)
quiet() {
	i=0
	while [ $i -lt 60 ]; do
		b=$(
			head -1 /proc/stat
			sleep 2
			head -1 /proc/stat
		)
		busy=$(echo "$b" | awk '{ t = 0; for (i = 2; i <= 9; i++) t += $i; idle[NR] = $5 + $6; tot[NR] = t }
			END { d = tot[2] - tot[1]; printf "%d", d ? 100 * (d - (idle[2] - idle[1])) / d : 0 }')
		[ "$busy" -lt 10 ] && return 0
		i=$((i + 1))
	done
	echo "  (the machine is still ${busy}% busy; measuring anyway)" >&2
}
# llama_bench CAPPED N: "prompt_tok/s gen_tok/s" of llama-bench (mmap, its own warm-up runs)
llama_bench() {
	c=
	[ "$1" = yes ] && c=incap
	$c "$llama/bin/llama-bench" -m "$model7b" -t "$threads" -p "$prompt" -n "$2" -r "$3" -o csv 2>/dev/null |
		tr -d '"' | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
			{ if ($k["n_prompt"] > 0) p = $k["avg_ts"]; else g = $k["avg_ts"] }
			END { printf "%.3f %.3f\n", p, g }'
}
# strata_bench CAPPED IO BLAS N: "prompt_tok/s gen_tok/s blas-kernel peak-RSS-MiB"; BLAS "env"
# keeps the environment's OPENBLAS_CORETYPE, "unset" removes it
strata_bench() {
	c='' b=''
	[ "$1" = yes ] && c=incap && b="--memory-budget $budget"
	e=
	[ "$3" = unset ] && e="-u OPENBLAS_CORETYPE"
	# shellcheck disable=SC2086 # $c, $e and $b are empty or words on purpose
	$c env $e "$SBENCH" --model "$model7b" $b --io "$2" --threads "$threads" --prompt-tokens "$prompt" \
		--gen-tokens "$4" --warmup 1 2>&1 |
		awk '/^prompt:/ { for (i = 1; i <= NF; i++) if ($i == "tok/s;") p = $(i - 1) }
		     /^generation:/ { for (i = 1; i <= NF; i++) if ($i == "tok/s") g = $(i - 1) }
		     /OpenBLAS/ { for (i = 1; i <= NF; i++) if ($i == "OpenBLAS") k = $(i + 1) }
		     /peak RSS/ { for (i = 1; i <= NF; i++) if ($i == "RSS") r = $(i + 1) }
		     END { printf "%s %s %s %s\n", p, g, k, r }'
}
peak() { awk '{ printf "%.0f", $1 / 1048576 }' "$cg/memory.max_usage_in_bytes"; }

# jiffies "total idle" of the whole machine so far
cpu_ticks() { awk 'NR == 1 { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $5 + $6 }' /proc/stat; }
# own_s FILE: CPU seconds used so far by this shell's finished children, saved by "times >FILE",
# which must run in this shell (not in a command substitution's subshell) to see them
own_s() {
	awk 'NR == 2 { gsub(/s/, ""); split($1, u, "m"); split($2, y, "m"); print u[1] * 60 + u[2] + y[1] * 60 + y[2] }' "$1"
}
# rec CASE PROGRAM BLAS CMD...: one run of CMD (which prints "prompt gen kernel peak") after the
# machine quietens and the page cache is dropped; appends "CASE PROGRAM BLAS R prompt gen kernel
# peak other%" to $res, other% = the share of the machine's CPU time others used during the run
rec() {
	rc_case=$1 rc_prog=$2 rc_blas=$3
	shift 3
	quiet
	drop
	t0=$(cpu_ticks)
	times >"$runs/.times0"
	rc_out=$("$@")
	times >"$runs/.times1"
	t1=$(cpu_ticks)
	c0=$(own_s "$runs/.times0")
	c1=$(own_s "$runs/.times1")
	hz=$(getconf CLK_TCK)
	other=$(echo "$t0 $t1 $c0 $c1 $hz" | awk '{ tot = ($3 - $1) / $7; busy = tot - ($4 - $2) / $7
		o = tot > 0 ? 100 * (busy - ($6 - $5)) / tot : 0; printf "%.0f", o < 0 ? 0 : o }')
	echo "$rc_case $rc_prog $rc_blas $r $rc_out $other" >>"$res"
}
llama_free() { echo "$(llama_bench no "$gen" 2) - -"; }
llama_cap() { echo "$(llama_bench yes "$capgen" 1) - $(peak)"; }
strata_free() { strata_bench no "$1" "$2" "$gen"; }
strata_cap() {
	set -- $(strata_bench yes "$1" "$2" "$capgen")
	echo "$1 $2 $3 $(peak)"
}

speed() {
	[ "$(id -u)" -eq 0 ] || { echo "compare-llamacpp.sh: the speed half needs root (page cache, cgroups)" >&2; return 1; }
	[ -f "$model7b" ] || { echo "compare-llamacpp.sh: $model7b is missing (bench/compare.sh makes it)" >&2; return 1; }
	[ -d /sys/fs/cgroup/memory ] || { echo "compare-llamacpp.sh: no cgroup v1 memory controller" >&2; return 1; }
	echo
	echo "Speed: $model7b ($(stat -c %s "$model7b") bytes), $threads threads, prompt $prompt tokens,"
	echo "generation $gen tokens ($capgen under the cap) after 1 warm-up; environment OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}."
	res=$work/speed-$(date +%Y%m%d-%H%M%S).txt
	: >"$res"
	cap_begin "strata-compare-$$" "$cap"
	for r in $(seq "$repeat"); do
		# (a) unconstrained: each program warms up on its own after the page cache is dropped
		rec free llama.cpp-mmap - llama_free
		for io in uring mmap; do
			for blas in env unset; do
				rec free "strata-$io" $blas strata_free $io $blas
			done
		done
		# (b) under the cap: llama.cpp's mapping thrashes, strata streams within --budget
		rec cap llama.cpp-mmap - llama_cap
		for io in uring mmap; do
			for blas in env unset; do
				rec cap "strata-$io" $blas strata_cap $io $blas
			done
		done
		echo "  (repeat $r of $repeat done)" >&2
	done
	drop
	cap_end
	table "$res"
	echo "raw figures: $res"
}

# table RESULTS: medians over the repeats; each ratio is strata / llama.cpp within one repeat
# (the same minutes), then the median of those
table() {
	awk -v cap="$cap" -v budget="$budget" '
		function med(s,   n, a, i, j, t) {
			n = split(s, a, " ")
			for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		{ key = $1 " " $2 " " $3; if (!(key in seen)) { order[++nk] = key; seen[key] = 1 }
		  P[key, $4] = $5; G[key, $4] = $6; reps[key] = reps[key] " " $4
		  p[key] = p[key] " " $5; g[key] = g[key] " " $6; kern[key] = $7; mem[key] = mem[key] " " $8
		  oth[key] = oth[key] " " $9 }
		END {
			printf "%-5s %-15s %-6s %-10s %8s %7s %8s %7s %9s %6s\n", "case", "program", "blas", "kernel",
				"prompt", "ratio", "gen", "ratio", "peak MiB", "other"
			for (i = 1; i <= nk; i++) {
				k = order[i]; split(k, f, " "); ref = f[1] " llama.cpp-mmap -"
				rp = rg = ""
				if (f[2] !~ /llama/) {
					n = split(reps[k], rr, " ")
					for (j = 1; j <= n; j++) if ((ref SUBSEP rr[j]) in P) {
						rp = rp " " P[k, rr[j]] / P[ref, rr[j]]; rg = rg " " G[k, rr[j]] / G[ref, rr[j]] }
					rp = sprintf("%.2f", med(rp)); rg = sprintf("%.2f", med(rg))
				}
				printf "%-5s %-15s %-6s %-10s %8.2f %7s %8.3f %7s %9s %5.0f%%\n", f[1] == "cap" ? cap : "none",
					f[2], f[3], kern[k], med(p[k]), rp, med(g[k]), rg, med(mem[k]), med(oth[k])
			}
			printf "tok/s and peak: medians of the repeats; ratio: strata / llama.cpp in the same repeat, median.\n"
			printf "peak: RSS when unconstrained; under the cap the cgroup'"'"'s peak usage (page cache included);\n"
			printf "strata runs there with --memory-budget %s. other: CPU share others took during the run.\n", budget
		}' "$1"
}

case $only in
outputs) outputs ;;
speed) speed ;;
table) table "$table_file" ;;
"") outputs; speed ;;
*) usage ;;
esac
