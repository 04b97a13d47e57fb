#!/bin/sh
# test-quantize.sh: strata-model quantize end to end, on synthesized F16
# models: every scheme writes a file the engine runs, with llama-quantize's
# tensor types (Q4_K_M: the output head and some attn_v/ffn_down in q6_K);
# rows that are not whole super-blocks take llama.cpp's fallback types, or
# fail under --pure; requantizing warns; a failure leaves no file. Then
# synth --type with a mixture, and a file with a type strata does not run:
# info describes it and marks it, generate refuses it naming the tensor, the
# type and the types strata runs; a type id ggml never had is refused by the
# reader. (Byte-for-byte equality with llama-quantize needs llama.cpp:
# bench/quant-quality.sh.)
. "${STRATA_SRCDIR:-.}/tests/lib.sh"

F16="$TMP/f16.gguf"
"$STRATA_MODEL" synth "$F16" --n-embd 256 --n-layer 3 --n-head 4 --n-head-kv 2 --n-ff 768 \
	--type f16 --vocab builtin --seed 3
ok $? "synth writes a 3-layer F16 model"

# scheme, then what info's types line must show
for case in "Q4_K_M q4_K.20.tensors q6_K.3.tensors" "Q4_K_S q4_K.19.tensors q5_K.3.tensors" \
	"Q5_K_M q5_K.20.tensors q6_K.3.tensors" "Q3_K_L q3_K.13.tensors q5_K.9.tensors" \
	"Q2_K q2_K.13.tensors q3_K.9.tensors" "IQ4_XS iq4_xs.22.tensors q6_K.1.tensor" \
	"Q6_K q6_K.23.tensors f32.7.tensors" "Q8_0 q8_0.23.tensors f32.7.tensors" \
	"Q4_1 q4_1.22.tensors q6_K.1.tensor" "Q5_0 q5_0.22.tensors q6_K.1.tensor" \
	"IQ4_NL iq4_nl.22.tensors q6_K.1.tensor" "BF16 bf16.23.tensors f32.7.tensors"; do
	set -- $case
	Q="$TMP/$1.gguf"
	"$STRATA_MODEL" quantize --quiet "$F16" "$Q" "$1" &&
		"$STRATA_MODEL" info "$Q" >"$TMP/$1.info" &&
		grep -q "^runs: *yes" "$TMP/$1.info" && grep "^types:" "$TMP/$1.info" | grep -q "$2" &&
		grep "^types:" "$TMP/$1.info" | grep -q "$3" &&
		"$STRATA_MODEL" generate "$Q" --prompt "Once upon a time" -n 4 --ids >"$TMP/$1.gen" &&
		sed -n 2p "$TMP/$1.gen" | grep -Eq "^gen:( [0-9]+){4}$"
	ok $? "quantize $1: $(grep "^types:" "$TMP/$1.info" | sed 's/^types: *//'); it generates" ||
		cat "$TMP/$1.info"
done

"$STRATA_MODEL" quantize "$F16" "$TMP/sum.gguf" Q4_K 2>"$TMP/sum.err"
[ $? -eq 0 ] && grep -q "Q4_K_M, 30 tensors (f32 7, q4_K 20, q6_K 3)" "$TMP/sum.err"
ok $? "Q4_K is llama-quantize's name for Q4_K_M; the summary counts the types: $(cat "$TMP/sum.err")"
cmp -s "$TMP/sum.gguf" "$TMP/Q4_K_M.gguf"
ok $? "... and two runs write the same bytes"

"$STRATA_MODEL" quantize --quiet --pure "$F16" "$TMP/pure.gguf" q4_K &&
	"$STRATA_MODEL" info "$TMP/pure.gguf" | grep "^types:" | grep -q "q4_K 23 tensors"
ok $? "--pure q4_K: every matrix in q4_K, the output head too"

# rows of 64 weights: no whole super-blocks
S="$TMP/small.gguf"
"$STRATA_MODEL" synth "$S" --n-embd 64 --n-layer 2 --n-head 4 --n-ff 128 --type f16 --vocab builtin
"$STRATA_MODEL" quantize "$S" "$TMP/small-q4km.gguf" Q4_K_M 2>"$TMP/fb.err" &&
	"$STRATA_MODEL" info "$TMP/small-q4km.gguf" | grep "^types:" >"$TMP/fb.types" &&
	grep -q "q5_0" "$TMP/fb.types" && grep -q "q8_0" "$TMP/fb.types" && ! grep -q "q4_K" "$TMP/fb.types" &&
	grep -q "fallback" "$TMP/fb.err"
