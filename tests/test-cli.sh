#!/bin/sh
# test-cli.sh: the thin client `strata` against the real stratad: the same
# text as strata-model, tokenize, status (table and JSON), --json streaming,
# exit codes, Ctrl-C, and socket activation through systemd-socket-activate.
. "${STRATA_SRCDIR:-.}/tests/lib.sh"

pick_model
SOCK="$TMP/s.sock"
# Settings come from the file, then the command line, which wins: the file
# sets the model and the context (300); --ctx-size 4096 overrides the latter.
cat >"$TMP/stratad.conf" <<EOC
# a comment, then settings with the long options' names
model = $MODEL
ctx-size = 300
kv-type = f32
log-level = info
EOC
"$STRATAD" --config "$TMP/stratad.conf" --socket "$SOCK" --ctx-size 4096 --threads 2 \
	2>"$TMP/stratad.log" &
DPID=$!
TAP_PIDS="$DPID"
check "stratad comes up and answers status" wait_for "$STRATA" --socket "$SOCK" status
"$STRATA" --socket "$SOCK" status --json >"$TMP/ctx.json"
grep -q '"n_ctx": *4096' "$TMP/ctx.json" && grep -q "settings read from $TMP/stratad.conf" "$TMP/stratad.log"
ok $? "the settings file is read and the command line overrides it (n_ctx 4096)"
nl=$(sed -n 's/.*"n_layer": *\([0-9]*\).*/\1/p' "$TMP/ctx.json" | head -1)
lr=$(sed -n 's/.*"layers_resident": *\([0-9]*\).*/\1/p' "$TMP/ctx.json" | head -1)
[ -n "$nl" ] && [ "$nl" = "$lr" ] && grep -q '"io_mode": *"resident"' "$TMP/ctx.json"
ok $? "status: with no budget all $nl layers are resident ($lr), io mode resident"
grep -q "resident:" "$TMP/stratad.log" && grep -q "streamed:" "$TMP/stratad.log" &&
	grep -q "KV cache" "$TMP/stratad.log" &&
	grep -q "units 0-$((nl - 1)) are layers 0-$((nl - 1)) .*unit $nl is the head" "$TMP/stratad.log"
ok $? "the log states the memory plan: resident and streamed weights, what the units are, the KV cache"
head -c 100000 "$MODEL" >"$TMP/cut.gguf"
"$STRATAD" --config /dev/null --model "$TMP/cut.gguf" --socket "$TMP/cut.sock" 2>"$TMP/cut.err"
[ $? -eq 1 ] && grep -q "cut.gguf" "$TMP/cut.err" && [ ! -e "$TMP/cut.sock" ]
ok $? "a truncated model: stratad exits 1 naming the file, and leaves no socket: $(tail -1 "$TMP/cut.err")"
echo "ctx-size = many" >"$TMP/bad.conf"
"$STRATAD" --config "$TMP/bad.conf" --model "$MODEL" 2>"$TMP/bad.err"
[ $? -eq 2 ] && grep -q "bad.conf:1" "$TMP/bad.err"
ok $? "a bad setting stops stratad with exit 2 and names the file and line: $(cat "$TMP/bad.err")"

PROMPT="Once upon a time"
"$STRATA" --socket "$SOCK" generate -n 40 --temperature 0 "$PROMPT" >"$TMP/client.txt" 2>"$TMP/client.err"
ok $? "strata generate exits 0"
"$STRATA_MODEL" generate "$MODEL" --prompt "$PROMPT" -n 40 --temperature 0 --kv-type f32 --threads 2 \
	>"$TMP/offline.txt"
ok $? "strata-model generate exits 0"
# same_text A B: the same generated text (strata-model ends it with a newline
# of its own; $(...) drops trailing newlines on both sides)
same_text() { [ -s "$1" ] && [ "$(cat "$1")" = "$(cat "$2")" ]; }
same_text "$TMP/client.txt" "$TMP/offline.txt"
ok $? "strata generate gives the same text as strata-model generate"
same_text "$TMP/client.txt" "$TMP/offline.txt" || { diag "client: $(cat "$TMP/client.txt") $(cat "$TMP/client.err")"; diag "offline: $(cat "$TMP/offline.txt")"; }

