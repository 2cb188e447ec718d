// fetch(url, { protocol: "http3" }) on rust-quic.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { BUN, CERT, KEY, ROOT, bytes, sha256, startAioquicServer, tls } from "./harness";

const insecure = { rejectUnauthorized: false };
const h3 = (url: string, init: any = {}) => fetch(url, { protocol: "http3", tls: insecure, ...init } as any);

describe("fetch over HTTP/3 against our server", () => {
  let server: any;
  beforeAll(() => {
    server = Bun.serve({
      port: 0,
      h3: true,
      tls,
      async fetch(req: Request) {
        const url = new URL(req.url);
        switch (url.pathname) {
          case "/echo":
            return new Response(await req.arrayBuffer(), { headers: { "x-len": req.headers.get("content-length") ?? "none" } });
          case "/json":
            return Response.json({ ok: true, method: req.method });
          case "/status":
            return new Response(null, { status: Number(url.searchParams.get("code")) });
          case "/headers":
            return Response.json(Object.fromEntries(req.headers));
          case "/redirect":
            return Response.redirect("/json", 302);
          case "/see-other":
            return new Response(null, { status: 303, headers: { location: "/echo" } });
          case "/slow":
            return new Response(
              new ReadableStream({
                async pull(c) {
                  c.enqueue(new Uint8Array(16 * 1024));
                  await Bun.sleep(20);
                },
              }),
            );
          default:
            return new Response(`path ${url.pathname}`);
        }
      },
    });
  });
  afterAll(() => server?.stop(true));
  const url = (p: string) => `https://127.0.0.1:${server.port}${p}`;

  test("GET and JSON; the 'h3' alias", async () => {
    const r = await h3(url("/json"));
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ok: true, method: "GET" });
    const alias = await fetch(url("/x"), { protocol: "h3", tls: insecure } as any);
    expect(await alias.text()).toBe("path /x");
  });

  test("POST echo of 1 B to 8 MB is byte-exact and agrees with HTTP/1.1", async () => {
    for (const size of [1, 100, 10_000, 1024 * 1024, 8 * 1024 * 1024]) {
      const body = bytes(size);
      const over3 = await h3(url("/echo"), { method: "POST", body });
      const over1 = await fetch(url("/echo"), { method: "POST", body, tls: insecure });
      const [a, b] = [new Uint8Array(await over3.arrayBuffer()), new Uint8Array(await over1.arrayBuffer())];
      expect(sha256(a)).toBe(sha256(body));
      expect(sha256(a)).toBe(sha256(b));
      expect(over3.headers.get("x-len")).toBe(String(size));
    }
  });

  test("status codes 200-503 agree with HTTP/1.1", async () => {
    for (const code of [200, 201, 204, 304, 400, 404, 418, 500, 503]) {
      const a = await h3(url(`/status?code=${code}`));
      const b = await fetch(url(`/status?code=${code}`), { tls: insecure });
      expect(a.status).toBe(code);
      expect(a.status).toBe(b.status);
      expect((await a.arrayBuffer()).byteLength).toBe((await b.arrayBuffer()).byteLength);
    }
  });

  test("50 request headers and a 2 kB value reach the server", async () => {
    const headers: Record<string, string> = { "x-long": "L".repeat(2048) };
    for (let i = 0; i < 50; i++) headers[`x-h${i}`] = `v${i}`;
    const seen = (await (await h3(url("/headers"), { headers })).json()) as Record<string, string>;
    expect(seen["x-long"]).toBe("L".repeat(2048));
    expect(seen["x-h49"]).toBe("v49");
  });

  test("64 concurrent requests share one connection", async () => {
    const before = server.quic.stats().connectionsAccepted;
    const texts = await Promise.all(Array.from({ length: 64 }, (_, i) => h3(url(`/c${i}`)).then(r => r.text())));
    expect(texts.every((t, i) => t === `path /c${i}`)).toBe(true);
    expect(server.quic.stats().connectionsAccepted - before).toBeLessThanOrEqual(1);
  });

  test("redirects: follow (303 turns POST into GET), manual, error", async () => {
    const followed = await h3(url("/redirect"));
    expect(followed.redirected).toBe(true);
    expect(followed.url).toBe(url("/json"));
    const seeOther = await h3(url("/see-other"), { method: "POST", body: "dropped" });
    expect(await seeOther.text()).toBe("");
    const manual = await h3(url("/redirect"), { redirect: "manual" });
    expect(manual.status).toBe(302);
    await expect(h3(url("/redirect"), { redirect: "error" })).rejects.toThrow(TypeError);
  });

  test("HEAD and null bodies", async () => {
    const head = await h3(url("/json"), { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.body).toBeNull();
    expect((await h3(url("/status?code=204"))).body).toBeNull();
  });

  test("a ReadableStream upload is streamed", async () => {
    const chunks = ["alpha-", "beta-", "gamma"];
    const body = new ReadableStream({
      async pull(c) {
        const next = chunks.shift();
        if (next === undefined) return c.close();
        await Bun.sleep(5);
        c.enqueue(new TextEncoder().encode(next));
      },
    });
    const r = await h3(url("/echo"), { method: "POST", body, duplex: "half" });
    expect(await r.text()).toBe("alpha-beta-gamma");
    expect(r.headers.get("x-len")).toBe("none");
  });

  test("abort mid-response resets the stream, not the connection", async () => {
    const ac = new AbortController();
    const r = await h3(url("/slow"), { signal: ac.signal });
    const reader = r.body!.getReader();
    await reader.read();
    ac.abort();
    await expect(reader.read()).rejects.toThrow();
    const before = server.quic.stats().connectionsAccepted;
    expect(await (await h3(url("/after-abort"))).text()).toBe("path /after-abort");
    expect(server.quic.stats().connectionsAccepted).toBe(before);
  });

  test("AbortSignal.timeout rejects with a TimeoutError", async () => {
    const err = await h3(url("/slow"), { signal: AbortSignal.timeout(50) })
      .then(r => r.arrayBuffer())
      .catch(e => e);
    expect(err?.name).toBe("TimeoutError");
  });

  test("a slow reader holds the response back (flow control) and gets every byte", async () => {
    const sent = bytes(4 * 1024 * 1024);
    const res = await h3(url("/echo"), { method: "POST", body: sent });
    const reader = res.body!.getReader();
    const parts: Uint8Array[] = [];
    for (let i = 0; ; i++) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value);
      if (i < 40) await Bun.sleep(5); // long enough for the queue to fill and pause the stream
    }
    expect(sha256(Buffer.concat(parts))).toBe(sha256(sent));
  });

  test("an http: URL is rejected clearly", async () => {
    const err = await fetch(`http://127.0.0.1:${server.port}/`, { protocol: "http3" } as any).catch(e => e);
    expect(err).toBeInstanceOf(TypeError);
    expect(err.code).toBe("HTTP3RequiresHTTPS");
  });
});

