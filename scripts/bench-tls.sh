#!/usr/bin/env bash
# What TLS to TF Serving costs (issue 21): the daemon reaching tfs-sim (zero cost) in plaintext
# and over mTLS, side by side in one run, in two pairs of legs:
#   direct, TF Serving terminating TLS itself (as with its --ssl_config_file):
#     dplain: the daemon -> tfs-sim, h2c
#     dtls:   the daemon -> tfs-sim --tls-cert --tls-key --tls-client-ca (rustls, client
#             certificate required)
#   through a hop, a TLS stack nobody here wrote checking the client: Debian's nginx (no module)
#   in front of tfs-sim,
#     plain: listen http2 (h2c)          -> grpc_pass grpc://tfs-sim
#     tls:   listen ssl http2, ssl_verify_client on (client certificate required) -> the same.
# The TLS legs' targets are `https://127.0.0.1:P` with [backend.tls] (ca_file, cert_file,
# key_file, server_name). Certificates are made here with `openssl` (EC P-256, SAN
# DNS:tfs.test,IP:127.0.0.1; scripts/lib/pki.sh). Every connection is reused for the whole run
# (the hops: keepalive_requests 100000, and a keepalive pool to tfs-sim).
#
# Load: single-row REST predictions (`{"instances": [1.0]}` to half_plus_two) from tfgate-load
# through one front nginx with the module (one server per leg, each proxying to its daemon's
# Unix socket), as in scripts/bench-path.sh. Per leg, in turn (dplain, dtls, plain, tls, and
# again each round):
#   - c = 64 for SECONDS after a 2 s warm-up: requests/s, CPU per request (schedstat, every
#     thread) of the daemon and of the TLS server (the hop nginx's worker, or tfs-sim);
#   - c = 1 for SECONDS after a 2 s warm-up: median and p99 latency.
# Prints each round, the medians and the goals per pair (daemon CPU/request TLS / plaintext
# <= 1.05 at c = 64; c = 1 median TLS - plaintext <= 30 us) as Markdown tables.
#
#   scripts/bench-tls.sh [SECONDS=10] [ROUNDS=2]
#   TFGATE_SKIP_BUILD=1 scripts/bench-tls.sh     # use the binaries already in target/release
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-10}
ROUNDS=${2:-2}
WARMUP=${WARMUP:-2}
LEGS="dplain dtls plain tls"

command -v nginx >/dev/null || die "nginx is not installed (Debian: apt-get install nginx)"
if [ -z "${TFGATE_SKIP_BUILD:-}" ]; then
    scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2
fi
for bin in target/release/tfgate-batcher target/release/tfs-sim target/release/tfgate-load target/release/libngx_http_tfgate_module.so; do
    [ -e "$bin" ] || die "$bin is missing: scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load"
done

source "$(dirname "$0")/lib/stack.sh"
source "$(dirname "$0")/lib/pki.sh"
stack_init # $STACK_DIR, ports base..base+4 (tfs-sim on $SIM_PORT), cleanup on exit
trap 'exit 130' INT TERM
HOP_PORT_plain=$((SIM_PORT + 5))
HOP_PORT_tls=$((SIM_PORT + 6))
FRONT_PORT_plain=$((SIM_PORT + 7))
FRONT_PORT_tls=$((SIM_PORT + 8))
METRICS_PORT_plain=$((SIM_PORT + 9))
METRICS_PORT_tls=$((SIM_PORT + 10))
STATUS_PORT_plain=$((SIM_PORT + 11))
STATUS_PORT_tls=$((SIM_PORT + 12))
SIM_TLS_PORT=$((SIM_PORT + 13))
SIM_TLS_STATS_PORT=$((SIM_PORT + 14))
FRONT_PORT_dplain=$((SIM_PORT + 15))
FRONT_PORT_dtls=$((SIM_PORT + 16))
METRICS_PORT_dplain=$((SIM_PORT + 17))
METRICS_PORT_dtls=$((SIM_PORT + 18))
# Where each leg's daemon connects: the hop, or tfs-sim itself.
TARGET_PORT_plain=$HOP_PORT_plain
TARGET_PORT_tls=$HOP_PORT_tls
TARGET_PORT_dplain=$SIM_PORT
TARGET_PORT_dtls=$SIM_TLS_PORT
is_tls() { [ "$1" = tls ] || [ "$1" = dtls ]; }
has_hop() { [ "$1" = plain ] || [ "$1" = tls ]; }
leg_name() {
    case $1 in
        dplain) echo "direct: plaintext (h2c)" ;;
        dtls) echo "direct: mTLS (tfs-sim, rustls)" ;;
        plain) echo "nginx hop: plaintext (h2c)" ;;
        tls) echo "nginx hop: mTLS (nginx, OpenSSL)" ;;
    esac
}

