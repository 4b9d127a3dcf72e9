#!/bin/bash
# Entry point of the PostgreSQL image. On the first start (empty PGDATA):
# generates the `drover` role's password into DB_PASSWORD_FILE (0640,
# group drover-db) unless one is there, initialises the cluster (local
# superuser by peer only, no remote superuser), creates the role and the
# `drover` database, and allows only `drover` from the network with
# scram-sha-256. Then runs the server in the foreground. The password is
# never printed or logged; nothing from outside is evaluated by the shell.
set -euo pipefail

pwfile="${DB_PASSWORD_FILE:-/var/lib/drover-secrets/db-password}"
umask 077

if [[ ! -s "$pwfile" ]]; then
    tmp="$pwfile.new"
    # 160 random bits from the kernel, as 40 hex digits.
    od -An -N20 -tx1 /dev/urandom | tr -d ' \n' >"$tmp"
    chgrp drover-db -- "$tmp"
    chmod 0640 -- "$tmp"
    mv -- "$tmp" "$pwfile"
    echo "generated the drover role's password in $pwfile"
fi
pw="$(<"$pwfile")"
if [[ ! "$pw" =~ ^[A-Za-z0-9]{16,}$ ]]; then
    echo "the password in $pwfile must be 16 or more letters and digits" >&2
    exit 1
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    initdb -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=reject >/dev/null
    # Single-user mode: no listener is up while the role is made.
    printf "CREATE ROLE drover LOGIN PASSWORD '%s';\n" "$pw" |
        postgres --single -D "$PGDATA" -c password_encryption=scram-sha-256 postgres >/dev/null
    printf "CREATE DATABASE drover OWNER drover;\n" |
        postgres --single -D "$PGDATA" postgres >/dev/null
    cat >"$PGDATA/pg_hba.conf" <<'HBA'
# Written by the drover compose image: the superuser only over the local
# socket (peer), the drover role only to its database, with a password.
local   all      postgres                peer
host    drover   drover    0.0.0.0/0     scram-sha-256
host    drover   drover    ::/0          scram-sha-256
HBA
    echo "initialised the cluster and the drover database"
fi
unset pw

exec postgres -D "$PGDATA" \
    -c listen_addresses='*' \
    -c unix_socket_directories=/tmp \
    -c password_encryption=scram-sha-256
