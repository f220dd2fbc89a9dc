#!/usr/bin/env bash
# The whole product on loopback, shown step by step: nginx with the tfgate module (tokens,
# catalog, labels, canary split) -> tfgate-batcher (quotas, batching, audit log, metrics) ->
# tfs-sim (a TF Serving
# simulator with the cost shape of an accelerator). Installs what is missing, builds, shows each
# command and its answer, then keeps serving until Ctrl-C.
#
#   scripts/demo.sh          # show, then serve until Ctrl-C
#   scripts/demo.sh --once   # show, then stop (what the tests run)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

ONCE=0
[ "${1:-}" = "--once" ] && ONCE=1
PORT=${TFGATE_DEMO_PORT:-8080}
# Where the demo leaves a token for the README's own requests while it serves.
TOKEN_FILE=${TFGATE_DEMO_TOKEN_FILE:-/tmp/tfgate-demo.token}
SIM_PORT=${TFGATE_DEMO_SIM_PORT:-8500}
METRICS_PORT=${TFGATE_DEMO_METRICS_PORT:-9464}
GRPC_PORT=${TFGATE_DEMO_GRPC_PORT:-8081}

install_missing_packages
scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-jwt-testkit tfgate-load >&2

run_dir=$(mktemp -d /tmp/tfgate-demo.XXXXXX)
chmod 755 "$run_dir"
pids=()
cleanup() {
    trap - EXIT INT TERM
    [ -f "$run_dir/nginx/nginx.pid" ] && kill -QUIT "$(cat "$run_dir/nginx/nginx.pid")" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$run_dir"
    rm -f "$TOKEN_FILE"
}
trap cleanup EXIT INT TERM

wait_for() { # description, command...
    local what=$1; shift
    for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
    die "$what did not come up; logs in $run_dir"
}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

# A model with the cost shape of a GPU: 2 ms per call plus 20 us per row.
target/release/tfs-sim --listen "127.0.0.1:$SIM_PORT" --cost-us 2000,20 >"$run_dir/tfs-sim.log" 2>&1 &
pids+=($!)
target/release/tfgate-mint-tokens "$run_dir" https://idp.example tfgate --subjects 40
cat >"$run_dir/batcher.toml" <<TOML
listen = "$run_dir/batcher.sock"
grpc_listen = "$run_dir/grpc.sock"
socket_mode = "0666"
metrics_listen = "127.0.0.1:$METRICS_PORT"

[backend]
grpc = ["http://127.0.0.1:$SIM_PORT"]

# One JSON line per request answered.
[audit]
path = "$run_dir/audit.jsonl"

# Per-caller quotas: everyone on "default" (generous), user-39 on "trial" (nginx maps it).
[quotas.plans.default]
requests = "100000/day"
[quotas.plans.trial]
rate = "1/h"
burst = 3
TOML
target/release/tfgate-batcher --config "$run_dir/batcher.toml" >"$run_dir/batcher.log" 2>&1 &
pids+=($!)

