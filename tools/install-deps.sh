#!/bin/sh
# Installs what building and testing strata needs on Debian 12 (bookworm).
# Run as root or through sudo. The list is the single source for the README
# and CI.
set -eu
PKGS="build-essential autoconf automake pkg-config
      liburing-dev libsystemd-dev libprotobuf-c-dev protobuf-c-compiler libopenblas-dev
      systemd python3 python3-protobuf protobuf-compiler python3-jinja2"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS
