#!/bin/sh
# test-units.sh: the systemd units as built (packaging/systemd/) under
# `systemd-analyze verify` and `security`, their agreement with stratad (socket
# path, stop timeout, the shipped settings file), and the sysusers.d and
# tmpfiles.d entries applied to a scratch root. Not the daemon's behaviour
# under systemd (socket activation, NOTIFY_SOCKET): the daemon tests do that.
set -u
BUILDDIR=${STRATA_BUILDDIR:-.}
SRCDIR=${STRATA_SRCDIR:-.}
STRATAD="$BUILDDIR/daemon/stratad"
SERVICE="$BUILDDIR/packaging/systemd/stratad.service"
SOCKET="$BUILDDIR/packaging/systemd/stratad.socket"
EXAMPLE="$SRCDIR/packaging/stratad.conf"
# The exposure score systemd-analyze security must stay under ("OK" is < 3.0
# for a daemon; ours is about 0.3).
MAX_EXPOSURE=3.0

N=0
FAILED=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-units.XXXXXX") || exit 1
trap '[ -n "${STRATA_KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT

ok() { # ok STATUS DESCRIPTION
	N=$((N + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $N - $2"
	else
		echo "not ok $N - $2"
		FAILED=$((FAILED + 1))
	fi
}
skip() { N=$((N + 1)); echo "ok $N # SKIP $*"; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
# key FILE KEY: the value of the last KEY= line of a unit file
key() { sed -n "s/^$2=//p" "$1" | tail -n 1; }
# usec SPAN: a systemd time span in microseconds
usec() { systemd-analyze timespan "$1" 2>/dev/null | sed -n 's/^ *\(μs\|us\): *//p'; }

# ---- the generated units ----

for f in "$SERVICE" "$SOCKET"; do
	[ -f "$f" ] || { echo "Bail out! $f is missing: run make first"; exit 1; }
done
! grep -n '@[a-z_]*@' "$SERVICE" "$SOCKET" >"$TMP/left" 2>&1
ok $? "make substituted every @variable@ in the units"
[ -s "$TMP/left" ] && diag "$(cat "$TMP/left")"

exec_start=$(key "$SERVICE" ExecStart)
bin=${exec_start%% *}
case "$exec_start" in
/*/stratad" --config /"*/strata/stratad.conf) r=0 ;;
*) r=1 ;;
esac
ok $r "ExecStart runs an absolute .../stratad with --config .../strata/stratad.conf ($exec_start)"

# The daemon binds $RUNTIME_DIRECTORY/strata.sock when not activated: the
# socket unit must listen on the same path, /run/<RuntimeDirectory>/strata.sock.
rt=$(key "$SERVICE" RuntimeDirectory)
listen=$(key "$SOCKET" ListenStream)
[ -n "$rt" ] && [ "$listen" = "/run/$rt/strata.sock" ]
ok $? "ListenStream= ($listen) is strata.sock in RuntimeDirectory= ($rt)"

# ---- systemd-analyze ----

if ! command -v systemd-analyze >/dev/null 2>&1; then
	skip "systemd-analyze not found (Debian package systemd): units not verified"
	skip "systemd-analyze not found: no security score"
	skip "systemd-analyze not found: TimeoutStopSec= not checked"
else
	# verify refuses a unit whose ExecStart binary is missing, and looks up the
	# Documentation= man pages: give it the built stratad and our own pages.
	mkdir -p "$TMP/units" "$TMP/man/man1" "$TMP/man/man5" "$TMP/man/man8"
	for p in "$SRCDIR"/man/*.[158] "$BUILDDIR"/man/*.[158]; do
		[ -f "$p" ] && ln -sf "$p" "$TMP/man/man${p##*.}/"
	done
	if [ -x "$STRATAD" ]; then
		abs=$(cd "$(dirname "$STRATAD")" && pwd)/stratad
		sed "s|^ExecStart=$bin|ExecStart=$abs|" "$SERVICE" >"$TMP/units/stratad.service"
		cp "$SOCKET" "$TMP/units/stratad.socket"
		(cd "$TMP/units" && MANPATH="$TMP/man" systemd-analyze verify \
			"$TMP/units/stratad.service" "$TMP/units/stratad.socket") >"$TMP/verify" 2>&1
		r=$?
		# verify exits 0 on mere warnings (unknown keys, bad values): any
		# message about our units is a failure. Others are host noise.
		grep 'stratad' "$TMP/verify" >"$TMP/ours"
		[ $r -eq 0 ] && [ ! -s "$TMP/ours" ]
		ok $? "systemd-analyze verify accepts stratad.service and stratad.socket"
		[ -s "$TMP/verify" ] && diag "$(cat "$TMP/verify")"
	else
		skip "$STRATAD is not built: systemd-analyze verify needs the ExecStart binary"
	fi

	if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
		(cd "$TMP" && systemd-analyze security --offline=yes "$SERVICE") >"$TMP/security" 2>&1
		score=$(sed -n 's/.*Overall exposure level for stratad.service: \([0-9.]*\).*/\1/p' "$TMP/security")
		diag "systemd-analyze security: exposure ${score:-?} (must stay below $MAX_EXPOSURE)"
		grep '✗' "$TMP/security" | sed 's/  */ /g' >"$TMP/exposed"
		[ -s "$TMP/exposed" ] && diag "still exposed:" "$(cat "$TMP/exposed")"
		[ -n "$score" ] && awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s < m) }'
		ok $? "systemd-analyze security: exposure ${score:-?} < $MAX_EXPOSURE"
		[ -n "$score" ] || diag "$(cat "$TMP/security")"
	else
		skip "this systemd-analyze has no security --offline (systemd < 250)"
	fi

	# SIGTERM: running requests get --shutdown-timeout s, slow readers 5 s
	# more; systemd must not kill stratad before that.
	stop=$(usec "$(key "$SERVICE" TimeoutStopSec)")
	if [ -x "$STRATAD" ]; then
		grace=$("$STRATAD" --help | sed -n 's/.*--shutdown-timeout.*(default \([0-9]*\)).*/\1/p')
		[ -n "$stop" ] && [ -n "$grace" ] && [ "$stop" -gt $(((grace + 5) * 1000000)) ]
		ok $? "TimeoutStopSec= (${stop:-?} us) > stratad's shutdown-timeout (${grace:-?} s) + 5 s"
	else
		skip "$STRATAD is not built: shutdown-timeout default unknown"
	fi
