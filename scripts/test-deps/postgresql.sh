#!/usr/bin/env bash
# PostgreSQL server and its client tools (pg_dump comes with the server's
# dependencies) for control-plane/tests/backup.rs.
# The test starts its own private server (initdb + postgres as the `postgres`
# user in a temporary directory); the package's own cluster and service are
# not needed and are not started. Owns nothing else.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
apt_install postgresql
