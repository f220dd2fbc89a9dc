#!/usr/bin/env bash
# gRPC ingress benchmark, in one run side by side, for an image-sized input (one row of
# 150528 floats, 224x224x3) and a small one (784 floats), at several concurrencies, against a
# zero-cost tfs-sim (what is measured is the gateway):
#   - gRPC through tfgate (nginx HTTP/2 + module -> daemon grpc_listen -> tfs-sim);
#   - gRPC straight to tfs-sim, unbatched;
#   - REST through tfgate (the same row as JSON).
# Then what the module adds to a gRPC call: the same stack with `tfgate_route on` and without
# (grpc_pass only), at c = 1 (added median) and c = 64 (nginx CPU per call).
# Prints Markdown tables (the figures in docs/benchmarks.md, section "gRPC").
#
#   scripts/bench-grpc.sh [SECONDS=3] [CONCURRENCIES="1 64 256"]
#   BASELINE_REV=20a9c37 scripts/bench-grpc.sh   # also gRPC and REST through a baseline daemon
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-3}
CONCURRENCIES=${2:-"1 64 256"}
SIZES=${SIZES:-"150528 784"}

scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2
BASELINE_BIN=""
if [ -n "${BASELINE_REV:-}" ]; then
    source "$(dirname "$0")/lib/baseline.sh"
    BASELINE_BIN=$(build_baseline "$BASELINE_REV")
fi
source "$(dirname "$0")/lib/stack.sh"
stack_init

body_file() { # floats per row
    local file="$STACK_DIR/body-$1.json"
    [ -f "$file" ] || python3 -c "import sys; n = int(sys.argv[1]); print('{\"instances\": [[' + ','.join(['0.5'] * n) + ']]}')" "$1" >"$file"
    echo "$file"
}

grpc_load() { # target, floats, concurrency, extra...
    local target=$1 floats=$2 c=$3; shift 3
    target/release/tfgate-load grpc -d "$DURATION" -c "$c" --target "$target" --version 1 \
        --row-floats "$floats" --tensor-content --threads 2 "$@"
}

rest_load() { # floats, concurrency
    target/release/tfgate-load http -d "$DURATION" -c "$2" --url "$REST_URL" --body-file "$(body_file "$1")" --threads 2
}

ms() { calc "printf \"%.2f\", $1 / 1000"; }

echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${DURATION}s per run"
stack_sim "" 1
for floats in $SIZES; do
    echo
    echo "### One row of $floats floats ($(calc "printf \"%.0f\", $floats * 4 / 1024") KiB as tensor bytes)"
    echo
    echo "| clients | gRPC via tfgate rows/s | p50 ms | gRPC direct rows/s | p50 ms | REST via tfgate rows/s | p50 ms | gRPC / REST via tfgate | gRPC via tfgate / direct | errors |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    declare -A g=() d=() r=() bg=() br=()
    stack_up "" "tfgate_route on;"
    for c in $CONCURRENCIES; do
        g[$c]=$(grpc_load "$GRPC_TARGET" "$floats" "$c")
        d[$c]=$(grpc_load "$SIM_TARGET" "$floats" "$c")
        r[$c]=$(rest_load "$floats" "$c")
    done
    stack_down
    if [ -n "$BASELINE_BIN" ]; then
        TFGATE_BATCHER_BIN=$BASELINE_BIN stack_up "" "tfgate_route on;"
        for c in $CONCURRENCIES; do
            bg[$c]=$(grpc_load "$GRPC_TARGET" "$floats" "$c")
            br[$c]=$(rest_load "$floats" "$c")
        done
        stack_down
    fi
    for c in $CONCURRENCIES; do
        errors=$(( $(failures "${g[$c]}") + $(failures "${d[$c]}") + $(failures "${r[$c]}") ))
        echo "| $c | $(field "${g[$c]}" rps) | $(ms "$(field "${g[$c]}" p50_us)") | $(field "${d[$c]}" rps) | $(ms "$(field "${d[$c]}" p50_us)") | $(field "${r[$c]}" rps) | $(ms "$(field "${r[$c]}" p50_us)") | $(ratio "$(field "${g[$c]}" rps)" "$(field "${r[$c]}" rps)") | $(ratio "$(field "${g[$c]}" rps)" "$(field "${d[$c]}" rps)") | $errors |"
    done
    if [ -n "$BASELINE_BIN" ]; then
        echo
        echo "Against the baseline daemon ($BASELINE_REV), same run:"
        echo
        echo "| clients | gRPC via baseline rows/s | gRPC now / baseline | REST via baseline rows/s | REST now / baseline | errors |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
        for c in $CONCURRENCIES; do
            echo "| $c | $(field "${bg[$c]}" rps) | $(ratio "$(field "${g[$c]}" rps)" "$(field "${bg[$c]}" rps)") | $(field "${br[$c]}" rps) | $(ratio "$(field "${r[$c]}" rps)" "$(field "${br[$c]}" rps)") | $(( $(failures "${bg[$c]}") + $(failures "${br[$c]}") )) |"
        done
    fi
