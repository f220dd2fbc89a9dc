#!/usr/bin/env bash
# Batching benchmark: the whole stack (tfgate-load -> nginx + module -> tfgate-batcher ->
# tfs-sim) against the same clients calling tfs-sim directly, one row per Predict, for two
# accelerator cost shapes (tfs-sim --cost-us FIXED,PER_ITEM, one executor), at several
# concurrencies; and the ceiling the gateway's own CPU allows (a zero-cost simulator).
# Prints a Markdown table (the figures in docs/benchmarks.md, section "Batching").
#
#   scripts/bench-batching.sh [SECONDS=2] [CONCURRENCIES="1 8 64 256"]
#   MAX_DELAY_US=2000 MAX_INFLIGHT=1 SHAPES="2000,20" CEILING=no scripts/bench-batching.sh
#
# ideal = B / (FIXED + PER_ITEM x B) with B = min(concurrency, max_batch_size): one executor
# always busy with batches as full as the clients allow. ratio = stack rps / ideal.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-2}
CONCURRENCIES=${2:-"1 8 64 256"}
MAX_BATCH=${MAX_BATCH:-64}
MAX_INFLIGHT=${MAX_INFLIGHT:-2}
MAX_DELAY_US=${MAX_DELAY_US:-0}
read -r -a SHAPES <<<"${SHAPES:-2000,20 20000,200}"
CEILING=${CEILING:-yes}

scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2

dir=$(mktemp -d /tmp/tfgate-bench-batching.XXXXXX)
chmod 755 "$dir"
pids=()
stop_all() {
    [ -f "$dir/nginx/nginx.pid" ] && kill -QUIT "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
    sleep 0.3
}
trap 'stop_all; rm -rf "$dir"' EXIT

wait_for() { # description, command...
    local what=$1; shift
    for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "$what did not come up; logs in $dir"
}

base_port=$((20000 + RANDOM % 20000))
SIM_PORT=$base_port
HTTP_PORT=$((base_port + 1))
METRICS_PORT=$((base_port + 2))

# Starts sim (with optional --cost-us), daemon and nginx.
start_stack() { # cost ("" for none)
    local cost_args=()
    [ -n "$1" ] && cost_args=(--cost-us "$1" --executors 1)
    target/release/tfs-sim --listen "127.0.0.1:$SIM_PORT" "${cost_args[@]}" >"$dir/tfs-sim.log" 2>&1 &
    pids+=($!)
    wait_for tfs-sim bash -c "exec 3<>/dev/tcp/127.0.0.1/$SIM_PORT"
    cat >"$dir/batcher.toml" <<TOML
listen = "$dir/batcher.sock"
socket_mode = "0666"
metrics_listen = "127.0.0.1:$METRICS_PORT"
[backend]
grpc = ["http://127.0.0.1:$SIM_PORT"]
[batching]
max_batch_size = $MAX_BATCH
max_inflight_batches = $MAX_INFLIGHT
max_delay_us = $MAX_DELAY_US
max_queue = 4096
TOML
    RUST_LOG=warn target/release/tfgate-batcher --config "$dir/batcher.toml" >"$dir/batcher.log" 2>&1 &
    pids+=($!)
    wait_for tfgate-batcher test -S "$dir/batcher.sock"
    mkdir -p "$dir/nginx/logs"
    cat >"$dir/nginx/nginx.conf" <<NGINX
load_module $TFGATE_ROOT/target/release/libngx_http_tfgate_module.so;
$( [ "$(id -u)" -eq 0 ] && echo "user root;" )
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/nginx/body; proxy_temp_path $dir/nginx/proxy;
    fastcgi_temp_path $dir/nginx/fastcgi; uwsgi_temp_path $dir/nginx/uwsgi; scgi_temp_path $dir/nginx/scgi;
    upstream tfgate_batcher { server unix:$dir/batcher.sock; keepalive 512; }
    server {
        listen 127.0.0.1:$HTTP_PORT backlog=4096;
        include $TFGATE_ROOT/nginx-conf/tfgate-errors.conf;
        tfgate_model half_plus_two versions=1,2 default=1;
        location /v1/models {
            tfgate_route on;
            proxy_pass http://tfgate_batcher;
            include $TFGATE_ROOT/nginx-conf/tfgate-proxy.conf;
        }
    }
}
NGINX
    nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/logs/error.log"
    wait_for nginx bash -c "exec 3<>/dev/tcp/127.0.0.1/$HTTP_PORT"
    # Warm the signature cache and the connections.
    curl -sf -X POST "http://127.0.0.1:$HTTP_PORT/v1/models/half_plus_two/versions/1:predict" \
        -d '{"instances": [1.0]}' >/dev/null || die "the stack does not answer; logs in $dir"
}

