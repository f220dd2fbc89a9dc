#!/usr/bin/env bash
# Builds Debian packages from the release outputs in target/release (runs scripts/build.sh
# first if they are missing) into target/debian/:
#
#   libnginx-mod-http-tfgate_VERSION_ARCH.deb  the module, enabled through modules-enabled like
#                                              Debian's libnginx-mod-*, the nginx snippets in
#                                              /etc/tfgate/nginx; depends on the nginx ABI it
#                                              was built for (the installed nginx's nginx-abi-*)
#   tfgate-batcher_VERSION_ARCH.deb            the daemon, its systemd units, /etc/tfgate/batcher.toml,
#                                              the tfgate system user
#
#   scripts/package-deb.sh
#
# VERSION is the workspace version in Cargo.toml; ARCH is dpkg's. Maintainer scripts, the
# copyright file and the man page are in packaging/debian/. Check the result with
# `lintian --fail-on error target/debian/*.deb`; scripts/test-packages.sh installs and tests it.
# Variables: DEB_MAINTAINER ("Name <email>").
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

OUT=target/debian
MODULE=target/release/libngx_http_tfgate_module.so
DAEMON=target/release/tfgate-batcher
MAINTAINER=${DEB_MAINTAINER:-tfgate maintainers <maintainers@tfgate.invalid>}

command -v dpkg-deb >/dev/null || die "dpkg-deb not found: this builds Debian packages on Debian"
command -v dpkg-shlibdeps >/dev/null || die "dpkg-shlibdeps not found: apt-get install dpkg-dev"
if [ ! -f "$MODULE" ] || [ ! -x "$DAEMON" ]; then
    log "release outputs missing: running scripts/build.sh"
    scripts/build.sh ngx-http-tfgate-module tfgate-batcher
fi

