#!/usr/bin/env bash
# The whole stack on loopback: tfs-sim (a TF Serving simulator) <- tfgate-batcher <- nginx with
# the tfgate module. Installs what is missing, builds, sends one prediction, and keeps serving
# until Ctrl-C.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

PORT=${TFGATE_DEMO_PORT:-8080}
SIM_PORT=${TFGATE_DEMO_SIM_PORT:-8500}

install_missing_packages
scripts/build.sh

run_dir=$(mktemp -d /tmp/tfgate-demo.XXXXXX)
chmod 755 "$run_dir"
pids=()
cleanup() {
    trap - EXIT INT TERM
    log "stopping"
    [ -f "$run_dir/nginx/nginx.pid" ] && kill -QUIT "$(cat "$run_dir/nginx/nginx.pid")" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$run_dir"
}
trap cleanup EXIT INT TERM

wait_for() { # description, command...
    local what=$1; shift
    for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "$what did not come up; logs in $run_dir"
}

target/release/tfs-sim --listen "127.0.0.1:$SIM_PORT" >"$run_dir/tfs-sim.log" 2>&1 &
pids+=($!)
wait_for "tfs-sim" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SIM_PORT"

cat >"$run_dir/batcher.toml" <<TOML
listen = "$run_dir/batcher.sock"
socket_mode = "0666"

[backend]
grpc = ["http://127.0.0.1:$SIM_PORT"]
TOML
target/release/tfgate-batcher --config "$run_dir/batcher.toml" >"$run_dir/batcher.log" 2>&1 &
pids+=($!)
wait_for "tfgate-batcher" test -S "$run_dir/batcher.sock"

mkdir -p "$run_dir/nginx/logs"
cat >"$run_dir/nginx/nginx.conf" <<NGINX
load_module $TFGATE_ROOT/target/release/libngx_http_tfgate_module.so;
$( [ "$(id -u)" -eq 0 ] && echo "user root;" )
pid $run_dir/nginx/nginx.pid;
error_log $run_dir/nginx/logs/error.log info;
events {}
http {
    access_log $run_dir/nginx/logs/access.log;
    client_body_temp_path $run_dir/nginx/body; proxy_temp_path $run_dir/nginx/proxy;
    fastcgi_temp_path $run_dir/nginx/fastcgi; uwsgi_temp_path $run_dir/nginx/uwsgi; scgi_temp_path $run_dir/nginx/scgi;
    upstream tfgate_batcher { server unix:$run_dir/batcher.sock; keepalive 16; }
    server {
        listen 127.0.0.1:$PORT;
        include $TFGATE_ROOT/nginx-conf/tfgate-errors.conf;
        tfgate_model half_plus_two versions=1,2 default=1;
        location ~* ^/v1/models {   # TF Serving matches paths case-insensitively
            tfgate_route on;
            proxy_pass http://tfgate_batcher;
            include $TFGATE_ROOT/nginx-conf/tfgate-proxy.conf;
        }
    }
}
NGINX
nginx -p "$run_dir/nginx" -c "$run_dir/nginx/nginx.conf" -e "$run_dir/nginx/logs/error.log"
wait_for "nginx" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT"

demo_request() {
    local path=$1 body=$2
    printf '\n$ curl -s -X POST http://127.0.0.1:%s%s -d '"'"'%s'"'"'\n' "$PORT" "$path" "$body"
    curl -s -X POST "http://127.0.0.1:$PORT$path" -d "$body"
    echo
}
demo_request /v1/models/half_plus_two:predict '{"instances": [1.0, 2.0, 5.0]}'
demo_request /v1/models/half_plus_two/versions/2:predict '{"instances": [1.0, 2.0, 5.0]}'

log "serving on http://127.0.0.1:$PORT (nginx + tfgate module -> tfgate-batcher -> tfs-sim); Ctrl-C to stop"
log "logs: $run_dir"
wait "${pids[0]}"
