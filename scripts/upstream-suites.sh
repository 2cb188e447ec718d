#!/usr/bin/env bash
# Runs upstream Bun's own HTTP/3 suites, unchanged, against stock Bun 1.4.5 and
# against the preload, and prints both results side by side.
#   scripts/upstream-suites.sh <oven-sh/bun checkout>
# The suites are not part of this repository (they are upstream's code); give a
# checkout (or any directory holding test/js/bun/http/serve-http3.test.ts etc.).
# Their `harness` import is served by tests/upstream/harness (what they use of
# upstream's harness); the node:quic client-certificate fixture keys are generated.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${1:?usage: scripts/upstream-suites.sh <oven-sh/bun checkout>}
suites=(test/js/bun/http/serve-http3.test.ts test/js/web/fetch/fetch-http3-client.test.ts
  test/js/web/fetch/fetch-http3-adversarial.test.ts test/js/web/fetch/fetch-http3-cold-post.test.ts)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$root/scripts/gen-cert.sh" "$root/build/certs" >/dev/null
for f in "${suites[@]}" test/js/web/fetch/fetch-http3-cold-post-fixture.ts; do
  [ -f "$src/$f" ] || { echo "missing $src/$f"; exit 1; }
  mkdir -p "$work/$(dirname "$f")" && cp "$src/$f" "$work/$f"
done
mkdir -p "$work/node_modules/harness" "$work/test/js/node/test/fixtures/keys"
cp "$root/tests/upstream/harness/"* "$work/node_modules/harness/"
echo '{"name":"upstream-suites","private":true}' > "$work/package.json"
(cd "$work/test/js/node/test/fixtures/keys"
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -days 3650 -subj /CN=ca1 -keyout ca1-key.pem -out ca1-cert.pem 2>/dev/null
  openssl req "${ec[@]}" -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout agent1-key.pem -out agent1.csr 2>/dev/null
  openssl x509 -req -in agent1.csr -CA ca1-cert.pem -CAkey ca1-key.pem -CAcreateserial -days 3650 \
    -copy_extensions copy -out agent1-cert.pem 2>/dev/null
  openssl req -x509 "${ec[@]}" -days 3650 -subj /CN=agent2 -keyout agent2-key.pem -out agent2-cert.pem 2>/dev/null)
bun=$root/node_modules/.bin/bun
export UPSTREAM_CERTS=$root/build/certs
for suite in "${suites[@]}"; do
  echo "== $suite"
  stock=$(cd "$work" && timeout 900 "$bun" test "$suite" 2>&1 | grep -aE '^\((pass|fail|skip)\)' | sort -u)
  ours=$(cd "$work" && UPSTREAM_PRELOAD="$root/src/js/preload.ts" timeout 900 "$bun" test --preload "$root/src/js/preload.ts" "$suite" 2>&1 |
    grep -aE '^\((pass|fail|skip)\)' | sort -u)
  echo "stock Bun 1.4.5: $(grep -c '^(pass)' <<<"$stock") pass, $(grep -c '^(fail)' <<<"$stock") fail"
  echo "rust-quic preload: $(grep -c '^(pass)' <<<"$ours") pass, $(grep -c '^(fail)' <<<"$ours") fail"
  diff <(sed 's/ \[[0-9.]*ms\]$//' <<<"$stock") <(sed 's/ \[[0-9.]*ms\]$//' <<<"$ours") | grep -E '^[<>]' | sed 's/^</  stock:/; s/^>/  ours: /'
done
