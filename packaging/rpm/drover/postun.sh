# drover %postun (RPM; $1: 0 erase, 1 upgrade): reloads systemd when it runs
# and, on upgrade, restarts drover.service if it was running. Config and
# state stay on erase (RPM convention); `drover backup` before removing
# /var/lib/drover by hand.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    if [ "$1" -ge 1 ]; then
        systemctl try-restart drover.service >/dev/null || true
    fi
fi
exit 0
