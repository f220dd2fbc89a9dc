#!/usr/bin/env bash
# Soak (issue 22): the whole stack under moderate, mixed REST and gRPC load for MINUTES, with an
# operational event every few phases, watching whether anything grows or is lost.
#
#   scripts/soak.sh [MINUTES=30]
#   SOAK_SVG=docs/img/soak.svg scripts/soak.sh 30      # the figure of docs/benchmarks.md, "Soak"
#
# The stack, on loopback in a temporary directory, from copies of the release binaries (a
# rebuild during a long run must not swap them underneath it):
#   - three tfs-sim replicas on 127.0.0.2, .3 and .4 (one port, as three hosts), found by the
#     daemon through `dns://` served by Debian's dnsmasq from a hosts file this script rewrites;
#   - redis-server holding the quota counters (`[quotas] store = "redis://..."`);
#   - tfgate-batcher with the audit log and the prediction log (sampling 5%);
#   - nginx with the module checking RS256 bearer tokens (tfgate-mint-tokens' JWKS), a REST
#     server and an HTTP/2 gRPC server.
# The load: consecutive phases (60 s each; MINUTES*60/16 s for runs under 10 minutes), each one
# tfgate-load run per protocol, open loop (Poisson) at SOAK_RATE requests/s each (150), with a
# valid token of a subject that changes per phase. Every second phase (from the third on), one
# second into it, an event, in turn: nginx reload, daemon SIGHUP reload (a changed setting),
# a DNS change (replica .4 leaves the name, then comes back), Redis restart, one backend
# (replica .3) killed with SIGKILL and restarted, log rotation (files moved away, SIGHUP, as
# logrotate's postrotate; the daemon must reopen them). Each event checks that it took effect.
# Every SAMPLE_S seconds: the daemon's RSS, fds (and of them Unix sockets), threads and fds on
# deleted files, nginx's workers' RSS, and one REST probe whose answer is checked (y = 0.5x + 2).
#
# Outputs, in SOAK_OUT (build/soak): samples.csv, phases.csv, events.csv, summary.json,
# summary.md (the tables of docs/benchmarks.md), final-metrics.txt, logs/; the SVG at SOAK_SVG
# ($SOAK_OUT/soak.svg). Exits non-zero when a goal is missed (scripts/lib/soak_report.py
# defines them exactly):
#   - lost requests 0: neither a correct answer nor a documented refusal, outside two documented
#     windows: the phase where a backend is killed (its calls in flight get 503 / UNAVAILABLE:
#     docs/batcher.md, [backend] grpc, a call whose connection breaks mid-way is not retried,
#     it may have run), and the phase of an nginx reload (a request written onto a connection
#     the old worker is closing fails at the client, never taken by nginx: at most 3 per
#     protocol, of those kinds only); any other refusal or error, any caller that gave up, is
#     lost;
#   - fds and threads flat after warm-up: the median of the last window within 2 of the
#     first's for fds other than Unix sockets and for threads, within 16 for all fds (nginx's
#     connections follow the load); never an fd on a deleted file;
#   - RSS growth after warm-up <= 5% (runs of 10 minutes or more: 2 minutes cannot tell a leak
#     from an allocator settling);
#   - every event took effect, and each kind fired.
#
# SOAK_RATE: requests/s per protocol (150). SOAK_SAMPLE_S: seconds between samples (5; 1 under
# 10 minutes). SOAK_EVENTS, SOAK_EVENT_EVERY: see below. SOAK_BUILD=0 uses target/release as it
# is (no cargo run).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/stack.sh"
cd "$TFGATE_ROOT"

MINUTES=${1:-30}
[[ $MINUTES =~ ^[0-9]+$ ]] && [ "$MINUTES" -ge 1 ] || die "usage: scripts/soak.sh [MINUTES=30]"
RATE=${SOAK_RATE:-150}
SOAK_OUT=${SOAK_OUT:-$TFGATE_ROOT/build/soak}
SOAK_SVG=${SOAK_SVG:-$SOAK_OUT/soak.svg}
TOTAL_S=$((MINUTES * 60))
# Phases of 60 s; a short run (CI's 2 minutes) has 16 shorter ones, so that every kind of event
# fires at least once (events every second phase: MINUTES*60/8 s apart).
if [ "$MINUTES" -ge 10 ]; then PHASE_S=60; else PHASE_S=$(calc "print $TOTAL_S / 16"); fi
PHASES=$(calc "printf \"%d\", $TOTAL_S / $PHASE_S")
SAMPLE_S=${SOAK_SAMPLE_S:-$([ "$MINUTES" -ge 10 ] && echo 5 || echo 1)}
# SOAK_EVENTS: another list or order (e.g. "nginx_reload" alone, to look at one kind closely).
read -r -a EVENTS <<<"${SOAK_EVENTS:-nginx_reload daemon_reload dns_change redis_restart backend_kill log_rotation}"
# SOAK_EVENT_EVERY: phases between events (2).
EVENT_EVERY=${SOAK_EVENT_EVERY:-2}

