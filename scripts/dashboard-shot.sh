#!/usr/bin/env bash
# The picture of the Grafana dashboard in the docs (docs/img/dashboard.svg): the whole stack
# (scripts/lib/stack.sh: nginx with the module, tfgate-batcher, tfs-sim with a cost of
# 2 ms + 20 us per row), Debian's prometheus-nginx-exporter on nginx's stub_status and Debian's
# Prometheus (scrape and rule evaluation every 5 s, deploy/prometheus/tfgate.rules.yml), then
# load whose concurrency climbs and falls (1, 4, 16, 64, 16, 4 clients) so that batch fill
# changes over time, a few refusals (quota, memory, deadline) and backend errors on the way;
# finally scripts/render-dashboard.py draws every panel of deploy/grafana/tfgate.json from that
# Prometheus. Not a Grafana screenshot: the dashboard's own queries, drawn by that script.
#
#   scripts/dashboard-shot.sh [MINUTES=3] [OUT=docs/img/dashboard.svg]
#
# Needs the packages prometheus and prometheus-nginx-exporter (scripts/test.sh installs them).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

MINUTES=${1:-3}
OUT=${2:-docs/img/dashboard.svg}
command -v prometheus >/dev/null && command -v prometheus-nginx-exporter >/dev/null \
    || die "needs prometheus and prometheus-nginx-exporter (apt-get install prometheus prometheus-nginx-exporter)"

scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2

source "$(dirname "$0")/lib/stack.sh"
stack_init
STATUS_PORT=$((SIM_PORT + 5))
EXPORTER_PORT=$((SIM_PORT + 6))
PROMETHEUS_PORT=$((SIM_PORT + 7))
stack_sim "2000,20" 1

# stub_status on a port of its own; the plan from a request header (standing in for a token
# claim); a memory budget small enough for one large request to be refused.
STACK_HTTP_EXTRA="server { listen 127.0.0.1:$STATUS_PORT; location = /stub_status { stub_status; } }"
STACK_TOP="max_body_bytes_in_flight = 65536"
stack_up "
[audit]
path = \"$STACK_DIR/audit.jsonl\"
[prediction_log]
dir = \"$STACK_DIR/predictions\"
sampling_rate = 0.1
[quotas.plans.default]
requests = \"100000000/day\"
[quotas.plans.tiny]
requests = \"1/day\"" "tfgate_route on;" "proxy_set_header X-Tfgate-Plan \$http_x_test_plan;"

prometheus-nginx-exporter -nginx.scrape-uri="http://127.0.0.1:$STATUS_PORT/stub_status" \
    -web.listen-address="127.0.0.1:$EXPORTER_PORT" >"$STACK_DIR/nginx-exporter.log" 2>&1 &
STACK_PIDS+=("$!")
mkdir -p "$STACK_DIR/prometheus"
cat >"$STACK_DIR/prometheus/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $TFGATE_ROOT/deploy/prometheus/tfgate.rules.yml
scrape_configs:
  - job_name: tfgate
    static_configs:
      - targets: ["127.0.0.1:$METRICS_PORT"]
  - job_name: nginx
    static_configs:
      - targets: ["127.0.0.1:$EXPORTER_PORT"]
YAML
prometheus --config.file="$STACK_DIR/prometheus/prometheus.yml" --storage.tsdb.path="$STACK_DIR/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$STACK_DIR/prometheus.log" 2>&1 &
STACK_PIDS+=("$!")
stack_wait prometheus curl -sf "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"

START=$(date +%s)
# Refusals and errors now and then, beside the load: a request under the tiny plan (429), one
# too large for the memory budget (413), one with a deadline nobody can meet (503), and a
# backend call that fails (INTERNAL).
python3 -c 'print("{\"instances\": [" + ",".join(["1"] * 20000) + "]}")' >"$STACK_DIR/large.json"
(
    while true; do
        sleep 7
        curl -s -o /dev/null -X POST "$REST_URL" -H 'X-Test-Plan: tiny' -d '{"instances": [1.0]}' || true
        curl -s -o /dev/null -X POST "$REST_URL" --data-binary "@$STACK_DIR/large.json" || true
        curl -s -o /dev/null -X POST "$REST_URL" -H 'Request-Timeout: 0.000001' -d '{"instances": [1.0]}' || true
        curl -s -o /dev/null -X POST "${SIM_STATS_URL%/stats}/fail?code=13&count=1" || true
    done
) &
STACK_PIDS+=("$!")

phase=$((MINUTES * 60 / 6))
for clients in 1 4 16 64 16 4; do
    log "load: $clients client(s) for $phase s"
    target/release/tfgate-load -c "$clients" -d "$phase" --warmup 0 --threads 2 http --url "$REST_URL" \
        --body '{"instances": [1.0, 2.0]}' >/dev/null
done
sleep 10    # the last scrapes and rule evaluations
END=$(date +%s)

mkdir -p "$(dirname "$OUT")"
python3 scripts/render-dashboard.py --prometheus "http://127.0.0.1:$PROMETHEUS_PORT" \
    --start "$START" --end "$END" --step 5 --rate-interval 20s \
    --title "tfgate: $MINUTES minutes of load (1 to 64 clients) on nginx + tfgate-batcher + tfs-sim" --out "$OUT"
log "wrote $OUT"
