#!/bin/sh
# test-bench.sh: bench/strata-bench runs on a tiny synthesized model, in both io modes and
# fully resident, and on a Q4_K_M one, and its figures hang together: the tokens it was asked for, the bytes
# the plan streams per pass read once per generated token, peak RSS within the bound it
# prints, JSON that parses. Not a benchmark: the numbers themselves are not judged here.
. "${STRATA_SRCDIR:-.}/tests/lib.sh"

BENCH="$BUILDDIR/bench/strata-bench"
[ -x "$BENCH" ] || skip_all "no $BENCH"
MODEL="$TMP/tiny.gguf"
"$STRATA_MODEL" synth "$MODEL" --n-embd 64 --n-layer 4 --n-head 4 --n-head-kv 2 --n-ff 128 \
	--type f32 --vocab builtin --ctx 512 --seed 5 || exit 1

# jget FILE KEY: the value of "KEY" in strata-bench's JSON (the benchmark scripts' own)
. "$SRCDIR/bench/lib.sh"
# within A B TOL: |A - B| <= TOL (integers, awk does the arithmetic)
within() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

# 400K for weights: the 4 layers (148 KiB each) and the head all stream through 2
# buffers (the budget holds the KV cache and scratch besides: weights_budget adds them).
B=$(weights_budget "$MODEL" 409600 --ctx-size 64)
"$BENCH" --model "$MODEL" $B --ctx-size 64 --prompt-tokens 4 --gen-tokens 2 \
	>"$TMP/text.txt" 2>"$TMP/text.err"
ok $? "strata-bench runs (text output)"
grep -q "^prompt: *4 tokens in " "$TMP/text.txt" &&
	grep -q "^generation: 2 tokens in .* tok/s" "$TMP/text.txt" &&
	grep -q "^  per token: wall .* ms, compute .* ms, I/O .* ms" "$TMP/text.txt" &&
	grep -q "^  bandwidth: .* MB/s while reads were in flight" "$TMP/text.txt" &&
	grep -q "^memory: *peak RSS .* MiB; bound .* MiB (--memory-budget: weights 0.4 + KV cache" "$TMP/text.txt"
ok $? "the text names prompt, generation, per-token times, bandwidth and memory" ||
	sed 's/^/# /' "$TMP/text.txt" "$TMP/text.err"

for io in uring mmap; do
	J="$TMP/$io.json"
	"$BENCH" --model "$MODEL" $B --ctx-size 64 --prompt-tokens 4 --gen-tokens 2 --io $io \
		--json >"$J" 2>"$TMP/$io.err"
	ok $? "--io $io --json runs"
	if [ -n "${PYTHON3:-}" ]; then
		"$PYTHON3" -c 'import json,sys; json.load(open(sys.argv[1]))' "$J"
		ok $? "--io $io: the output is one JSON object"
	fi
	[ "$(jget "$J" io)" = $io ] && [ "$(jget "$J" gen_tokens)" = 2 ] &&
		[ "$(jget "$J" gen_passes)" = 2 ] && [ "$(jget "$J" prompt_tokens)" = 4 ] &&
		[ "$(jget "$J" units_streamed)" = 5 ] && [ "$(jget "$J" units_resident)" = 0 ]
	ok $? "--io $io: 2 generated tokens in 2 passes, all 5 units streamed"
	streamed=$(jget "$J" streamed_bytes_per_pass)
	slot=$(jget "$J" slot_bytes)
	got=$(jget "$J" gen_bytes_read)
	# Each pass reads every streamed unit once. The window is cut while read-ahead runs,
	# so either end may hold up to a buffer-ful of units read for the next pass (and each
	# pass's last read stops at the end of the file, short of its block).
	tol=$(($(jget "$J" slots) * slot + 2 * 4096))
	within "$got" $((2 * streamed)) "$tol"
	ok $? "--io $io: bytes read in 2 passes ($got) = 2 x the streamed bytes per pass ($streamed), within $tol"
	# the first units were read ahead at open, before the prompt's window opened
	pb=$(jget "$J" prompt_bytes_read)
	within "$pb" "$streamed" "$tol"
	ok $? "--io $io: the prompt pass read the streamed units too ($pb bytes)"
	rss=$(jget "$J" peak_rss_bytes)
	bound=$(jget "$J" rss_bound_bytes)
	[ "$bound" -eq $(($(jget "$J" budget_bytes) + 104857600)) ] && [ "$rss" -gt 0 ] &&
		[ "$rss" -le "$bound" ] &&
		[ "$(jget "$J" memory_bound_bytes)" -eq "$(jget "$J" budget_bytes)" ]
	ok $? "--io $io: peak RSS $rss <= the budget (weights, KV cache, scratch) + 100 MiB = $bound"
