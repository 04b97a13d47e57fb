#!/bin/sh
# compare.sh: the streaming comparison of bench/README.md in one run. Synthesizes (once) a
# 7B-shaped Q8_0 (or, --type q4_k_m, Q4_K_M) model in a data directory outside the repository, then runs strata-bench
# fully resident (the pure compute baseline) and at several budgets in both io modes, with
# fio's sequential O_DIRECT read of the same file just before and just after every run
# (this machine's virtual disk changes speed from minute to minute, so only neighbours
# compare fairly), dropping the page cache before each. Prints every figure that matters
# as a ratio measured in this run. Root is needed to drop the page cache.
#
#   bench/compare.sh [--builddir DIR] [--data-dir DIR] [--type q8_0|q4_k_m] [--budgets "1G q 2G 4G 5G"]
#                    [--modes "uring mmap"] [--prompt-tokens 16] [--gen-tokens 4]
#                    [--warmup 1] [--repeat 1] [--threads T] [--quiet-wait 300]
# Before each run it waits (up to --quiet-wait seconds) until other processes leave the
# cores and the disk alone: on a shared machine they would be measured too.
# A budget "q" is a quarter of the model's weights (the issue's uring-vs-mmap target).
# Raw JSON of every run and the fio figures go to DATA_DIR/results-DATE/;
# `compare.sh --table DATA_DIR/results-DATE` prints the tables of a past run again.
# shellcheck disable=SC2046,SC2086 # set -- $(...) and $fio_prev split figures into words on purpose
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${STRATA_BUILDDIR:-}
data=${STRATA_BENCH_DATA:-/work/bench-data}
budgets="1G q 2G 4G 5G"
modes="uring mmap"
prompt=16
gen=4
warmup=1
repeat=1
threads=0
quiet_wait=300
table_only=
type=q8_0
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) builddir=$2; shift 2 ;;
	--data-dir) data=$2; shift 2 ;;
	--budgets) budgets=$2; shift 2 ;;
	--type) type=$2; shift 2 ;;
	--modes) modes=$2; shift 2 ;;
	--prompt-tokens) prompt=$2; shift 2 ;;
	--gen-tokens) gen=$2; shift 2 ;;
	--warmup) warmup=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--quiet-wait) quiet_wait=$2; shift 2 ;;
	--table) table_only=$2; shift 2 ;;
	-h|--help) sed -n '2,18s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "compare.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
done

