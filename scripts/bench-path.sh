#!/usr/bin/env bash
# The cost of the daemon's request path (issue 19): single-row predictions through the whole
# stack (tfgate-load -> nginx + module -> tfgate-batcher -> tfs-sim without cost), side by side
# in one run, interleaved over ROUNDS, for
#   - this checkout's daemon and a baseline daemon (built from BASELINE_REV, as
#     scripts/bench-overload.sh does), with the same nginx, module and simulator;
#   - nginx -> nginx: the same front nginx (module, `tfgate_route on`, tfgate-proxy.conf)
#     proxying to a second nginx over a Unix socket that answers a fixed prediction: what a
#     gateway that does nothing but proxy costs;
#   - tfs-sim called directly over gRPC (c = 1), for what the gateway adds to the median.
# Per load (c = 1, Poisson at 80/s, c = 64): requests/s, CPU per request of the daemon (or the
# second nginx) and of the front nginx worker, and the daemon's context switches per request
# (voluntary and involuntary counted together), from /proc.
#
#   scripts/bench-path.sh [SECONDS=4] [ROUNDS=3]
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-4}
ROUNDS=${2:-3}
BASELINE_REV=${BASELINE_REV:-20a9c37}
PACED_RATE=80

source "$(dirname "$0")/lib/baseline.sh"
build_current_and_baseline

source "$(dirname "$0")/lib/stack.sh"
stack_init

# nginx -> nginx: the stack's front server, its upstream a second nginx on a Unix socket.
proxy_up() {
    local dir=$STACK_DIR/proxy conf=$TFGATE_ROOT/nginx-conf
    mkdir -p "$dir/front/logs" "$dir/back/logs"
    cat >"$dir/back/nginx.conf" <<NGINX
$(nginx_conf_head "$dir/back")
    server {
        listen unix:$dir/back.sock;
        keepalive_requests 1000000;
        location / {
            client_body_buffer_size 64k;
            default_type application/json;
            return 200 '{"predictions": [2.5]}';
        }
    }
}
NGINX
    cat >"$dir/front/nginx.conf" <<NGINX
load_module $TFGATE_ROOT/target/release/libngx_http_tfgate_module.so;
$(nginx_conf_head "$dir/front")
    upstream back { server unix:$dir/back.sock; keepalive 512; }
    tfgate_model half_plus_two versions=1,2 default=1;
    server {
        listen 127.0.0.1:$HTTP_PORT backlog=4096;
        location /v1/models {
            tfgate_route on;
            proxy_pass http://back;
            include $conf/tfgate-proxy.conf;
        }
    }
}
NGINX
    nginx -p "$dir/back" -c "$dir/back/nginx.conf" -e "$dir/back/logs/error.log"
    nginx -p "$dir/front" -c "$dir/front/nginx.conf" -e "$dir/front/logs/error.log"
    stack_wait "nginx -> nginx" curl -sf -X POST "$REST_URL" -d '{"instances": [1.0]}'
    BACK_PID=$(pgrep -P "$(cat "$dir/back/nginx.pid")" | head -1)
    FRONT_PID=$(pgrep -P "$(cat "$dir/front/nginx.pid")" | head -1)
}

proxy_down() {
    local dir=$STACK_DIR/proxy
    for which in front back; do
        [ -f "$dir/$which/nginx.pid" ] && kill -QUIT "$(cat "$dir/$which/nginx.pid")" 2>/dev/null || true
    done
    sleep 0.3
}

load_args() { # load name
    case $1 in
        c1) echo "-c 1" ;;
        paced) echo "--rate $PACED_RATE -c 16" ;;
        c64) echo "-c 64" ;;
    esac
}
load_seconds() { [ "$1" = paced ] && echo $((DURATION * 3)) || echo "$DURATION"; }

