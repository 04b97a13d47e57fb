#!/bin/sh
# kv-bench.sh: the KV cache inside the memory bound, measured. Two runs:
#
#   conversations: 16 conversations of about 2,000 tokens each, at once, on the ALIA-40b shape
#     (42.9 GB of Q8_0, synthesized once as big-model.sh does) in a cgroup v1 memory group capped
#     at --cap (default 8G; its page cache counts), stratad with --memory-budget --budget. Each
#     conversation's first 2,000 tokens are already in --kv-cache-dir, written by kv-prefill
#     (random rows: computing 32,000 prompt tokens through a 40B model takes hours on 2 cores);
#     each request sends its conversation plus a few words and asks for --gen tokens. 16 such
#     KV caches (6 GiB in f16) do not fit beside the weights: the scheduler runs as many as the
#     KV cache's memory holds and pages the others to disk. Prints the cgroup's peak and
#     stratad's peak RSS against the cap and the bound, OOM kills, what each request reused and
#     waited, and what the KV cache read and wrote.
#   second-turn: time to first token of a chat's second turn that reuses the first turn's KV
#     cache (from memory, and from --kv-cache-dir after a restart) against a cold daemon, on a
#     model that streams (--model, default the 7B-shaped Q8_0 of compare.sh with --memory-budget
#     --ttft-budget, 2G). The first turn's prompt is about --prefix tokens (default 1,000).
#
# Root (page cache, cgroups), fio for the disk's speed. Not run by `make check`.
#
#   bench/kv-bench.sh [--builddir DIR] [--data-dir DIR] conversations [--cap 8G] [--budget 7G]
#                     [--kv-type f16|q8_0] [--n 16] [--tokens 2000] [--gen 4] [--threads T]
#                     [--model FILE (instead of the ALIA-40b shape: a dry run)]
#   bench/kv-bench.sh [--builddir DIR] [--data-dir DIR] second-turn [--model FILE]
#                     [--ttft-budget 2G] [--prefix 1000] [--gen 16] [--threads T]
# Results go to DATA_DIR/kv-DATE/ (the KV cache directories are removed at the end).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${STRATA_BUILDDIR:-}
data=${STRATA_BENCH_DATA:-/work/bench-data}
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) builddir=$2; shift 2 ;;
	--data-dir) data=$2; shift 2 ;;
	-h|--help) sed -n '2,27s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) break ;;
	esac
done
mode=${1:-}
[ $# -gt 0 ] && shift
cap=8G budget=7G kvtype=f16 n=16 tokens=2000 gen=4 threads=0 model= ttft_budget=2G prefix=1000
while [ $# -gt 0 ]; do
	case $1 in
	--cap) cap=$2; shift 2 ;;
	--budget) budget=$2; shift 2 ;;
	--kv-type) kvtype=$2; shift 2 ;;
	--n) n=$2; shift 2 ;;
	--tokens) tokens=$2; shift 2 ;;
	--gen) gen=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--model) model=$2; shift 2 ;;
	--ttft-budget) ttft_budget=$2; shift 2 ;;
	--prefix) prefix=$2; shift 2 ;;
	*) echo "kv-bench.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
done
die() { echo "kv-bench.sh: $*" >&2; exit 1; }
. "$top/bench/lib.sh"
find_builddir "$builddir"
[ "$(id -u)" -eq 0 ] || die "needs root (to drop the page cache and make a memory cgroup)"
command -v fio >/dev/null || die "fio is not installed (apt-get install fio)"
data_dir "$data"
out=$data/kv-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
[ "$threads" -gt 0 ] || threads=$(nproc)
STRATAD=$builddir/daemon/stratad STRATA=$builddir/client/strata

