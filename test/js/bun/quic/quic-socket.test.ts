// Bun.quic: raw QUIC sockets on rust-quic.
import { describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import { readdirSync } from "node:fs";
import { bytes, clientCertificates, sha256, tls } from "./harness";

const quic = (o: any): any => (Bun as any).quic(o);
const insecure = { rejectUnauthorized: false };

/** An echo server: every stream's bytes come back on it, FIN for FIN, with backpressure. */
function echoServer(extra: any = {}) {
  const pending = new Map<any, { chunks: Buffer[]; fin: boolean }>();
  const flush = (s: any) => {
    const p = pending.get(s);
    if (!p) return;
    while (p.chunks.length) {
      const c = p.chunks[0];
      const n = s.write(c);
      if (n < 0) return;
      if (n < c.length) {
        p.chunks[0] = c.subarray(n);
        return;
      }
      p.chunks.shift();
    }
    if (p.fin) {
      pending.delete(s);
      s.end();
    }
  };
  return quic({
    server: true,
    port: 0,
    hostname: "127.0.0.1",
    tls,
    datagrams: true,
    ...extra,
    stream: {
      data(s: any, chunk: Buffer) {
        const p = pending.get(s) ?? { chunks: [], fin: false };
        pending.set(s, p);
        p.chunks.push(chunk);
        flush(s);
      },
      end(s: any) {
        const p = pending.get(s) ?? { chunks: [], fin: false };
        pending.set(s, p);
        p.fin = true;
        flush(s);
      },
      drain: flush,
      ...extra.stream,
    },
    datagram(conn: any, data: Buffer) {
      conn.sendDatagram(data);
    },
  });
}

/** Connects and resolves with the open client connection. */
function connect(port: number, handlers: any = {}): Promise<any> {
  return new Promise((resolve, reject) => {
    quic({
      hostname: "127.0.0.1",
      port,
      tls: insecure,
      datagrams: true,
      ...handlers,
      open(conn: any) {
        handlers.open?.(conn);
        resolve(conn);
      },
      error(conn: any, err: Error) {
        handlers.error?.(conn, err);
        reject(err);
      },
    });
  });
}

/** Sends `data` on a new stream and collects what comes back until FIN. */
function roundTrip(conn: any, data: Uint8Array, streams: Map<number, { chunks: Buffer[]; done: () => void }>): Promise<Buffer> {
  return new Promise(async resolve => {
    const s = await conn.createStream();
    streams.set(s.id, { chunks: [], done: () => resolve(Buffer.concat(streams.get(s.id)!.chunks)) });
    let off = 0;
    const pump = () => {
      while (off < data.length) {
        const n = s.write(data.subarray(off, off + 256 * 1024));
        if (n <= 0) return;
        off += n;
      }
      s.end();
    };
    s.data = pump;
    pump();
  });
}

function clientHandlers(streams: Map<number, { chunks: Buffer[]; done: () => void }>) {
  return {
    stream: {
      data(s: any, chunk: Buffer) {
        streams.get(s.id)?.chunks.push(chunk);
      },
      end(s: any) {
        streams.get(s.id)?.done();
      },
      drain(s: any) {
        s.data?.();
      },
    },
  };
}

describe("Bun.quic", () => {
  test("echo, several streams, streamCount, state and stats", async () => {
    const server = echoServer();
    const streams = new Map();
    const conn = await connect(server.port, clientHandlers(streams));
    try {
      expect(conn.readyState).toBe("open");
      expect(conn.isServer).toBe(false);
      expect(conn.alpn).toBe("bun-quic");
      expect(conn.remoteAddress).toBe("127.0.0.1");
      const replies = await Promise.all(["a", "bb", "ccc"].map(t => roundTrip(conn, Buffer.from(t), streams)));
      expect(replies.map(r => r.toString())).toEqual(["a", "bb", "ccc"]);
      const stats = conn.stats;
      expect(stats.isConnected).toBe(true);
      expect(stats.bytesSent).toBeGreaterThan(0);
      expect(stats.bytesReceived).toBeGreaterThan(0);
      expect(stats.rtt).toBeGreaterThanOrEqual(0);
      expect(server.connections.length).toBe(1);
    } finally {
      conn.close();
      server.close();
    }
  });

  test("10 MB on one stream, byte-exact, with backpressure", async () => {
    const server = echoServer();
    const streams = new Map();
    const conn = await connect(server.port, clientHandlers(streams));
    try {
      const data = bytes(10 * 1024 * 1024);
      const back = await roundTrip(conn, data, streams);
      expect(back.length).toBe(data.length);
      expect(sha256(back)).toBe(sha256(data));
    } finally {
      conn.close();
      server.close();
    }
  });

  test("100 streams in parallel", async () => {
    const server = echoServer({ maxStreams: 200 });
    const streams = new Map();
    const conn = await connect(server.port, { ...clientHandlers(streams), maxStreams: 200 });
    try {
      const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => roundTrip(conn, Buffer.from(`stream-${i}`), streams)));
      expect(replies.map(r => r.toString())).toEqual(Array.from({ length: 100 }, (_, i) => `stream-${i}`));
    } finally {
      conn.close();
      server.close();
    }
  }, 30_000);

  test("a unidirectional stream from the client", async () => {
    let got = "";
    let opened!: (v: any) => void;
    const ended = new Promise(r => (opened = r));
    const server = quic({
      server: true, port: 0, hostname: "127.0.0.1", tls,
      stream: { data: (_s: any, c: Buffer) => void (got += c.toString()), end: (s: any) => opened(s) },
    });
    const conn = await connect(server.port);
    try {
      const s = await conn.createStream({ bidirectional: false });
      expect(s.bidirectional).toBe(false);
      s.write("one way");
      s.end();
      const serverStream: any = await ended;
      expect(got).toBe("one way");
      expect(serverStream.write("x")).toBe(-1); // the peer's unidirectional stream is read-only here
    } finally {
      conn.close();
      server.close();
    }
  });

  test("datagrams both ways; an oversized one fails clearly", async () => {
    const server = echoServer();
    const received: string[] = [];
    let all!: () => void;
    const done = new Promise<void>(r => (all = r));
    const conn = await connect(server.port, {
      datagram(_c: any, d: Buffer) {
        received.push(d.toString());
        if (received.length === 20) all();
      },
    });
    try {
      for (let i = 0; i < 20; i++) expect(conn.sendDatagram(`d${i}`)).toBe(true);
      expect(() => conn.sendDatagram(new Uint8Array(70_000))).toThrow(RangeError);
      await done;
      expect(received.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `d${i}`).sort());
    } finally {
      conn.close();
      server.close();
    }
  });

  test("datagrams not enabled: sendDatagram throws with a code", async () => {
    const server = quic({ server: true, port: 0, hostname: "127.0.0.1", tls });
    const conn = await new Promise<any>(r => quic({ hostname: "127.0.0.1", port: server.port, tls: insecure, open: r }));
    try {
      let err: any;
      try {
        conn.sendDatagram("x");
      } catch (e) {
        err = e;
      }
      expect(err?.code).toBe("ERR_QUIC_DATAGRAMS_DISABLED");
    } finally {
      conn.close();
      server.close();
    }
  });

  test("no server on the port: error with ECONNREFUSED, fast", async () => {
    const sock = createSocket("udp4");
    await new Promise<void>(r => sock.bind(0, "127.0.0.1", () => r()));
    const port = sock.address().port;
    sock.close();
    const start = performance.now();
    const err: any = await connect(port).catch(e => e);
    expect(err.code).toBe("ECONNREFUSED");
    expect(performance.now() - start).toBeLessThan(2000);
  });

  test("a certificate the client cannot verify fails the handshake", async () => {
    const server = quic({ server: true, port: 0, hostname: "127.0.0.1", tls });
    try {
      const err: any = await new Promise(resolve =>
        quic({ hostname: "127.0.0.1", port: server.port, tls: { rejectUnauthorized: true }, error: (_c: any, e: any) => resolve(e), open: () => resolve(null) }),
      );
      expect(err?.code).toBe("ERR_QUIC_HANDSHAKE_FAILED");
    } finally {
      server.close();
    }
  });

  test("tls.requestCert: only a client whose certificate chains to tls.ca gets a connection", async () => {
    // TLS 1.3: a client finishes its handshake before the server has checked its
    // certificate, so a refused client sees its connection closed right after open.
    const certs = clientCertificates();
    let admit: (() => void) | undefined;
    const server = quic({
      server: true,
      port: 0,
      hostname: "127.0.0.1",
      tls: { ...tls, ca: certs.ca, requestCert: true, rejectUnauthorized: true },
      connection: () => admit?.(),
    });
    const attempt = (identity?: { cert: string; key: string }) =>
      new Promise<string>(resolve => {
        admit = () => resolve("served");
        quic({
          hostname: "127.0.0.1",
          port: server.port,
          tls: { ...insecure, ...identity },
          close: () => resolve("refused"),
          error: () => resolve("refused"),
        });
      });
    try {
      expect({ none: await attempt(), untrusted: await attempt(certs.untrusted), trusted: await attempt(certs.trusted) }).toEqual({
        none: "refused",
        untrusted: "refused",
        trusted: "served",
      });
    } finally {
      server.close();
    }
  });

  test("close from inside every handler", async () => {
    for (const where of ["open", "connection", "streamOpen", "data", "end", "datagram"]) {
      let closed!: () => void;
      const gone = new Promise<void>(r => (closed = r));
      const server = quic({
        server: true, port: 0, hostname: "127.0.0.1", tls, datagrams: true,
        connection(c: any) {
          if (where === "connection") c.close();
        },
        stream: {
          open(s: any) {
            if (where === "streamOpen") s.connection.close();
          },
          data(s: any) {
            if (where === "data") s.connection.close(7, "bye");
          },
          end(s: any) {
            if (where === "end") s.connection.close();
          },
        },
        datagram(c: any) {
          if (where === "datagram") c.close();
        },
      });
      quic({
        hostname: "127.0.0.1", port: server.port, tls: insecure, datagrams: true,
        async open(c: any) {
          if (where === "open") return c.close();
          const s = await c.createStream().catch(() => null);
          s?.write("x");
          s?.end();
          try {
            c.sendDatagram("d");
          } catch {}
        },
        close: () => closed(),
        error: () => closed(),
      });
      await gone;
      server.close();
    }
  }, 60_000);

  test("50 connect/close cycles leave no descriptors behind", async () => {
    const server = echoServer();
    const fds = () => readdirSync("/proc/self/fd").length;
    const cycle = async () => {
      const conn = await connect(server.port);
      await new Promise<void>(r => {
        conn.close();
        const wait = () => (conn.readyState === "closed" ? r() : setTimeout(wait, 5));
        wait();
      });
    };
    await cycle();
    await Bun.sleep(50);
    const before = fds();
    for (let i = 0; i < 50; i++) await cycle();
    await Bun.sleep(100);
    expect(fds() - before).toBeLessThanOrEqual(2);
    server.close();
  }, 60_000);

  test("wrong option types are TypeErrors naming the option", () => {
    expect(() => quic({ server: true, port: "1", tls })).toThrow(/port/);
    expect(() => quic({ hostname: "127.0.0.1", port: 0 })).toThrow(/port/);
    expect(() => quic({ server: true, tls: {} })).toThrow(/tls\.cert/);
    expect(() => quic({ server: true, tls, alpn: 5 })).toThrow(/alpn/);
    expect(() => quic({ server: true, tls, idleTimeout: -1 })).toThrow(/idleTimeout/);
    expect(() => quic({ server: true, tls, maxStreams: 1.5 })).toThrow(/maxStreams/);
    expect(() => quic({ server: true, tls, datagrams: "yes" })).toThrow(/datagrams/);
    expect(() => quic({ server: true, tls, stream: { data: 1 } })).toThrow(/stream\.data/);
    expect(() => quic({ server: "yes", tls })).toThrow(/server/);
    expect(() => quic({ server: true, tls: { ...tls, requestCert: "yes" } })).toThrow(/tls\.requestCert/);
    expect(() => quic({ hostname: "127.0.0.1", port: 1, tls: { requestCert: true } })).toThrow(/tls\.requestCert/);
    expect(() => quic({ hostname: "127.0.0.1", port: 1, tls: { cert: "x" } })).toThrow(/tls\.cert and tls\.key/);
    expect(() => quic({ server: true, tls, session: Buffer.from("x") })).toThrow(new TypeError("session is for a QUIC client"));
    expect(() => quic({ hostname: "127.0.0.1", port: 1, session: "ticket" })).toThrow(new TypeError("session must be a Buffer (from getSession())"));
    expect(() => quic({ server: true, tls, earlyData: 1 })).toThrow(new TypeError("earlyData must be a boolean"));
    expect(() => quic({ hostname: "127.0.0.1", port: 1, earlyData: true })).toThrow(/^earlyData is for a QUIC server/);
  });

  test("a session ticket from getSession() resumes a later connection (given as `session`)", async () => {
    const server = echoServer();
    const streams = new Map();
    // Each client below has its own idleTimeout, so its own engine context: no
    // ticket is shared between them but the one passed as `session`.
    const first = await connect(server.port, { ...clientHandlers(streams), idleTimeout: 20_001 });
    let ticket: Buffer | undefined;
    try {
      expect((await roundTrip(first, Buffer.from("one"), streams)).toString()).toBe("one");
      ticket = first.getSession(); // the server's ticket came with the handshake's last flight
      expect(ticket?.byteLength).toBeGreaterThan(32);
      expect(first.stats.resumed).toBe(false);
    } finally {
      first.close();
    }
    const resumed = await connect(server.port, { ...clientHandlers(streams), idleTimeout: 20_002, session: ticket });
    const fresh = await connect(server.port, { ...clientHandlers(streams), idleTimeout: 20_003 });
    try {
      expect((await roundTrip(resumed, Buffer.from("two"), streams)).toString()).toBe("two");
      expect(resumed.stats.resumed).toBe(true);
      expect(resumed.stats.has0RTT).toBe(false); // no earlyData on the server
      expect(fresh.stats.resumed).toBe(false);
      expect(server.connections.find((c: any) => c.stats.resumed)).toBeDefined();
    } finally {
      resumed.close();
      fresh.close();
      server.close();
    }
  });
});

