# lib.sh: TAP helpers for the shell tests (sourced). Not a framework: count,
# report, skip, a private temporary directory, and the binaries under test.
set -u
TAP_N=0
TAP_FAILED=0
BUILDDIR=${STRATA_BUILDDIR:-.}
SRCDIR=${STRATA_SRCDIR:-.}
STRATA="$BUILDDIR/client/strata"
STRATAD="$BUILDDIR/daemon/stratad"
STRATA_MODEL="$BUILDDIR/tools/strata-model"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-test.XXXXXX")
trap 'tap_cleanup' EXIT

tap_cleanup() {
	for p in $TAP_PIDS; do kill -9 "$p" 2>/dev/null; done
	[ -n "${STRATA_KEEP_TMP:-}" ] || rm -rf "$TMP"
}
TAP_PIDS=

ok() { # ok CONDITION-STATUS DESCRIPTION; returns 0 when the condition held, else 1
	TAP_N=$((TAP_N + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $TAP_N - $2"
	else
		echo "not ok $TAP_N - $2"
		TAP_FAILED=$((TAP_FAILED + 1))
		return 1
	fi
}
check() { # check DESCRIPTION COMMAND...: runs the command, ok if it succeeds
	desc=$1
	shift
	"$@"
	ok $? "$desc"
}
diag() { echo "# $*"; }
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
done_testing() {
	echo "1..$TAP_N"
	[ "$TAP_FAILED" -eq 0 ]
}

# The model the tests serve: stories260K when ../shared is there, else a
# synthetic one made with our own vocabulary. Sets MODEL and MODEL_KIND.
pick_model() {
	if [ -n "${STRATA_SHARED:-}" ] && [ -f "$STRATA_SHARED/models/stories260K.gguf" ]; then
		MODEL="$STRATA_SHARED/models/stories260K.gguf"
		MODEL_KIND=stories260K
	else
		MODEL="$TMP/synth.gguf"
		MODEL_KIND=synthetic
		"$STRATA_MODEL" synth "$MODEL" --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 \
			--n-ff 128 --type f32 --vocab builtin --ctx 512 --seed 5 || exit 1
	fi
	diag "model: $MODEL_KIND"
}

# wait_for COMMAND...: retry for up to 30 s
wait_for() {
	i=0
	while [ $i -lt 300 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# weights_budget MODEL WEIGHTS [ENGINE OPTIONS...]: the options that give the weights
# WEIGHTS bytes under --memory-budget, which also holds the KV cache and compute scratch:
# "--kv-budget K --memory-budget WEIGHTS+K+S", K and S as the engine plans them for
# those options (read from the plan strata-model logs).
weights_budget() {
	wb_model=$1 wb_weights=$2
	shift 2
	wb_ks=$("$STRATA_MODEL" generate "$wb_model" --prompt x -n 1 --temperature 0 --verbose \
		"$@" 2>&1 >/dev/null |
		sed -n 's/.*\[bytes: bound [0-9]*, weights [0-9]*, KV \([0-9]*\), scratch \([0-9]*\)\].*/\1 \2/p')
	[ -n "$wb_ks" ] || { echo "weights_budget: no plan from strata-model" >&2; return 1; }
	set -- $wb_ks
	echo "--kv-budget $1 --memory-budget $((wb_weights + $1 + $2))"
}

# plan_bound MODEL [ENGINE OPTIONS...]: all the engine holds for MODEL with those options
# and no budget (weights, KV cache, scratch): what a draft model takes of a budget
plan_bound() {
	pb_model=$1
	shift
	"$STRATA_MODEL" generate "$pb_model" --prompt x -n 1 --temperature 0 --verbose "$@" 2>&1 \
		>/dev/null | sed -n 's/.*\[bytes: bound \([0-9]*\), .*/\1/p'
}
