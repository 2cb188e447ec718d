// The same Bun.serve program and the same fetch calls over HTTP/1.1 (Bun's own
// server and client) and HTTP/3 (ours): every body kind x size x way of
// consuming it must give identical observable results. A divergence between
// the protocols is a failure.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bytes, fetchOver, sha256, tls } from "./harness";

const SIZES = [0, 1, 64 * 1024, 1024 * 1024, 8 * 1024 * 1024];
const dir = mkdtempSync(join(tmpdir(), "matrix-"));
const payload = new Map<number, Uint8Array>();
for (const size of SIZES) {
  payload.set(size, bytes(size));
  writeFileSync(join(dir, `${size}.bin`), bytes(size));
}
/** Printable text of `size` bytes (string bodies must survive UTF-8). */
const textOf = (size: number) => Buffer.from((payload.get(size) ?? bytes(size)).map(b => 97 + (b % 26))).toString("latin1");

function chunksOf(data: Uint8Array, size = 16 * 1024): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < data.length; off += size) out.push(data.subarray(off, off + size));
  return out;
}

/** Response bodies as a handler builds them. */
const responseKinds: Record<string, (size: number) => any> = {
  string: size => textOf(size),
  Uint8Array: size => payload.get(size)!,
  ArrayBuffer: size => payload.get(size)!.slice().buffer,
  Blob: size => new Blob([payload.get(size)!], { type: "application/x-matrix" }),
  "Bun.file": size => Bun.file(join(dir, `${size}.bin`)),
  "ReadableStream (pull)": size => {
    const parts = chunksOf(payload.get(size)!);
    return new ReadableStream({ pull: c => (parts.length ? c.enqueue(parts.shift()!) : c.close()) });
  },
  "ReadableStream (direct)": size =>
    new ReadableStream({
      type: "direct",
      async pull(c: any) {
        for (const part of chunksOf(payload.get(size)!)) {
          c.write(part);
          await c.flush();
        }
        c.end();
      },
    } as any),
  "async iterator": size =>
    (async function* () {
      for (const part of chunksOf(payload.get(size)!)) yield part;
    })(),
  FormData: size => {
    const form = new FormData();
    form.append("field", textOf(Math.min(size, 64 * 1024)));
    return form;
  },
};

/** Ways of consuming a response, each reduced to something comparable. */
const consumers: Record<string, (res: Response) => Promise<string>> = {
  text: async r => `text ${sha256(Buffer.from(await r.text(), "latin1"))}`,
  arrayBuffer: async r => {
    const b = await r.arrayBuffer();
    return `arrayBuffer ${b.byteLength} ${sha256(b)}`;
  },
  bytes: async r => {
    const b = await r.bytes();
    return `bytes ${b.byteLength} ${sha256(b)}`;
  },
  // blob().type is left out: Bun's own client derives it inconsistently (from content-type
  // for bodies it buffered, "" for streamed ones, text/plain without a content-type).
  blob: async r => {
    const b = await r.blob();
    return `blob ${b.size} ${sha256(await b.arrayBuffer())}`;
  },
  stream: async r => {
    let n = 0;
    const hasher = new Bun.CryptoHasher("sha256");
    if (r.body) for await (const chunk of r.body) (n += chunk.byteLength), hasher.update(chunk);
    return `stream ${r.body === null ? "null" : n} ${hasher.digest("hex")}`;
  },
  clone: async r => {
    const copy = r.clone();
    const [a, b] = await Promise.all([r.arrayBuffer(), copy.arrayBuffer()]);
    return `clone ${a.byteLength} ${sha256(a)} ${sha256(b)}`;
  },
  json: async r => {
    try {
      return `json ${JSON.stringify(await r.json())}`;
    } catch (err) {
      return `json ${(err as Error).name}`;
    }
  },
};

const UNCOMPARED = new Set(["date", "alt-svc", "transfer-encoding", "connection", "keep-alive"]);
function head(r: Response) {
  const h: Record<string, string> = {};
  for (const [name, value] of r.headers) if (!UNCOMPARED.has(name)) h[name] = value.replace(/boundary=\S+/, "boundary=B");
  return { status: r.status, headers: h, bodyNull: r.body === null };
}

let server: any;
let base: string;

