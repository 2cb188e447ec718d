// Alt-Svc upgrade for fetch, behind BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP3_CLIENT=1.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { AltSvcCache } from "../../../../src/js/bun/alt-svc";
import { BUN, ROOT, tls } from "./harness";

describe("AltSvcCache", () => {
  const origin = new URL("https://example.test:8443/path");

  test("records h3 for the same host, honours ma, clear", () => {
    const c = new AltSvcCache();
    c.record(origin, 'h2=":443", h3=":9443"; ma=60', 1000);
    expect(c.lookup(origin, 1000)).toBe(9443);
    expect(c.lookup(origin, 1000 + 60_000)).toBeUndefined(); // expired and dropped
    c.record(origin, 'h3="example.test:7443"', 0);
    expect(c.lookup(origin, 0)).toBe(7443);
    c.record(origin, "clear");
    expect(c.lookup(origin, 0)).toBeUndefined();
  });

  test("ignores other hosts, other protocols, bad ports and http: origins", () => {
    const c = new AltSvcCache();
    c.record(origin, 'h3="other.test:443"', 0);
    c.record(origin, 'h3-29=":443"', 0);
    c.record(origin, 'h3=":99999"', 0);
    c.record(new URL("http://example.test/"), 'h3=":443"', 0);
    expect(c.size).toBe(0);
  });

  test("keeps at most 256 origins, dropping the oldest", () => {
    const c = new AltSvcCache();
    for (let i = 0; i < 300; i++) c.record(new URL(`https://h${i}.test/`), 'h3=":443"', 0);
    expect(c.size).toBe(256);
    expect(c.lookup(new URL("https://h0.test/"), 0)).toBeUndefined();
    expect(c.lookup(new URL("https://h299.test/"), 0)).toBe(443);
  });
});

for (const [how, env, flags] of [
  ["the feature flag", { BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP3_CLIENT: "1" }, []],
  ["--experimental-http3-fetch", {}, ["--experimental-http3-fetch"]],
] as const)
test(`with ${how}, the second request to an origin goes over HTTP/3`, async () => {
  const server = Bun.serve({ port: 0, h3: true, tls, fetch: req => new Response(new URL(req.url).pathname) });
  try {
    const before = server.quic!.stats().requests;
    const script = `
      const o = { tls: { rejectUnauthorized: false } };
      const a = await fetch("https://127.0.0.1:${server.port}/first", o);
      const b = await fetch("https://127.0.0.1:${server.port}/second", o);
      console.log(await a.text(), await b.text());`;
    const proc = Bun.spawn([BUN, ...flags, "--preload", join(ROOT, "src", "js", "preload.ts"), "-e", script], {
      env: { ...process.env, ...env },
      stdout: "pipe",
      stderr: "inherit",
    });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    expect(code).toBe(0);
    expect(out.trim()).toBe("/first /second");
    expect(server.quic!.stats().requests - before).toBe(1); // only /second came over HTTP/3
  } finally {
    server.stop(true);
  }
});
