#!/bin/sh
# Drover host install: puts the agent and rootd on this host and enrols it
# with one registration token:
#   curl -fsSL https://cp.example/install.sh | sudo sh -s -- --token drvreg_...
#
# This file is the template the control plane serves at GET /install.sh; it
# bakes in its API URL, broker URL, command-signing key (PEM and base64), the
# release key (base64, when configured) and broker CA where the __DROVER_...__ markers are (control-plane/src/install.rs).
# The script owns what it writes: /etc/drover/agent.toml, rootd.toml,
# enroll.creds and ca.pem. It does not own the package's files, users or units
# (the drover-agent package's maintainer scripts do).
#
# Order: check the options, the OS and the tools; fetch the package index,
# the package and its signature into a temporary directory; verify the
# Ed25519 signature with the baked-in key and the SHA-256; obtain the
# enrolment credentials with the token. Only when all of that holds is
# anything written outside the temporary directory, so a wrong or expired
# token, a tampered package or an unsupported OS leave the host unchanged.
#
# Operator input never reaches eval or a shell: every value is checked
# against a fixed character set and quoted. DROVER_INSTALL_OS_RELEASE (only
# the tests set it) reads another file instead of /etc/os-release.
set -eu

# ---- baked in by the control plane that served this script
DROVER_URL='__DROVER_PUBLIC_URL__'
DROVER_NATS_URL='__DROVER_NATS_URL__'
DROVER_CONTROL_PLANE_KEY='__DROVER_CONTROL_PLANE_KEY__'
DROVER_HAS_CA='__DROVER_HAS_CA__'
# The fleet's release key ('' when the control plane has none): agent and
# rootd accept an agent release only when this key signed it.
DROVER_RELEASE_KEY='__DROVER_RELEASE_KEY__'

control_plane_key_pem() {
	cat <<'DROVER_END_OF_KEY'
__DROVER_PUBLIC_KEY_PEM__
DROVER_END_OF_KEY
}

broker_ca_pem() {
	cat <<'DROVER_END_OF_CA'
__DROVER_BROKER_CA_PEM__
DROVER_END_OF_CA
}

# ---- helpers
say() { printf '%s\n' "$*"; }
die() {
	printf 'drover install: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	cat <<'EOF'
Usage: install.sh --token TOKEN [--name NAME] [--labels k=v,...] [--root DIR] [--no-start]

Installs the Drover agent and rootd from this control plane, writes their
configuration and enrols the host with the registration token.

  --token TOKEN     registration token (drvreg_...), from `drover tokens create`
                    or the Enrolment page (required)
  --name NAME       the name shown in the fleet (1-64 of A-Z a-z 0-9 . _ -)
  --labels k=v,...  labels asked for at enrolment (keys and values 1-64 of
                    A-Z a-z 0-9 - _ . /); the token's labels win on conflict
  --root DIR        extract into DIR instead of installing the package (no
                    system user, no systemd); configs point inside DIR
  --no-start        do not enable and start the units
  -h, --help        this text
EOF
}

# valid VALUE MIN MAX CLASS: VALUE is MIN..MAX characters, all in CLASS (a
# bracket expression body such as A-Za-z0-9._-).
valid() {
	[ "${#1}" -ge "$2" ] && [ "${#1}" -le "$3" ] || return 1
	case $1 in
	*[!$4]*) return 1 ;;
	esac
	return 0
}

