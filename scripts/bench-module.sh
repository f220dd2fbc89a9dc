#!/usr/bin/env bash
# Benchmark of what the module adds to a request: one nginx worker (pinned to one core, wrk on
# the other) answering a small static file for GET /v1/models/half_plus_two, with the module
# off, with tfgate_route on, with tfgate_jwt on and a cached token, with the token cache off
# (RS256, ES256), and with both route and a cached token. Rounds are interleaved and medians
# reported, because these machines are noisy; the ratio to "off" is the figure that matters.
#
#   scripts/bench-module.sh [ROUNDS=5] [SECONDS=5]
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

ROUNDS=${1:-5}
DURATION=${2:-5}
CONNECTIONS=32
command -v wrk >/dev/null || { TFGATE_APT_PACKAGES=(wrk); install_missing_packages; }
scripts/build.sh ngx-http-tfgate-module tfgate-jwt-testkit

dir=$(mktemp -d /tmp/tfgate-bench-module.XXXXXX)
chmod 755 "$dir"
trap '[ -f "$dir/nginx.pid" ] && kill -QUIT "$(cat "$dir/nginx.pid")" 2>/dev/null; sleep 0.3; rm -rf "$dir"' EXIT
target/release/tfgate-mint-tokens "$dir"
echo ok >"$dir/ok"
mkdir -p "$dir/logs"
base_port=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768 and up)

server() { # port offset, directives
    printf '    server { listen 127.0.0.1:%s; root %s; location / { %s try_files /ok =404; } }\n' \
        "$((base_port + $1))" "$dir" "$2"
}
jwt="tfgate_jwt on; tfgate_jwt_key_file $dir/jwks.json; tfgate_jwt_issuer https://idp.example; tfgate_jwt_audience tfgate;"
cat >"$dir/nginx.conf" <<NGINX
load_module $TFGATE_ROOT/target/release/libngx_http_tfgate_module.so;
$( [ "$(id -u)" -eq 0 ] && echo "user root;" )
worker_processes 1;
worker_cpu_affinity 10;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
    tfgate_model half_plus_two versions=1,2 default=1;
$(server 0 "")
$(server 1 "tfgate_route on;")
$(server 2 "$jwt")
$(server 3 "$jwt tfgate_jwt_cache off;")
$(server 4 "tfgate_route on; $jwt")
}
NGINX
nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
sleep 0.5

rs=$(cat "$dir/rs256.token")
es=$(cat "$dir/es256.token")
# Every variant gets the same request (with the RS256 token, unused where nothing checks it),
# so the ratios measure the module, not a bigger request.
variants=("off|0|$rs" "route on|1|$rs" "jwt on, cached RS256|2|$rs" "jwt on, cache off, RS256|3|$rs" "jwt on, cache off, ES256|3|$es" "route + jwt cached|4|$rs")
path=/v1/models/half_plus_two

# Sanity: every variant answers 200 with its token, and 401 without where the check is on.
for v in "${variants[@]}"; do
    IFS='|' read -r name offset token <<<"$v"
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$((base_port + offset))$path")
    [ "$code" = 200 ] || die "$name answered $code"
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((base_port + 3))$path")" = 401 ] || die "no token was not refused"

results="$dir/results"
for round in $(seq "$ROUNDS"); do
    for v in "${variants[@]}"; do
        IFS='|' read -r name offset token <<<"$v"
        out=$(taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$((base_port + offset))$path")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        echo "$name|$rps|$p50|$p99" >>"$results"
    done
    log "round $round/$ROUNDS done"
done

python3 - "$results" <<'PY'
import statistics, sys
rows = [l.strip().split("|") for l in open(sys.argv[1]) if l.strip()]
def us(t):
    for unit, f in (("us", 1), ("ms", 1000), ("s", 1e6)):
        if t.endswith(unit):
            return float(t[: -len(unit)]) * f
    return float(t)
names = list(dict.fromkeys(r[0] for r in rows))
med = {n: (statistics.median(float(r[1]) for r in rows if r[0] == n),
           statistics.median(us(r[2]) for r in rows if r[0] == n),
           statistics.median(us(r[3]) for r in rows if r[0] == n)) for n in names}
base = med["off"][0]
print("| variant | req/s (median) | ratio to off | added per request | p50 | p99 |")
print("| --- | --- | --- | --- | --- | --- |")
for n in names:
    rps, p50, p99 = med[n]
    added = (1 / rps - 1 / base) * 1e6
    print(f"| {n} | {rps:,.0f} | {rps / base:.3f} | {added:+.1f} us | {p50:.0f} us | {p99:.0f} us |")
PY
