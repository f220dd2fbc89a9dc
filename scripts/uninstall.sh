#!/usr/bin/env bash
# Removes what scripts/install.sh installed (its manifest lists every file), honouring the same
# DESTDIR and SYSCONFDIR. The service account is kept; a changed batcher.toml is kept too.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
manifest=$DESTDIR$SYSCONFDIR/tfgate/.installed-files
[ -f "$manifest" ] || die "no tfgate installation found ($manifest is missing)"

if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now tfgate-batcher.service tfgate-batcher.socket 2>/dev/null || true
fi
while read -r path; do
    case "$path" in
        */batcher.toml) cmp -s "$DESTDIR$path" "$TFGATE_ROOT/packaging/batcher.toml" || { log "keeping the edited $path"; continue; } ;;
    esac
    rm -f "$DESTDIR$path"
done <"$manifest"
rm -f "$manifest"
rmdir "$DESTDIR$SYSCONFDIR/tfgate/nginx" "$DESTDIR$SYSCONFDIR/tfgate" 2>/dev/null || true
[ -z "$DESTDIR" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ] && systemctl daemon-reload
log "uninstalled from ${DESTDIR:-/}; restart nginx to unload the module"
