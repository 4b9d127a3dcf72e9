#!/usr/bin/env bash
# What `just test-compose` needs: Debian's Docker engine and client
# (docker.io), docker-compose 1.29, and debootstrap for the local base image
# (no image registry is reachable). The test starts its own dockerd with its
# own data and exec roots; the package's service is not used and not started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
apt_install docker.io docker-compose debootstrap