[ "$threads" -gt 0 ] || threads=$(nproc) # strata-bench and llama-bench take a count
die() { echo "compare.sh: $*" >&2; exit 1; }
# ---- the tables ----
# runs.txt columns: 1 name, 2 io, 3 budget, 4 fio1M before, 5 fio1M after, 6 load,
# 7 resident bytes, 8 unit bytes, 9 slots, 10 gen tok/s, 11 prompt tok/s, 12 wall ms,
# 13 compute ms, 14 I/O ms, 15 stall fraction, 16 MB/s in flight, 17 MB/s wall,
# 18 bytes/token, 19 disk bytes/token, 20 peak RSS, 21 RSS bound, 22 other load,
# 23 overlap, 24 fio4M before, 25 fio4M after, 26 slots, 27 slot bytes, 28 gen tokens
tables() {
awk '
function max(a, b) { return a > b ? a : b }
function rep(s) { return substr(s, index(s, "-r")) }
# keep KEY VALUE MET: the ratio of one run for the verdict, and whether it meets the target
function keep(k, v, met) { vals[k, ++nv[k]] = v; nmet[k] += met }
# verdict TEXT KEY OP GOAL: min / median / max of the kept values, runs that meet GOAL
function verdict(text, k, op, goal,    m, i, j, t, a, lo, hi, med) {
	m = nv[k]
	if (!m) { printf "  %-56s  no runs\n", text; return }
	for (i = 1; i <= m; i++) a[i] = vals[k, i]
	for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	lo = a[1]; hi = a[m]; med = m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
	printf "  %-52s %7.3f %7.3f %7.3f  %s %-4s met in %d of %d runs\n", text, lo, med, hi, op,
		goal, nmet[k], m
}
{
	n++; name[n] = $1; io[n] = $2; budget[n] = $3; fio1[n] = ($4 + $5) / 2
	res[n] = $7; units[n] = $8; slots[n] = $9; tok[n] = $10; ptok[n] = $11; wall[n] = $12
	comp[n] = $13; iot[n] = $14; stall[n] = $15; bwin[n] = $16; bwwall[n] = $17
	bpt[n] = $18; rss[n] = $20; bound[n] = $21; other[n] = $22; ovl[n] = $23
	fio4[n] = ($24 + $25) / 2
	# uring counts bytes as reads complete, and read-ahead runs across the window edges:
	# each edge may hold up to every slot read for the next pass
	btol[n] = io[n] == "uring" && $28 > 0 ? $26 * $27 / $28 : 0
	if (budget[n] == 0) basecomp[rep($1)] = comp[n]
}
END {
	MiB = 1048576
	print ""
	print "What happened (per generated token; fio = mean of the runs just before and after):"
	printf "%-14s %6s %6s %5s %7s %7s %6s %7s %6s %6s %6s %6s %6s %6s %6s %5s\n",
		"run", "budget", "resid", "slots", "gen", "prompt", "wall", "compute", "I/O",
		"stall", "read", "read", "fio", "fio", "peak", "other"
	printf "%-14s %6s %6s %5s %7s %7s %6s %7s %6s %6s %6s %6s %6s %6s %6s %5s\n",
		"", "MiB", "MiB", "", "tok/s", "tok/s", "ms", "ms", "ms", "%", "MB/s", "MB/s",
		"1M", "4M", "RSS", "load"
	printf "%-14s %6s %6s %5s %7s %7s %6s %7s %6s %6s %6s %6s %6s %6s %6s %5s\n",
		"", "", "", "", "", "", "", "", "", "", "flight", "wall", "MB/s", "MB/s", "MiB", ""
	for (i = 1; i <= n; i++)
		printf "%-14s %6.0f %6.0f %5d %7.3f %7.2f %6.0f %7.0f %6.0f %6.1f %6.0f %6.0f %6.0f %6.0f %6.0f %5.2f\n",
			name[i], (budget[i] ? budget[i] : units[i]) / MiB, res[i] / MiB, slots[i],
			tok[i], ptok[i], wall[i], comp[i], iot[i], 100 * stall[i], bwin[i], bwwall[i],
			fio1[i], fio4[i], rss[i] / MiB, other[i]
	print ""
	print "The targets, as ratios measured in this run:"
	printf "%-14s %8s %8s %8s %8s %8s %8s %10s %8s\n", "run", "read/", "read/", "wall/",
		"overlap", "wall/", "bytes/", "RSS/", "uring/"
	printf "%-14s %8s %8s %8s %8s %8s %8s %10s %8s\n", "", "fio1M", "fio4M", "fio1M",
		"", "ideal", "plan", "bound", "mmap"
	printf "%-14s %8s %8s %8s %8s %8s %8s %10s %8s\n", "target", ">=0.85", "", "", "<=1.15",
		"", "=1", "<=1", ">=1.5@q"
	for (i = 1; i <= n; i++) {
		streamed = units[i] - res[i]
		# the ideal: the disk at its best fio speed, or the resident run compute
		ideal_ms = max(streamed / (max(fio1[i], fio4[i]) * 1e6) * 1e3, basecomp[rep(name[i])])
		um = "-"
		if (io[i] == "uring" && budget[i] > 0)
			for (j = 1; j <= n; j++)
				if (io[j] == "mmap" && budget[j] == budget[i] && rep(name[j]) == rep(name[i]) && tok[j] > 0)
					um = sprintf("%.2f", tok[i] / tok[j])
		if (streamed > 0) {
			bw = io[i] == "uring" ? bwin[i] / fio1[i] : bwwall[i] / fio1[i]
			printf "%-14s %8.3f %8.3f %8.3f %8.3f %8.3f %8.4f %10.3f %8s\n", name[i], bw,
				io[i] == "uring" ? bwin[i] / fio4[i] : bwwall[i] / fio4[i],
				bwwall[i] / fio1[i], ovl[i], wall[i] / ideal_ms, bpt[i] / streamed,
				rss[i] / bound[i], um
			if (io[i] == "uring") {
				keep("bw", bw, bw >= 0.85); keep("ovl", ovl[i], ovl[i] <= 1.15)
				keep("ideal", wall[i] / ideal_ms, wall[i] / ideal_ms <= 1.15)
			}
			keep("bytes", bpt[i] / streamed, bpt[i] / streamed >= 1 - (btol[i] + 4096) / streamed &&
				bpt[i] / streamed <= 1 + (btol[i] + 4096) / streamed)
		} else
			printf "%-14s %8s %8s %8s %8.3f %8s %8s %10.3f %8s\n", name[i], "-", "-", "-",
				ovl[i], "-", "-", rss[i] / bound[i], um
		keep("rss", rss[i] / bound[i], rss[i] <= bound[i])
		if (um != "-" && name[i] ~ /^q-/) keep("um", um + 0, um + 0 >= 1.5)
	}
	print ""
	print "Verdict (min / median / max of each ratio over the runs it applies to; target; runs meeting it):"
	verdict("effective read bandwidth / fio (1 MiB reads), uring", "bw", ">=", 0.85)
	verdict("overlap: wall / max(I/O, compute), uring", "ovl", "<=", 1.15)
	verdict("wall / ideal (fio speed, resident compute), uring", "ideal", "<=", 1.15)
	verdict("bytes read per token / (weights - resident) (*)", "bytes", "=", 1)
	verdict("peak RSS / (budget + KV cache + 100 MiB)", "rss", "<=", 1)
	verdict("uring tok/s / mmap tok/s at a quarter of the model", "um", ">=", 1.5)
	print ""
	print "read/fio: uring: bytes read / time reads were in flight; mmap: bytes / wall time."
	print "wall/fio1M: bytes read / wall time, against fio. overlap: wall / max(I/O, compute) per token,"
	print "both from the run itself. wall/ideal: wall / max(streamed bytes at the better fio speed,"
	print "the resident run compute). bytes/plan: bytes read per token / (weights - resident)."
	print "RSS/bound: peak RSS / (budget + KV cache + 100 MiB)."
	print "(*) mmap counts bytes as pages are mapped at acquire: exact. uring counts them as reads"
	print "complete, and read-ahead crosses the window edges: a run meets the target when it is"
	print "within slots x slot bytes / generated tokens (+ one block) of the plan."
}' "$1/runs.txt"
}

