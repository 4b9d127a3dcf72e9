#!/usr/bin/env bash
# What control-plane/tests/modules_sys.rs needs: nftables (the firewall
# module, run inside a throw-away network namespace), iproute2 (`ip netns`),
# and package lists so `pkg.install` can find the small test package.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
apt_install nftables iproute2
# pkg.install/upgrade need a package list; a fresh image may have none.
if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
fi
