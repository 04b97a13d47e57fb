#!/bin/sh
# test-score-chat.sh: `strata score` and `strata chat` against the real
# stratad. score: a line per continuation that agrees with its --json and
# with the sum of its --tokens, the best named. chat from a pipe: the same
# reply twice, its --json pieces make its text, --system reaches the prompt,
# Ctrl-C and the exit codes. chat on a pseudo-terminal (tests/chat-pty.py
# types as a person would): the second turn carries the first, Ctrl-C stops a
# reply and the prompt comes back, Ctrl-C at the prompt drops the line, Ctrl-D
# ends with 0, one connection per session, a new one after --idle-timeout.
. "${STRATA_SRCDIR:-.}/tests/lib.sh"

PY=${PYTHON3:-$(command -v python3 || true)}
[ -n "$PY" ] || skip_all "python3 is needed to read the JSON and to drive the terminal"
pick_model
SOCK="$TMP/s.sock"
"$STRATAD" --config /dev/null --model "$MODEL" --socket "$SOCK" --ctx-size 4096 --kv-type f32 --threads 2 \
	--log-level info 2>"$TMP/stratad.log" &
DPID=$!
TAP_PIDS="$DPID"
check "stratad comes up" wait_for "$STRATA" --socket "$SOCK" status
S() { "$STRATA" --socket "$SOCK" "$@"; }
diag_lines() { sed 's/^/# /'; } # diag for text of many lines
# py FILE EXPR: EXPR evaluated with d = FILE's JSON (or lines = its JSON lines)
py() {
	"$PY" -c 'import json, sys
text = open(sys.argv[1]).read()
try:
    d = json.loads(text)
except ValueError:
    d = None
lines = [json.loads(l) for l in text.splitlines() if l.startswith("{")]
print(eval(sys.argv[2]))' "$@"
}

# ---- score ----

CTX="Once upon a time there was a"
S score "$CTX" " little girl" " dog" " big house" " princess" >"$TMP/score.txt" 2>"$TMP/score.err"
ok $? "strata score exits 0"
diag_lines <"$TMP/score.txt"
n=$(grep -c '^ *-[0-9.]*  \(greedy\|not greedy\) .* token' "$TMP/score.txt")
[ "$n" -eq 4 ] && [ "$(wc -l <"$TMP/score.txt")" -eq 6 ]
ok $? "four continuations: four lines, then the two best ($n lines of scores)"
# the best by sum and by mean, from the lines themselves
awk 'NR <= 4 { lp = $1 + 0; t = $0; sub(/.*greedy +/, "", t); sub(/ .*/, "", t); c = $0; sub(/^[^"]*/, "", c)
	if (NR == 1 || lp > best) { best = lp; bc = c }
	if (NR == 1 || lp / t > bm) { bm = lp / t; bmc = c } }
	END { print "best: " bc; print "best per token: " bmc }' "$TMP/score.txt" >"$TMP/best.want"
sed -n 's/^\(best[^:]*: "[^"]*"\).*/\1/p' "$TMP/score.txt" >"$TMP/best.got"
cmp -s "$TMP/best.want" "$TMP/best.got"
ok $? "the best is the highest sum, the best per token the highest mean: $(tr '\n' ';' <"$TMP/best.got")"

S score --json "$CTX" " little girl" " dog" " big house" " princess" >"$TMP/score.json"
r=$?
[ $r -eq 0 ] && [ "$(py "$TMP/score.json" 'len(d["scores"])')" = 4 ]
ok $? "score --json is one JSON object with four scores"
py "$TMP/score.json" '"\n".join("%.6f %d" % (s["logprob"], s["token_count"]) for s in d["scores"])' \
	>"$TMP/json.num"
awk 'NR <= 4 { t = $0; sub(/.*greedy +/, "", t); sub(/ .*/, "", t); printf "%.6f %d\n", $1, t }' \
	"$TMP/score.txt" >"$TMP/text.num"
cmp -s "$TMP/json.num" "$TMP/text.num"
ok $? "each line's log-probability and token count are the ScoreReply's"

S score --tokens "$CTX" " little girl" " dog" " big house" " princess" >"$TMP/tokens.txt"
ok $? "score --tokens exits 0"
# sum the token lines under each continuation's line; compare with its total
awk '/^ *-?[0-9.]+  (greedy|not greedy) / { if (n) print tot, sum, k, cnt
		tot = $1; sum = 0; k = 0; cnt = $0; sub(/.*greedy +/, "", cnt); sub(/ .*/, "", cnt); n++; next }
	/^    / { sum += $1; k++ }
	END { print tot, sum, k, cnt }' "$TMP/tokens.txt" >"$TMP/sums"
[ "$(wc -l <"$TMP/sums")" -eq 4 ] &&
	awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 || $3 != $4) bad = 1 } END { exit bad }' "$TMP/sums"