# --- Certificates: a CA, the servers' certificate, the daemon's client certificate. ---
pki_init "$STACK_DIR/pki"
pki_issue server "subjectAltName=DNS:tfs.test,IP:127.0.0.1
extendedKeyUsage=serverAuth"
pki_issue client "extendedKeyUsage=clientAuth"

# --- The hop: Debian's nginx (no module) in front of tfs-sim, one per leg. ---
# In the foreground (daemon off) as the script's child, so stack_down stops it with the rest.
nginx_up() { # name (a directory under $STACK_DIR), description
    local dir=$STACK_DIR/$1
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" >"$dir/logs/stderr.log" 2>&1 &
    STACK_PIDS+=("$!")
    eval "NGINX_PID_${1//-/_}=$!"
}
nginx_worker() { pgrep -P "$1" | head -1; }

hop_conf() { # leg
    local leg=$1 dir=$STACK_DIR/hop-$1 listen tls=""
    local port_var=HOP_PORT_$leg status_var=STATUS_PORT_$leg
    mkdir -p "$dir/logs"
    if [ "$leg" = tls ]; then
        listen="listen 127.0.0.1:${!port_var} ssl http2 backlog=4096;"
        # nginx 1.22's default is TLSv1 to TLSv1.2; TF Serving (gRPC, BoringSSL) speaks 1.3.
        tls="ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $PKI/server.pem;
        ssl_certificate_key $PKI/server.key;
        ssl_client_certificate $PKI/ca.pem;
        ssl_verify_client on;"
    else
        listen="listen 127.0.0.1:${!port_var} http2 backlog=4096;"
    fi
    cat >"$dir/nginx.conf" <<NGINX
daemon off;
master_process on;
$(nginx_conf_head "$dir")
    upstream tfs_sim { server 127.0.0.1:$SIM_PORT; keepalive 64; keepalive_requests 100000; }
    server {
        $listen
        $tls
        http2_max_concurrent_streams 1024;
        # One connection from the daemon for the whole run (nginx closes an HTTP/2
        # connection after keepalive_requests calls, 1000 by default, and after
        # keepalive_timeout idle, 75 s by default).
        keepalive_requests 100000;
        keepalive_timeout 600s;
        client_max_body_size 0;
        location / {
            grpc_pass grpc://tfs_sim;
        }
    }
    server {
        listen 127.0.0.1:${!status_var};
        location = /status { stub_status; }
    }
}
NGINX
}

# --- The daemons, one per leg, and the front nginx (module) with one server per leg. ---
daemon_up() { # leg
    local leg=$1 dir=$STACK_DIR/daemon-$1 target tls=""
    local port_var=TARGET_PORT_$leg metrics_var=METRICS_PORT_$leg
    mkdir -p "$dir"
    if is_tls "$leg"; then
        target="https://127.0.0.1:${!port_var}"
        tls="[backend.tls]
ca_file = \"$PKI/ca.pem\"
cert_file = \"$PKI/client.pem\"
key_file = \"$PKI/client.key\"
server_name = \"tfs.test\""
    else
        target="http://127.0.0.1:${!port_var}"
    fi
    cat >"$dir/batcher.toml" <<TOML
listen = "$dir/batcher.sock"
socket_mode = "0666"
metrics_listen = "127.0.0.1:${!metrics_var}"
[backend]
grpc = ["$target"]
$tls
[batching]
max_batch_size = 64
TOML
    RUST_LOG=warn target/release/tfgate-batcher --config "$dir/batcher.toml" >"$dir/batcher.log" 2>&1 &
    STACK_PIDS+=("$!")
    eval "DAEMON_PID_$leg=$!"
    stack_wait "tfgate-batcher ($leg)" test -S "$dir/batcher.sock"
}

