#!/usr/bin/env bash
# PostgreSQL 15 server binaries for the control plane's PostgreSQL tests
# (control-plane/tests/compose.rs starts a private cluster with initdb +
# postgres in a temporary directory, as the `postgres` user when run as
# root). The package's own cluster and service are not needed or started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
apt_install postgresql-15
