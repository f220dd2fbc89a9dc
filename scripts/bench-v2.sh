#!/usr/bin/env bash
# Open Inference Protocol ("KServe v2") benchmark, side by side in one run (the figures in
# docs/benchmarks.md, section "Open Inference Protocol"):
#   bound    v2 REST and v2 gRPC clients through tfgate to tfs-sim (a large model: --cost-us
#            20000,200, one executor), next to TF Serving's REST and gRPC clients on the same
#            stack, at c = 8 32 64, as a share of the accelerator's bound (B / (FIXED +
#            PER_ITEM x B), B = min(c, 64));
#   latency  c = 1: the median v2 gRPC through tfgate adds over the same call straight to the
#            backend (zero-cost tfs-sim, its v2 service);
#   module   what the module adds to a v2 gRPC call: nginx worker CPU per call with
#            `tfgate_route on` and with `grpc_pass` only, interleaved rounds;
#   mlserver rows/s at c = 64 to Seldon MLServer (a Python model, tests/python/mlserver/): through
#            tfgate (daemon backend `protocol = "v2"`, MLServer's batching off) against the
#            same client straight to MLServer unbatched, and straight to MLServer with its own
#            adaptive batching on.
#
#   scripts/bench-v2.sh [SECONDS=3]
#   SECTIONS="bound latency" scripts/bench-v2.sh 5
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-3}
SECTIONS=${SECTIONS:-"bound latency module mlserver"}
CONCURRENCIES=${CONCURRENCIES:-"8 32 64"}
SHAPE=${SHAPE:-20000,200}
ROUNDS=${ROUNDS:-3}
MAX_BATCH=64

scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2
source "$(dirname "$0")/lib/stack.sh"
stack_init

V2_BODY='{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}'
# The load's runtime threads: 2, or THREADS=1 (one client: the cores left to what is measured).
load_rest() { target/release/tfgate-load http -d "$DURATION" --url "$REST_URL" --threads "${THREADS:-2}" "$@"; }
load_v2_rest() { target/release/tfgate-load http -d "$DURATION" --url "$V2_REST_URL" --body "$V2_BODY" --threads "${THREADS:-2}" "$@"; }
load_grpc() { target/release/tfgate-load grpc -d "$DURATION" --version 1 --threads "${THREADS:-2}" "$@"; }
load_v2_grpc() { target/release/tfgate-load v2-grpc -d "$DURATION" --version 1 --threads "${THREADS:-2}" "$@"; }
bound() { # fixed, per_item, rows
    calc "printf \"%.0f\", $3 * 1e6 / ($1 + $2 * $3)"
}
rows_for() { calc "c = $1; if (c > $MAX_BATCH) c = $MAX_BATCH; print c"; }
# The daemon's batches of half_plus_two so far: "ROWS BATCHES".
batch_counters() {
    local metrics
    metrics=$(curl -s "$METRICS_URL")
    echo "$(sed -n 's/^tfgate_batch_rows_sum{model="half_plus_two"} \(.*\)/\1/p' <<<"$metrics") $(sed -n 's/^tfgate_batch_rows_count{model="half_plus_two"} \(.*\)/\1/p' <<<"$metrics")"
}
# Runs a load (its arguments) and prints its JSON line with the mean rows per backend batch
# it was served in appended: `... "rows_per_batch":R`.
with_batches() {
    local r0 b0 r1 b1 out
    read -r r0 b0 <<<"$(batch_counters)"
    out=$("$@")
    read -r r1 b1 <<<"$(batch_counters)"
    echo "${out%\}},\"rows_per_batch\":$(ratio "$(calc "print ${r1:-0} - ${r0:-0}")" "$(calc "print ${b1:-0} - ${b0:-0}")")}"
}

