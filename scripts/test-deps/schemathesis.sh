#!/usr/bin/env bash
# schemathesis 4.x (PyPI), which control-plane/tests/openapi.rs runs against a
# live control plane to check the API's OpenAPI document. Installed with pip
# into the python3 on PATH (the test runs `python3 -m schemathesis.cli`);
# does nothing when a 4.x is already there.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
if python3 -c 'import sys, importlib.metadata as m; sys.exit(0 if m.version("schemathesis").startswith("4.") else 1)' 2>/dev/null; then
    exit 0
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
fi
echo "installing schemathesis 4.x"
# Debian's python3 is "externally managed"; pyenv's or a venv's is not.
python3 -m pip install -q 'schemathesis>=4,<5' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'schemathesis>=4,<5'