describe("Bun.quic with aioquic's raw QUIC API (ALPN bun-quic)", () => {
  const peer = new URL("../../../../tests/interop/aioquic_echo.py", import.meta.url).pathname;

  test("Bun.quic client against an aioquic echo server: stream and datagram", async () => {
    const proc = Bun.spawn(["python3", peer, "server", tls.cert.name!, tls.key.name!], { stdout: "pipe", stderr: "inherit" });
    try {
      const reader = proc.stdout.getReader();
      const { value } = await reader.read();
      const port = Number(new TextDecoder().decode(value).match(/listening on (\d+)/)![1]);
      let reply = "";
      let dgram = "";
      let gotStream!: () => void, gotDgram!: () => void;
      const streamDone = new Promise<void>(r => (gotStream = r));
      const dgramDone = new Promise<void>(r => (gotDgram = r));
      const conn: any = await connect(port, {
        stream: { data: (_s: any, c: Buffer) => void (reply += c.toString()), end: () => gotStream() },
        datagram: (_c: any, d: Buffer) => {
          dgram = d.toString();
          gotDgram();
        },
      });
      expect(conn.alpn).toBe("bun-quic");
      const s = await conn.createStream();
      s.write("hello aioquic");
      s.end();
      conn.sendDatagram("ping");
      await Promise.all([streamDone, dgramDone]);
      expect(reply).toBe("hello aioquic");
      expect(dgram).toBe("ping");
      conn.close();
    } finally {
      proc.kill();
    }
  }, 30_000);

  test("Bun.quic client sends tls.cert to an aioquic server that asks for one", async () => {
    const certs = clientCertificates();
    const proc = Bun.spawn(["python3", peer, "server", tls.cert.name!, tls.key.name!, "--ask-client-cert"], { stdout: "pipe", stderr: "inherit" });
    try {
      const lines = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      const nextLine = async (pattern: RegExp) => {
        while (!pattern.test(out)) {
          const { value, done } = await lines.read();
          if (done) break;
          out += value;
        }
        return out.match(pattern)!;
      };
      const port = Number((await nextLine(/listening on (\d+)/))[1]);
      const without: any = await connect(port);
      expect((await nextLine(/client certificate: (.*)\n/))[1]).toBe("none");
      without.close();
      out = "";
      const withCert: any = await connect(port, { tls: { ...insecure, ...certs.trusted } });
      expect((await nextLine(/client certificate: (.*)\n/))[1]).toBe("CN=trusted client");
      withCert.close();
    } finally {
      proc.kill();
    }
  }, 30_000);

  test("aioquic client against a Bun.quic echo server: stream and datagram", async () => {
    const server = echoServer();
    try {
      const proc = Bun.spawn(["python3", peer, "client", String(server.port), "from-aioquic"], { stdout: "pipe", stderr: "inherit" });
      const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      expect(code).toBe(0);
      expect(out).toContain("stream: from-aioquic");
      expect(out).toContain("datagram: dgram:from-aioquic");
    } finally {
      server.close();
    }
  }, 30_000);
});
