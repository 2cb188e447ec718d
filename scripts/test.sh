#!/usr/bin/env bash
# Every test: lint, engine tests (cargo), the C ABI test, valgrind memcheck,
# interop with aioquic / ngtcp2 / Chromium / Bun's lsquic. Installs what is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --peers || exit 1

passed=0 failed=0 names=()
stage() {
  local name=$1; shift
  echo "=== $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); names+=("$name"); fi
}
stage "cargo fmt --check" cargo fmt --all -- --check
stage "cargo clippy -D warnings" cargo clippy --all-targets -p rust-quic -p usockets-sys -p h3load -- -D warnings
stage "tsc --noEmit (runtime module, tests, doc examples)" node_modules/.bin/tsc --noEmit -p .
stage "cargo test (engine)" cargo test -p rust-quic
stage "build native programs" make native
stage "ABI test calls every quic.h and quic_embed.h function; every export is declared" scripts/check-abi-coverage.sh
stage "certificate" scripts/gen-cert.sh build/certs
stage "C ABI test" build/bin/abi-test build/certs/cert.pem build/certs/key.pem
stage "C ABI test without GSO (sendmmsg path)" env US_DISABLE_GSO=1 build/bin/abi-test build/certs/cert.pem build/certs/key.pem
stage "valgrind memcheck" scripts/memcheck.sh
asan_abi() {
  make asan && ASAN_OPTIONS=detect_leaks=1 build/asan/abi-test build/certs/cert.pem build/certs/key.pem \
    && ASAN_OPTIONS=detect_leaks=1 US_DISABLE_GSO=1 build/asan/abi-test build/certs/cert.pem build/certs/key.pem
}
stage "AddressSanitizer: the C loop and the ABI test (GSO and sendmmsg paths)" asan_abi
stage "fuzz: frame reader, request head, header codec, server datagrams, GRO split (20 s each)" scripts/fuzz.sh 20
stage "interop (aioquic, ngtcp2, Chromium, Bun lsquic)" python3 -m pytest -q -p no:cacheprovider tests/interop
stage "bun test: runtime (Bun.serve h3 on rust-quic)" node_modules/.bin/bun test test/js/bun/quic

echo
[ ${#names[@]} -gt 0 ] && echo "failed stages: ${names[*]}"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
