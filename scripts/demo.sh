#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds, and shows HTTP/3 working: h3-server on a
# generated self-signed certificate, fetched by h3-client (certificate verified
# against that certificate, no --insecure).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make native
scripts/gen-cert.sh build/certs
site=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$site"' EXIT
printf '<!doctype html><title>rust-quic</title><h1>Hello over HTTP/3 from rust-quic</h1>\n' > "$site/index.html"
build/bin/h3-server --cert build/certs/cert.pem --key build/certs/key.pem --host 127.0.0.1 --port 0 \
  --root "$site" > "$site/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do grep -q "listening on" "$site/server.log" && break; sleep 0.1; done
port=$(sed -n 's/listening on //p' "$site/server.log")
echo "h3-server listening on UDP port $port; fetching https://localhost:$port/ over HTTP/3:"
build/bin/h3-client -v --cacert build/certs/cert.pem "https://localhost:$port/"