ok $? "--tokens: one line per token, adding up to each continuation's total within 1e-4 ($(tr '\n' ';' <"$TMP/sums"))"
S score --top 3 "$CTX" " dog" >"$TMP/top.txt"
k=$(grep -c '^    ' "$TMP/top.txt")
[ "$k" -ge 1 ] && [ "$(grep '^    ' "$TMP/top.txt" | grep -c 'top: "[^"]*" -[0-9.]*, "[^"]*" -[0-9.]*, "[^"]*" -[0-9.]*$')" -eq "$k" ]
ok $? "--top 3 implies --tokens and gives three alternatives per token"
printf %s "$CTX" | S score - " little girl" " dog" " big house" " princess" >"$TMP/stdin.txt"
cmp -s "$TMP/stdin.txt" "$TMP/score.txt"
ok $? "the context \"-\" is read from stdin"
if [ "$MODEL_KIND" = stories260K ]; then
	g=$(S generate -n 1 --temperature 0 "$CTX")
	S score "$CTX" "$g" >"$TMP/greedy.txt"
	grep -q "^ *-[0-9.]*  greedy " "$TMP/greedy.txt"
	ok $? "the token greedy generation picks ('$g') scores as greedy"
fi

S score "$CTX" 2>"$TMP/e1"
r1=$?
S score "$CTX" " dog" "" 2>"$TMP/e2"
r2=$?
S score --top 21 "$CTX" " dog" 2>"$TMP/e3"
r3=$?
[ $r1 -eq 2 ] && [ $r2 -eq 2 ] && [ $r3 -eq 5 ] && grep -q "INVALID_ARGUMENT" "$TMP/e3"
ok $? "score: no continuation or an empty one is a usage error (2), --top 21 the server's (5: $(cat "$TMP/e3"))"

# ---- chat from a pipe ----

CHAT="chat --template chatml -n 8 --temperature 0"
echo "Hi" | S $CHAT >"$TMP/chat1.txt" 2>"$TMP/chat1.err"
r=$?
[ $r -eq 0 ] && [ -s "$TMP/chat1.txt" ]
ok $? "echo Hi | strata chat prints a reply and exits 0 ($r: $(cat "$TMP/chat1.txt" "$TMP/chat1.err" | tr '\n' ' '))"
echo "Hi" | S $CHAT >"$TMP/chat2.txt"
cmp -s "$TMP/chat1.txt" "$TMP/chat2.txt"
ok $? "... the same reply again"
echo "Hi" | S $CHAT --json >"$TMP/chat.json"
[ "$(py "$TMP/chat.json" '"".join(l["text"] for l in lines if l["type"] == "piece")')" = "$(cat "$TMP/chat1.txt")" ] &&
	[ "$(py "$TMP/chat.json" 'lines[-1]["type"]')" = done ]
ok $? "chat --json: the pieces make the text, a done object ends it"
echo "Hi" | S $CHAT -v 2>"$TMP/nosys.err" >/dev/null
echo "Hi" | S $CHAT -v --system "You are a helpful bird." 2>"$TMP/sys.err" >/dev/null
p0=$(sed -n 's/.*; prompt \([0-9]*\) tokens.*/\1/p' "$TMP/nosys.err")
p1=$(sed -n 's/.*; prompt \([0-9]*\) tokens.*/\1/p' "$TMP/sys.err")
[ -n "$p0" ] && [ -n "$p1" ] && [ "$p1" -gt "$p0" ]
ok $? "--system goes before the message ($p0 prompt tokens without, $p1 with)"

echo "Hi" | "$STRATA" --socket "$TMP/nobody.sock" chat 2>/dev/null
r1=$?
printf '\n\n' | S chat 2>"$TMP/e4"
r2=$?
S chat "Hi" </dev/null 2>/dev/null
r3=$?
echo "Hi" | S chat --template nosuch 2>"$TMP/e5"
r4=$?
printf 'caf\351' | S chat --template chatml 2>"$TMP/e6"
r5=$?
[ $r1 -eq 3 ] && [ $r2 -eq 2 ] && [ $r3 -eq 2 ] && [ $r4 -eq 5 ] && grep -q chatml "$TMP/e5" && [ $r5 -eq 2 ]
ok $? "chat: no daemon 3, no message 2, an argument 2, an unknown template 5, not UTF-8 2 ($r1 $r2 $r3 $r4 $r5)"

# Ctrl-C on a one-message chat cancels it, as generate's does
echo "Tell me a story." >"$TMP/story.txt"
"$STRATA" --socket "$SOCK" chat --template chatml -n 4000 --ignore-eos --temperature 1 <"$TMP/story.txt" \
	>"$TMP/int.txt" 2>"$TMP/int.err" &
CPID=$!
wait_for test -s "$TMP/int.txt"
kill -INT "$CPID"
wait "$CPID"
r=$?
[ $r -eq 130 ]
ok $? "Ctrl-C: chat from a pipe exits 130 ($r)"

# ---- chat on a terminal ----

"$PY" "$SRCDIR/tests/chat-pty.py" history "$STRATA" --socket "$SOCK" $CHAT -n 16 -v >"$TMP/pty1.json"
py "$TMP/pty1.json" 'd["transcript"]' | head -n 12 | diag_lines
[ "$(py "$TMP/pty1.json" 'd.get("error")')" = None ] && [ "$(py "$TMP/pty1.json" 'd["first_prompt"]')" = True ]
ok $? "on a terminal chat prompts, and replies to two lines ($(py "$TMP/pty1.json" 'd.get("error")'))"
set -- $(py "$TMP/pty1.json" '" ".join(str(t[k]) for t in d["turns"] for k in ("prompt", "generated"))')
[ $# -eq 4 ] && [ "$3" -gt $(($1 + $2)) ]
ok $? "... the second turn carries the first: its prompt ($3 tokens) exceeds the first's prompt and reply ($1 + $2)"
[ "$(py "$TMP/pty1.json" 'd.get("reminder")')" = True ]
ok $? "... Ctrl-C at the prompt drops the line and recalls that Ctrl-D ends"
[ "$(py "$TMP/pty1.json" 'd["exit"]')" = 0 ]
ok $? "... Ctrl-D ends with status 0"
grep "client [0-9]* request [0-9]*:" "$TMP/stratad.log" | tail -n 2 |
	sed -n 's/.*client \([0-9]*\) request \([0-9]*\):.*/\1 \2/p' >"$TMP/ids"
[ "$(wc -l <"$TMP/ids")" -eq 2 ] && [ "$(cut -d' ' -f1 "$TMP/ids" | sort -u | wc -l)" -eq 1 ] &&
	[ "$(cut -d' ' -f2 "$TMP/ids" | sort -u | wc -l)" -eq 2 ]
ok $? "... on one connection, a fresh request id per turn (client, request: $(tr '\n' ';' <"$TMP/ids"))"

"$PY" "$SRCDIR/tests/chat-pty.py" cancel "$STRATA" --socket "$SOCK" chat --template chatml -n 4000 --ignore-eos \
	--temperature 1 -v >"$TMP/pty2.json"
py "$TMP/pty2.json" 'd["transcript"]' | tail -n 8 | diag_lines
[ "$(py "$TMP/pty2.json" 'd.get("error")')" = None ] &&
	[ "$(py "$TMP/pty2.json" '" ".join(t["finish"] for t in d["turns"])')" = "cancelled cancelled" ] &&
	[ "$(py "$TMP/pty2.json" 'all(t["cancelling_shown"] for t in d["turns"])')" = True ]
ok $? "Ctrl-C during a reply cancels it and the prompt comes back, twice ($(py "$TMP/pty2.json" 'd.get("error")'))"
set -- $(py "$TMP/pty2.json" '" ".join(str(t[k]) for t in d["turns"] for k in ("prompt", "generated"))')
[ $# -eq 4 ] && [ "$3" -gt $(($1 + $2 / 2)) ]
ok $? "... the cancelled reply stays in the conversation (next prompt $3 tokens; first $1 + $2 generated)"
[ "$(py "$TMP/pty2.json" 'd["exit"]')" = 0 ]
ok $? "... and Ctrl-D then ends with status 0"
S status >/dev/null
ok $? "... and the daemon still serves"

# a daemon that closes idle connections after 1 s: the next turn reconnects
"$STRATAD" --config /dev/null --model "$MODEL" --socket "$TMP/idle.sock" --ctx-size 4096 --threads 2 \
	--idle-timeout 1 --log-level info 2>"$TMP/idle.log" &
IPID=$!
TAP_PIDS="$DPID $IPID"
wait_for "$STRATA" --socket "$TMP/idle.sock" status
IDLE_SECONDS=2.5 "$PY" "$SRCDIR/tests/chat-pty.py" idle "$STRATA" --socket "$TMP/idle.sock" $CHAT -v \
	>"$TMP/pty3.json"
set -- $(py "$TMP/pty3.json" '" ".join(str(t[k]) for t in d["turns"] for k in ("prompt", "generated"))')
[ "$(py "$TMP/pty3.json" 'd["exit"]')" = 0 ] && [ $# -eq 4 ] && [ "$3" -gt $(($1 + $2)) ] &&
	grep -q "idle for 1 s" "$TMP/idle.log"
ok $? "stratad closes the idle chat's connection; the next turn opens one and still carries the first ($1 + $2 < $3)"
[ $# -eq 4 ] || { py "$TMP/pty3.json" 'd.get("error")'; cat "$TMP/idle.log"; } | diag_lines
kill -TERM "$IPID"
wait "$IPID"

kill -TERM "$DPID"
wait "$DPID"
ok $? "stratad exits 0 on SIGTERM"
TAP_PIDS=
done_testing