# text N SEED: about N tokens of words for the built-in vocabulary (2.6 tokens a word)
text() {
	awk -v n="$1" -v seed="$2" 'BEGIN {
		split("the cat dog sat ran on a mat big small red blue house tree park day night sun " \
		      "moon girl boy saw went home and then with her his to by", w, " ")
		x = seed * 7919 + 1; printf "Conversation %d:", seed
		for (i = 0; i < n / 2.6; i++) { x = (x * 1103515245 + 12345) % 2147483648; printf " %s", w[1 + int(x / 65536) % 32] }
	}'
}
# key FILE NAME: the first number after "NAME": in a JSON file
key() { sed -n "s/.*\"$2\": *\"*\([0-9.]*\).*/\1/p" "$1" | head -1; }
# summary field of strata generate -v: "first token N ms", "N prompt tokens from the KV cache"
ttft() { sed -n 's/.*first token \([0-9]*\) ms.*/\1/p' "$1"; }
cached() { c=$(sed -n 's/.*; \([0-9]*\) prompt tokens from the KV cache.*/\1/p' "$1"); echo "${c:-0}"; }
# start NAME COMMAND...: stratad (COMMAND, which must become stratad's process: exec) in the
# background, its log in $out/NAME.log, its pid in spid; returns when it answers
start() {
	sname=$1
	shift
	"$@" --socket "$out/s.sock" --config /dev/null --log-level info 2>"$out/$sname.log" &
	spid=$!
	i=0
	until "$STRATA" --socket "$out/s.sock" status >/dev/null 2>&1; do
		kill -0 "$spid" 2>/dev/null || { cat "$out/$sname.log" >&2; die "stratad ($sname) did not start"; }
		sleep 0.2
		i=$((i + 1))
		[ $i -lt 9000 ] || die "stratad ($sname) did not answer in 30 minutes"
	done
}
stop() { kill -TERM "$spid"; wait "$spid" || true; }
machine() {
	{
		echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "host:    $(uname -srm); $(nproc) CPUs: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p')"
		echo "memory:  $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
		echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the start"
	} | tee "$out/machine.txt"
}

