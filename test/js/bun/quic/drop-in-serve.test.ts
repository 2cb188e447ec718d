// Drop-in for upstream's Bun.serve with HTTP/3: programs written for stock Bun
// 1.4.5 (`http3: true`, lsquic) behave the same on rust-quic, and a response is
// the same over HTTP/1.1 (Bun's own server) and HTTP/3 (ours).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN, ROOT, clientCertificates, fetchOver, observe, overBoth, rawH3, requestFields, tls } from "./harness";
import page from "./fixtures/page.html";

const dir = mkdtempSync(join(tmpdir(), "drop-in-"));
const textFile = join(dir, "hello.txt");
const binFile = join(dir, "data.bin");
writeFileSync(textFile, "hello file contents\n");
writeFileSync(binFile, Buffer.alloc(70_000, "0123456789"));
const mtime = new Date("2026-01-02T03:04:05Z");
utimesSync(textFile, mtime, mtime);

let server: any;
let base: string;

/** What a program can see of the handler's Request besides its fields. */
const identity = (req: Request) => ({
  instance: req instanceof Request,
  constructor: req.constructor === Request,
  tag: Object.prototype.toString.call(req),
  keys: Object.keys(req),
  clone: req.clone() instanceof Request,
  signal: req.signal instanceof AbortSignal && !req.signal.aborted,
  cookies: typeof (req as any).cookies,
});

beforeAll(() => {
  server = Bun.serve({
    port: 0,
    h3: true,
    tls,
    development: false,
    routes: {
      "/static": new Response("static body", { headers: { etag: '"v1"', "x-static": "1" } }),
      "/static-auto": new Response("static auto etag"),
      "/static-201": new Response("created", { status: 201 }),
      "/file": Bun.file(textFile),
      "/bin": Bun.file(binFile),
      "/response-file": new Response(Bun.file(textFile), { headers: { "x-file": "1" } }),
      "/missing": Bun.file(join(dir, "nope.txt")),
      "/blob": new Blob(["blob route"], { type: "x/blob" }),
      "/handler": (req: Request) => new Response(`handler ${req.method}`),
      // (Bun.inspect names a route's request BunRequest, which a JS subclass cannot: docs/guide.md.)
      "/identity/:id": (req: any) => Response.json({ ...identity(req), params: req.params }),
      "/cookies/set": (req: any) => {
        req.cookies.set("x", "y", { path: "/", httpOnly: true });
        req.cookies.delete("a");
        return new Response("set", { headers: { "set-cookie": "own=1" } });
      },
      "/cookies/read": (req: any) => new Response(`${req.cookies.get("a")} ${req.cookies.size}`),
      "/cookies/async": async (req: any) => {
        await Bun.sleep(1);
        req.cookies.set("late", "1");
        return new Response("late");
      },
      "/methods": { GET: Bun.file(textFile), POST: new Response("posted"), PUT: () => new Response("put") },
      "/wild/*": new Response("wild"),
      "/wild/excluded": false,
      "/off": false,
      "/page": page,
    },
    fetch: (req: Request) =>
      new URL(req.url, "https://x").pathname === "/identity"
        ? Response.json({ ...identity(req), inspected: Bun.inspect(req).split("\n")[0] })
        : new Response(`fetch ${new URL(req.url, "https://x").pathname}`),
  } as any);
  base = `https://127.0.0.1:${server.port}`;
});
afterAll(() => server?.stop(true));

