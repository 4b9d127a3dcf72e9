# drover-agent %pre (RPM): creates the `drover` system user and group before the
# files are installed ($1: 1 install, 2 upgrade). It does not touch
# directories, configs or units (%post does). Shared with the drover
# package: whichever installs first creates the user; an existing user is
# left as it is.
if ! getent group drover >/dev/null; then
    groupadd --system drover || exit 1
fi
if ! getent passwd drover >/dev/null; then
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/sbin/nologin
    [ -x "$nologin" ] || nologin=/bin/false
    useradd --system --gid drover --home-dir /var/lib/drover-agent \
        --no-create-home --shell "$nologin" --comment "Drover agent" drover || exit 1
fi
exit 0
