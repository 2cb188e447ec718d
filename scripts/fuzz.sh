#!/usr/bin/env bash
# Coverage-guided fuzzing of the engine's parsers on stable Rust: cargo-fuzz
# (libFuzzer, AddressSanitizer); RUSTC_BOOTSTRAP=1 lets stable rustc take the
# sanitizer flags cargo-fuzz passes. Targets (rust-quic/fuzz/fuzz_targets):
#   h3_frames         the HTTP/3 frame reader in any split, SETTINGS/GOAWAY payloads
#   request_head      QPACK decoding of a header block, then the request/response/trailer rules
#   server_datagrams  a server context fed arbitrary datagrams (seeds: a real exchange)
# Each run starts from the committed seeds in a scratch corpus; a crash fails
# the run and leaves its input in rust-quic/fuzz/artifacts/<target>/.
#   scripts/fuzz.sh [SECONDS_PER_TARGET | --runs N]     (CI: 20 s each)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
limit=(-max_total_time="${1:-20}")
[ "${1:-}" = "--runs" ] && limit=(-runs="${2:?--runs N}")
cd rust-quic/fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
status=0
for target in h3_frames request_head server_datagrams; do
  corpus=$(mktemp -d)
  cp corpus/"$target"/* "$corpus"/
  echo "== $target"
  code=0
  cargo fuzz run -O "$target" "$corpus" -- "${limit[@]}" -print_final_stats=1 > "$corpus.log" 2>&1 || code=$?
  grep -E 'stat::number_of_executed_units|stat::new_units_added' "$corpus.log" || true
  if [ "$code" -ne 0 ]; then
    status=1
    tail -60 "$corpus.log"
  fi
  rm -rf "$corpus" "$corpus.log"
done
exit $status
