#!/usr/bin/env bash
# Coverage-guided fuzzing of the engine's parsers on stable Rust: cargo-fuzz
# (libFuzzer, AddressSanitizer); RUSTC_BOOTSTRAP=1 lets stable rustc take the
# sanitizer flags cargo-fuzz passes. Targets (rust-quic/fuzz/fuzz_targets):
#   h3_frames         the HTTP/3 frame reader in any split, SETTINGS/GOAWAY payloads
#   request_head      QPACK decoding of a header block, then the request/response/trailer rules
#   header_codec      fields encoded as HEADERS, read back and decoded: the same fields
#   server_datagrams  a server context fed arbitrary datagrams (seeds: our own exchange, and
#                     aioquic's and ngtcp2's, captured by tests/interop/capture_seeds.py)
#   gro_split         the C loop's UDP GRO split of a received buffer into datagrams
# Each run starts from the committed seeds in a scratch corpus; a crash fails
# the run and leaves its input in rust-quic/fuzz/artifacts/<target>/.
#   scripts/fuzz.sh [SECONDS_PER_TARGET | --runs N] [TARGET...]   (CI: 20 s each, all targets)
# FUZZ_SANITIZER=none builds without ASan: about 8x the executions a second on
# server_datagrams, for long runs of the (safe-Rust) protocol paths.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
limit=(-max_total_time=20)
case "${1:-}" in
  --runs) limit=(-runs="${2:?--runs N}"); shift 2 ;;
  '' | *[!0-9]*) ;;
  *) limit=(-max_total_time="$1"); shift ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(h3_frames request_head header_codec server_datagrams gro_split)
sanitizer=(-s "${FUZZ_SANITIZER:-address}")
cd rust-quic/fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O "${sanitizer[@]}"
status=0
for target in "${targets[@]}"; do
  corpus=$(mktemp -d)
  cp corpus/"$target"/* "$corpus"/
  echo "== $target"
  code=0
  cargo fuzz run -O "${sanitizer[@]}" "$target" "$corpus" -- "${limit[@]}" -print_final_stats=1 > "$corpus.log" 2>&1 || code=$?
  grep -E 'stat::number_of_executed_units|stat::new_units_added' "$corpus.log" || true
  if [ "$code" -ne 0 ]; then
    status=1
    tail -60 "$corpus.log"
  fi
  rm -rf "$corpus" "$corpus.log"
done
exit $status
