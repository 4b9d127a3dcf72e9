#!/usr/bin/env bash
# Stops MariaDB and removes Drover's settings; the data stays.
source "$(dirname "$0")/../_lib/common.sh"
service_down mariadb
if [[ -f /etc/mysql/mariadb.conf.d/60-drover.cnf ]]; then
    rm -f /etc/mysql/mariadb.conf.d/60-drover.cnf
    changed "removed Drover's MariaDB settings"
fi
finish