ok $? "rows of 64: q4_K falls back to q5_0, q6_K to q8_0, as in llama.cpp: $(cat "$TMP/fb.types")"
"$STRATA_MODEL" quantize --pure "$S" "$TMP/small-pure.gguf" q4_K 2>"$TMP/pure.err"
[ $? -eq 1 ] && grep -q "rows of 64 weights are not whole q4_K blocks (256 weights)" "$TMP/pure.err" &&
	[ ! -e "$TMP/small-pure.gguf" ]
ok $? "--pure q4_K on rows of 64: a clear error, no output file: $(cat "$TMP/pure.err")"

"$STRATA_MODEL" quantize "$F16" "$TMP/x.gguf" Q4_K_X 2>"$TMP/bad.err"
[ $? -eq 2 ] && grep -q "unknown TYPE 'Q4_K_X'" "$TMP/bad.err"
ok $? "an unknown TYPE is a usage error naming the schemes"

"$STRATA_MODEL" quantize "$TMP/Q8_0.gguf" "$TMP/requant.gguf" Q4_K_M 2>"$TMP/requant.err" &&
	grep -q "warning: .* q8_0 tensors: requantizing" "$TMP/requant.err" &&
	"$STRATA_MODEL" info "$TMP/requant.gguf" | grep "^types:" | grep -q "q4_K 20 tensors"
ok $? "requantizing a Q8_0 file works, with a warning"

M="$TMP/mix.gguf"
"$STRATA_MODEL" synth "$M" --n-embd 256 --n-layer 3 --n-head 4 --n-head-kv 2 --n-ff 768 \
	--type Q4_K_M --vocab builtin &&
	"$STRATA_MODEL" info "$M" | grep "^types:" | grep -q "q4_K 20 tensors.*q6_K 3 tensors" &&
	"$STRATA_MODEL" generate "$M" --prompt "Once" -n 4 --ids >/dev/null
ok $? "synth --type Q4_K_M: the recipe's types, and it runs"
"$STRATA_MODEL" synth "$TMP/no.gguf" --n-embd 256 --n-layer 1 --n-head 4 --n-ff 768 --type iq2_xxs \
	--vocab builtin 2>"$TMP/iq2.err"
[ $? -eq 2 ] && grep -q "neither a type strata runs" "$TMP/iq2.err"
ok $? "synth --type iq2_xxs: refused, listing what it takes"

# A type strata does not run: q3_K and iq3_s blocks have the same size, so
# relabelling a q3_K tensor as iq3_s (ggml type 21) leaves a valid file.
U="$TMP/iq3.gguf"
"$STRATA_MODEL" synth "$U" --n-embd 256 --n-layer 2 --n-head 4 --n-ff 768 --type q3_K --vocab builtin
# the u32 type follows the name, n_dims (u32) and two u64 dims
set_type() { # set_type FILE TENSOR OCTAL-BYTE
	off=$(grep -obUa "$2" "$1" | head -1 | cut -d: -f1)
	printf "\\$3\\000\\000\\000" | dd of="$1" bs=1 seek=$((off + ${#2} + 4 + 16)) conv=notrunc 2>/dev/null
}
set_type "$U" blk.1.ffn_down.weight 025
"$STRATA_MODEL" info "$U" >"$TMP/iq3.info" 2>&1
[ $? -eq 1 ] && grep "^types:" "$TMP/iq3.info" | grep -q "iq3_s 1 tensor (.* MiB) \[strata does not run it\]" &&
	grep -q "^runs: *no: 1 tensors of types strata does not run.*blk.1.ffn_down.weight" "$TMP/iq3.info" &&
	grep -q "^layers: *2" "$TMP/iq3.info" && grep -q "down iq3_s" "$TMP/iq3.info"
ok $? "info describes a file with an iq3_s tensor, marks it, and exits 1" || cat "$TMP/iq3.info"
"$STRATA_MODEL" generate "$U" --prompt "x" -n 1 2>"$TMP/iq3.err"
[ $? -eq 1 ] && grep -q "tensor 'blk.1.ffn_down.weight' has type iq3_s (ggml type 21), which strata does not run (weight types strata runs: f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs, bf16)" "$TMP/iq3.err"
ok $? "generate refuses it: $(cat "$TMP/iq3.err")"
set_type "$U" blk.1.ffn_down.weight 047
"$STRATA_MODEL" info "$U" 2>"$TMP/t39.err" >/dev/null
[ $? -eq 1 ] && grep -q "tensor 'blk.1.ffn_down.weight': unknown tensor type 39" "$TMP/t39.err"
ok $? "a type id ggml never had: the reader says so: $(cat "$TMP/t39.err")"
done_testing
