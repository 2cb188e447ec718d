#!/usr/bin/env bash
# Installs what the build and the tests need, only what is missing (idempotent).
#   scripts/setup.sh           build tools (cmake, clang, libclang-dev, pkg-config)
#   scripts/setup.sh --peers   also the interop peers and test tools: ngtcp2 client and
#                              server, Chromium, valgrind, aioquic (+ its examples), pytest,
#                              Bun 1.4.5 from npm
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }
have cmake || need_apt+=(cmake)
have clang || need_apt+=(clang)
have_pkg libclang-dev || need_apt+=(libclang-dev)
have pkg-config || need_apt+=(pkg-config)
have openssl || need_apt+=(openssl)
have make || need_apt+=(make)
if [ "${1:-}" = "--peers" ]; then
  have gtlsclient || need_apt+=(ngtcp2-client)
  have gtlsserver || need_apt+=(ngtcp2-server)
  have chromium || need_apt+=(chromium)
  have valgrind || need_apt+=(valgrind)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ "${1:-}" = "--peers" ]; then
  py=(aioquic==1.7.2 wsproto httpx pytest starlette jinja2)
  if ! python3 -c "import aioquic, wsproto, httpx, pytest, starlette, jinja2" 2>/dev/null; then
    echo "setup: pip install ${py[*]}"
    python3 -m pip install -q --disable-pip-version-check "${py[@]}" 2>&1 | grep -v "WARNING: Running pip as" || true
  fi
  # aioquic's example client and server ship in its sdist only.
  if [ ! -f build/peers/aioquic-1.7.2/examples/http3_server.py ]; then
    mkdir -p build/peers
    python3 -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps aioquic==1.7.2 -d build/peers
    tar xzf build/peers/aioquic-1.7.2.tar.gz -C build/peers
  fi
  if [ ! -x node_modules/.bin/bun ] || [ "$(node_modules/.bin/bun --version 2>/dev/null)" != "1.4.5" ] \
     || [ ! -x node_modules/.bin/tsc ] || [ ! -d node_modules/bun-types ]; then
    echo "setup: npm install (bun 1.4.5, bun-types, typescript)"
    npm install --no-audit --no-fund --loglevel=error
  fi
fi