conversations() {
	[ -n "$model" ] || model=$data/alia40b-q8_0.gguf
	synth_once "$model" 42971183392 "42.9 GB; a few minutes" --n-embd 8192 --n-layer 48 \
		--n-head 64 --n-head-kv 8 --n-ff 24576 --type q8_0 --vocab builtin --n-vocab 256000 \
		--name ALIA-40b-shaped
	kv=$out/kv
	ctx=$((tokens + 256))
	machine
	echo "model:   $model, $(stat -c %s "$model") bytes; cap $cap; --memory-budget $budget; --kv-type $kvtype" | tee -a "$out/machine.txt"
	for c in $(seq "$n"); do text "$tokens" "$c" >"$out/conv$c.txt"; done
	echo "prefilling $n conversations' KV cache into $kv ..." >&2
	"$builddir/bench/kv-prefill" --model "$model" --kv-cache-dir "$kv" --kv-type "$kvtype" \
		--memory-budget "$budget" --ctx-size "$ctx" --kv-disk-budget 0 --threads "$threads" \
		"$out"/conv*.txt >"$out/prefill.txt" 2>"$out/prefill.err" ||
		{ cat "$out/prefill.err" >&2; die "kv-prefill failed"; }
	cat "$out/prefill.txt" >&2
	echo "kv on disk: $(du -sb "$kv" | cut -f1) bytes" | tee -a "$out/machine.txt"
	fio_a=$(fio_read "$model" 4M)
	cap_begin "strata-kv-$$" "$cap"
	drop
	echo 0 >"$cg/memory.max_usage_in_bytes"
	t0=$(date +%s.%N)
	# stratad itself is $spid: it joins the group, then takes the shell's place
	start conv sh -c 'echo $$ >"$1/tasks" && shift && exec "$@"' sh "$cg" \
		"$STRATAD" --model "$model" --memory-budget "$budget" --parallel "$n" \
		--ctx-size "$ctx" --kv-type "$kvtype" --kv-cache-dir "$kv" --kv-disk-budget 0 \
		--threads "$threads"
	t1=$(date +%s.%N)
	grep -E "memory:|KV cache" "$out/conv.log" | sed 's/^<[0-9]>//' | tee "$out/plan.txt"
	# what the daemon holds, every 2 s, while the requests run
	(
		while kill -0 "$spid" 2>/dev/null; do
			"$STRATA" --socket "$out/s.sock" status --json >"$out/st.json" 2>/dev/null || break
			echo "$(date +%s.%N) $(key "$out/st.json" rss_bytes) $(key "$out/st.json" kv_used_bytes)" \
				"$(key "$out/st.json" kv_held_bytes) $(key "$out/st.json" kv_disk_bytes)" \
				"$(cat "$cg/memory.usage_in_bytes") $(grep -o '"state": *"waiting"' "$out/st.json" | wc -l)" \
				>>"$out/poll.txt"
			sleep 2
		done
	) &
	poll=$!
	for c in $(seq "$n"); do
		"$STRATA" --socket "$out/s.sock" generate -v -n "$gen" --temperature 0 --ignore-eos \
			"$(cat "$out/conv$c.txt") and then" >"$out/out$c.txt" 2>"$out/out$c.err" &
		eval cpid$c=$!
	done
	fails=0
	for c in $(seq "$n"); do eval wait \$cpid$c || fails=$((fails + 1)); done
	t2=$(date +%s.%N)
	"$STRATA" --socket "$out/s.sock" status --json >"$out/end.json"
	"$STRATA" --socket "$out/s.sock" status >"$out/end.txt"
	hwm=$(awk '/^VmHWM/ { printf "%.0f\n", $2 * 1024 }' "/proc/$spid/status") # (%d: 32 bits in mawk)
	cp "$cg/memory.stat" "$out/memory.stat" # what the cgroup holds beside stratad's RSS
	kill "$poll" 2>/dev/null || true
	stop
	peak=$(cat "$cg/memory.max_usage_in_bytes")
	limit=$(cat "$cg/memory.limit_in_bytes")
	oom=$(sed -n 's/^oom_kill //p' "$cg/memory.oom_control")
	failcnt=$(cat "$cg/memory.failcnt")
	cap_end
	fio_b=$(fio_read "$model" 4M)
	bound=$(key "$out/end.json" bound_bytes)
	{
		echo ""
		echo "$n conversations of ~$tokens tokens (--kv-type $kvtype), $gen tokens each, at once:"
		printf "  requests finished:   %d of %d\n" $((n - fails)) "$n"
		printf "  start-up:            %.1f s (to the first answered Status)\n" "$(awk "BEGIN { print $t1 - $t0 }")"
		printf "  all answered in:     %.1f s\n" "$(awk "BEGIN { print $t2 - $t1 }")"
		printf "  cgroup peak:         %d MiB of the %d MiB cap (page cache included); failcnt %s; OOM kills %s\n" \
			$((peak >> 20)) $((limit >> 20)) "$failcnt" "${oom:-?}"
		printf "  stratad peak RSS:    %d MiB; its bound (--memory-budget) %d MiB\n" $((hwm >> 20)) $((bound >> 20))
		awk '{ if ($2 > r) r = $2; if ($3 > u) u = $3; if ($5 > d) d = $5; if ($6 > g) g = $6; if ($7 > w) w = $7 }
			END { printf "  while running:       RSS up to %d MiB, KV cache in memory up to %d MiB, on disk up to %d MiB, cgroup up to %d MiB, up to %d requests waiting for KV memory\n", r / 1048576, u / 1048576, d / 1048576, g / 1048576, w }' "$out/poll.txt"
		printf "  KV cache I/O:        %s MiB read, %s MiB written\n" \
			"$(($(key "$out/end.json" kv_bytes_read) >> 20))" "$(($(key "$out/end.json" kv_bytes_written) >> 20))"
		for c in $(seq "$n"); do
			echo "$(cached "$out/out$c.err") $(ttft "$out/out$c.err")"
		done | sort -n -k2 | awk '{ c += $1; t[NR] = $2 }
			END { printf "  prompt tokens reused: %.0f per request; first token after %d / %d / %d ms (min / median / max)\n", c / NR, t[1], t[int((NR + 1) / 2)], t[NR] }'
		printf "  fio (4 MiB reads):   %s MB/s before, %s MB/s after\n" "$fio_a" "$fio_b"
	} | tee "$out/table.txt"
	rm -rf "$kv"
}