describe("every route value works over HTTP/1.1 and HTTP/3 alike", () => {
  const cases: [string, string, RequestInit?][] = [
    ["a static Response, with its ETag", "/static"],
    ["a static Response gets Bun's ETag (xxHash64)", "/static-auto"],
    ["a static 201 is sent as it is", "/static-201", { headers: { "if-none-match": "*" } }],
    ["a Bun.file: content-type, Last-Modified, content-length", "/file"],
    ["an octet-stream file route gets no content-disposition", "/bin"],
    ["a Response of a Bun.file keeps its headers", "/response-file"],
    ["a missing file falls through to fetch", "/missing"],
    ["a Blob", "/blob"],
    ["a handler", "/handler"],
    ["the fetch handler's Request is one as upstream's (instanceof, constructor, own keys, inspect, clone, signal)", "/identity"],
    ["a route handler's request is a BunRequest as upstream's (params, cookies, tag, no own keys)", "/identity/7"],
    ["req.cookies reads the Cookie header", "/cookies/read", { headers: { cookie: "a=b; c=d" } }],
    ["req.cookies changes go out as Set-Cookie, after the handler's own", "/cookies/set", { headers: { cookie: "a=b" } }],
    ["req.cookies changes after an await still go out", "/cookies/async"],
    ["a per-method object: a file for GET", "/methods"],
    ["a per-method object: a Response for POST", "/methods", { method: "POST", body: "x" }],
    ["a per-method object: a handler for PUT", "/methods", { method: "PUT", body: "x" }],
    ["a per-method object without the method falls through", "/methods", { method: "DELETE" }],
    ["a wildcard", "/wild/any"],
    ["false beats a wildcard", "/wild/excluded"],
    ["false", "/off"],
    ["an HTML import", "/page"],
  ];
  for (const [name, path, init] of cases) {
    test(name, async () => {
      const { h1, h3 } = await overBoth(base + path, init);
      expect(h3).toEqual(h1);
      expect(h3.status).toBeGreaterThanOrEqual(200);
    });
  }

  test("the values are Bun's", async () => {
    const { h3: file } = await overBoth(`${base}/file`);
    expect(file).toEqual({
      status: 200,
      headers: { "content-length": "20", "content-type": "text/plain;charset=utf-8", "last-modified": mtime.toUTCString() },
      body: "hello file contents\n",
    });
    const { h3: auto } = await overBoth(`${base}/static-auto`);
    expect(auto.headers.etag).toBe(`"${Bun.hash.xxHash64("static auto etag").toString(16).padStart(16, "0")}"`);
    expect((await overBoth(`${base}/bin`)).h3.headers["content-type"]).toBe("application/octet-stream");
    expect((await overBoth(`${base}/page`)).h3.body).toContain("<h1>page fixture</h1>");
    expect((await overBoth(`${base}/off`)).h3.body).toBe("fetch /off");
  });
});

describe("file routes: Range and conditional requests", () => {
  const ranges = ["bytes=2-5", "bytes=-3", "bytes=5-", "bytes=5-1000", "bytes=19-19", "bytes=0-0", "bytes=20-", "bytes=0-1,3-4", "bytes=x", "items=0-1"];
  for (const range of ranges) {
    test(`Range: ${range}`, async () => {
      const { h1, h3 } = await overBoth(`${base}/file`, { headers: { range } });
      expect(h3).toEqual(h1);
    });
  }

  test("206 and 416 are what Bun sends", async () => {
    const ranged = await fetchOver("h3", `${base}/file`, { headers: { range: "bytes=2-5" } });
    expect(await observe(ranged)).toMatchObject({
      status: 206,
      headers: { "accept-ranges": "bytes", "content-range": "bytes 2-5/20", "content-length": "4" },
      body: "llo ",
    });
    const unsatisfiable = await fetchOver("h3", `${base}/file`, { headers: { range: "bytes=20-" } });
    expect(await observe(unsatisfiable)).toMatchObject({ status: 416, headers: { "content-range": "bytes */20" }, body: "" });
  });

  const conditions: [string, Record<string, string>][] = [
    ["If-Modified-Since equal to the mtime", { "if-modified-since": mtime.toUTCString() }],
    ["If-Modified-Since older than the mtime", { "if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT" }],
    ["If-Modified-Since unparsable", { "if-modified-since": "garbage" }],
    ["If-None-Match *", { "if-none-match": "*" }],
    ["If-None-Match another tag (decides alone)", { "if-none-match": '"abc"', "if-modified-since": new Date(Date.now() + 1e6).toUTCString() }],
  ];
  for (const [name, headers] of conditions) {
    test(name, async () => {
      const { h1, h3 } = await overBoth(`${base}/file`, { headers });
      expect(h3).toEqual(h1);
    });
  }

  test("304 for an unmodified file, 200 otherwise", async () => {
    const fresh = await fetchOver("h3", `${base}/file`, { headers: { "if-modified-since": mtime.toUTCString() } });
    expect(fresh.status).toBe(304);
    expect(fresh.headers.get("content-length")).toBeNull();
    expect(fresh.headers.get("last-modified")).toBe(mtime.toUTCString());
    const stale = await fetchOver("h3", `${base}/file`, { headers: { "if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT" } });
    expect(stale.status).toBe(200);
  });

  test("HEAD of a file and of a range: content-length, no body", async () => {
    for (const headers of [{}, { range: "bytes=0-1" }] as Record<string, string>[]) {
      const { h1, h3 } = await overBoth(`${base}/file`, { method: "HEAD", headers });
      expect(h3).toEqual(h1);
      expect(h3.body).toBe("");
      expect(h3.headers["content-length"]).toBe(headers.range ? "2" : "20");
    }
  });
});

