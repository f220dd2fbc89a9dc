#!/usr/bin/env bash
# The daemon's instructions per request (issue 19), counted by callgrind: deterministic where
# timings on a shared VM are not, so a change of a few percent on the request path shows.
# Single-row REST predictions through the whole stack (tfgate-load -> nginx + module ->
# daemon -> tfs-sim without cost), this checkout's daemon and a baseline daemon (BASELINE_REV,
# as scripts/bench-path.sh) side by side, at
#   - c = 1: every request is its own batch and backend call;
#   - c = 32: requests share batches (tfs-sim's own count gives the mean batch).
# From the two loads, per request = per row + per batch / rows per batch gives what a row costs
# (parsing, the pipeline, queueing, answering) and what a batch costs (the backend call).
# Counting starts after a warm-up (callgrind_control) and stops before the stack goes down.
#
#   scripts/bench-instructions.sh [REQUESTS=1000]
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

REQUESTS=${1:-1000}
BASELINE_REV=${BASELINE_REV:-20a9c37}

command -v callgrind_control >/dev/null || install_missing_packages valgrind
source "$(dirname "$0")/lib/baseline.sh"
build_current_and_baseline

source "$(dirname "$0")/lib/stack.sh"
stack_init
stack_sim "" 1

# Prints "instructions/request rows/batch" for one daemon binary at one concurrency.
count() { # binary, concurrency, requests
    local bin=$1 clients=$2 requests=$3 wrapper="$STACK_DIR/cg-daemon" out s0 s1 load
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=%s/callgrind.%%p %s "$@"\n' \
        "$STACK_DIR" "$bin" >"$wrapper"
    chmod +x "$wrapper"
    TFGATE_BATCHER_BIN=$wrapper stack_up ""
    target/release/tfgate-load http --url "$REST_URL" -c "$clients" --requests 200 --warmup 0 -d 600 >/dev/null
    s0=$(curl -sf "$SIM_STATS_URL")
    callgrind_control -i on "$DAEMON_PID" >/dev/null 2>&1
    load=$(target/release/tfgate-load http --url "$REST_URL" -c "$clients" --requests "$requests" --warmup 0 -d 600)
    callgrind_control -d "$DAEMON_PID" >/dev/null 2>&1
    s1=$(curl -sf "$SIM_STATS_URL")
    stack_down
    [ "$(failures "$load")" -eq 0 ] || die "$bin c = $clients: requests failed: $load"
    out=$(ls -t "$STACK_DIR"/callgrind."$DAEMON_PID".* | head -1)
    python3 - "$(awk '/^summary:/ { print $2; exit }' "$out")" "$(field "$load" requests)" "$s0" "$s1" <<'PY'
import json, sys
instructions, requests = int(sys.argv[1]), int(sys.argv[2])
before, after = json.loads(sys.argv[3]), json.loads(sys.argv[4])
batches = after["predict_calls"] - before["predict_calls"]
rows = after["predict_items"] - before["predict_items"]
print(instructions // requests, f"{rows / max(batches, 1):.1f}")
PY
}

declare -A per_request=() rows=()
for config in baseline tfgate; do
    bin=$CURRENT_BIN; [ "$config" = baseline ] && bin=$BASELINE_BIN
    for clients in 1 32; do
        read -r per_request[$config/$clients] rows[$config/$clients] <<<"$(count "$bin" "$clients" $((clients == 1 ? REQUESTS : REQUESTS * 4)))"
        echo "$config c = $clients: ${per_request[$config/$clients]} instructions/request, ${rows[$config/$clients]} rows/batch" >&2
    done
done

echo
echo "### The daemon's instructions per request (callgrind; single-row REST predictions, zero-cost tfs-sim)"
echo
echo "| daemon | c = 1 | c = 32 | rows per batch at c = 32 | per row | per batch |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
declare -A row_cost=() batch_cost=()
for config in baseline tfgate; do
    one=${per_request[$config/1]} many=${per_request[$config/32]} n=${rows[$config/32]}
    # one = row + batch; many = row + batch / n
    batch_cost[$config]=$(calc "printf \"%.0f\", ($one - $many) / (1 - 1 / $n)")
    row_cost[$config]=$(calc "printf \"%.0f\", $one - ${batch_cost[$config]}")
    name=$config; [ "$config" = baseline ] && name="baseline ($BASELINE_REV)"
    echo "| $name | $one | $many | $n | ${row_cost[$config]} | ${batch_cost[$config]} |"
done
echo "| tfgate / baseline | $(ratio "${per_request[tfgate/1]}" "${per_request[baseline/1]}") | $(ratio "${per_request[tfgate/32]}" "${per_request[baseline/32]}") | | $(ratio "${row_cost[tfgate]}" "${row_cost[baseline]}") | $(ratio "${batch_cost[tfgate]}" "${batch_cost[baseline]}") |"
