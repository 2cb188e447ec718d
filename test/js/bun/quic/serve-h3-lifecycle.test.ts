// Bun.serve h3: SNI, stop / stop(true) / reload, many connections, body shapes.
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, bytes, h3Client, sha256, tls } from "./harness";

const insecure = { rejectUnauthorized: false };
const h3 = (url: string, init: any = {}) => fetch(url, { protocol: "http3", tls: insecure, ...init } as any);

function sniCert() {
  const dir = join(ROOT, "build", "certs");
  const cert = join(dir, "sni-cert.pem"), key = join(dir, "sni-key.pem");
  if (!existsSync(cert)) {
    spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "365",
      "-subj", "/CN=api.example.test", "-addext", "subjectAltName=DNS:api.example.test", "-keyout", key, "-out", cert]);
  }
  return { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
}

test("tls as an array serves each certificate by SNI (serverName)", async () => {
  const sni = sniCert();
  const server = Bun.serve({ port: 0, h3: true, tls: [tls, { ...sni, serverName: "api.example.test" }], fetch: () => new Response("sni ok") });
  try {
    // Trusting only the SNI certificate proves which one was presented.
    const r = await fetch(`https://127.0.0.1:${server.port}/`, { protocol: "http3", tls: { ca: sni.cert, serverName: "api.example.test" } } as any);
    expect(await r.text()).toBe("sni ok");
  } finally {
    server.stop(true);
  }
});

test("a second certificate without serverName is a TypeError naming it", () => {
  expect(() => Bun.serve({ port: 0, h3: true, tls: [tls, tls], fetch: () => new Response("x") })).toThrow(/serverName/);
});

test("stop() lets in-flight requests finish; stop(true) cuts them", async () => {
  let release!: () => void;
  const gate = new Promise<void>(r => (release = r));
  const server = Bun.serve({
    port: 0,
    h3: true,
    tls,
    async fetch(req: Request) {
      if (new URL(req.url).pathname === "/wait") await gate;
      return new Response("finished");
    },
  });
  const url = `https://127.0.0.1:${server.port}/wait`;
  const inflight = h3(url).then(r => r.text());
  await Bun.sleep(100);
  server.stop();
  release();
  expect(await inflight).toBe("finished");

  const forced = Bun.serve({ port: 0, h3: true, tls, fetch: () => new Promise<Response>(() => {}) });
  const cut = h3(`https://127.0.0.1:${forced.port}/never`).catch(e => e);
  await Bun.sleep(100);
  forced.stop(true);
  const err = await cut;
  expect(err).toBeInstanceOf(TypeError);
  // The request was never answered, so it is retried once on a fresh connection (as upstream), which the stopped server refuses.
  expect(["HTTP3StreamReset", "HTTP3ConnectionClosed", "ConnectionRefused"]).toContain(err.code);
});

test("reload() swaps the handlers of both protocols", async () => {
  const server = Bun.serve({ port: 0, h3: true, tls, fetch: () => new Response("v1") });
  try {
    const url = `https://127.0.0.1:${server.port}/`;
    expect(await (await h3(url)).text()).toBe("v1");
    server.reload({ fetch: () => new Response("v2") } as any);
    expect(await (await h3(url)).text()).toBe("v2");
    expect(await (await fetch(url, { tls: insecure })).text()).toBe("v2");
  } finally {
    server.stop(true);
  }
});

test("16 connections at once", async () => {
  const server = Bun.serve({ port: 0, h3: true, tls, fetch: req => new Response(new URL(req.url).pathname) });
  try {
    const before = server.quic!.stats().connectionsAccepted;
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => h3Client(`https://127.0.0.1:${server.port}/c${i}`)));
    expect(results.map(r => new TextDecoder().decode(r.body))).toEqual(Array.from({ length: 16 }, (_, i) => `/c${i}`));
    expect(server.quic!.stats().connectionsAccepted - before).toBe(16);
  } finally {
    server.stop(true);
  }
});

test("Bun.file and async-iterator response bodies; FormData, URLSearchParams and Blob request bodies", async () => {
  const file = join(ROOT, "build", "lifecycle-file.bin");
  await Bun.write(file, bytes(700_000));
  const server = Bun.serve({
    port: 0,
    h3: true,
    tls,
    async fetch(req: Request) {
      const { pathname } = new URL(req.url);
      if (pathname === "/file") return new Response(Bun.file(file));
      if (pathname === "/iter") {
        return new Response((async function* () {
          yield "one,";
          await Bun.sleep(5);
          yield "two";
        })() as any);
      }
      return new Response(`${req.headers.get("content-type")}|${await req.text()}`);
    },
  });
  try {
    const base = `https://127.0.0.1:${server.port}`;
    expect(sha256(new Uint8Array(await (await h3(base + "/file")).arrayBuffer()))).toBe(sha256(bytes(700_000)));
    expect(await (await h3(base + "/iter")).text()).toBe("one,two");
    const form = new FormData();
    form.set("field", "value");
    const formText = await (await h3(base + "/echo", { method: "POST", body: form })).text();
    expect(formText).toStartWith("multipart/form-data; boundary=");
    expect(formText).toContain('name="field"');
    expect(await (await h3(base + "/echo", { method: "POST", body: new URLSearchParams({ a: "1", b: "2" }) })).text()).toBe(
      "application/x-www-form-urlencoded;charset=UTF-8|a=1&b=2",
    );
    expect(await (await h3(base + "/echo", { method: "POST", body: new Blob(["blob!"], { type: "text/x-test" }) })).text()).toBe("text/x-test|blob!");
  } finally {
    server.stop(true);
  }
});
