#!/usr/bin/env bash
# Installs tfgate on this machine (or into a staging root): the module into the system nginx's
# modules directory with a Debian-style modules-enabled entry, tfgate-batcher, its config, the
# nginx snippets, the systemd units and the docs. Build first (scripts/build.sh).
#
#   sudo scripts/install.sh                         # the system, PREFIX=/usr/local
#   DESTDIR=/tmp/stage PREFIX=/usr scripts/install.sh   # a staging root (packaging)
#
# Variables: DESTDIR, PREFIX (/usr/local), SYSCONFDIR (/etc), NGINX_MODULES_DIR (from nginx -V),
# NGINX_CONF_DIR (/etc/nginx), NGINX_MODULES_AVAILABLE (/usr/share/nginx/modules-available),
# SYSTEMD_UNIT_DIR (/etc/systemd/system), NGINX_USER (www-data), SETUP_SYSTEM (auto: create the
# service account and reload systemd when installing as root without DESTDIR; yes; no).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
SYSTEMD_UNIT_DIR=${SYSTEMD_UNIT_DIR:-/etc/systemd/system}
NGINX_USER=${NGINX_USER:-www-data}
NGINX_CONF_DIR=${NGINX_CONF_DIR:-/etc/nginx}
NGINX_MODULES_AVAILABLE=${NGINX_MODULES_AVAILABLE:-/usr/share/nginx/modules-available}
SETUP_SYSTEM=${SETUP_SYSTEM:-auto}
BINDIR=$PREFIX/bin
DOCDIR=$PREFIX/share/doc/tfgate
MODULE=${TFGATE_MODULE:-target/release/libngx_http_tfgate_module.so}

[ -f "$MODULE" ] && [ -x target/release/tfgate-batcher ] || die "nothing built yet: run scripts/build.sh first"
command -v nginx >/dev/null || die "nginx is not installed"
NGINX_MODULES_DIR=${NGINX_MODULES_DIR:-$(nginx -V 2>&1 | sed -n 's/.*--modules-path=\([^ ]*\).*/\1/p')}
NGINX_MODULES_DIR=${NGINX_MODULES_DIR:-/usr/lib/nginx/modules}

# Refuse a module this nginx would refuse, with nginx's own words.
check_dir=$(mktemp -d)
trap 'rm -rf "$check_dir"' EXIT
printf 'load_module %s;\nevents {}\n' "$(realpath "$MODULE")" >"$check_dir/nginx.conf"
if ! out=$(nginx -t -p "$check_dir" -c "$check_dir/nginx.conf" -e "$check_dir/error.log" 2>&1); then
    die "the module does not fit the installed nginx ($(installed_nginx_version)); rebuild with scripts/build.sh:
$(grep -m1 emerg <<<"$out")"
fi

put() { # mode, source, destination (relative to DESTDIR)
    install -D -m "$1" "$2" "$DESTDIR$3"
    echo "$3" >>"$manifest"
}
fill() { # template -> text with the install paths
    sed -e "s|@BINDIR@|$BINDIR|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" -e "s|@DOCDIR@|$DOCDIR|g" "$1"
}

manifest_path=$SYSCONFDIR/tfgate/.installed-files
manifest=$(mktemp)
put 0644 "$MODULE" "$NGINX_MODULES_DIR/ngx_http_tfgate_module.so"
put 0755 target/release/tfgate-batcher "$BINDIR/tfgate-batcher"
echo "load_module $NGINX_MODULES_DIR/ngx_http_tfgate_module.so;" >"$check_dir/mod.conf"
put 0644 "$check_dir/mod.conf" "$NGINX_MODULES_AVAILABLE/mod-http-tfgate.conf"
for f in nginx-conf/*.conf; do
    put 0644 "$f" "$SYSCONFDIR/tfgate/nginx/$(basename "$f")"
done
if [ ! -e "$DESTDIR$SYSCONFDIR/tfgate/batcher.toml" ]; then
    # allowed_peers names nginx's worker user.
    sed -e "s|^allowed_peers = \[\"www-data\"\]|allowed_peers = [\"$NGINX_USER\"]|" packaging/batcher.toml >"$check_dir/batcher.toml"
    put 0644 "$check_dir/batcher.toml" "$SYSCONFDIR/tfgate/batcher.toml"
else
    log "keeping the existing $SYSCONFDIR/tfgate/batcher.toml"
fi
for unit in tfgate-batcher.service tfgate-batcher.socket; do
    fill "packaging/systemd/$unit.in" >"$check_dir/$unit"
    put 0644 "$check_dir/$unit" "$SYSTEMD_UNIT_DIR/$unit"
done
for doc in README.md docs/*.md; do
    put 0644 "$doc" "$DOCDIR/$(basename "$doc")"
done
mkdir -p "$DESTDIR$NGINX_CONF_DIR/modules-enabled"
ln -sf "$NGINX_MODULES_AVAILABLE/mod-http-tfgate.conf" "$DESTDIR$NGINX_CONF_DIR/modules-enabled/50-mod-http-tfgate.conf"
echo "$NGINX_CONF_DIR/modules-enabled/50-mod-http-tfgate.conf" >>"$manifest"
echo "$manifest_path" >>"$manifest"
install -D -m 0644 "$manifest" "$DESTDIR$manifest_path"
rm -f "$manifest"

# On the live system: the service account and systemd told.
if [ "$SETUP_SYSTEM" = auto ]; then
    SETUP_SYSTEM=no
    [ -z "$DESTDIR" ] && [ "$(id -u)" -eq 0 ] && SETUP_SYSTEM=yes
fi
if [ "$SETUP_SYSTEM" = yes ]; then
    getent group tfgate >/dev/null || groupadd --system tfgate
    getent passwd tfgate >/dev/null || useradd --system --gid tfgate --home-dir /nonexistent --shell /usr/sbin/nologin tfgate
    # nginx's user needs no membership in the tfgate group: the sockets are 0666 and the
    # daemon serves only allowed_peers ($NGINX_USER).
    command -v systemctl >/dev/null && [ -d /run/systemd/system ] && systemctl daemon-reload
    log "installed. Next: edit $SYSCONFDIR/tfgate/batcher.toml, then"
    log "  systemctl enable --now tfgate-batcher.socket tfgate-batcher.service && nginx -t && systemctl restart nginx"
else
    log "installed into ${DESTDIR:-$PREFIX} (no users or services touched)"
fi
