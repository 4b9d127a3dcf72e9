#!/usr/bin/env bash
# What control-plane/tests/host_install.rs and the install-script unit tests
# need: shellcheck (the rendered install.sh is checked with it), curl (the
# test fetches and runs the script as an operator would), OpenSSL 3 (the
# script verifies the package signature), dpkg-deb (builds the stand-in
# package and extracts it in --root mode). Idempotent; installs only what
# is missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
apt_install shellcheck curl openssl dpkg
