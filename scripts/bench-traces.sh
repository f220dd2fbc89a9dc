#!/usr/bin/env bash
# What request traces cost (issue 22): single-row REST predictions at c = 64 through the whole
# stack (tfgate-load -> nginx + module -> tfgate-batcher -> tfs-sim), with `[tracing]` off, and
# on at sampling_ratio 1.0 (every call: its span, and its batch's span) and 0.1, in two regimes:
#   - cpu: tfs-sim without cost, so the gateway's CPU is the bound (the worst case: every
#     instruction tracing adds is throughput lost);
#   - accelerator: tfs-sim at 10 ms + 50 us per row on one executor (a full batch of 64 takes
#     13.2 ms: about 4,800 rows/s), the regime tfgate is for: the backend is the bound. The spans go over OTLP/gRPC to a receiver on OpenTelemetry's own
# definitions (tests/python/otlp_receiver.py --count: it reads each export and keeps only the
# count), on the same two cores, as a node-local collector would be.
# The configurations run in turn, ROUNDS times; reported: requests/s and the daemon's CPU per
# request (medians), their ratios to tracing off, and the spans received per request.
# Then the same daemons under callgrind: instructions per request (all threads, the exporter's
# included), counted, not timed, so the same on a busy machine: the difference between a run
# of 2,500 and one of 500 requests (c = 8), divided by 2,000 (start-up and shutdown cancel).
#
#   scripts/bench-traces.sh [SECONDS=5] [ROUNDS=3]
#   CALLGRIND=0 scripts/bench-traces.sh     # without the callgrind part
#   CALLGRIND_DIR=/tmp/cg scripts/bench-traces.sh   # keeps callgrind's files (callgrind_annotate)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-5}
ROUNDS=${2:-3}
CONCURRENCY=64

[ -n "${TFGATE_SKIP_BUILD:-}" ] || scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2
VENV=$(scripts/python-env.sh)
source "$(dirname "$0")/lib/stack.sh"
stack_init

"$VENV/bin/python" tests/python/otlp_receiver.py --count "$STACK_DIR/spans" >"$STACK_DIR/receiver.log" 2>&1 &
RECEIVER_PID=$!
trap 'kill $RECEIVER_PID 2>/dev/null || true; stack_down; stack_sim_down; rm -rf "$STACK_DIR"' EXIT
stack_wait "the OTLP receiver" grep -q "listening on" "$STACK_DIR/receiver.log"
ENDPOINT="http://127.0.0.1:$(sed -n 's/^listening on //p' "$STACK_DIR/receiver.log")"

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
received() { awk '{ print $1 }' "$STACK_DIR/spans" 2>/dev/null || echo 0; }
declare -A rps=() cpu=() spans=() receiver=()
configs="off 1.0 0.1"
regimes=${REGIMES:-"cpu accelerator"}
declare -A cost=([cpu]="" [accelerator]="10000,50")
# Fixed dispatch in the accelerator regime: a batch leaves full or after 5 ms, the same way
# whatever the daemon's own timing (adaptive dispatch's cohorts under a closed loop are bimodal
# from run to run, docs/benchmarks.md, which would hide a cost of a few percent).
declare -A batching=([cpu]="" [accelerator]=$'dispatch = "fixed"\nmax_delay_us = 5000')
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${DURATION}s per run, $ROUNDS rounds" >&2
for regime in $regimes; do
  stack_sim_down
  stack_sim "${cost[$regime]}" 1
  for round in $(seq "$ROUNDS"); do
    for config in $configs; do
        tracing=""
        [ "$config" = off ] || tracing=$'[tracing]\n'"otlp_endpoint = \"$ENDPOINT\""$'\n'"sampling_ratio = $config"
        stack_up "${batching[$regime]}"$'\n'"$tracing"
        before=$(received)
        read -r d0 _ <<<"$(process_counters "$DAEMON_PID")"
        read -r c0 _ <<<"$(process_counters "$RECEIVER_PID")"
        out=$(target/release/tfgate-load http -c "$CONCURRENCY" -d "$DURATION" --warmup 0 --url "$REST_URL")
        read -r d1 _ <<<"$(process_counters "$DAEMON_PID")"
        # Stopping the daemon exports what it still holds.
        stack_down
        read -r c1 _ <<<"$(process_counters "$RECEIVER_PID")"
        echo "$regime round $round tracing $config: $out" >&2
        [ "$(failures "$out")" -eq 0 ] || die "tracing $config: requests failed: $out; logs in $STACK_DIR"
        requests=$(field "$out" requests)
        rps[$regime/$config]+="$(field "$out" rps) "
        cpu[$regime/$config]+="$(calc "printf \"%.2f\", ($d1 - $d0) / 1000 / $requests") "
        receiver[$regime/$config]+="$(calc "printf \"%.2f\", ($c1 - $c0) / 1000 / $requests") "
        spans[$regime/$config]+="$(calc "printf \"%.2f\", ($(received) - $before) / $requests") "
    done
  done
done

echo
echo "### Request traces: single-row predictions at c = $CONCURRENCY (median of $ROUNDS rounds)"
echo
echo "| regime | [tracing] | requests/s | runs | / off | daemon CPU us/request | runs | / off | spans exported per request | receiver CPU us/request |"
echo "| --- | --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: |"
for regime in $regimes; do
    for config in $configs; do
        k=$regime/$config
        r=$(median <<<"${rps[$k]}"); c=$(median <<<"${cpu[$k]}")
        name=off; [ "$config" = off ] || name="sampling_ratio = $config"
        echo "| $regime | $name | $r | ${rps[$k]% } | $(calc "printf \"%.3f\", $r / $(median <<<"${rps[$regime/off]}")") | $c | ${cpu[$k]% } | $(calc "printf \"%.3f\", $c / $(median <<<"${cpu[$regime/off]}")") | $(median <<<"${spans[$k]}") | $(median <<<"${receiver[$k]}") |"
    done
done

[ "${CALLGRIND:-1}" = 1 ] || exit 0
stack_sim_down
stack_sim "" 1
command -v valgrind >/dev/null || install_missing_packages valgrind
instructions() { # config, requests: the daemon's instructions over a run of that many requests
    local out="${CALLGRIND_DIR:-$STACK_DIR}/callgrind.$1.$2"
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s %s "$@"\n' \
        "$out" "$TFGATE_ROOT/target/release/tfgate-batcher" >"$STACK_DIR/cg-daemon"
    chmod +x "$STACK_DIR/cg-daemon"
    tracing=""
    [ "$1" = off ] || tracing=$'[tracing]\n'"otlp_endpoint = \"$ENDPOINT\""$'\n'"sampling_ratio = $1"
    TFGATE_BATCHER_BIN=$STACK_DIR/cg-daemon stack_up "$tracing"
    out_load=$(target/release/tfgate-load http -c 8 --requests "$2" --warmup 0 -d 600 --url "$REST_URL")
    [ "$(failures "$out_load")" -eq 0 ] || die "callgrind $1: requests failed: $out_load"
    stack_down
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}
echo
echo "### Request traces: the daemon's instructions per request (callgrind; c = 8, 2,500 - 500 requests)"
echo
echo "| [tracing] | instructions/request | / off |"
echo "| --- | ---: | ---: |"
declare -A per=()
for config in off 1.0 0.1; do
    small=$(instructions "$config" 500)
    large=$(instructions "$config" 2500)
    per[$config]=$(( (large - small) / 2000 ))
    name=off; [ "$config" = off ] || name="sampling_ratio = $config"
    echo "| $name | ${per[$config]} | $(calc "printf \"%.3f\", ${per[$config]} / ${per[off]}") |"
done
