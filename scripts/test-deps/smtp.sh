#!/usr/bin/env bash
# aiosmtpd, the SMTP server the notification tests send email to
# (control-plane/tests/notifications.rs runs `python3 -m aiosmtpd` on a free
# loopback port, writing each message it receives to a file). Installed into
# the user site of the python3 on PATH, only when it is missing.
set -euo pipefail
if python3 -c 'import aiosmtpd' 2>/dev/null; then
    exit 0
fi
echo "installing aiosmtpd"
python3 -m pip install --quiet --disable-pip-version-check aiosmtpd
