# Shared helpers for tfgate's scripts. Source it; it defines functions and variables only.

TFGATE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Debian packages needed to build the module for the installed nginx and to run the tests.
TFGATE_APT_PACKAGES=(nginx nginx-dev libclang-dev build-essential pkg-config protobuf-compiler curl systemd openssl ca-certificates)
# What scripts/test.sh needs on top: lintian (the .deb checks), python3-venv (the official
# Python clients and readers in a cached venv), real servers the tests start on loopback:
# dnsmasq-base (the DNS server of tests/tests/discovery.rs; the binary alone, without the
# dnsmasq package's system service that would take port 53) and redis-server (shared quotas;
# it brings redis-cli; Debian builds it with TLS), openssl (the test certificates of
# tests/tests/secure_legs.rs) and curl (a client connecting as another user there);
# prometheus (promtool, which scripts/lint.sh runs on deploy/prometheus, and the server that
# tests/tests/operations.rs starts on loopback with its own data directory; Debian's package
# may also start a system service, which no test uses) and prometheus-nginx-exporter (nginx's
# stub_status as metrics, in that test).
TFGATE_TEST_APT_PACKAGES=(lintian python3-venv dnsmasq-base redis-server openssl curl prometheus prometheus-nginx-exporter)

log() { printf '\033[1m[tfgate]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[tfgate] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Installs the Debian packages that are missing (needs root or sudo): those named, else
# TFGATE_APT_PACKAGES.
install_missing_packages() {
    local missing=() pkg wanted=("$@")
    [ ${#wanted[@]} -gt 0 ] || wanted=("${TFGATE_APT_PACKAGES[@]}")
    for pkg in "${wanted[@]}"; do
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

# Prints the objs/ directory of an nginx build tree configured exactly like the installed
# Debian nginx (same version, Debian's configure flags), preparing it under build/ if missing.
prepare_debian_build_tree() {
    local version src tree
    version=$(installed_nginx_version)
    [ -n "$version" ] || die "cannot read the version of the installed nginx (nginx -v)"
    src=/usr/share/nginx/src
    [ -f "$src/conf_flags" ] || die "nginx-dev is not installed: apt-get install nginx-dev (it must match nginx $version)"
    # nginx-dev is pinned to the nginx package version; a mismatch means a half-upgraded system.
    grep -q "NGINX_VERSION *\"$version\"" "$src/src/core/nginx.h" \
        || die "nginx-dev headers are not for nginx $version: upgrade nginx and nginx-dev together"
    tree="$TFGATE_ROOT/build/nginx-$version"
    if [ ! -f "$tree/objs/ngx_auto_config.h" ]; then
        log "configuring an nginx $version build tree with Debian's flags in $tree"
        rm -rf "$tree"
        mkdir -p "$(dirname "$tree")"
        # configure writes into the directory it runs in: work on a copy.
        cp -r "$src" "$tree"
        # shellcheck disable=SC1091
        source "$tree/conf_flags"
        (cd "$tree" && ./configure \
            --with-cc-opt="$(dpkg-buildflags --get CFLAGS) -fPIC $(dpkg-buildflags --get CPPFLAGS)" \
            --with-ld-opt="$(dpkg-buildflags --get LDFLAGS) -fPIC" \
            "${NGX_CONF_FLAGS[@]}" >"$tree/configure.log" 2>&1) \
            || die "nginx configure failed, see $tree/configure.log"
    fi
    echo "$tree/objs"
}
