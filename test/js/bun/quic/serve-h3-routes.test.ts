// routes, Expect, aborts and large bodies on Bun.serve({ h3: true }).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { writeFileSync } from "node:fs";
import { bytes, h3Client, nativeFetch, sha256, tls } from "./harness";

describe("routes over HTTP/3 and HTTP/1.1", () => {
  let server: any;
  let aborted = 0;
  beforeAll(() => {
    server = Bun.serve({
      port: 0,
      h3: true,
      tls,
      routes: {
        "/static": new Response("static body", { headers: { "x-route": "static" } }),
        "/users/:id": (req: { params: Record<string, string> }) => new Response(`user ${req.params.id}`),
        "/items/:group/:item": (req: { params: Record<string, string> }) => Response.json(req.params),
        "/api/*": {
          GET: () => new Response("api get"),
          POST: async (req: Request) => new Response(`api post ${(await req.text()).length}`),
        },
        "/slow": (req: Request) =>
          new Response(
            new ReadableStream({
              async pull(c) {
                if (req.signal.aborted) return c.close();
                c.enqueue(new Uint8Array(64 * 1024));
                await Bun.sleep(5);
              },
            }),
          ),
      },
      fetch(req: Request) {
        const { pathname } = new URL(req.url);
        if (pathname === "/watch-abort") {
          req.signal.addEventListener("abort", () => aborted++);
          return new Promise<Response>(() => {}); // never answers: only the abort ends it
        }
        return new Response(`fallback ${req.method} ${pathname}`);
      },
    } as any);
  });
  afterAll(() => server?.stop(true));
  const url = (p: string) => `https://127.0.0.1:${server.port}${p}`;
  const text = (b: Uint8Array) => new TextDecoder().decode(b);

  test("a static Response route, with Alt-Svc on TCP", async () => {
    const h3 = await h3Client(url("/static"));
    expect(text(h3.body)).toBe("static body");
    expect(h3.header("x-route")).toBe("static");
    const tcp = await fetch(url("/static"), { tls: { rejectUnauthorized: false } });
    expect(await tcp.text()).toBe("static body");
    expect(tcp.headers.get("alt-svc")).toBe(`h3=":${server.port}"; ma=86400`);
  });

  test("static routes are answered on the engine thread: the JS thread is not woken for them", async () => {
    const { loopState } = await import("../../../../src/js/internal/rust-quic/loop");
    const get = () => fetch(url("/static"), { protocol: "http3", tls: { rejectUnauthorized: false } } as RequestInit).then(r => r.text());
    expect(await get()).toBe("static body"); // the connection: its handshake wakes JS
    const before = loopState().deliveries;
    for (let i = 0; i < 50; i++) expect(await get()).toBe("static body");
    // 50 requests on the pooled connection: no callback of the server's ran for them.
    expect(loopState().deliveries - before).toBeLessThan(5);
  });

  test(":params", async () => {
    expect(text((await h3Client(url("/users/42"))).body)).toBe("user 42");
    expect(JSON.parse(text((await h3Client(url("/items/a%20b/7"))).body))).toEqual({ group: "a b", item: "7" });
  });

  test("per-method routes; a method without a handler falls through to fetch", async () => {
    expect(text((await h3Client(url("/api/x"))).body)).toBe("api get");
    expect(text((await h3Client(url("/api/x"), "--data", "12345")).body)).toBe("api post 5");
    expect(text((await h3Client(url("/api/x"), "-X", "DELETE")).body)).toBe("fallback DELETE /api/x");
    expect(text((await h3Client(url("/elsewhere"))).body)).toBe("fallback GET /elsewhere");
  });

  test("Expect: 100-continue in any casing gets an interim 100 and reaches the handler", async () => {
    const r = await h3Client(url("/api/x"), "-H", "expect: 100-Continue", "--data", "abc");
    expect(r.stderr).toContain(":status: 100");
    expect(text(r.body)).toBe("api post 3");
  });

  test("another Expect value gets 417", async () => {
    const r = await h3Client(url("/api/x"), "-H", "expect: something-else", "--data", "abc");
    expect(r.status).toBe(417);
  });

  test("req.signal aborts when the client goes away mid-request", async () => {
    // The handler never answers; our client gives up after 1 s and closes the connection.
    const r = await h3Client(url("/watch-abort"), "--timeout", "1");
    expect(r.code).toBe(3);
    for (let i = 0; i < 50 && aborted === 0; i++) await Bun.sleep(20);
    expect(aborted).toBe(1);
  });

  test("a client leaving mid-response leaves the server serving", async () => {
    const r = await h3Client(url("/slow"), "--timeout", "1");
    expect(r.code).toBe(3);
    expect(text((await h3Client(url("/users/1"))).body)).toBe("user 1");
  });
});

describe("large bodies", () => {
  test("8 MB POST through Bun's native lsquic client comes back byte-exact", async () => {
    const server = Bun.serve({ port: 0, h3: true, tls, async fetch(req: Request) { return new Response(await req.arrayBuffer()); } } as any);
    try {
      const data = bytes(8 * 1024 * 1024);
      const file = join(tmpdir(), `rust-quic-8mb-${process.pid}.bin`);
      writeFileSync(file, data);
      const r = await nativeFetch(`https://127.0.0.1:${server.port}/`, file);
      expect(r).toEqual({ status: 200, length: data.length, sha256: sha256(data) });
    } finally {
      server.stop(true);
    }
  });
});
