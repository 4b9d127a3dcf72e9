# drover-agent %preun (RPM; $1: 0 erase, 1 upgrade): on erase stops and
# disables both units when systemd runs. Configs and state stay (RPM
# convention: erase keeps /etc/drover and /var/lib/drover-*).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl stop drover-agent.service drover-rootd.service >/dev/null || true
    systemctl disable drover-agent.service drover-rootd.service >/dev/null || true
fi
exit 0
