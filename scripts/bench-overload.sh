#!/usr/bin/env bash
# Overload benchmark (issue 20): the whole stack (tfgate-load -> nginx + module ->
# tfgate-batcher -> tfs-sim) above saturation, side by side in one run with today's first-come
# daemon (built from BASELINE_REV) at its defaults and with a hand-set `max_queue = 128`.
#
# Model: 100 ms + 1 ms/row on one executor, so a full batch of 64 takes 164 ms and the bound is
# 390 rows/s. Callers arrive as Poisson processes, send one row, and give up after 1 s (they
# hang up: close their connection). `timeout_ms = 1000`, everything else default. Each run
# starts a fresh tfs-sim (a baseline's abandoned calls would keep it busy) and daemon, loads it
# for WARMUP seconds (it learns the model's cost, its queue fills), then measures SECONDS: the
# calls sent then and tfs-sim's rows meanwhile (steady state: the backlog at either end of the
# window is alike, so answers per second are not inflated by a drain).
#
#   scripts/bench-overload.sh [SECONDS=10]
#   SECTIONS="overload" BASELINE_REV=20a9c37 scripts/bench-overload.sh 5
#
# Sections: overload (2x and 5x the bound), priority (a high-priority plan at half the bound
# while a low class floods at 2x), weights (two callers flooding at 2x, plan weights 3 and 1).
# Prints Markdown tables (the figures in docs/benchmarks.md, section "Overload").
#
# The baseline daemon is built once into build/baseline/ (a git worktree of BASELINE_REV and its
# own target directory); the nginx module, tfs-sim and the load are this checkout's.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-10}
SECTIONS=${SECTIONS:-"overload priority weights"}
# The daemon before issue 20 (first-come queue, no deadline prediction).
BASELINE_REV=${BASELINE_REV:-20a9c37}
FIXED_US=100000
PER_ROW_US=1000
MAX_BATCH=64
GIVE_UP=1
WARMUP=${WARMUP:-3}

source "$(dirname "$0")/lib/baseline.sh"
build_current_and_baseline

source "$(dirname "$0")/lib/stack.sh"
stack_init
# Thousands of callers in flight, each with its connection to nginx and nginx's to the daemon.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

BOUND=$(calc "printf \"%.0f\", $MAX_BATCH * 1e6 / ($FIXED_US + $PER_ROW_US * $MAX_BATCH)")
FULL_BATCH_MS=$(( (FIXED_US + PER_ROW_US * MAX_BATCH) / 1000 ))
# A caller and its plan come from headers only this benchmark sends (nginx passes them as the
# trusted X-Tfgate-Subject and X-Tfgate-Plan, as a location would from token claims).
REST_EXTRA='proxy_set_header X-Tfgate-Subject $http_x_bench_subject;
            proxy_set_header X-Tfgate-Plan $http_x_bench_plan;'
BATCHING="timeout_ms = 1000"

sim_rows() { curl -sf "$SIM_STATS_URL" | sed -n 's/.*"predict_items":\([0-9]*\).*/\1/p'; }

# One open-loop caller population: rate, subject, plan.
load() {
    target/release/tfgate-load http --url "$REST_URL" --rate "$1" -H "X-Bench-Subject: $2" -H "X-Bench-Plan: $3" \
        -c 3000 --give-up "$GIVE_UP" -d "$DURATION" --warmup "$WARMUP" --seed "${SEED:-1}"
}

# A fresh simulator and daemon (binary, settings).
start() {
    stack_sim_down
    stack_sim "$FIXED_US,$PER_ROW_US" 1
    TFGATE_BATCHER_BIN=$1 stack_up "$2" "tfgate_route on;" "$REST_EXTRA"
}

# Rows tfs-sim accepts during the measured window of a load just started (it runs every call it
# accepts, abandoned or not), in $STACK_DIR/rows.
count_rows_in_window() {
    (sleep "$WARMUP"; r0=$(sim_rows); sleep "$DURATION"; echo $(( $(sim_rows) - r0 )) >"$STACK_DIR/rows") &
    ROWS_PID=$!
}
rows_run() {
    wait "$ROWS_PID"
    cat "$STACK_DIR/rows"
}

sent() { echo $(( $(field "$1" requests) + $(failures "$1") )); }
pct() { calc "if ($2 > 0) printf \"%.0f%%\", 100 * $1 / $2; else print \"-\""; }
ms() { calc "printf \"%.0f\", $1 / 1000"; }

