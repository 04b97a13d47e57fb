#!/bin/sh
# test-tools.sh: strata-model end to end: synth, info, tokenize, generate
# (--ids, --logits), a corrupt file's error, and issue #4's promise: the
# same tokens whatever the budget (all resident, half streamed, all streamed)
# and whatever the io mode, on a synthesized multi-layer Q8_0 model.
. "${STRATA_SRCDIR:-.}/tests/lib.sh"

M="$TMP/q8.gguf"
"$STRATA_MODEL" synth "$M" --n-embd 256 --n-layer 6 --n-head 8 --n-head-kv 4 --n-ff 768 \
	--type q8_0 --vocab builtin --ctx 256 --seed 11
ok $? "synth writes a 6-layer Q8_0 model"

"$STRATA_MODEL" info "$M" >"$TMP/info.txt"
ok $? "info reads it"
grep -q "^layers: *6" "$TMP/info.txt" && grep -q "mostly q8_0" "$TMP/info.txt" &&
	[ "$(grep -c "layer .*q8_0" "$TMP/info.txt")" -eq 6 ]
ok $? "info shows 6 layers of q8_0 with their sizes"

ids=$("$STRATA_MODEL" tokenize "$M" "Once upon a time")
[ -n "$ids" ]
ok $? "tokenize prints ids ($ids)"
bos=$("$STRATA_MODEL" tokenize --bos "$M" "Once upon a time")
[ "$bos" = "1 $ids" ]
ok $? "--bos puts BOS (1) first"
if [ -n "${STRATA_SHARED:-}" ] && [ -f "$STRATA_SHARED/vocab/ggml-vocab-llama-spm.gguf" ]; then
	v=$("$STRATA_MODEL" tokenize "$STRATA_SHARED/vocab/ggml-vocab-llama-spm.gguf" " Hello world")
	[ "$v" = "29871 15043 3186" ]
	ok $? "tokenize works on a vocabulary-only file (llama-spm: $v)"
else
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N # SKIP ../shared is absent (no vocabulary-only file)"
fi

# --n-vocab pads a vocabulary with unused tokens (an ALIA-sized head from a
# small vocabulary): the padded tokens exist, yet text tokenizes as before.
P="$TMP/padded.gguf"
"$STRATA_MODEL" synth "$P" --n-embd 64 --n-layer 1 --n-head 4 --n-ff 128 --type q8_0 \
	--vocab builtin --n-vocab 3000 &&
	"$STRATA_MODEL" info "$P" | grep -q "^vocabulary: *3000$"
ok $? "synth --n-vocab 3000 pads the built-in 512-token vocabulary to 3000"
[ "$("$STRATA_MODEL" tokenize "$P" "Once upon a time <unused_7>")" = \
  "$("$STRATA_MODEL" tokenize "$M" "Once upon a time <unused_7>")" ]
ok $? "... and text (even '<unused_7>') tokenizes as with the unpadded vocabulary"
"$STRATA_MODEL" generate "$P" --prompt "Once" -n 4 --ids >"$TMP/padded.txt" &&
	sed -n 2p "$TMP/padded.txt" | grep -Eq "^gen:( [0-9]+){4}$"
ok $? "... and a model with the padded vocabulary generates"
if [ -n "${STRATA_SHARED:-}" ] && [ -f "$STRATA_SHARED/vocab/ggml-vocab-llama-spm.gguf" ]; then
	"$STRATA_MODEL" synth "$P" --n-embd 64 --n-layer 1 --n-head 4 --n-ff 128 --type q8_0 \
		--vocab "$STRATA_SHARED/vocab/ggml-vocab-llama-spm.gguf" --n-vocab 33000 &&
		"$STRATA_MODEL" info "$P" | grep -q "^vocabulary: *33000$" &&
		[ "$("$STRATA_MODEL" tokenize "$P" " Hello world")" = "29871 15043 3186" ]
	ok $? "--n-vocab pads a copied vocabulary (llama-spm, 32000 -> 33000); it tokenizes as before"
else
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N # SKIP ../shared is absent (no vocabulary-only file to pad)"
fi

gen() { # gen OUT EXTRA-OPTIONS...: greedy and sampled ids with those options
	out=$1
	shift
	{ "$STRATA_MODEL" generate "$M" --prompt "Once upon a time" -n 24 --temperature 0 --ids "$@" &&
	  "$STRATA_MODEL" generate "$M" --prompt "Once upon a time" -n 24 --temperature 0.9 --seed 3 --ids "$@"
	} >"$out"
}
gen "$TMP/resident.txt" --logits "$TMP/logits.f32"
ok $? "generate --ids --logits runs"
head -1 "$TMP/resident.txt" | grep -q "^prompt: 1 " && sed -n 2p "$TMP/resident.txt" | grep -Eq "^gen:( [0-9]+){24}$"
ok $? "--ids prints 'prompt: ...' with BOS and 'gen: ...' with 24 ids"
[ "$(stat -c %s "$TMP/logits.f32")" -eq $((24 * 512 * 4)) ]
ok $? "--logits writes steps x vocab f32 ($(stat -c %s "$TMP/logits.f32") bytes)"

# A layer is 816 KiB: 1800K of weights holds only the two streaming buffers, 3M
# keeps some layers resident as well (the budget also holds the KV cache and
# scratch: weights_budget adds what the engine plans for them).
for mode in "all-streamed 1843200 uring" "half-streamed 3145728 uring" "all-streamed 1843200 mmap" "half-streamed 3145728 mmap"; do
	set -- $mode
	b=$(weights_budget "$M" "$2")
	gen "$TMP/$1-$3.txt" $b --io "$3"
	ok $? "generate with $2 bytes for weights ($1, --io $3: $b) runs"
	cmp -s "$TMP/resident.txt" "$TMP/$1-$3.txt"
	ok $? "... and gives exactly the tokens of the resident run"
done
b=$(weights_budget "$M" 102400)
"$STRATA_MODEL" generate "$M" --prompt "x" -n 1 $b 2>"$TMP/small.err"
[ $? -ne 0 ] && grep -q "minimum" "$TMP/small.err" && grep -q "for weights" "$TMP/small.err"
ok $? "100K for weights, below two layers, is refused, naming the minimum and the split: $(cat "$TMP/small.err")"
"$STRATA_MODEL" generate "$M" --prompt "x" -n 1 --memory-budget 100K 2>"$TMP/tiny.err"
[ $? -ne 0 ] && grep -q "cannot hold the KV cache of one sequence" "$TMP/tiny.err"
ok $? "a budget below the KV cache and scratch is refused with the numbers: $(cat "$TMP/tiny.err")"

head -c 3000 "$M" >"$TMP/cut.gguf"
"$STRATA_MODEL" info "$TMP/cut.gguf" 2>"$TMP/cut.err"
[ $? -ne 0 ] && grep -q "cut.gguf" "$TMP/cut.err"
ok $? "a truncated file: a clear error naming it ($(cat "$TMP/cut.err"))"
done_testing