# check_root_paths: every path under --root this script creates or writes
# (and the root itself), where it exists already, is a real directory or
# file (no symbolic link), owned by this user and writable by no one else;
# otherwise a link planted there would send root's writes elsewhere.
check_root_paths() {
	for rel in '' /etc /etc/machine-id /etc/drover /etc/drover/agent.toml \
		/etc/drover/rootd.toml /etc/drover/enroll.creds /etc/drover/ca.pem \
		/var /var/lib /var/lib/drover-agent /var/lib/drover-rootd /run /run/drover \
		/usr /usr/bin /usr/bin/drover-agent /usr/bin/drover-rootd /usr/share \
		/usr/share/drover /usr/share/drover/examples /usr/share/drover/manifests \
		/usr/share/doc /usr/lib /usr/lib/systemd /usr/lib/systemd/system /lib; do
		p=$root$rel
		[ ! -L "$p" ] || die "--root: $p is a symbolic link; install into a directory of your own"
		[ -e "$p" ] || continue
		[ -O "$p" ] || die "--root: $p is not owned by $(id -un); install into a directory of your own"
		[ -z "$(find "$p" -maxdepth 0 -perm /022)" ] || die "--root: $p is writable by other users; install into a directory of your own"
	done
}

# ---- options
token=''
name=''
labels=''
root=''
start=yes
while [ "$#" -gt 0 ]; do
	case $1 in
	--token | --name | --labels | --root)
		[ "$#" -ge 2 ] || die "$1 needs a value (see --help)"
		case $1 in
		--token) token=$2 ;;
		--name) name=$2 ;;
		--labels) labels=$2 ;;
		--root) root=$2 ;;
		esac
		shift 2
		;;
	--token=*) token=${1#--token=} && shift ;;
	--name=*) name=${1#--name=} && shift ;;
	--labels=*) labels=${1#--labels=} && shift ;;
	--root=*) root=${1#--root=} && shift ;;
	--no-start) start=no && shift ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown option: $1 (see --help)" ;;
	esac
done

[ -n "$token" ] || die "--token is required: a registration token from \`drover tokens create\` or the Enrolment page"
case $token in
drvreg_*) ;;
*) die "--token must be a registration token (drvreg_...)" ;;
esac
valid "$token" 8 200 'A-Za-z0-9_' || die "--token has characters a registration token never has"
if [ -n "$name" ]; then
	valid "$name" 1 64 'A-Za-z0-9._-' || die "--name must be 1-64 characters of A-Z a-z 0-9 . _ -"
fi

labels_toml=''
if [ -n "$labels" ]; then
	count=0
	old_ifs=$IFS
	IFS=','
	set -f
	for pair in $labels; do
		case $pair in
		*=*) ;;
		*) die "--labels: \"$pair\" is not key=value" ;;
		esac
		key=${pair%%=*}
		value=${pair#*=}
		if ! valid "$key" 1 64 'A-Za-z0-9_./-' || ! valid "$value" 1 64 'A-Za-z0-9_./-'; then
			die "--labels: keys and values are 1-64 characters of A-Z a-z 0-9 - _ . / (got \"$pair\")"
		fi
		count=$((count + 1))
		[ "$count" -le 32 ] || die "--labels: at most 32 labels"
		labels_toml="$labels_toml${labels_toml:+, }\"$key\" = \"$value\""
	done
	set +f
	IFS=$old_ifs
	[ "$count" -gt 0 ] || die "--labels needs at least one key=value"
fi

if [ -n "$root" ]; then
	case $root in
	/*) ;;
	*) root="$(pwd)/$root" ;;
	esac
	while [ "${root%/}" != "$root" ]; do root=${root%/}; done
	[ -n "$root" ] || die "--root / is the host itself: leave --root out"
	valid "$root" 2 200 'A-Za-z0-9_./-' || die "--root must be a path of A-Z a-z 0-9 _ . / - characters"
	case $root in
	*/../* | */.. | */./* | */.) die "--root must not contain . or .. components" ;;
	esac
	[ ! -e "$root" ] || [ -d "$root" ] || die "--root $root exists and is not a directory"
	check_root_paths
else
	[ "$(id -u)" = 0 ] || die "run as root: curl -fsSL $DROVER_URL/install.sh | sudo sh -s -- --token ..."
fi

