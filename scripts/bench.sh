#!/usr/bin/env bash
# The benchmark, one command: rust-quic vs Bun 1.4.5's native lsquic, side by side.
#   bash scripts/bench.sh [--quick] [--rounds N]     -> docs/BENCHMARKS.md, docs/benchmarks.png
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --peers
python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check matplotlib 2>&1 | grep -v "WARNING: Running pip as" || true
cargo build --release -p rust-quic -p h3load
scripts/gen-cert.sh build/certs
exec python3 bench/run.py "$@"
