#!/usr/bin/env bash
# Batching benchmark: the whole stack (tfgate-load -> nginx + module -> tfgate-batcher ->
# tfs-sim) with the default adaptive dispatch, side by side in one run with
#   - the same clients calling tfs-sim directly over gRPC, one row per Predict (unbatched);
#   - fixed dispatch set the way TF Serving's batching guide suggests (a partial batch waits
#     max_delay_us = 1000 for company, "e.g. 1 millisecond");
#   - the bound: executors x B / (FIXED + PER_ITEM x B), B = min(clients per executor,
#     max_batch_size), every executor always busy with batches as full as the clients allow.
# Prints Markdown tables (the figures in docs/benchmarks.md, section "Batching").
#
#   scripts/bench-batching.sh [SECONDS=3]
#   SECTIONS="closed open" SHAPES="2000,20" scripts/bench-batching.sh 5
#
# Sections: closed (closed loop, c = 1 8 32 64 256, one executor), executors (2 executors,
# c = 256), open (Poisson arrivals at 50/80/95% of capacity, latency from each request's
# scheduled time), latency (c = 1 added median over a direct call), cpu (daemon CPU time and
# context switches per request, from /proc, zero-cost simulator).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-3}
SECTIONS=${SECTIONS:-"closed executors open latency cpu"}
CONCURRENCIES=${CONCURRENCIES:-"1 8 32 64 256"}
read -r -a SHAPES <<<"${SHAPES:-20000,200 2000,20}"
FIXED_DELAY_US=${FIXED_DELAY_US:-1000}
MAX_BATCH=64

scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2

dir=$(mktemp -d /tmp/tfgate-bench-batching.XXXXXX)
chmod 755 "$dir"
sim_pid=""
stack_pids=()
stop_stack() {
    [ -f "$dir/nginx/nginx.pid" ] && kill -QUIT "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null || true
    for pid in "${stack_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${stack_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    stack_pids=()
    rm -f "$dir/nginx/nginx.pid"
    sleep 0.3
}
stop_sim() {
    [ -n "$sim_pid" ] && { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; }
    sim_pid=""
}
trap 'stop_stack; stop_sim; rm -rf "$dir"' EXIT

wait_for() { # description, command...
    local what=$1; shift
    for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "$what did not come up; logs in $dir"
}

base_port=$((20000 + RANDOM % 20000))
SIM_PORT=$base_port
HTTP_PORT=$((base_port + 1))
METRICS_PORT=$((base_port + 2))
URL="http://127.0.0.1:$HTTP_PORT/v1/models/half_plus_two/versions/1:predict"

start_sim() { # cost ("" for none), executors
    local cost_args=()
    [ -n "$1" ] && cost_args=(--cost-us "$1" --executors "$2")
    target/release/tfs-sim --listen "127.0.0.1:$SIM_PORT" "${cost_args[@]}" >"$dir/tfs-sim.log" 2>&1 &
    sim_pid=$!
    wait_for tfs-sim bash -c "exec 3<>/dev/tcp/127.0.0.1/$SIM_PORT"
}

# The daemon and nginx in front of the running simulator; $1 is the [batching] table's body.
start_stack() { # batching settings
    cat >"$dir/batcher.toml" <<TOML
listen = "$dir/batcher.sock"
socket_mode = "0666"
metrics_listen = "127.0.0.1:$METRICS_PORT"
[backend]
grpc = ["http://127.0.0.1:$SIM_PORT"]
[batching]
max_batch_size = $MAX_BATCH
$1
TOML
    RUST_LOG=warn target/release/tfgate-batcher --config "$dir/batcher.toml" >"$dir/batcher.log" 2>&1 &
    stack_pids+=($!)
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
    curl -sf -X POST "$URL" -d '{"instances": [1.0]}' >/dev/null || die "the stack does not answer; logs in $dir"
}

ADAPTIVE=""
FIXED="dispatch = \"fixed\"
max_delay_us = $FIXED_DELAY_US"

