// Bun.serve({ h3: true }) on rust-quic, checked with clients no one here wrote
// (Bun 1.4.5's lsquic fetch, in a subprocess without our preload) and with our
// C client h3-client.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { writeFileSync } from "node:fs";
import { bytes, h3Client, nativeFetch, sha256, tls, ROOT, BUN } from "./harness";

describe("Bun.serve h3", () => {
  let server: any;
  const big = bytes(1024 * 1024);
  const upload = join(tmpdir(), `rust-quic-upload-${process.pid}.bin`);

  beforeAll(() => {
    writeFileSync(upload, big);
    server = Bun.serve({
      port: 0,
      h3: true,
      tls,
      // Production: a throwing handler's error is printed, not rendered by Bun's error page
      // (which bun test would count as this file's failure, as it does for Bun's own server).
      development: false,
      maxRequestBodySize: 4 * 1024 * 1024,
      async fetch(req, srv) {
        const url = new URL(req.url);
        switch (url.pathname) {
          case "/echo":
            return new Response(await req.arrayBuffer(), { headers: { "x-method": req.method } });
          case "/big":
            return new Response(big);
          case "/status":
            return new Response(null, { status: Number(url.searchParams.get("code")) });
          case "/headers": {
            const headers = new Headers();
            for (let i = 0; i < 50; i++) headers.set(`x-h${i}`, "v".repeat(40));
            headers.set("x-long", "L".repeat(2048));
            return new Response("ok", { headers });
          }
          case "/stream":
            return new Response(
              new ReadableStream({
                async pull(c) {
                  for (let i = 0; i < 4; i++) c.enqueue(new TextEncoder().encode(`chunk${i};`));
                  c.close();
                },
              }),
            );
          case "/broken":
            return new Response(
              new ReadableStream({
                start(c) {
                  c.enqueue(new TextEncoder().encode("partial"));
                  setTimeout(() => c.error(new Error("upstream failed")), 20);
                },
              }),
            );
          case "/throw":
            throw new Error("handler failed");
          case "/ip":
            return Response.json(srv.requestIP(req));
          case "/url":
            return new Response(req.url);
          default:
            return new Response("not found", { status: 404 });
        }
      },
    });
  });

  afterAll(() => server?.stop(true));

  const url = (path: string) => `https://127.0.0.1:${server.port}${path}`;

  test("UDP and TCP share the port number; TCP responses advertise h3 with Alt-Svc", async () => {
    expect(server.quic.port).toBe(server.port);
    const res = await fetch(url("/url"), { tls: { rejectUnauthorized: false } });
    expect(res.headers.get("alt-svc")).toBe(`h3=":${server.port}"; ma=86400`);
  });

  test("Bun's native lsquic fetch downloads 1 MB byte-exact", async () => {
    const r = await nativeFetch(url("/big"));
    expect(r).toEqual({ status: 200, length: big.length, sha256: sha256(big) });
  });

  test("Bun's native lsquic fetch POSTs 1 MB and gets it back", async () => {
    const r = await nativeFetch(url("/echo"), upload);
    expect(r.status).toBe(200);
    expect(r.sha256).toBe(sha256(big));
  });

  test("request url, method, headers and requestIP over HTTP/3", async () => {
    const r = await h3Client(url("/url?q=1&x=%20"));
    expect(r.status).toBe(200);
    expect(new TextDecoder().decode(r.body)).toBe(`https://127.0.0.1:${server.port}/url?q=1&x=%20`);
    const ip = await h3Client(url("/ip"));
    expect(JSON.parse(new TextDecoder().decode(ip.body))).toMatchObject({ address: "127.0.0.1", family: "IPv4" });
    const put = await h3Client(url("/echo"), "-X", "PUT", "--data", "abc");
    expect(put.header("x-method")).toBe("PUT");
    expect(new TextDecoder().decode(put.body)).toBe("abc");
  });

  test("status codes 200-503, with a Date header and no body where none is allowed", async () => {
    for (const code of [200, 201, 204, 301, 304, 400, 404, 418, 500, 503]) {
      const r = await h3Client(url(`/status?code=${code}`));
      expect(r.status).toBe(code);
      expect(r.header("date")).toBeString();
      expect(r.body.length).toBe(0);
    }
  });

  test("50 headers and a 2 kB header value", async () => {
    const r = await h3Client(url("/headers"));
    expect(r.status).toBe(200);
    expect(r.header("x-long")).toBe("L".repeat(2048));
    expect(r.header("x-h49")).toBe("v".repeat(40));
  });

  test("ReadableStream response bodies", async () => {
    const r = await h3Client(url("/stream"));
    expect(new TextDecoder().decode(r.body)).toBe("chunk0;chunk1;chunk2;chunk3;");
  });

  test("a body that fails half-way is reset, never delivered as complete", async () => {
    const r = await h3Client(url("/broken"));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("stream reset");
  });

  test("a throwing handler gives 500 and the server keeps serving", async () => {
    expect((await h3Client(url("/throw"))).status).toBe(500);
    expect((await h3Client(url("/url"))).status).toBe(200);
  });

  test("maxRequestBodySize gives 413 without reading the rest", async () => {
    const huge = join(tmpdir(), `rust-quic-huge-${process.pid}.bin`);
    writeFileSync(huge, bytes(5 * 1024 * 1024));
    const r = await h3Client(url("/echo"), "--data", `@${huge}`);
    expect(r.status).toBe(413);
  });

  test("quic.stats() counts the HTTP/3 side", () => {
    const s = server.quic.stats();
    expect(s.requests).toBeGreaterThan(5);
    expect(s.connectionsAccepted).toBeGreaterThan(5);
    expect(s.bytesSent).toBeGreaterThan(1024 * 1024);
    expect(s.packetsReceived).toBeGreaterThan(0);
  });
});

