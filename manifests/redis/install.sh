#!/usr/bin/env bash
# Redis. Inputs: PORT, BIND, REQUIRE_PASSWORD, PASSWORD (sensitive),
# MAXMEMORY_MB, EVICTION.
source "$(dirname "$0")/../_lib/common.sh"
PORT="${PORT:-6379}"
BIND="${BIND:-127.0.0.1}"
if [[ "${REQUIRE_PASSWORD:-false}" == true ]]; then need PASSWORD; fi

pkg_install redis-server redis-tools

main=/etc/redis/redis.conf
ours=/etc/redis/drover.conf
[[ -f "$main" ]] || fail "$main is missing after the install" 2
restart=0
if ! grep -qxF "include $ours" "$main"; then
    printf '\ninclude %s\n' "$ours" >>"$main"
    changed "included $ours from $main"
    restart=1
fi
{
    printf 'port %s\n' "$PORT"
    printf 'bind %s\n' "$BIND"
    printf 'maxmemory %smb\n' "${MAXMEMORY_MB:-256}"
    printf 'maxmemory-policy %s\n' "${EVICTION:-allkeys-lru}"
    if [[ "${REQUIRE_PASSWORD:-false}" == true ]]; then
        printf 'requirepass %s\n' "$PASSWORD"
    fi
} | put_file "$ours" 0640 && restart=1
chown redis:redis "$ours" 2>/dev/null || true

service_up redis-server "$restart"
wait_port "$PORT" 30 || fail "redis does not answer on port $PORT" 3
# The password goes through the environment, never argv.
if [[ "${REQUIRE_PASSWORD:-false}" == true ]]; then export REDISCLI_AUTH="$PASSWORD"; fi
pong="$(redis-cli -p "$PORT" ping 2>&1 || true)"
[[ "$pong" == PONG ]] || fail "redis answered '$pong' instead of PONG" 3
log "redis answers on $BIND:$PORT"
finish