field() { # json line, key
    sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"
}
load_http() { target/release/tfgate-load http -d "${LOAD_SECONDS:-$DURATION}" --url "$URL" "$@"; }
load_grpc() { target/release/tfgate-load grpc -d "$DURATION" --target "http://127.0.0.1:$SIM_PORT" --version 1 "$@"; }
calc() { awk "BEGIN { $1 }"; }
bound() { # fixed, per_item, rows, executors
    calc "printf \"%.0f\", $4 * $3 * 1e6 / ($1 + $2 * $3)"
}
ratio() { calc "if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\""; }
rows_per_executor() { # clients, executors
    calc "c = int($1 / $2); if (c < 1) c = 1; if (c > $MAX_BATCH) c = $MAX_BATCH; print c"
}
batch_mix() { # the daemon's batches by reason, and mean rows per batch
    local metrics
    metrics=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics")
    local reasons sum count
    reasons=$(sed -n 's/^tfgate_batches_total{model="half_plus_two",reason="\([a-z_]*\)"} \(.*\)/\1=\2/p' <<<"$metrics" | tr '\n' ' ')
    sum=$(sed -n 's/^tfgate_batch_rows_sum{model="half_plus_two"} \(.*\)/\1/p' <<<"$metrics")
    count=$(sed -n 's/^tfgate_batch_rows_count{model="half_plus_two"} \(.*\)/\1/p' <<<"$metrics")
    echo "${reasons}mean rows $(ratio "${sum:-0}" "${count:-0}")"
}

section_closed() { # executors, concurrencies
    local executors=$1 concurrencies=$2
    for shape in "${SHAPES[@]}"; do
        local fixed=${shape%,*} per_item=${shape#*,}
        echo
        echo "### Closed loop, --cost-us $shape, $executors executor(s)"
        echo
        echo "| clients | bound rps | adaptive rps | adaptive/bound | p50 ms | p99 ms | fixed 1 ms rps | fixed/bound | direct rps | direct/bound | adaptive/fixed | adaptive/direct | errors |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        start_sim "$shape" "$executors"
        declare -A adaptive=() fixed_rps=()
        for policy in ADAPTIVE FIXED; do
            start_stack "${!policy}"
            for c in $concurrencies; do
                local h; h=$(load_http -c "$c")
                if [ $policy = ADAPTIVE ]; then adaptive[$c]=$h; else fixed_rps[$c]=$h; fi
            done
            [ $policy = ADAPTIVE ] && echo "adaptive batches: $(batch_mix)" >"$dir/mix"
            stop_stack
        done
        for c in $concurrencies; do
            local g a f best errors
            g=$(load_grpc -c "$c")
            a=${adaptive[$c]}; f=${fixed_rps[$c]}
            best=$(bound "$fixed" "$per_item" "$(rows_per_executor "$c" "$executors")" "$executors")
            errors=$(( $(field "$a" errors) + $(field "$f" errors) + $(field "$g" errors) ))
            echo "| $c | $best | $(field "$a" rps) | $(ratio "$(field "$a" rps)" "$best") | $(calc "printf \"%.1f\", $(field "$a" p50_us) / 1000") | $(calc "printf \"%.1f\", $(field "$a" p99_us) / 1000") | $(field "$f" rps) | $(ratio "$(field "$f" rps)" "$best") | $(field "$g" rps) | $(ratio "$(field "$g" rps)" "$best") | $(ratio "$(field "$a" rps)" "$(field "$f" rps)") | $(ratio "$(field "$a" rps)" "$(field "$g" rps)") | $errors |"
        done
        echo
        cat "$dir/mix"
        stop_sim
    done
}

