#!/usr/bin/env bash
# The rules the machine checks: formatting (rustfmt.toml), clippy with every warning an error
# over every crate and target, and modules that depend on each other one way. The module's
# crate needs a configured nginx tree. Also the Prometheus rules in deploy/prometheus: promtool
# (Debian package prometheus) checks them and runs their unit tests.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

NGINX_BUILD_DIR=${NGINX_BUILD_DIR:-$(prepare_debian_build_tree)}
export NGINX_BUILD_DIR
command -v promtool >/dev/null || die "promtool is not installed (Debian: apt-get install prometheus)"
log "promtool check rules, promtool test rules (deploy/prometheus)"
promtool check rules deploy/prometheus/*.rules.yml
promtool test rules deploy/prometheus/*.test.yml
log "import cycles between sibling modules"
python3 scripts/check-imports.py
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