# One measured load against what is up: the gateway process ($1: the daemon or the second
# nginx) and the front nginx worker ($2). Appends "rps p50 gateway_us nginx_us switches" to
# results[config/load].
declare -A results=()
measure() { # config, load, gateway pid, nginx worker pid
    local config=$1 load=$2 gateway=$3 worker=$4
    # shellcheck disable=SC2046
    target/release/tfgate-load http --url "$REST_URL" $(load_args "$load") -d 1 --warmup 0 >/dev/null
    local g0 g1 n0 n1 out requests
    g0=$(process_counters "$gateway"); n0=$(process_counters "$worker")
    # shellcheck disable=SC2046
    out=$(target/release/tfgate-load http --url "$REST_URL" $(load_args "$load") -d "$(load_seconds "$load")" --warmup 0)
    g1=$(process_counters "$gateway"); n1=$(process_counters "$worker")
    echo "round $round $config $load: $out" >&2
    requests=$(field "$out" requests)
    [ "$(failures "$out")" -eq 0 ] || die "$config $load: requests failed: $out"
    read -r gns0 gv0 gi0 _ <<<"$g0"; read -r gns1 gv1 gi1 _ <<<"$g1"
    read -r nns0 _ _ _ <<<"$n0"; read -r nns1 _ _ _ <<<"$n1"
    results[$config/$load]+="$(field "$out" rps) $(field "$out" p50_us) $(calc "printf \"%.1f\", ($gns1 - $gns0) / 1000 / $requests") $(calc "printf \"%.1f\", ($nns1 - $nns0) / 1000 / $requests") $(calc "printf \"%.2f\", ($gv1 - $gv0 + $gi1 - $gi0) / $requests");"
}

median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# The median over rounds of column $3 (1-based) of results[$1/$2].
column() { tr ';' '\n' <<<"${results[$1/$2]}" | awk -v c="$3" 'NF { print $c }' | median; }

declare -A direct_p50=()
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${DURATION}s per run (80/s: $((DURATION * 3))s), $ROUNDS rounds interleaved; baseline $BASELINE_REV" >&2
stack_sim "" 1
for round in $(seq "$ROUNDS"); do
    for config in baseline tfgate proxy; do
        case $config in
            proxy)
                proxy_up
                for load in c1 paced c64; do measure "$config" "$load" "$BACK_PID" "$FRONT_PID"; done
                proxy_down
                ;;
            *)
                bin=$CURRENT_BIN; [ "$config" = baseline ] && bin=$BASELINE_BIN
                TFGATE_BATCHER_BIN=$bin stack_up ""
                for load in c1 paced c64; do measure "$config" "$load" "$DAEMON_PID" "$(stack_nginx_worker)"; done
                stack_down
                ;;
        esac
    done
    out=$(target/release/tfgate-load grpc -d "$DURATION" --target "$SIM_TARGET" --version 1 -c 1)
    direct_p50[$round]=$(field "$out" p50_us)
done
direct=$(median <<<"${direct_p50[*]}")

echo
echo "### The request path, single-row predictions, zero-cost simulator (medians of $ROUNDS interleaved rounds)"
echo
echo "| load | gateway | requests/s | p50 us | gateway CPU us/request | front nginx worker CPU us/request | gateway / nginx CPU | gateway context switches/request |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for load in c1 paced c64; do
    for config in baseline tfgate proxy; do
        name=$config; [ "$config" = proxy ] && name="nginx -> nginx"; [ "$config" = baseline ] && name="baseline daemon"
        label=$load; [ "$load" = c1 ] && label="c = 1"; [ "$load" = paced ] && label="$PACED_RATE/s"; [ "$load" = c64 ] && label="c = 64"
        g=$(column "$config" "$load" 3); n=$(column "$config" "$load" 4)
        echo "| $label | $name | $(column "$config" "$load" 1) | $(column "$config" "$load" 2) | $g | $n | $(ratio "$g" "$n") | $(column "$config" "$load" 5) |"
    done
done
echo
echo "| goal | baseline daemon | tfgate |"
echo "| --- | ---: | ---: |"
for config in baseline tfgate; do
    eval "c64_$config=$(ratio "$(column "$config" c64 1)" "$(column proxy c64 1)")"
    eval "added_$config=$(( $(column "$config" c1 2) - direct ))"
done
echo "| whole stack at c = 64 / nginx -> nginx (goal >= 0.8) | $c64_baseline | $c64_tfgate |"
echo "| c = 1 median added over a direct gRPC call ($direct us; goal <= 150 us) | $added_baseline | $added_tfgate |"
