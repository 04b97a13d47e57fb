#!/bin/sh
# test-start.sh: stratad before it serves: settings files that are not what
# they should be (a directory, /dev/zero, a FIFO, a huge file, over-long lines,
# NUL bytes, a byte order mark) get an error at once, and SIGTERM/SIGINT end
# the process at any moment of start-up: while the model loads from a slow
# disk (tests/eiofs answering reads late), or while opening a FIFO as model.
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

start_quick null --config /dev/null --model "$TMP/null-model.gguf" --socket "$TMP/null.sock"
[ $RC -eq 1 ] && grep -q "null-model.gguf" "$TMP/null.err"
ok $? "--config /dev/null reads no settings (exit $RC: $(tail -n 1 "$TMP/null.err"))"

# a byte order mark before the first key: skipped, so 'model' is read
printf '\357\273\277model = %s/bom-model.gguf\n' "$TMP" >"$TMP/bom.conf"
start_quick bom --config "$TMP/bom.conf" --socket "$TMP/bom.sock"
[ $RC -eq 1 ] && grep -q "bom-model.gguf" "$TMP/bom.err"
ok $? "a UTF-8 byte order mark is skipped: the first key is the model ($(tail -n 1 "$TMP/bom.err"))"

# ---- signals during start-up ----

# stop_during NAME SIGNAL WHAT: stratad is running (pid $SPID) in start-up:
# SIGNAL must end it within a second, exit 0, socket $SOCK removed
stop_during() {
	name=$1
	sig=$2
	what=$3
	t0=$(now_ms)
	kill -"$sig" "$SPID"
	i=0
	while kill -0 "$SPID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.02; i=$((i + 1)); done
	if kill -0 "$SPID" 2>/dev/null; then
		ok 1 "SIG$sig $what ends stratad within a second (still running after 2 s)"
		kill -KILL "$SPID"
		wait "$SPID"
		return
	fi
	wait "$SPID"
	rc=$?
	ms=$(($(now_ms) - t0))
	[ $ms -lt 1000 ] && [ $rc -eq 0 ] && [ ! -e "$SOCK" ] &&
		grep -q "stopping during start-up" "$TMP/$name.err"
	ok $? "SIG$sig $what ends stratad in $ms ms, exit $rc, socket removed ($(tail -n 1 "$TMP/$name.err"))"
}

# A slow disk: eiofs (FUSE) answers each read of the model 200 ms late, so
# loading takes many seconds. Root and /dev/fuse only.
EIOFS="$BUILDDIR/tests/eiofs"
fuse_reason=
if [ "$(id -u)" -ne 0 ]; then
	fuse_reason="not root (eiofs mounts without libfuse)"
elif [ ! -c /dev/fuse ]; then
	fuse_reason="no /dev/fuse"
fi
if [ -z "$fuse_reason" ]; then
	"$STRATA_MODEL" synth "$TMP/slow.gguf" --n-embd 512 --n-layer 4 --n-head 8 --n-ff 1376 \
		--type f32 --vocab builtin --seed 2 >/dev/null || exit 1
	MNT="$TMP/mnt"
	mkdir -p "$MNT"
	"$EIOFS" --name model.gguf --state "$TMP/eio.state" --delay 200 "$TMP/slow.gguf" "$MNT" \
		2>"$TMP/eiofs.log" &
	EPID=$!
	TAP_PIDS="$EPID"
	while [ ! -s "$TMP/eio.state" ] && kill -0 "$EPID" 2>/dev/null; do sleep 0.05; done
	[ -s "$TMP/eio.state" ] || fuse_reason="eiofs cannot mount here: $(tail -n 1 "$TMP/eiofs.log")"
fi
if [ -z "$fuse_reason" ]; then
	for sig in TERM INT; do
		SOCK="$TMP/slow-$sig.sock"
		"$STRATAD" --config /dev/null --model "$MNT/model.gguf" --socket "$SOCK" --threads 1 \
			2>"$TMP/slow-$sig.err" &
		SPID=$!
		TAP_PIDS="$EPID $SPID"
		# the socket is bound before the model loads; then let it read a while
		wait_for test -S "$SOCK"
		sleep 1
		if ! grep -q "loading" "$TMP/slow-$sig.err" || grep -q "listening" "$TMP/slow-$sig.err"; then
			diag "not loading when signalled: $(cat "$TMP/slow-$sig.err")"
		fi
		stop_during "slow-$sig" "$sig" "while the model loads from a slow disk"
	done
	TAP_PIDS="$EPID"
	kill -TERM "$EPID"
	wait "$EPID"
	TAP_PIDS=
else
	echo "ok $((TAP_N + 1)) # SKIP $fuse_reason"
	echo "ok $((TAP_N + 2)) # SKIP $fuse_reason"
	TAP_N=$((TAP_N + 2))
fi

# A FIFO as the model: the model is opened without blocking and refused when
# it is not a regular file, so this fails at once instead of waiting for a
# writer (611 s before).
mkfifo "$TMP/model.fifo"
SOCK="$TMP/fifo.sock"
"$STRATAD" --config /dev/null --model "$TMP/model.fifo" --socket "$SOCK" 2>"$TMP/fifo-model.err" &
SPID=$!
TAP_PIDS="$SPID"
for _ in 1 2 3 4 5 6 7 8 9 10; do
	kill -0 "$SPID" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$SPID" 2>/dev/null; then
	TAP_N=$((TAP_N + 1))
	echo "not ok $TAP_N - a FIFO as --model is an error within a second (still running)"
	TAP_FAILED=$((TAP_FAILED + 1))
	stop_during fifo-model TERM "while opening a FIFO as the model"
else
	wait "$SPID"
	rc=$?
	[ $rc -eq 1 ] && grep -q "model.fifo" "$TMP/fifo-model.err" && [ ! -e "$SOCK" ]
	ok $? "a FIFO as --model is an error within a second, exit $rc: $(tail -n 1 "$TMP/fifo-model.err")"
fi
TAP_PIDS=

done_testing