# ---- the OS and the tools
os_release=${DROVER_INSTALL_OS_RELEASE:-/etc/os-release}
[ -r "$os_release" ] || die "cannot read $os_release: unsupported OS (Debian/Ubuntu or RHEL-family Linux needed)"
os_field() {
	sed -n "s/^$1=//p" "$os_release" | head -n 1 | tr -d "\"'"
}
os_id=$(os_field ID)
os_like=$(os_field ID_LIKE)
format=''
set -f
# Word splitting intended: ID_LIKE is a space-separated list.
# shellcheck disable=SC2086
for word in $os_id $os_like; do
	case $word in
	debian | ubuntu)
		format=deb
		break
		;;
	rhel | fedora | centos | rocky | almalinux | ol | amzn)
		format=rpm
		break
		;;
	esac
done
set +f
[ -n "$format" ] || die "unsupported OS: ID=${os_id:-?} ID_LIKE=${os_like:-?} in $os_release (Debian/Ubuntu or RHEL-family Linux needed)"

case $(uname -m) in
x86_64 | amd64) arch=x86_64 ;;
aarch64 | arm64) arch=aarch64 ;;
*) die "unsupported architecture: $(uname -m) (x86_64 or aarch64 needed)" ;;
esac

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 is needed: $2"
}
need curl "install curl"
need sha256sum "install coreutils"
need openssl "install OpenSSL 3 or later (openssl)"
openssl_version=$(openssl version 2>/dev/null || true)
case $openssl_version in
"OpenSSL "[3-9].*) ;;
*) die "OpenSSL 3 or later is needed to verify the package's Ed25519 signature (found: ${openssl_version:-none})" ;;
esac
if [ -n "$root" ]; then
	case $format in
	deb) need dpkg-deb "install dpkg" ;;
	rpm)
		need rpm2cpio "install rpm"
		need cpio "install cpio"
		;;
	esac
else
	case $format in
	deb) need dpkg "install dpkg" ;;
	rpm) need rpm "install rpm" ;;
	esac
	[ "$start" = no ] || need systemctl "start the units by hand, or pass --no-start"
fi

# ---- everything below until "install" happens in a temporary directory
umask 077
tmp=$(mktemp -d "${TMPDIR:-/tmp}/drover-install.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

control_plane_key_pem >"$tmp/key.pem"
if [ "$DROVER_HAS_CA" = yes ]; then
	broker_ca_pem >"$tmp/ca.pem"
fi

# cp_curl ARGS...: curl to the control plane, trusting the baked-in CA when
# the system's trust store did not do (a certificate `drover init` made).
use_ca=no
cp_curl() {
	if [ "$use_ca" = yes ]; then
		curl --cacert "$tmp/ca.pem" "$@"
	else
		curl "$@"
	fi
}

if ! cp_curl -fsS --retry 2 -o "$tmp/index" "$DROVER_URL/releases/index" 2>"$tmp/curl.err"; then
	case $DROVER_HAS_CA$DROVER_URL in
	yeshttps://*)
		use_ca=yes
		cp_curl -fsS --retry 2 -o "$tmp/index" "$DROVER_URL/releases/index" ||
			die "cannot fetch $DROVER_URL/releases/index"
		;;
	*) die "cannot fetch $DROVER_URL/releases/index: $(head -c 300 "$tmp/curl.err")" ;;
	esac
fi

# Lines: name format arch version sha256. The newest drover-agent package
# for this format and architecture.
best=$(awk -v f="$format" -v a="$arch" \
	'$2 == f && $3 == a && $1 ~ /^drover-agent[_-][0-9]/ { print $4, $1, $5 }' "$tmp/index" |
	sort -V -k1,1 | tail -n 1)
