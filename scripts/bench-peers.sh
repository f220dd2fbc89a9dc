#!/usr/bin/env bash
# What `allowed_peers` costs (issue 21): the daemon reads each connection's SO_PEERCRED once,
# when it accepts it. Single-row REST predictions at c = 64 through the whole stack
# (tfgate-load -> nginx + module -> tfgate-batcher -> tfs-sim without cost), with and without
# `allowed_peers` (the nginx worker's uid), in two cases:
#   - keepalive: nginx keeps its connections to the daemon (keepalive 512, as packaged), so
#     the check runs once per connection, not per request;
#   - per request: no keepalive, a new Unix connection (and a check) for every request, the
#     worst case.
# The four configurations run in turn, ROUNDS times; reported: requests/s and the daemon's CPU
# per request (medians), with the ratios peers / open, and the connections the daemon held at
# the end of each run (per request: each connection served one request and closed).
#
#   scripts/bench-peers.sh [SECONDS=5] [ROUNDS=3]
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-5}
ROUNDS=${2:-3}
CONCURRENCY=64

[ -n "${TFGATE_SKIP_BUILD:-}" ] || scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2
source "$(dirname "$0")/lib/stack.sh"
stack_init
stack_sim "" 1

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
metric() { curl -s "$METRICS_URL" | awk -v s="$1" '$1 == s { print $2 }'; }
declare -A rps=() cpu=() conns=()
cases="keepalive per-request"
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${DURATION}s per run, $ROUNDS rounds" >&2
for round in $(seq "$ROUNDS"); do
    for case in $cases; do
        for check in open peers; do
            STACK_KEEPALIVE=512; [ "$case" = per-request ] && STACK_KEEPALIVE=0
            STACK_TOP=""; [ "$check" = peers ] && STACK_TOP="allowed_peers = [\"$(id -u)\"]"
            STACK_KEEPALIVE=$STACK_KEEPALIVE STACK_TOP=$STACK_TOP stack_up
            # What the daemon accepted before the load (the warm-up request's connection).
            read -r d0 _ <<<"$(process_counters "$DAEMON_PID")"
            out=$(target/release/tfgate-load http -c "$CONCURRENCY" -d "$DURATION" --warmup 0 --url "$REST_URL")
            read -r d1 _ <<<"$(process_counters "$DAEMON_PID")"
            echo "round $round $case $check: $out" >&2
            [ "$(failures "$out")" -eq 0 ] || die "$case $check: requests failed: $out; logs in $STACK_DIR"
            refused=$(metric 'tfgate_peer_refusals_total{socket="api"}')
            [ "${refused:-0}" = 0 ] || die "$case $check: the daemon refused nginx ($refused)"
            requests=$(field "$out" requests)
            rps[$case/$check]+="$(field "$out" rps) "
            cpu[$case/$check]+="$(calc "printf \"%.2f\", ($d1 - $d0) / 1000 / $requests") "
            # Connections nginx holds to the daemon's REST socket now (kept ones only).
            conns[$case/$check]+="$(ss -Hxp state established | grep -c "batcher.sock.*pid=$DAEMON_PID," || true) "
            stack_down
        done
    done
done

echo
echo "### allowed_peers: single-row predictions at c = $CONCURRENCY, tfs-sim without cost (median of $ROUNDS rounds)"
echo
echo "| nginx -> daemon | allowed_peers | requests/s | runs | daemon CPU us/request | runs | connections open at the end |"
echo "| --- | --- | ---: | --- | ---: | --- | ---: |"
for case in $cases; do
    for check in open peers; do
        echo "| $case | $([ "$check" = peers ] && echo "[\"uid\"]" || echo off) | $(median <<<"${rps[$case/$check]}") | ${rps[$case/$check]% } | $(median <<<"${cpu[$case/$check]}") | ${cpu[$case/$check]% } | $(median <<<"${conns[$case/$check]}") |"
    done
done
echo
echo "| case | requests/s, peers / open | daemon CPU/request, peers / open |"
echo "| --- | ---: | ---: |"
for case in $cases; do
    echo "| $case | $(calc "printf \"%.3f\", $(median <<<"${rps[$case/peers]}") / $(median <<<"${rps[$case/open]}")") | $(calc "printf \"%.3f\", $(median <<<"${cpu[$case/peers]}") / $(median <<<"${cpu[$case/open]}")") |"
done
