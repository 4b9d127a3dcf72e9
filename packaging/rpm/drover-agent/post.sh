# drover-agent %post (RPM; $1: 1 install, 2 upgrade): creates /etc/drover,
# the agent's and rootd's state directories with their owners and modes, the
# configs from /usr/share/drover/examples/ only when absent (an edited config
# is never overwritten), and, only when systemd runs, reloads it and enables
# both units. It does not start them: the configs need a token and key first
# (the host install script starts them); %postun restarts them on upgrade.
set -e
examples=/usr/share/drover/examples
install -d -m 0750 -o root -g drover /etc/drover
install -d -m 0700 -o drover -g drover /var/lib/drover-agent
install -d -m 0700 -o root -g root /var/lib/drover-rootd
if [ ! -e /etc/drover/agent.toml ] && [ ! -L /etc/drover/agent.toml ]; then
    install -m 0640 -o root -g drover "$examples/agent.toml" /etc/drover/agent.toml.rpmtmp
    mv /etc/drover/agent.toml.rpmtmp /etc/drover/agent.toml
fi
if [ ! -e /etc/drover/rootd.toml ] && [ ! -L /etc/drover/rootd.toml ]; then
    uid="$(id -u drover)"
    umask 077
    sed "s/^agent_uid = .*/agent_uid = $uid/" "$examples/rootd.toml" >/etc/drover/rootd.toml.rpmtmp
    chown root:root /etc/drover/rootd.toml.rpmtmp
    chmod 0600 /etc/drover/rootd.toml.rpmtmp
    mv /etc/drover/rootd.toml.rpmtmp /etc/drover/rootd.toml
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    systemctl enable drover-rootd.service drover-agent.service >/dev/null || true
fi
exit 0
