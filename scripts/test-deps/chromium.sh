#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the browser tests (control-plane/tests/browser.rs).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
apt_install chromium chromium-driver fonts-dejavu-core
