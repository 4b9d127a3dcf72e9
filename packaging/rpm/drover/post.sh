# drover %post (RPM; $1: 1 install, 2 upgrade): creates /etc/drover and the
# control plane's state directory /var/lib/drover (0750 drover:drover),
# /etc/drover/drover.toml from /usr/share/drover/examples/ only when absent
# (an edited config is never overwritten), and, only when systemd runs,
# reloads it and enables drover.service. It does not run `drover init` nor
# start the service: the operator does, once; %postun restarts it on upgrade.
set -e
install -d -m 0750 -o root -g drover /etc/drover
install -d -m 0750 -o drover -g drover /var/lib/drover
if [ ! -e /etc/drover/drover.toml ] && [ ! -L /etc/drover/drover.toml ]; then
    install -m 0640 -o root -g drover /usr/share/drover/examples/drover.toml /etc/drover/drover.toml.rpmtmp
    mv /etc/drover/drover.toml.rpmtmp /etc/drover/drover.toml
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    systemctl enable drover.service >/dev/null || true
fi
exit 0
