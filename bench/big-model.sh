#!/bin/sh
# big-model.sh: the case strata exists for, in one run: a model five times larger than the
# machine's memory cap. Synthesizes (once, cached) an ALIA-40b-shaped Q8_0 model (8192 embd,
# 48 layers, 64/8 heads, 24576 ff, 256,000-token vocabulary: 42.9 GB; --type q4_k_m: the
# Q4_K_M most people download, q4_K and q6_K as llama-quantize mixes them, 24.6 GB), puts
# every run in a cgroup v1 memory cgroup capped at --cap (default 8G: "a server with 8 GB of RAM"; the
# page cache a run uses counts against it), and prints, measured in this run:
#   - strata (io_uring) tok/s against the disk-bound ideal, fio MB/s / streamed bytes per token,
#   - its read bandwidth against fio's sequential O_DIRECT read of the same file,
#   - strata io_uring against strata --io mmap, and against llama.cpp (its default mmap) when
#     --llama DIR (a llama.cpp build directory with bin/llama-bench) is given,
#   - each run's peak memory (the cgroup's, page cache included) against the cap.
# Root is needed (page cache, cgroups). Not run by `make check`: it takes ~45 GB of disk and
# about ten minutes.
#
#   bench/big-model.sh [--builddir DIR] [--data-dir DIR] [--type q8_0|q4_k_m] [--cap 8G] [--budget 6G]
#                      [--prompt-tokens 16] [--gen-tokens 3] [--threads T] [--llama DIR]
#                      [--repeat R]
#   bench/big-model.sh --table DATA_DIR/big-DATE     (print a past run's table again)
# A repeat runs each program once, in turn; this machine's virtual disk changes speed from
# minute to minute, so every figure is taken against the fio runs just before and after it,
# and program against program only within one repeat.
# shellcheck disable=SC2046 # set -- $(...) splits a line of figures into words on purpose
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${STRATA_BUILDDIR:-}
data=${STRATA_BENCH_DATA:-/work/bench-data}
cap=8G
budget=6G
type=q8_0
prompt=16
gen=3
threads=0
llama=
repeat=1
table_only=
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) builddir=$2; shift 2 ;;
	--data-dir) data=$2; shift 2 ;;
	--type) type=$2; shift 2 ;;
	--cap) cap=$2; shift 2 ;;
	--budget) budget=$2; shift 2 ;;
	--prompt-tokens) prompt=$2; shift 2 ;;
	--gen-tokens) gen=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--llama) llama=$(cd "$2" && pwd); shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--table) table_only=$2; shift 2 ;;
	-h|--help) sed -n '2,22s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "big-model.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
