#!/usr/bin/env bash
# Creates (once) and prints the path of the Python virtual environment the tests use: real
# TensorFlow (tensorflow-cpu), TF Serving's Python API (tensorflow-serving-api), grpcio,
# OpenTelemetry's OTLP definitions (opentelemetry-proto), and the Open Inference Protocol's
# client (tritonclient) and server (mlserver), as pinned in tests/python/requirements*.txt.
#
#   VENV=$(scripts/python-env.sh)      # then "$VENV/bin/python" ...
#
# The venv lives under ${XDG_CACHE_HOME:-~/.cache}/tfgate/venv-<hash of the requirement files>,
# so a change of pins makes a new one and later runs reuse it without the network. A venv is
# marked complete only after it imports what the tests need, so an interrupted install is never
# taken for a good one (the next run starts it again). Override the location with
# TFGATE_PYTHON_VENV.
# Progress goes to stderr; stdout carries only the path.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

requirements=tests/python/requirements.txt
nodeps=tests/python/requirements-nodeps.txt
hash=$(cat "$requirements" "$nodeps" | sha256sum | cut -c1-12)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/tfgate
VENV=${TFGATE_PYTHON_VENV:-$cache/venv-$hash}

# Separate interpreters: MLServer's generated protos and tritonclient's both register package
# `inference` in protobuf's default pool, so one process never imports both.
check() {
    "$1/bin/python" -c 'import tensorflow, grpc; from tensorflow_serving.apis import prediction_log_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
import tritonclient.http, tritonclient.grpc' >/dev/null 2>&1 &&
        "$1/bin/python" -c 'import mlserver, mlserver.grpc' >/dev/null 2>&1
}

if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.complete" ]; then
    echo "$VENV"
    exit 0
fi

command -v python3 >/dev/null || die "python3 is not installed"
mkdir -p "$(dirname "$VENV")"
# One builder at a time (tests running in parallel may all ask for the venv).
exec 9>"$VENV.lock"
flock 9
if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.complete" ]; then
    echo "$VENV"
    exit 0
fi
log "creating the Python test environment $VENV (tensorflow-cpu, tensorflow-serving-api, tritonclient, mlserver; a few minutes, once)"
rm -rf "$VENV"
python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir)
"${pip[@]}" -r "$requirements" >&2 || die "pip could not install $requirements"
"${pip[@]}" --no-deps -r "$nodeps" >&2 || die "pip could not install $nodeps"
check "$VENV" || die "the Python test environment does not import tensorflow, grpc, tensorflow_serving, opentelemetry.proto, tritonclient and mlserver"
touch "$VENV/.complete"
echo "$VENV"