done

"$BENCH" --model "$MODEL" --prompt-tokens 3 --gen-tokens 2 --warmup 0 --json >"$TMP/res.json"
ok $? "fully resident (no budget) runs"
[ "$(jget "$TMP/res.json" units_streamed)" = 0 ] && [ "$(jget "$TMP/res.json" gen_bytes_read)" = 0 ] &&
	[ "$(jget "$TMP/res.json" warmup_tokens)" = 0 ]
ok $? "fully resident: nothing streamed, nothing read while generating"

# A Q4_K_M model (q4_K and q6_K mixed layer by layer), streamed: the plan's bytes per pass
# come from the real types, and each generated token reads them once.
K="$TMP/q4km.gguf"
"$STRATA_MODEL" synth "$K" --n-embd 256 --n-layer 4 --n-head 4 --n-head-kv 2 --n-ff 768 \
	--type Q4_K_M --vocab builtin --ctx 512 --seed 5 &&
	"$BENCH" --model "$K" $(weights_budget "$K" 1228800 --ctx-size 64) --ctx-size 64 \
		--prompt-tokens 4 --gen-tokens 2 --json >"$TMP/k.json" 2>"$TMP/k.err"
ok $? "strata-bench runs on a Q4_K_M model, streamed" || sed 's/^/# /' "$TMP/k.err"
streamed=$(jget "$TMP/k.json" streamed_bytes_per_pass)
got=$(jget "$TMP/k.json" gen_bytes_read)
tol=$(($(jget "$TMP/k.json" slots) * $(jget "$TMP/k.json" slot_bytes) + 2 * 4096))
[ "$(jget "$TMP/k.json" gen_tokens)" = 2 ] && [ "$streamed" -gt 0 ] && within "$got" $((2 * streamed)) "$tol"
ok $? "Q4_K_M: 2 tokens read 2 x the streamed bytes per pass ($got, $streamed per pass)"

printf 'Once upon a time, there was a little girl. Once upon a time, there was a' >"$TMP/p.txt"
"$BENCH" --model "$MODEL" --prompt-file "$TMP/p.txt" --gen-tokens 8 --draft lookup --json \
	>"$TMP/draft.json"
ok $? "--prompt-file and --draft lookup run"
n=$(jget "$TMP/draft.json" prompt_tokens)
d=$(jget "$TMP/draft.json" drafted)
a=$(jget "$TMP/draft.json" accepted)
t=$(jget "$TMP/draft.json" tokens_per_pass)
[ "$(jget "$TMP/draft.json" draft)" = lookup ] && [ "$n" -gt 10 ] && [ -n "$d" ] && [ -n "$a" ] &&
	[ "$a" -le "$d" ] && awk -v t="$t" 'BEGIN { exit !(t >= 1) }'
ok $? "... and report the prompt's $n tokens, $d drafted, $a accepted, $t tokens per pass"

"$BENCH" --model "$MODEL" --ctx-size 64 $(weights_budget "$MODEL" 102400 --ctx-size 64) \
	>/dev/null 2>"$TMP/small.err"
