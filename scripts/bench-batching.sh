#!/usr/bin/env bash
# Batching benchmark: the whole stack (tfgate-load -> nginx + module -> tfgate-batcher ->
# tfs-sim) with the default adaptive dispatch, side by side in one run with
#   - the same clients calling tfs-sim directly over gRPC, one row per Predict (unbatched);
#   - fixed dispatch set the way TF Serving's batching guide suggests (a partial batch waits
#     max_delay_us = 1000 for company, "e.g. 1 millisecond");
#   - the bound: executors x B / (FIXED + PER_ITEM x B), B = min(clients per executor,
#     max_batch_size), every executor always busy with batches as full as the clients allow.
# Prints Markdown tables (the figures in docs/benchmarks.md, section "Batching").
#
#   scripts/bench-batching.sh [SECONDS=3]
#   SECTIONS="closed open" SHAPES="2000,20" scripts/bench-batching.sh 5
#   ADAPTIVE_SETTINGS='latency_budget_us = 10000' CONCURRENCIES=64 SECTIONS=closed scripts/bench-batching.sh
#   BASELINE_REV=20a9c37 SECTIONS=closed scripts/bench-batching.sh   # and a baseline daemon
#
# With BASELINE_REV, the closed-loop tables also run the daemon built from that commit (see
# scripts/lib/baseline.sh) with the same settings, in the same run: "baseline" columns.
#
# Sections: closed (closed loop, c = 1 8 32 64 256, one executor), executors (2 executors,
# c = 256), open (Poisson arrivals at 50/80/95% of capacity, latency from each request's
# scheduled time), latency (c = 1 added median over a direct call), cpu (daemon CPU time and
# context switches per request, from /proc, zero-cost simulator), breakdown (the c = 1 path:
# CPU per request of nginx, the daemon and the simulator, and the daemon's CPU by component).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-3}
SECTIONS=${SECTIONS:-"closed executors open latency cpu breakdown"}
CONCURRENCIES=${CONCURRENCIES:-"1 8 32 64 256"}
read -r -a SHAPES <<<"${SHAPES:-20000,200 2000,20}"
FIXED_DELAY_US=${FIXED_DELAY_US:-1000}
MAX_BATCH=64

scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2

BASELINE_BIN=""
if [ -n "${BASELINE_REV:-}" ]; then
    source "$(dirname "$0")/lib/baseline.sh"
    BASELINE_BIN=$(build_baseline "$BASELINE_REV")
fi

source "$(dirname "$0")/lib/stack.sh"
stack_init
URL=$REST_URL

ADAPTIVE=${ADAPTIVE_SETTINGS:-}
FIXED="dispatch = \"fixed\"
max_delay_us = $FIXED_DELAY_US"

load_http() { target/release/tfgate-load http -d "${LOAD_SECONDS:-$DURATION}" --url "$URL" "$@"; }
load_grpc() { target/release/tfgate-load grpc -d "$DURATION" --target "$SIM_TARGET" --version 1 "$@"; }
bound() { # fixed, per_item, rows, executors
    calc "printf \"%.0f\", $4 * $3 * 1e6 / ($1 + $2 * $3)"
}
rows_per_executor() { # clients, executors
    calc "c = int($1 / $2); if (c < 1) c = 1; if (c > $MAX_BATCH) c = $MAX_BATCH; print c"
}
batch_mix() { # the daemon's batches by reason, and mean rows per batch
    local metrics
    metrics=$(curl -s "$METRICS_URL")
    local reasons sum count
    reasons=$(sed -n 's/^tfgate_batches_total{model="half_plus_two",reason="\([a-z_]*\)"} \(.*\)/\1=\2/p' <<<"$metrics" | tr '\n' ' ')
    sum=$(sed -n 's/^tfgate_batch_rows_sum{model="half_plus_two"} \(.*\)/\1/p' <<<"$metrics")
    count=$(sed -n 's/^tfgate_batch_rows_count{model="half_plus_two"} \(.*\)/\1/p' <<<"$metrics")
    echo "${reasons}mean rows $(ratio "${sum:-0}" "${count:-0}")"
}