if [ -n "$table_only" ]; then
	[ -f "$table_only/runs.txt" ] || die "no $table_only/runs.txt"
	tables "$table_only"
	exit 0
fi
. "$top/bench/lib.sh"
find_builddir "$builddir"
BENCH="$builddir/bench/strata-bench"
command -v fio >/dev/null || die "fio is not installed (apt-get install fio)"
data_dir "$data"

# ---- the model: 32 x 188.3 MB layers + a 512-token head ----
# Q8_0: 6.0 GB; Q4_K_M (q4_K and q6_K as llama-quantize mixes them): about 4 GB
case $type in
q8_0) bytes=6030667648 text="6.0 GB" ;;
q4_k_m) bytes=4000000000 text="about 4 GB" ;;
*) die "--type: q8_0 or q4_k_m" ;;
esac
model="$data/7b-$type.gguf"
synth_once "$model" "$bytes" "$text" --n-embd 4096 --n-layer 32 --n-head 32 \
	--n-head-kv 8 --n-ff 11008 --type "$type" --vocab builtin
size=$(stat -c %s "$model")

stamp=$(date +%Y%m%d-%H%M%S)
out="$data/results-$stamp"
mkdir -p "$out"

# ---- the machine ----
[ "$(id -u)" -eq 0 ] || echo "compare.sh: not root: cannot drop the page cache; mmap figures will be flattered" >&2
dev=$(df -P "$model" | awk 'NR == 2 { print $1 }')
fstype=$(findmnt -no FSTYPE -T "$model" 2>/dev/null || stat -f -c %T "$model")
hv=$(dmesg 2>/dev/null | sed -n 's/.*Hypervisor detected: //p' | head -1)
devname=$(basename "$(readlink -f "$dev")")
{
	echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "host:    $(uname -srm); $(nproc) CPUs: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	echo "memory:  $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)${hv:+; hypervisor $hv}"
	echo "disk:    $dev ($fstype), scheduler $(cat /sys/block/"$devname"/queue/scheduler 2>/dev/null || echo '?'), read-ahead $(cat /sys/block/"$devname"/queue/read_ahead_kb 2>/dev/null || echo '?') KiB"
	echo "model:   $model, $size bytes"
	echo "runs:    prompt $prompt tokens, $warmup warm-up + $gen measured generated tokens, page cache dropped before each"
} | tee "$out/machine.txt"

# fio_pair: the issue's shape (1 MiB reads) and strata's own (4 MiB reads), "MB/s MB/s"
fio_pair() {
	echo "$(fio_read "$model" 1M) $(fio_read "$model" 4M)"
}