describe("fetch over HTTP/3: TLS and failures", () => {
  let server: any;
  beforeAll(() => {
    server = Bun.serve({ port: 0, h3: true, http1: false, tls, fetch: () => new Response("verified") } as any);
  });
  afterAll(() => server?.stop(true));

  test("a self-signed certificate is refused by default", async () => {
    const err = await fetch(`https://localhost:${server.port}/`, { protocol: "http3" } as any).catch(e => e);
    expect(err.code).toBe("HTTP3HandshakeFailed");
  });

  test("tls.ca makes it trusted (upstream refuses custom CAs over QUIC)", async () => {
    const r = await fetch(`https://localhost:${server.port}/`, { protocol: "http3", tls: { ca: readFileSync(CERT, "utf8") } } as any);
    expect(await r.text()).toBe("verified");
  });

  test("tls.serverName is checked against the certificate", async () => {
    const err = await fetch(`https://127.0.0.1:${server.port}/`, {
      protocol: "http3",
      tls: { ca: readFileSync(CERT, "utf8"), serverName: "not-in-the-cert.test" },
    } as any).catch(e => e);
    expect(err.code).toBe("HTTP3HandshakeFailed");
  });

  test("a closed UDP port fails fast with ConnectionRefused", async () => {
    const sock = createSocket("udp4");
    await new Promise<void>(r => sock.bind(0, "127.0.0.1", () => r()));
    const port = sock.address().port;
    sock.close();
    const start = performance.now();
    const err = await fetch(`https://127.0.0.1:${port}/`, { protocol: "http3", tls: insecure } as any).catch(e => e);
    expect(err.code).toBe("ConnectionRefused");
    expect(performance.now() - start).toBeLessThan(2000);
  });

  test("the QUIC work runs on the client thread, not on the JS thread's engine loop", async () => {
    // A client-only process: its fetch needs no embedded engine loop (no
    // "quic-engine" thread: that one runs servers, Bun.quic and WebTransport), and
    // the thread that does its QUIC work is there.
    const script = `const r = await fetch("https://127.0.0.1:${server.port}/", { protocol: "http3", tls: { rejectUnauthorized: false } });
      await r.text();
      const { readdirSync, readFileSync } = require("node:fs");
      console.log(readdirSync("/proc/self/task").map(t => readFileSync("/proc/self/task/" + t + "/comm", "utf8").trim()).join(","));`;
    const proc = Bun.spawn([BUN, "--preload", join(ROOT, "src", "js", "preload.ts"), "-e", script], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill(), 10_000);
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    clearTimeout(timer);
    const threads = out.trim().split(",");
    expect(threads).toContain("quic-fetch");
    expect(threads).not.toContain("quic-engine");
    expect(code).toBe(0);
  });

  test("a script that used a pooled connection exits by itself", async () => {
    const script = `const r = await fetch("https://127.0.0.1:${server.port}/", { protocol: "http3", tls: { rejectUnauthorized: false } }); console.log(await r.text());`;
    const proc = Bun.spawn([BUN, "--preload", join(ROOT, "src", "js", "preload.ts"), "-e", script], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill(), 10_000);
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    clearTimeout(timer);
    expect(out.trim()).toBe("verified");
    expect(code).toBe(0);
  });
});

