#!/usr/bin/env bash
# Builds the module the way users of nginx.org packages or their own nginx builds do: nginx's
# ./configure --add-dynamic-module=ngx-module, then make modules (which runs cargo). Here the
# source and flags are Debian's (nginx-dev), so the result must load into the installed nginx.
#
#   scripts/build-addon.sh      # -> build/addon-VERSION/objs/ngx_http_tfgate_module.so
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

version=$(installed_nginx_version)
tree="$TFGATE_ROOT/build/addon-$version"
# Configure again when the module's build files changed since (they are copied into the Makefile).
if [ ! -f "$tree/objs/Makefile" ] || [ ngx-module/config.make -nt "$tree/objs/Makefile" ] \
    || [ ngx-module/config -nt "$tree/objs/Makefile" ]; then
    rm -rf "$tree"
    mkdir -p "$(dirname "$tree")"
    cp -r /usr/share/nginx/src "$tree"
    # shellcheck disable=SC1091
    source "$tree/conf_flags"
    (cd "$tree" && ./configure \
        --with-cc-opt="$(dpkg-buildflags --get CFLAGS) -fPIC $(dpkg-buildflags --get CPPFLAGS)" \
        --with-ld-opt="$(dpkg-buildflags --get LDFLAGS) -fPIC" \
        "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$TFGATE_ROOT/ngx-module" >"$tree/configure.log" 2>&1) \
        || die "configure failed, see $tree/configure.log"
fi
make -C "$tree" -f objs/Makefile modules >"$tree/make.log" 2>&1 || die "make modules failed, see $tree/make.log"
log "built $tree/objs/ngx_http_tfgate_module.so"
