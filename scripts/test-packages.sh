#!/usr/bin/env bash
# Tests the Debian packages end to end on this machine (Debian, as root, with Debian's nginx):
# builds them (scripts/package-deb.sh), runs lintian, installs them with apt-get, checks that
# nginx loads the module through modules-enabled, sends a prediction through the installed
# module, snippets and daemon (nginx in a temporary prefix, the daemon as the tfgate user with a
# temporary copy of the installed config, tfs-sim as TF Serving), then purges both packages and
# checks that nothing is left behind. Works without systemd running (containers, CI).
#
#   sudo scripts/test-packages.sh
#
# The machine's own nginx configuration is not touched beyond the packages' modules-enabled link,
# which the purge removes; on any failure the packages are purged too.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

PACKAGES=(libnginx-mod-http-tfgate tfgate-batcher)
LINK=/etc/nginx/modules-enabled/50-mod-http-tfgate.conf

[ "$(id -u)" -eq 0 ] || die "run as root: it installs and purges packages"
command -v dpkg >/dev/null || die "needs Debian (dpkg, apt-get)"
command -v apt-get >/dev/null || die "needs Debian (dpkg, apt-get)"
command -v nginx >/dev/null || die "nginx is not installed (apt-get install nginx)"
[ -x target/release/tfs-sim ] || die "target/release/tfs-sim is missing: run scripts/build.sh"
for pkg in "${PACKAGES[@]}"; do
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
        die "$pkg is already installed: this test installs and purges it, run it on a machine without it"
    fi
done
for path in /etc/tfgate /usr/lib/nginx/modules/ngx_http_tfgate_module.so "$LINK"; do
    [ ! -e "$path" ] || die "$path exists (scripts/install.sh?): run this test on a machine without tfgate installed"
done
! getent passwd tfgate >/dev/null || die "a user tfgate exists: the purge would delete it; run this on another machine"

passed=0
failed=0
check() { # description, command...
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then
        passed=$((passed + 1))
        printf '  ok    %s\n' "$what"
    else
        failed=$((failed + 1))
        printf '  FAIL  %s\n' "$what"
    fi
}
absent() { [ ! -e "$1" ] && [ ! -L "$1" ]; }
not_installed() { [ -z "$(dpkg -L "$1" 2>/dev/null)" ]; }
modules_enabled() { find /etc/nginx/modules-enabled -mindepth 1 -printf '%f -> %l\n' 2>/dev/null | sort; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Below the kernel's ephemeral range (32768 and up on Debian), so no outgoing connection holds
# the port when the daemon binds it, and held by no socket now.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000))
        [ -z "$(ss -Htan "( sport = :$port )")" ] && ! port_open "$port" && { echo "$port"; return; }
    done
}
wait_for() { # description, command...: up to 30 s (a loaded CI machine)
    local what=$1
    shift
    for _ in $(seq 300); do
        "$@" && return 0
        sleep 0.1
    done
    die "timed out waiting for $what"
}

tmp=$(mktemp -d)
chmod 0755 "$tmp"   # nginx's workers (www-data) read the prefix
pids=()
installed=no
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "$installed" = yes ]; then
        log "purging the packages after a failure"
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${PACKAGES[@]}" >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

modules_before=$(modules_enabled)

log "building the packages"
scripts/package-deb.sh
if ! command -v lintian >/dev/null; then
    log "installing lintian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lintian >/dev/null
