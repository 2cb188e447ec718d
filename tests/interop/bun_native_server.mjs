// Bun's native (lsquic) HTTP/3 server, run WITHOUT our preload.
// usage: bun bun_native_server.mjs CERT KEY ROOT   (serves ROOT/<file>, POST /echo)
const [cert, key, root] = process.argv.slice(2);
const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  http3: true,
  http1: false,
  tls: { cert: Bun.file(cert), key: Bun.file(key) },
  async fetch(req) {
    const { pathname } = new URL(req.url);
    if (req.method === "POST" && pathname === "/echo") return new Response(await req.arrayBuffer());
    const file = Bun.file(root + (pathname === "/" ? "/index.html" : pathname));
    return (await file.exists()) ? new Response(file) : new Response("not found", { status: 404 });
  },
});
console.log(`listening on ${server.port}`);
