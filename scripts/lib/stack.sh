# The whole stack for the benchmarks, in a temporary directory: tfs-sim, tfgate-batcher (REST
# socket and gRPC socket) and nginx with the module (a REST server and an HTTP/2 gRPC server in
# front of them). Sourced after common.sh; uses $STACK_DIR (created by stack_init).
#
#   stack_init                      # a directory and free ports; cleans up on exit
#   stack_sim COST EXECUTORS        # COST "" for a zero-cost simulator
#   stack_up "BATCHING TOML" "GRPC LOCATION DIRECTIVES" "REST LOCATION DIRECTIVES"
#                                   # BATCHING TOML may go on with other tables ([audit], ...);
#                                   # GRPC directives: "tfgate_route on;" when not given, none
#                                   # (grpc_pass only) when given as ""
#   stack_down; stack_sim_down
#
# After stack_up: $REST_URL, $GRPC_TARGET (nginx), $SIM_TARGET (direct), $SIM_STATS_URL
# (tfs-sim's counters), $DAEMON_PID, $METRICS_URL. TFGATE_BATCHER_BIN names another daemon
# binary to run (a baseline), target/release/tfgate-batcher by default. STACK_BACKEND names
# the daemon's backend target (tfs-sim's by default) and STACK_BACKEND_EXTRA adds lines to its
# [backend] table (e.g. protocol = "v2"). Both servers also route the Open Inference Protocol
# (REST /v2, gRPC /inference.GRPCInferenceService/): $V2_REST_URL is half_plus_two's infer path.

stack_init() {
    STACK_DIR=$(mktemp -d /tmp/tfgate-bench.XXXXXX)
    chmod 755 "$STACK_DIR"
    STACK_PIDS=()
    SIM_PID=""
    # Below the kernel's ephemeral range (32768 and up): a port there may be taken at any time
    # by an outgoing connection (the load's, the daemon's), which made a listener fail to bind.
    local base=$((20000 + RANDOM % 12000))
    SIM_PORT=$base
    HTTP_PORT=$((base + 1))
    METRICS_PORT=$((base + 2))
    GRPC_PORT=$((base + 3))
    SIM_STATS_PORT=$((base + 4))
    REST_URL="http://127.0.0.1:$HTTP_PORT/v1/models/half_plus_two/versions/1:predict"
    V2_REST_URL="http://127.0.0.1:$HTTP_PORT/v2/models/half_plus_two/versions/1/infer"
    GRPC_TARGET="http://127.0.0.1:$GRPC_PORT"
    SIM_TARGET="http://127.0.0.1:$SIM_PORT"
    SIM_STATS_URL="http://127.0.0.1:$SIM_STATS_PORT/stats"
    METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics"
    trap 'stack_down; stack_sim_down; rm -rf "$STACK_DIR"' EXIT
}

stack_wait() { # description, command...
    local what=$1; shift
    for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "$what did not come up; logs in $STACK_DIR"
}

stack_sim() { # cost ("" for none), executors
    local cost_args=()
    [ -n "$1" ] && cost_args=(--cost-us "$1" --executors "${2:-1}")
    target/release/tfs-sim --listen "127.0.0.1:$SIM_PORT" --stats-listen "127.0.0.1:$SIM_STATS_PORT" \
        "${cost_args[@]}" >"$STACK_DIR/tfs-sim.log" 2>&1 &
    SIM_PID=$!
    stack_wait tfs-sim bash -c "exec 3<>/dev/tcp/127.0.0.1/$SIM_PORT"
}

stack_sim_down() {
    [ -n "${SIM_PID:-}" ] && { kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; }
    SIM_PID=""
}

# The start of an nginx.conf for a benchmark's nginx under DIR (pid, logs, temporary files
# there): one worker, no access log, up to the opening of the http block.
nginx_conf_head() { # dir
    cat <<NGINX
$( [ "$(id -u)" -eq 0 ] && echo "user root;" )
worker_processes 1;
worker_rlimit_nofile 65536;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $1/body; proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi; uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
NGINX
}

