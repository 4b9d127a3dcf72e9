#!/usr/bin/env bash
# What `just package` and control-plane/tests/packages.rs need: cargo-deb and
# cargo-generate-rpm (pinned, installed with `cargo install --locked` only when
# the wanted version is absent), rpm (to inspect and install the .rpm on this
# Debian machine without rpmbuild), dpkg-deb (part of dpkg) and
# systemd-analyze (for `verify` and `security --offline`). It does not build
# the packages; `just package` does.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

cargo_deb_version="3.8.0"
cargo_generate_rpm_version="0.21.1"

# cargo_tool CRATE VERSION VERSION_COMMAND...: installs CRATE at VERSION unless
# VERSION_COMMAND already prints that version.
cargo_tool() {
    local crate="$1" version="$2"
    shift 2
    local have
    have="$("$@" 2>/dev/null || true)"
    if [[ "$have" == *"$version"* ]]; then
        return 0
    fi
    echo "installing $crate $version (found: ${have:-none})"
    cargo install --quiet --locked --version "=$version" "$crate"
}

apt_install rpm
command -v systemd-analyze >/dev/null || apt_install systemd
command -v dpkg-deb >/dev/null || apt_install dpkg

cargo_tool cargo-deb "$cargo_deb_version" cargo deb --version
cargo_tool cargo-generate-rpm "$cargo_generate_rpm_version" cargo generate-rpm --version