command -v redis-server >/dev/null || die "redis-server is not installed (Debian: apt-get install redis-server)"
[ -x /usr/sbin/dnsmasq ] || die "/usr/sbin/dnsmasq is missing (Debian: apt-get install dnsmasq-base)"
command -v python3 >/dev/null || die "python3 is missing"
if [ "${SOAK_BUILD:-1}" != 0 ]; then
    scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load tfgate-jwt-testkit >&2
fi

SOAK_DIR=$(mktemp -d /tmp/tfgate-soak.XXXXXX)
chmod 755 "$SOAK_DIR"   # dnsmasq, started as root, rereads its hosts file as nobody
BIN=$SOAK_DIR/bin
mkdir -p "$BIN" "$SOAK_DIR/logs/predictions" "$SOAK_DIR/rotated" "$SOAK_DIR/nginx/logs" "$SOAK_DIR/redis" "$SOAK_OUT"
for f in tfgate-batcher tfs-sim tfgate-load tfgate-mint-tokens libngx_http_tfgate_module.so; do
    cp "target/release/$f" "$BIN/" || die "target/release/$f is missing: run scripts/build.sh"
done
rm -f "$SOAK_OUT"/*.csv "$SOAK_OUT"/summary.* "$SOAK_OUT"/phases.jsonl
rm -rf "$SOAK_OUT/logs"

base=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768 and up)
SIM_PORT=$base; HTTP_PORT=$((base + 1)); GRPC_PORT=$((base + 2)); METRICS_PORT=$((base + 3))
DNS_PORT=$((base + 4)); REDIS_PORT=$((base + 5)); SIM_STATS_PORT=$((base + 6))
NAME=tfs.soak.test
REPLICAS=(127.0.0.2 127.0.0.3 127.0.0.4)
KILLED=1    # replica 127.0.0.3 is the one killed
MOVED=2     # replica 127.0.0.4 leaves DNS and comes back
METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics"
REST_URL="http://127.0.0.1:$HTTP_PORT/v1/models/half_plus_two/versions/1:predict"
GRPC_TARGET="http://127.0.0.1:$GRPC_PORT"

declare -A PIDS=()
LOAD_PIDS=()
cleanup() {
    local pid
    for pid in "${LOAD_PIDS[@]}" "${SAMPLER_PID:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
    [ -f "$SOAK_DIR/nginx/nginx.pid" ] && kill -QUIT "$(cat "$SOAK_DIR/nginx/nginx.pid")" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # The temporary directory goes; the logs stay with the results.
    mkdir -p "$SOAK_OUT/logs"
    cp "$SOAK_DIR"/*.log "$SOAK_DIR/nginx/logs/error.log" "$SOAK_OUT/logs/" 2>/dev/null || true
    rm -rf "$SOAK_DIR"
}
trap cleanup EXIT

now() { calc "printf \"%.3f\", $EPOCHREALTIME - $T0"; }
# Polls a command until it succeeds, for at most SECONDS; non-zero if it never did (an event's
# check failing is recorded, it does not stop the soak).
wait_until() { # seconds, command...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}
metric() { # series, exactly as exposed
    curl -s -m 2 "$METRICS_URL" | awk -v s="$1" '$1 == s { print $2 }'
}
metric_is() { [ "$(metric "$1")" = "$2" ]; }

start_sim() { # replica index
    local ip=${REPLICAS[$1]}
    # 2 ms + 20 us per row, two executors: a replica killed may have calls in flight (at this
    # load, now and then: the documented window then shows as 503s).
    "$BIN/tfs-sim" --listen "$ip:$SIM_PORT" --stats-listen "$ip:$SIM_STATS_PORT" --cost-us 2000,20 --executors 2 \
        >>"$SOAK_DIR/tfs-sim-$1.log" 2>&1 &
    PIDS[sim$1]=$!
    wait_until 10 bash -c "exec 3<>/dev/tcp/$ip/$SIM_PORT"
}

start_redis() {
    # No persistence: a restart loses the counters, as a cache node's would.
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$SOAK_DIR/redis" \
        >>"$SOAK_DIR/redis.log" 2>&1 &
    PIDS[redis]=$!
    wait_until 10 redis-cli -p "$REDIS_PORT" ping
}

write_hosts() { # replica indexes
    local i
    # Written aside and renamed, so dnsmasq never reads half a file.
    for i in "$@"; do echo "${REPLICAS[$i]} $NAME"; done >"$SOAK_DIR/hosts.new"
    chmod 644 "$SOAK_DIR/hosts.new"
    mv "$SOAK_DIR/hosts.new" "$SOAK_DIR/hosts"
}

# The daemon's configuration; MAX_DELAY_US changes at each SIGHUP reload event so that the
# reload applies something.
MAX_DELAY_US=2000
write_daemon_config() {
    cat >"$SOAK_DIR/batcher.toml.new" <<TOML
listen = "$SOAK_DIR/batcher.sock"
grpc_listen = "$SOAK_DIR/grpc.sock"
socket_mode = "0666"
metrics_listen = "127.0.0.1:$METRICS_PORT"

[backend]
grpc = ["dns://$NAME:$SIM_PORT"]
resolver = "127.0.0.1:$DNS_PORT"
resolve_interval_ms = 1000
health_interval_ms = 500

[batching]
max_batch_size = 64
max_delay_us = $MAX_DELAY_US

[audit]
path = "$SOAK_DIR/logs/audit.jsonl"

[prediction_log]
dir = "$SOAK_DIR/logs/predictions"
sampling_rate = 0.05

# Counted in Redis, too large to refuse anything: what is soaked is the counting.
[quotas]
store = "redis://127.0.0.1:$REDIS_PORT"
[quotas.plans.default]
rate = "1000000/s"
burst = 1000000
requests = "1000000000/day"
rows = "1000000000/day"
TOML
    mv "$SOAK_DIR/batcher.toml.new" "$SOAK_DIR/batcher.toml"
}

write_nginx_config() {
    local conf=$TFGATE_ROOT/nginx-conf
    cat >"$SOAK_DIR/nginx/nginx.conf" <<NGINX
load_module $BIN/libngx_http_tfgate_module.so;
$(nginx_conf_head "$SOAK_DIR/nginx")
    upstream tfgate_batcher { server unix:$SOAK_DIR/batcher.sock; keepalive 64; }
    upstream tfgate_batcher_grpc { server unix:$SOAK_DIR/grpc.sock; keepalive 64; }
    tfgate_model half_plus_two versions=1,2 default=1 scope=predict;
    tfgate_jwt_key_file $SOAK_DIR/tokens/jwks.json;
    tfgate_jwt_issuer https://idp.example;
    tfgate_jwt_audience tfgate;
    server {
        listen 127.0.0.1:$HTTP_PORT backlog=4096;
        include $conf/tfgate-errors.conf;
        location /v1/models {
            tfgate_jwt on;
            tfgate_route on;
            proxy_pass http://tfgate_batcher;
            include $conf/tfgate-proxy.conf;
        }
    }
    server {
        listen 127.0.0.1:$GRPC_PORT http2 backlog=4096;
        keepalive_requests 1000000;
        include $conf/tfgate-grpc-errors.conf;
        location /tensorflow.serving. {
            tfgate_jwt on;
            tfgate_route on;
            grpc_pass grpc://tfgate_batcher_grpc;
            include $conf/tfgate-grpc.conf;
        }
    }
}
NGINX
}
nginx_cmd() { nginx -p "$SOAK_DIR/nginx" -c "$SOAK_DIR/nginx/nginx.conf" -e "$SOAK_DIR/nginx/logs/error.log" "$@"; }
nginx_workers() { pgrep -P "$(cat "$SOAK_DIR/nginx/nginx.pid")" | sort | tr '\n' ' '; }

# --- the stack -------------------------------------------------------------------------------
log "soak: $MINUTES min, $PHASES phases of ${PHASE_S}s, REST and gRPC at $RATE requests/s each; stack in $SOAK_DIR"
mkdir -p "$SOAK_DIR/tokens"
"$BIN/tfgate-mint-tokens" "$SOAK_DIR/tokens" https://idp.example tfgate --subjects 16 >/dev/null
for i in "${!REPLICAS[@]}"; do start_sim "$i" || die "tfs-sim on ${REPLICAS[$i]} did not start (logs in $SOAK_OUT/logs)"; done
start_redis || die "redis-server did not start"
write_hosts 0 1 2
/usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --local=/test/ \
    --addn-hosts="$SOAK_DIR/hosts" --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
    --local-ttl=1 --pid-file="$SOAK_DIR/dnsmasq.pid" --log-facility=- >"$SOAK_DIR/dnsmasq.log" 2>&1 &
PIDS[dnsmasq]=$!
wait_until 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$DNS_PORT" || die "dnsmasq did not start"
write_daemon_config
RUST_LOG=info "$BIN/tfgate-batcher" --config "$SOAK_DIR/batcher.toml" >"$SOAK_DIR/batcher.log" 2>&1 &
DAEMON_PID=$!
PIDS[daemon]=$DAEMON_PID
wait_until 20 test -S "$SOAK_DIR/grpc.sock" || die "tfgate-batcher did not start: $(tail -5 "$SOAK_DIR/batcher.log")"
write_nginx_config
nginx_cmd || die "nginx did not start: $(tail -5 "$SOAK_DIR/nginx/logs/error.log")"
wait_until 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$HTTP_PORT" || die "nginx did not start"
TARGETS_SERIES="tfgate_backend_targets{name=\"dns://$NAME:$SIM_PORT\"}"
wait_until 10 metric_is "$TARGETS_SERIES" 3 || die "the daemon does not see 3 replicas: $(metric "$TARGETS_SERIES")"
PROBE_TOKEN=$(cat "$SOAK_DIR/tokens/rs256.token")
probe() { # prints the HTTP status, or "wrong" for a 200 with another answer
    local answer
    answer=$(curl -s -m 10 -w '\n%{http_code}' -X POST "$REST_URL" -H "Authorization: Bearer $PROBE_TOKEN" \
        -d '{"instances": [1.0]}' || true)
    case "$answer" in
        *'"predictions":[2.5]'*200) echo 200 ;;
        *200) echo wrong ;;
        *) echo "${answer##*$'\n'}" ;;
    esac
}
[ "$(probe)" = 200 ] || die "the stack does not answer a token's request correctly; logs in $SOAK_OUT/logs"
# The gRPC server answers too, before the clock starts.
first=$("$BIN/tfgate-load" grpc --target "$GRPC_TARGET" -M "authorization: Bearer $PROBE_TOKEN" --requests 1 2>&1 || true)
[ "$(field "$first" requests)" = 1 ] || die "the gRPC server does not answer: $first"

# --- sampling --------------------------------------------------------------------------------
T0=$EPOCHREALTIME
echo "t,daemon_rss_kb,daemon_fds,daemon_unix_fds,daemon_threads,daemon_deleted_fds,nginx_rss_kb,nginx_workers,probe" >"$SOAK_OUT/samples.csv"
sampler() {
    local rss threads fds unix deleted nginx_rss workers w
    while kill -0 "$DAEMON_PID" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status")
        threads=$(awk '/^Threads:/ { print $2 }' "/proc/$DAEMON_PID/status")
        fds=$(find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
        # An fd on a file that was moved away and deleted: a log the daemon did not reopen.
        deleted=$(find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 -lname '*(deleted)' | wc -l)
        # Unix sockets: the listeners and nginx's connections, whose number follows the load
        # (nginx keeps up to 64 idle ones per upstream and worker). The other fds (files, TCP to
        # the replicas and Redis, pipes) should not move at all.
        unix=$(awk 'NR == FNR { if (FNR > 1) u["socket:[" $7 "]"] = 1; next } ($0 in u) { n++ } END { print n + 0 }' \
            /proc/net/unix <(find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 -printf '%l\n'))
        nginx_rss=0; workers=0
        for w in $(nginx_workers); do
            nginx_rss=$((nginx_rss + $(awk '/^VmRSS:/ { print $2 }' "/proc/$w/status" 2>/dev/null || echo 0)))
            workers=$((workers + 1))
        done
        echo "$(now),$rss,$fds,$unix,$threads,$deleted,$nginx_rss,$workers,$(probe)" >>"$SOAK_OUT/samples.csv"
        sleep "$SAMPLE_S"
    done
}
sampler &
SAMPLER_PID=$!

# --- events: each fires, then checks that it took effect (0: checked) -------------------------
EVENT_DETAIL=""
event_nginx_reload() {
    local before
    before=$(nginx_workers)
    nginx_cmd -s reload || return 1
    # A new worker (not one of the old ones) serves.
    wait_until 10 bash -c "for w in \$(pgrep -P $(cat "$SOAK_DIR/nginx/nginx.pid")); do case ' $before' in *\" \$w \"*) ;; *) exit 0 ;; esac; done; exit 1"
    EVENT_DETAIL="workers $before-> $(nginx_workers)"
}
reloads_applied() { grep -c 'reload applied' "$SOAK_DIR/batcher.log" || true; }
event_daemon_reload() {
    local before
    before=$(reloads_applied)
    MAX_DELAY_US=$((MAX_DELAY_US == 2000 ? 3000 : 2000))
    write_daemon_config
    kill -HUP "$DAEMON_PID"
    wait_until 10 bash -c "[ \$(grep -c 'reload applied' $SOAK_DIR/batcher.log) -gt $before ]" || return 1
    EVENT_DETAIL="max_delay_us = $MAX_DELAY_US: $(grep 'reload applied' "$SOAK_DIR/batcher.log" | tail -1 | sed 's/.*reload applied/reload applied/; s/ backend=.*//')"
}
event_dns_change() {
    local started=$SECONDS
    # Replica .4 leaves the name (it keeps running, as a draining pod does), then comes back.
    write_hosts 0 1
    kill -HUP "${PIDS[dnsmasq]}"
    wait_until 10 metric_is "$TARGETS_SERIES" 2 || return 1
    sleep 1
    write_hosts 0 1 2
    kill -HUP "${PIDS[dnsmasq]}"
    wait_until 10 metric_is "$TARGETS_SERIES" 3 || return 1
    EVENT_DETAIL="3 -> 2 -> 3 targets in $((SECONDS - started)) s"
}
event_redis_restart() {
    local started=$SECONDS
    kill "${PIDS[redis]}"; wait "${PIDS[redis]}" 2>/dev/null || true
    sleep 1
    start_redis || return 1
    # The daemon reconnects within its backoff (50 ms to 5 s).
    wait_until 15 metric_is tfgate_quota_store_up 1 || return 1
    EVENT_DETAIL="store up again $((SECONDS - started)) s after the stop"
}
event_backend_kill() {
    local started=$SECONDS up="tfgate_backend_up{target=\"http://${REPLICAS[$KILLED]}:$SIM_PORT\"}"
    kill -KILL "${PIDS[sim$KILLED]}"; wait "${PIDS[sim$KILLED]}" 2>/dev/null || true
    sleep 1
    start_sim "$KILLED" || return 1
    # Probed back (a backoff of 50 ms to 5 s, then one GetModelStatus).
    wait_until 15 metric_is "$up" 1 || return 1
    EVENT_DETAIL="${REPLICAS[$KILLED]} killed, back in service $((SECONDS - started)) s later"
}
ROTATION=0
event_log_rotation() {
    local newest f
    ROTATION=$((ROTATION + 1))
    mv "$SOAK_DIR/logs/audit.jsonl" "$SOAK_DIR/rotated/audit.jsonl.$ROTATION"
    # As a shipper would: every prediction log file but the newest (the one being written).
    newest=$(find "$SOAK_DIR/logs/predictions" -name 'predictions-*' | sort | tail -1)
    for f in "$SOAK_DIR"/logs/predictions/predictions-*; do
        [ "$f" = "$newest" ] || mv "$f" "$SOAK_DIR/rotated/"
    done
    kill -HUP "$DAEMON_PID"
    # Reopened: a new audit file that grows, a new prediction log file, and the daemon holds
    # no fd on the moved audit file any more.
    wait_until 10 test -s "$SOAK_DIR/logs/audit.jsonl" || return 1
    wait_until 10 bash -c "[ \"\$(find $SOAK_DIR/logs/predictions -name 'predictions-*' | sort | tail -1)\" != '$newest' ]" || return 1
    wait_until 10 bash -c "! ls -l /proc/$DAEMON_PID/fd | grep -q 'rotated/audit'" || return 1
    EVENT_DETAIL="audit.jsonl.$ROTATION ($(wc -l <"$SOAK_DIR/rotated/audit.jsonl.$ROTATION") records) and $(find "$SOAK_DIR/rotated" -name 'predictions-*' | wc -l) prediction file(s) moved away, reopened"
    # logrotate would compress them; here they go, and an fd still on them would show as deleted.
    rm -f "$SOAK_DIR"/rotated/*
}

echo "t,phase,kind,ok,seconds,detail" >"$SOAK_OUT/events.csv"
fire() { # kind, phase
    local started=$EPOCHREALTIME t ok=1
    t=$(now)
    EVENT_DETAIL=""
    "event_$1" || ok=0
    [ "$ok" = 1 ] || log "event $1 failed its check"
    echo "$t,$2,$1,$ok,$(calc "printf \"%.1f\", $EPOCHREALTIME - $started"),\"${EVENT_DETAIL//\"/\'}\"" >>"$SOAK_OUT/events.csv"
    log "t=${t%.*}s phase $2: $1 ${EVENT_DETAIL}"
}

# --- phases ----------------------------------------------------------------------------------
: >"$SOAK_OUT/phases.jsonl"
event_number=0
for phase in $(seq 0 $((PHASES - 1))); do
    start=$(now)
    rest_token=$(cat "$SOAK_DIR/tokens/subjects/user-$((phase % 8)).token")
    grpc_token=$(cat "$SOAK_DIR/tokens/subjects/user-$((8 + phase % 8)).token")
    # Open loop (no coordinated omission), at most 64 in flight; a caller waiting 10 s gives up.
    "$BIN/tfgate-load" http --url "$REST_URL" -H "Authorization: Bearer $rest_token" --rate "$RATE" -c 64 \
        -d "$PHASE_S" --warmup 0 --give-up 10 --seed "$((phase + 1))" >"$SOAK_DIR/rest.json" 2>"$SOAK_DIR/rest.err" &
    LOAD_PIDS=($!)
    "$BIN/tfgate-load" grpc --target "$GRPC_TARGET" -M "authorization: Bearer $grpc_token" --rate "$RATE" -c 64 \
        -d "$PHASE_S" --warmup 0 --give-up 10 --seed "$((phase + 1001))" >"$SOAK_DIR/grpc.json" 2>"$SOAK_DIR/grpc.err" &
    LOAD_PIDS+=($!)
    kind=""
    if [ "$phase" -ge 2 ] && [ $(((phase - 2) % EVENT_EVERY)) -eq 0 ]; then
        kind=${EVENTS[$((event_number % ${#EVENTS[@]}))]}
        event_number=$((event_number + 1))
        sleep 1
        fire "$kind" "$phase"
    fi
    wait "${LOAD_PIDS[0]}" || true
    wait "${LOAD_PIDS[1]}" || true
    LOAD_PIDS=()
    end=$(now)
    for proto in rest grpc; do
        line=$(tail -1 "$SOAK_DIR/$proto.json")
        [ -n "$line" ] || line='{"failed_to_run":true}'
        printf '{"phase":%d,"start":%s,"end":%s,"event":"%s","proto":"%s","first_error":"%s","load":%s}\n' \
            "$phase" "$start" "$end" "$kind" "$proto" \
            "$(sed -n 's/^tfgate-load: first error: //p' "$SOAK_DIR/$proto.err" | head -1 | tr -d '"\\' | cut -c1-200)" \
            "$line" >>"$SOAK_OUT/phases.jsonl"
    done
    log "phase $((phase + 1))/$PHASES${kind:+ ($kind)}: rest $(field "$(cat "$SOAK_DIR/rest.json")" rps)/s p99 $(field "$(cat "$SOAK_DIR/rest.json")" p99_us) us, failures $(failures "$(cat "$SOAK_DIR/rest.json")"); grpc $(field "$(cat "$SOAK_DIR/grpc.json")" rps)/s p99 $(field "$(cat "$SOAK_DIR/grpc.json")" p99_us) us, failures $(failures "$(cat "$SOAK_DIR/grpc.json")")"
done
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true

# What the daemon counted: records written and dropped, backend retries, quota store errors.
curl -s "$METRICS_URL" | grep -E '^tfgate_(audit|prediction_log)_(records|dropped)_total|^tfgate_backend_retries_total|^tfgate_quota_store_errors_total|^tfgate_requests_total' \
    >"$SOAK_OUT/final-metrics.txt" || true

status=0
python3 scripts/lib/soak_report.py "$SOAK_OUT" --minutes "$MINUTES" --phase-s "$PHASE_S" --kinds "${EVENTS[*]}" \
    --machine "$(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)" || status=$?
python3 scripts/lib/soak_plot.py "$SOAK_OUT" "$SOAK_SVG" || die "the SVG could not be drawn"
log "samples, phases, events and summary in $SOAK_OUT; picture in $SOAK_SVG"
exit "$status"