describe("static routes honour If-None-Match", () => {
  for (const condition of ['"v1"', 'W/"v1"', '"other", "v1"', "*"]) {
    test(`If-None-Match: ${condition} gets 304 over both`, async () => {
      const { h1, h3 } = await overBoth(`${base}/static`, { headers: { "if-none-match": condition } });
      expect(h3).toEqual(h1);
      expect(h3.status).toBe(304);
      expect(h3.headers.etag).toBe('"v1"');
      expect(h3.body).toBe("");
    });
  }

  test("a tag that does not match gets the body", async () => {
    const res = await fetchOver("h3", `${base}/static`, { headers: { "if-none-match": '"v2"' } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("static body");
  });

  test("the auto ETag works as a condition; HEAD gets content-length", async () => {
    const first = await fetchOver("h3", `${base}/static-auto`);
    await first.arrayBuffer();
    const again = await fetchOver("h3", `${base}/static-auto`, { headers: { "if-none-match": first.headers.get("etag")! } });
    expect(again.status).toBe(304);
    const { h1, h3 } = await overBoth(`${base}/static-auto`, { method: "HEAD" });
    expect(h3).toEqual(h1);
    expect(h3.headers["content-length"]).toBe("16");
  });
});

describe("every body kind gets the head Bun's server sends (content-length, content-type)", () => {
  const form = () => {
    const f = new FormData();
    f.append("a", "1");
    return f;
  };
  const kinds: Record<string, () => any> = {
    string: () => "hello",
    "empty string": () => "",
    Uint8Array: () => new Uint8Array([1, 2, 3]),
    ArrayBuffer: () => new Uint8Array([1, 2, 3]).buffer,
    Blob: () => new Blob(["blobby"], { type: "x/y" }),
    "Bun.file": () => Bun.file(textFile),
    "ReadableStream (whole at once)": () => new ReadableStream({ start: c => (c.enqueue(new TextEncoder().encode("st")), c.close()) }),
    "direct ReadableStream": () => new ReadableStream({ type: "direct", pull: (c: any) => (c.write("dir"), c.end()) } as any),
    "async iterator": () => (async function* () { yield "a"; yield "b"; })(),
    FormData: form,
    URLSearchParams: () => new URLSearchParams("a=1&b=2"),
    null: () => null,
    "Response.json": () => "json",
  };
  let kindServer: any;
  beforeAll(() => {
    kindServer = Bun.serve({
      port: 0,
      h3: true,
      tls,
      fetch(req: Request) {
        const kind = decodeURIComponent(new URL(req.url).pathname.slice(1));
        if (kind === "Response.json") return Response.json({ a: 1 });
        return new Response(kinds[kind](), { headers: { "x-kind": kind } });
      },
    } as any);
  });
  afterAll(() => kindServer?.stop(true));

  for (const kind of Object.keys(kinds)) {
    for (const method of ["GET", "HEAD"]) {
      test(`${kind}, ${method}`, async () => {
        const url = `https://127.0.0.1:${kindServer.port}/${encodeURIComponent(kind)}`;
        const { h1, h3 } = await overBoth(url, { method });
        if (kind === "FormData") {
          // The boundary is random per serialisation.
          const boundary = /boundary=(\S+)/;
          for (const o of [h1, h3]) {
            const b = o.headers["content-type"]?.match(boundary)?.[1] ?? "";
            o.headers["content-type"] = o.headers["content-type"]?.replace(b, "B");
            o.body = o.body.split(b).join("B");
          }
        }
        // A bodyless HEAD of a stream has no known length on either protocol.
        expect(h3).toEqual(h1);
        const streamed = /Stream|iterator/.test(kind);
        if (!(streamed && method === "HEAD")) expect(h3.headers["content-length"]).toBeDefined();
      });
    }
  }
});

describe("the server object has upstream's shape and values", () => {
  test("http1: false: hostname, url, address, port, development, id, pendingRequests, methods, dispose", async () => {
    await using h3only: any = Bun.serve({ port: 0, h3: true, http1: false, tls, fetch: () => new Response("ok") } as any);
    expect(h3only.hostname).toBe("localhost");
    expect(h3only.url.href).toBe(`https://localhost:${h3only.port}/`);
    expect(h3only.address).toEqual({ address: "::", family: "IPv6", port: h3only.port });
    expect(h3only.development).toBe(process.env.NODE_ENV !== "production");
    expect(h3only.id).toBe("");
    expect(h3only.pendingRequests).toBe(0);
    for (const method of ["fetch", "reload", "stop", "ref", "unref", "requestIP", "timeout", "upgrade", "publish", "subscriberCount"]) {
      expect(typeof (h3only as any)[method]).toBe("function");
    }
    expect(typeof (h3only as any)[Symbol.dispose]).toBe("function");
    expect(typeof (h3only as any)[Symbol.asyncDispose]).toBe("function");
    // A client that builds its URL from the server object connects (the dual-stack socket takes ::1 and 127.0.0.1).
    expect(await (await fetchOver("h3", h3only.url.href)).text()).toBe("ok");
    expect(await (await fetchOver("h3", `https://127.0.0.1:${h3only.port}/`)).text()).toBe("ok");
    expect(await (await h3only.fetch(new Request("http://x/y"))).text()).toBe("ok");
  });

  test("an explicit hostname is reported as given", async () => {
    await using h3only: any = Bun.serve({ port: 0, hostname: "127.0.0.1", h3: true, http1: false, tls, fetch: () => new Response("ok") } as any);
    expect(h3only.hostname).toBe("127.0.0.1");
    expect(h3only.url.href).toBe(`https://127.0.0.1:${h3only.port}/`);
    expect(h3only.address).toEqual({ address: "127.0.0.1", family: "IPv4", port: h3only.port });
  });

  test("pendingRequests counts HTTP/3 requests in flight; stop() returns a promise", async () => {
    let release!: () => void;
    const gate = new Promise<void>(r => (release = r));
    const s = Bun.serve({ port: 0, h3: true, http1: false, tls, fetch: async () => (await gate, new Response("done")) } as any);
    const inflight = fetchOver("h3", `https://127.0.0.1:${s.port}/`).then(r => r.text());
    for (let i = 0; i < 100 && s.pendingRequests === 0; i++) await Bun.sleep(10);
    expect(s.pendingRequests).toBe(1);
    release();
    expect(await inflight).toBe("done");
    const stopped = s.stop();
    expect(stopped).toBeInstanceOf(Promise);
    await stopped;
  });

  for (const http1 of [true, false]) {
    test(`\`using\` stops the whole server (http1: ${http1}): the process exits`, async () => {
      const script = `
        {
          using server = Bun.serve({ port: 0, h3: true, http1: ${http1}, tls: { cert: Bun.file(${JSON.stringify(tls.cert.name)}), key: Bun.file(${JSON.stringify(tls.key.name)}) }, fetch: () => new Response("x") });
          const r = await fetch("https://127.0.0.1:" + server.port + "/", { protocol: "http3", tls: { rejectUnauthorized: false } });
          console.log(await r.text());
        }
      `;
      const proc = Bun.spawn([BUN, "--preload", join(ROOT, "src/js/preload.ts"), "-e", script], { stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => proc.kill(), 10_000);
      const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      clearTimeout(timer);
      expect({ out: out.trim(), code }).toEqual({ out: "x", code: 0 });
    });
  }

  test("a server with both protocols: pendingRequests, dispose and ref/unref cover HTTP/3 too", async () => {
    const s: any = Bun.serve({ port: 0, h3: true, tls, fetch: () => new Response("x") } as any);
    expect(s.hostname).toBe("localhost");
    expect(s.address).toEqual({ address: "::", family: "IPv6", port: s.port });
    s.unref();
    // An unref()ed server still serves while something else keeps the process alive.
    expect(await (await fetchOver("h3", `https://127.0.0.1:${s.port}/`)).text()).toBe("x");
    s.ref();
    await (s as any)[Symbol.asyncDispose]();
    await expect(fetchOver("h3", `https://127.0.0.1:${s.port}/`, { signal: AbortSignal.timeout(1000) })).rejects.toThrow();
  });
});

describe("request validation and errors, as upstream", () => {
  test("an invalid :authority is not trusted: request.url is the bare :path", async () => {
    await using s: any = Bun.serve({ port: 0, h3: true, tls, fetch: (req: Request) => new Response(req.url) } as any);
    const results: Record<string, string> = {};
    for (const authority of ["example.com/other", "user@example.com", "example.com#frag", "example.com\\other:8080", "[::1]:3000?q", "example.com:8443", "[::1]:8443"]) {
      results[authority] = await rawH3(s.port, { ...requestFields("/index"), ":authority": authority });
    }
    expect(results).toEqual({
      "example.com/other": "200 /index",
      "user@example.com": "200 /index",
      "example.com#frag": "200 /index",
      "example.com\\other:8080": "200 /index",
      "[::1]:3000?q": "200 /index",
      "example.com:8443": "200 https://example.com:8443/index",
      "[::1]:8443": "200 https://[::1]:8443/index",
    });
  });

  test("Expect other than 100-continue: 417 with an empty body", async () => {
    await using s: any = Bun.serve({ port: 0, h3: true, tls, fetch: () => new Response("reached") } as any);
    expect(await rawH3(s.port, requestFields("/", { expect: "muffins" }))).toBe("417 ");
    expect(await rawH3(s.port, requestFields("/", { expect: "100-Continue" }))).toBe("200 reached");
  });

  test("too many request fields: 431 over both protocols", async () => {
    const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-q${i}`, "v"]));
    const { h1, h3 } = await overBoth(`${base}/handler`, { headers: many(150) });
    expect([h1.status, h3.status]).toEqual([200, 200]);
    const refused = await overBoth(`${base}/handler`, { headers: many(400) });
    expect([refused.h1.status, refused.h3.status]).toEqual([431, 431]);
  });

  const run = async (script: string) => {
    const proc = Bun.spawn([BUN, "--preload", join(ROOT, "src/js/preload.ts"), "-e", script], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { out, err, code };
  };

  test("http3 without tls: upstream's TypeError", () => {
    let err: any;
    try {
      Bun.serve({ port: 0, http3: true, fetch: () => new Response("x") } as any);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe("HTTP/3 requires 'tls' to be set");
    expect(err.code).toBe("ERR_INVALID_ARG_TYPE");
  });

  test("http1: false without http3: upstream's TypeError", () => {
    expect(() => Bun.serve({ port: 0, http1: false, fetch: () => new Response("x") } as any)).toThrow("Cannot disable http1 without enabling http2 or http3");
  });

  test("http3 with a unix socket: upstream's warning, and HTTP/1.1 still serves", async () => {
    const sock = join(dir, "h3.sock");
    const { out, err, code } = await run(
      `using s = Bun.serve({ unix: ${JSON.stringify(sock)}, tls: { cert: Bun.file(${JSON.stringify(tls.cert.name)}), key: Bun.file(${JSON.stringify(tls.key.name)}) }, http3: true, fetch: () => new Response("x") }); console.log("listening");`,
    );
    expect(err).toContain("http3: true with a unix socket — HTTP/3 listener skipped");
    expect(err).not.toContain("h3: true");
    expect({ out, code }).toEqual({ out: "listening\n", code: 0 });
  });

  test("no handler: Bun's own message", () => {
    expect(() => Bun.serve({ port: 0, http3: true, tls } as any)).toThrow(/Bun\.serve\(\) needs either/);
  });

  test("port: 0 finds a port free on TCP and UDP both, even when UDP sockets hold many", async () => {
    // Half the ephemeral range held on UDP: without a retry, about every other TCP pick collides.
    const { out, err, code } = await run(`
      const tls = { cert: Bun.file(${JSON.stringify(tls.cert.name)}), key: Bun.file(${JSON.stringify(tls.key.name)}) };
      const held = [];
      for (let i = 0; i < 14000; i++) held.push(await Bun.udpSocket({ port: 0, hostname: "127.0.0.1" }));
      const failures = [], mismatched = [];
      for (let i = 0; i < 30; i++) {
        try {
          const s = Bun.serve({ port: 0, h3: true, tls, fetch: () => new Response("x") });
          if (s.quic.port !== s.port) mismatched.push([s.port, s.quic.port]);
          s.stop(true);
        } catch (e) { failures.push(e.code + " " + e.message); }
      }
      for (const h of held) h.close();
      console.log(JSON.stringify({ failures, mismatched }));
    `);
    expect({ code, err, seen: JSON.parse(out || "null") }).toEqual({ code: 0, err: "", seen: { failures: [], mismatched: [] } });
  });

  test("a taken UDP port: Bun's EADDRINUSE error", async () => {
    await using first: any = Bun.serve({ port: 0, h3: true, http1: false, tls, fetch: () => new Response("x") } as any);
    let err: any;
    try {
      Bun.serve({ port: first.port, h3: true, http1: false, tls, fetch: () => new Response("x") } as any);
    } catch (e) {
      err = e;
    }
    expect({ code: err?.code, message: err?.message }).toEqual({ code: "EADDRINUSE", message: `Failed to start server. Is port ${first.port} in use?` });
  });
});

describe("client certificates (tls.requestCert), over HTTP/1.1 and HTTP/3 alike", () => {
  const certs = clientCertificates();
  const outcome = (protocol: "h1" | "h3", port: number, identity?: { cert: string; key: string }) =>
    fetch(`https://127.0.0.1:${port}/`, {
      ...(protocol === "h3" ? { protocol: "http3" } : {}),
      tls: { rejectUnauthorized: false, ...identity },
      signal: AbortSignal.timeout(5000),
    } as RequestInit).then(
      r => r.text(),
      () => "refused",
    );

  test("requestCert + rejectUnauthorized + ca: only a client whose certificate chains to the CA is served", async () => {
    let handled = 0;
    await using s: any = Bun.serve({
      port: 0,
      h3: true,
      tls: { ...tls, ca: certs.ca, requestCert: true, rejectUnauthorized: true },
      fetch: () => new Response(`served ${++handled}`),
    } as any);
    const results: Record<string, string> = {};
    for (const protocol of ["h1", "h3"] as const) {
      results[`${protocol} none`] = await outcome(protocol, s.port);
      results[`${protocol} untrusted`] = await outcome(protocol, s.port, certs.untrusted);
      results[`${protocol} trusted`] = (await outcome(protocol, s.port, certs.trusted)).replace(/\d+$/, "n");
    }
    expect(results).toEqual({
      "h1 none": "refused",
      "h1 untrusted": "refused",
      "h1 trusted": "served n",
      "h3 none": "refused",
      "h3 untrusted": "refused",
      "h3 trusted": "served n",
    });
  });

  test("requestCert without rejectUnauthorized serves every client", async () => {
    await using s: any = Bun.serve({
      port: 0,
      h3: true,
      tls: { ...tls, ca: certs.ca, requestCert: true, rejectUnauthorized: false },
      fetch: () => new Response("served"),
    } as any);
    for (const protocol of ["h1", "h3"] as const) {
      expect([await outcome(protocol, s.port), await outcome(protocol, s.port, certs.untrusted)]).toEqual(["served", "served"]);
    }
  });
});

describe("deliberate differences from upstream (docs/guide.md)", () => {
  test("a malformed request is a stream error: the same connection goes on serving (upstream closes the connection)", async () => {
    await using s: any = Bun.serve({ port: 0, h3: true, tls, fetch: () => new Response("served") } as any);
    const { connect, QuicEndpoint } = (await import("node:quic")) as any;
    const endpoint = new QuicEndpoint();
    const client = await connect(`127.0.0.1:${s.port}`, { endpoint, servername: "localhost", verifyPeer: "manual", onerror() {} });
    try {
      await client.opened;
      const exchange = async (fields: Record<string, string>) => {
        let status = "";
        const stream = await client.createBidirectionalStream({ headers: fields, onheaders: (h: Record<string, string>) => void (status = h[":status"]) });
        stream.closed.catch(() => {});
        let body = "";
        try {
          for await (const batch of stream as AsyncIterable<Uint8Array[]>) for (const c of batch) body += Buffer.from(c).toString();
        } catch (err: any) {
          return `stream error ${err?.code} ${String(err?.message).match(/\d+/)?.[0] ?? ""}`.trim();
        }
        return `${status} ${body}`;
      };
      expect(await exchange(requestFields("/", { "x-probe": "a\r\nb: c" }))).toBe("stream error ERR_QUIC_STREAM_RESET 270");
      expect(await exchange(requestFields("/", { "x-probe": "a\nb" }))).toBe("stream error ERR_QUIC_STREAM_RESET 270");
      expect(client.destroyed).toBe(false);
      expect(await exchange(requestFields("/"))).toBe("200 served");
    } finally {
      await client.close().catch(() => {});
      await endpoint.close?.().catch?.(() => {});
    }
  });
});

// The preload replaces the global Response (to learn each body's kind for the
// HTTP/3 server); a program sees the same Response as on stock Bun.
test("the global Response looks and behaves as stock Bun's: instanceof (Bun's own Responses too), subclasses, constructor, statics, errors", async () => {
  const script = `
    class Mine extends Response { extra = 7; }
    const r = new Response("hi", { status: 201 });
    const mine = new Mine("sub");
    let withoutNew = "";
    try { Response("x"); } catch (e) { withoutNew = e.constructor.name + " " + e.code + " " + e.message; }
    const fetched = await fetch("data:text/plain,abc");
    console.log(JSON.stringify({
      instance: [r, Response.json({ a: 1 }), Response.error(), Response.redirect("https://x.test/", 302), r.clone(), fetched, mine].map(x => x instanceof Response),
      subclass: [mine instanceof Mine, mine.extra, await mine.text(), Object.getPrototypeOf(Mine) === Response],
      constructor: [r.constructor === Response, fetched.constructor === Response, Object.getPrototypeOf(r) === Response.prototype, Object.getPrototypeOf(fetched) === Response.prototype],
      shape: [Response.name, Response.length, typeof Response.json, String(Response), Object.prototype.toString.call(r), Object.keys(r), Object.getOwnPropertyNames(r), JSON.stringify(r)],
      bodies: [await r.text(), r.status, await Response.json({ a: 1 }).text(), new Response(null, { status: 204 }).body, await new Response(new Uint8Array([65, 66])).text()],
      withoutNew,
    }));`;
  const run = async (preload: boolean) => {
    const argv = [BUN, ...(preload ? ["--preload", join(ROOT, "src/js/preload.ts")] : []), "-e", script];
    const proc = Bun.spawn(argv, { cwd: tmpdir(), stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect({ code, err }).toEqual({ code: 0, err: "" });
    return JSON.parse(out);
  };
  const [ours, stock] = await Promise.all([run(true), run(false)]);
  expect(ours).toEqual(stock);
  expect(ours.instance).toEqual([true, true, true, true, true, true, true]);
});
