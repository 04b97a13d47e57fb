#!/bin/sh
# matrix.sh: the matrix engine side by side with llama.cpp on one model, runs interleaved
# (strata, llama.cpp, strata, ...) so both see the same machine, printed as ratios
# strata / llama.cpp:
#   prompt      pp64 and pp512 (strata-bench --prompt-tokens P; llama-bench -p P -n 0)
#   decode      one sequence, 16 tokens (strata-bench; llama-bench -p 0 -n 16)
#   16 clients  16 requests at once through stratad --parallel 16 against llama-server
#               -np 16: aggregate tok/s over the wall time from the first request sent to
#               the last token, prompt included; and strata's 16-at-once / 1-alone ratio
#   memory      stratad's peak RSS (VmHWM, all resident, 16 clients) against the model's
#               bytes + its KV cache + 200 MB
#   streamed    stratad with --memory-budget a quarter of the model, 16 clients at once:
#               compute per pass against the pass's I/O time (the bytes it streams at the
#               disk's fio rate, measured just before and after)
# llama.cpp is not part of strata: --llama DIR names a build's bin directory (llama-bench,
# llama-server); without it the script says so and runs strata's figures alone.
#
#   bench/matrix.sh [--llama DIR] [--builddir DIR] [--data-dir DIR] [--model FILE]
#                   [--repeat R] [--threads T] [--gen-tokens N] [--only LIST]
#                   [--quiet-wait S]
# --only takes a comma-separated subset of: prompt,decode,clients,stream.
# The model defaults to the 7B-shaped Q8_0 of compare.sh, synthesized once in the data
# directory (default /work/bench-data, outside the repository). Raw figures go to
# DATA_DIR/matrix-DATE/. Root is needed to drop the page cache before the streamed runs.
# shellcheck disable=SC2046 # set -- $(...) splits /proc/stat into words on purpose
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${STRATA_BUILDDIR:-}
data=${STRATA_BENCH_DATA:-/work/bench-data}
llama=
model=
repeat=3
threads=2
gen=32
only=prompt,decode,clients,stream
quiet_wait=120
while [ $# -gt 0 ]; do
	case $1 in
	--llama) llama=$2; shift 2 ;;
	--builddir) builddir=$2; shift 2 ;;
	--data-dir) data=$2; shift 2 ;;
	--model) model=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--gen-tokens) gen=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--quiet-wait) quiet_wait=$2; shift 2 ;;
	-h|--help) sed -n '2,27s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "matrix.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
done

die() { echo "matrix.sh: $*" >&2; exit 1; }
. "$top/bench/lib.sh"
find_builddir "$builddir"
BENCH="$builddir/bench/strata-bench"
STRATAD="$builddir/daemon/stratad"
STRATA="$builddir/client/strata"
want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if [ -n "$llama" ]; then
	[ -x "$llama/llama-bench" ] && [ -x "$llama/llama-server" ] ||
		die "--llama $llama: no llama-bench and llama-server there"
	command -v curl >/dev/null || die "curl is needed to drive llama-server"
	echo "llama.cpp: $llama ($("$llama/llama-server" --version 2>&1 | head -1))"
else
	echo "llama.cpp: not given (--llama DIR): strata's figures only, no ratios"
fi

data_dir "$data"
if [ -z "$model" ]; then
	model="$data/7b-q8_0.gguf"
	synth_once "$model" 6030667648 "6.0 GB" --n-embd 4096 --n-layer 32 --n-head 32 --n-head-kv 8 \
		--n-ff 11008 --type q8_0 --vocab builtin
fi
size=$(stat -c %s "$model")
out="$data/matrix-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
{
	echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpu:     $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); AMX: $(grep -q amx_int8 /proc/cpuinfo && echo yes || echo no)"
	echo "model:   $model, $size bytes"
	echo "threads: $threads; generated tokens per client: $gen; repeats: $repeat"
} | tee "$out/machine.txt"

now() { date +%s.%N; }
# other_busy: percent of the machine's CPU time busy over 2 s (nothing of ours runs then)
other_busy() {
	set -- $(head -1 /proc/stat)
	b0=$(($2 + $3 + $4 + $7 + $8)) t0=$(($2 + $3 + $4 + $5 + $6 + $7 + $8))
	sleep 2
	set -- $(head -1 /proc/stat)
	b1=$(($2 + $3 + $4 + $7 + $8)) t1=$(($2 + $3 + $4 + $5 + $6 + $7 + $8))
	echo $(((b1 - b0) * 100 / (t1 - t0 + 1)))
}
# quiet: wait (up to --quiet-wait s) until others leave the CPUs below 10%; print what was seen
quiet() {
	q_end=$(($(date +%s) + quiet_wait))
	while :; do
		q_busy=$(other_busy)
		[ "$q_busy" -lt 10 ] || [ "$(date +%s)" -ge "$q_end" ] && break
	done
	echo "$q_busy"
}
# jnum JSON KEY: a number from a one-line JSON object (64-bit ones come quoted)
jnum() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([-0-9.e+]*\).*/\1/p" | head -1; }