done

# The module's share: nginx with and without tfgate_route in the gRPC location, interleaved.
echo
echo "### What the module adds to a gRPC call (784 floats; nginx worker CPU from schedstat)"
echo
echo "| gRPC location | c=1 p50 us | added p50 us | c=64 calls/s | nginx CPU us/call |"
echo "| --- | ---: | ---: | ---: | ---: |"
base_p50=""
for variant in "grpc_pass only" "tfgate_route on"; do
    extra=""; [ "$variant" = "tfgate_route on" ] && extra="tfgate_route on;"
    stack_up "" "$extra"
    one=$(grpc_load "$GRPC_TARGET" 784 1)
    worker=$(stack_nginx_worker)
    read -r ns0 _ _ <<<"$(process_counters "$worker")"
    many=$(grpc_load "$GRPC_TARGET" 784 64 --warmup 0)
    read -r ns1 _ _ <<<"$(process_counters "$worker")"
    p50=$(field "$one" p50_us)
    [ -z "$base_p50" ] && base_p50=$p50
    echo "| $variant | $p50 | $((p50 - base_p50)) | $(field "$many" rps) | $(calc "printf \"%.1f\", ($ns1 - $ns0) / 1000 / $(field "$many" requests)") |"
    stack_down
done

# Where an image-sized call's time goes, against the baseline daemon: at c = 1 every process's
# CPU per call (the client's from its rusage, the others' from schedstat) next to the median
# latency, so that a difference in latency is found in the process that spends it.
if [ -n "$BASELINE_BIN" ]; then
    echo
    echo "### Where a gRPC call of 150,528 floats spends CPU, now against the baseline ($BASELINE_REV), c = 1"
    echo
    echo "| daemon | calls | p50 ms | client us/call | nginx worker us/call | daemon us/call | tfs-sim us/call |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for round in 1 2 3; do
        for daemon in now baseline; do
            bin=target/release/tfgate-batcher; [ "$daemon" = baseline ] && bin=$BASELINE_BIN
            TFGATE_BATCHER_BIN=$bin stack_up "" "tfgate_route on;"
            worker=$(stack_nginx_worker)
            read -r w0 _ <<<"$(process_counters "$worker")"
            read -r d0 _ <<<"$(process_counters "$DAEMON_PID")"
            read -r s0 _ <<<"$(process_counters "$SIM_PID")"
            out=$(/usr/bin/time -f "%U %S" -o "$STACK_DIR/client.time" \
                target/release/tfgate-load grpc -d "$DURATION" -c 1 --warmup 0 --target "$GRPC_TARGET" \
                --version 1 --row-floats 150528 --tensor-content --threads 1)
            read -r w1 _ <<<"$(process_counters "$worker")"
            read -r d1 _ <<<"$(process_counters "$DAEMON_PID")"
            read -r s1 _ <<<"$(process_counters "$SIM_PID")"
            read -r cu cs <"$STACK_DIR/client.time"
            n=$(field "$out" requests)
            per() { calc "printf \"%.0f\", ($2 - $1) / 1000 / $n"; }
            echo "| $daemon | $n | $(ms "$(field "$out" p50_us)") | $(calc "printf \"%.0f\", ($cu + $cs) * 1000000 / $n") | $(per "$w0" "$w1") | $(per "$d0" "$d1") | $(per "$s0" "$s1") |"
            stack_down
        done
    done
fi
stack_sim_down
