#!/usr/bin/env bash
# Removes the Drover site and stops nginx; the package stays (other sites
# may use it).
source "$(dirname "$0")/../_lib/common.sh"
if [[ -f /etc/nginx/conf.d/drover-site.conf ]]; then
    rm -f /etc/nginx/conf.d/drover-site.conf
    changed "removed the Drover site"
    if service_running nginx; then
        if has_systemd; then systemctl reload nginx; else service nginx reload; fi || true
    fi
fi
finish
