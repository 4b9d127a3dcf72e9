#!/usr/bin/env bash
# Stops Redis and removes Drover's settings; the data stays in /var/lib/redis.
source "$(dirname "$0")/../_lib/common.sh"
service_down redis-server
if [[ -f /etc/redis/drover.conf ]]; then
    rm -f /etc/redis/drover.conf
    sed -i '\#^include /etc/redis/drover.conf$#d' /etc/redis/redis.conf
    changed "removed Drover's redis settings"
fi
finish
