#!/usr/bin/env bash
# Logs benchmark: what the audit log and the prediction log cost through the whole stack
# (tfgate-load -> nginx + module -> tfgate-batcher -> tfs-sim without cost, so the gateway's own
# CPU is the bound) at 64 concurrent clients. Three configurations: logs off, audit on,
# prediction log at sampling rate 1.0 (every request; audit off). Runs are interleaved
# (off, audit, predictions, off, ...) so that the machine's drift spreads over all three;
# prints each run, then the medians and their ratios to "off" as Markdown (docs/benchmarks.md,
# section "Logs").
#
# Two measures of cost: throughput (what the goal is stated in, but on a small shared machine it
# swings with the neighbours' load), and CPU time per request of the stack's processes (daemon
# with its log threads, nginx's worker, tfs-sim; from /proc/PID/task/*/schedstat), which the
# neighbours disturb far less: in a CPU-bound stack throughput goes as its inverse.
#
#   scripts/bench-logs.sh [SECONDS=5] [ROUNDS=3]
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-5}
ROUNDS=${2:-3}
CLIENTS=${CLIENTS:-64}

scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2

dir=$(mktemp -d /tmp/tfgate-bench-logs.XXXXXX)
chmod 755 "$dir"
pids=()
stop_all() {
    [ -f "$dir/nginx/nginx.pid" ] && kill -QUIT "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
    rm -f "$dir/nginx/nginx.pid"
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
URL="http://127.0.0.1:$HTTP_PORT/v1/models/half_plus_two/versions/1:predict"

target/release/tfs-sim --listen "127.0.0.1:$SIM_PORT" >"$dir/tfs-sim.log" 2>&1 &
SIM_PID=$!
wait_for tfs-sim bash -c "exec 3<>/dev/tcp/127.0.0.1/$SIM_PORT"

# The daemon (with the logs of configuration $1) and nginx in front of the simulator.
start_stack() { # off | audit | predictions
    local logs=""
    rm -rf "$dir/logs"; mkdir -p "$dir/logs"
    case $1 in
        audit) logs="[audit]
path = \"$dir/logs/audit.jsonl\"" ;;
        predictions) logs="[prediction_log]
dir = \"$dir/logs/predictions\"
sampling_rate = 1.0" ;;
    esac
    cat >"$dir/batcher.toml" <<TOML
listen = "$dir/batcher.sock"
socket_mode = "0666"
[backend]
grpc = ["http://127.0.0.1:$SIM_PORT"]
$logs
TOML
    RUST_LOG=warn target/release/tfgate-batcher --config "$dir/batcher.toml" >"$dir/batcher.log" 2>&1 &
    pids+=($!)
    DAEMON_PID=$!
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
    curl -sf -X POST "$URL" -d '{"instances": [1.0]}' >/dev/null || die "the stack does not answer; logs in $dir"
}

# CPU time (ns) of every thread of the given processes so far.
cpu_ns() {
    local ns=0 pid task run
    for pid in "$@"; do
        for task in /proc/"$pid"/task/*; do
            read -r run _ <"$task/schedstat" 2>/dev/null || continue
            ns=$((ns + run))
        done
    done
    echo "$ns"
}

field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { $1 }"; }

declare -A rps=() p50=() p99=() stack_us=() daemon_us=()
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg) at start; ${DURATION}s per run, c = $CLIENTS"
echo
echo "| round | configuration | rps | p50 us | p99 us | stack CPU us/request | daemon CPU us/request | errors | written |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for round in $(seq "$ROUNDS"); do
    for config in off audit predictions; do
        start_stack "$config"
        target/release/tfgate-load http -c "$CLIENTS" -d 1 --warmup 0 --url "$URL" >/dev/null
        workers=$(pgrep -P "$(cat "$dir/nginx/nginx.pid")" | tr '\n' ' ')
        # shellcheck disable=SC2086
        stack0=$(cpu_ns "$DAEMON_PID" "$SIM_PID" $workers); daemon0=$(cpu_ns "$DAEMON_PID")
        result=$(target/release/tfgate-load http -c "$CLIENTS" -d "$DURATION" --warmup 0 --url "$URL")
        # shellcheck disable=SC2086
        stack1=$(cpu_ns "$DAEMON_PID" "$SIM_PID" $workers); daemon1=$(cpu_ns "$DAEMON_PID")
        stop_all
        written=$(du -sh "$dir/logs" | cut -f1)
        requests=$(field "$result" requests)
        s_us=$(calc "printf \"%.1f\", ($stack1 - $stack0) / 1000 / $requests")
        d_us=$(calc "printf \"%.1f\", ($daemon1 - $daemon0) / 1000 / $requests")
        rps[$config]+="$(field "$result" rps) "
        p50[$config]+="$(field "$result" p50_us) "
        p99[$config]+="$(field "$result" p99_us) "
        stack_us[$config]+="$s_us "
        daemon_us[$config]+="$d_us "
        echo "| $round | $config | $(field "$result" rps) | $(field "$result" p50_us) | $(field "$result" p99_us) | $s_us | $d_us | $(field "$result" errors) | $written |"
    done
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo
echo "| configuration | median rps | rps / off | median p50 us | median p99 us | median stack CPU us/request | stack CPU / off | median daemon CPU us/request |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
off=$(med "${rps[off]}")
off_cpu=$(med "${stack_us[off]}")
for config in off audit predictions; do
    m=$(med "${rps[$config]}")
    c=$(med "${stack_us[$config]}")
    echo "| $config | $m | $(calc "printf \"%.3f\", $m / $off") | $(med "${p50[$config]}") | $(med "${p99[$config]}") | $c | $(calc "printf \"%.3f\", $c / $off_cpu") | $(med "${daemon_us[$config]}") |"
done
kill "$SIM_PID" 2>/dev/null || true