section_bound() {
    local fixed=${SHAPE%,*} per_item=${SHAPE#*,}
    echo
    echo "### Through tfgate to tfs-sim (--cost-us $SHAPE, one executor): each client as a share of the bound"
    echo
    echo "| clients | bound rps | TF REST rps | /bound | TF gRPC rps | /bound | v2 REST rps | /bound | v2 gRPC rps | /bound | v2 REST p50 ms | v2 gRPC p50 ms | rows per batch (TF REST, TF gRPC, v2 REST, v2 gRPC) | errors |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
    stack_sim "$SHAPE" 1
    stack_up ""
    for c in $CONCURRENCIES; do
        local best tr tg vr vg
        best=$(bound "$fixed" "$per_item" "$(rows_for "$c")")
        tr=$(with_batches load_rest -c "$c"); tg=$(with_batches load_grpc -c "$c" --target "$GRPC_TARGET")
        vr=$(with_batches load_v2_rest -c "$c"); vg=$(with_batches load_v2_grpc -c "$c" --target "$GRPC_TARGET")
        local errors=$(( $(failures "$tr") + $(failures "$tg") + $(failures "$vr") + $(failures "$vg") ))
        echo "| $c | $best | $(field "$tr" rps) | $(ratio "$(field "$tr" rps)" "$best") | $(field "$tg" rps) | $(ratio "$(field "$tg" rps)" "$best") | $(field "$vr" rps) | $(ratio "$(field "$vr" rps)" "$best") | $(field "$vg" rps) | $(ratio "$(field "$vg" rps)" "$best") | $(calc "printf \"%.1f\", $(field "$vr" p50_us) / 1000") | $(calc "printf \"%.1f\", $(field "$vg" p50_us) / 1000") | $(field "$tr" rows_per_batch), $(field "$tg" rows_per_batch), $(field "$vr" rows_per_batch), $(field "$vg" rows_per_batch) | $errors |"
    done
    stack_down
    stack_sim_down
}

section_latency() {
    echo
    echo "### One client: the median v2 gRPC through tfgate adds over a direct call (zero-cost tfs-sim)"
    echo
    echo "| round | direct v2 gRPC p50 us | through tfgate p50 us | added us | direct TF gRPC p50 us | through tfgate p50 us | added us |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    stack_sim "" 1
    stack_up ""
    for round in $(seq "$ROUNDS"); do
        local vd vt td tt
        vd=$(THREADS=1 load_v2_grpc -c 1 --target "$SIM_TARGET"); vt=$(THREADS=1 load_v2_grpc -c 1 --target "$GRPC_TARGET")
        td=$(THREADS=1 load_grpc -c 1 --target "$SIM_TARGET"); tt=$(THREADS=1 load_grpc -c 1 --target "$GRPC_TARGET")
        echo "| $round | $(field "$vd" p50_us) | $(field "$vt" p50_us) | $(( $(field "$vt" p50_us) - $(field "$vd" p50_us) )) | $(field "$td" p50_us) | $(field "$tt" p50_us) | $(( $(field "$tt" p50_us) - $(field "$td" p50_us) )) |"
    done
    stack_down
    stack_sim_down
}

section_module() {
    echo
    echo "### What the module adds to a v2 gRPC call (nginx worker CPU from schedstat, c = 64, zero-cost tfs-sim)"
    echo
    echo "| round | gRPC location | calls | calls/s | nginx CPU us/call | added us/call |"
    echo "| ---: | --- | ---: | ---: | ---: | ---: |"
    stack_sim "" 1
    for round in $(seq "$ROUNDS"); do
        local base=""
        for variant in "grpc_pass only" "tfgate_route on"; do
            local extra=""
            [ "$variant" = "tfgate_route on" ] && extra="tfgate_route on;"
            stack_up "" "$extra"
            load_v2_grpc -c 8 --target "$GRPC_TARGET" --requests 2000 >/dev/null
            local worker ns0 ns1 out per
            worker=$(stack_nginx_worker)
            read -r ns0 _ <<<"$(process_counters "$worker")"
            out=$(load_v2_grpc -c 64 --target "$GRPC_TARGET" --warmup 0)
            read -r ns1 _ <<<"$(process_counters "$worker")"
            per=$(calc "printf \"%.2f\", ($ns1 - $ns0) / 1000 / $(field "$out" requests)")
            [ -z "$base" ] && base=$per
            echo "| $round | $variant | $(field "$out" requests) | $(field "$out" rps) | $per | $(calc "printf \"%.2f\", $per - $base") |"
            stack_down
        done
    done
    stack_sim_down
}

