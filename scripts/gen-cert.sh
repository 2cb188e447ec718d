#!/usr/bin/env bash
# A self-signed P-256 certificate for localhost, 127.0.0.1 and ::1.
# Usage: scripts/gen-cert.sh DIR   -> DIR/cert.pem, DIR/key.pem (kept if present)
set -euo pipefail
dir=${1:?usage: gen-cert.sh DIR}
mkdir -p "$dir"
[ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] && exit 0
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
