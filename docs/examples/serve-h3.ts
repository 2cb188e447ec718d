// Run from the repository: bun docs/examples/serve-h3.ts
// (bunfig.toml preloads the runtime module; elsewhere: bun --preload <repo>/src/js/preload.ts)
const server = Bun.serve({
  port: 0,
  h3: true, // also serve HTTP/3 on the same port number (UDP)
  tls: {
    cert: Bun.file(new URL("../../build/certs/cert.pem", import.meta.url).pathname),
    key: Bun.file(new URL("../../build/certs/key.pem", import.meta.url).pathname),
  },
  maxRequestBodySize: 16 * 1024 * 1024,
  async fetch(req, server) {
    const { pathname } = new URL(req.url);
    if (pathname === "/echo") return new Response(await req.arrayBuffer());
    const ip = server.requestIP(req);
    return new Response(`hello ${ip?.address} over ${req.url}\n`);
  },
});

console.log(`HTTP/1.1 and HTTP/3 on https://localhost:${server.port}/`);
console.log(`try: build/bin/h3-client --insecure https://127.0.0.1:${server.port}/`);
setTimeout(() => {
  console.log("HTTP/3 stats:", server.quic?.stats());
  server.stop();
}, 30_000);
