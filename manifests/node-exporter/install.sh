#!/usr/bin/env bash
# Prometheus node exporter. Inputs: PORT, LISTEN.
source "$(dirname "$0")/../_lib/common.sh"
pkg_install prometheus-node-exporter
restart=0
printf 'ARGS="--web.listen-address=%s:%s"\n' "${LISTEN:-0.0.0.0}" "${PORT:-9100}" \
    | put_file /etc/default/prometheus-node-exporter 0644 && restart=1
service_up prometheus-node-exporter "$restart"
wait_port "${PORT:-9100}" 30 || fail "node exporter does not answer on port ${PORT:-9100}" 3
log "node exporter serves metrics on ${LISTEN:-0.0.0.0}:${PORT:-9100}"
finish
