#!/usr/bin/env bash
# The rules the machine checks: formatting (rustfmt.toml), clippy with every warning an error
# over every crate and target, and modules that depend on each other one way. The module's
# crate needs a configured nginx tree.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

NGINX_BUILD_DIR=${NGINX_BUILD_DIR:-$(prepare_debian_build_tree)}
export NGINX_BUILD_DIR
log "import cycles between sibling modules"
python3 scripts/check-imports.py
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