[ -n "$best" ] || die "the control plane has no drover-agent package for $format/$arch (drover releases publish ...)"
version=${best%% *}
rest=${best#* }
package=${rest%% *}
sha256=${rest#* }
valid "$package" 1 128 'A-Za-z0-9._+~-' || die "the package index names a bad file"
valid "$sha256" 64 64 '0-9a-f' || die "the package index has a bad sha256 for $package"

say "Downloading $package ($version) from $DROVER_URL"
pkg="$tmp/drover-agent.$format"
cp_curl -fsS --retry 2 -o "$pkg" "$DROVER_URL/releases/$package" || die "cannot download $package"
cp_curl -fsS --retry 2 -o "$pkg.sig" "$DROVER_URL/releases/$package.sig" || die "cannot download $package.sig"

if ! openssl pkeyutl -verify -pubin -inkey "$tmp/key.pem" -rawin -in "$pkg" -sigfile "$pkg.sig" >/dev/null 2>&1; then
	die "$package: the signature does not verify against this control plane's key; a tampered or foreign package is refused, nothing was installed"
fi
got=$(sha256sum "$pkg" | cut -d ' ' -f 1)
[ "$got" = "$sha256" ] || die "$package: sha256 $got, the index says $sha256; nothing was installed"
say "Verified the package's signature (Ed25519, control-plane key) and sha256"

printf '{"token":"%s"}' "$token" >"$tmp/bootstrap.json"
code=$(cp_curl -sS -o "$tmp/enroll.creds" -w '%{http_code}' -X POST \
	-H 'Content-Type: application/json' -H 'Accept: text/plain' \
	--data-binary @"$tmp/bootstrap.json" "$DROVER_URL/api/v1/enroll/bootstrap") ||
	die "cannot reach $DROVER_URL/api/v1/enroll/bootstrap"
if [ "$code" != 200 ]; then
	why=$(head -c 400 "$tmp/enroll.creds" | tr -d '\000-\011\013-\037')
	# The API answers errors as {"error": "..."}: show the message alone.
	msg=$(printf '%s' "$why" | sed -n 's/^{"error":"\([^"\\]*\)".*$/\1/p')
	[ -n "$msg" ] && why=$msg
	die "the control plane refused the token (HTTP $code): $why; nothing was installed"
fi
grep -q 'BEGIN NATS USER JWT' "$tmp/enroll.creds" || die "the control plane's answer holds no enrolment credentials"

# ---- install: from here on the host changes
umask 022
if [ -n "$root" ]; then
	# Again, right before writing: nothing was planted meanwhile.
	check_root_paths
	mkdir -p "$root"
	case $format in
	deb) dpkg-deb -x "$pkg" "$root" ;;
	rpm) (cd "$root" && rpm2cpio "$pkg" | cpio -idm --quiet) ;;
	esac
	prefix=$root
	agent_uid=$(id -u)
	group_line=''
	say "Extracted $package into $root"
else
	case $format in
	deb)
		if command -v apt-get >/dev/null 2>&1; then
			DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg"
		else
			dpkg -i "$pkg"
		fi
		;;
	rpm)
		if command -v dnf >/dev/null 2>&1; then
			dnf install -y "$pkg"
		else
			rpm -U --replacepkgs "$pkg"
		fi
		;;
	esac
	prefix=''
	agent_uid=$(id -u drover) || die "the package did not create the drover user"
	group_line='socket_group = "drover"'
	say "Installed $package"
fi

etc="$prefix/etc/drover"
agent_state="$prefix/var/lib/drover-agent"
rootd_state="$prefix/var/lib/drover-rootd"
socket="$prefix/run/drover/rootd.sock"
manifests="$prefix/usr/share/drover/manifests"
mkdir -p "$etc" "$agent_state" "$rootd_state"
chmod 0700 "$agent_state" "$rootd_state"

# put FILE MODE [GROUP]: moves $tmp/out into place, keeping an existing file
# as FILE.bak unless it is the package's unedited example.
examples="$prefix/usr/share/drover/examples"
put() {
	if [ -f "$1" ] && ! cmp -s "$tmp/out" "$1" && ! cmp -s "$1" "$examples/${1##*/}"; then
		cp -p "$1" "$1.bak"
	fi
	chmod "$2" "$tmp/out"
	if [ -n "${3:-}" ]; then
		chown "root:$3" "$tmp/out"
	fi
	mv -f "$tmp/out" "$1"
}