done
[ "$threads" -gt 0 ] || threads=$(nproc) # strata-bench and llama-bench take a count
die() { echo "big-model.sh: $*" >&2; exit 1; }
# tables DIR: the table of a run (DIR/runs.txt; the cap from DIR/cap)
tables() {
awk -v cap="$(cat "$1/cap")" '
function med(s,    n, a, i, j, t) {
	n = split(s, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ n++; name[n] = $1; rep[n] = $2; tok[n] = $3; bpt[n] = $4; bw[n] = $5; ovl[n] = $6
  pk[n] = $8; fio[n] = ($9 + $10) / 2; streamed[n] = $11; ptok[n] = $12
  if (!($1 in seen)) { order[++np] = $1; seen[$1] = 1 }
  G[$1, $2] = $3; P[$1, $2] = $12; F[$1, $2] = fio[n] }
END {
	print ""
	printf "%-15s %3s %8s %8s %9s %9s %8s %7s %7s %8s %8s %7s\n", "run", "rep", "gen", "prompt",
		"read/tok", "read", "fio", "read/", "tok/s/", "overlap", "peak", "peak/"
	printf "%-15s %3s %8s %8s %9s %9s %8s %7s %7s %8s %8s %7s\n", "", "", "tok/s", "tok/s", "GB",
		"MB/s", "MB/s", "fio", "ideal", "", "MiB", "cap"
	for (i = 1; i <= n; i++) {
		ideal = fio[i] * 1e6 / streamed[i] # tok/s if every streamed byte came at fio speed
		printf "%-15s %3d %8.4f %8.3f %9.2f %9s %8.0f %7s %7.3f %8s %8.0f %7.3f\n", name[i], rep[i],
			tok[i], ptok[i], bpt[i] / 1e9, bw[i] == "-" ? "-" : sprintf("%.0f", bw[i]), fio[i],
			bw[i] == "-" ? "-" : sprintf("%.3f", bw[i] / fio[i]), tok[i] / ideal,
			ovl[i] == "-" ? "-" : sprintf("%.3f", ovl[i]), pk[i] / 1048576, pk[i] / cap
		if (bw[i] != "-") rbw[name[i]] = rbw[name[i]] " " bw[i] / fio[i]
		rid[name[i]] = rid[name[i]] " " tok[i] / ideal
		rpk[name[i]] = rpk[name[i]] " " pk[i] / cap
	}
	print ""
	print "Medians over the repeats (program against program: within each repeat, then the median):"
	for (k = 1; k <= np; k++) {
		m = order[k]
		printf "  %-15s tok/s / ideal %.3f", m, med(rid[m])
		if (rbw[m] != "") printf ", read / fio %.3f", med(rbw[m])
		printf ", peak / cap %.3f\n", med(rpk[m])
	}
	for (k = 1; k <= np; k++) {
		m = order[k]
		if (m == "strata-uring") continue
		rg = rp = rn = ""
		for (r = 1; ("strata-uring", r) in G; r++)
			if ((m, r) in G && G[m, r] > 0) {
				rg = rg " " G["strata-uring", r] / G[m, r]
				rp = rp " " P["strata-uring", r] / P[m, r]
				# each at the speed its own disk minutes allowed
				rn = rn " " (G["strata-uring", r] / F["strata-uring", r]) / (G[m, r] / F[m, r])
			}
		if (rg != "")
			printf "  strata-uring / %-15s generation %.2fx (%.2fx per MB/s of fio), prompt %.2fx\n",
				m, med(rg), med(rn), med(rp)
	}
	print ""
	print "read/tok: bytes read per generated token (llama.cpp: the model, which its mapping touches"
	print "per token). read MB/s: strata-uring: while reads were in flight; strata-mmap: bytes / wall."
	print "fio: sequential O_DIRECT reads of the same file, 32 in flight, the better of 1 MiB and 4 MiB"
	print "reads (fio.txt has both), mean of the runs just before and after."
	print "tok/s/ideal: tok/s / (fio bytes/s / bytes streamed per token): 1 = as fast as the disk allows"
	print "(llama.cpp: its whole model per token). peak: the cgroup peak, page cache included."
	print "per MB/s of fio: each generation speed divided by its own fio figure first, since the disk"
	print "of a virtual machine can change speed between one run and the next."
}' "$1/runs.txt"
}
if [ -n "$table_only" ]; then
	[ -f "$table_only/runs.txt" ] || die "no $table_only/runs.txt"
	tables "$table_only"
	exit 0
fi

. "$top/bench/lib.sh"
find_builddir "$builddir"
[ -z "$llama" ] || [ -x "$llama/bin/llama-bench" ] || die "no $llama/bin/llama-bench"
[ "$(id -u)" -eq 0 ] || die "needs root (to drop the page cache and make a memory cgroup)"
[ -d /sys/fs/cgroup/memory ] || die "no cgroup v1 memory controller at /sys/fs/cgroup/memory"
command -v fio >/dev/null || die "fio is not installed (apt-get install fio)"
data_dir "$data"

# ---- the model: Q8_0: 48 x 801.6 MB layers + 2 x 2.23 GB (embedding, head); Q4_K_M:
# 24 layers of 478.8 MB and 24 of 424.7 MB (q6_K attn_v and ffn_down in every other one,
# llama-quantize's use_more_bits), a 1.18 GB q4_K embedding and a 1.72 GB q6_K head ----
case $type in
q8_0) bytes=42971183392 text="42.9 GB; a few minutes" ;;
q4_k_m) bytes=24600000000 text="24.6 GB; a few minutes" ;;
*) die "--type: q8_0 or q4_k_m" ;;
esac
model=$data/alia40b-$type.gguf
synth_once "$model" "$bytes" "$text" --n-embd 8192 --n-layer 48 \
	--n-head 64 --n-head-kv 8 --n-ff 24576 --type "$type" --vocab builtin --n-vocab 256000 \
	--name ALIA-40b-shaped
size=$(stat -c %s "$model")
out=$data/big-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"