front_conf() {
    local dir=$STACK_DIR/front conf=$TFGATE_ROOT/nginx-conf servers="" leg
    mkdir -p "$dir/logs"
    for leg in $LEGS; do
        local port_var=FRONT_PORT_$leg
        servers+="
    upstream daemon_$leg { server unix:$STACK_DIR/daemon-$leg/batcher.sock; keepalive 512; }
    server {
        listen 127.0.0.1:${!port_var} backlog=4096;
        include $conf/tfgate-errors.conf;
        location /v1/models {
            tfgate_route on;
            proxy_pass http://daemon_$leg;
            include $conf/tfgate-proxy.conf;
        }
    }"
    done
    cat >"$dir/nginx.conf" <<NGINX
load_module $TFGATE_ROOT/target/release/libngx_http_tfgate_module.so;
daemon off;
master_process on;
$(nginx_conf_head "$dir")
    tfgate_model half_plus_two versions=1,2 default=1;
$servers
}
NGINX
}

url() { local port_var=FRONT_PORT_$1; echo "http://127.0.0.1:${!port_var}/v1/models/half_plus_two/versions/1:predict"; }

echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $(nginx -v 2>&1 | sed 's/.*: //'), $(openssl version | cut -d' ' -f1-2); ${WARMUP}s warm-up + ${DURATION}s per load, $ROUNDS rounds alternating plain/tls" >&2
stack_sim "" 1
target/release/tfs-sim --listen "127.0.0.1:$SIM_TLS_PORT" --stats-listen "127.0.0.1:$SIM_TLS_STATS_PORT" \
    --tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key" --tls-client-ca "$PKI/ca.pem" \
    >"$STACK_DIR/tfs-sim-tls.log" 2>&1 &
STACK_PIDS+=("$!")
SIM_TLS_PID=$!
stack_wait "tfs-sim (TLS)" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SIM_TLS_PORT"
for leg in $LEGS; do
    if has_hop "$leg"; then
        hop_conf "$leg"
        nginx_up "hop-$leg"
        port_var=HOP_PORT_$leg
        stack_wait "nginx hop ($leg)" bash -c "exec 3<>/dev/tcp/127.0.0.1/${!port_var}"
    fi
    daemon_up "$leg"
done
front_conf
nginx_up front
stack_wait "front nginx" bash -c "exec 3<>/dev/tcp/127.0.0.1/$FRONT_PORT_plain"
for leg in $LEGS; do
    answer=$(curl -sS -X POST "$(url "$leg")" -d '{"instances": [1.0]}' 2>&1) || true
    grep -q '"predictions"' <<<"$answer" || die "$leg: no prediction through the stack: $answer; logs in $STACK_DIR"
done
# The TLS legs really are TLS, and the handshakes went well.
for leg in tls dtls; do
    metrics_var=METRICS_PORT_$leg
    metrics_tls=$(curl -sf "http://127.0.0.1:${!metrics_var}/metrics")
    grep -q "^tfgate_backend_tls_state{.*state=\"ok\".* 1$" <<<"$metrics_tls" \
        || die "the $leg daemon reports no good TLS handshake: $(grep tfgate_backend_tls <<<"$metrics_tls")"
done

# What the TLS hop negotiates with a client offering TLS 1.3 and 1.2 (as rustls does).
TLS_PROTOCOL=$(openssl s_client -connect "127.0.0.1:$HOP_PORT_tls" -servername tfs.test -CAfile "$PKI/ca.pem" \
    -cert "$PKI/client.pem" -key "$PKI/client.key" -alpn h2 -brief </dev/null 2>&1 \
    | sed -n 's/^Protocol version: *//p; s/^Ciphersuite: *//p' | paste -sd' ')
echo "TLS hop: ${TLS_PROTOCOL:-?}" >&2
SIM_TLS_PROTOCOL=$(openssl s_client -connect "127.0.0.1:$SIM_TLS_PORT" -servername tfs.test -CAfile "$PKI/ca.pem" \
    -cert "$PKI/client.pem" -key "$PKI/client.key" -alpn h2 -brief </dev/null 2>&1 \
    | sed -n 's/^Protocol version: *//p; s/^Ciphersuite: *//p' | paste -sd' ')
