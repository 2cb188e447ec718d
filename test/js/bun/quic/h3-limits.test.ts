// Bun.serve's h3Limits (the engine's per-client limits, quic.h us_quic_limits_t):
// option errors, and each limit crossed by a real client (our fetch, or stock
// Bun's node:quic on lsquic) with the outcome and counter the guide promises.
import { describe, expect, test } from "bun:test";
import { rawH3, requestFields, tls } from "./harness";

const insecure = { protocol: "http3", tls: { rejectUnauthorized: false } } as RequestInit;
const h3Only = (options: Record<string, unknown>): any => Bun.serve({ port: 0, h3: true, http1: false, tls, ...options } as any);
const urlOf = (server: any, path = "/") => `https://127.0.0.1:${server.port}${path}`;

describe("h3Limits", () => {
  test("wrong values are TypeErrors naming the option", () => {
    const base = { port: 0, h3: true, tls, fetch: () => new Response("x") };
    const attempt = (h3Limits: unknown, extra: object = {}) => () => Bun.serve({ ...base, ...extra, h3Limits } as any);
    expect(attempt(5)).toThrow(new TypeError("h3Limits must be an object"));
    expect(attempt({ maxConections: 1 })).toThrow(/^h3Limits\.maxConections is not a limit/);
    expect(attempt({ requestHeadTimeout: -1 })).toThrow(new TypeError("h3Limits.requestHeadTimeout must be a non-negative number of seconds"));
    expect(attempt({ requestBodyTimeout: "30" })).toThrow(new TypeError("h3Limits.requestBodyTimeout must be a non-negative number of seconds"));
    expect(attempt({ maxConnections: 1.5 })).toThrow(new TypeError("h3Limits.maxConnections must be a non-negative integer"));
    expect(attempt({ streamResetsPerSecond: 2 ** 32 })).toThrow(new TypeError("h3Limits.streamResetsPerSecond must be a non-negative integer"));
    expect(attempt({ maxConcurrentStreams: 0 })).toThrow(new TypeError("h3Limits.maxConcurrentStreams must be a positive integer"));
    expect(attempt({}, { h3: false })).toThrow(new TypeError("h3Limits needs h3: true"));
  });

  test("a request body that stalls gets 408, the handler sees the abort, and the server serves on", async () => {
    let aborted = false;
    using server = h3Only({
      h3Limits: { requestBodyTimeout: 0.3 },
      async fetch(req: Request) {
        if (req.method !== "POST") return new Response("ok");
        req.signal.addEventListener("abort", () => void (aborted = true));
        await req.text().catch(() => {});
        return new Response("read it all");
      },
    });
    // 100 bytes, then nothing: the stream is never closed.
    const body = new ReadableStream({ start: c => c.enqueue(new Uint8Array(100)) });
    const started = performance.now();
    const res = await fetch(urlOf(server), { ...insecure, method: "POST", body });
    expect(res.status).toBe(408);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(server.quic.stats().requestsTimedOut).toBe(1);
    expect(aborted).toBe(true);
    // A body that keeps coming is read whole, on the same server.
    const big = await fetch(urlOf(server), { ...insecure, method: "POST", body: Buffer.alloc(2_000_000, 7) });
    expect([big.status, await big.text()]).toEqual([200, "read it all"]);
    expect(server.quic.stats().connectionsClosedForLoad).toBe(0);
  });

  test("requests cancelled faster than streamResetsPerSecond close that connection, not the server", async () => {
    let started = 0;
    using server = h3Only({
      h3Limits: { streamResetsPerSecond: 5 },
      fetch(req: Request) {
        if (new URL(req.url).pathname === "/slow") {
          started++;
          return new Promise<Response>(() => {});
        }
        return new Response("ok");
      },
    });
    expect((await fetch(urlOf(server), insecure)).status).toBe(200);
    const controllers = Array.from({ length: 30 }, () => new AbortController());
    const pending = controllers.map(c => fetch(urlOf(server, "/slow"), { ...insecure, signal: c.signal }).catch(e => e));
    while (started < 30) await Bun.sleep(5);
    for (const c of controllers) c.abort();
    await Promise.all(pending);
    for (let i = 0; i < 100 && server.quic.stats().connectionsClosedForLoad === 0; i++) await Bun.sleep(10);
    expect(server.quic.stats().connectionsClosedForLoad).toBe(1);
    // A new connection is served.
    expect(await (await fetch(urlOf(server), insecure)).text()).toBe("ok");
  });

  test("maxConcurrentStreams: a client gets that many requests in flight on a connection, the rest wait", async () => {
    let inFlight = 0, most = 0;
    using server = h3Only({
      h3Limits: { maxConcurrentStreams: 2 },
      async fetch() {
        most = Math.max(most, ++inFlight);
        await Bun.sleep(30);
        inFlight--;
        return new Response("done");
      },
    });
    const bodies = await Promise.all(Array.from({ length: 8 }, () => fetch(urlOf(server), insecure).then(r => r.text())));
    expect(bodies).toEqual(Array(8).fill("done"));
    expect(most).toBe(2);
  });

  test("maxHeaderFields: a head past it gets 431; raising it lets it through", async () => {
    const headers = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`x-f${i}`, "v"]));
    using strict = h3Only({ fetch: () => new Response("in") });
    expect((await fetch(urlOf(strict), { ...insecure, headers })).status).toBe(431);
    expect(strict.quic.stats().headersTooLarge).toBe(1);
    using wide = h3Only({ h3Limits: { maxHeaderFields: 300 }, fetch: () => new Response("in") });
    const res = await fetch(urlOf(wide), { ...insecure, headers });
    expect([res.status, await res.text()]).toEqual([200, "in"]);
  });

  test("maxConnections: a second connection is refused while the first is open", async () => {
    using server = h3Only({ h3Limits: { maxConnections: 1 }, fetch: () => new Response("ok") });
    // Our fetch keeps its pooled connection open.
    expect(await (await fetch(urlOf(server), insecure)).text()).toBe("ok");
    // Stock Bun's lsquic client, on a connection of its own: refused (it may
    // report that only at its idle timeout, so the answer is not awaited long).
    const second = rawH3(server.port, requestFields("/")).catch(e => `failed ${e?.code ?? e}`);
    const outcome = await Promise.race([second, Bun.sleep(1500).then(() => "no answer")]);
    expect(outcome).not.toStartWith("200");
    expect(server.quic.stats().connectionsRefused).toBeGreaterThanOrEqual(1);
    expect(server.quic.stats().connectionsActive).toBe(1);
  }, 10_000);
});
