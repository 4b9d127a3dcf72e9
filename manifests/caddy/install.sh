#!/usr/bin/env bash
# Caddy reverse proxy. Inputs: SITE, UPSTREAM, EMAIL.
source "$(dirname "$0")/../_lib/common.sh"
need SITE
need UPSTREAM
pkg_install caddy
restart=0
{
    if [[ -n "${EMAIL:-}" ]]; then printf '{\n\temail %s\n}\n\n' "$EMAIL"; fi
    printf '%s {\n\treverse_proxy %s\n}\n' "$SITE" "$UPSTREAM"
} | put_file /etc/caddy/Caddyfile 0644 && restart=1
caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null 2>&1 \
    || fail "the generated Caddyfile does not validate" 3
service_up caddy "$restart"
log "caddy proxies $SITE to $UPSTREAM"
finish
