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

if [ -z "${NGINX_BUILD_DIR:-}" ]; then
    NGINX_BUILD_DIR=$(prepare_debian_build_tree)
fi
export NGINX_BUILD_DIR
[ -f "$NGINX_BUILD_DIR/ngx_auto_config.h" ] || die "NGINX_BUILD_DIR=$NGINX_BUILD_DIR is not a configured nginx objs/ directory"

packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(ngx-http-tfgate-module tfgate-batcher tfs-sim)
log "building ${packages[*]} against $NGINX_BUILD_DIR"
cargo build --release "${packages[@]/#/--package=}"
