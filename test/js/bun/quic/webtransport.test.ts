// WebTransport: Bun.serve's webtransport handlers and the global WebTransport
// client, against each other and against peers no one here wrote.
import { afterAll, describe, expect, test } from "bun:test";
import { createHash, createPublicKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CERT, ROOT, clientCertificates, startAioquicServer, tls } from "./harness";

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
    fetch(req: Request, srv: any) {
      const url = new URL(req.url);
      if (url.pathname === "/wt" && (srv as any).upgradeWebTransport(req, { data: { path: url.pathname } })) return undefined as any;
      if (url.pathname === "/forbidden") return new Response("no", { status: 403 });
      return new Response("plain");
    },
    webtransport: {
      async open(session: any) {
        events.push(`open ${session.data.path}`);
        if (session.data.closeAtOnce) return session.close({ closeCode: 7, reason: "bye" });
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

  test("tls.cert / tls.key: a server that asks for a client certificate gets ours", async () => {
    const certs = clientCertificates();
    await using server: any = Bun.serve({
      port: 0,
      h3: true,
      tls: { ...tls, ca: certs.ca, requestCert: true, rejectUnauthorized: true },
      fetch: (req: Request, srv: any) => (srv.upgradeWebTransport(req) ? (undefined as any) : new Response("plain")),
      webtransport: { open() {} },
    } as any);
    const at = `https://127.0.0.1:${server.port}/wt`;
    const refused = new WebTransport(at, { tls: { rejectUnauthorized: false } } as any);
    await expect(refused.ready).rejects.toThrow();
    const admitted = new WebTransport(at, { tls: { rejectUnauthorized: false, ...certs.trusted } } as any);
    await admitted.ready;
    admitted.close();
    await admitted.closed;
    expect(() => new WebTransport(at, { tls: { cert: certs.trusted.cert } } as any)).toThrow(/tls\.cert and tls\.key/);
  }, T);

  test("bad arguments are errors that name them", () => {
    expect(() => new WebTransport("http://127.0.0.1/")).toThrow(/https/);
    expect(() => new WebTransport(url, { serverCertificateHashes: [{ algorithm: "md5" as any, value: new Uint8Array(1) }] })).toThrow(/algorithm/);
    expect(() => Bun.serve({ port: 0, tls, h3: true, fetch: () => new Response(""), webtransport: { open: 1 } } as any)).toThrow(/webtransport.open/);
    expect(() => Bun.serve({ port: 0, fetch: () => new Response(""), webtransport: {} } as any)).toThrow(/h3/);
  });
});

