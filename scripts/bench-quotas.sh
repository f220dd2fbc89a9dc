#!/usr/bin/env bash
# Quota benchmark: what per-caller quotas cost in throughput through the whole stack
# (tfgate-load http -c 64 -> nginx + module -> tfgate-batcher -> tfs-sim without cost, so the
# gateway's own CPU is the limit), with quotas off, counters in memory, and counters in
# Redis (Debian's redis-server on loopback, on the same cores). The three configurations run
# in turn, RUNS times (interleaved, so drift on a shared machine hits each alike); the median
# of each is reported, with its ratio to quotas off. Prints Markdown (docs/benchmarks.md,
# section "Quotas").
#
#   scripts/bench-quotas.sh [SECONDS=5] [RUNS=3]
#
# Every client connection is its own caller (X-Tfgate-Client is the client's address and port:
# 64 callers, as 64 users would be), on a plan with a rate, a request quota and a row quota,
# all too large to refuse anything: what is measured is the counting. The CPU time per request
# of the daemon, the nginx worker and redis-server comes from /proc (utime + stime over the
# run): on a shared machine it varies less than throughput does.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-5}
RUNS=${2:-3}
CONCURRENCY=${CONCURRENCY:-64}

command -v redis-server >/dev/null || die "redis-server is not installed (Debian: apt-get install redis-server)"
scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2

dir=$(mktemp -d /tmp/tfgate-bench-quotas.XXXXXX)
chmod 755 "$dir"
pids=()
stack_pids=()
stop_stack() {
    [ -f "$dir/nginx/nginx.pid" ] && kill -QUIT "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null || true
    for pid in "${stack_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${stack_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    stack_pids=()
    rm -f "$dir/nginx/nginx.pid"
    sleep 0.3
}
cleanup() {
    stop_stack
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

wait_for() { # description, command...
    local what=$1; shift
    for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "$what did not come up; logs in $dir"
}

base_port=$((20000 + RANDOM % 20000))
SIM_PORT=$base_port
HTTP_PORT=$((base_port + 1))
METRICS_PORT=$((base_port + 2))
REDIS_PORT=$((base_port + 3))
URL="http://127.0.0.1:$HTTP_PORT/v1/models/half_plus_two/versions/1:predict"

target/release/tfs-sim --listen "127.0.0.1:$SIM_PORT" >"$dir/tfs-sim.log" 2>&1 &
pids+=($!)
wait_for tfs-sim bash -c "exec 3<>/dev/tcp/127.0.0.1/$SIM_PORT"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
pids+=($!)
REDIS_PID=$!
wait_for redis-server redis-cli -p "$REDIS_PORT" ping

PLAN='[quotas.plans.default]
rate = "1000000/s"
burst = 1000000
requests = "1000000000/day"
rows = "1000000000/day"'

quotas_table() { # off | memory | redis
    case $1 in
        off) ;;
        memory) printf '[quotas]\nstore = "memory"\n%s\n' "$PLAN" ;;
        redis) printf '[quotas]\nstore = "redis://127.0.0.1:%s"\n%s\n' "$REDIS_PORT" "$PLAN" ;;
    esac
}

# The daemon and nginx as in scripts/bench-batching.sh, with $1's [quotas].
start_stack() {
    cat >"$dir/batcher.toml" <<TOML
listen = "$dir/batcher.sock"
socket_mode = "0666"
metrics_listen = "127.0.0.1:$METRICS_PORT"
[backend]
grpc = ["http://127.0.0.1:$SIM_PORT"]
$(quotas_table "$1")
TOML
    RUST_LOG=warn target/release/tfgate-batcher --config "$dir/batcher.toml" >"$dir/batcher.log" 2>&1 &
    stack_pids+=($!)
    DAEMON_PID=$!
    wait_for tfgate-batcher test -S "$dir/batcher.sock"
    mkdir -p "$dir/nginx/logs"
    # tfgate-proxy.conf's settings, but each client connection its own caller.
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
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Request-Id \$request_id;
            proxy_set_header X-Tfgate-Client \$remote_addr:\$remote_port;
            proxy_read_timeout 60s;
        }
    }
}
NGINX
    nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/logs/error.log"
    wait_for nginx bash -c "exec 3<>/dev/tcp/127.0.0.1/$HTTP_PORT"
    # Warm the signature cache and the connections (and, for Redis, the script cache).
    curl -sf -X POST "$URL" -d '{"instances": [1.0]}' >/dev/null || die "the stack does not answer; logs in $dir"
}