echo "TLS tfs-sim: ${SIM_TLS_PROTOCOL:-?}" >&2

# Connections a hop has accepted so far (stub_status; this query's own included).
accepted() { # leg
    local port_var=STATUS_PORT_$1
    curl -sf "http://127.0.0.1:${!port_var}/status" | awk 'NR == 3 { print $1 }'
}
# TLS handshakes tfs-sim has completed so far (the probes above included).
sim_handshakes() { curl -sf "http://127.0.0.1:$SIM_TLS_STATS_PORT/stats" | sed -n 's/.*"tls_handshakes":\([0-9]*\).*/\1/p'; }
# Connections open from a leg's daemon to its target now.
open_connections() { # leg
    local port_var=TARGET_PORT_$1
    local daemon_var=DAEMON_PID_$1
    ss -Htnp state established "( dport = :${!port_var} )" | grep -c "pid=${!daemon_var},"
}
declare -A accepted_before=()
for leg in plain tls; do accepted_before[$leg]=$(accepted "$leg"); done
sim_handshakes_before=$(sim_handshakes)

# One measured load against a leg: a warm-up, then SECONDS of load with the CPU time of the
# daemon and the hop's worker taken around it. Stores "rps daemon_us hop_us p50_us p99_us"
# (CPU per request) in results[leg/load/round].
declare -A results=()
measure() { # leg, load (c64 or c1)
    local leg=$1 load=$2 c daemon_var=DAEMON_PID_$1 hop_var=NGINX_PID_hop_$1
    c=${load#c}
    # The server end: the hop's worker, or the TLS tfs-sim (the plaintext one is shared with the
    # hops, so its CPU is not the direct leg's alone and is not reported).
    local daemon=${!daemon_var} hop=""
    case $leg in
        plain | tls) hop=$(nginx_worker "${!hop_var}") ;;
        dtls) hop=$SIM_TLS_PID ;;
        dplain) hop=$DAEMON_PID_dplain ;; # a valid pid to read; not reported
    esac
    target/release/tfgate-load http --url "$(url "$leg")" -c "$c" -d "$WARMUP" --warmup 0 >/dev/null
    local d0 d1 h0 h1 out requests
    d0=$(process_counters "$daemon"); h0=$(process_counters "$hop")
    out=$(target/release/tfgate-load http --url "$(url "$leg")" -c "$c" -d "$DURATION" --warmup 0)
    d1=$(process_counters "$daemon"); h1=$(process_counters "$hop")
    echo "round $round $leg $load: $out" >&2
    [ "$(failures "$out")" -eq 0 ] || die "$leg $load: requests failed: $out; logs in $STACK_DIR"
    requests=$(field "$out" requests)
    [ "${requests:-0}" -gt 0 ] || die "$leg $load: no request answered: $out"
    read -r dns0 _ <<<"$d0"; read -r dns1 _ <<<"$d1"
    read -r hns0 _ <<<"$h0"; read -r hns1 _ <<<"$h1"
    local server_us=-
    [ "$leg" = dplain ] || server_us=$(calc "printf \"%.2f\", ($hns1 - $hns0) / 1000 / $requests")
    results[$leg/$load/$round]="$(calc "printf \"%.0f\", $(field "$out" rps)") $(calc "printf \"%.2f\", ($dns1 - $dns0) / 1000 / $requests") $server_us $(field "$out" p50_us) $(field "$out" p99_us)"
}
# Column $4 (1-based) of results[$1/$2/$3].
ratio3() { calc "printf \"%.3f\", $1 / $2"; }
col() { awk -v c="$4" '{ print $c }' <<<"${results[$1/$2/$3]}"; }
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { # leg, load, column
    local r values=""
    for r in $(seq "$ROUNDS"); do values+=" $(col "$1" "$2" "$r" "$3")"; done
    if [ "${values// /}" = "$(printf -- '-%.0s' $(seq "$ROUNDS"))" ]; then echo -; else median <<<"$values"; fi
}

for round in $(seq "$ROUNDS"); do
    for leg in $LEGS; do
        measure "$leg" c64
        measure "$leg" c1
    done
