#!/usr/bin/env bash
# What the patch tests (control-plane/tests/patch_scan.rs and the tests built
# on tests/common/apt_repo.rs) need: dpkg-deb and dpkg-scanpackages
# (dpkg-dev) to build the local test APT repository. Installs nothing else
# and changes no apt configuration; the fixture's apt setup is its own.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
apt_install dpkg-dev