beforeAll(() => {
  server = Bun.serve({
    port: 0,
    h3: true,
    tls,
    maxRequestBodySize: 64 * 1024 * 1024,
    async fetch(req: Request) {
      const url = new URL(req.url);
      const [, what, kind, size] = url.pathname.split("/").map(decodeURIComponent);
      if (what === "response") return new Response(responseKinds[kind](Number(size)), { headers: { "x-kind": kind } });
      if (what === "json") return Response.json({ size: Number(size), text: textOf(Math.min(Number(size), 1024)) });
      if (what === "echo") {
        const body = new Uint8Array(await req.arrayBuffer());
        return Response.json({
          method: req.method,
          contentType: (req.headers.get("content-type") ?? "").replace(/boundary=\S+/, "boundary=B"),
          contentLength: req.headers.get("content-length"),
          received: body.byteLength,
          // A form's serialisation carries its random boundary: compare its length only.
          sha: req.headers.get("content-type")?.startsWith("multipart/") ? "form" : sha256(body),
        });
      }
      if (what === "status") return new Response(size === "204" || size === "304" ? null : `status ${size}`, { status: Number(size) });
      if (what === "throw") throw new Error("handler failed");
      return new Response("not found", { status: 404 });
    },
  } as any);
  base = `https://127.0.0.1:${server.port}`;
});
afterAll(() => server?.stop(true));

async function bothWays(path: string, init: RequestInit, consume: (r: Response) => Promise<string>) {
  const out: Record<string, unknown> = {};
  for (const protocol of ["h1", "h3"] as const) {
    try {
      const res = await fetchOver(protocol, base + path, init);
      out[protocol] = { ...head(res), body: await consume(res) };
    } catch (err: any) {
      out[protocol] = { error: err?.name, code: err?.code };
    }
  }
  return out as { h1: unknown; h3: unknown };
}

describe("response bodies: kind x size x consumption", () => {
  for (const kind of Object.keys(responseKinds)) {
    for (const size of SIZES) {
      if (kind === "FormData" && size > 64 * 1024) continue; // one form per size class is enough
      // Every consumption for sizes up to 1 MiB; the 8 MiB bodies are read whole and as a stream.
      const ways = size > 1024 * 1024 ? ["bytes", "stream"] : Object.keys(consumers).filter(c => c !== "json");
      test(`${kind}, ${size} B: ${ways.join(", ")}`, async () => {
        for (const way of ways) {
          for (const method of way === "bytes" ? ["GET", "HEAD"] : ["GET"]) {
            const { h1, h3 } = await bothWays(`/response/${encodeURIComponent(kind)}/${size}`, { method }, consumers[way]);
            if (kind === "FormData") {
              // The multipart boundary is random per serialisation; its length is fixed.
              expect(JSON.stringify(h3).replace(/[0-9a-f]{64}/g, "H")).toBe(JSON.stringify(h1).replace(/[0-9a-f]{64}/g, "H"));
            } else {
              if (kind === "ReadableStream (direct)") {
                // Known difference: a direct stream that flush()es before end() is sent chunked by
                // Bun's server; its flushes are invisible to a reader, so a small one ready at once
                // gets a content-length over HTTP/3.
                delete (h1 as any).headers?.["content-length"];
                delete (h3 as any).headers?.["content-length"];
              }
              expect({ way, method, ...(h3 as object) }).toEqual({ way, method, ...(h1 as object) });
            }
          }
        }
      }, 60_000);
    }
  }
});

