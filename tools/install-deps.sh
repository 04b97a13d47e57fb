#!/bin/sh
# Installs what building and testing strata needs on Debian 12 (bookworm).
# Run as root or through sudo. The list is the single source for the README
# and CI.
set -eu
PKGS="build-essential autoconf automake pkg-config
      liburing-dev libsystemd-dev libprotobuf-c-dev protobuf-c-compiler libopenblas-dev
      libmicrohttpd-dev libjson-c-dev
      systemd python3 python3-protobuf protobuf-compiler python3-jinja2 curl jq"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS

# Node.js and npm, for tests/test-http.sh's run of the official openai client
# (Debian's, unless a node is already there: its own npm comes with it).
command -v node >/dev/null 2>&1 || $SUDO apt-get install -y -qq --no-install-recommends nodejs
command -v npm >/dev/null 2>&1 || $SUDO apt-get install -y -qq --no-install-recommends npm
# The openai package (its version pinned in tests/http/package.json) into
# tests/http/node_modules, which git ignores. Offline this fails, and the
# test says it skips the client; nothing else depends on it.
cd "$(dirname "$0")/../tests/http"
npm install --no-audit --no-fund --no-package-lock --loglevel=error ||
	echo "install-deps: npm could not install the openai package; test-http.sh will skip it" >&2
