# Shared by Drover's installers; sourced, never run. Inputs arrive as
# upper-case environment variables and are only ever used as quoted words.
# Exit codes: 0 success, 1 validation, 2 install, 3 configuration.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
CHANGED=0

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { log "ERROR: $1" >&2; exit "${2:-2}"; }
need() { [[ -n "${!1:-}" ]] || fail "$1 is not set" 1; }

# Marks that this run changed something on the host.
changed() { CHANGED=$((CHANGED + 1)); log "changed: $*"; }

# The last line every installer prints: how many things this run changed.
finish() { log "RESULT changed=${CHANGED}"; exit 0; }

has_systemd() { [[ -d /run/systemd/system ]]; }

pkg_manager() {
    if command -v apt-get >/dev/null; then echo apt
    elif command -v dnf >/dev/null; then echo dnf
    else fail "no supported package manager (apt-get or dnf)" 2
    fi
}

# pkg_install PKG...: installs what is missing; nothing when all are there.
pkg_install() {
    local missing=()
    case "$(pkg_manager)" in
    apt)
        for p in "$@"; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
        done
        [[ ${#missing[@]} -eq 0 ]] && { log "already installed: $*"; return 0; }
        log "installing ${missing[*]}"
        apt-get update -qq || fail "apt-get update failed" 2
        apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=120 -o Dpkg::Use-Pty=0 -- "${missing[@]}" \
            || fail "apt-get install ${missing[*]} failed" 2
        ;;
    dnf)
        for p in "$@"; do rpm -q "$p" >/dev/null 2>&1 || missing+=("$p"); done
        [[ ${#missing[@]} -eq 0 ]] && { log "already installed: $*"; return 0; }
        log "installing ${missing[*]}"
        dnf install -y -q -- "${missing[@]}" || fail "dnf install ${missing[*]} failed" 2
        ;;
    esac
    changed "installed ${missing[*]}"
}

# put_file PATH MODE: writes stdin to PATH only when the content differs.
# Returns 0 when it wrote, 1 when the file was already so.
put_file() {
    local path="$1" mode="$2" tmp
    tmp="$(mktemp)"
    cat >"$tmp"
    if [[ -f "$path" ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        return 1
    fi
    mkdir -p "$(dirname "$path")"
    install -m "$mode" "$tmp" "$path"
    rm -f "$tmp"
    changed "wrote $path"
    return 0
}

service_running() {
    local unit="$1"
    if has_systemd; then systemctl is-active --quiet "$unit"
    else service "$unit" status >/dev/null 2>&1
    fi
}

# service_up UNIT RESTART: enables and starts UNIT; restarts it when
# RESTART is 1 (its configuration changed). systemd where it is PID 1, the
# init script otherwise (containers).
service_up() {
    local unit="$1" restart="${2:-0}"
    if has_systemd; then
        if ! systemctl is-enabled --quiet "$unit" 2>/dev/null; then
            systemctl enable --quiet "$unit" || fail "cannot enable $unit" 3
            changed "enabled $unit"
        fi
    fi
    if ! service_running "$unit"; then
        log "starting $unit"
        if has_systemd; then systemctl start "$unit"; else service "$unit" start; fi \
            || fail "$unit did not start" 3
        changed "started $unit"
    elif [[ "$restart" == 1 ]]; then
        log "restarting $unit for its new configuration"
        if has_systemd; then systemctl restart "$unit"; else service "$unit" restart; fi \
            || fail "$unit did not restart" 3
    fi
}

service_down() {
    local unit="$1"
    if service_running "$unit"; then
        if has_systemd; then systemctl disable --now "$unit" || true; else service "$unit" stop || true; fi
        changed "stopped $unit"
    fi
}

# wait_port PORT SECONDS: until something listens on 127.0.0.1:PORT.
wait_port() {
    local port="$1" secs="${2:-30}" i
    for ((i = 0; i < secs * 4; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.25
    done
    return 1
}