fi
watchdog=$(key "$SERVICE" WatchdogSec)
[ "$(key "$SERVICE" Type)" = notify ] && [ "$(key "$SERVICE" NotifyAccess)" = main ] && [ -n "$watchdog" ]
ok $? "Type=notify, NotifyAccess=main and a WatchdogSec= ($watchdog)"

# ---- stratad against the units and the shipped settings file ----

if [ ! -x "$STRATAD" ]; then
	skip "$STRATAD is not built: default socket not checked"
	skip "$STRATAD is not built: settings file not checked"
	skip "$STRATAD is not built: settings file not checked"
	skip "$STRATAD is not built: settings file not checked"
else
	# Under systemd the default socket is $RUNTIME_DIRECTORY/strata.sock. A
	# directory that does not exist makes the bind fail with the path in the
	# message, before any model is read.
	RUNTIME_DIRECTORY="$TMP/no-such-dir" "$STRATAD" --config /dev/null \
		--model "$TMP/missing.gguf" 2>"$TMP/rt.err"
	r=$?
	[ $r -eq 1 ] && grep -q "$TMP/no-such-dir/strata.sock" "$TMP/rt.err"
	ok $? "stratad's default socket under systemd is \$RUNTIME_DIRECTORY/strata.sock (exit $r)"
	[ $r -eq 1 ] || diag "$(cat "$TMP/rt.err")"

	# As shipped, every key is commented out: the file sets nothing, so the
	# daemon still asks for a model (exit 2).
	"$STRATAD" --config "$EXAMPLE" --socket "$TMP/a.sock" 2>"$TMP/ex.err"
	r=$?
	[ $r -eq 2 ] && grep -q 'no model' "$TMP/ex.err"
	ok $? "the shipped stratad.conf sets nothing (exit $r: $(head -n 1 "$TMP/ex.err"))"

	# Every key uncommented: each value must parse (a bad one exits 2 naming
	# the line); then only the missing model stops the daemon (exit 1).
	sed 's/^#\([a-z][a-z-]* = \)/\1/' "$EXAMPLE" >"$TMP/all.conf"
	"$STRATAD" --config "$TMP/all.conf" --socket "$TMP/b.sock" --model "$TMP/missing.gguf" \
		2>"$TMP/all.err"
	r=$?
	[ $r -eq 1 ] && grep -q 'missing.gguf' "$TMP/all.err"
	ok $? "every value in stratad.conf is accepted by stratad (exit $r)"
	[ $r -eq 1 ] || diag "$(cat "$TMP/all.err")"

	# One settings path everywhere: the one built into stratad (its --help
	# names it), the unit's --config and the manual pages as built.
	builtin=$("$STRATAD" --help | sed -n 's/.*--config FILE .*(default \([^ ]*\) if it exists).*/\1/p')
	unitconf=${exec_start##*--config }
	[ -n "$builtin" ] && [ "$builtin" = "$unitconf" ] &&
		grep -q "^\.I $builtin\$" "$BUILDDIR/man/stratad.conf.5" &&
		grep -q "^\.I $builtin\$" "$BUILDDIR/man/stratad.8"
	ok $? "stratad's default settings file ($builtin) is the unit's --config ($unitconf) and the manual's"

	# ... and every option of stratad --help is in it (config, help and
	# version are not settings).
	"$STRATAD" --help | sed -n 's/^ *--\([a-z][a-z-]*\).*/\1/p' |
		grep -v -x -e config -e help -e version | sort -u >"$TMP/opts"
	sed -n 's/^\([a-z][a-z-]*\) = .*/\1/p' "$TMP/all.conf" | sort -u >"$TMP/keys"
	comm -3 "$TMP/opts" "$TMP/keys" >"$TMP/diff"
	[ -s "$TMP/opts" ] && [ ! -s "$TMP/diff" ]
	ok $? "stratad.conf has a line for each of stratad's $(wc -l <"$TMP/opts") settings"
	[ -s "$TMP/diff" ] && diag "only in --help (left) or only in the file (right):" "$(cat "$TMP/diff")"
fi

# ---- strata-http's units ----

HTTPD="$BUILDDIR/http/strata-http"
HSERVICE="$BUILDDIR/packaging/systemd/strata-http.service"
HSOCKET="$SRCDIR/packaging/systemd/strata-http.socket"
if [ ! -f "$HSERVICE" ]; then
	echo "Bail out! $HSERVICE is missing: run make first"
	exit 1
fi
! grep -n '@[a-z_]*@' "$HSERVICE" >"$TMP/left" 2>&1
ok $? "make substituted every @variable@ in strata-http.service"
hexec=$(key "$HSERVICE" ExecStart)
case "$hexec" in
/*/strata-http" --socket $(key "$SOCKET" ListenStream)") r=0 ;;
*) r=1 ;;
esac
ok $r "strata-http.service runs .../strata-http on stratad.socket's path ($hexec)"
[ "$(key "$HSERVICE" Type)" = notify ] && [ "$(key "$HSERVICE" SupplementaryGroups)" = "$(key "$SOCKET" SocketGroup)" ]
ok $? "strata-http.service: Type=notify, in stratad's socket group ($(key "$HSERVICE" SupplementaryGroups))"
if [ -x "$HTTPD" ]; then
	default=$("$HTTPD" --help | sed -n 's/.*(default \([0-9.]*:[0-9]*\);.*/\1/p')
	[ -n "$default" ] && [ "$(key "$HSOCKET" ListenStream)" = "$default" ]
	ok $? "strata-http.socket listens where strata-http would by itself ($default)"
else
	skip "$HTTPD is not built: its default address not checked"
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
	skip "systemd-analyze not found: strata-http's units not verified"
	skip "systemd-analyze not found: no security score for strata-http"
else
	if [ -x "$HTTPD" ]; then
		habs=$(cd "$(dirname "$HTTPD")" && pwd)/strata-http
		hbin=${hexec%% *}
		sed "s|^ExecStart=$hbin|ExecStart=$habs|" "$HSERVICE" >"$TMP/units/strata-http.service"
		cp "$HSOCKET" "$TMP/units/strata-http.socket"
		(cd "$TMP/units" && MANPATH="$TMP/man" systemd-analyze verify \
			"$TMP/units/strata-http.service" "$TMP/units/strata-http.socket") >"$TMP/hverify" 2>&1
		r=$?
		grep 'strata-http' "$TMP/hverify" >"$TMP/hours"
		[ $r -eq 0 ] && [ ! -s "$TMP/hours" ]
		ok $? "systemd-analyze verify accepts strata-http.service and strata-http.socket"
		[ -s "$TMP/hverify" ] && diag "$(cat "$TMP/hverify")"
	else
		skip "$HTTPD is not built: systemd-analyze verify needs the ExecStart binary"
	fi
	if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
		(cd "$TMP" && systemd-analyze security --offline=yes "$HSERVICE") >"$TMP/hsecurity" 2>&1
		score=$(sed -n 's/.*Overall exposure level for strata-http.service: \([0-9.]*\).*/\1/p' "$TMP/hsecurity")
		diag "systemd-analyze security strata-http: exposure ${score:-?} (must stay below $MAX_EXPOSURE)"
		[ -n "$score" ] && awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s < m) }'
		ok $? "systemd-analyze security: strata-http exposure ${score:-?} < $MAX_EXPOSURE"
		[ -n "$score" ] || diag "$(cat "$TMP/hsecurity")"
	else
		skip "this systemd-analyze has no security --offline (systemd < 250)"
	fi
