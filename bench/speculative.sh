#!/bin/sh
# speculative.sh: what drafts buy while the weights stream, in one run: tokens per pass over
# the weights and tok/s, with and without drafts (strata-bench --draft), each configuration
# run in turn within a repeat so the ratios compare runs minutes apart at most.
#   - stories260K (the trained model in ../shared), streamed under the smallest budget it
#     runs with (every unit read from disk on every pass, O_DIRECT), on two tasks:
#     continuation (a story's first sentence) and rewriting (the prompt holds a story, then
#     its first words again: the output may repeat it), with no drafts, prompt lookup, and
#     the model as its own draft (a draft that always agrees: the upper bound of the
#     mechanism; it costs its size in the budget);
#   - a 7B-shaped Q8_0 model with random weights (synthesized once, 6.0 GB, as compare.sh's)
#     under --budget (default 2G), with no drafts, lookup, and a synthesized draft model
#     (512 embd, 4 layers, Q8_0): acceptance means nothing on random weights, the draft's
#     cost (its passes, its share of the budget) does.
# Greedy throughout (strata-bench), so every configuration generates the same tokens.
# Not run by `make check`.
#
#   bench/speculative.sh [--builddir DIR] [--data-dir DIR] [--shared DIR] [--repeat R]
#                        [--gen-tokens N] [--big-gen-tokens N] [--budget SIZE] [--threads T]
#                        [--no-big]
#   bench/speculative.sh --table DATA_DIR/speculative-DATE   (print a past run's table again)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${STRATA_BUILDDIR:-}
data=${STRATA_BENCH_DATA:-/work/bench-data}
shared=${STRATA_SHARED:-$top/../shared}
repeat=3
gen=150
big_gen=8
budget=2G
threads=2
big=yes
table_only=
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) builddir=$2; shift 2 ;;
	--data-dir) data=$2; shift 2 ;;
	--shared) shared=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--gen-tokens) gen=$2; shift 2 ;;
	--big-gen-tokens) big_gen=$2; shift 2 ;;
	--budget) budget=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--no-big) big=; shift ;;
	--table) table_only=$2; shift 2 ;;
	-h|--help) sed -n '2,21s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "speculative.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
done
die() { echo "speculative.sh: $*" >&2; exit 1; }