field() { # json line, key
    sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"
}
metric() { # series (name and labels exactly)
    curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v s="$1" '$1 == s { print $2 }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
per_request_us() { # ticks before, ticks after, requests
    awk -v hz="$(getconf CLK_TCK)" "BEGIN { printf \"%.1f\", ($2 - $1) * 1e6 / hz / $3 }"
}
median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk "BEGIN { printf \"%.3f\", $1 / $2 }"; }

declare -A rps=() p50=() p99=() errors=() daemon_cpu=() redis_cpu=() nginx_cpu=()
batch_sum=0 batch_count=0
modes="off memory redis"
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${DURATION}s per run, $RUNS runs per configuration, interleaved" >&2
for run in $(seq "$RUNS"); do
    for mode in $modes; do
        start_stack "$mode"
        worker=$(pgrep -P "$(cat "$dir/nginx/nginx.pid")" | head -1)
        d0=$(cpu_ticks "$DAEMON_PID"); r0=$(cpu_ticks "$REDIS_PID"); n0=$(cpu_ticks "$worker")
        # The stack is warm already (start_stack): every request measured is in the CPU time.
        out=$(target/release/tfgate-load http -c "$CONCURRENCY" -d "$DURATION" --warmup 0 --url "$URL")
        d1=$(cpu_ticks "$DAEMON_PID"); r1=$(cpu_ticks "$REDIS_PID"); n1=$(cpu_ticks "$worker")
        echo "run $run $mode: $out" >&2
        daemon_cpu[$mode]+="$(per_request_us "$d0" "$d1" "$(field "$out" requests)") "
        redis_cpu[$mode]+="$(per_request_us "$r0" "$r1" "$(field "$out" requests)") "
        nginx_cpu[$mode]+="$(per_request_us "$n0" "$n1" "$(field "$out" requests)") "
        rps[$mode]+="$(field "$out" rps) "
        p50[$mode]+="$(field "$out" p50_us) "
        p99[$mode]+="$(field "$out" p99_us) "
        errors[$mode]=$(( ${errors[$mode]:-0} + $(field "$out" errors) ))
        admitted=$(metric 'tfgate_quota_admitted_total{plan="default"}')
        refused=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep -c '^tfgate_quota_refused_total' || true)
        [ "$mode" = off ] || [ -n "$admitted" ] || die "$mode: no request was counted; logs in $dir"
        [ "$refused" -eq 0 ] || die "$mode: requests were refused; the benchmark measures counting only"
        if [ "$mode" = redis ]; then
            batch_sum=$(awk "BEGIN { print $batch_sum + $(metric tfgate_quota_store_batch_requests_sum) }")
            batch_count=$(awk "BEGIN { print $batch_count + $(metric tfgate_quota_store_batch_requests_count) }")
        fi
        stop_stack
    done
done

off=$(median <<<"${rps[off]}")
echo
echo "### Throughput with quotas, c = $CONCURRENCY, tfs-sim without cost (median of $RUNS interleaved runs)"
echo
echo "| quotas | rps (median) | runs | vs off | p50 us | p99 us | CPU us/request: daemon | nginx | redis-server | errors |"
echo "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for mode in $modes; do
    m=$(median <<<"${rps[$mode]}")
    echo "| $mode | $m | ${rps[$mode]% } | $(ratio "$m" "$off") | $(median <<<"${p50[$mode]}") | $(median <<<"${p99[$mode]}") | $(median <<<"${daemon_cpu[$mode]}") | $(median <<<"${nginx_cpu[$mode]}") | $(median <<<"${redis_cpu[$mode]}") | ${errors[$mode]} |"
done
echo
echo "Redis: $(awk "BEGIN { printf \"%.1f\", $batch_sum / ($batch_count > 0 ? $batch_count : 1) }") requests decided per script call on average."

# One client: what the admission adds to a request's latency (the Redis round trip included).
declare -A lone_p50=() lone_p99=()
for run in $(seq "$RUNS"); do
    for mode in $modes; do
        start_stack "$mode"
        out=$(target/release/tfgate-load http -c 1 -d "$DURATION" --url "$URL")
        echo "run $run $mode c=1: $out" >&2
        lone_p50[$mode]+="$(field "$out" p50_us) "
        lone_p99[$mode]+="$(field "$out" p99_us) "
        stop_stack
    done
done
echo
echo "### One client (c = 1): latency (median of $RUNS interleaved runs)"
echo
echo "| quotas | p50 us | added to p50 | p99 us |"
echo "| --- | ---: | ---: | ---: |"
lone_off=$(median <<<"${lone_p50[off]}")
for mode in $modes; do
    m=$(median <<<"${lone_p50[$mode]}")
    echo "| $mode | $m | $((m - lone_off)) | $(median <<<"${lone_p99[$mode]}") |"
done