describe("request bodies: kind x size", () => {
  const requestKinds: Record<string, (size: number) => any> = {
    string: size => textOf(size),
    Uint8Array: size => payload.get(size)!,
    Blob: size => new Blob([payload.get(size)!], { type: "application/x-matrix" }),
    "Bun.file": size => Bun.file(join(dir, `${size}.bin`)),
    ReadableStream: size => {
      const parts = chunksOf(payload.get(size)!);
      return new ReadableStream({ pull: c => (parts.length ? c.enqueue(parts.shift()!) : c.close()) });
    },
    FormData: size => {
      const form = new FormData();
      form.append("field", textOf(Math.min(size, 64 * 1024)));
      return form;
    },
    URLSearchParams: size => new URLSearchParams({ q: textOf(Math.min(size, 64 * 1024)) }),
  };
  for (const kind of Object.keys(requestKinds)) {
    test(`${kind} at every size`, async () => {
      for (const size of SIZES) {
        if ((kind === "FormData" || kind === "URLSearchParams") && size > 64 * 1024) continue;
        for (const method of ["POST", "PUT"]) {
          const init = () => ({ method, body: requestKinds[kind](size), duplex: "half" }) as RequestInit;
          const h1 = await (await fetchOver("h1", `${base}/echo`, init())).json();
          const h3 = await (await fetchOver("h3", `${base}/echo`, init())).json();
          expect({ kind, size, ...(h3 as object) }).toEqual({ kind, size, ...(h1 as object) });
        }
      }
    }, 60_000);
  }
});

describe("statuses, JSON and errors", () => {
  test("json() of a JSON response and of a non-JSON one", async () => {
    for (const path of ["/json/x/10", "/json/x/2000", "/response/string/10"]) {
      const { h1, h3 } = await bothWays(path, {}, consumers.json);
      expect(h3).toEqual(h1);
    }
  });

  test("every status class, with and without a body", async () => {
    for (const status of [200, 201, 204, 301, 304, 400, 404, 418, 500, 503]) {
      const { h1, h3 } = await bothWays(`/status/x/${status}`, { redirect: "manual" }, consumers.text);
      expect({ status, ...(h3 as object) }).toEqual({ status, ...(h1 as object) });
    }
  });

  test("a throwing handler, in production and in development: Bun's 500 over both", async () => {
    // In a process of its own: Bun's server prints the error, which bun test would count as this test's.
    const script = `
      const tls = { cert: Bun.file(${JSON.stringify(tls.cert.name)}), key: Bun.file(${JSON.stringify(tls.key.name)}) };
      const out = {};
      for (const development of [false, true]) {
        const s = Bun.serve({ port: 0, h3: true, tls, development, fetch(req) {
          if (req.url.endsWith("/async")) return Promise.reject(new Error("async secret"));
          throw new Error("sync secret");
        } });
        for (const path of ["/sync", "/async"]) for (const p of ["h1", "h3"]) {
          const r = await fetch("https://127.0.0.1:" + s.port + path, { tls: { rejectUnauthorized: false }, ...(p === "h3" ? { protocol: "http3" } : {}) });
          const body = await r.text();
          out[development + path + " " + p] = { status: r.status, type: r.headers.get("content-type"), page: body.startsWith("<!doctype html>"), secret: body.includes("secret"), text: body.length < 100 ? body : "" };
        }
        s.stop(true);
      }
      console.log(JSON.stringify(out));
    `;
    const proc = Bun.spawn([process.execPath, "--preload", join(import.meta.dir, "../../../../src/js/preload.ts"), "-e", script], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    // Exit code 1 is expected (the handlers' errors); a child that printed no result says why here.
    if (!out.startsWith("{")) throw new Error(`the child exited with ${code}, printing ${JSON.stringify(out)}; its stderr:\n${err}`);
    const seen = JSON.parse(out);
    for (const key of Object.keys(seen).filter(k => k.endsWith(" h1"))) expect({ key, ...seen[key.replace(/h1$/, "h3")] }).toEqual({ key, ...seen[key] });
    expect(seen["false/sync h3"]).toEqual({ status: 500, type: "text/plain", page: false, secret: false, text: "Something went wrong!" });
    expect(seen["true/sync h3"]).toMatchObject({ status: 500, type: "text/html;charset=utf-8", page: true, secret: true });
    // Both protocols' errors were printed, as Bun prints them.
    expect(err.match(/sync secret/g)!.length).toBeGreaterThanOrEqual(4);
  });

  test("a bad URL scheme and an aborted request fail with the same error classes", async () => {
    const aborted = await bothWays("/response/string/10", { signal: AbortSignal.abort() }, consumers.text);
    expect(aborted.h3).toEqual(aborted.h1);
    const timedOut = await bothWays("/response/string/10", { signal: AbortSignal.timeout(0) }, consumers.text);
    expect((timedOut.h3 as any).error).toBe((timedOut.h1 as any).error);
  });
});