# tables DIR: medians over the repeats of DIR/runs.txt, and each draft source against no
# drafts on the same task
tables() {
	awk '
function med(s,    n, a, i, j, t) {
	n = split(s, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
# task draft repeat tok_s tokens_per_pass drafted accepted passes draft_s draft_mib other
{
	k = $1 SUBSEP $2
	if (!(k in seen)) { seen[k] = 1; order[++n] = k }
	toks[k] = toks[k] " " $4; tpp[k] = tpp[k] " " $5; dr[k] += $6; ac[k] += $7
	pa[k] = pa[k] " " $8; ds[k] = ds[k] " " $9; dm[k] = $10; oth[k] = oth[k] " " $11
	runs[k]++
}
END {
	printf "%-12s %-8s %4s %9s %8s %9s %8s %9s %8s %8s %10s %7s\n", "task", "drafts", "runs",
		"tok/s", "x none", "tok/pass", "x none", "accepted", "draft s", "draft MiB",
		"passes", "other"
	for (i = 1; i <= n; i++) {
		split(order[i], kk, SUBSEP)
		base = kk[1] SUBSEP "none"
		t = med(toks[order[i]]); p = med(tpp[order[i]])
		tb = (base in seen) ? med(toks[base]) : 0; pb = (base in seen) ? med(tpp[base]) : 0
		rt = tb > 0 ? sprintf("%.2fx", t / tb) : "-"
		rp = pb > 0 ? sprintf("%.2fx", p / pb) : "-"
		acc = dr[order[i]] ? 100 * ac[order[i]] / dr[order[i]] : 0
		printf "%-12s %-8s %4d %9.3f %8s %9.2f %8s %8.0f%% %8.3f %8.1f %10s %6.0f%%\n", kk[1], kk[2],
			runs[order[i]], t, rt, p, rp, acc, med(ds[order[i]]), dm[order[i]], med(pa[order[i]]),
			100 * med(oth[order[i]])
	}
}' "$1/runs.txt"
	echo
	cat "$1/about.txt"
}
if [ -n "$table_only" ]; then
	tables "$table_only"
	exit 0
fi

. "$top/bench/lib.sh"
find_builddir "$builddir"
data_dir "$data"
stories=$shared/models/stories260K.gguf
[ -f "$stories" ] || die "no $stories (give --shared DIR)"
out=$data/speculative-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
B="$builddir/bench/strata-bench"
M="$builddir/tools/strata-model"

# the smallest budget a model streams with, from the plan's own message
min_budget() {
	"$M" generate "$1" --prompt x -n 1 --memory-budget 4K 2>&1 >/dev/null |
		sed -n 's/.*the minimum is [^(]*(\([0-9]*\) bytes.*/\1/p'
}
s_min=$(min_budget "$stories")
[ -n "$s_min" ] || die "cannot learn stories260K's smallest budget"
s_draft=$("$B" --model "$stories" --draft "$stories" --gen-tokens 1 --json | jget /dev/stdin draft_model_bytes)

# the two tasks' prompts
printf '%s' "Once upon a time, there was a little girl named Lily. She loved to play outside." \
	>"$out/continuation.txt"
story=$("$M" generate "$stories" --prompt "Once upon a time" -n 80 --temperature 0 --ctx-size 512 \
	2>/dev/null)
printf 'Once upon a time%s\n\nOnce upon a time' "$story" >"$out/rewriting.txt"

# run TASK DRAFT-NAME REPEAT STRATA-BENCH-ARGS...: one run, a line in runs.txt
run() {
	r_task=$1 r_name=$2 r_rep=$3
	shift 3
	"$B" --json --threads "$threads" "$@" >"$out/$r_task-$r_name-$r_rep.json" ||
		die "strata-bench failed: $*"
	f=$out/$r_task-$r_name-$r_rep.json
	echo "$r_task $r_name $r_rep $(jget "$f" gen_tok_s) $(jget "$f" tokens_per_pass)" \
		"$(jget "$f" drafted) $(jget "$f" accepted) $(jget "$f" gen_passes_all)" \
		"$(jget "$f" draft_s) $(awk -v b="$(jget "$f" draft_model_bytes)" 'BEGIN { printf "%.1f", b / 1048576 }')" \
		"$(jget "$f" machine_other_fraction)" >>"$out/runs.txt"
	tail -1 "$out/runs.txt" >&2
}

if [ -n "$big" ]; then
	big_model=$data/7b-q8_0.gguf
	synth_once "$big_model" 6030667648 "6.0 GB" --n-embd 4096 --n-layer 32 --n-head 32 \
		--n-head-kv 8 --n-ff 11008 --type q8_0 --vocab builtin
	big_draft=$data/7b-draft-q8_0.gguf
	synth_once "$big_draft" 30000000 "tens of MB" --n-embd 512 --n-layer 4 --n-head 8 \
		--n-head-kv 8 --n-ff 1408 --type q8_0 --vocab builtin --seed 2
fi

{
	echo "stories260K: $stories, budget $s_min bytes (its smallest: every unit streamed);"
	echo "  with itself as draft the budget is $s_min + its $s_draft bytes"
	echo "  continuation prompt: $(cat "$out/continuation.txt")"
	echo "  rewriting prompt: $(tr '\n' ' ' <"$out/rewriting.txt")"
	echo "  $gen tokens measured after 1 warm-up token, greedy, --threads $threads"
	[ -z "$big" ] || echo "7B: $big_model under --memory-budget $budget, draft $big_draft; $big_gen tokens"
	echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "build: $(git -C "$top" log -1 --format='%h %s' 2>/dev/null | cut -c1-80)"
	echo "command: bench/speculative.sh --repeat $repeat --gen-tokens $gen --big-gen-tokens $big_gen --budget $budget --threads $threads$([ -n "$big" ] || echo " --no-big")"
	echo "'other': the share of the machine's CPU time other processes used during the measured generation"
} >"$out/about.txt"

i=1
while [ "$i" -le "$repeat" ]; do
	for task in continuation rewriting; do
		common="--model $stories --prompt-file $out/$task.txt --gen-tokens $gen --memory-budget"
		# shellcheck disable=SC2086 # $common is words on purpose
		run "$task" none "$i" $common "$s_min" --draft none
		# shellcheck disable=SC2086
		run "$task" lookup "$i" $common "$s_min" --draft lookup
		# shellcheck disable=SC2086
		run "$task" self "$i" $common "$((s_min + s_draft))" --draft "$stories"
	done
	if [ -n "$big" ]; then
		common="--model $big_model --prompt-file $out/continuation.txt --gen-tokens $big_gen --memory-budget $budget"
		drop
		# shellcheck disable=SC2086
		run 7B none "$i" $common --draft none
		drop
		# shellcheck disable=SC2086
		run 7B lookup "$i" $common --draft lookup
		drop
		# shellcheck disable=SC2086
		run 7B model "$i" $common --draft "$big_draft"
	fi
	i=$((i + 1))
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/about.txt"
echo "results in $out" >&2
tables "$out"
