#!/usr/bin/env bash
# Builds the nginx module, tfgate-batcher and tfs-sim in release mode for the nginx installed
# on this machine. The module must be compiled against a build tree configured exactly like
# that nginx (same version, same configure flags), or nginx refuses to load it.
#
#   scripts/build.sh                 # tree prepared under build/ from Debian's nginx-dev
#   NGINX_BUILD_DIR=/path/objs scripts/build.sh   # use your own configured nginx tree
#   scripts/build.sh ngx-http-tfgate-module       # only some packages
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

command -v nginx >/dev/null || die "nginx is not installed (Debian: apt-get install nginx nginx-dev)"
command -v cargo >/dev/null || die "cargo is not installed (rustup, Rust >= 1.88)"

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

if [ -z "${NGINX_BUILD_DIR:-}" ]; then
    NGINX_BUILD_DIR=$(prepare_debian_build_tree)
fi
export NGINX_BUILD_DIR
[ -f "$NGINX_BUILD_DIR/ngx_auto_config.h" ] || die "NGINX_BUILD_DIR=$NGINX_BUILD_DIR is not a configured nginx objs/ directory"

packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(ngx-http-tfgate-module tfgate-batcher tfs-sim)
log "building ${packages[*]} against $NGINX_BUILD_DIR"
cargo build --release "${packages[@]/#/--package=}"