# ---- prompt and decode: strata-bench and llama-bench ----
sb() { # sb P G W: strata-bench's JSON, resident, warm
	"$BENCH" --model "$model" --threads "$threads" --prompt-tokens "$1" --gen-tokens "$2" \
		--warmup "$3" --json 2>>"$out/strata-bench.log"
}
lb() { # lb P N: llama-bench's tokens/s (mmap, warm page cache; its own warm-up run)
	"$llama/llama-bench" -m "$model" -t "$threads" -p "$1" -n "$2" -r 1 -o csv 2>>"$out/llama-bench.log" |
		tail -1 | tr -d '"' | awk -F, '{ print $(NF - 1) }'
}

# ---- 16 clients: stratad and llama-server ----
daemon_pid=
stop_daemon() {
	[ -n "$daemon_pid" ] || return 0
	kill "$daemon_pid" 2>/dev/null || true
	wait "$daemon_pid" 2>/dev/null || true
	daemon_pid=
}
trap 'stop_daemon' EXIT
trap 'exit 130' INT TERM

sock="$out/s.sock"
# start_stratad [OPTIONS]: stratad on $sock, 16 slots; waits until it serves
start_stratad() {
	"$STRATAD" --model "$model" --socket "$sock" --parallel 16 --threads "$threads" \
		--ctx-size 512 --config /dev/null "$@" 2>>"$out/stratad.log" &
	daemon_pid=$!
	i=0
	until "$STRATA" -s "$sock" status >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 1200 ] || die "stratad did not start (see $out/stratad.log)"
		kill -0 "$daemon_pid" 2>/dev/null || die "stratad exited (see $out/stratad.log)"
		sleep 0.1
	done
}
# s_clients K: K requests at once through stratad; prints the wall seconds. Call it in
# a subshell, $(s_clients K), so that its `wait` waits for the clients only.
s_clients() {
	t0=$(now)
	k=0
	while [ $k -lt "$1" ]; do
		"$STRATA" -s "$sock" generate -n "$gen" --temperature 0 --ignore-eos "Once upon a time $k" \
			>/dev/null &
		k=$((k + 1))
	done
	wait # called in a subshell, $(...): its children are the clients alone
	echo "$(now) $t0" | awk '{ printf "%.3f\n", $1 - $2 }'
}
hwm() { awk '/^VmHWM/ { print $2 * 1024 }' "/proc/$daemon_pid/status"; }

port=$((18000 + $$ % 1000))
start_server() {
	"$llama/llama-server" -m "$model" -t "$threads" -np 16 -c $((16 * 512)) --host 127.0.0.1 \
		--port "$port" >>"$out/llama-server.log" 2>&1 &
	daemon_pid=$!
	i=0
	until curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 1200 ] || die "llama-server did not start (see $out/llama-server.log)"
		kill -0 "$daemon_pid" 2>/dev/null || die "llama-server exited (see $out/llama-server.log)"
		sleep 0.1
	done
}
l_clients() {
	t0=$(now)
	k=0
	while [ $k -lt "$1" ]; do
		curl -sf "http://127.0.0.1:$port/completion" -H 'Content-Type: application/json' \
			-d "{\"prompt\":\"Once upon a time $k\",\"n_predict\":$gen,\"temperature\":0,\"ignore_eos\":true,\"cache_prompt\":false}" \
			>/dev/null &
		k=$((k + 1))
	done
	wait
	echo "$(now) $t0" | awk '{ printf "%.3f\n", $1 - $2 }'
}

# ---- the runs, interleaved per repeat ----
# results.txt: one line per figure: "repeat name strata llama other%"
res="$out/results.txt"
: >"$res"
rec() { echo "$*" >>"$res"; echo "  $*"; }
[ -z "$llama" ] || cat "$model" >/dev/null # llama.cpp maps the file: start it warm