section_closed() { # executors, concurrencies
    local executors=$1 concurrencies=$2
    for shape in "${SHAPES[@]}"; do
        local fixed=${shape%,*} per_item=${shape#*,}
        echo
        echo "### Closed loop, --cost-us $shape, $executors executor(s)"
        echo
        local extra_head="" extra_rule="" policies="ADAPTIVE FIXED"
        if [ -n "$BASELINE_BIN" ]; then
            extra_head=" baseline rps | baseline p50 ms | adaptive/baseline |"; extra_rule=" ---: | ---: | ---: |"
            policies="ADAPTIVE BASELINE FIXED"
        fi
        echo "| clients | bound rps | adaptive rps | adaptive/bound | p50 ms | p99 ms | fixed 1 ms rps | fixed/bound | direct rps | direct/bound | adaptive/fixed | adaptive/direct |$extra_head errors |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |$extra_rule ---: |"
        stack_sim "$shape" "$executors"
        declare -A adaptive=() fixed_rps=() baseline=()
        for policy in $policies; do
            if [ $policy = BASELINE ]; then
                TFGATE_BATCHER_BIN=$BASELINE_BIN stack_up "$ADAPTIVE"
            else
                stack_up "${!policy}"
            fi
            for c in $concurrencies; do
                local h; h=$(load_http -c "$c")
                case $policy in
                    ADAPTIVE) adaptive[$c]=$h ;;
                    BASELINE) baseline[$c]=$h ;;
                    *) fixed_rps[$c]=$h ;;
                esac
            done
            [ $policy = ADAPTIVE ] && echo "adaptive batches: $(batch_mix)" >"$STACK_DIR/mix"
            stack_down
        done
        for c in $concurrencies; do
            local g a f best errors
            g=$(load_grpc -c "$c")
            a=${adaptive[$c]}; f=${fixed_rps[$c]}
            best=$(bound "$fixed" "$per_item" "$(rows_per_executor "$c" "$executors")" "$executors")
            errors=$(( $(failures "$a") + $(failures "$f") + $(failures "$g") ))
            local extra=""
            if [ -n "$BASELINE_BIN" ]; then
                local b=${baseline[$c]}
                errors=$(( errors + $(failures "$b") ))
                extra=" $(field "$b" rps) | $(calc "printf \"%.1f\", $(field "$b" p50_us) / 1000") | $(ratio "$(field "$a" rps)" "$(field "$b" rps)") |"
            fi
            echo "| $c | $best | $(field "$a" rps) | $(ratio "$(field "$a" rps)" "$best") | $(calc "printf \"%.1f\", $(field "$a" p50_us) / 1000") | $(calc "printf \"%.1f\", $(field "$a" p99_us) / 1000") | $(field "$f" rps) | $(ratio "$(field "$f" rps)" "$best") | $(field "$g" rps) | $(ratio "$(field "$g" rps)" "$best") | $(ratio "$(field "$a" rps)" "$(field "$f" rps)") | $(ratio "$(field "$a" rps)" "$(field "$g" rps)") |$extra $errors |"
        done
        echo
        cat "$STACK_DIR/mix"
        stack_sim_down
    done
}

