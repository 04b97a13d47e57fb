#!/bin/sh
# test-daemon-io.sh: issue #4's failure promise against the real stratad, with the budget
# streaming every layer: a model file truncated on disk after start, and a real EIO from
# the kernel (tests/eiofs, a FUSE filesystem of ours), fail the requests running and
# coming with a clear error naming the file, while stratad keeps serving; once the file is
# whole again the same text comes back. Both --io uring and --io mmap.
. "${STRATA_SRCDIR:-.}/tests/lib.sh"
EIOFS="$BUILDDIR/tests/eiofs"
MNT=

# a FUSE mount must never outlive the test, whatever happened
io_cleanup() {
	for p in $TAP_PIDS; do kill -9 "$p" 2>/dev/null; done
	TAP_PIDS=
	[ -z "$MNT" ] || "$EIOFS" -u "$MNT"
	tap_cleanup
}
trap 'io_cleanup' EXIT
trap 'exit 1' INT TERM HUP

# A layer is 818 KiB: 1800K holds the two streaming buffers and no layer resident.
M="$TMP/m.gguf"
"$STRATA_MODEL" synth "$M" --n-embd 256 --n-layer 6 --n-head 8 --n-head-kv 4 --n-ff 768 \
	--type q8_0 --vocab builtin --ctx 2048 --seed 11 || exit 1
cp "$M" "$TMP/orig.gguf"
SIZE=$(stat -c %s "$M")
INODE=$(stat -c %i "$M")
PROMPT="Once upon a time"

skip() { # skip N REASON
	i=0
	while [ $i -lt "$1" ]; do
		TAP_N=$((TAP_N + 1))
		echo "ok $TAP_N # SKIP $2"
		i=$((i + 1))
	done
}

start() { # start MODEL IO NAME: stratad on MODEL streaming every layer; sets DPID SOCK DLOG
	SOCK="$TMP/$3.sock"
	DLOG="$TMP/$3.log"
	# 1800K for weights; the budget holds the KV cache and scratch besides
	"$STRATAD" --model "$1" --socket "$SOCK" \
		$(weights_budget "$1" 1843200 --ctx-size 1024 --parallel 2 --threads 2) \
		--io "$2" --ctx-size 1024 --parallel 2 --threads 2 --config /dev/null \
		--log-level info 2>"$DLOG" &
	DPID=$!
	TAP_PIDS="$TAP_PIDS $DPID"
	# not `status`: the first status must come after the failures begin (see below)
	wait_for grep -q "listening on" "$DLOG" && grep -q "streamed: 6 units" "$DLOG"
	ok $? "$3: stratad serves $(basename "$1") with every layer streamed (--io $2)"
}

stop() { # stop NAME: SIGTERM; stratad must still be there and exit 0
	kill -TERM "$DPID" 2>/dev/null
	wait "$DPID"
	ok $? "$1: stratad was still running and exits 0 on SIGTERM"
	TAP_PIDS=$(echo "$TAP_PIDS" | sed "s/ $DPID\$//; s/ $DPID / /")
}

gen() { # gen OUT [N]: greedy generation; exit code of strata
	"$STRATA" --socket "$SOCK" generate -n "${2:-16}" --temperature 0 "$PROMPT" >"$1" 2>"$1.err"
}

# failed OUT.err WHAT...: the client said IO_ERROR with each WHAT in its message
failed_with() {
	f=$1
	shift
	grep -q "generation failed: IO_ERROR: " "$f" || return 1
	for w in "$@"; do grep -q -- "$w" "$f" || return 1; done
}

# ---- 1. the file truncated under the running daemon, then put back in place ----