section_open() {
    for shape in "${SHAPES[@]}"; do
        local fixed=${shape%,*} per_item=${shape#*,}
        local capacity full_ms
        capacity=$(bound "$fixed" "$per_item" $MAX_BATCH 1)
        full_ms=$(calc "printf \"%.1f\", ($fixed + $per_item * $MAX_BATCH) / 1000")
        echo
        echo "### Open loop (Poisson), --cost-us $shape: capacity $capacity rps, one full batch $full_ms ms"
        echo
        echo "| load | rate | adaptive p50 ms | adaptive p99 ms | p99 / full batch | unanswered + errors | fixed 1 ms p50 | fixed p99 | fixed unanswered + errors |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        start_sim "$shape" 1
        declare -A runs=()
        for policy in ADAPTIVE FIXED; do
            start_stack "${!policy}"
            for load in 50 80 95; do
                local rate; rate=$(calc "printf \"%.0f\", $capacity * $load / 100")
                runs[$policy$load]=$(load_http --rate "$rate" -c 1024 --warmup 1)
            done
            stop_stack
        done
        for load in 50 80 95; do
            local a=${runs[ADAPTIVE$load]} f=${runs[FIXED$load]}
            local ms="printf \"%.1f\","
            echo "| $load% | $(field "$a" rate) | $(calc "$ms $(field "$a" p50_us) / 1000") | $(calc "$ms $(field "$a" p99_us) / 1000") | $(calc "printf \"%.2f\", $(field "$a" p99_us) / 1000 / $full_ms") | $(( $(field "$a" unanswered) + $(field "$a" errors) )) | $(calc "$ms $(field "$f" p50_us) / 1000") | $(calc "$ms $(field "$f" p99_us) / 1000") | $(( $(field "$f" unanswered) + $(field "$f" errors) )) |"
        done
        stop_sim
    done
}

section_latency() {
    echo
    echo "### One client: the median the gateway adds over a direct call"
    echo
    echo "| simulator | direct p50 us | stack p50 us | added us | direct p99 us | stack p99 us |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for shape in "" "2000,0"; do
        start_sim "$shape" 1
        start_stack "$ADAPTIVE"
        local g h
        g=$(load_grpc -c 1); h=$(load_http -c 1)
        echo "| ${shape:-zero cost} | $(field "$g" p50_us) | $(field "$h" p50_us) | $(( $(field "$h" p50_us) - $(field "$g" p50_us) )) | $(field "$g" p99_us) | $(field "$h" p99_us) |"
        stop_stack
        stop_sim
    done
}

# The daemon's CPU time (ns, every thread, from schedstat) and context switches (voluntary and
# not) so far.
daemon_counters() {
    local ns=0 switches=0 task run s
    for task in /proc/"$DAEMON_PID"/task/*; do
        read -r run _ <"$task/schedstat" || continue
        s=$(awk '/ctxt_switches/ { n += $2 } END { print n + 0 }' "$task/status" 2>/dev/null || echo 0)
        ns=$((ns + run)); switches=$((switches + s))
    done
    echo "$ns $switches $(awk '{ print $10 }' /proc/"$DAEMON_PID"/stat)"
}

section_cpu() {
    echo
    echo "### Daemon CPU and context switches per single-row request (zero-cost simulator)"
    echo
    echo "| load | requests | daemon CPU us/request | context switches/request | page faults/request | daemon threads |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    start_sim "" 1
    start_stack "$ADAPTIVE"
    load_http -c 8 --requests 2000 >/dev/null
    local name args
    for name in "c=1" "c=64" "80/s paced"; do
        case $name in
            c=1) args=(-c 1) ;;
            c=64) args=(-c 64) ;;
            *) args=(--rate 80 -c 16) ;;
        esac
        local before after out requests
        before=$(daemon_counters)
        # Paced: long enough for a few hundred requests.
        out=$(LOAD_SECONDS=$([ "$name" = "80/s paced" ] && echo $((DURATION * 3)) || echo "$DURATION") \
            load_http "${args[@]}" --warmup 0)
        after=$(daemon_counters)
        requests=$(field "$out" requests)
        read -r ns0 sw0 pf0 <<<"$before"; read -r ns1 sw1 pf1 <<<"$after"
        echo "| $name | $requests | $(calc "printf \"%.1f\", ($ns1 - $ns0) / 1000 / $requests") | $(calc "printf \"%.2f\", ($sw1 - $sw0) / $requests") | $(calc "printf \"%.2f\", ($pf1 - $pf0) / $requests") | $(ls /proc/"$DAEMON_PID"/task | wc -l) |"
    done
    stop_stack
    stop_sim
}

echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${DURATION}s per run"
for section in $SECTIONS; do
    case $section in
        closed) section_closed 1 "$CONCURRENCIES" ;;
        executors) section_closed 2 "256" ;;
        open) section_open ;;
        latency) section_latency ;;
        cpu) section_cpu ;;
        *) die "unknown section $section" ;;
    esac
done