section_open() {
    for shape in "${SHAPES[@]}"; do
        local fixed=${shape%,*} per_item=${shape#*,}
        local accelerator capacity saturated full_ms
        accelerator=$(bound "$fixed" "$per_item" $MAX_BATCH 1)
        full_ms=$(calc "printf \"%.1f\", ($fixed + $per_item * $MAX_BATCH) / 1000")
        # Capacity: what the whole system sustains, the accelerator's bound or, where the
        # gateway's CPU gives out first (a small model on a small machine), less.
        stack_sim "$shape" 1
        stack_up "$ADAPTIVE"
        saturated=$(field "$(load_http -c 256)" rps)
        stack_down
        stack_sim_down
        capacity=$(calc "a = $accelerator; s = $saturated; printf \"%.0f\", (s < a) ? s : a")
        echo
        echo "### Open loop (Poisson), --cost-us $shape: capacity $capacity rps (accelerator bound $accelerator, stack saturated at $saturated), one full batch $full_ms ms"
        echo
        echo "| load | rate | adaptive p50 ms | adaptive p99 ms | p99 / full batch | unanswered + errors | fixed 1 ms p50 | fixed p99 | fixed unanswered + errors |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        stack_sim "$shape" 1
        declare -A runs=()
        for policy in ADAPTIVE FIXED; do
            stack_up "${!policy}"
            for load in 50 80 95; do
                local rate; rate=$(calc "printf \"%.0f\", $capacity * $load / 100")
                runs[$policy$load]=$(load_http --rate "$rate" -c 1024 --warmup 1)
            done
            stack_down
        done
        for load in 50 80 95; do
            local a=${runs[ADAPTIVE$load]} f=${runs[FIXED$load]}
            local ms="printf \"%.1f\","
            echo "| $load% | $(field "$a" rate) | $(calc "$ms $(field "$a" p50_us) / 1000") | $(calc "$ms $(field "$a" p99_us) / 1000") | $(calc "printf \"%.2f\", $(field "$a" p99_us) / 1000 / $full_ms") | $(( $(field "$a" unanswered) + $(failures "$a") )) | $(calc "$ms $(field "$f" p50_us) / 1000") | $(calc "$ms $(field "$f" p99_us) / 1000") | $(( $(field "$f" unanswered) + $(failures "$f") )) |"
        done
        stack_sim_down
    done
}

section_latency() {
    echo
    echo "### One client: the median the gateway adds over a direct call"
    echo
    echo "| simulator | direct p50 us | stack p50 us | added us | direct p99 us | stack p99 us |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for shape in "" "2000,0"; do
        stack_sim "$shape" 1
        stack_up "$ADAPTIVE"
        local g h
        g=$(load_grpc -c 1); h=$(load_http -c 1)
        echo "| ${shape:-zero cost} | $(field "$g" p50_us) | $(field "$h" p50_us) | $(( $(field "$h" p50_us) - $(field "$g" p50_us) )) | $(field "$g" p99_us) | $(field "$h" p99_us) |"
        stack_down
        stack_sim_down
    done
}

