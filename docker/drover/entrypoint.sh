#!/bin/bash
# Entry point of the control plane image. It builds DROVER_DATABASE_URL from
# the password file PostgreSQL's container generated (DB_PASSWORD_FILE; the
# password never appears in compose.yaml or `docker inspect`), then:
#   serve        -> `drover serve`
#   init [ARGS]  -> `drover init ARGS` and a copy of the broker's files
#                   (config, resolver, its certificate) into the broker's own
#                   volume, so nats-server never sees the control plane's keys
#   anything else -> `drover ARGS` (e.g. `tokens create`)
# Arguments go to drover as argv entries; nothing is evaluated by a shell.
# It does not create the database or its password (docker/postgres does).
set -euo pipefail

data="${DROVER_DATA_DIR:-/var/lib/drover}"

if [[ -z "${DROVER_DATABASE_URL:-}" && -n "${DB_PASSWORD_FILE:-}" ]]; then
    if [[ ! -r "$DB_PASSWORD_FILE" ]]; then
        echo "cannot read the database password file $DB_PASSWORD_FILE" >&2
        exit 1
    fi
    pw="$(<"$DB_PASSWORD_FILE")"
    if [[ ! "$pw" =~ ^[A-Za-z0-9]{16,}$ ]]; then
        echo "the password in $DB_PASSWORD_FILE must be 16 or more letters and digits" >&2
        exit 1
    fi
    export DROVER_DATABASE_URL="postgres://${DB_USER:-drover}:${pw}@${DB_HOST:-postgres}:${DB_PORT:-5432}/${DB_NAME:-drover}"
    unset pw
fi

# Copies what nats-server needs out of the data volume into BROKER_DIR,
# with the paths rewritten to where the broker container mounts them.
copy_broker_files() {
    local broker="$1" src="$data/nats-config"
    local tmp="$broker/.new"
    rm -rf -- "$tmp"
    mkdir -m 0750 -- "$tmp"
    # nats.conf includes resolver.conf (and tls.conf when TLS is on).
    cp -- "$src"/*.conf "$tmp/"
    if [[ -d "$data/tls" ]]; then
        mkdir -m 0750 -- "$tmp/tls"
        for f in ca.pem nats.pem nats.key; do
            [[ -f "$data/tls/$f" ]] && cp -- "$data/tls/$f" "$tmp/tls/$f"
        done
    fi
    # drover init names absolute paths under the data directory.
    sed -i \
        -e "s#\"$data/nats-resolver\"#\"/data/resolver\"#g" \
        -e "s#$data/tls/#/etc/nats/broker/tls/#g" \
        -e "s#$data/nats-config/#/etc/nats/broker/#g" \
        "$tmp"/*.conf
    if grep -q -- "$data" "$tmp"/*.conf; then
        echo "the broker configuration still names $data; refusing to install it:" >&2
        grep -n -- "$data" "$tmp"/*.conf >&2
        exit 1
    fi
    chgrp -R drover-broker -- "$tmp"
    find "$tmp" -type f -exec chmod 0640 {} +
    # Swap in the new files (one directory; readers see old or new).
    rm -rf -- "$broker"/*.conf "$broker/tls"
    mv -- "$tmp"/* "$broker/"
    rmdir -- "$tmp"
}

cmd="${1:-serve}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
serve)
    exec /usr/bin/drover serve "$@"
    ;;
init)
    # TLS_NAMES: comma-separated names for the certificates, each passed
    # to `drover init` as its own `--tls-name` argument.
    names=()
    IFS=',' read -r -a list <<<"${TLS_NAMES:-}"
    for n in "${list[@]}"; do
        [[ -n "$n" ]] && names+=(--tls-name "$n")
    done
    # The first web UI admin's password goes to a file in the data volume
    # (0600), not to the container's log; so does the admin API token
    # (admin.token). Only the key fingerprint and public key are printed.
    pwfile="$data/admin-password"
    if [[ ! -s "$pwfile" ]]; then
        (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$pwfile")
    fi
    out="$(/usr/bin/drover init --admin-password-file "$pwfile" "${names[@]}" "$@")"
    grep -i -e 'fingerprint' -e 'public key' <<<"$out" || true
    echo "admin API token: $data/admin.token; web UI user admin's password: $pwfile"
    if [[ -n "${BROKER_DIR:-}" ]]; then
        copy_broker_files "$BROKER_DIR"
        echo "broker configuration installed in $BROKER_DIR"
    fi
    ;;
*)
    exec /usr/bin/drover "$cmd" "$@"
    ;;
esac