mkdir -p "$run_dir/nginx/logs"
cat >"$run_dir/nginx/nginx.conf" <<NGINX
load_module $TFGATE_ROOT/target/release/libngx_http_tfgate_module.so;
$( [ "$(id -u)" -eq 0 ] && echo "user root;" )
pid $run_dir/nginx/nginx.pid;
error_log $run_dir/nginx/logs/error.log info;
events {}
http {
    log_format tfgate '\$remote_addr \$request_id "\$request" \$status sub=\$tfgate_jwt_sub '
                      'model=\$tfgate_model version=\$tfgate_model_version label=\$tfgate_model_label';
    access_log $run_dir/nginx/logs/access.log tfgate;
    # The caller's plan of quotas; in production a token claim: \$tfgate_jwt_claim_plan.
    map \$tfgate_jwt_sub \$tfgate_plan { user-39 trial; default ""; }
    client_body_temp_path $run_dir/nginx/body; proxy_temp_path $run_dir/nginx/proxy;
    fastcgi_temp_path $run_dir/nginx/fastcgi; uwsgi_temp_path $run_dir/nginx/uwsgi; scgi_temp_path $run_dir/nginx/scgi;
    upstream tfgate_batcher { server unix:$run_dir/batcher.sock; keepalive 32; }
    upstream tfgate_batcher_grpc { server unix:$run_dir/grpc.sock; keepalive 32; }
    # One catalog and one token policy for both servers: two versions; label stable sends 10%
    # of subjects to version 2; tokens from the locally minted key set.
    tfgate_model half_plus_two versions=1,2 default=stable scope=predict;
    tfgate_model_label half_plus_two stable 1 2:10%;
    tfgate_model_label half_plus_two canary 2;
    tfgate_jwt_key_file $run_dir/jwks.json;
    tfgate_jwt_issuer https://idp.example;
    tfgate_jwt_audience tfgate;
    # TF Serving's gRPC API (port 8500's role).
    server {
        listen 127.0.0.1:$GRPC_PORT http2;
        include $TFGATE_ROOT/nginx-conf/tfgate-grpc-errors.conf;
        location ~ ^/(tensorflow\.serving\.|inference\.GRPCInferenceService/) {
            tfgate_jwt on;
            tfgate_route on;
            grpc_pass grpc://tfgate_batcher_grpc;
            include $TFGATE_ROOT/nginx-conf/tfgate-grpc.conf;
        }
    }
    server {
        listen 127.0.0.1:$PORT;
        include $TFGATE_ROOT/nginx-conf/tfgate-errors.conf;
        location ~* ^/v1/models {
            tfgate_jwt on;
            tfgate_route on;
            proxy_pass http://tfgate_batcher;
            include $TFGATE_ROOT/nginx-conf/tfgate-proxy.conf;
            proxy_set_header X-Tfgate-Plan \$tfgate_plan;
        }
        location ^~ /v2 {
            tfgate_jwt on;
            tfgate_route on;
            proxy_pass http://tfgate_batcher;
            include $TFGATE_ROOT/nginx-conf/tfgate-proxy.conf;
            proxy_set_header X-Tfgate-Plan \$tfgate_plan;
        }
    }
}
NGINX
wait_for "tfs-sim" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SIM_PORT"
wait_for "tfgate-batcher" test -S "$run_dir/batcher.sock"
nginx -p "$run_dir/nginx" -c "$run_dir/nginx/nginx.conf" -e "$run_dir/nginx/logs/error.log"
wait_for "nginx" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT"

URL="http://127.0.0.1:$PORT/v1/models/half_plus_two"
BODY='{"instances": [1.0, 2.0, 5.0]}'
TOKEN=$(cat "$run_dir/rs256.token")
install -m 0644 "$run_dir/rs256.token" "$TOKEN_FILE"

step "1. No token: refused (RFC 6750), before any work is done"
show "curl -si -X POST $URL:predict -d '$BODY'"
curl -si -X POST "$URL:predict" -d "$BODY" | grep -Ei '^(HTTP|www-authenticate)|^\{' | tr -d '\r'

step "2. A token minted locally (RS256, subject \"bench\", scope \"predict\") is accepted"
show "TOKEN=\$(cat $run_dir/rs256.token)"
show "curl -s -X POST $URL:predict -H \"Authorization: Bearer \$TOKEN\" -d '$BODY'"
curl -s -X POST "$URL:predict" -H "Authorization: Bearer $TOKEN" -d "$BODY"; echo
echo "(label stable, version 1: y = 0.5x + 2)"

step "3. Labels and a canary split: canary is version 2; stable sends 10% of subjects to version 2"
show "curl -s -X POST $URL/labels/canary:predict -H \"Authorization: Bearer \$TOKEN\" -d '$BODY'"
curl -s -X POST "$URL/labels/canary:predict" -H "Authorization: Bearer $TOKEN" -d "$BODY"; echo
echo "(version 2: y = 0.5x + 3)"
show "for each of 40 subjects: curl -s -X POST $URL:predict -H \"Authorization: Bearer \$(cat subjects/user-\$i.token)\" -d '{\"instances\": [2.0]}'"
v1=0; v2=0
for i in $(seq 0 39); do
    answer=$(curl -s -X POST "$URL:predict" -H "Authorization: Bearer $(cat "$run_dir/subjects/user-$i.token")" -d '{"instances": [2.0]}')
    case "$answer" in *'[3.0]'*) v1=$((v1 + 1)) ;; *'[4.0]'*) v2=$((v2 + 1)) ;; *) echo "unexpected: $answer" ;; esac
done
echo "40 subjects -> $v1 on version 1, $v2 on version 2 (the choice is sticky per subject)"

step "4. A burst: 200 concurrent single-row requests (200 clients at once), batched into few backend calls"
metric() { # sum of a metric's series for half_plus_two
    curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v m="$1" 'index($0, m"{model=\"half_plus_two\"") == 1 { s += $NF } END { print s + 0 }'
}
calls_before=$(metric tfgate_batches_total); rows_before=$(metric tfgate_batch_rows_sum)
show "target/release/tfgate-load http --url $URL:predict -H \"Authorization: Bearer \$TOKEN\" -c 200 --requests 200"
target/release/tfgate-load http --url "$URL:predict" -H "Authorization: Bearer $TOKEN" -c 200 --requests 200
calls=$(( $(metric tfgate_batches_total) - calls_before )); rows=$(( $(metric tfgate_batch_rows_sum) - rows_before ))
show "curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep tfgate_batch"
echo "200 requests -> $calls backend calls, mean batch $(( rows / (calls > 0 ? calls : 1) )) rows"

