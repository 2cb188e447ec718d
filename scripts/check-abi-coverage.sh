#!/usr/bin/env bash
# Every function quic.h declares must be called by the C ABI test.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=0
for fn in $(grep -oE '\bus_quic_[a-z0-9_]+\(' packages/bun-usockets/src/quic.h | tr -d '(' | sort -u); do
  if ! grep -qE "\b$fn\(" packages/bun-usockets/tests/abi_test.c; then
    echo "not called by abi_test.c: $fn"; missing=$((missing + 1))
  fi
done
total=$(grep -oE '\bus_quic_[a-z0-9_]+\(' packages/bun-usockets/src/quic.h | sort -u | wc -l)
echo "quic.h functions: $total, called by the ABI test: $((total - missing))"
[ "$missing" -eq 0 ]