done

handshakes_failed=$(for leg in tls dtls; do
    metrics_var=METRICS_PORT_$leg
    sed -n 's/^tfgate_backend_tls_failures_total{.*} \([0-9]*\)$/\1/p' <<<"$(curl -sf "http://127.0.0.1:${!metrics_var}/metrics")"
done | awk '{ s += $1 } END { print s + 0 }')

echo
echo "### TLS to TF Serving: single-row predictions, zero-cost tfs-sim, direct and behind an nginx hop ($ROUNDS rounds, legs in turn; direct mTLS: ${SIM_TLS_PROTOCOL:-?}; nginx hop mTLS: ${TLS_PROTOCOL:-?})"
echo
echo "| round | daemon -> TF Serving | c=64 requests/s | c=64 daemon CPU us/request | c=64 TLS server CPU us/request | c=1 p50 us | c=1 p99 us | c=1 daemon CPU us/request | c=1 TLS server CPU us/request |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for round in $(seq "$ROUNDS"); do
    for leg in $LEGS; do
        echo "| $round | $(leg_name "$leg") | $(col "$leg" c64 "$round" 1) | $(col "$leg" c64 "$round" 2) | $(col "$leg" c64 "$round" 3) | $(col "$leg" c1 "$round" 4) | $(col "$leg" c1 "$round" 5) | $(col "$leg" c1 "$round" 2) | $(col "$leg" c1 "$round" 3) |"
    done
done
for leg in $LEGS; do
    echo "| median | $(leg_name "$leg") | $(med "$leg" c64 1) | $(med "$leg" c64 2) | $(med "$leg" c64 3) | $(med "$leg" c1 4) | $(med "$leg" c1 5) | $(med "$leg" c1 2) | $(med "$leg" c1 3) |"
done
echo
echo "Connections from each daemon to its target, open at the end: direct plaintext $(open_connections dplain), direct mTLS $(open_connections dtls), hop plaintext $(open_connections plain), hop mTLS $(open_connections tls). New connections during the loads (so new handshakes for mTLS): TLS handshakes completed by tfs-sim $(( $(sim_handshakes) - sim_handshakes_before )); accepted by the hops: plaintext $(( $(accepted plain) - ${accepted_before[plain]} - 1 )), mTLS $(( $(accepted tls) - ${accepted_before[tls]} - 1 )). Failed TLS handshakes: $handshakes_failed."
echo
header="| goal | pair |"; rule="| --- | --- |"
for round in $(seq "$ROUNDS"); do header+=" round $round |"; rule+=" ---: |"; done
echo "$header median | met |"
echo "$rule ---: | --- |"
for pair in "dplain dtls direct" "plain tls nginx hop"; do
    read -r p t name <<<"$pair"
    row_cpu="| daemon CPU/request at c=64, mTLS / plaintext (goal <= 1.05) | $name |"
    row_rps="| requests/s at c=64, mTLS / plaintext | $name |"
    row_lat="| c=1 median, mTLS - plaintext, us (goal <= 30) | $name |"
    for round in $(seq "$ROUNDS"); do
        row_cpu+=" $(ratio3 "$(col "$t" c64 "$round" 2)" "$(col "$p" c64 "$round" 2)") |"
        row_rps+=" $(ratio3 "$(col "$t" c64 "$round" 1)" "$(col "$p" c64 "$round" 1)") |"
        row_lat+=" $(( $(col "$t" c1 "$round" 4) - $(col "$p" c1 "$round" 4) )) |"
    done
    cpu_ratio=$(ratio3 "$(med "$t" c64 2)" "$(med "$p" c64 2)")
    lat_diff=$(calc "printf \"%.0f\", $(med "$t" c1 4) - $(med "$p" c1 4)")
    echo "$row_cpu $cpu_ratio | $(calc "print ($cpu_ratio <= 1.05) ? \"yes\" : \"no\"") |"
    echo "$row_rps $(ratio3 "$(med "$t" c64 1)" "$(med "$p" c64 1)") | - |"
    echo "$row_lat $lat_diff | $(calc "print ($lat_diff <= 30) ? \"yes\" : \"no\"") |"
done