# STACK_TOP: more top-level lines of batcher.toml (e.g. allowed_peers). STACK_KEEPALIVE: the
# nginx upstreams' idle connections to the daemon (512; 0: a new connection per request).
# STACK_HTTP_EXTRA: more directives in nginx's http block (e.g. a server with stub_status).
stack_up() { # [batching] body, extra directives of the gRPC location, of the REST location
    local batching=${1:-} grpc_extra=${2-tfgate_route on;} rest_extra=${3:-}
    local keepalive="keepalive ${STACK_KEEPALIVE:-512};"
    [ "${STACK_KEEPALIVE:-512}" = 0 ] && keepalive=""
    cat >"$STACK_DIR/batcher.toml" <<TOML
listen = "$STACK_DIR/batcher.sock"
grpc_listen = "$STACK_DIR/grpc.sock"
socket_mode = "0666"
metrics_listen = "127.0.0.1:$METRICS_PORT"
${STACK_TOP:-}
[backend]
grpc = ["${STACK_BACKEND:-http://127.0.0.1:$SIM_PORT}"]
${STACK_BACKEND_EXTRA:-}
[batching]
max_batch_size = 64
$batching
TOML
    RUST_LOG=warn "${TFGATE_BATCHER_BIN:-target/release/tfgate-batcher}" --config "$STACK_DIR/batcher.toml" >"$STACK_DIR/batcher.log" 2>&1 &
    DAEMON_PID=$!
    STACK_PIDS+=("$DAEMON_PID")
    stack_wait tfgate-batcher test -S "$STACK_DIR/grpc.sock"
    mkdir -p "$STACK_DIR/nginx/logs"
    local conf=$TFGATE_ROOT/nginx-conf
    cat >"$STACK_DIR/nginx/nginx.conf" <<NGINX
load_module $TFGATE_ROOT/target/release/libngx_http_tfgate_module.so;
$(nginx_conf_head "$STACK_DIR/nginx")
    upstream tfgate_batcher { server unix:$STACK_DIR/batcher.sock; $keepalive }
    upstream tfgate_batcher_grpc { server unix:$STACK_DIR/grpc.sock; $keepalive }
    tfgate_model half_plus_two versions=1,2 default=1;
    ${STACK_HTTP_EXTRA:-}
    server {
        listen 127.0.0.1:$HTTP_PORT backlog=4096;
        include $conf/tfgate-errors.conf;
        location /v1/models {
            tfgate_route on;
            proxy_pass http://tfgate_batcher;
            # Before the snippet: a header set here is the one the daemon reads.
            $rest_extra
            include $conf/tfgate-proxy.conf;
        }
        location ^~ /v2 {
            tfgate_route on;
            proxy_pass http://tfgate_batcher;
            $rest_extra
            include $conf/tfgate-proxy.conf;
        }
    }
    server {
        listen 127.0.0.1:$GRPC_PORT http2 backlog=4096;
        http2_max_concurrent_streams 1024;
        # An HTTP/2 connection is closed (GOAWAY) after keepalive_requests calls (1000 by
        # default), failing the calls in flight on it for clients that do not retry them.
        keepalive_requests 1000000;
        include $conf/tfgate-grpc-errors.conf;
        location /tensorflow.serving. {
            $grpc_extra
            grpc_pass grpc://tfgate_batcher_grpc;
            include $conf/tfgate-grpc.conf;
        }
        location /inference.GRPCInferenceService/ {
            $grpc_extra
            grpc_pass grpc://tfgate_batcher_grpc;
            include $conf/tfgate-grpc.conf;
        }
    }
}
NGINX
    nginx -p "$STACK_DIR/nginx" -c "$STACK_DIR/nginx/nginx.conf" -e "$STACK_DIR/nginx/logs/error.log"
    stack_wait nginx bash -c "exec 3<>/dev/tcp/127.0.0.1/$HTTP_PORT"
    # Warm the signature cache and the connections.
    curl -sf -X POST "$REST_URL" -d '{"instances": [1.0]}' >/dev/null || die "the stack does not answer; logs in $STACK_DIR"
}

stack_down() {
    [ -f "$STACK_DIR/nginx/nginx.pid" ] && kill -QUIT "$(cat "$STACK_DIR/nginx/nginx.pid")" 2>/dev/null || true
    for pid in "${STACK_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${STACK_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    STACK_PIDS=()
    rm -f "$STACK_DIR/nginx/nginx.pid"
    sleep 0.3
}

# The pid of the stack's nginx worker (one worker).
stack_nginx_worker() {
    pgrep -P "$(cat "$STACK_DIR/nginx/nginx.pid")" | head -1
}

# A field of tfgate-load's JSON line.
field() { # json line, key
    sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"
}

# Requests of a tfgate-load line that were not answered: errors, refusals, callers who gave up.
failures() { # json line
    echo $(( $(field "$1" errors) + $(field "$1" refused) + $(field "$1" gave_up) ))
}

calc() { awk "BEGIN { $1 }"; }

ratio() { calc "if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\""; }

# CPU time (ns, every thread, from schedstat), voluntary context switches (the process waited:
# a count of its own wake-ups, the same on any machine), involuntary ones (other processes
# preempted it: the machine's load) and minor page faults of a process so far.
process_counters() { # pid
    local ns=0 voluntary=0 involuntary=0 task run v i
    for task in /proc/"$1"/task/*; do
        read -r run _ <"$task/schedstat" || continue
        read -r v i <<<"$(awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { i = $2 } END { print v + 0, i + 0 }' "$task/status" 2>/dev/null || echo 0 0)"
        ns=$((ns + run)); voluntary=$((voluntary + v)); involuntary=$((involuntary + i))
    done
    echo "$ns $voluntary $involuntary $(awk '{ print $10 }' /proc/"$1"/stat)"
}