printf %s "$PROMPT" | "$STRATA" --socket "$SOCK" generate -n 40 --temperature 0 >"$TMP/stdin.txt"
cmp -s "$TMP/stdin.txt" "$TMP/client.txt"
ok $? "the prompt can come from stdin"

a=$("$STRATA" --socket "$SOCK" tokenize "$PROMPT")
b=$("$STRATA_MODEL" tokenize "$MODEL" "$PROMPT")
[ -n "$a" ] && [ "$a" = "$b" ]
ok $? "strata tokenize agrees with strata-model tokenize ($a)"

"$STRATA" --socket "$SOCK" status >"$TMP/status.txt"
grep -q "layers" "$TMP/status.txt"
ok $? "strata status prints a table"
"$STRATA" --socket "$SOCK" status --json >"$TMP/status.json"
if [ -n "${PYTHON3:-}" ]; then
	"$PYTHON3" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["model"]["n_layer"] > 0' "$TMP/status.json"
	ok $? "strata status --json is JSON with the model's layers"
else
	grep -q '"n_layer"' "$TMP/status.json"
	ok $? "strata status --json names n_layer"
fi

"$STRATA" --socket "$SOCK" generate --json -n 8 --temperature 0 "$PROMPT" >"$TMP/gen.json"
ok $? "strata generate --json exits 0"
lines=$(grep -c '^{' "$TMP/gen.json")
[ "$lines" -ge 2 ]
ok $? "--json prints one object per line ($lines lines)"

# --threads 2 means two busy threads: our pool and OpenBLAS take turns on the
# same cores. Count the daemon's threads that did real work (over a tenth of
# the busiest one's CPU time) after a few prompts and generations.
story="$PROMPT, there was a little girl named Lily. She loved to play outside in the park."
for i in 1 2 3; do
	"$STRATA" --socket "$SOCK" generate -n 200 --temperature 0 "$story" >/dev/null
	"$STRATA" --socket "$SOCK" generate -n 200 --temperature 0 "$PROMPT" >/dev/null
done
# The event loop (the main thread, tid = pid) and the I/O thread do not compute.
busy=$(for t in /proc/"$DPID"/task/*; do
	[ "${t##*/}" = "$DPID" ] || grep -q strata-io "$t/comm" || awk '{print $14 + $15}' "$t/stat"
