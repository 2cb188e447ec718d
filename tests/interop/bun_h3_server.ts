// Bun.serve({ h3: true }) on rust-quic (run WITH the preload): the same site as the
// other interop servers: files from ROOT, /echo returns the request body.
// H3_LIMITS (JSON) and IDLE_TIMEOUT (seconds), when set, become h3Limits and idleTimeout;
// H3_OPTIONS (JSON) is spread into the options.
const [cert, key, root] = process.argv.slice(2);
const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  h3: true,
  ...(process.env.H3_LIMITS ? { h3Limits: JSON.parse(process.env.H3_LIMITS) } : {}),
  ...(process.env.IDLE_TIMEOUT ? { idleTimeout: Number(process.env.IDLE_TIMEOUT) } : {}),
  ...(process.env.H3_OPTIONS ? JSON.parse(process.env.H3_OPTIONS) : {}),
  tls: { cert: Bun.file(cert), key: Bun.file(key) },
  async fetch(req) {
    const { pathname } = new URL(req.url);
    if (pathname === "/echo") return new Response(await req.arrayBuffer());
    if (pathname === "/quic-stats") return Response.json(server.quic!.stats());
    const file = Bun.file(root + (pathname === "/" ? "/index.html" : pathname));
    return (await file.exists()) ? new Response(file) : new Response("not found", { status: 404 });
  },
});
console.log(`listening on ${server.port}`);
