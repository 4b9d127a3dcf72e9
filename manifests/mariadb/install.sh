#!/usr/bin/env bash
# MariaDB server. Inputs: BIND_ADDRESS, PORT, MAX_CONNECTIONS, BUFFER_POOL_MB.
source "$(dirname "$0")/../_lib/common.sh"
pkg_install mariadb-server mariadb-client
restart=0
{
    printf '[mysqld]\n'
    printf 'bind-address = %s\n' "${BIND_ADDRESS:-127.0.0.1}"
    printf 'port = %s\n' "${PORT:-3306}"
    printf 'max_connections = %s\n' "${MAX_CONNECTIONS:-151}"
    printf 'innodb_buffer_pool_size = %sM\n' "${BUFFER_POOL_MB:-256}"
} | put_file /etc/mysql/mariadb.conf.d/60-drover.cnf 0644 && restart=1
service_up mariadb "$restart"
for _ in $(seq 1 60); do
    mariadb -e 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.5
done
mariadb -e 'SELECT 1' >/dev/null 2>&1 || fail "MariaDB does not answer on its socket" 3
log "MariaDB $(mariadb -N -e 'SELECT VERSION()') is up"
finish
