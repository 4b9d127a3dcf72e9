#!/bin/bash
# Healthcheck of the control plane container: GET /healthz on its own
# listener, over HTTPS checked against the CA `drover init` made when the
# data directory has one, over HTTP otherwise. Exit 0 healthy, 1 not.
set -euo pipefail
data="${DROVER_DATA_DIR:-/var/lib/drover}"
port="${DROVER_LISTEN##*:}"
if [[ -f "$data/tls/http.pem" && -f "$data/tls/ca.pem" ]]; then
    exec curl -fsS --max-time 5 --cacert "$data/tls/ca.pem" \
        --resolve "localhost:${port}:127.0.0.1" "https://localhost:${port}/healthz" -o /dev/null
fi
exec curl -fsS --max-time 5 "http://127.0.0.1:${port}/healthz" -o /dev/null
