# drover-agent %postun (RPM; $1: 0 erase, 1 upgrade): reloads systemd when it
# runs and, on upgrade, restarts the units that were running. Configs and
# state stay on erase (RPM convention); remove /etc/drover and
# /var/lib/drover-agent, /var/lib/drover-rootd by hand to forget the host.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    if [ "$1" -ge 1 ]; then
        systemctl try-restart drover-rootd.service drover-agent.service >/dev/null || true
    fi
fi
exit 0