[ $? -eq 1 ] && grep -q "minimum is" "$TMP/small.err"
ok $? "a budget that leaves the weights below their minimum fails and says the minimum"
"$BENCH" --model "$MODEL" --gen-tokens 0 >/dev/null 2>&1
[ $? -eq 2 ]
ok $? "--gen-tokens 0 is a usage error"
"$BENCH" --memory-budget 1G >/dev/null 2>&1
[ $? -eq 2 ]
ok $? "no --model is a usage error"

# The benchmark scripts' tables. Their runs need root, fio and models of gigabytes; the
# arithmetic of their tables is checked here, on figures written by hand.
T="$TMP/big"
mkdir -p "$T" && echo 8589934592 >"$T/cap"
# run rep gen-tok/s bytes/token read-MB/s overlap stall peak fio-before fio-after streamed prompt
cat >"$T/runs.txt" <<EOR
strata-uring 1 0.1 36000000000 3600 1.0 0.8 6000000000 3600 3600 36000000000 1.0
strata-mmap 1 0.05 36000000000 1800 1.1 0.1 7000000000 3600 3600 36000000000 0.5
llama.cpp-mmap 1 0.025 43000000000 - - - 8589934592 1800 1800 43000000000 0.25
EOR
sh "$SRCDIR/bench/big-model.sh" --table "$T" >"$T/table.txt" &&
	grep -q "strata-uring    tok/s / ideal 1.000, read / fio 1.000, peak / cap 0.698" "$T/table.txt" &&
	grep -q "strata-uring / strata-mmap     generation 2.00x (2.00x per MB/s of fio), prompt 2.00x" "$T/table.txt" &&
	grep -q "strata-uring / llama.cpp-mmap  generation 4.00x (2.00x per MB/s of fio), prompt 4.00x" "$T/table.txt"
ok $? "big-model.sh --table: tok/s against the disk, peak against the cap, program against program" ||
	sed 's/^/# /' "$T/table.txt"

# compare.sh: a resident run (the compute baseline), uring and mmap at a quarter (q) of 4 GB
C="$TMP/cmp"
mkdir -p "$C"
cat >"$C/runs.txt" <<EOR
resident-r1 uring 0 3400 3400 0 4000000000 4000000000 0 10 50 100 100 0 0 0 0 0 0 4100000000 4200000000 0 1.0 4000 4000 0 0 4
q-uring-r1 uring 1000000000 3400 3400 0 600000000 4000000000 2 1.0 20 1000 300 1000 0.7 3400 3400 3400000000 3400000000 1100000000 1200000000 0 1.0 4000 4000 2 200000000 4
q-mmap-r1 mmap 1000000000 3400 3400 0 600000000 4000000000 0 0.25 10 4000 3600 500 0.1 850 850 3400000000 3400000000 1000000000 1200000000 0 1.1 4000 4000 0 0 4
EOR
sh "$SRCDIR/bench/compare.sh" --table "$C" >"$C/table.txt" &&
	grep -Eq "effective read bandwidth / fio .* 1\.000 +1\.000 +1\.000 +>= 0\.85 met in 1 of 1 runs" "$C/table.txt" &&
	grep -Eq "wall / ideal .* 1\.176 +1\.176 +1\.176 +<= 1\.15 met in 0 of 1 runs" "$C/table.txt" &&
	grep -Eq "bytes read per token .* 1\.000 +1\.000 +1\.000 += 1 +met in 2 of 2 runs" "$C/table.txt" &&
	grep -Eq "uring tok/s / mmap tok/s .* 4\.000 +4\.000 +4\.000 +>= 1\.5 +met in 1 of 1 runs" "$C/table.txt"
ok $? "compare.sh --table: bandwidth against fio, wall against the ideal, bytes against the plan, uring against mmap" ||
	sed 's/^/# /' "$C/table.txt"

done_testing
