// Run from the repository: bun docs/examples/quic-echo.ts  (after: bash scripts/gen-cert.sh build/certs)
// A raw-QUIC echo server and a client that sends a stream and a datagram.
const tls = {
  cert: Bun.file(new URL("../../build/certs/cert.pem", import.meta.url).pathname),
  key: Bun.file(new URL("../../build/certs/key.pem", import.meta.url).pathname),
};

const server = Bun.quic({
  server: true,
  hostname: "127.0.0.1",
  port: 0,
  tls,
  datagrams: true,
  stream: {
    data(stream, chunk) {
      stream.write(chunk); // (a real server handles a short write: see `drain`)
    },
    end(stream) {
      stream.end();
    },
  },
  datagram(conn, data) {
    conn.sendDatagram(data);
  },
});

Bun.quic({
  hostname: "127.0.0.1",
  port: server.port,
  tls: { rejectUnauthorized: false },
  datagrams: true,
  async open(conn) {
    const stream = await conn.createStream();
    stream.write("hello over QUIC");
    stream.end();
    conn.sendDatagram("and a datagram");
  },
  stream: {
    data(_stream, chunk) {
      console.log("stream echo:", chunk.toString());
    },
  },
  datagram(conn, data) {
    console.log("datagram echo:", data.toString(), conn.stats);
    conn.close();
  },
  close() {
    server.close();
  },
});
