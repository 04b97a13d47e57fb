#!/bin/sh
# test-man.sh: the manual pages: groff -ww finds no roff mistake, the NAME line
# parses for whatis/apropos, and each page documents every option that its
# program's --help lists (and, where --help is complete, nothing else). Not the
# prose: a person reads that.
set -u
BUILDDIR=${STRATA_BUILDDIR:-.}
SRCDIR=${STRATA_SRCDIR:-.}
PAGES="strata.1 strata-http.1 strata-model.1 stratad.conf.5 stratad.8"
# stratad.8 and stratad.conf.5 are made by make (with the configured paths)
# from .in templates: check them as built.
page() { # page NAME: the path of a page
	case $1 in
	stratad.8 | stratad.conf.5) echo "$BUILDDIR/man/$1" ;;
	*) echo "$SRCDIR/man/$1" ;;
	esac
}

N=0
FAILED=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-man.XXXXXX") || exit 1
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

# The page's source with roff's \- turned into plain hyphens.
plain() { sed 's/\\-/-/g' "$(page "$1")"; }
# Long options a program's --help names, one per line.
help_opts() { "$@" --help 2>/dev/null | grep -o -e '--[a-z][a-z0-9-]*' | sort -u; }
# Long options in the tags of a page's .TP/.TQ items (what it documents).
tag_opts() { plain "$1" | awk 'tag { print } { tag = ($0 ~ /^\.T[PQ]/) }' |
	grep -o -e '--[a-z][a-z0-9-]*' | sort -u; }

# covers PAGE PROGRAM [COMMAND]: every option of PROGRAM [COMMAND] --help
# appears in PAGE.
covers() {
	page=$1
	shift
	help_opts "$@" >"$TMP/help"
	what=$(basename "$1")
	shift
	[ $# -eq 0 ] || what="$what $*"
	plain "$page" | grep -o -e '--[a-z][a-z0-9-]*' | sort -u >"$TMP/page"
	comm -23 "$TMP/help" "$TMP/page" >"$TMP/missing"
	[ -s "$TMP/help" ] && [ ! -s "$TMP/missing" ]
	ok $? "$page documents the $(wc -l <"$TMP/help") options of $what --help"
	[ -s "$TMP/missing" ] && diag "missing from $page:" "$(cat "$TMP/missing")"
}
# only_known PAGE PROGRAM...: every option PAGE documents is in PROGRAM --help.
only_known() {
	page=$1
	shift
	help_opts "$@" >"$TMP/help"
	tag_opts "$page" >"$TMP/tags"
	comm -13 "$TMP/help" "$TMP/tags" >"$TMP/extra"
	[ -s "$TMP/tags" ] && [ ! -s "$TMP/extra" ]
	ok $? "$page documents no option that $(basename "$1") --help lacks"
	[ -s "$TMP/extra" ] && diag "not in --help:" "$(cat "$TMP/extra")"
}

# ---- roff ----

if command -v groff >/dev/null 2>&1; then
	# The built stratad.8 and stratad.conf.5 carry this build's directories,
	# which can be long enough (make distcheck's, under its build tree) that
	# groff cannot break or adjust a line: not a roff mistake, so those two
	# are checked without the "break" warnings, and their templates are
	# checked with every warning as Debian installs them.
	for p in $PAGES; do
		case $p in
		stratad.8 | stratad.conf.5) nobreak=-Wbreak ;;
		*) nobreak= ;;
		esac
		groff -man -ww $nobreak -z "$(page "$p")" >"$TMP/groff" 2>&1
		r=$?
		[ $r -eq 0 ] && [ ! -s "$TMP/groff" ]
		ok $? "groff -man -ww ${nobreak:+$nobreak }finds nothing to warn about in $p"
		[ -s "$TMP/groff" ] && diag "$(cat "$TMP/groff")"
	done
	for t in stratad.8 stratad.conf.5; do
		sed -e 's|@sbindir@|/usr/sbin|g' -e 's|@bindir@|/usr/bin|g' \
			-e 's|@sysconfdir@|/etc|g' -e 's|@docdir@|/usr/share/doc/strata|g' \
			-e 's|@systemdsystemunitdir@|/usr/lib/systemd/system|g' \
			-e 's|@sysusersdir@|/usr/lib/sysusers.d|g' \
			-e 's|@tmpfilesdir@|/usr/lib/tmpfiles.d|g' \
			"$SRCDIR/man/$t.in" >"$TMP/$t"
		grep -o '@[a-z]*@' "$TMP/$t" >"$TMP/left"
		groff -man -ww -z "$TMP/$t" >"$TMP/groff" 2>&1
		r=$?
		[ $r -eq 0 ] && [ ! -s "$TMP/groff" ] && [ ! -s "$TMP/left" ]
		ok $? "groff -man -ww finds nothing to warn about in $t with Debian's directories"
		[ -s "$TMP/groff" ] && diag "$(cat "$TMP/groff")"
		[ -s "$TMP/left" ] && diag "not substituted:" "$(cat "$TMP/left")"
	done
