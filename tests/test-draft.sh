#!/bin/sh
# test-draft.sh: speculative decoding through the programs. strata-model
# --draft (lookup, a draft model) gives the greedy text it gives without, and
# --verbose says drafted, accepted and passes; stratad with --draft, resident
# and under a small budget (io_uring and mmap), serves several clients at once
# (each request with its own drafts, sharing passes) the same greedy text as
# strata-model without drafts, and counts drafts in Done and in status; a
# draft model with another vocabulary stops stratad with a clear message; its
# threads are the model's (--threads 2: at most 2 compute).
. "${STRATA_SRCDIR:-.}/tests/lib.sh"

pick_model
if [ "$MODEL_KIND" = stories260K ]; then
	VOCAB=$MODEL
else
	VOCAB=builtin
fi
D="$TMP/draft.gguf"
"$STRATA_MODEL" synth "$D" --n-embd 32 --n-layer 2 --n-head 2 --n-ff 64 --type f32 \
	--vocab "$VOCAB" --ctx 512 --seed 31
ok $? "synth writes a small draft model with the model's vocabulary"
BAD="$TMP/bad-vocab.gguf"
"$STRATA_MODEL" synth "$BAD" --n-embd 32 --n-layer 1 --n-head 2 --n-ff 64 --type f32 \
	--vocab builtin --n-vocab 700 --ctx 512 --seed 32
ok $? "... and one with another vocabulary"

P1="Once upon a time"
P2="Once upon a time, there was a little girl named Lily. She loved to play outside. Once upon a time, there was"
P3="The cat sat on the mat. The dog sat on the log. The cat sat on the"
N=60
# the reference: greedy, no drafts, everything resident
i=1
for p in "$P1" "$P2" "$P3"; do
	"$STRATA_MODEL" generate "$MODEL" --prompt "$p" -n $N --temperature 0 --ctx-size 512 \
		--kv-type f32 --threads 2 --draft none >"$TMP/ref$i.txt" || exit 1
	i=$((i + 1))
done
pr() { case $1 in 1) echo "$P1" ;; 2) echo "$P2" ;; *) echo "$P3" ;; esac; }
# same_text A B: the same generated text (strata-model ends it with a newline of
# its own; $(...) drops trailing newlines on both sides)
same_text() { [ -s "$1" ] && [ "$(cat "$1")" = "$(cat "$2")" ]; }

# ---- strata-model ----
for d in lookup "$D" "$MODEL"; do
	"$STRATA_MODEL" generate "$MODEL" --prompt "$P2" -n $N --temperature 0 --ctx-size 512 \
		--kv-type f32 --threads 2 --draft "$d" --verbose >"$TMP/m.txt" 2>"$TMP/m.err"
	same_text "$TMP/m.txt" "$TMP/ref2.txt"
	ok $? "strata-model --draft $(basename "$d"): the text without drafts"
done
line=$(grep "drafted [0-9]" "$TMP/m.err")
echo "$line" | grep -q "drafted [1-9][0-9]*" && echo "$line" | grep -q "accepted [1-9][0-9]*" &&
	echo "$line" | grep -q "passes [0-9]"
ok $? "--verbose: one line with drafted N, accepted N and passes N: $line"
"$STRATA_MODEL" generate "$MODEL" --prompt "$P1" -n 4 --draft "$BAD" 2>"$TMP/bad.err" >/dev/null
[ $? -eq 1 ] && grep -q "vocabulary" "$TMP/bad.err" && grep -q "bad-vocab.gguf" "$TMP/bad.err"
ok $? "strata-model refuses a draft with another vocabulary: $(cat "$TMP/bad.err")"

# ---- stratad ----
# The budget holds the weights, the KV cache, scratch and a draft model's all: what the
# plan gives the KV cache and scratch (4 sequences of 512), and the weights' smallest
# plan (from the plan's own message), and what each draft model holds.
OPTS="--ctx-size 512 --kv-type f32 --parallel 4 --threads 2"
set -- $(weights_budget "$MODEL" 0 $OPTS)
kvb=$2 over=$4
"$STRATA_MODEL" generate "$MODEL" --prompt x -n 1 $(weights_budget "$MODEL" 4096 $OPTS) $OPTS \
	2>"$TMP/min.err" >/dev/null
