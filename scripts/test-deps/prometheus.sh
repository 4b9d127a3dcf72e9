#!/usr/bin/env bash
# The Prometheus text parser (Python prometheus_client) the /metrics test
# (control-plane/tests/prometheus.rs) checks the exposition with.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
apt_install python3-prometheus-client
