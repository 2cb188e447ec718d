// WebTransport: Bun.serve's webtransport handlers and the global WebTransport
// client, against each other and against peers no one here wrote.
import { afterAll, describe, expect, test } from "bun:test";
import { tls } from "./harness";

const T = 20_000;

async function readAll(readable: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(readable).text();
}

async function write(writable: WritableStream<Uint8Array>, text: string, close = true) {
  const w = writable.getWriter();
  await w.write(new TextEncoder().encode(text));
  if (close) await w.close();
  else w.releaseLock();
}

/** An echo server: datagrams and bidi streams echoed; on open it opens a uni and a bidi stream itself. */
function echoServer(extra: Record<string, unknown> = {}) {
  const events: string[] = [];
  const server = Bun.serve({
    port: 0,
    h3: true,
    tls,
    fetch(req, srv) {
      const url = new URL(req.url);
      if (url.pathname === "/wt" && (srv as any).upgradeWebTransport(req, { data: { path: url.pathname } })) return undefined as any;
      if (url.pathname === "/forbidden") return new Response("no", { status: 403 });
      return new Response("plain");
    },
    webtransport: {
      async open(session: any) {
        events.push(`open ${session.data.path}`);
        try {
          const uni = await session.createUnidirectionalStream();
          await write(uni, "hello from a server uni stream");
          const bidi = await session.createBidirectionalStream();
          await write(bidi.writable, "ping from server");
          events.push(`server bidi got ${await readAll(bidi.readable)}`);
        } catch (err: any) {
          // A client that closes at once ends these streams with the session.
          events.push(`open failed: ${err.name} ${err.source}`);
        }
      },
      datagram(session: any, data: Uint8Array) {
        session.sendDatagram(Buffer.concat([Buffer.from("echo:"), data]));
      },
      async stream(session: any, stream: any) {
        try {
          const text = await readAll(stream.readable);
          events.push(`stream ${stream.type} ${text}`);
          if (stream.writable) await write(stream.writable, `echo:${text}`);
        } catch (err: any) {
          events.push(`stream failed: ${err.name}`);
        }
      },
      close(session: any, code: number, reason: string) {
        events.push(`close ${code} ${reason}`);
      },
      ...extra,
    },
  } as any);
  return { server, events };
}

describe("WebTransport: our client against our server", () => {
  const { server, events } = echoServer();
  const url = `https://127.0.0.1:${server.port}/wt`;
  afterAll(() => server.stop(true));

  test("session: datagrams, streams both ways, clean close with code and reason", async () => {
    const wt = new WebTransport(url, { tls: { rejectUnauthorized: false } } as any);
    await wt.ready;
    // Server-opened streams arrive on the incoming readables.
    const uniReader = wt.incomingUnidirectionalStreams.getReader();
    const { value: uni } = await uniReader.read();
    expect(await readAll(uni!)).toBe("hello from a server uni stream");
    const bidiReader = wt.incomingBidirectionalStreams.getReader();
    const { value: serverBidi } = await bidiReader.read();
    expect(await readAll(serverBidi!.readable)).toBe("ping from server");
    await write(serverBidi!.writable, "pong from client");

    // Client-opened bidi stream: echoed.
    const bidi = await wt.createBidirectionalStream();
    await write(bidi.writable, "hello bidi");
    expect(await readAll(bidi.readable)).toBe("echo:hello bidi");
    // Client-opened uni stream: the server reads it.
    const out = await wt.createUnidirectionalStream();
    await write(out, "hello uni");

    // Datagrams: 100 sent, on loopback nearly all come back.
    const reader = wt.datagrams.readable.getReader();
    const writer = wt.datagrams.writable.getWriter();
    expect(wt.datagrams.maxDatagramSize).toBeGreaterThan(1000);
    for (let i = 0; i < 100; i++) await writer.write(new TextEncoder().encode(`d${i}`));
    const got = new Set<string>();
    const deadline = Date.now() + 3000;
    while (got.size < 100 && Date.now() < deadline) {
      const r = await Promise.race([reader.read(), Bun.sleep(500).then(() => null)]);
      if (r && !r.done) got.add(new TextDecoder().decode(r.value));
    }
    expect(got.size).toBeGreaterThanOrEqual(90);
    expect([...got].every(d => /^echo:d\d+$/.test(d))).toBe(true);
    // Oversized datagram: a clear RangeError.
    await expect(writer.write(new Uint8Array(wt.datagrams.maxDatagramSize + 1))).rejects.toThrow(RangeError);

    wt.close({ closeCode: 42, reason: "done here" });
    expect(await wt.closed).toEqual({ closeCode: 42, reason: "done here" });
    for (let i = 0; i < 50 && !events.some(e => e.startsWith("close")); i++) await Bun.sleep(20);
    expect(events).toContain("open /wt");
    expect(events).toContain("stream bidirectional hello bidi");
    expect(events).toContain("stream unidirectional hello uni");
    expect(events).toContain("server bidi got pong from client");
    expect(events).toContain("close 42 done here");
  }, T);

  test("a refused session rejects ready and closed; a plain request on the same server still works", async () => {
    const wt = new WebTransport(`https://127.0.0.1:${server.port}/forbidden`, { tls: { rejectUnauthorized: false } } as any);
    const err = await wt.ready.catch(e => e);
    expect(err.name).toBe("WebTransportError");
    expect(String(err.message)).toContain("403");
    await expect(wt.closed).rejects.toThrow();
    const res = await fetch(`https://127.0.0.1:${server.port}/`, { protocol: "http3", tls: { rejectUnauthorized: false } } as any);
    expect(await res.text()).toBe("plain");
  }, T);

  test("server-initiated close reaches the client's closed promise", async () => {
    const { server: s2 } = echoServer({
      open(session: any) {
        session.close({ closeCode: 7, reason: "bye" });
      },
    });
    try {
      const wt = new WebTransport(`https://127.0.0.1:${s2.port}/wt`, { tls: { rejectUnauthorized: false } } as any);
      await wt.ready;
      expect(await wt.closed).toEqual({ closeCode: 7, reason: "bye" });
    } finally {
      s2.stop(true);
    }
  }, T);

  test("certificate checks: unverified certificate fails; serverCertificateHashes pins it", async () => {
    const bad = new WebTransport(url);
    await expect(bad.ready).rejects.toThrow(/handshake/);
    const wrong = new WebTransport(url, { serverCertificateHashes: [{ algorithm: "sha-256", value: new Uint8Array(32) }] });
    await expect(wrong.ready).rejects.toThrow(/serverCertificateHashes/);
    const der = Buffer.from((await Bun.file(tls.cert.name!).text()).replace(/-----[^-]+-----|\s/g, ""), "base64");
    const hash = new Bun.CryptoHasher("sha256").update(der).digest();
    const pinned = new WebTransport(url, { serverCertificateHashes: [{ algorithm: "sha-256", value: hash }] });
    await pinned.ready;
    pinned.close();
    await pinned.closed;
  }, T);

  test("bad arguments are errors that name them", () => {
    expect(() => new WebTransport("http://127.0.0.1/")).toThrow(/https/);
    expect(() => new WebTransport(url, { serverCertificateHashes: [{ algorithm: "md5", value: new Uint8Array(1) }] })).toThrow(/algorithm/);
    expect(() => Bun.serve({ port: 0, tls, h3: true, fetch: () => new Response(""), webtransport: { open: 1 } } as any)).toThrow(/webtransport.open/);
    expect(() => Bun.serve({ port: 0, fetch: () => new Response(""), webtransport: {} } as any)).toThrow(/h3/);
  });
});