done | sort -n | awk '{v[NR] = $1} END {n = 0; for (i = 1; i <= NR; i++) if (v[i] * 10 > v[NR]) n++; print n}')
[ "$busy" -le 2 ]
ok $? "--threads 2: at most 2 threads of stratad compute ($busy did)"
diag "thread CPU ticks: $(for t in /proc/"$DPID"/task/*; do printf "%s/%s:%s " "${t##*/}" "$(cat "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")"; done)"

"$STRATA" --socket "$TMP/nobody.sock" status 2>"$TMP/err.txt"
[ $? -eq 3 ] && grep -q "nobody.sock" "$TMP/err.txt"
ok $? "no daemon: exit code 3 and a message naming the socket"
long=$(i=0; while [ $i -lt 1500 ]; do printf "Once upon a time "; i=$((i + 1)); done)
"$STRATA" --socket "$SOCK" generate "$long" 2>"$TMP/long.err"
[ $? -eq 5 ] && grep -q "context" "$TMP/long.err"
ok $? "a server error (prompt too long): exit code 5 and the server's message ($(cat "$TMP/long.err"))"
"$STRATA" frobnicate 2>/dev/null
[ $? -eq 2 ]
ok $? "an unknown command: exit code 2"

# each command's --help is its own usage, exit 0
for c in generate chat score tokenize detokenize status; do
	"$STRATA" $c --help >"$TMP/help-$c.txt" 2>&1
	r=$?
	[ $r -eq 0 ] && head -n 1 "$TMP/help-$c.txt" | grep -q "^Usage: strata .*$c" &&
		! grep -q "^Commands:" "$TMP/help-$c.txt"
	ok $? "strata $c --help prints the usage of $c and exits 0 ($r: $(head -n 1 "$TMP/help-$c.txt"))"
done
grep -q -- "--temperature" "$TMP/help-generate.txt" && ! grep -q -- "--temperature" "$TMP/help-status.txt" &&
	grep -q -- "--system" "$TMP/help-chat.txt" && grep -q -- "--temperature" "$TMP/help-chat.txt" &&
	! grep -q -- "--special" "$TMP/help-chat.txt" && grep -q -- "--tokens" "$TMP/help-score.txt" &&
	! grep -q -- "--temperature" "$TMP/help-score.txt"
ok $? "... generate's and chat's list the sampling options, score's and status's do not"

# option errors name the program, whatever the command
"$STRATA" generate --frobnicate x 2>"$TMP/opt1.err"
r1=$?
"$STRATA" tokenize --special --bos --json x 2>"$TMP/opt2.err"
r2=$?
"$STRATA" generate "$PROMPT" --temperature 2>"$TMP/opt3.err"
r3=$?
[ $r1 -eq 2 ] && [ $r2 -eq 2 ] && [ $r3 -eq 2 ] &&
	grep -q "^strata: .*--frobnicate" "$TMP/opt1.err" && grep -q "^strata: .*--json" "$TMP/opt2.err" &&
	grep -q "^strata: .*--temperature" "$TMP/opt3.err" && ! grep -q "^generate:\|^tokenize:" "$TMP/opt"*.err
ok $? "option errors begin 'strata: ' and name the option ($(head -n 1 "$TMP/opt1.err"); $(head -n 1 "$TMP/opt3.err"))"

# a command's option given before the command
"$STRATA" --socket "$SOCK" --json status 2>"$TMP/before.err"
r=$?
[ $r -eq 2 ] && grep -q "^strata: --json is an option of 'status': strata status --json" "$TMP/before.err"
ok $? "strata --json status says where --json belongs (exit $r: $(head -n 1 "$TMP/before.err"))"
"$STRATA" -n 5 generate "$PROMPT" 2>"$TMP/before2.err"
r=$?
[ $r -eq 2 ] && grep -q "^strata: -n is an option of 'generate'" "$TMP/before2.err"
ok $? "... and so for strata -n 5 generate (exit $r: $(head -n 1 "$TMP/before2.err"))"

# --stop takes C escapes, as llama-cli does: '\u0065' is "e"
"$STRATA" --socket "$SOCK" generate -n 40 --temperature 0 --json "$PROMPT" >"$TMP/nostop.json"
"$STRATA" --socket "$SOCK" generate -n 40 --temperature 0 --json --stop '\u0065' "$PROMPT" >"$TMP/stop.json"
grep -q '"finish_reason":"stop_string".*"stop_string":"e"' "$TMP/stop.json"
ok $? "--stop '\\u0065' stops at the first e: $(tail -n 1 "$TMP/stop.json" | cut -c 1-60)..."
"$STRATA" --socket "$SOCK" generate -n 2 --stop 'a\x00b' "$PROMPT" >/dev/null 2>"$TMP/stopnul.err"
[ $? -eq 2 ] && grep -q "^strata: --stop" "$TMP/stopnul.err"
ok $? "--stop with an escape that makes a NUL is a usage error ($(cat "$TMP/stopnul.err"))"

# 64-bit integers in --json are strings (protobuf's JSON mapping): a seed
# above 2^53 survives a JSON parser that reads numbers as doubles
"$STRATA" --socket "$SOCK" generate --json -n 2 --seed 18446744073709551615 "$PROMPT" >"$TMP/seed.json"
grep -q '"seed":"18446744073709551615"' "$TMP/seed.json"
ok $? "generate --json prints the seed 2^64-1 as a string"
if [ -n "${PYTHON3:-}" ]; then
	"$PYTHON3" -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
done = lines[-1]
assert done["type"] == "done" and int(done["seed"]) == 2**64 - 1, done
assert all(l["type"] == "piece" for l in lines[:-1])' "$TMP/seed.json"
	ok $? "... and every line parses as JSON, the seed exactly"
fi

# Ctrl-C cancels the request cleanly. --ignore-eos and 4000 tokens: the
# generation is certainly still running when the signal comes.
"$STRATA" --socket "$SOCK" generate -n 4000 --ignore-eos --temperature 1 "$PROMPT" \
	>"$TMP/int.txt" 2>"$TMP/int.err" &
CPID=$!
wait_for test -s "$TMP/int.txt"
kill -INT "$CPID"
wait "$CPID"
[ $? -eq 130 ]
ok $? "Ctrl-C: strata exits 130"
wait_for grep -q "cancelled after" "$TMP/stratad.log"
ok $? "... and the daemon ended that request as cancelled: $(grep "cancelled after" "$TMP/stratad.log" | tail -1)"
check "... and the daemon still serves" "$STRATA" --socket "$SOCK" status

kill -TERM "$DPID"
wait "$DPID"
ok $? "stratad exits 0 on SIGTERM"
[ ! -e "$SOCK" ]
ok $? "the socket file is gone"
TAP_PIDS=

# --ignore-eos: find a sampled generation that ends at EOS (on a random model
# one does within a few seeds), then the same seed with --ignore-eos runs on
# through the EOS to the full length, with the same text first.
# (its path and its general.name are not UTF-8: strata status must still work)
E="$TMP/eos-$(printf '\377').gguf"
"$STRATA_MODEL" synth "$E" --n-embd 64 --n-layer 1 --n-head 4 --n-ff 128 --type f32 \
	--vocab builtin --seed 5 --name "$(printf 'caf\351 story')" &&
	{ "$STRATAD" --config /dev/null --model "$E" --socket "$TMP/e.sock" --threads 1 \
		2>"$TMP/e.log" & }
EPID=$!
TAP_PIDS="$EPID"
check "stratad serves a small random model" wait_for "$STRATA" --socket "$TMP/e.sock" status
seed=0
s=1
while [ $s -le 40 ]; do
	"$STRATA" --socket "$TMP/e.sock" generate -v -n 300 --temperature 1 --seed $s "$PROMPT" \
		>"$TMP/eos.txt" 2>"$TMP/eos.err"
	grep -q "finish eos" "$TMP/eos.err" && { seed=$s; break; }
	s=$((s + 1))
done
[ $seed -gt 0 ]
ok $? "a sampled generation ends at EOS (seed $seed): $(cat "$TMP/eos.err")"
n=$(sed -n 's/^strata: \([0-9]*\) tokens.*/\1/p' "$TMP/eos.err")
"$STRATA" --socket "$TMP/e.sock" generate -v -n $((n + 20)) --ignore-eos --temperature 1 \
	--seed $seed "$PROMPT" >"$TMP/noeos.txt" 2>"$TMP/noeos.err"
grep -q "^strata: $((n + 20)) tokens .*finish length" "$TMP/noeos.err"
ok $? "--ignore-eos: the same seed runs past the EOS to all $((n + 20)) tokens: $(cat "$TMP/noeos.err")"
case $(cat "$TMP/noeos.txt") in
"$(cat "$TMP/eos.txt")"?*) true ;;
*) false ;;
esac
ok $? "... with the text of the run that stopped first, then more"
"$STRATA" --socket "$TMP/e.sock" status >"$TMP/e.status" 2>&1 &&
	grep -q "caf$(printf '\357\277\275') story" "$TMP/e.status" &&
	grep -q "eos-$(printf '\357\277\275').gguf" "$TMP/e.status"