# busy_now: percent of the machine's CPU time busy, and disk sectors moved, over 2 s
busy_now() {
	{ head -1 /proc/stat; cat "/sys/block/$devname/stat" 2>/dev/null || echo 0 0 0 0 0 0 0; } >"$out/.busy0"
	sleep 2
	{ head -1 /proc/stat; cat "/sys/block/$devname/stat" 2>/dev/null || echo 0 0 0 0 0 0 0; } >"$out/.busy1"
	awk 'FNR == 1 { for (i = 2; i <= 9; i++) c[FILENAME, i] = $i }
	     FNR == 2 { d[FILENAME] = $3 + $7 }
	     END { f0 = ARGV[1]; f1 = ARGV[2]
		   for (i = 2; i <= 9; i++) { x = c[f1, i] - c[f0, i]; t += x; if (i == 5 || i == 6) idle += x }
		   printf "%.0f %.0f\n", t ? 100 * (t - idle) / t : 0, d[f1] - d[f0] }' "$out/.busy0" "$out/.busy1"
}
# quiet: wait until the machine is idle (< 10% CPU busy, < 20 MB read or written in 2 s)
quiet() {
	waited=0
	while :; do
		set -- $(busy_now)
		[ "$1" -lt 10 ] && [ "$2" -lt 40000 ] && return 0
		if [ $waited -ge "$quiet_wait" ]; then
			echo "  (the machine is still busy: ${1}% CPU, $(($2 / 2048)) MiB of disk I/O in 2 s; measuring anyway)" >&2
			return 0
		fi
		[ $waited -eq 0 ] && echo "  (waiting for other work to finish: ${1}% CPU busy)" >&2
		sleep 3
		waited=$((waited + 5))
	done
}



# run NAME BUDGET IO: one strata-bench run between two fio runs; appends a line to runs.txt
quarter=$(awk -v s="$size" 'BEGIN { printf "%.0f", s / 4 }')
quiet
fio_prev=$(fio_pair)
echo "$fio_prev" >>"$out/fio.txt"
run() {
	name=$1 budget=$2 io=$3
	quiet
	drop
	# the load average before: other work on the machine disturbs both disk and cores
	load=$(cut -d' ' -f1 /proc/loadavg)
	"$BENCH" --model "$model" --memory-budget "$budget" --io "$io" --prompt-tokens "$prompt" \
		--gen-tokens "$gen" --warmup "$warmup" --threads "$threads" --json \
		>"$out/$name.json" 2>"$out/$name.err" || { cat "$out/$name.err" >&2; die "$name failed"; }
	fio_next=$(fio_pair)
	echo "$fio_next" >>"$out/fio.txt"
	f=$out/$name.json
	set -- $fio_prev $fio_next
	echo "$name $io $(jget "$f" budget_bytes) $1 $3 $load" \
		"$(jget "$f" resident_bytes) $(jget "$f" unit_bytes) $(jget "$f" slots)" \
		"$(jget "$f" gen_tok_s) $(jget "$f" prompt_tok_s) $(jget "$f" wall_ms_per_token)" \
		"$(jget "$f" compute_ms_per_token) $(jget "$f" io_ms_per_token) $(jget "$f" stall_fraction)" \
		"$(jget "$f" read_mbps_inflight) $(jget "$f" read_mbps_wall) $(jget "$f" gen_bytes_per_token)" \
		"$(jget "$f" gen_disk_bytes_per_token) $(jget "$f" peak_rss_bytes) $(jget "$f" rss_bound_bytes)" \
		"$(jget "$f" machine_other_fraction) $(jget "$f" overlap) $2 $4" \
		"$(jget "$f" slots) $(jget "$f" slot_bytes) $(jget "$f" gen_tokens)" >>"$out/runs.txt"
	echo "  $name: $(jget "$f" gen_tok_s) tok/s; fio before $fio_prev, after $fio_next MB/s (1M, 4M reads)" >&2
	fio_prev=$fio_next
}

echo "running (each line: one strata-bench run between two fio runs) ..." >&2
r=1
while [ $r -le "$repeat" ]; do
	run "resident-r$r" 0 uring
	for b in $budgets; do
		[ "$b" = q ] && bb=$quarter || bb=$b
		for io in $modes; do
			run "$b-$io-r$r" "$bb" "$io"
		done
	done
	r=$((r + 1))
done

rm -f "$out/.busy0" "$out/.busy1"
tables "$out" | tee "$out/table.txt"
echo "" >&2
echo "raw results: $out" >&2
