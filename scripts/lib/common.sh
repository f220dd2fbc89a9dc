# Shared helpers for tfgate's scripts. Source it; it defines functions and variables only.

TFGATE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Debian packages needed to build the module for the installed nginx and to run the tests.
TFGATE_APT_PACKAGES=(nginx nginx-dev libclang-dev build-essential pkg-config protobuf-compiler curl systemd openssl ca-certificates)

log() { printf '\033[1m[tfgate]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[tfgate] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Installs the Debian packages above that are missing (needs root or sudo).
install_missing_packages() {
    local missing=() pkg
    for pkg in "${TFGATE_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    log "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The version of the nginx binary on PATH, e.g. 1.22.1.
installed_nginx_version() {
    nginx -v 2>&1 | sed -n 's|^nginx version: nginx/\([0-9.]*\).*|\1|p'
}
