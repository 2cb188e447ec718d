// The benchmark server: one program for both sides. With the project's preload it
// runs on rust-quic; with plain Bun 1.4.5 it runs on Bun's native lsquic.
// usage: bun [--preload src/js/preload.ts] bench/server.ts CERT KEY
const [cert, key] = process.argv.slice(2);
const big = new Uint8Array(32 * 1024 * 1024).fill(120);
const oneMiB = big.subarray(0, 1 << 20);
const server = Bun.serve({
  port: 0,
  hostname: process.env.BENCH_HOST ?? "127.0.0.1",
  http3: true,
  tls: { cert: Bun.file(cert), key: Bun.file(key) },
  routes: { "/hi": new Response("hello!") },
  async fetch(req) {
    const { pathname } = new URL(req.url);
    if (pathname === "/fetch") return new Response("hello from fetch");
    if (pathname === "/32mb") return new Response(big);
    if (pathname === "/1mb") return new Response(oneMiB);
    if (pathname === "/upload") {
      let n = 0;
      for await (const chunk of req.body!) n += chunk.byteLength;
      return new Response(String(n));
    }
    return new Response("not found", { status: 404 });
  },
} as any);
console.log(`listening on ${server.port}`);