daemon_counters() { process_counters "$DAEMON_PID"; }
thread_names() { # pid: its threads by name, e.g. "tfgate-batcher, background_thread"
    cat /proc/"$1"/task/*/comm 2>/dev/null | sort | uniq -c | awk '{ printf "%s%s%s", (NR > 1 ? ", " : ""), $2, ($1 > 1 ? " x" $1 : "") }'
}

section_cpu() {
    echo
    echo "### Daemon CPU and context switches per single-row request (zero-cost simulator)"
    echo
    echo "| load | requests | daemon CPU us/request | voluntary context switches/request | involuntary | page faults/request | daemon threads |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    stack_sim "" 1
    stack_up "$ADAPTIVE"
    load_http -c 8 --requests 2000 >/dev/null
    local name args
    for name in "c=1" "c=64" "80/s paced"; do
        case $name in
            c=1) args=(-c 1) ;;
            c=64) args=(-c 64) ;;
            *) args=(--rate 80 -c 16) ;;
        esac
        local before after out requests
        before=$(daemon_counters)
        # Paced: long enough for a few hundred requests.
        out=$(LOAD_SECONDS=$([ "$name" = "80/s paced" ] && echo $((DURATION * 3)) || echo "$DURATION") \
            load_http "${args[@]}" --warmup 0)
        after=$(daemon_counters)
        requests=$(field "$out" requests)
        read -r ns0 vol0 inv0 pf0 <<<"$before"; read -r ns1 vol1 inv1 pf1 <<<"$after"
        echo "| $name | $requests | $(calc "printf \"%.1f\", ($ns1 - $ns0) / 1000 / $requests") | $(calc "printf \"%.2f\", ($vol1 - $vol0) / $requests") | $(calc "printf \"%.2f\", ($inv1 - $inv0) / $requests") | $(calc "printf \"%.2f\", ($pf1 - $pf0) / $requests") | $(thread_names "$DAEMON_PID") |"
    done
    stack_down
    stack_sim_down
}

# Where a single-row request's time goes at c = 1 (zero-cost simulator): CPU per request of
# each process on the path, and the daemon's own CPU by component (perf, if installed).
section_breakdown() {
    echo
    echo "### The c=1 path: CPU per request, by process (zero-cost simulator)"
    echo
    stack_sim "" 1
    stack_up "$ADAPTIVE"
    load_http -c 1 --requests 2000 >/dev/null
    local worker; worker=$(stack_nginx_worker)
    local pids=("$worker" "$DAEMON_PID" "$SIM_PID") names=(nginx tfgate-batcher tfs-sim) before=() after=()
    for pid in "${pids[@]}"; do before+=("$(process_counters "$pid")"); done
    local perf_data="$STACK_DIR/perf.data"
    local perf_pid=""
    if command -v perf >/dev/null; then
        perf record -F 4999 -g -o "$perf_data" -p "$DAEMON_PID" -- sleep "$DURATION" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    local out; out=$(load_http -c 1 --warmup 0)
    local requests; requests=$(field "$out" requests)
    for pid in "${pids[@]}"; do after+=("$(process_counters "$pid")"); done
    echo "p50 $(field "$out" p50_us) us over $requests requests"
    echo
    echo "| process | CPU us/request | voluntary context switches/request | involuntary |"
    echo "| --- | ---: | ---: | ---: |"
    for i in 0 1 2; do
        read -r ns0 vol0 inv0 _ <<<"${before[$i]}"; read -r ns1 vol1 inv1 _ <<<"${after[$i]}"
        echo "| ${names[$i]} | $(calc "printf \"%.1f\", ($ns1 - $ns0) / 1000 / $requests") | $(calc "printf \"%.2f\", ($vol1 - $vol0) / $requests") | $(calc "printf \"%.2f\", ($inv1 - $inv0) / $requests") |"
    done
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true
        echo
        echo "tfgate-batcher's CPU by component (perf, self time):"
        echo
        echo "| component | share |"
        echo "| --- | ---: |"
        perf report -i "$perf_data" --no-children --sort dso,sym --stdio -q 2>/dev/null | awk '
            /%/ && $1 ~ /%$/ {
                share = $1; sub(/%/, "", share); line = $0
                c = "other (tfgate code, std)"
                if (line ~ /\[k\]/) c = "kernel (syscalls, wake-ups, sockets)"
                else if (line ~ /h2::|hpack/) c = "h2 (gRPC to the backend)"
                else if (line ~ /tonic::|prost::/) c = "tonic and prost"
                else if (line ~ /hyper::|httparse/) c = "hyper (HTTP/1.1 from nginx)"
                else if (line ~ /tokio::/) c = "tokio (scheduler, timers, I/O driver)"
                else if (line ~ /je_|jemalloc|malloc|free|_rjem/) c = "allocator"
                else if (line ~ /serde|convert::|json/) c = "JSON and tensors"
                else if (line ~ /batching::/) c = "batching"
                else if (line ~ /memcpy|memmove|memset/) c = "memcpy"
                total[c] += share
            }
            END { for (c in total) printf "| %s | %.0f%% |\n", c, total[c] }' | sort -t'|' -k3 -rn
    fi
    stack_down
    stack_sim_down
}

echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${DURATION}s per run"
for section in $SECTIONS; do
    case $section in
        closed) section_closed 1 "$CONCURRENCIES" ;;
        executors) section_closed 2 "256" ;;
        open) section_open ;;
        latency) section_latency ;;
        cpu) section_cpu ;;
        breakdown) section_breakdown ;;
        *) die "unknown section $section" ;;
    esac
done
