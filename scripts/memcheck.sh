#!/usr/bin/env bash
# Memory safety across the C ABI under valgrind: the ABI test (real sockets, closes
# from inside callbacks) and the engine tests that close objects from every callback
# and free a context from inside one. Fails on any invalid access or definite leak.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/gen-cert.sh build/certs
VG=(valgrind --quiet --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite)
make -s memcheck-bin
echo "memcheck: abi-test (debug build of the library)"
"${VG[@]}" build/memcheck/abi-test build/certs/cert.pem build/certs/key.pem
test_binary() {
  cargo test -p rust-quic --test "$1" --no-run --message-format=json 2>/dev/null | python3 -c 'import sys,json
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable"): print(m["executable"])' | grep "/$1-" | tail -1
}
echo "memcheck: engine close-from-callback and bad-input tests"
"${VG[@]}" "$(test_binary robustness)" --test-threads=1 close_from_every_callback context_freed_from_inside_a_callback \
  garbage_truncated_and_unknown_version_datagrams dead_port_fails_the_handshake_at_once
echo "memcheck: raw QUIC (unidirectional streams, datagrams)"
"${VG[@]}" "$(test_binary raw)" --test-threads=1
echo "memcheck: WebTransport streams and HTTP datagrams (incl. malformed ones)"
"${VG[@]}" "$(test_binary webtransport)" --test-threads=1
