// Run from the repository: bun docs/examples/webtransport.ts  (after: bash scripts/gen-cert.sh build/certs)
// A WebTransport echo server in Bun.serve and the global WebTransport client talking to it.
const tls = {
  cert: Bun.file(new URL("../../build/certs/cert.pem", import.meta.url).pathname),
  key: Bun.file(new URL("../../build/certs/key.pem", import.meta.url).pathname),
};

const server = Bun.serve({
  port: 0,
  h3: true,
  tls,
  fetch(req, server) {
    if (new URL(req.url).pathname === "/echo" && server.upgradeWebTransport?.(req, { data: { since: Date.now() } })) {
      return undefined as unknown as Response; // the session took the request over
    }
    return new Response("WebTransport lives at /echo");
  },
  webtransport: {
    open(session) {
      console.log("session open", session.data);
    },
    datagram(session, data) {
      session.sendDatagram(data); // echo
    },
    async stream(session, stream) {
      // Echo bidirectional streams; print unidirectional ones.
      if (stream.writable) await stream.readable.pipeTo(stream.writable);
      else console.log("uni stream:", await new Response(stream.readable).text());
    },
    close(session, code, reason) {
      console.log("session closed", code, reason);
    },
  },
});

const wt = new WebTransport(`https://127.0.0.1:${server.port}/echo`, { tls: { rejectUnauthorized: false } });
await wt.ready;
const stream = await wt.createBidirectionalStream();
const writer = stream.writable.getWriter();
await writer.write(new TextEncoder().encode("hello over WebTransport"));
await writer.close();
console.log("echoed:", await new Response(stream.readable).text());

const datagrams = wt.datagrams.readable.getReader();
await wt.datagrams.writable.getWriter().write(new TextEncoder().encode("a datagram"));
console.log("datagram back:", new TextDecoder().decode((await datagrams.read()).value));

wt.close({ closeCode: 0, reason: "done" });
console.log("closed:", await wt.closed);
await server.stop(); // graceful: lets the close capsule arrive
