#!/usr/bin/env bash
# MariaDB server and client for control-plane/tests/mariadb.rs. The tests
# start their own private server (mariadb-install-db + mariadbd in a temporary
# directory); the package's own service is not needed and is not started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
apt_install mariadb-server mariadb-client