step "5. The same model over TF Serving's gRPC API (through nginx's HTTP/2 server)"
show "target/release/tfgate-load grpc --target http://127.0.0.1:$GRPC_PORT --model half_plus_two -M \"authorization: Bearer \$TOKEN\" --requests 1"
target/release/tfgate-load grpc --target "http://127.0.0.1:$GRPC_PORT" --model half_plus_two -M "authorization: Bearer $TOKEN" --requests 1
show "the same call without a token"
target/release/tfgate-load grpc --target "http://127.0.0.1:$GRPC_PORT" --model half_plus_two --requests 1 || true
echo "(refused with gRPC status UNAUTHENTICATED, a trailers-only answer, not an HTML page; nginx logged why:)"
grep 'tfgate_jwt: missing' "$run_dir/nginx/logs/error.log" | tail -1 | sed 's/^.*tfgate_jwt:/  tfgate_jwt:/; s/, client.*//' 

step "6. The same model over the Open Inference Protocol (KServe v2), REST and gRPC: the same tokens, catalog and batches"
V2_URL="http://127.0.0.1:$PORT/v2/models/half_plus_two"
V2_BODY='{"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1.0, 2.0, 5.0]}]}'
show "curl -s -X POST $V2_URL/infer -H \"Authorization: Bearer \$TOKEN\" -d '$V2_BODY'"
curl -s -X POST "$V2_URL/infer" -H "Authorization: Bearer $TOKEN" -d "$V2_BODY"; echo
show "target/release/tfgate-load v2-grpc --target http://127.0.0.1:$GRPC_PORT --model half_plus_two -M \"authorization: Bearer \$TOKEN\" --requests 1"
target/release/tfgate-load v2-grpc --target "http://127.0.0.1:$GRPC_PORT" --model half_plus_two -M "authorization: Bearer $TOKEN" --requests 1

step "7. Quotas: user-39 is on plan trial (a bucket of 3, one more an hour); step 3 took one"
show "curl -si -X POST $URL:predict -H \"Authorization: Bearer \$(cat subjects/user-39.token)\" -d '{\"instances\": [2.0]}'   # 3 times"
for i in 1 2 3; do
    curl -si -X POST "$URL:predict" -H "Authorization: Bearer $(cat "$run_dir/subjects/user-39.token")" -d '{"instances": [2.0]}' \
        | grep -Ei '^(HTTP|ratelimit|retry-after)|^\{' | tr -d '\r'
    echo
done
echo "(the answers say where the caller stands: RateLimit-Policy and RateLimit, draft-ietf-httpapi-ratelimit-headers)"

step "8. The audit log: one line per request, with its caller, plan, model, version, batch and outcome"
show "tail -n 1 $run_dir/audit.jsonl"
for _ in $(seq 50); do grep -q '"code":"RESOURCE_EXHAUSTED"' "$run_dir/audit.jsonl" 2>/dev/null && break; sleep 0.1; done
tail -n 1 "$run_dir/audit.jsonl"

step "9. Where things are"
cat <<WHERE
  nginx access log (subject, model, resolved version, label): $run_dir/nginx/logs/access.log
  nginx error log (token refusals and why):                    $run_dir/nginx/logs/error.log
  tfgate-batcher log:                                           $run_dir/batcher.log
  audit log (JSON lines):                                       $run_dir/audit.jsonl
  metrics (Prometheus):                                         http://127.0.0.1:$METRICS_PORT/metrics
  health:                                                       http://127.0.0.1:$METRICS_PORT/healthz
  the nginx configuration of this demo:                         $run_dir/nginx/nginx.conf
WHERE
tail -n 2 "$run_dir/nginx/logs/access.log" | sed 's/^/  access.log: /'

step "10. Try it yourself while the demo serves (the token is in $TOKEN_FILE)"
show "TOKEN=\$(cat $TOKEN_FILE)"
show "curl -s -X POST $URL/versions/2:predict -H \"Authorization: Bearer \$TOKEN\" -d '$BODY'"
curl -s -X POST "$URL/versions/2:predict" -H "Authorization: Bearer $(cat "$TOKEN_FILE")" -d "$BODY"; echo

[ "$ONCE" -eq 1 ] && exit 0
log "serving on http://127.0.0.1:$PORT (nginx + tfgate module -> tfgate-batcher -> tfs-sim); Ctrl-C to stop"
wait "${pids[0]}"
