#!/usr/bin/env bash
# Installs what the build and the tests need, only when missing (idempotent).
# Usage: scripts/setup.sh [--peers]   (--peers also installs the interop peers)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
have cmake || need_apt+=(cmake)
have clang || need_apt+=(clang)
dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
have pkg-config || need_apt+=(pkg-config)
if [ "${1:-}" = "--peers" ]; then
  have gtlsclient || need_apt+=(ngtcp2-client)
  have chromium || need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
