#!/bin/sh
# Runs a Python test with the interpreter configure found (one that has
# google.protobuf); skips, TAP-style, when there is none.
if [ -z "$PYTHON3" ]; then
	echo "1..0 # SKIP no python3 with google.protobuf (install python3-protobuf)"
	exit 0
fi
exec "$PYTHON3" "$@"
