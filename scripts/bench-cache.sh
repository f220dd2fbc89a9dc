#!/usr/bin/env bash
# The row cache (issue 23): single-row REST predictions at c = 64 through the whole stack
# (tfgate-load -> nginx + module -> tfgate-batcher -> tfs-sim), the large model (20 ms + 200 us
# per row, one executor), with and without `[models.half_plus_two] row_cache = "64MiB"`, side
# by side, in two loads:
#   - zipf: each request's value drawn from Zipf(1.0) over 10,000 distinct values (popular
#     inputs repeat, as product pages or feature vectors do);
#   - distinct: every request a value never sent before, in the warm-up too (the cache can
#     only cost).
# Each configuration gets a fresh daemon, a warm-up load of WARMUP seconds (which fills the
# cache), then SECONDS measured. Reported per run: rows/s answered, the cache's hit rate over the
# measured load (tfgate_row_cache_hits_total / (hits + misses)), and the rows the model computed
# (tfs-sim's predict_items, padding excluded) per row answered. The configurations run in turn,
# ROUNDS times; medians and the goals at the end, with each run's median latency and the
# daemon's CPU per request (from /proc: the cache's own cost, whatever the batches did).
#
#   scripts/bench-cache.sh [SECONDS=10] [ROUNDS=2]
#   WARMUP=10 TFGATE_SKIP_BUILD=1 scripts/bench-cache.sh
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

DURATION=${1:-10}
ROUNDS=${2:-2}
WARMUP=${WARMUP:-10}
CONCURRENCY=64
DISTINCT=10000

[ -n "${TFGATE_SKIP_BUILD:-}" ] || scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2
source "$(dirname "$0")/lib/stack.sh"
stack_init

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
metric() { curl -s "$METRICS_URL" | awk -v s="$1" '$1 == s { print $2 }'; }
sim_items() { curl -sf "$SIM_STATS_URL" | sed -n 's/.*"predict_items":\([0-9]*\).*/\1/p'; }
inputs() { if [ "$1" = zipf ]; then echo "--zipf $DISTINCT"; else echo "--distinct"; fi; }

declare -A rps=() hit=() backend=() p50=() cpu=()
loads="zipf distinct"
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ${WARMUP}s warm-up + ${DURATION}s per run, $ROUNDS rounds" >&2
for round in $(seq "$ROUNDS"); do
    for load in $loads; do
        for cache in off on; do
            stack_sim "20000,200" 1
            models=""
            [ "$cache" = on ] && models='[models.half_plus_two]
row_cache = "64MiB"'
            stack_up "$models"
            # shellcheck disable=SC2046
            target/release/tfgate-load http -c "$CONCURRENCY" -d "$WARMUP" --warmup 0 --seed "$((2 * round))" \
                --url "$REST_URL" $(inputs "$load") >/dev/null
            h0=$(metric 'tfgate_row_cache_hits_total{model="half_plus_two"}'); m0=$(metric 'tfgate_row_cache_misses_total{model="half_plus_two"}')
            i0=$(sim_items)
            read -r d0 _ <<<"$(process_counters "$DAEMON_PID")"
            # shellcheck disable=SC2046
            out=$(target/release/tfgate-load http -c "$CONCURRENCY" -d "$DURATION" --warmup 0 --seed "$((2 * round + 1))" \
                --url "$REST_URL" $(inputs "$load"))
            h1=$(metric 'tfgate_row_cache_hits_total{model="half_plus_two"}'); m1=$(metric 'tfgate_row_cache_misses_total{model="half_plus_two"}')
            i1=$(sim_items)
            read -r d1 _ <<<"$(process_counters "$DAEMON_PID")"
            echo "round $round $load cache $cache: $out" >&2
            [ "$(failures "$out")" -eq 0 ] || die "$load $cache: requests failed: $out; logs in $STACK_DIR"
            requests=$(field "$out" requests)
            rps[$load/$cache]+="$(field "$out" rps) "
            p50[$load/$cache]+="$(calc "printf \"%.1f\", $(field "$out" p50_us) / 1000") "
            cpu[$load/$cache]+="$(calc "printf \"%.1f\", ($d1 - $d0) / 1000 / $requests") "
            if [ "$cache" = on ]; then
                hit[$load]+="$(calc "printf \"%.4f\", (${h1:-0} - ${h0:-0}) / ((${h1:-0} - ${h0:-0}) + (${m1:-0} - ${m0:-0}))") "
            fi
            backend[$load/$cache]+="$(calc "printf \"%.4f\", ($i1 - $i0) / $requests") "
            stack_down
            stack_sim_down
        done
    done
done

echo
echo "### Row cache: single-row predictions, c = $CONCURRENCY, large model (20 ms + 200 us/row, 1 executor), ${WARMUP} s warm-up then ${DURATION} s measured, median of $ROUNDS rounds"
echo
echo "| load | row_cache | rows/s (median) | runs | p50 ms, runs | hit rate | backend rows per answered row | runs | daemon CPU us/request, runs |"
echo "| --- | --- | ---: | --- | --- | ---: | ---: | --- | --- |"
for load in $loads; do
    for cache in off on; do
        h=-; [ "$cache" = on ] && h=$(median <<<"${hit[$load]}")
        echo "| $load | $cache | $(median <<<"${rps[$load/$cache]}") | ${rps[$load/$cache]% } | ${p50[$load/$cache]% } | $h | $(median <<<"${backend[$load/$cache]}") | ${backend[$load/$cache]% } | ${cpu[$load/$cache]% } |"
    done
done
echo
zipf_ratio=$(calc "printf \"%.2f\", $(median <<<"${rps[zipf/on]}") / $(median <<<"${rps[zipf/off]}")")
distinct_ratio=$(calc "printf \"%.3f\", $(median <<<"${rps[distinct/on]}") / $(median <<<"${rps[distinct/off]}")")
zipf_hit=$(median <<<"${hit[zipf]}")
zipf_backend=$(median <<<"${backend[zipf/on]}")
echo "| goal | measured | met |"
echo "| --- | ---: | --- |"
echo "| Zipf(1.0) over $DISTINCT values: rows/s with the cache / without (>= 3) | $zipf_ratio | $(calc "print ($zipf_ratio >= 3) ? \"yes\" : \"no\"") |"
echo "| Zipf: backend rows per answered row <= (1 - hit rate) + 0.02 = $(calc "printf \"%.4f\", 1 - $zipf_hit + 0.02") | $zipf_backend | $(calc "print ($zipf_backend <= 1 - $zipf_hit + 0.02) ? \"yes\" : \"no\"") |"
echo "| all distinct: rows/s with the cache / without (>= 0.97) | $distinct_ratio | $(calc "print ($distinct_ratio >= 0.97) ? \"yes\" : \"no\"") |"
