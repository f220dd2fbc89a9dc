# A daemon built from another commit, for benchmarks that compare against it. Sourced after
# common.sh, from the repository root.
#
#   bin=$(build_baseline REV)   # builds tfgate-batcher of REV once into build/baseline/

# Prints the path of REV's tfgate-batcher, building it first if needed: a git worktree of REV
# in build/baseline/src and a target directory of its own (the first build takes minutes).
build_baseline() { # rev
    local rev=$1 src=build/baseline/src target=build/baseline/target want have=""
    want=$(git rev-parse "$rev^{commit}") || die "baseline revision $rev is not a commit here"
    [ -d "$src" ] && have=$(git -C "$src" rev-parse HEAD 2>/dev/null || true)
    if [ "$have" != "$want" ]; then
        rm -rf "$src"
        git worktree prune
        git worktree add --detach "$src" "$want" >&2
    fi
    log "building the baseline daemon ($rev) in build/baseline"
    (cd "$src" && CARGO_TARGET_DIR="$TFGATE_ROOT/$target" cargo build --release --locked -q -p tfgate-batcher) >&2
    echo "$TFGATE_ROOT/$target/release/tfgate-batcher"
}

# Builds this checkout (module, daemon, simulator, load generator) and the daemon of
# BASELINE_REV, for the benchmarks that run both side by side: sets CURRENT_BIN and BASELINE_BIN.
build_current_and_baseline() {
    scripts/build.sh ngx-http-tfgate-module tfgate-batcher tfs-sim tfgate-load >&2
    BASELINE_BIN=$(build_baseline "${BASELINE_REV:?}")
    CURRENT_BIN=$TFGATE_ROOT/target/release/tfgate-batcher
}