r=1
while [ $r -le "$repeat" ]; do
	echo "repeat $r of $repeat"
	if want prompt; then
		for p in 64 512; do
			o=$(quiet)
			s=$(jnum "$(sb "$p" 1 0 | tr -d '\n ')" prompt_tok_s)
			l=-
			[ -z "$llama" ] || l=$(lb "$p" 0)
			rec "$r pp$p $s $l $o"
		done
	fi
	if want decode; then
		o=$(quiet)
		j=$(sb 8 16 2 | tr -d '\n ')
		l=-
		[ -z "$llama" ] || l=$(lb 0 16)
		rec "$r decode $(jnum "$j" gen_tok_s) $l $o"
		rec "$r bench-rss $(jnum "$j" peak_rss_bytes) $(jnum "$j" rss_bound_bytes) $o"
	fi
	if want clients; then
		o=$(quiet)
		start_stratad
		: "$(s_clients 1)" # warm: first touches of scratch and KV
		t1=$(s_clients 1)
		t16=$(s_clients 16)
		st=$("$STRATA" -s "$sock" status --json)
		rss=$(hwm)
		stop_daemon
		l=-
		if [ -n "$llama" ]; then
			start_server
			: "$(l_clients 1)"
			lt16=$(l_clients 16)
			stop_daemon
			l=$(echo "$lt16" | awk -v n=$((16 * gen)) '{ printf "%.3f\n", n / $1 }')
		fi
		rec "$r clients16 $(echo "$t16" | awk -v n=$((16 * gen)) '{ printf "%.3f\n", n / $1 }') $l $o"
		rec "$r alone1 $(echo "$t1" | awk -v n="$gen" '{ printf "%.3f\n", n / $1 }') - $o"
		rec "$r stratad-rss $rss $((size + $(jnum "$st" kv_cache_bytes) + 200000000)) $o"
	fi
	if want stream; then
		command -v fio >/dev/null || die "fio is not installed (apt-get install fio)"
		o=$(quiet)
		fio0=$(fio_read "$model" 4M)
		drop
		start_stratad --memory-budget $((size / 4))
		s0=$("$STRATA" -s "$sock" status --json)
		t16=$(s_clients 16)
		s1=$("$STRATA" -s "$sock" status --json)
		stop_daemon
		fio1=$(fio_read "$model" 4M)
		passes=$(($(jnum "$s1" passes_total) - $(jnum "$s0" passes_total)))
		rec "$r stream-passes $passes $(jnum "$s1" bytes_streamed_per_pass) $o"
		rec "$r stream-compute-ms $(jnum "$s1" compute_ms_total) $(jnum "$s0" compute_ms_total) $o"
		rec "$r stream-wall-s $t16 $(((${fio0:-0} + ${fio1:-0}) / 2)) $o"
	fi
	r=$((r + 1))
done

# ---- the table ----
echo
awk -v repeats="$repeat" '
function med(k,    m, i, j, t, a) {
	m = nv[k]; if (!m) return "-"
	for (i = 1; i <= m; i++) a[i] = v[k, i]
	for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
function keep(k, x) { if (x != "-" && x != "") v[k, ++nv[k]] = x }
{
	keep($2 ".s", $3); keep($2 ".l", $4); keep("other", $NF)
	if ($4 != "-" && $4 > 0 && ($2 ~ /^pp|^decode|^clients/)) keep($2 ".r", $3 / $4)
	if ($2 == "clients16") c16[$1] = $3
	if ($2 == "alone1" && c16[$1]) keep("scale", c16[$1] / $3)
	if ($2 == "stratad-rss" || $2 == "bench-rss") keep($2 ".r", $3 / $4)
	if ($2 == "stream-passes") { sp = $3; sb = $4 }
	if ($2 == "stream-compute-ms") scm = $3 - $4
	if ($2 == "stream-wall-s" && sp > 0 && $4 > 0) {
		keep("s.cpp", scm / sp); keep("s.wpp", $3 * 1000 / sp); keep("s.io", sb / ($4 * 1e6) * 1000)
		keep("s.r", (scm / sp) / (sb / ($4 * 1e6) * 1000))
	}
}
END {
	printf "medians of %d repeats (ratio: median of the per-repeat ratios)\n", repeats
	printf "%-30s %12s %12s %9s  %s\n", "", "strata", "llama.cpp", "ratio", "target"
	printf "%-30s %12s %12s %9s  %s\n", "prompt pp64 (tok/s)", med("pp64.s"), med("pp64.l"), med("pp64.r"), ">= 1.0"
	printf "%-30s %12s %12s %9s  %s\n", "prompt pp512 (tok/s)", med("pp512.s"), med("pp512.l"), med("pp512.r"), ">= 1.0"
	printf "%-30s %12s %12s %9s  %s\n", "decode, batch 1 (tok/s)", med("decode.s"), med("decode.l"), med("decode.r"), ">= 1.0"
	printf "%-30s %12s %12s %9s  %s\n", "16 clients (aggregate tok/s)", med("clients16.s"), med("clients16.l"), med("clients16.r"), ">= 1.0"
	printf "%-30s %12s %12s %9s  %s\n", "strata 1 client alone (tok/s)", med("alone1.s"), "", "", ""
	printf "%-30s %12s %12s %9s  %s\n", "strata 16 at once / 1 alone", med("scale"), "", "", ">= 8"
	printf "%-30s %12.0f %12.0f %9.3f  %s\n", "stratad peak RSS, bound (MiB)", med("stratad-rss.s") / 1048576, med("stratad-rss.l") / 1048576, med("stratad-rss.r"), "<= 1.0 (bound: model + KV + 200 MB)"
	if (nv["s.r"]) {
		printf "%-30s %12s %12s %9s  %s\n", "streamed q, 16 clients: ms/pass", "compute " med("s.cpp"), "I/O " med("s.io"), med("s.r"), "<= 0.5 (compute / I/O)"
		printf "%-30s %12s\n", "  wall ms per pass", med("s.wpp")
	}
	printf "other processes: median %s%% of the CPUs busy before each figure\n", med("other")
}' "$res" | tee "$out/table.txt"
echo "raw figures: $res"