version=$(awk '/^\[workspace\.package\]/ { in_ws = 1; next }
               /^\[/ { in_ws = 0 }
               in_ws && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' Cargo.toml)
[ -n "$version" ] || die "no version under [workspace.package] in Cargo.toml"
arch=$(dpkg --print-architecture)

# The module only loads into the nginx build it was compiled against. Debian's nginx package
# provides a virtual package naming that ABI (e.g. nginx-abi-1.22.1-7), which Debian's own
# module packages depend on; take it from the installed nginx, after checking that this nginx
# really loads the module.
nginx_abi=$(dpkg-query -W -f='${Provides}' nginx 2>/dev/null | tr ',' '\n' | sed -n 's/^ *\(nginx-abi-[^ ]*\).*/\1/p' | head -n1)
[ -n "$nginx_abi" ] || die "the installed nginx package provides no nginx-abi-*: install Debian's nginx (apt-get install nginx)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'load_module %s;\nevents {}\n' "$(realpath "$MODULE")" >"$work/nginx.conf"
if ! out=$(nginx -t -p "$work" -c "$work/nginx.conf" -e "$work/error.log" 2>&1); then
    die "$MODULE does not load into the installed nginx ($(installed_nginx_version)); rebuild with scripts/build.sh:
$(grep -m1 emerg <<<"$out")"
fi

# Reproducible: timestamps (changelog, dpkg-deb's file dates) from the last commit.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
umask 022

# Staging follows dpkg-shlibdeps' layout: debian/PACKAGE/ is each package's root.
stage=$work/src/debian
mkdir -p "$stage"
touch "$stage/control"   # dpkg-shlibdeps wants one, and reads nothing from it

# put MODE SOURCE PACKAGE PATH
put() { install -D -m "$1" "$2" "$stage/$3$4"; }
# strip_to MODE SOURCE PACKAGE PATH: as dh_strip does (debug symbols and notes out).
strip_to() {
    put "$1" "$2" "$3" "$4"
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stage/$3$4"
}
# Native package (no Debian revision): the changelog is changelog.gz (Policy 12.7).
changelog() {
    printf '%s (%s) unstable; urgency=medium\n\n  * Built from the tfgate repository (commit %s) by scripts/package-deb.sh.\n\n -- %s  %s\n' \
        "$1" "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$MAINTAINER" \
        "$(date -R -u -d "@$SOURCE_DATE_EPOCH")" | gzip -9n >"$work/changelog.gz"
    put 0644 "$work/changelog.gz" "$1" "/usr/share/doc/$1/changelog.gz"
    sed "s|@YEAR@|$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)|" packaging/debian/copyright >"$work/copyright"
    put 0644 "$work/copyright" "$1" "/usr/share/doc/$1/copyright"
    if [ -f "packaging/debian/$1.lintian-overrides" ]; then
        put 0644 "packaging/debian/$1.lintian-overrides" "$1" "/usr/share/lintian/overrides/$1"
    fi
}
# control PACKAGE BINARIES... (then the remaining fields on stdin)
control() {
    local pkg=$1 root=$stage/$1 shlibs
    shift
    shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "${@/#/debian/$pkg}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
    [ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies for $pkg"
    mkdir -p "$root/DEBIAN"
    {
        echo "Package: $pkg"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: $MAINTAINER"
        echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
        sed "s|@SHLIBS@|$shlibs|"
    } >"$root/DEBIAN/control"
    # Everything under /etc is a conffile: dpkg keeps the administrator's edits on upgrade.
    (cd "$root" && find etc -type f 2>/dev/null | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
    [ -s "$root/DEBIAN/conffiles" ] || rm "$root/DEBIAN/conffiles"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
    for script in postinst prerm postrm; do
        if [ -f "packaging/debian/$pkg.$script" ]; then
            install -m 0755 "packaging/debian/$pkg.$script" "$root/DEBIAN/$script"
        fi
    done
}

# --- libnginx-mod-http-tfgate
pkg=libnginx-mod-http-tfgate
strip_to 0644 "$MODULE" $pkg /usr/lib/nginx/modules/ngx_http_tfgate_module.so
# An absolute path (Debian's own snippets say modules/..., relative to nginx's prefix), so that
# an nginx started with another prefix (-p) loads it too; scripts/install.sh writes the same.
echo "load_module /usr/lib/nginx/modules/ngx_http_tfgate_module.so;" >"$work/mod.conf"
put 0644 "$work/mod.conf" $pkg /usr/share/nginx/modules-available/mod-http-tfgate.conf
for f in nginx-conf/*.conf; do
    put 0644 "$f" $pkg "/etc/tfgate/nginx/$(basename "$f")"
done
put 0644 docs/module.md $pkg /usr/share/doc/$pkg/module.md
changelog $pkg
control $pkg /usr/lib/nginx/modules/ngx_http_tfgate_module.so <<EOF
Depends: $nginx_abi, @SHLIBS@
Recommends: nginx
Suggests: tfgate-batcher
Section: httpd
Priority: optional
Multi-Arch: foreign
Description: nginx module putting TensorFlow Serving models behind nginx
 ngx_http_tfgate_module checks bearer tokens (JWT, OpenID Connect JWKS) and
 routes TensorFlow Serving REST paths inside nginx: a model catalog with
 versions, labels, canary splits and per-model scopes, and trusted X-Tfgate-*
 headers for the tfgate-batcher daemon it hands requests to.
 .
 The nginx snippets tfgate-upstream.conf, tfgate-proxy.conf and
 tfgate-errors.conf, and example servers, are installed in /etc/tfgate/nginx.
EOF

# --- tfgate-batcher
pkg=tfgate-batcher
strip_to 0755 "$DAEMON" $pkg /usr/bin/tfgate-batcher
put 0644 packaging/batcher.toml $pkg /etc/tfgate/batcher.toml
for unit in tfgate-batcher.service tfgate-batcher.socket; do
    # The same templates as scripts/install.sh, filled with the package's paths.
    sed -e "s|@BINDIR@|/usr/bin|g" -e "s|@SYSCONFDIR@|/etc|g" -e "s|@DOCDIR@|/usr/share/doc/$pkg|g" \
        -e "s|Installed by scripts/install.sh.*|Installed by the tfgate-batcher package.|" \
        "packaging/systemd/$unit.in" >"$work/$unit"
    # Debian bookworm keeps units in /lib (the /usr merge moratorium).
    put 0644 "$work/$unit" $pkg "/lib/systemd/system/$unit"
done
gzip -9n <packaging/debian/tfgate-batcher.1 >"$work/tfgate-batcher.1.gz"
put 0644 "$work/tfgate-batcher.1.gz" $pkg /usr/share/man/man1/tfgate-batcher.1.gz
for doc in docs/batcher.md docs/operations.md; do
    put 0644 "$doc" $pkg "/usr/share/doc/$pkg/$(basename "$doc")"
done
changelog $pkg
control $pkg /usr/bin/tfgate-batcher <<EOF
Depends: adduser, @SHLIBS@
Suggests: libnginx-mod-http-tfgate
Section: net
Priority: optional
Description: batching daemon between nginx and TensorFlow Serving
 tfgate-batcher receives the TensorFlow Serving REST requests nginx accepted
 (with the tfgate module) over a Unix socket, converts them to tensors, gathers
 concurrent predictions into batched gRPC Predict calls and spreads them over
 one or more TensorFlow Serving replicas, with Prometheus metrics.
 .
 The package runs it under systemd as the tfgate user (socket activation on
 /run/tfgate/batcher.sock); the configuration is /etc/tfgate/batcher.toml.
EOF

mkdir -p "$OUT"
rm -f "$OUT"/*.deb
for pkg in libnginx-mod-http-tfgate tfgate-batcher; do
    dpkg-deb --build --root-owner-group -Zxz "$stage/$pkg" "$OUT/${pkg}_${version}_${arch}.deb" >/dev/null
    log "built $OUT/${pkg}_${version}_${arch}.deb"
done