min=$(sed -n 's/.*the minimum is [^(]*(\([0-9]*\) bytes.*/\1/p' "$TMP/min.err")
dsize=$(plan_bound "$D" $OPTS)
msize=$(plan_bound "$MODEL" $OPTS)
[ -n "$min" ] && [ -n "$kvb" ] && [ -n "$dsize" ] && [ -n "$msize" ]
ok $? "the model's smallest plan for weights: $min bytes, beside $over of KV cache and scratch; the draft models hold $dsize and $msize"
SOCK="$TMP/s.sock"

# serve OPTIONS...: stratad on $SOCK with those options
serve() {
	"$STRATAD" --config /dev/null --model "$MODEL" --socket "$SOCK" --ctx-size 512 --kv-type f32 \
		--parallel 4 --threads 2 --log-level info "$@" 2>"$TMP/stratad.log" &
	DPID=$!
	TAP_PIDS="$DPID"
	wait_for "$STRATA" --socket "$SOCK" status
}
stop() {
	kill -TERM "$DPID"
	wait "$DPID"
	TAP_PIDS=
}

# clients NAME: one client alone, then 6 at once, each prompt twice, requests
# choosing their drafts (the server's, lookup, none, model when there is one);
# all must give the reference text
clients() {
	name=$1
	shift
	"$STRATA" --socket "$SOCK" generate -n $N --temperature 0 "$P2" >"$TMP/alone.txt"
	same_text "$TMP/alone.txt" "$TMP/ref2.txt"
	ok $? "$name: one client alone gets the text of strata-model without drafts"
	pids=
	k=0
	for spec in "1 default" "2 lookup" "3 default" "1 none" "2 default" "3 $REQ_DRAFT"; do
		set -- $spec
		if [ "$2" = default ]; then
			"$STRATA" --socket "$SOCK" generate -v -n $N --temperature 0 "$(pr "$1")" \
				>"$TMP/c$k.txt" 2>"$TMP/c$k.err" &
		else
			"$STRATA" --socket "$SOCK" generate -v -n $N --temperature 0 --draft "$2" \
				"$(pr "$1")" >"$TMP/c$k.txt" 2>"$TMP/c$k.err" &
		fi
		pids="$pids $!"
		echo "$1" >"$TMP/c$k.ref"
		k=$((k + 1))
	done
	bad=0
	for p in $pids; do wait "$p" || bad=$((bad + 1)); done
	k=0
	while [ $k -lt 6 ]; do
		same_text "$TMP/c$k.txt" "$TMP/ref$(cat "$TMP/c$k.ref").txt" || {
			bad=$((bad + 1))
			diag "client $k: $(cat "$TMP/c$k.txt") / $(cat "$TMP/c$k.err")"
		}
		k=$((k + 1))
	done
	[ $bad -eq 0 ]
	ok $? "$name: 6 clients at once get the text of strata-model without drafts"
}

