#!/bin/bash
# Runs tfgate-batcher and nginx in one container; stops both when either exits.
set -eu
cat > /run/tfgate/batcher.toml <<TOML
listen = "/run/tfgate/batcher.sock"
socket_mode = "0666"

[backend]
grpc = ["${TFGATE_BACKEND}"]
TOML
tfgate-batcher check-config /run/tfgate/batcher.toml
tfgate-batcher --config /run/tfgate/batcher.toml &
batcher=$!
for _ in $(seq 50); do [ -S /run/tfgate/batcher.sock ] && break; sleep 0.1; done
nginx -g 'daemon off;' &
nginx_pid=$!
trap 'kill -TERM $batcher $nginx_pid 2>/dev/null' TERM INT
wait -n
kill -TERM $batcher $nginx_pid 2>/dev/null || true
wait
