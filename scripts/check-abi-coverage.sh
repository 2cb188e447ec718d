#!/usr/bin/env bash
# Every function quic.h and quic_embed.h declare must be called by the C ABI test,
# and every exported us_quic_* / us_create_quic_* symbol of the engine must be
# declared by one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
headers=(packages/bun-usockets/src/quic.h packages/bun-usockets/src/quic_embed.h)
declared=$(grep -ohE '\bus_(quic|create_quic)_[a-z0-9_]+\(' "${headers[@]}" | tr -d '(' | sort -u)
missing=0
for fn in $declared; do
  if ! grep -qE "\b$fn\(" packages/bun-usockets/tests/abi_test.c; then
    echo "not called by abi_test.c: $fn"; missing=$((missing + 1))
  fi
done
for fn in $(grep -ohE 'extern "C" fn us_(quic|create_quic)_[a-z0-9_]+' rust-quic/src/*.rs | awk '{print $4}' | sort -u); do
  if ! grep -qx "$fn" <<<"$declared"; then
    echo "exported but in no header: $fn"; missing=$((missing + 1))
  fi
done
total=$(wc -w <<<"$declared")
echo "quic.h + quic_embed.h functions: $total, called by the ABI test: $((total - missing))"
[ "$missing" -eq 0 ]
