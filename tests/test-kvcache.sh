#!/bin/sh
# test-kvcache.sh: the KV cache inside the memory bound, against the real stratad and
# strata. A configuration that cannot fit is refused with the numbers; four requests
# whose KV cache does not fit in its memory at once all finish, with their blocks paged
# to disk and back, and each says what it says alone; a second turn reuses the first
# turn's KV cache from memory, and from --kv-cache-dir after a restart, and says what a
# cold daemon says; a changed model file's cache is ignored with a log line.
. "${STRATA_SRCDIR:-.}/tests/lib.sh"

pick_model
CTX=256
# --kv-budget of one sequence at full length: the least the cache may have
kv_one=$(weights_budget "$MODEL" 0 --ctx-size $CTX --parallel 1 --threads 2 --kv-type f32)
kv_one=${kv_one#--kv-budget }
kv_one=${kv_one%% *}

start() { # start NAME OPTIONS...: stratad on MODEL; sets DPID SOCK DLOG
	SOCK="$TMP/$1.sock"
	DLOG="$TMP/$1.log"
	shift
	"$STRATAD" --model "$MODEL" --socket "$SOCK" --ctx-size $CTX --threads 2 --kv-type f32 \
		--config /dev/null --log-level info "$@" 2>"$DLOG" &
	DPID=$!
	TAP_PIDS="$TAP_PIDS $DPID"
	wait_for "$STRATA" --socket "$SOCK" status
}
stop() { # stop: SIGTERM, exit 0
	kill -TERM "$DPID" 2>/dev/null
	wait "$DPID"
	r=$?
	TAP_PIDS=$(echo "$TAP_PIDS" | sed "s/ $DPID\$//; s/ $DPID / /")
	return $r
}
gen() { # gen OUT N PROMPT: greedy; -v's summary in OUT.err
	"$STRATA" --socket "$SOCK" generate -v -n "$2" --temperature 0 "$3" >"$1" 2>"$1.err"
}
cached() { sed -n 's/.*; \([0-9]*\) prompt tokens from the KV cache.*/\1/p' "$1.err"; }
field() { sed -n "s/.*\"$1\": *\"*\([0-9]*\).*/\1/p" "$2" | head -1; }

# ---- what cannot fit is refused, with the numbers ----
# (each under `timeout`: a daemon that starts instead of refusing fails the check, not the run)
timeout 30 "$STRATAD" --model "$MODEL" --socket "$TMP/no.sock" --config /dev/null --memory-budget 100T \
	2>"$TMP/big.err"
[ $? -ne 0 ] && grep -q "more than this process may use: .*, \(physical memory\|its memory cgroup\)" "$TMP/big.err"
ok $? "a budget above what the process may use is refused: $(tail -1 "$TMP/big.err")"
# 64 sequences of 16 M positions: hundreds of GiB even for the smallest model here (the
# synthesized one's f16 cache takes 256 bytes a position)
timeout 30 "$STRATAD" --model "$MODEL" --socket "$TMP/no.sock" --config /dev/null --ctx-size 16000000 \
	--parallel 64 2>"$TMP/ctx.err"
[ $? -ne 0 ] && grep -q "iB of KV cache (64 sequences of 16000000 positions)" "$TMP/ctx.err" &&
	grep -q "more than this process may use" "$TMP/ctx.err"
ok $? "with no budget, a KV cache of hundreds of GiB is refused: $(tail -1 "$TMP/ctx.err")"
timeout 30 "$STRATAD" --model "$MODEL" --socket "$TMP/no.sock" --config /dev/null --ctx-size 16000000 \
	--memory-budget 1G 2>"$TMP/ctx2.err"
[ $? -ne 0 ] && grep -q "cannot hold the KV cache of one sequence at full --ctx-size (16000000 positions: " "$TMP/ctx2.err"
ok $? "with a budget, one sequence too long for it is refused: $(tail -1 "$TMP/ctx2.err")"
[ ! -e "$TMP/no.sock" ]
ok $? "... and no socket was left behind"
# inside a memory cgroup (as root, where one can be made): its limit is the bound
CG=
if [ -w /sys/fs/cgroup/memory ] && mkdir "/sys/fs/cgroup/memory/strata-test-$$" 2>/dev/null; then
	CG=/sys/fs/cgroup/memory/strata-test-$$ CGF=memory.limit_in_bytes
elif [ -w /sys/fs/cgroup/cgroup.subtree_control ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers &&
	mkdir "/sys/fs/cgroup/strata-test-$$" 2>/dev/null; then
	CG=/sys/fs/cgroup/strata-test-$$ CGF=memory.max
fi
if [ -n "$CG" ] && echo $((256 * 1048576)) >"$CG/$CGF"; then
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG" \
		timeout 30 "$STRATAD" --model "$MODEL" --socket "$TMP/no.sock" --config /dev/null --memory-budget 1G \
		2>"$TMP/cg.err"
	[ $? -ne 0 ] && grep -q "is more than this process may use: 256.0 MiB, its memory cgroup's limit ($CG/$CGF)" "$TMP/cg.err"
	ok $? "in a memory cgroup of 256 MiB, a 1G budget is refused: $(tail -1 "$TMP/cg.err")"
else
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N # SKIP no memory cgroup can be made here (root and a writable cgroup tree needed)"
fi
[ -n "$CG" ] && rmdir "$CG" 2>/dev/null

# ---- paging: four requests, room for one at full length ----
P1="Once upon a time" P2="The cat sat" P3="Lily and Tom went" P4="One day, a little boy"
start alone
for i in 1 2 3 4; do
	eval p=\$P$i
	gen "$TMP/alone$i.txt" 150 "$p"
done
stop
ok $? "four prompts, one at a time, on a daemon with memory for everything"

start paged --parallel 4 --kv-budget "$kv_one"
grep -q "under load blocks page to" "$DLOG"
ok $? "a daemon with KV memory for one sequence of $CTX ($kv_one bytes) for 4 says it pages"
for i in 1 2 3 4; do
	eval p=\$P$i
	gen "$TMP/paged$i.txt" 150 "$p" &
	eval pid$i=$!
done
sleep 0.3
"$STRATA" --socket "$SOCK" status --json >"$TMP/during.json"
same=0
for i in 1 2 3 4; do
	eval wait \$pid$i
	[ $? -eq 0 ] && cmp -s "$TMP/alone$i.txt" "$TMP/paged$i.txt" && same=$((same + 1))
done
[ $same -eq 4 ]
ok $? "all four finish together, each with the text it has alone ($same of 4)"
"$STRATA" --socket "$SOCK" status --json >"$TMP/paged.json"
w=$(field kv_bytes_written "$TMP/paged.json")
rd=$(field kv_bytes_read "$TMP/paged.json")
[ -n "$w" ] && [ "$w" -gt 0 ] && [ -n "$rd" ] && [ "$rd" -gt 0 ]
ok $? "their blocks went to disk and came back ($w bytes written, $rd read)"
"$STRATA" --socket "$SOCK" status >"$TMP/paged.txt"
grep -q "^KV cache .* on disk; .* blocks cached" "$TMP/paged.txt"
ok $? "strata status shows the KV cache's memory and disk: $(grep "^KV cache" "$TMP/paged.txt")"
stop
ok $? "stratad exits 0"

# ---- prefix reuse: a second turn ----
# The first turn's prompt is several blocks long: its blocks are reused whatever the model
# said (text a random model generates may tokenize differently when sent back; the
# trained model's does not, and then its reply's blocks are reused too).
P1L="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree."
start cold
gen "$TMP/t1.txt" 30 "$P1L"
T2="$P1L$(cat "$TMP/t1.txt") The next day,"
stop
start cold2
gen "$TMP/cold.txt" 30 "$T2"
c=$(cached "$TMP/cold.txt")
stop
[ -z "$c" ]
ok $? "a fresh daemon computes the whole second turn"

start warm --kv-cache-dir "$TMP/kv"
gen "$TMP/t1w.txt" 30 "$P1L"
gen "$TMP/warm.txt" 30 "$T2"
c=$(cached "$TMP/warm.txt")
[ -n "$c" ] && [ "$c" -gt 0 ] && cmp -s "$TMP/warm.txt" "$TMP/cold.txt"
ok $? "the second turn takes ${c:-0} prompt tokens from the first's KV cache in memory and says what the cold daemon says"
stop
ok $? "stratad exits 0 (the cached blocks go to --kv-cache-dir)"
n=$(ls "$TMP/kv" | grep -c '\.kvb$')
[ "$n" -gt 0 ]
ok $? "--kv-cache-dir holds $n blocks"

start restarted --kv-cache-dir "$TMP/kv"
grep -q "KV cache $TMP/kv: $n blocks of this model found" "$DLOG"
ok $? "after a restart the daemon finds them: $(grep "blocks of this model" "$DLOG")"
gen "$TMP/disk.txt" 30 "$T2"
c=$(cached "$TMP/disk.txt")
[ -n "$c" ] && [ "$c" -gt 0 ] && cmp -s "$TMP/disk.txt" "$TMP/cold.txt"
ok $? "the second turn takes ${c:-0} prompt tokens from disk and says what the cold daemon says"
stop

# a changed model file: the same bytes, but it was written again (mtime)
cp "$MODEL" "$TMP/model.gguf"
MODEL="$TMP/model.gguf"
start before --kv-cache-dir "$TMP/kv2"
gen "$TMP/t1c.txt" 30 "$P1"
stop
touch -d "+100 seconds" "$MODEL"
start after --kv-cache-dir "$TMP/kv2"
grep -q "were made from an earlier version of $MODEL (its size, modification time or metadata differ): ignored and removed" "$DLOG"
ok $? "the model file changed: its cached blocks are ignored with a log line: $(grep "earlier version" "$DLOG")"
gen "$TMP/stale.txt" 30 "$T2"
c=$(cached "$TMP/stale.txt")
[ -z "$c" ] && cmp -s "$TMP/stale.txt" "$TMP/cold.txt"
ok $? "... nothing is reused, and the second turn says what the cold daemon says"
stop
done_testing
