#!/usr/bin/env bash
# Runs every test: unit tests of each crate, then the integration tests in tests/, which start
# the installed nginx with the freshly built module, tfgate-batcher and tfs-sim on loopback.
# Without a filter, whole-run checks follow: the Kubernetes manifests, a 2-minute soak
# (scripts/soak.sh 2) and, as root, the Debian packages.
#
#   scripts/test.sh              # everything
#   scripts/test.sh walking      # only tests whose name contains "walking"
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

# What building and the tests need from Debian (the real servers the tests start on loopback,
# lintian, python3-venv), so that this one command works on a fresh machine.
install_missing_packages "${TFGATE_APT_PACKAGES[@]}" "${TFGATE_TEST_APT_PACKAGES[@]}"

# The integration tests need the release binaries and the module built for this nginx.
scripts/build.sh
NGINX_BUILD_DIR=${NGINX_BUILD_DIR:-$TFGATE_ROOT/build/nginx-$(installed_nginx_version)/objs}
export NGINX_BUILD_DIR

# A module built against another nginx (1.28, from the nginx-src crate) for the test that nginx
# refuses it cleanly.
log "building the module against another nginx version (for the version-mismatch test)"
env -u NGINX_BUILD_DIR -u NGINX_SOURCE_DIR \
    cargo build --release -p ngx-http-tfgate-module --features nginx-sys/vendored --target-dir target/other-nginx

# The nginx build-system route (./configure --add-dynamic-module), for its test.
log "building the module through nginx's own build system"
scripts/build-addon.sh

# Real TensorFlow and TF Serving's Python API, for the tests that read the prediction log (and
# the gRPC clients): a cached venv, made once per machine (a few minutes), reused after.
log "preparing the Python test environment"
scripts/python-env.sh >/dev/null

log "running the tests"
cargo test --workspace --no-fail-fast -- "$@"

# Whole-run checks, skipped when a test filter was given.
if [ $# -eq 0 ]; then
    log "checking the Kubernetes manifests"
    scripts/check-manifests.sh
    # The whole stack for 2 minutes under load, every kind of event once (nginx and daemon
    # reloads, DNS change, Redis restart, a backend killed, log rotation): nothing lost outside
    # the documented windows, fds and threads flat (the RSS goal needs the 30-minute run).
    log "a 2-minute soak (scripts/soak.sh 2)"
    scripts/soak.sh 2
    if [ "$(id -u)" -eq 0 ]; then
        log "testing the Debian packages (install, serve, purge)"
        scripts/test-packages.sh
    else
        log "skipping the Debian package test (needs root)"
    fi
fi