field() { # json line, key
    sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"
}

load_http() { # concurrency
    target/release/tfgate-load http -c "$1" -d "$DURATION" \
        --url "http://127.0.0.1:$HTTP_PORT/v1/models/half_plus_two/versions/1:predict" \
        --body '{"instances": [1.0]}'
}

load_grpc() { # concurrency
    target/release/tfgate-load grpc -c "$1" -d "$DURATION" \
        --target "http://127.0.0.1:$SIM_PORT" --model half_plus_two --version 1
}

ideal() { # fixed, per_item, concurrency
    awk -v f="$1" -v p="$2" -v c="$3" -v m="$MAX_BATCH" \
        'BEGIN { b = (c < m) ? c : m; printf "%.0f", b * 1e6 / (f + p * b) }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${DURATION}s per run"
echo
if [ "$CEILING" = yes ]; then
    echo "### Gateway CPU ceiling (tfs-sim without cost)"
    echo
    echo "| concurrency | stack rps | stack p50 us | stack p99 us | direct gRPC rps | direct p50 us | p50 added us |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    start_stack ""
    for c in $CONCURRENCIES; do
        h=$(load_http "$c"); g=$(load_grpc "$c")
        added=$(awk -v a="$(field "$h" p50_us)" -v b="$(field "$g" p50_us)" 'BEGIN { print a - b }')
        echo "| $c | $(field "$h" rps) | $(field "$h" p50_us) | $(field "$h" p99_us) | $(field "$g" rps) | $(field "$g" p50_us) | $added |"
    done
    stop_all
fi

for shape in "${SHAPES[@]}"; do
    fixed=${shape%,*}; per_item=${shape#*,}
    echo
    echo "### --cost-us $shape (one executor), max_batch_size $MAX_BATCH, max_inflight_batches $MAX_INFLIGHT, max_delay_us $MAX_DELAY_US"
    echo
    echo "| concurrency | ideal rps | stack rps | stack/ideal | stack p50 us | stack p99 us | direct rps | direct p50 us | direct p99 us | stack/direct | errors |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    start_stack "$shape"
    for c in $CONCURRENCIES; do
        h=$(load_http "$c"); g=$(load_grpc "$c")
        best=$(ideal "$fixed" "$per_item" "$c")
        hr=$(field "$h" rps); gr=$(field "$g" rps)
        errors=$(( $(field "$h" errors) + $(field "$g" errors) ))
        echo "| $c | $best | $hr | $(ratio "$hr" "$best") | $(field "$h" p50_us) | $(field "$h" p99_us) | $gr | $(field "$g" p50_us) | $(field "$g" p99_us) | $(ratio "$hr" "$gr") | $errors |"
    done
    batches=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | sed -n 's/^tfgate_batches_total{model="half_plus_two",reason="\([a-z_]*\)"} \(.*\)/\1=\2/p' | tr '\n' ' ')
    rows=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | sed -n 's/^tfgate_batch_rows_\(sum\|count\){model="half_plus_two"} \(.*\)/\2/p' | tr '\n' ' ')
    echo
    echo "batches by reason: $batches; mean rows per batch: $(awk -v s="${rows% *}" 'BEGIN { split(s, a, " "); if (a[2] > 0) printf "%.1f", a[1] / a[2] }' 2>/dev/null || true)"
    stop_all
done
