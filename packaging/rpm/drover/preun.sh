# drover %preun (RPM; $1: 0 erase, 1 upgrade): on erase stops and disables
# drover.service when systemd runs. Config and state stay (RPM convention:
# erase keeps /etc/drover and /var/lib/drover).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl stop drover.service >/dev/null || true
    systemctl disable drover.service >/dev/null || true
fi
exit 0
