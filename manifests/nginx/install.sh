#!/usr/bin/env bash
# nginx with one static site. Inputs: SERVER_NAME, PORT, ROOT_DIR,
# ENABLE_TLS, TLS_PORT, TLS_CERT, TLS_KEY.
source "$(dirname "$0")/../_lib/common.sh"
need SERVER_NAME
PORT="${PORT:-80}"
ROOT_DIR="${ROOT_DIR:-/var/www/drover}"
if [[ "${ENABLE_TLS:-false}" == true ]]; then
    need TLS_CERT
    need TLS_KEY
    [[ -r "$TLS_CERT" ]] || fail "certificate $TLS_CERT is not readable" 1
    [[ -r "$TLS_KEY" ]] || fail "key $TLS_KEY is not readable" 1
fi

pkg_install nginx

if [[ ! -d "$ROOT_DIR" ]]; then
    mkdir -p -- "$ROOT_DIR"
    changed "created $ROOT_DIR"
fi
if [[ ! -e "$ROOT_DIR/index.html" ]]; then
    printf '<!doctype html><title>%s</title><p>Served by nginx, installed by Drover.</p>\n' "$SERVER_NAME" \
        >"$ROOT_DIR/index.html"
    changed "wrote $ROOT_DIR/index.html"
fi

conf_dir=/etc/nginx/conf.d
site="$conf_dir/drover-site.conf"
restart=0
{
    printf 'server {\n'
    printf '    listen %s;\n' "$PORT"
    if [[ "${ENABLE_TLS:-false}" == true ]]; then
        printf '    listen %s ssl;\n' "${TLS_PORT:-443}"
        printf '    ssl_certificate %s;\n' "$TLS_CERT"
        printf '    ssl_certificate_key %s;\n' "$TLS_KEY"
    fi
    printf '    server_name %s;\n' "$SERVER_NAME"
    printf '    root %s;\n' "$ROOT_DIR"
    printf '    location / { try_files $uri $uri/ =404; }\n'
    printf '}\n'
} | put_file "$site" 0644 && restart=1

nginx -t -q 2>&1 || fail "the generated configuration does not pass nginx -t" 3
service_up nginx "$restart"
wait_port "$PORT" 30 || fail "nginx does not answer on port $PORT" 3
log "nginx serves $SERVER_NAME on port $PORT"
finish