for io in uring mmap; do
	start "$M" "$io" "cut-$io"
	gen "$TMP/ref-$io.txt"
	ok $? "cut-$io: generate before the cut"
	[ -s "$TMP/ref-$io.txt" ] && { [ "$io" = uring ] || cmp -s "$TMP/ref-$io.txt" "$TMP/ref-uring.txt"; }
	ok $? "cut-$io: ... gives text ($(wc -c <"$TMP/ref-$io.txt") bytes; the same in both io modes)"

	# two long requests running when the file is cut: both end, with the error
	timeout 120 "$STRATA" --socket "$SOCK" generate -n 1000 --ignore-eos --temperature 0 "$PROMPT" \
		>"$TMP/l1.txt" 2>"$TMP/l1.err" &
	P1=$!
	timeout 120 "$STRATA" --socket "$SOCK" generate -n 1000 --ignore-eos --temperature 0 "$PROMPT" \
		>"$TMP/l2.txt" 2>"$TMP/l2.err" &
	P2=$!
	wait_for test -s "$TMP/l1.txt" -a -s "$TMP/l2.txt"
	truncate -s $((SIZE / 2)) "$M"
	wait "$P1"
	e1=$?
	wait "$P2"
	e2=$?
	[ $e1 -eq 5 ] && [ $e2 -eq 5 ] && failed_with "$TMP/l1.err" m.gguf && failed_with "$TMP/l2.err" m.gguf
	ok $? "cut-$io: two requests running at the cut both end with IO_ERROR naming the file (exit $e1 $e2)"
	[ $e1 -eq 5 ] || diag "$(cat "$TMP/l1.err")"

	gen "$TMP/cut-$io.txt"
	e=$?
	[ $e -eq 5 ] && failed_with "$TMP/cut-$io.txt.err" m.gguf truncated
	ok $? "cut-$io: a new request fails, exit 5: $(cat "$TMP/cut-$io.txt.err")"
	grep -q "<3>request .* failed: weights: .*m.gguf" "$DLOG"
	ok $? "cut-$io: the daemon log says which request failed and why"
	kill -0 "$DPID" 2>/dev/null && "$STRATA" --socket "$SOCK" status --json >"$TMP/st-$io.json"
	ok $? "cut-$io: stratad still answers status"
	want_mode=stream
	[ "$io" = mmap ] && want_mode=mmap
	grep -q '"layers_resident": *0[^0-9]' "$TMP/st-$io.json" &&
		grep -q "\"io_mode\": *\"$want_mode\"" "$TMP/st-$io.json" &&
		grep -q '"generated_tokens_total": *"[1-9]' "$TMP/st-$io.json"
	ok $? "cut-$io: status says no layer is resident, io mode $want_mode, and counts the tokens"

	dd if="$TMP/orig.gguf" of="$M" conv=notrunc status=none
	[ "$(stat -c %i:%s "$M")" = "$INODE:$SIZE" ]
	ok $? "cut-$io: the bytes are back in place (same inode, same size)"
	gen "$TMP/back-$io.txt"
	ok $? "cut-$io: generate after the repair"
	cmp -s "$TMP/back-$io.txt" "$TMP/ref-$io.txt"
	ok $? "cut-$io: ... gives the same text as before the cut"
	stop "cut-$io"
done

# ---- 1b. the file rewritten in place: nothing read before the change is used after it ----
# (a tester overwrote the model with other bytes while stratad streamed it, then put it
# back: the first request after the repair must give the right text, not read-ahead from
# before; a different header is a different model, refused until the file is back)

for io in uring mmap; do
	start "$M" "$io" "rw-$io"
	gen "$TMP/rw0-$io.txt" && cmp -s "$TMP/rw0-$io.txt" "$TMP/ref-uring.txt"
	ok $? "rw-$io: generate before the rewrite: the reference text"
	# the second half (the last layers' weights) overwritten, the header intact
	head -c $((SIZE - SIZE / 2)) /dev/urandom |
		dd of="$M" bs=4096 seek=$((SIZE / 2)) oflag=seek_bytes conv=notrunc status=none
	gen "$TMP/rw1-$io.txt"
	kill -0 "$DPID" 2>/dev/null && grep -q "<5>weights: .*m.gguf changed on disk" "$DLOG"
	ok $? "rw-$io: other weights in place: stratad runs on them and says the file changed"
	dd if="$TMP/orig.gguf" of="$M" conv=notrunc status=none
	gen "$TMP/rw2-$io.txt" && cmp -s "$TMP/rw2-$io.txt" "$TMP/ref-uring.txt"
	ok $? "rw-$io: the first request after the repair gives the reference text again"
	# the whole file, header included: another file in its place
	head -c "$SIZE" /dev/urandom | dd of="$M" bs=4096 conv=notrunc status=none
	gen "$TMP/rw3-$io.txt"
	e=$?
	[ $e -ne 0 ] && grep -q "m.gguf was replaced by a different file" "$TMP/rw3-$io.txt.err"
	ok $? "rw-$io: a different header: requests fail saying so (exit $e: $(cat "$TMP/rw3-$io.txt.err"))"
	dd if="$TMP/orig.gguf" of="$M" conv=notrunc status=none
	gen "$TMP/rw4-$io.txt" && cmp -s "$TMP/rw4-$io.txt" "$TMP/ref-uring.txt"
	ok $? "rw-$io: the file back: the reference text again"
	stop "rw-$io"
done

# ---- 1c. a FIFO as the model: refused at once (it used to block open() for minutes) ----

mkfifo "$TMP/fifo.gguf"
timeout 20 "$STRATAD" --model "$TMP/fifo.gguf" --socket "$TMP/fifo.sock" --config /dev/null \
	2>"$TMP/fifo.err"
e=$?
[ $e -eq 1 ] && grep -q "fifo.gguf is not a regular file (a FIFO)" "$TMP/fifo.err"
ok $? "a FIFO as the model: stratad exits 1 at once (exit $e: $(tail -n 1 "$TMP/fifo.err"))"

# ---- 2. a real read error: EIO from the kernel, through FUSE ----

fuse_reason=
if [ "$(id -u)" -ne 0 ]; then
	fuse_reason="not root (mounting a FUSE filesystem without libfuse needs root)"
elif [ ! -c /dev/fuse ]; then
	fuse_reason="no /dev/fuse"