second_turn() {
	if [ -z "$model" ]; then
		model=$data/7b-q8_0.gguf
		synth_once "$model" 6030667648 "6.0 GB; 20 s" --n-embd 4096 --n-layer 32 --n-head 32 \
			--n-head-kv 8 --n-ff 11008 --type q8_0 --vocab builtin
	fi
	machine
	echo "model:   $model, $(stat -c %s "$model") bytes; --memory-budget $ttft_budget (streamed)" | tee -a "$out/machine.txt"
	text "$prefix" 1 >"$out/turn1.txt"
	opts="--model $model --memory-budget $ttft_budget --ctx-size 2048 --parallel 1 --threads $threads"
	fio_a=$(fio_read "$model" 4M)
	# the first turn, then the second on the same daemon (the first's KV cache in memory)
	drop
	start warm "$STRATAD" $opts --kv-cache-dir "$out/kv"
	"$STRATA" --socket "$out/s.sock" generate -v -n "$gen" --temperature 0 --ignore-eos \
		"$(cat "$out/turn1.txt")" >"$out/turn1.out" 2>"$out/turn1.err"
	printf '%s%s Then the next day,' "$(cat "$out/turn1.txt")" "$(cat "$out/turn1.out")" >"$out/turn2.txt"
	"$STRATA" --socket "$out/s.sock" generate -v -n "$gen" --temperature 0 --ignore-eos \
		"$(cat "$out/turn2.txt")" >"$out/warm.out" 2>"$out/warm.err"
	stop
	# a restart: the second turn again, the first's KV cache read from --kv-cache-dir
	# (the second turn's own blocks are removed first, so only the first's are there to reuse)
	drop
	start disk "$STRATAD" $opts --kv-cache-dir "$out/kv1"
	"$STRATA" --socket "$out/s.sock" generate -v -n "$gen" --temperature 0 --ignore-eos \
		"$(cat "$out/turn1.txt")" >/dev/null 2>&1
	stop
	drop
	start disk "$STRATAD" $opts --kv-cache-dir "$out/kv1"
	"$STRATA" --socket "$out/s.sock" generate -v -n "$gen" --temperature 0 --ignore-eos \
		"$(cat "$out/turn2.txt")" >"$out/disk.out" 2>"$out/disk.err"
	stop
	# cold: nothing cached
	drop
	start cold "$STRATAD" $opts
	"$STRATA" --socket "$out/s.sock" generate -v -n "$gen" --temperature 0 --ignore-eos \
		"$(cat "$out/turn2.txt")" >"$out/cold.out" 2>"$out/cold.err"
	stop
	fio_b=$(fio_read "$model" 4M)
	same_w=no same_d=no
	cmp -s "$out/warm.out" "$out/cold.out" && same_w=yes
	cmp -s "$out/disk.out" "$out/cold.out" && same_d=yes
	{
		echo ""
		echo "second turn of a chat (--ctx-size 2048), time to first token:"
		printf "  first turn:  %s\n" "$(sed 's/^strata: //' "$out/turn1.err")"
		for r in cold warm disk; do
			printf "  %-5s second turn: first token %6d ms; %4d of its prompt tokens reused\n" "$r" \
				"$(ttft "$out/$r.err")" "$(cached "$out/$r.err")"
		done
		printf "  warm / cold: the same text: %s; disk / cold: %s\n" "$same_w" "$same_d"
		printf "  fio (4 MiB reads):   %s MB/s before, %s MB/s after\n" "$fio_a" "$fio_b"
	} | tee "$out/table.txt"
	rm -rf "$out/kv" "$out/kv1"
}

case $mode in
conversations) conversations ;;
second-turn) second_turn ;;
*) die "say conversations or second-turn (try --help)" ;;
esac
echo "results: $out" >&2
