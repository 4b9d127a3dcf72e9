#!/usr/bin/env bash
# Docker Engine. Inputs: DATA_ROOT, LOG_MAX_SIZE, LOG_MAX_FILES.
source "$(dirname "$0")/../_lib/common.sh"
pkg_install docker.io
restart=0
printf '{\n  "data-root": "%s",\n  "log-driver": "json-file",\n  "log-opts": {"max-size": "%s", "max-file": "%s"}\n}\n' \
    "${DATA_ROOT:-/var/lib/docker}" "${LOG_MAX_SIZE:-10m}" "${LOG_MAX_FILES:-3}" \
    | put_file /etc/docker/daemon.json 0644 && restart=1
service_up docker "$restart"
for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
done
docker info >/dev/null 2>&1 || fail "the Docker daemon does not answer" 3
log "Docker $(docker version --format '{{.Server.Version}}') is up"
finish