fi

# mount OPTIONS...: eiofs serving orig.gguf as $MNT/model.gguf; sets EPID, or fuse_reason
mount_eiofs() {
	MNT="$TMP/mnt"
	fuse_rc=
	mkdir -p "$MNT"
	rm -f "$TMP/eio.state"
	"$EIOFS" --name model.gguf --state "$TMP/eio.state" "$@" "$TMP/orig.gguf" "$MNT" \
		2>"$TMP/eiofs.log" &
	EPID=$!
	TAP_PIDS="$TAP_PIDS $EPID"
	while [ ! -s "$TMP/eio.state" ] && kill -0 "$EPID" 2>/dev/null; do sleep 0.05; done
	if [ ! -s "$TMP/eio.state" ]; then
		wait "$EPID"
		fuse_rc=$?
		fuse_reason="eiofs cannot mount here: $(tail -1 "$TMP/eiofs.log")"
		MNT=
	fi
}
# fuse_unavailable N: account for the N tests that needed the mount: skipped when FUSE
# is not available here (eiofs exit 77), one failure and the rest skipped otherwise
fuse_unavailable() {
	n=$1
	if [ "${fuse_rc:-77}" != 77 ]; then
		ok 1 "eiofs mounts ($fuse_reason)"
		n=$((n - 1))
	fi
	skip "$n" "$fuse_reason"
}
unmount_eiofs() {
	kill -TERM "$EPID"
	wait "$EPID"
	e=$?
	grep -q " $MNT " /proc/mounts && e=mounted
	[ "$e" = 0 ]
	ok $? "eiofs unmounts and exits 0 ($(tail -1 "$TMP/eiofs.log"))"
	TAP_PIDS=$(echo "$TAP_PIDS" | sed "s/ $EPID\$//; s/ $EPID / /")
	MNT=
}
switch() { # switch on|off: turn failures on or off and wait until eiofs says so
	[ "$1" = on ] && kill -USR1 "$EPID" || kill -USR2 "$EPID"
	wait_for grep -qx "$1" "$TMP/eio.state"
}

# Reads of the second half of the file fail (layers 3-5: the embeddings and the first
# layers stay readable, so the error comes from streaming).
[ -n "$fuse_reason" ] || mount_eiofs --range $((SIZE / 2)):$SIZE
if [ -n "$fuse_reason" ]; then
	fuse_unavailable 29
else
	for io in uring mmap; do
		start "$MNT/model.gguf" "$io" "eio-$io"
		gen "$TMP/fuse-$io.txt"
		ok $? "eio-$io: generate through FUSE"
		cmp -s "$TMP/fuse-$io.txt" "$TMP/ref-uring.txt"
		ok $? "eio-$io: ... gives the same text as from the plain file"

		switch on
		n0=$(grep -c -- "-> EIO" "$TMP/eiofs.log")
		gen "$TMP/eio-$io.txt"
		e=$?
		[ $e -eq 5 ] && failed_with "$TMP/eio-$io.txt.err" model.gguf "Input/output error"
		ok $? "eio-$io: with reads failing, the request fails, exit 5: $(cat "$TMP/eio-$io.txt.err")"
		[ "$(grep -c -- "-> EIO" "$TMP/eiofs.log")" -gt "$n0" ]
		ok $? "eio-$io: ... and the filesystem did answer EIO"
		kill -0 "$DPID" 2>/dev/null && "$STRATA" --socket "$SOCK" status >/dev/null
		ok $? "eio-$io: stratad still answers status"

		switch off
		gen "$TMP/eio-back-$io.txt"
		ok $? "eio-$io: reads work again: generate"
		cmp -s "$TMP/eio-back-$io.txt" "$TMP/ref-uring.txt"
		ok $? "eio-$io: ... gives the same text as before"
		stop "eio-$io"
	done
	unmount_eiofs

	# The whole file failing. Page cache (the default): the file's metadata pages were
	# dropped after loading, so status must not touch the model's mapping (it was SIGBUS
	# when status was the first to touch it after the failures began).
	# FOPEN_DIRECT_IO: no page cache hides anything, so the embedding row read (pread)
	# fails first, with its own message.
	for mode in cached direct; do
		if [ $mode = cached ]; then mount_eiofs; else mount_eiofs --direct-io; fi
		if [ -z "$MNT" ]; then
			fuse_unavailable 5
			continue
		fi
		start "$MNT/model.gguf" uring "eio-all-$mode"
		switch on
		gen "$TMP/all-$mode.txt"
		[ $? -eq 5 ] && failed_with "$TMP/all-$mode.txt.err" model.gguf "Input/output error"
		ok $? "eio-all-$mode: every read failing: exit 5: $(cat "$TMP/all-$mode.txt.err")"
		"$STRATA" --socket "$SOCK" status >/dev/null
		ok $? "eio-all-$mode: status still works (it reads nothing from the file)"
		stop "eio-all-$mode"
		unmount_eiofs
	done
fi
done_testing