describe("fetch over HTTP/3 against servers no one here wrote", () => {
  test("Bun 1.4.5's native lsquic Bun.serve: 1 MB download and POST echo", async () => {
    const site = join(ROOT, "build", "fetch-site");
    await Bun.write(join(site, "big.bin"), bytes(1024 * 1024));
    const env = { PATH: process.env.PATH! };
    const proc = Bun.spawn([BUN, "--no-install", join(ROOT, "tests", "interop", "bun_native_server.mjs"), CERT, KEY, site], { cwd: "/tmp", env, stdout: "pipe", stderr: "inherit" });
    try {
      const reader = proc.stdout.getReader();
      const { value } = await reader.read();
      const port = Number(new TextDecoder().decode(value).match(/listening on (\d+)/)![1]);
      const big = new Uint8Array(await (await h3(`https://127.0.0.1:${port}/big.bin`)).arrayBuffer());
      expect(sha256(big)).toBe(sha256(bytes(1024 * 1024)));
      const echoed = await (await h3(`https://127.0.0.1:${port}/echo`, { method: "POST", body: bytes(300_000) })).arrayBuffer();
      expect(sha256(echoed)).toBe(sha256(bytes(300_000)));
    } finally {
      proc.kill();
    }
  });

  test("aioquic's http3_server.py: page and echo", async () => {
    const { port, proc } = await startAioquicServer();
    try {
      let page: Response | undefined;
      for (let i = 0; i < 100 && !page; i++) {
        page = await h3(`https://127.0.0.1:${port}/`).catch(() => undefined);
        if (!page) await Bun.sleep(100);
      }
      expect(await page!.text()).toContain("aioquic");
      const echo = await h3(`https://127.0.0.1:${port}/echo`, { method: "POST", body: "hello aioquic" });
      expect(await echo.text()).toBe("hello aioquic");
    } finally {
      proc.kill();
    }
  });
});
