#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds, and shows HTTP/3 working:
#  1. a Bun.serve({ h3: true }) program (stock Bun 1.4.5 with the fork's runtime
#     module preloaded) on a freshly generated certificate, fetched over HTTP/3
#     by our fetch (certificate verified against that certificate) and by a
#     client no one here wrote: Bun 1.4.5's own lsquic fetch, without the preload;
#  2. the C programs on the engine's ABI: h3-server fetched by h3-client.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x node_modules/.bin/bun ] || [ "$(node_modules/.bin/bun --version 2>/dev/null)" != "1.4.5" ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
make native
scripts/gen-cert.sh build/certs
bun=node_modules/.bin/bun
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== Bun.serve({ h3: true }) on rust-quic"
cat > "$work/server.ts" <<'JS'
const server = Bun.serve({
  port: 0,
  h3: true,
  tls: { cert: Bun.file(process.env.CERT!), key: Bun.file(process.env.KEY!) },
  fetch: req => new Response(`Hello from Bun.serve on rust-quic: ${new URL(req.url).pathname}\n`),
});
console.log(`PORT=${server.port}`);
JS
CERT=$PWD/build/certs/cert.pem KEY=$PWD/build/certs/key.pem \
  "$bun" --preload ./src/js/preload.ts "$work/server.ts" > "$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "PORT=" "$work/server.log" && break; sleep 0.1; done
port=$(sed -n 's/^PORT=//p' "$work/server.log")
echo "Bun.serve listening on TCP and UDP port $port"
echo "-- our fetch (protocol: \"http3\", certificate checked against build/certs/cert.pem):"
"$bun" --preload ./src/js/preload.ts -e "
  const r = await fetch('https://localhost:$port/ours', { protocol: 'http3', tls: { ca: await Bun.file('build/certs/cert.pem').text() } });
  process.stdout.write('HTTP/3 ' + r.status + ' ' + await r.text());"
echo "-- Bun 1.4.5's own HTTP/3 client (lsquic), no preload:"
(cd "$work" && "$OLDPWD/$bun" --no-install -e "
  const r = await fetch('https://127.0.0.1:$port/lsquic', { protocol: 'http3', tls: { rejectUnauthorized: false } });
  process.stdout.write('HTTP/3 ' + r.status + ' ' + await r.text());")

echo
echo "== h3-server (C, on the quic.h ABI)"
site=$work/site
mkdir -p "$site"
printf '<!doctype html><title>rust-quic</title><h1>Hello over HTTP/3 from rust-quic</h1>\n' > "$site/index.html"
build/bin/h3-server --cert build/certs/cert.pem --key build/certs/key.pem --host 127.0.0.1 --port 0 \
  --root "$site" > "$work/h3-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q "listening on" "$work/h3-server.log" && break; sleep 0.1; done
hport=$(sed -n 's/listening on //p' "$work/h3-server.log")
echo "h3-server listening on UDP port $hport; fetching https://localhost:$hport/ over HTTP/3:"
build/bin/h3-client -v --cacert build/certs/cert.pem "https://localhost:$hport/"
