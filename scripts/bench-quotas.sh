#!/usr/bin/env bash
# Quota benchmark: what per-caller quotas cost in throughput through the whole stack
# (tfgate-load http -c 64 -> nginx + module -> tfgate-batcher -> tfs-sim without cost, so the
# gateway's own CPU is the limit), with quotas off, counters in memory, counters in Redis
# (Debian's redis-server on loopback, on the same cores), and counters in Redis over TLS
# (`rediss://`: a second redis-server with --tls-port and a test CA made by openssl,
# scripts/lib/pki.sh). The four configurations run in turn, RUNS times (interleaved, so drift
# on a shared machine hits each alike); the median of each is reported, with its ratio to quotas
# off, and what TLS adds to Redis's cost in points of throughput. Prints Markdown
# (docs/benchmarks.md, section "Quotas").
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

source "$(dirname "$0")/lib/stack.sh"
source "$(dirname "$0")/lib/pki.sh"
stack_init
REDIS_PORT=$((SIM_PORT + 10))
REDISS_PORT=$((SIM_PORT + 11))
stack_sim "" 1
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$STACK_DIR" >"$STACK_DIR/redis.log" 2>&1 &
REDIS_PID=$!
pki_init "$STACK_DIR/pki"
pki_issue redis "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth"
mkdir -p "$STACK_DIR/rediss"
redis-server --port 0 --tls-port "$REDISS_PORT" --bind 127.0.0.1 --tls-cert-file "$PKI/redis.pem" \
    --tls-key-file "$PKI/redis.key" --tls-ca-cert-file "$PKI/ca.pem" --tls-auth-clients no \
    --save "" --appendonly no --dir "$STACK_DIR/rediss" >"$STACK_DIR/rediss.log" 2>&1 &
REDISS_PID=$!
trap 'stack_down; stack_sim_down; kill "$REDIS_PID" "$REDISS_PID" 2>/dev/null; wait "$REDIS_PID" "$REDISS_PID" 2>/dev/null; rm -rf "$STACK_DIR"' EXIT
stack_wait redis-server redis-cli -p "$REDIS_PORT" ping
stack_wait "redis-server (TLS)" redis-cli --tls --cacert "$PKI/ca.pem" -p "$REDISS_PORT" ping

PLAN='[quotas.plans.default]
rate = "1000000/s"
burst = 1000000
requests = "1000000000/day"
rows = "1000000000/day"'

quotas_table() { # off | memory | redis | rediss
    case $1 in
        off) ;;
        memory) printf '[quotas]\nstore = "memory"\n%s\n' "$PLAN" ;;
        redis) printf '[quotas]\nstore = "redis://127.0.0.1:%s"\n%s\n' "$REDIS_PORT" "$PLAN" ;;
        rediss) printf '[quotas]\nstore = "rediss://127.0.0.1:%s"\nca_file = "%s"\n%s\n' "$REDISS_PORT" "$PKI/ca.pem" "$PLAN" ;;
    esac
}
redis_pid() { if [ "$1" = rediss ]; then echo "$REDISS_PID"; else echo "$REDIS_PID"; fi; }

# The stack with $1's [quotas]; every client connection its own caller (address and port).
start_stack() { # off | memory | redis | rediss
    stack_up "$(quotas_table "$1")" "tfgate_route on;" 'proxy_set_header X-Tfgate-Client $remote_addr:$remote_port;'
}