if [ -n "$root" ]; then
	group=''
	creds_mode=0600
	agent_mode=0600
	mkdir -p "$prefix/run/drover"
	if [ ! -s "$root/etc/machine-id" ]; then
		# A scratch root is a host of its own.
		od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
	fi
	machine_line="machine_id_file = \"$root/etc/machine-id\""
else
	group=drover
	creds_mode=0640
	agent_mode=0640
	chown drover:drover "$agent_state"
	chown root:drover "$etc"
	chmod 0750 "$etc"
	machine_line=''
fi

cp "$tmp/enroll.creds" "$tmp/out"
put "$etc/enroll.creds" "$creds_mode" "$group"
ca_line=''
if [ "$DROVER_HAS_CA" = yes ]; then
	cp "$tmp/ca.pem" "$tmp/out"
	put "$etc/ca.pem" 0644
	ca_line="nats_ca = \"$etc/ca.pem\""
fi

{
	say "# Written by install.sh from $DROVER_URL. Keys: agent/src/config.rs."
	say "nats_url = \"$DROVER_NATS_URL\""
	[ -z "$ca_line" ] || say "$ca_line"
	say "state_dir = \"$agent_state\""
	say "enroll_token = \"$token\""
	say "enroll_creds = \"$etc/enroll.creds\""
	say "control_plane_key = \"$DROVER_CONTROL_PLANE_KEY\""
	[ -z "$DROVER_RELEASE_KEY" ] || say "release_key = \"$DROVER_RELEASE_KEY\""
	say "rootd_socket = \"$socket\""
	[ -z "$machine_line" ] || say "$machine_line"
	[ -z "$name" ] || say "display_name = \"$name\""
	[ -z "$labels_toml" ] || say "labels = { $labels_toml }"
} >"$tmp/out"
put "$etc/agent.toml" "$agent_mode" "$group"

{
	say "# Written by install.sh from $DROVER_URL. Keys: rootd/src/config.rs."
	say "socket = \"$socket\""
	[ -z "$group_line" ] || say "$group_line"
	say "agent_uid = $agent_uid"
	say "control_plane_key = \"$DROVER_CONTROL_PLANE_KEY\""
	[ -z "$DROVER_RELEASE_KEY" ] || say "release_key = \"$DROVER_RELEASE_KEY\""
	say "agent_id_file = \"$agent_state/agent.id\""
	say "state_dir = \"$rootd_state\""
	say "manifests_dir = \"$manifests\""
} >"$tmp/out"
put "$etc/rootd.toml" 0600
say "Wrote $etc/agent.toml, $etc/rootd.toml and $etc/enroll.creds"

if [ -n "$root" ]; then
	say "Start them by hand (no systemd in --root mode):"
	say "  $root/usr/bin/drover-rootd --config $etc/rootd.toml"
	say "  $root/usr/bin/drover-agent --config $etc/agent.toml run"
elif [ "$start" = yes ]; then
	systemctl enable --now drover-rootd drover-agent
	say "Started drover-rootd and drover-agent. Check them with: systemctl status drover-agent"
	# The agent writes its id at its first start; wait a little for it.
	tries=0
	while [ ! -s "$agent_state/agent.id" ] && [ "$tries" -lt 15 ]; do
		tries=$((tries + 1))
		sleep 1
	done
	agent_id=$(head -c 100 "$agent_state/agent.id" 2>/dev/null || true)
	if valid "$agent_id" 10 100 'A-Z0-9'; then
		say "This host's page: $DROVER_URL/agents/$agent_id${name:+ ($name)}"
		exit 0
	fi
else
	say "Not started (--no-start): systemctl enable --now drover-rootd drover-agent"
fi
say "The host appears in the fleet at $DROVER_URL/fleet once it has enrolled${name:+ (as $name)}."
