#!/usr/bin/env bash
# Memory benchmark of tfgate-batcher under large request bodies: peak RSS against the request
# bytes in flight, and the RSS 10 s after the load ends against the RSS before it.
#
#   scripts/bench-memory.sh [CONCURRENT] [MB_PER_BODY] [BUDGET_MB]   (default 4 x 24 MB, the
#                                                                    default 128 MiB budget)
#
# BUDGET_MB sets max_body_bytes_in_flight: the budget reserves a body's bytes and what its
# tensors may take before they are built, so at the default some of these bodies are refused
# (429) and the peak stays near the budget; a budget that fits them all shows what reading them
# costs.
#
# Each case runs a fresh daemon (tfs-sim without cost behind it): warm-up, then CONCURRENT
# bodies of MB_PER_BODY sent at once straight to its Unix socket, as nginx would; peak is the
# process's VmHWM, the baseline its VmRSS after the warm-up. Bodies are rows of 1000 values
# (split into batches of 64 rows). Cases:
#   float-zeros    {"instances": [0,0,...]}           2 bytes of JSON per float (the worst case)
#   float-digits   {"instances": [0.12345679,...]}    a float written as clients usually do
#   float-nan      {"instances": [NaN,NaN,...]}       the NaN rewrite's expansion
#   strings        {"instances": ["abcdefgh",...]}    short strings (echo_string model)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

CONCURRENT=${1:-4}
MB=${2:-24}
BUDGET_MB=${3:-}
scripts/build.sh tfgate-batcher tfs-sim >&2

dir=$(mktemp -d /tmp/tfgate-bench-memory.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

sim_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/tfs-sim --listen "127.0.0.1:$sim_port" >"$dir/sim.log" 2>&1 &
pids+=($!)

make_body() { # kind, bytes, file
    python3 - "$1" "$2" "$3" <<'PY'
import sys
kind, size, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
item = {"float-zeros": "0", "float-digits": "0.12345679", "float-nan": "NaN", "strings": '"abcdefgh"'}[kind]
row = "[" + ",".join([item] * 1000) + "]"
with open(path, "w") as f:
    f.write('{"instances": [')
    f.write(",".join([row] * (size // (len(row) + 1))))
    f.write("]}")
PY
}

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

run_case() { # kind model
    local kind=$1 model=$2 socket="$dir/$1.sock"
    local body="$dir/$kind.json"
    make_body "$kind" $((MB << 20)) "$body"
    {
        printf 'listen = "%s"\n' "$socket"
        [ -z "$BUDGET_MB" ] || printf 'max_body_bytes_in_flight = %d\n' $((BUDGET_MB << 20))
        printf '[backend]\ngrpc = ["http://127.0.0.1:%s"]\n' "$sim_port"
    } >"$dir/$kind.toml"
    target/release/tfgate-batcher --config "$dir/$kind.toml" >"$dir/$kind.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done
    local url="http://tfgate/v1/models/$model/versions/1:predict"
    local small=$([ "$model" = echo_string ] && echo '{"instances": [["a"]]}' || echo '{"instances": [[1.0]]}')
    for _ in $(seq 20); do curl -s -o /dev/null --unix-socket "$socket" -d "$small" "$url"; done
    sleep 1
    local start_kb
    start_kb=$(status_kb "$pid" VmRSS)
    local codes=()
    for i in $(seq "$CONCURRENT"); do
        curl -s -o /dev/null -w '%{http_code}\n' --unix-socket "$socket" -H 'Content-Type: application/json' \
            --data-binary "@$body" "$url" >"$dir/$kind.$i.code" &
    done
    wait $(jobs -p | grep -v "^$pid\$" | grep -v "^${pids[0]}\$") 2>/dev/null || true
    local peak_kb
    peak_kb=$(status_kb "$pid" VmHWM)
    sleep 10
    local idle_kb
    idle_kb=$(status_kb "$pid" VmRSS)
    local in_flight=$((CONCURRENT * $(stat -c %s "$body")))
    local answered
    answered=$(cat "$dir/$kind".*.code | grep -c '^200$' || true)
    awk -v k="$kind" -v f="$in_flight" -v s="$start_kb" -v p="$peak_kb" -v i="$idle_kb" -v a="$answered" -v c="$CONCURRENT" 'BEGIN {
        printf "| %s | %.0f | %d of %d | %.0f | %.0f | %.2f | %.0f | %.2f |\n",
            k, f / 1048576, a, c, s / 1024, p / 1024, (p * 1024 - s * 1024) / f, i / 1024, i / s }'
    kill "$pid" 2>/dev/null || true
}

echo "| body | MiB in flight | answered 200 | start RSS MiB | peak RSS MiB | (peak - start) / in flight | RSS 10 s after, MiB | after / start |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
run_case float-zeros half_plus_two
run_case float-digits half_plus_two
run_case float-nan half_plus_two
run_case strings echo_string