for cfg in "lookup resident" "model resident" "self resident" "model small-uring" "lookup small-mmap"; do
	set -- $cfg
	kind=$1
	case $kind in
	lookup) dopt="lookup"; REQ_DRAFT=lookup; dbytes=0 ;;
	model) dopt="$D"; REQ_DRAFT=model; dbytes=$dsize ;;
	self) dopt="$MODEL"; REQ_DRAFT=model; dbytes=$msize ;;
	esac
	case $2 in
	resident) set -- ;;
	small-uring) set -- --kv-budget $kvb --memory-budget $((min + dbytes + over + 8192)) --io uring ;;
	small-mmap) set -- --kv-budget $kvb --memory-budget $((min + dbytes + over + 8192)) --io mmap ;;
	esac
	serve --draft "$dopt" "$@"
	ok $? "stratad --draft $(basename "$dopt") $* comes up"
	"$STRATA" --socket "$SOCK" status --json >"$TMP/st0.json"
	clients "$cfg"
	"$STRATA" --socket "$SOCK" status --json >"$TMP/st.json"
	"$STRATA" --socket "$SOCK" status >"$TMP/st.txt"
	drafted=$(sed -n 's/.*"drafted_tokens_total": *"*\([0-9]*\).*/\1/p' "$TMP/st.json")
	accepted=$(sed -n 's/.*"accepted_tokens_total": *"*\([0-9]*\).*/\1/p' "$TMP/st.json")
	tpp=$(sed -n 's/.*"tokens_per_pass": *\([0-9.]*\).*/\1/p' "$TMP/st.json")
	[ "${drafted:-0}" -gt 0 ] && [ -n "$accepted" ] && [ -n "$tpp" ] && grep -q "^speculation" "$TMP/st.txt"
	ok $? "$cfg: status counts drafts: $(grep "^speculation" "$TMP/st.txt")"
	if [ $# -gt 0 ]; then
		lr=$(grep -o '"layers_resident": *[0-9]*' "$TMP/st0.json" | head -1 | grep -o '[0-9]*$')
		nl=$(grep -o '"n_layer": *[0-9]*' "$TMP/st0.json" | head -1 | grep -o '[0-9]*$')
		[ -n "$lr" ] && [ "$lr" -lt "$nl" ]
		ok $? "$cfg: the model streams ($lr of $nl layers resident)"
	fi
	grep -q "drafted [0-9]*, accepted [0-9]*" "$TMP/c0.err"
	ok $? "$cfg: Done carries the request's drafts: $(cat "$TMP/c0.err")"
	if [ "$kind" = self ] && [ $# -eq 0 ]; then
		grep -q "drafts: draft model" "$TMP/stratad.log" && grep -q "in all, counted in the memory line" "$TMP/stratad.log"
		ok $? "the plan log says what the draft model costs: $(grep "drafts: draft model" "$TMP/stratad.log")"
		grep -q "^drafts .*resident" "$TMP/st.txt"
		ok $? "status shows the draft model: $(grep "^drafts" "$TMP/st.txt")"
		# its own drafts are all kept: several tokens per pass, for 4 requests in
		# the same passes
		t=$(sed -n 's/.*, \([0-9.]*\) tokens per pass$/\1/p' "$TMP/c0.err")
		awk -v t="${t:-0}" 'BEGIN { exit !(t > 3) }'
		ok $? "with its own drafts a request gets $t tokens per pass"
		# --threads 2 holds with a draft model: the draft runs on the same threads
		story="$P2 $P2"
		"$STRATA" --socket "$SOCK" generate -n 300 --ignore-eos --temperature 0 "$story" >/dev/null
		busy=$(for t in /proc/"$DPID"/task/*; do
			[ "${t##*/}" = "$DPID" ] || grep -q strata-io "$t/comm" || awk '{print $14 + $15}' "$t/stat"
		done | sort -n | awk '{v[NR] = $1} END {n = 0; for (i = 1; i <= NR; i++) if (v[i] * 10 > v[NR]) n++; print n}')
		[ "$busy" -le 2 ]
		ok $? "--threads 2 with a draft model: at most 2 threads compute ($busy did)"
	fi
	stop
done

# a request asking for the draft model where none is loaded
serve --draft lookup
"$STRATA" --socket "$SOCK" generate -n 4 --draft model "$P1" 2>"$TMP/nomodel.err" >/dev/null
[ $? -eq 5 ] && grep -q "draft" "$TMP/nomodel.err"
ok $? "a request for model drafts without a draft model is refused: $(cat "$TMP/nomodel.err")"
"$STRATA" --socket "$SOCK" generate -n 4 --draft-max 99 "$P1" 2>"$TMP/max.err" >/dev/null
[ $? -eq 5 ] && grep -q "draft_max" "$TMP/max.err"
ok $? "draft_max above 64 is refused: $(cat "$TMP/max.err")"
stop

"$STRATAD" --config /dev/null --model "$MODEL" --socket "$TMP/bad.sock" --draft "$BAD" \
	2>"$TMP/badd.err"
[ $? -eq 1 ] && grep -q "vocabulary" "$TMP/badd.err" && [ ! -e "$TMP/bad.sock" ]
ok $? "stratad with a draft of another vocabulary exits 1 and says why: $(tail -1 "$TMP/badd.err")"
done_testing