metric() { # series (name and labels exactly)
    curl -s "$METRICS_URL" | awk -v s="$1" '$1 == s { print $2 }'
}
cpu_ns() { local run; read -r run _ <<<"$(process_counters "$1")"; echo "$run"; }
per_request_us() { # ns before, ns after, requests
    calc "printf \"%.1f\", ($2 - $1) / 1000 / $3"
}
median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A rps=() p50=() p99=() errors=() daemon_cpu=() redis_cpu=() nginx_cpu=()
batch_sum=0 batch_count=0
modes="off memory redis rediss"
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${DURATION}s per run, $RUNS runs per configuration, interleaved" >&2
for run in $(seq "$RUNS"); do
    for mode in $modes; do
        start_stack "$mode"
        worker=$(stack_nginx_worker)
        redis=$(redis_pid "$mode")
        d0=$(cpu_ns "$DAEMON_PID"); r0=$(cpu_ns "$redis"); n0=$(cpu_ns "$worker")
        # The stack is warm already (start_stack): every request measured is in the CPU time.
        out=$(target/release/tfgate-load http -c "$CONCURRENCY" -d "$DURATION" --warmup 0 --url "$REST_URL")
        d1=$(cpu_ns "$DAEMON_PID"); r1=$(cpu_ns "$redis"); n1=$(cpu_ns "$worker")
        echo "run $run $mode: $out" >&2
        daemon_cpu[$mode]+="$(per_request_us "$d0" "$d1" "$(field "$out" requests)") "
        redis_cpu[$mode]+="$(per_request_us "$r0" "$r1" "$(field "$out" requests)") "
        nginx_cpu[$mode]+="$(per_request_us "$n0" "$n1" "$(field "$out" requests)") "
        rps[$mode]+="$(field "$out" rps) "
        p50[$mode]+="$(field "$out" p50_us) "
        p99[$mode]+="$(field "$out" p99_us) "
        errors[$mode]=$(( ${errors[$mode]:-0} + $(field "$out" errors) ))
        admitted=$(metric 'tfgate_quota_admitted_total{plan="default"}')
        refused=$(curl -s "$METRICS_URL" | grep -c '^tfgate_quota_refused_total' || true)
        [ "$mode" = off ] || [ -n "$admitted" ] || die "$mode: no request was counted; logs in $STACK_DIR"
        [ "$refused" -eq 0 ] || die "$mode: requests were refused; the benchmark measures counting only"
        if [ "$mode" = redis ] || [ "$mode" = rediss ]; then
            batch_sum=$(awk "BEGIN { print $batch_sum + $(metric tfgate_quota_store_batch_requests_sum) }")
            batch_count=$(awk "BEGIN { print $batch_count + $(metric tfgate_quota_store_batch_requests_count) }")
        fi
        stack_down
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
    echo "| $mode | $m | ${rps[$mode]% } | $(calc "printf \"%.3f\", $m / $off") | $(median <<<"${p50[$mode]}") | $(median <<<"${p99[$mode]}") | $(median <<<"${daemon_cpu[$mode]}") | $(median <<<"${nginx_cpu[$mode]}") | $(median <<<"${redis_cpu[$mode]}") | ${errors[$mode]} |"
done
echo
echo "Redis: $(awk "BEGIN { printf \"%.1f\", $batch_sum / ($batch_count > 0 ? $batch_count : 1) }") requests decided per script call on average (redis and rediss)."
# The cost of a store is 1 - rps/off; TLS's share is the difference between the two Redis legs.
cost_points() { calc "printf \"%.1f\", 100 * (1 - $(median <<<"${rps[$1]}") / $off)"; }
plain_cost=$(cost_points redis)
tls_cost=$(cost_points rediss)
added=$(calc "printf \"%.1f\", $tls_cost - $plain_cost")
echo
echo "Quota cost at c = $CONCURRENCY (1 - rps / off): redis:// $plain_cost points, rediss:// $tls_cost points; TLS adds $added points (goal <= 3: $(calc "print ($added <= 3) ? \"met\" : \"missed\"")). Per run (rediss - redis, points): $(
    i=1; for r in ${rps[redis]}; do
        t=$(echo ${rps[rediss]} | cut -d' ' -f$i)
        printf '%s ' "$(calc "printf \"%.1f\", 100 * ($r - $t) / $off")"; i=$((i + 1))
    done)"

# One client: what the admission adds to a request's latency (the Redis round trip included).
declare -A lone_p50=() lone_p99=()
for run in $(seq "$RUNS"); do
    for mode in $modes; do
        start_stack "$mode"
        out=$(target/release/tfgate-load http -c 1 -d "$DURATION" --url "$REST_URL")
        echo "run $run $mode c=1: $out" >&2
        lone_p50[$mode]+="$(field "$out" p50_us) "
        lone_p99[$mode]+="$(field "$out" p99_us) "
        stack_down
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