else
	skip "groff not found (Debian package groff-base): pages not checked"
fi

if command -v lexgrog >/dev/null 2>&1; then
	for p in $PAGES; do
		name=${p%.*}
		lexgrog "$(page "$p")" >"$TMP/lexgrog" 2>&1
		grep -q "\"$name - " "$TMP/lexgrog"
		ok $? "the NAME line of $p reads as '$name - ...' for whatis"
	done
else
	skip "lexgrog not found (Debian package man-db): NAME lines not checked"
fi

# ---- the options, against the programs ----

STRATAD="$BUILDDIR/daemon/stratad"
STRATA="$BUILDDIR/client/strata"
STRATA_MODEL="$BUILDDIR/tools/strata-model"

if [ -x "$STRATAD" ]; then
	covers stratad.8 "$STRATAD"
	only_known stratad.8 "$STRATAD"
	# Each setting (an option but config, help, version) has its item in stratad.conf(5).
	help_opts "$STRATAD" | sed 's/^--//' | grep -v -x -e config -e help -e version >"$TMP/keys"
	: >"$TMP/nokey"
	while read -r k; do
		plain stratad.conf.5 | grep -q "^\.B[IR]* $k\( \|$\)" || echo "$k" >>"$TMP/nokey"
	done <"$TMP/keys"
	[ -s "$TMP/keys" ] && [ ! -s "$TMP/nokey" ]
	ok $? "stratad.conf.5 has an item for each of the $(wc -l <"$TMP/keys") settings"
	[ -s "$TMP/nokey" ] && diag "no item:" "$(cat "$TMP/nokey")"
else
	skip "$STRATAD is not built: stratad.8 options not checked"
	skip "$STRATAD is not built: stratad.8 options not checked"
	skip "$STRATAD is not built: stratad.conf.5 keys not checked"
fi

if [ -x "$STRATA" ]; then
	covers strata.1 "$STRATA"
	only_known strata.1 "$STRATA"
	# and each command's own --help, which is what its user reads
	for c in generate chat score tokenize detokenize status; do
		covers strata.1 "$STRATA" $c
	done
else
	skip "$STRATA is not built: strata.1 options not checked"
	skip "$STRATA is not built: strata.1 options not checked"
fi

STRATA_HTTP="$BUILDDIR/http/strata-http"
if [ -x "$STRATA_HTTP" ]; then
	covers strata-http.1 "$STRATA_HTTP"
	only_known strata-http.1 "$STRATA_HTTP"
else
	skip "$STRATA_HTTP is not built: strata-http.1 options not checked"
	skip "$STRATA_HTTP is not built: strata-http.1 options not checked"
fi

# strata-model's --help is terse (it leaves out aliases such as --temp and
# synth's --name), so only one direction is checked.
if [ -x "$STRATA_MODEL" ]; then
	covers strata-model.1 "$STRATA_MODEL"
	for c in info tokenize generate synth quantize; do
		"$STRATA_MODEL" --help | grep -q "^ *$c " && grep -q "^\.B[IR]* $c\( \|$\)" "$(page strata-model.1)"
		ok $? "strata-model.1 has an item for the command $c"
	done
else
	skip "$STRATA_MODEL is not built: strata-model.1 options not checked"
fi

echo "1..$N"
[ "$FAILED" -eq 0 ]