describe("Bun.serve h3 options", () => {
  test("h3 without tls is a TypeError naming tls", () => {
    expect(() => Bun.serve({ port: 0, h3: true, fetch: () => new Response("x") } as any)).toThrow(/tls/);
  });

  test("http1: false without h3 is a TypeError", () => {
    expect(() => Bun.serve({ port: 0, http1: false, tls, fetch: () => new Response("x") } as any)).toThrow(TypeError);
  });

  test("a truthy non-boolean h3 enables HTTP/3, as Bun reads its boolean options", async () => {
    const server = Bun.serve({ port: 0, h3: "yes", tls, fetch: () => new Response("truthy") } as any);
    try {
      expect(new TextDecoder().decode((await h3Client(`https://127.0.0.1:${server.port}/`)).body)).toBe("truthy");
    } finally {
      server.stop(true);
    }
  });

  test("http3: true (upstream's name) works the same", async () => {
    const server = Bun.serve({ port: 0, http3: true, tls, fetch: () => new Response("upstream name") } as any);
    try {
      const r = await h3Client(`https://127.0.0.1:${server.port}/`);
      expect(new TextDecoder().decode(r.body)).toBe("upstream name");
    } finally {
      server.stop(true);
    }
  });

  test("http1: false serves HTTP/3 only", async () => {
    const server = Bun.serve({ port: 0, h3: true, http1: false, tls, fetch: () => new Response("h3 only") } as any);
    try {
      expect(server.url.href).toBe(`https://localhost:${server.port}/`);
      const r = await h3Client(`https://127.0.0.1:${server.port}/`);
      expect(new TextDecoder().decode(r.body)).toBe("h3 only");
      await expect(fetch(`https://127.0.0.1:${server.port}/`, { tls: { rejectUnauthorized: false } })).rejects.toThrow();
    } finally {
      server.stop(true);
    }
  });

  test("a stopped HTTP/3 server lets the process exit by itself", async () => {
    const script = join(tmpdir(), `rust-quic-exit-${process.pid}.ts`);
    writeFileSync(
      script,
      `const s = Bun.serve({ port: 0, h3: true, tls: { cert: Bun.file(${JSON.stringify(tls.cert.name)}), key: Bun.file(${JSON.stringify(tls.key.name)}) }, fetch: () => new Response("bye") });
       console.log(s.port); setTimeout(() => s.stop(), 300);`,
    );
    const proc = Bun.spawn([BUN, "--preload", join(ROOT, "src", "js", "preload.ts"), script], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill(), 10_000);
    const code = await proc.exited;
    clearTimeout(timer);
    expect(code).toBe(0);
  });
});

describe("responses whose bytes are known go out in one engine call", () => {
  class Tagged extends Response {
    tag = "subclass";
  }
  let server: any;
  beforeAll(() => {
    server = Bun.serve({
      port: 0,
      h3: true,
      tls,
      routes: { "/static": new Response("static route", { headers: { "x-route": "1" } }) },
      fetch(req) {
        const { pathname } = new URL(req.url);
        if (pathname === "/text") return new Response("plain text");
        if (pathname === "/typed") return new Response(new Uint8Array([1, 2, 3]), { headers: { "content-type": "application/x-test" } });
        if (pathname === "/json") return Response.json({ ok: true });
        if (pathname === "/subclass") return new Tagged("from a subclass");
        if (pathname === "/used") {
          const r = new Response("read already");
          void r.text();
          return new Response("fresh one");
        }
        return new Response("no", { status: 404 });
      },
    });
  });
  afterAll(() => server.stop(true));
  const get = (path: string, method = "GET") =>
    fetch(`https://127.0.0.1:${server.port}${path}`, { method, protocol: "http3", tls: { rejectUnauthorized: false } } as any);

  test("a string body gets Bun's default content-type and its length", async () => {
    const res = await get("/text");
    expect(res.headers.get("content-type")).toBe("text/plain;charset=utf-8");
    expect(res.headers.get("content-length")).toBe("10");
    expect(await res.text()).toBe("plain text");
  });

  test("typed arrays, Response.json and subclasses still work through the tracked constructor", async () => {
    const typed = await get("/typed");
    expect(typed.headers.get("content-type")).toBe("application/x-test");
    expect([...new Uint8Array(await typed.arrayBuffer())]).toEqual([1, 2, 3]);
    expect(await (await get("/json")).json()).toEqual({ ok: true });
    expect(new Tagged("x")).toBeInstanceOf(Response);
    expect(await (await get("/subclass")).text()).toBe("from a subclass");
    expect(await (await get("/used")).text()).toBe("fresh one");
  });

  test("static routes: GET and HEAD answered by the engine, with Date and length; other methods by JS", async () => {
    await Bun.sleep(50); // the route's body is registered with the engine after a tick
    const res = await get("/static?x=1");
    expect(await res.text()).toBe("static route");
    expect(res.headers.get("x-route")).toBe("1");
    expect(res.headers.get("content-length")).toBe("12");
    expect(res.headers.get("date")).toMatch(/ GMT$/);
    const head = await get("/static", "HEAD");
    expect(head.headers.get("content-length")).toBe("12");
    expect(await head.text()).toBe("");
    const post = await get("/static", "POST");
    expect(await post.text()).toBe("static route");
    // A reload replaces the engine's copy too.
    server.reload({ routes: { "/static": new Response("reloaded") }, fetch: () => new Response("x") });
    await Bun.sleep(50);
    expect(await (await get("/static")).text()).toBe("reloaded");
  });
});