# ---- the cap ----
cap_begin "strata-big-$$" "$cap"
cap_bytes=$(cat "$cg/memory.limit_in_bytes")
echo "$cap_bytes" >"$out/cap"
peak() { cat "$cg/memory.max_usage_in_bytes"; }
# fio_mbps: the better of 1 MiB reads (the issue's shape) and 4 MiB reads (strata's): this
# virtual disk gives more to larger requests, and the disk's figure should be its best
fio_mbps() {
	a=$(fio_read "$model" 1M)
	b=$(fio_read "$model" 4M)
	echo "$a $b" >>"$out/fio.txt"
	[ "$a" -gt "$b" ] && echo "$a" || echo "$b"
}

{
	echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "host:    $(uname -srm); $(nproc) CPUs: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	echo "memory:  $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), every run capped at $cap ($cap_bytes bytes) by a memory cgroup"
	echo "model:   $model, $size bytes ($(awk -v s="$size" -v c="$cap_bytes" 'BEGIN { printf "%.1f", s / c }') x the cap)"
	echo "runs:    prompt $prompt tokens, 1 warm-up + $gen measured generated tokens, strata --memory-budget $budget, page cache dropped before each"
} | tee "$out/machine.txt"

# strata IO: one strata-bench run in the cap; appends "strata-IO repeat tok/s bytes/token
# read-MB/s overlap stall peak fio-before fio-after streamed/pass prompt-tok/s" to runs.txt
fio_prev=$(fio_mbps)
strata() {
	drop
	incap "$builddir/bench/strata-bench" --model "$model" --memory-budget "$budget" --io "$1" \
		--prompt-tokens "$prompt" --gen-tokens "$gen" --warmup 1 --threads "$threads" --json \
		>"$out/strata-$1-r$r.json" 2>"$out/strata-$1-r$r.err" ||
		{ cat "$out/strata-$1-r$r.err" >&2; die "strata --io $1 failed"; }
	p=$(peak)
	fio_next=$(fio_mbps)
	f=$out/strata-$1-r$r.json
	bw=$(jget "$f" read_mbps_inflight)
	[ "$1" = uring ] || bw=$(jget "$f" read_mbps_wall)
	echo "strata-$1 $r $(jget "$f" gen_tok_s) $(jget "$f" gen_bytes_per_token) $bw" \
		"$(jget "$f" overlap) $(jget "$f" stall_fraction) $p $fio_prev $fio_next" \
		"$(jget "$f" streamed_bytes_per_pass) $(jget "$f" prompt_tok_s)" >>"$out/runs.txt"
	echo "  strata --io $1: $(jget "$f" gen_tok_s) tok/s, peak $((p >> 20)) MiB; fio $fio_prev then $fio_next MB/s" >&2
	fio_prev=$fio_next
}
# llamacpp: llama-bench (mmap, its defaults) in the cap, the same prompt and generation
llamacpp() {
	drop
	t=$threads
	[ "$t" -gt 0 ] || t=$(nproc)
	incap "$llama/bin/llama-bench" -m "$model" -t "$t" -p "$prompt" -n "$gen" -r 1 -o csv \
		>"$out/llama-r$r.csv" 2>"$out/llama-r$r.err" ||
		{ cat "$out/llama-r$r.err" >&2; die "llama-bench failed"; }
	p=$(peak)
	fio_next=$(fio_mbps)
	set -- $(tr -d '"' <"$out/llama-r$r.csv" | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
		{ if ($k["n_prompt"] > 0) pp = $k["avg_ts"]; else g = $k["avg_ts"] }
		END { printf "%s %s\n", g, pp }')
	# llama.cpp does not say what it read: its mapping touches the whole model per token
	echo "llama.cpp-mmap $r $1 $size - - - $p $fio_prev $fio_next $size $2" >>"$out/runs.txt"
	echo "  llama.cpp: $1 tok/s, peak $((p >> 20)) MiB; fio $fio_prev then $fio_next MB/s" >&2
	fio_prev=$fio_next
}

echo "running (each run between two fio runs) ..." >&2
for r in $(seq "$repeat"); do
	strata uring
	strata mmap
	[ -z "$llama" ] || llamacpp
done

tables "$out" | tee "$out/table.txt"
echo "" >&2
echo "raw results: $out" >&2