# MLServer from the tests' venv serving a copy of tests/python/mlserver/ (its custom runtime) on
# $MLSERVER_HTTP / $MLSERVER_GRPC, as tests/src/mlserver.rs starts it.
mlserver_up() { # "off" (max_batch_size 1) or "on" (adaptive batching: MLSERVER_BATCH rows, MLSERVER_BATCH_TIME s)
    local dir=$STACK_DIR/mlserver-$1
    rm -rf "$dir"; mkdir -p "$dir"
    cp -r tests/python/mlserver "$dir/repository"
    MLSERVER_HTTP=$((HTTP_PORT + 10)); MLSERVER_GRPC=$((HTTP_PORT + 11))
    local size=1 time=0
    [ "$1" = on ] && { size=${MLSERVER_BATCH:-64}; time=${MLSERVER_BATCH_TIME:-0.005}; }
    python3 - "$dir/repository" "$MLSERVER_HTTP" "$MLSERVER_GRPC" "$size" "$time" <<'PY'
import json, pathlib, sys
root, http, grpc, size, time = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
settings = json.loads((root / "settings.json").read_text())
settings.update(http_port=http, grpc_port=grpc)
(root / "settings.json").write_text(json.dumps(settings))
for path in root.rglob("model-settings.json"):
    model = json.loads(path.read_text())
    model.update(max_batch_size=size, max_batch_time=time)
    path.write_text(json.dumps(model))
PY
    (cd "$dir" && PYTHONPATH="$TFGATE_ROOT/tests/python/mlserver" PYTHONDONTWRITEBYTECODE=1 \
        exec "$(dirname "$PYTHON")/mlserver" start repository >"$dir/mlserver.log" 2>&1) &
    MLSERVER_PID=$!
    for _ in $(seq 900); do
        curl -sf "http://127.0.0.1:$MLSERVER_HTTP/v2/health/ready" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "MLServer did not come up; log in $dir/mlserver.log"
}

mlserver_down() {
    [ -n "${MLSERVER_PID:-}" ] && { kill "$MLSERVER_PID" 2>/dev/null || true; wait "$MLSERVER_PID" 2>/dev/null || true; }
    pkill -f "mlserver start repository" 2>/dev/null || true
    MLSERVER_PID=""
    sleep 0.5
}

section_mlserver() {
    PYTHON=$(scripts/python-env.sh)/bin/python
    local c=64
    echo
    echo "### Rows/s to MLServer (half_plus_two, a Python runtime), c = $c, v2 gRPC clients"
    echo
    echo "| round | straight, MLServer batching off | straight, MLServer adaptive batching | through tfgate (MLServer batching off) | tfgate/unbatched | tfgate/MLServer batching | tfgate mean rows per batch | errors |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for round in $(seq "$ROUNDS"); do
        local off on through mix
        mlserver_up on
        on=$(load_v2_grpc -c "$c" --target "http://127.0.0.1:$MLSERVER_GRPC")
        mlserver_down
        mlserver_up off
        off=$(load_v2_grpc -c "$c" --target "http://127.0.0.1:$MLSERVER_GRPC")
        STACK_BACKEND="http://127.0.0.1:$MLSERVER_GRPC" STACK_BACKEND_EXTRA='protocol = "v2"' stack_up ""
        through=$(load_v2_grpc -c "$c" --target "$GRPC_TARGET")
        local metrics sum count
        metrics=$(curl -s "$METRICS_URL")
        sum=$(sed -n 's/^tfgate_batch_rows_sum{model="half_plus_two"} \(.*\)/\1/p' <<<"$metrics")
        count=$(sed -n 's/^tfgate_batch_rows_count{model="half_plus_two"} \(.*\)/\1/p' <<<"$metrics")
        stack_down
        mlserver_down
        local errors=$(( $(failures "$off") + $(failures "$on") + $(failures "$through") ))
        echo "| $round | $(field "$off" rps) | $(field "$on" rps) | $(field "$through" rps) | $(ratio "$(field "$through" rps)" "$(field "$off" rps)") | $(ratio "$(field "$through" rps)" "$(field "$on" rps)") | $(ratio "${sum:-0}" "${count:-0}") | $errors |"
    done
}

for section in $SECTIONS; do
    case $section in
        bound) section_bound ;;
        latency) section_latency ;;
        module) section_module ;;
        mlserver) section_mlserver ;;
        *) die "unknown section $section" ;;
    esac
done