describe("WebTransport: peers no one here wrote", () => {
  test("our client against aioquic's http3_server.py (demo:app /wt echo)", async () => {
    const { port, proc } = await startAioquicServer();
    try {
      let wt: WebTransport | undefined;
      for (let i = 0; i < 100 && !wt; i++) {
        const attempt = new WebTransport(`https://127.0.0.1:${port}/wt`, { tls: { rejectUnauthorized: false } } as any);
        if (await attempt.ready.then(() => true, () => false)) wt = attempt;
        else await Bun.sleep(100);
      }
      expect(wt).toBeDefined();
      // aioquic echoes stream data on the same stream (without FIN): read what we sent.
      const bidi = await wt!.createBidirectionalStream();
      await write(bidi.writable, "hello aioquic", false);
      const reader = bidi.readable.getReader();
      let echoed = "";
      while (echoed.length < 13) {
        const { value, done } = await reader.read();
        if (done) break;
        echoed += new TextDecoder().decode(value);
      }
      expect(echoed).toBe("hello aioquic");
      const w = wt!.datagrams.writable.getWriter();
      const r = wt!.datagrams.readable.getReader();
      const got: string[] = [];
      for (let i = 0; i < 20; i++) await w.write(new TextEncoder().encode(`a${i}`));
      const deadline = Date.now() + 3000;
      while (got.length < 20 && Date.now() < deadline) {
        const x = await Promise.race([r.read(), Bun.sleep(300).then(() => null)]);
        if (x && !x.done) got.push(new TextDecoder().decode(x.value));
      }
      expect(got.length).toBeGreaterThanOrEqual(18);
      wt!.close({ closeCode: 0, reason: "" });
      expect(await wt!.closed).toEqual({ closeCode: 0, reason: "" });
    } finally {
      proc.kill();
    }
  }, T);

  test("Chromium: datagrams, streams both ways, server-opened streams, clean close both ways", async () => {
    const chromium = Bun.which("chromium");
    if (!chromium) throw new Error("chromium is not installed (bash scripts/setup.sh --peers)");
    const spki = createHash("sha256").update(createPublicKey(readFileSync(CERT)).export({ type: "spki", format: "der" })).digest("base64");
    let report: (r: string[]) => void;
    const reported = new Promise<string[]>(r => (report = r));
    const { server, events } = echoServer();
    const page = `<!doctype html><script>
(async () => {
  const log = [];
  const enc = new TextEncoder(), dec = new TextDecoder();
  const readAll = async r => { let s = ""; const rd = r.getReader(); for (;;) { const { value, done } = await rd.read(); if (done) return s; s += dec.decode(value); } };
  const write = async (w, text) => { const wr = w.getWriter(); await wr.write(enc.encode(text)); await wr.close(); };
  try {
    const wt = new WebTransport("https://127.0.0.1:${server.port}/wt");
    await wt.ready;
    log.push("ready");
    const r = wt.datagrams.readable.getReader(), w = wt.datagrams.writable.getWriter();
    let got = 0;
    const reading = (async () => { for (;;) { const { value, done } = await r.read(); if (done) return; if (dec.decode(value).startsWith("echo:d")) got++; if (got >= 100) return; } })();
    for (let i = 0; i < 100; i++) { await w.write(enc.encode("d" + i)); if (i % 10 === 9) await new Promise(r => setTimeout(r, 5)); }
    await Promise.race([reading, new Promise(r => setTimeout(r, 3000))]);
    log.push("datagrams " + got);
    const bidi = await wt.createBidirectionalStream();
    await write(bidi.writable, "hello bidi");
    log.push("bidi " + await readAll(bidi.readable));
    const uni = (await wt.incomingUnidirectionalStreams.getReader().read()).value;
    log.push("server uni " + await readAll(uni));
    const sb = (await wt.incomingBidirectionalStreams.getReader().read()).value;
    log.push("server bidi " + await readAll(sb.readable));
    await write(sb.writable, "pong from chromium");
    await write(await wt.createUnidirectionalStream(), "uni from chromium");
    await new Promise(r => setTimeout(r, 200));
    wt.close({ closeCode: 42, reason: "bye from chromium" });
    const c = await wt.closed;
    log.push("closed " + c.closeCode + " " + c.reason);
    const wt2 = new WebTransport("https://127.0.0.1:${server.port}/wt?close=server");
    await wt2.ready;
    const c2 = await wt2.closed;
    log.push("server closed " + c2.closeCode + " " + c2.reason);
  } catch (e) { log.push("error " + e + " " + (e && e.stack)); }
  await fetch("/report", { method: "POST", body: JSON.stringify(log) });
})();
</script>`;
    server.reload({
      fetch(req: Request, srv: any) {
        const url = new URL(req.url);
        if (url.pathname === "/") return new Response(page, { headers: { "content-type": "text/html" } });
        if (url.pathname === "/report") return req.json().then(log => (report(log as string[]), new Response("ok")));
        if (url.pathname === "/wt") return srv.upgradeWebTransport(req, { data: { path: url.pathname, closeAtOnce: url.searchParams.get("close") === "server" } }) ? undefined : new Response("no", { status: 400 });
        return new Response("not found", { status: 404 });
      },
    } as any);
    const profile = mkdtempSync(join(tmpdir(), "wt-chromium-"));
    const proc = Bun.spawn([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", `--user-data-dir=${profile}`, "--enable-quic", `--origin-to-force-quic-on=127.0.0.1:${server.port}`, `--ignore-certificate-errors-spki-list=${spki}`, `https://127.0.0.1:${server.port}/`], { stdout: "ignore", stderr: "pipe" });
    try {
      const log = await Promise.race([reported, Bun.sleep(25_000).then(() => ["timeout"])]);
      if (process.env.WT_VERBOSE) console.log(log, events);
      for (let i = 0; i < 50 && events.filter(e => e.startsWith("close")).length < 2; i++) await Bun.sleep(20);
      expect(log).toEqual([
        "ready",
        expect.stringMatching(/^datagrams (9\d|100)$/),
        "bidi echo:hello bidi",
        "server uni hello from a server uni stream",
        "server bidi ping from server",
        "closed 42 bye from chromium",
        "server closed 7 bye",
      ]);
      expect(events).toContain("server bidi got pong from chromium");
      expect(events).toContain("stream unidirectional uni from chromium");
      expect(events).toContain("close 42 bye from chromium");
    } finally {
      proc.kill();
      server.stop(true);
      rmSync(profile, { recursive: true, force: true });
    }
  }, 40_000);
});

test("the guide's example runs to the end and the process exits (graceful stop frees a server that had sessions)", async () => {
  const proc = Bun.spawn([process.execPath, join(ROOT, "docs", "examples", "webtransport.ts")], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill(), 15_000);
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  clearTimeout(timer);
  expect(out).toContain("echoed: hello over WebTransport");
  expect(out).toContain("datagram back: a datagram");
  expect(out).toContain("session closed 0 done");
  expect(code).toBe(0);
}, 20_000);

test("a stream aborted with an application code reaches the other side with that code", async () => {
  let firstChunk: (() => void) | undefined;
  const started = new Promise<void>(r => (firstChunk = r));
  let seen: ((v: { name: string; code: number | null; source: string }) => void) | undefined;
  const got = new Promise<{ name: string; code: number | null; source: string }>(r => (seen = r));
  const server = Bun.serve({
    port: 0,
    h3: true,
    tls,
    fetch: (req: Request, srv: any) => (srv.upgradeWebTransport(req) ? undefined : new Response("no", { status: 400 })),
    webtransport: {
      async stream(_session: any, stream: any) {
        const reader = stream.readable.getReader();
        try {
          for (;;) {
            const { done } = await reader.read();
            if (done) break;
            firstChunk!();
          }
        } catch (err: any) {
          seen!({ name: err.name, code: err.streamErrorCode, source: err.source });
        }
      },
    },
  } as any);
  try {
    const wt = new WebTransport(`https://127.0.0.1:${server.port}/wt`, { tls: { rejectUnauthorized: false } } as any);
    await wt.ready;
    const { writable } = await wt.createBidirectionalStream();
    const w = writable.getWriter();
    await w.write(new TextEncoder().encode("some bytes, then an abort"));
    // (A reset that overtakes the stream's first bytes would leave the server
    // nothing to report: the session id travels in those bytes.)
    await started;
    await w.abort(new WebTransportError("gave up", { streamErrorCode: 7 }));
    expect(await got).toEqual({ name: "WebTransportError", code: 7, source: "stream" });
    wt.close();
  } finally {
    server.stop(true);
  }
}, 20_000);

test("allowPooling shares a connection; maxSessions per connection is enforced", async () => {
  const opened: string[] = [];
  const server = Bun.serve({
    port: 0,
    h3: true,
    tls,
    fetch: (req: Request, srv: any) =>
      srv.upgradeWebTransport(req, { data: new URL(req.url).pathname }) ? undefined : new Response("too many sessions", { status: 429 }),
    webtransport: {
      maxSessions: 2,
      open(session: any) {
        opened.push(session.data);
      },
      datagram(session: any, data: Uint8Array) {
        session.sendDatagram(Buffer.concat([Buffer.from(`${session.data}:`), data]));
      },
    },
  } as any);
  try {
    const base = `https://127.0.0.1:${server.port}`;
    const options = { allowPooling: true, tls: { rejectUnauthorized: false } } as any;
    const [a, b, c] = ["/a", "/b", "/c"].map(p => new WebTransport(base + p, options));
    await Promise.all([a.ready, b.ready]);
    const refused = await c.ready.catch(e => e);
    expect(refused.name).toBe("WebTransportError");
    expect(String(refused.message)).toContain("429");
    expect(server.quic!.stats().connectionsAccepted).toBe(1);
    // Datagrams stay with their session on the shared connection.
    const io = new Map([a, b].map(wt => [wt, { r: wt.datagrams.readable.getReader(), w: wt.datagrams.writable.getWriter() }]));
    for (const [wt, tag] of [[a, "/a"], [b, "/b"]] as const) {
      await io.get(wt)!.w.write(new TextEncoder().encode("x"));
      expect(new TextDecoder().decode((await io.get(wt)!.r.read()).value)).toBe(`${tag}:x`);
    }
    a.close({ closeCode: 1, reason: "a done" });
    expect(await a.closed).toEqual({ closeCode: 1, reason: "a done" });
    // b lives on after a closed.
    await io.get(b)!.w.write(new TextEncoder().encode("y"));
    expect(new TextDecoder().decode((await io.get(b)!.r.read()).value)).toBe("/b:y");
    b.close();
    await b.closed;
    expect(opened.sort()).toEqual(["/a", "/b"]);
  } finally {
    server.stop(true);
  }
}, 20_000);

describe("WebTransport wire helpers", () => {
  test("application error codes map into the HTTP/3 range and back, skipping reserved codepoints", async () => {
    const { appToHttp3, http3ToApp } = await import("../../../../src/js/internal/rust-quic/wt-wire");
    expect(appToHttp3(0)).toBe(0x52e4a40fa8dbn);
    for (const code of [0, 1, 0x1d, 0x1e, 0x1f, 1000, 0xffffffff]) {
      const h3 = appToHttp3(code);
      expect((h3 - 0x21n) % 0x1fn).not.toBe(0n);
      expect(http3ToApp(h3)).toBe(code);
    }
    expect(appToHttp3(0xffffffff)).toBe(0x52e5ac983162n);
    expect(http3ToApp(0x10cn)).toBeNull();
  });

  test("capsules parse in any split; an oversized one is refused", async () => {
    const { CapsuleParser, encodeCloseCapsule } = await import("../../../../src/js/internal/rust-quic/wt-wire");
    const close = encodeCloseCapsule(42, "bye");
    const drain = new Uint8Array([0x80, 0x00, 0x78, 0xae, 0x00]);
    const all = new Uint8Array([...close, ...drain]);
    for (let cut = 0; cut <= all.length; cut++) {
      const p = new CapsuleParser();
      const got = [...p.push(all.subarray(0, cut)), ...p.push(all.subarray(cut))];
      expect(got.map(c => c.type)).toEqual([0x2843, 0x78ae]);
      expect(new DataView(got[0].value.buffer, got[0].value.byteOffset).getUint32(0)).toBe(42);
      expect(new TextDecoder().decode(got[0].value.subarray(4))).toBe("bye");
    }
    // A reason longer than 1024 bytes is cut (at a character boundary).
    const long = encodeCloseCapsule(1, "é".repeat(1000));
    expect(long.byteLength).toBeLessThanOrEqual(4 + 4 + 1024);
    // Type 0x2843, length 1 MiB: refused before buffering it.
    expect(() => new CapsuleParser().push(new Uint8Array([0x80, 0x00, 0x28, 0x43, 0x80, 0x10, 0x00, 0x00]))).toThrow(/too large/);
  });
});
