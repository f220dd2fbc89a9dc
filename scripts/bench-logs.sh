#!/usr/bin/env bash
# Logs benchmark: what the audit log and the prediction log cost through the whole stack
# (tfgate-load -> nginx + module -> tfgate-batcher -> tfs-sim without cost, so the gateway's own
# CPU is the bound) at 64 concurrent clients. Three configurations: logs off, audit on,
# prediction log at sampling rate 1.0 (every request; audit off). Runs are interleaved
# (off, audit, predictions, off, ...) so that the machine's drift spreads over all three;
# prints each run, then the medians and their ratios to "off" as Markdown (docs/benchmarks.md,
# section "Logs").
#
# Two measures of cost: throughput (what the goal is stated in, but on a small shared machine it
# swings with the neighbours' load), and CPU time per request of the stack's processes (daemon
# with its log threads, nginx's worker, tfs-sim; from /proc/PID/task/*/schedstat), which the
# neighbours disturb far less: in a CPU-bound stack throughput goes as its inverse.
#
#   scripts/bench-logs.sh [SECONDS=5] [ROUNDS=3]
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-5}
ROUNDS=${2:-3}
CLIENTS=${CLIENTS:-64}

scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2

source "$(dirname "$0")/lib/stack.sh"
stack_init
stack_sim "" 1

# The stack, with the logs of one configuration (in $STACK_DIR/logs, emptied first).
start_stack() { # off | audit | predictions
    local logs=""
    rm -rf "$STACK_DIR/logs"; mkdir -p "$STACK_DIR/logs"
    case $1 in
        audit) logs="[audit]
path = \"$STACK_DIR/logs/audit.jsonl\"" ;;
        predictions) logs="[prediction_log]
dir = \"$STACK_DIR/logs/predictions\"
sampling_rate = 1.0" ;;
    esac
    stack_up "$logs"
}

# CPU time (ns) of every thread of the given processes so far.
cpu_ns() {
    local ns=0 pid run
    for pid in "$@"; do
        read -r run _ <<<"$(process_counters "$pid")"
        ns=$((ns + run))
    done
    echo "$ns"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A rps=() p50=() p99=() stack_us=() daemon_us=()
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg) at start; ${DURATION}s per run, c = $CLIENTS"
echo
echo "| round | configuration | rps | p50 us | p99 us | stack CPU us/request | daemon CPU us/request | errors | written |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for round in $(seq "$ROUNDS"); do
    for config in off audit predictions; do
        start_stack "$config"
        target/release/tfgate-load http -c "$CLIENTS" -d 1 --warmup 0 --url "$REST_URL" >/dev/null
        workers=$(pgrep -P "$(cat "$STACK_DIR/nginx/nginx.pid")" | tr '\n' ' ')
        # shellcheck disable=SC2086
        stack0=$(cpu_ns "$DAEMON_PID" "$SIM_PID" $workers); daemon0=$(cpu_ns "$DAEMON_PID")
        result=$(target/release/tfgate-load http -c "$CLIENTS" -d "$DURATION" --warmup 0 --url "$REST_URL")
        # shellcheck disable=SC2086
        stack1=$(cpu_ns "$DAEMON_PID" "$SIM_PID" $workers); daemon1=$(cpu_ns "$DAEMON_PID")
        stack_down
        written=$(du -sh "$STACK_DIR/logs" | cut -f1)
        requests=$(field "$result" requests)
        s_us=$(calc "printf \"%.1f\", ($stack1 - $stack0) / 1000 / $requests")
        d_us=$(calc "printf \"%.1f\", ($daemon1 - $daemon0) / 1000 / $requests")
        rps[$config]+="$(field "$result" rps) "
        p50[$config]+="$(field "$result" p50_us) "
        p99[$config]+="$(field "$result" p99_us) "
        stack_us[$config]+="$s_us "
        daemon_us[$config]+="$d_us "
        echo "| $round | $config | $(field "$result" rps) | $(field "$result" p50_us) | $(field "$result" p99_us) | $s_us | $d_us | $(field "$result" errors) | $written |"
    done
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo
echo "| configuration | median rps | rps / off | median p50 us | median p99 us | median stack CPU us/request | stack CPU / off | median daemon CPU us/request |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
off=$(med "${rps[off]}")
off_cpu=$(med "${stack_us[off]}")
for config in off audit predictions; do
    m=$(med "${rps[$config]}")
    c=$(med "${stack_us[$config]}")
    echo "| $config | $m | $(calc "printf \"%.3f\", $m / $off") | $(med "${p50[$config]}") | $(med "${p99[$config]}") | $c | $(calc "printf \"%.3f\", $c / $off_cpu") | $(med "${daemon_us[$config]}") |"
done
kill "$SIM_PID" 2>/dev/null || true