fi

# ---- where make install puts the units ----

# Under the prefix, unless configure was told otherwise: a `make install` to
# /usr/local must not write into /lib/systemd/system.
if [ -x "$BUILDDIR/config.status" ] && [ -f "$BUILDDIR/Makefile" ]; then
	prefix=$(sed -n 's/^prefix = //p' "$BUILDDIR/Makefile")
	unitdir=$(sed -n 's/^systemdsystemunitdir = //p' "$BUILDDIR/Makefile")
	if "$BUILDDIR/config.status" --config | grep -q -- --with-systemdsystemunitdir; then
		skip "configure was given --with-systemdsystemunitdir ($unitdir)"
	else
		case "$unitdir" in
		"$prefix"/* | '${prefix}'/*) r=0 ;;
		*) r=1 ;;
		esac
		ok $r "the units install under the prefix $prefix ($unitdir)"
	fi
else
	skip "no config.status in $BUILDDIR"
fi

# ---- sysusers.d and tmpfiles.d, applied to a scratch root ----

if [ "$(id -u)" -ne 0 ]; then
	skip "not root: systemd-sysusers/tmpfiles --root need to chown"
elif ! command -v systemd-sysusers >/dev/null 2>&1 || ! command -v systemd-tmpfiles >/dev/null 2>&1; then
	skip "systemd-sysusers or systemd-tmpfiles not found"
else
	root="$TMP/root"
	mkdir -p "$root/etc"
	systemd-sysusers --root="$root" "$SRCDIR/packaging/sysusers/strata.conf" >"$TMP/sysusers" 2>&1 &&
		systemd-tmpfiles --root="$root" --create "$SRCDIR/packaging/tmpfiles/strata.conf" \
			>>"$TMP/sysusers" 2>&1
	r=$?
	gid=$(sed -n 's/^strata:[^:]*:\([0-9]*\):.*/\1/p' "$root/etc/group")
	user=$(grep '^strata:' "$root/etc/passwd")
	st=$(stat -c '%a %u %g' "$root/var/lib/strata" 2>/dev/null)
	[ $r -eq 0 ] && [ -n "$gid" ] && [ -n "$user" ] && [ "$st" = "750 0 $gid" ]
	ok $? "sysusers.d makes user and group strata; tmpfiles.d makes /var/lib/strata root:strata 0750 ($st)"
	[ $r -eq 0 ] || diag "$(cat "$TMP/sysusers")"
fi

echo "1..$N"
[ "$FAILED" -eq 0 ]
