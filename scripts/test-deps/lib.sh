# Shared by the scripts in this folder; sourced, not run.
# apt_install PKG...: installs the Debian packages that are missing, running
# `apt-get update` at most once per hour on this machine.
apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    local stamp=/tmp/.drover-apt-updated
    if [[ ! -f $stamp ]] || [[ -n $(find "$stamp" -mmin +60 2>/dev/null) ]]; then
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && touch "$stamp"
    fi
    echo "installing ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
