# drover-agent %postun (RPM; $1: 0 erase, 1 upgrade): on erase removes the
# directories it left empty under /usr/share/drover; reloads systemd when it
# runs and, on upgrade, restarts the units that were running. Configs and
# state stay on erase (RPM convention); remove /etc/drover and
# /var/lib/drover-agent, /var/lib/drover-rootd by hand to forget the host.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    if [ "$1" -ge 1 ]; then
        systemctl try-restart drover-rootd.service drover-agent.service >/dev/null || true
    fi
fi
if [ "$1" -eq 0 ]; then
    # The package lists its files, not their directories (cargo-generate-rpm
    # packs files only): remove the directories erase left empty.
    for d in /usr/share/drover/manifests /usr/share/drover/examples; do
        if [ -d "$d" ]; then
            find "$d" -depth -type d -empty -delete
        fi
    done
    rmdir /usr/share/drover 2>/dev/null || true
fi
exit 0
