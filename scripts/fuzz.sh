#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer) of everything that parses untrusted input:
# tokens, key documents, REST paths, catalog directives, JSON <-> tensors, gRPC ModelSpecs.
# Each target starts from its committed seeds in fuzz/corpus/TARGET; crashes land in
# fuzz/artifacts/TARGET. Figures: docs/fuzzing.md.
#
#   scripts/fuzz.sh                      # every target, 10 million executions each
#   scripts/fuzz.sh --runs 100000 rest_path catalog
#   scripts/fuzz.sh --seconds 60         # every target, a minute each
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

limit=(-runs=10000000)
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) limit=("-runs=$2"); shift 2 ;;
        --seconds) limit=("-max_total_time=$2"); shift 2 ;;
        -*) die "unknown option $1 (--runs N, --seconds S)" ;;
        *) targets+=("$1"); shift ;;
    esac
done

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
all=$(cargo +nightly fuzz list --fuzz-dir fuzz)
[ ${#targets[@]} -gt 0 ] || read -r -a targets <<<"$(echo $all)"

# Build every target first, so that the runs test one version of the code.
log "building the fuzz targets (nightly, address sanitizer)"
cargo +nightly fuzz build --fuzz-dir fuzz -O "${targets[@]/#/}" >&2 2>/dev/null || cargo +nightly fuzz build --fuzz-dir fuzz -O >&2
bin_dir=fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release

failed=0
printf '%-16s %14s %10s %8s %s\n' target executions exec/s seconds result
for target in "${targets[@]}"; do
    echo "$all" | grep -qx "$target" || die "no fuzz target $target (have: $(echo $all))"
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log_file=$(mktemp)
    started=$(date +%s)
    if "$bin_dir/$target" "fuzz/corpus/$target" "${limit[@]}" -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$log_file" 2>&1; then
        result=ok
    else
        result="CRASH: see fuzz/artifacts/$target/ and $log_file"
        failed=1
    fi
    seconds=$(( $(date +%s) - started ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log_file")
    printf '%-16s %14s %10s %8s %s\n' "$target" "${runs:-?}" "$(( ${runs:-0} / (seconds > 0 ? seconds : 1) ))" "$seconds" "$result"
    [ "$result" = ok ] && rm -f "$log_file"
done
exit $failed
