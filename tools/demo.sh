#!/bin/sh
# The README's quick-start job: generate text with the engine, offline.
# Uses the trained stories260K model from ../shared when it is there; else
# synthesizes a small random-weight model (its text is gibberish, but every
# part of the engine runs). Run from the build directory or the source tree.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${STRATA_MODEL:-}
for b in "$bin" ./tools/strata-model "$top/tools/strata-model" "$top/build/tools/strata-model"; do
	[ -n "$b" ] && [ -x "$b" ] && { bin=$b; break; }
done
[ -x "$bin" ] || { echo "demo: build first (strata-model not found)" >&2; exit 1; }
model="$top/../shared/models/stories260K.gguf"
if [ ! -f "$model" ]; then
	model="${TMPDIR:-/tmp}/strata-demo.gguf"
	echo "demo: ../shared is absent; synthesizing a random model at $model" >&2
	"$bin" synth "$model" --n-embd 256 --n-layer 4 --n-head 8 --n-head-kv 4 --n-ff 768 \
		--type q8_0 --vocab builtin --ctx 512
fi
"$bin" info "$model" | head -12
echo
exec "$bin" generate "$model" --prompt "Once upon a time" -n 100 --temperature 0 --echo --verbose