fi
log "lintian"
lintian --fail-on error target/debian/*.deb || die "lintian found errors in the packages"

log "installing target/debian/*.deb"
installed=yes
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ./target/debian/*.deb >"$tmp/apt.log" 2>&1 \
    || { cat "$tmp/apt.log" >&2; die "apt-get install failed"; }

echo "after installation:"
check "the module is installed" test -f /usr/lib/nginx/modules/ngx_http_tfgate_module.so
check "modules-enabled links to modules-available" \
    test "$(readlink "$LINK")" = /usr/share/nginx/modules-available/mod-http-tfgate.conf
check "nginx -t passes with the module loaded (the system configuration)" nginx -t -q
check "the nginx snippets are in /etc/tfgate/nginx" test -f /etc/tfgate/nginx/tfgate-proxy.conf
check "the daemon is in /usr/bin" test -x /usr/bin/tfgate-batcher
check "the installed batcher.toml passes check-config" /usr/bin/tfgate-batcher check-config /etc/tfgate/batcher.toml
check "batcher.toml is a conffile" grep -qx /etc/tfgate/batcher.toml /var/lib/dpkg/info/tfgate-batcher.conffiles
check "the systemd units are installed" test -f /lib/systemd/system/tfgate-batcher.service -a -f /lib/systemd/system/tfgate-batcher.socket
check "the service is enabled" test -L /etc/systemd/system/multi-user.target.wants/tfgate-batcher.service
check "the socket is enabled" test -L /etc/systemd/system/sockets.target.wants/tfgate-batcher.socket
check "the system user tfgate exists" getent passwd tfgate
check "www-data is not in the tfgate group (allowed_peers serves it)" bash -c '! id -nG www-data | grep -qw tfgate'
# An upgrade from a version that added www-data to the group takes it out again.
adduser --quiet www-data tfgate
/var/lib/dpkg/info/tfgate-batcher.postinst configure 0.0.1 >"$tmp/postinst.log" 2>&1 || { cat "$tmp/postinst.log" >&2; die "postinst failed"; }
check "configuring over an old install takes www-data out of the tfgate group" bash -c '! id -nG www-data | grep -qw tfgate'
check "the man page is installed" test -f /usr/share/man/man1/tfgate-batcher.1.gz

log "a prediction through the installed module and daemon"
sim_port=$(free_port)
metrics_port=$(free_port)
http_port=$(free_port)
target/release/tfs-sim --listen "127.0.0.1:$sim_port" >"$tmp/tfs-sim.log" 2>&1 &
pids+=($!)
wait_for "tfs-sim on port $sim_port" port_open "$sim_port"

# The installed config with the socket, metrics address and backend of this test.
install -d -o tfgate -g tfgate -m 0755 "$tmp/run"   # as RuntimeDirectoryMode
sed -e "s|^listen = .*|listen = \"$tmp/run/batcher.sock\"|" \
    -e "s|^grpc_listen = .*|grpc_listen = \"$tmp/run/grpc.sock\"|" \
    -e "s|^metrics_listen = .*|metrics_listen = \"127.0.0.1:$metrics_port\"|" \
    -e "s|^grpc = .*|grpc = [\"http://127.0.0.1:$sim_port\"]|" /etc/tfgate/batcher.toml >"$tmp/batcher.toml"
if ! grep -q "$tmp/run/batcher.sock" "$tmp/batcher.toml" || ! grep -q "127.0.0.1:$sim_port" "$tmp/batcher.toml"; then
    die "could not rewrite the installed batcher.toml (its listen/grpc lines changed?)"
fi
chmod 0644 "$tmp/batcher.toml"
setpriv --reuid=tfgate --regid=tfgate --init-groups \
    /usr/bin/tfgate-batcher --config "$tmp/batcher.toml" >"$tmp/batcher.log" 2>&1 &
pids+=($!)
batcher_pid=$!
socket_up() { [ -S "$tmp/run/batcher.sock" ] || { kill -0 "$batcher_pid" 2>/dev/null || { cat "$tmp/batcher.log" >&2; die "tfgate-batcher exited"; }; false; }; }
wait_for "the daemon's socket" socket_up

# Debian's module snippets (other libnginx-mod-* enabled here) load modules/... from the prefix.
ln -s /usr/lib/nginx/modules "$tmp/modules"
cat >"$tmp/nginx.conf" <<EOF
include /etc/nginx/modules-enabled/*.conf;
user www-data;              # as the system's nginx: served as allowed_peers, in no tfgate group
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log info;
events { worker_connections 64; }
http {
    access_log $tmp/access.log;
    client_body_temp_path $tmp/client_body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    upstream tfgate_batcher {
        server unix:$tmp/run/batcher.sock;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:$http_port;
        include /etc/tfgate/nginx/tfgate-errors.conf;
        tfgate_model half_plus_two versions=1,2 default=1;
        location ~* ^/v1/models {
            tfgate_route on;
            proxy_pass http://tfgate_batcher;
            include /etc/tfgate/nginx/tfgate-proxy.conf;
        }
    }
}
EOF
nginx -t -q -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log" || die "nginx -t refused the test configuration"
nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log" &
pids+=($!)
wait_for "nginx on port $http_port" port_open "$http_port"

answer=$(curl -sS --max-time 10 -X POST -H 'Content-Type: application/json' \
    "http://127.0.0.1:$http_port/v1/models/half_plus_two/versions/1:predict" -d '{"instances": [1.0, 2.0]}' || true)
echo "  answer: $answer"
check 'the prediction is {"predictions":[2.5,3.0]}' test "$answer" = '{"predictions":[2.5,3.0]}'
check "the daemon's /healthz answers" bash -c "curl -sf --max-time 5 http://127.0.0.1:$metrics_port/healthz | grep -qx ok"
# Every local user can open the socket (0666), but only nginx's user is served.
check "the socket is open to every local user" test "$(stat -c %a "$tmp/run/batcher.sock")" = 666
check "another local user (nobody) is refused on the socket" bash -c "! setpriv --reuid=nobody --regid=nogroup --clear-groups \
    curl -sf --max-time 5 --unix-socket $tmp/run/batcher.sock -X POST -d '{\"instances\": [1.0]}' \
    http://localhost/v1/models/half_plus_two:predict"
check "the refusal is counted" bash -c "curl -sf --max-time 5 http://127.0.0.1:$metrics_port/metrics \
    | grep -q '^tfgate_peer_refusals_total{socket=\"api\"} 1'"

for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
done
wait 2>/dev/null || true
pids=()

log "purging the packages"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${PACKAGES[@]}" >"$tmp/apt.log" 2>&1 \
    || { cat "$tmp/apt.log" >&2; die "apt-get purge failed"; }
installed=no

echo "after the purge:"
for pkg in "${PACKAGES[@]}"; do
    check "dpkg -L $pkg lists nothing" not_installed "$pkg"
done
for path in /etc/tfgate "$LINK" "$LINK.removed" /usr/lib/nginx/modules/ngx_http_tfgate_module.so \
    /usr/share/nginx/modules-available/mod-http-tfgate.conf /usr/bin/tfgate-batcher \
    /lib/systemd/system/tfgate-batcher.service /lib/systemd/system/tfgate-batcher.socket \
    /usr/share/doc/tfgate-batcher /usr/share/doc/libnginx-mod-http-tfgate /run/tfgate; do
    check "$path is gone" absent "$path"
done
check "no systemd enable links or helper state left" \
    test -z "$(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked -name '*tfgate*' 2>/dev/null)"
check "the user tfgate is gone" bash -c '! getent passwd tfgate'
check "the group tfgate is gone" bash -c '! getent group tfgate'
check "/etc/nginx/modules-enabled is as before" test "$(modules_enabled)" = "$modules_before"
check "nginx -t passes again" nginx -t -q

echo "packages: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || exit 1
