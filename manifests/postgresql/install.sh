#!/usr/bin/env bash
# PostgreSQL. Inputs: LISTEN, PORT, CREATE_DATABASE, DB_NAME, DB_USER,
# DB_PASSWORD (sensitive; read by psql from the environment, never argv).
source "$(dirname "$0")/../_lib/common.sh"
pkg_install postgresql
ver="$(ls /etc/postgresql | sort -V | tail -n 1)"
[[ -n "$ver" ]] || fail "no PostgreSQL cluster configuration under /etc/postgresql" 2
restart=0
{
    printf "listen_addresses = '%s'\n" "${LISTEN:-localhost}"
    printf 'port = %s\n' "${PORT:-5432}"
} | put_file "/etc/postgresql/$ver/main/conf.d/60-drover.conf" 0644 && restart=1
service_up postgresql "$restart"
for _ in $(seq 1 60); do
    runuser -u postgres -- psql -p "${PORT:-5432}" -tAc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.5
done
runuser -u postgres -- psql -p "${PORT:-5432}" -tAc 'SELECT 1' >/dev/null 2>&1 || fail "PostgreSQL does not answer" 3
if [[ "${CREATE_DATABASE:-false}" == true ]]; then
    need DB_NAME; need DB_USER; need DB_PASSWORD
    # psql's \getenv reads the password; :'pw' and :"name" quote safely.
    runuser -u postgres -- env DB_PASSWORD="$DB_PASSWORD" DB_USER="$DB_USER" DB_NAME="$DB_NAME" \
        psql -p "${PORT:-5432}" -v ON_ERROR_STOP=1 -q <<'SQL' || fail "creating the database failed" 3
\getenv pw DB_PASSWORD
\getenv u DB_USER
\getenv d DB_NAME
SELECT format('CREATE ROLE %I LOGIN', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \gexec
ALTER ROLE :"u" PASSWORD :'pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'d', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'d') \gexec
SQL
    log "database $DB_NAME owned by $DB_USER is ready"
fi
finish