ok $? "a model whose path and name are not UTF-8: strata status shows them with U+FFFD"
grep -q "model\|file" "$TMP/e.status" || diag "$(cat "$TMP/e.status")"
kill -TERM "$EPID"
wait "$EPID"
TAP_PIDS=

# socket activation
if command -v systemd-socket-activate >/dev/null 2>&1; then
	ASOCK="$TMP/act.sock"
	systemd-socket-activate -l "$ASOCK" "$STRATAD" --model "$MODEL" --ctx-size 512 --kv-type f32 \
		--threads 2 --config /dev/null 2>"$TMP/activated.log" &
	APID=$!
	TAP_PIDS="$APID"
	wait_for test -S "$ASOCK"
	"$STRATA" --socket "$ASOCK" generate -n 40 --temperature 0 "$PROMPT" >"$TMP/act.txt"
	ok $? "under systemd-socket-activate the first connection starts stratad"
	same_text "$TMP/act.txt" "$TMP/offline.txt"
	ok $? "... and it serves the same text"
	grep -q "socket activation" "$TMP/activated.log"
	ok $? "... on the socket systemd passed (the log says so)"
	kill -TERM "$APID"
	wait "$APID"
	TAP_PIDS=
else
	echo "ok $((TAP_N + 1)) # SKIP systemd-socket-activate is not installed (Debian package systemd)"
	TAP_N=$((TAP_N + 1))
fi
done_testing