declare -A DAEMONS=([tfgate]="$CURRENT_BIN" [baseline]="$BASELINE_BIN" [baseline-max-queue-128]="$BASELINE_BIN")
declare -A SETTINGS=([tfgate]="$BATCHING" [baseline]="$BATCHING" [baseline-max-queue-128]="$BATCHING
max_queue = 128")

echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${WARMUP}s + ${DURATION}s per run; baseline $BASELINE_REV ($(git log -1 --format=%cs "$BASELINE_REV"))" >&2

section_overload() {
    echo
    echo "### Overload: Poisson arrivals above the bound ($BOUND rows/s; 100 ms + 1 ms/row, one executor), callers give up after ${GIVE_UP}s"
    echo
    echo "| daemon | offered | in-time answers/s | of bound | answered p50 / p99 ms | rows run meanwhile | of them answered in time | refused | refusals within 50 ms (p90) | gave up | other errors |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    local times daemon out rows
    for times in 2 5; do
        for daemon in baseline baseline-max-queue-128 tfgate; do
            start "${DAEMONS[$daemon]}" "${SETTINGS[$daemon]}"
            count_rows_in_window
            out=$(load $((BOUND * times)) caller default)
            rows=$(rows_run)
            echo "$daemon ${times}x: $out rows_run=$rows" >&2
            stack_down
            echo "| $daemon | ${times}x | $(field "$out" rps) | $(pct "$(field "$out" rps)" "$BOUND") | $(ms "$(field "$out" p50_us)") / $(ms "$(field "$out" p99_us)") | $rows | $(pct "$(field "$out" requests)" "$rows") | $(field "$out" refused) | $(ms "$(field "$out" refused_p90_us)") ms | $(field "$out" gave_up) ($(pct "$(field "$out" gave_up)" "$(sent "$out")")) | $(field "$out" errors) |"
        done
    done
}

# Plans for the priority and weights sections; the baseline gets the same plans without the
# keys it does not know.
plans() { # with the overload keys (yes/no)
    local keys=$1
    cat <<TOML
$BATCHING
[quotas]
store = "memory"
[quotas.plans.default]
rate = "1000000/s"
[quotas.plans.gold]
rate = "1000000/s"
$( [ "$keys" = yes ] && echo "priority = 1" )
[quotas.plans.heavy]
rate = "1000000/s"
$( [ "$keys" = yes ] && echo "weight = 3" )
TOML
}

section_priority() {
    local half=$((BOUND / 2)) flood=$((BOUND * 2))
    echo
    echo "### Priority: plan gold (priority 1) at half the bound, default callers flooding at 2x; give up after ${GIVE_UP}s"
    echo
    echo "| daemon | gold p99 alone ms | gold p99 with the flood ms | added | goal: added <= 2 full batches ($((2 * FULL_BATCH_MS)) ms) | gold answered | flood in time/s | total in time of bound |"
    echo "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"
    local daemon bin keys alone high low
    for daemon in baseline tfgate; do
        bin=${DAEMONS[$daemon]}; keys=no; [ "$daemon" = tfgate ] && keys=yes
        start "$bin" "$(plans $keys)"
        alone=$(load "$half" gold-caller gold)
        echo "$daemon gold alone: $alone" >&2
        stack_down
        start "$bin" "$(plans $keys)"
        load "$flood" flood-caller default >"$STACK_DIR/flood.json" &
        local flood_pid=$!
        high=$(SEED=2 load "$half" gold-caller gold)
        wait "$flood_pid"
        low=$(cat "$STACK_DIR/flood.json")
        echo "$daemon gold with flood: $high" >&2
        echo "$daemon flood: $low" >&2
        stack_down
        local added met
        added=$(( ($(field "$high" p99_us) - $(field "$alone" p99_us)) / 1000 ))
        met=no; [ "$added" -le $((2 * FULL_BATCH_MS)) ] && met=yes
        echo "| $daemon | $(ms "$(field "$alone" p99_us)") | $(ms "$(field "$high" p99_us)") | $added | $met | $(field "$high" requests) of $(sent "$high") | $(field "$low" rps) | $(pct "$(calc "print $(field "$high" rps) + $(field "$low" rps)")" "$BOUND") |"
    done
}

section_weights() {
    local flood=$((BOUND * 2))
    echo
    echo "### Weights: two callers flooding at 2x the bound each, plans heavy (weight 3) and default (weight 1)"
    echo
    echo "| daemon | heavy in time/s | default in time/s | ratio (goal 3 +- 10%) | total of bound |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    local daemon keys heavy light
    for daemon in baseline tfgate; do
        keys=no; [ "$daemon" = tfgate ] && keys=yes
        start "${DAEMONS[$daemon]}" "$(plans $keys)"
        load "$flood" heavy-caller heavy >"$STACK_DIR/heavy.json" &
        local heavy_pid=$!
        light=$(SEED=3 load "$flood" light-caller default)
        wait "$heavy_pid"
        heavy=$(cat "$STACK_DIR/heavy.json")
        echo "$daemon heavy: $heavy" >&2
        echo "$daemon light: $light" >&2
        stack_down
        echo "| $daemon | $(field "$heavy" rps) | $(field "$light" rps) | $(ratio "$(field "$heavy" rps)" "$(field "$light" rps)") | $(pct "$(calc "print $(field "$heavy" rps) + $(field "$light" rps)")" "$BOUND") |"
    done
}

for section in $SECTIONS; do
    "section_$section"
done
