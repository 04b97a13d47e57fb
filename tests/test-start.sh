#!/bin/sh
# test-start.sh: stratad before it serves: settings files that are not what
# they should be (a directory, /dev/zero, a FIFO, a huge file, over-long lines,
# NUL bytes, a byte order mark) get an error at once, and SIGTERM/SIGINT end
# the process at any moment of start-up, a slow model load included.
. "${STRATA_SRCDIR:-.}/tests/lib.sh"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# start_quick NAME ARGS...: run stratad (killed after 10 s if it hangs);
# sets RC (its exit status) and MS (how long it ran); stderr in $TMP/NAME.err
start_quick() {
	name=$1
	shift
	t0=$(now_ms)
	timeout -s KILL 10 "$STRATAD" "$@" 2>"$TMP/$name.err"
	RC=$?
	MS=$(($(now_ms) - t0))
}

# ---- settings files ----

mkdir "$TMP/conf.d"
start_quick dir --config "$TMP/conf.d" --model "$TMP/none.gguf"
[ $RC -eq 2 ] && grep -q "conf.d is a directory" "$TMP/dir.err"
ok $? "a directory as --config: exit 2, '$(cat "$TMP/dir.err")'"

start_quick zero --config /dev/zero --model "$TMP/none.gguf"
[ $RC -eq 2 ] && [ $MS -lt 1000 ] && grep -q "/dev/zero is a character device" "$TMP/zero.err"
ok $? "--config /dev/zero: exit 2 in $MS ms, '$(cat "$TMP/zero.err")'"

mkfifo "$TMP/fifo.conf"
start_quick fifo --config "$TMP/fifo.conf" --model "$TMP/none.gguf"
[ $RC -eq 2 ] && [ $MS -lt 1000 ] && grep -q "fifo.conf is a FIFO" "$TMP/fifo.err"
ok $? "a FIFO as --config (nobody writing): exit 2 in $MS ms, '$(cat "$TMP/fifo.err")'"

head -c 1100000 /dev/zero | tr '\0' '#' >"$TMP/big.conf"
start_quick big --config "$TMP/big.conf" --model "$TMP/none.gguf"
[ $RC -eq 2 ] && grep -q "1 MiB" "$TMP/big.err"
ok $? "a settings file over 1 MiB: exit 2, '$(cat "$TMP/big.err")'"

# a long comment whose tail, cut at 8191 bytes, would read as a setting
{ printf '# '; head -c 8189 /dev/zero | tr '\0' 'x'; printf 'ctx-size = 7\n'; } >"$TMP/long.conf"
start_quick long --config "$TMP/long.conf" --model "$TMP/none.gguf"
[ $RC -eq 2 ] && grep -q "long.conf:1: a line of 8203 bytes" "$TMP/long.err"
ok $? "a line over 8191 bytes is refused, not split: exit 2, '$(cat "$TMP/long.err")'"

printf 'ctx-size = 64\nmodel = %s/a\000b.gguf\n' "$TMP" >"$TMP/nul.conf"
start_quick nul --config "$TMP/nul.conf"
[ $RC -eq 2 ] && grep -q "nul.conf:2: a NUL byte" "$TMP/nul.err"
ok $? "a NUL in a value is refused, not a cut value: exit 2, '$(cat "$TMP/nul.err")'"

# a byte order mark before the first key: skipped, so 'model' is read
printf '\357\273\277model = %s/bom-model.gguf\n' "$TMP" >"$TMP/bom.conf"
start_quick bom --config "$TMP/bom.conf" --socket "$TMP/bom.sock"
[ $RC -eq 1 ] && grep -q "bom-model.gguf" "$TMP/bom.err"
ok $? "a UTF-8 byte order mark is skipped: the first key is the model ($(tail -n 1 "$TMP/bom.err"))"

done_testing
