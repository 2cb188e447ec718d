// Bun.serve h3: passphrase-protected keys, the error handler, development mode.
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CERT, KEY, ROOT, h3Client } from "./harness";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

test("a passphrase-protected key works over HTTP/3; a wrong passphrase is refused clearly", async () => {
  const encrypted = join(ROOT, "build", "certs", "key-encrypted.pem");
  if (!existsSync(encrypted)) spawnSync("openssl", ["pkey", "-in", KEY, "-aes256", "-passout", "pass:s3cret", "-out", encrypted]);
  const tls = { cert: readFileSync(CERT, "utf8"), key: readFileSync(encrypted, "utf8"), passphrase: "s3cret" };
  const server = Bun.serve({ port: 0, h3: true, tls, fetch: () => new Response("unlocked") });
  try {
    expect(text((await h3Client(`https://127.0.0.1:${server.port}/`)).body)).toBe("unlocked");
  } finally {
    server.stop(true);
  }
  expect(() => Bun.serve({ port: 0, h3: true, http1: false, tls: { ...tls, passphrase: "wrong" }, fetch: () => new Response("x") } as any)).toThrow(/passphrase|key/);
});

test("the error handler's Response is sent over HTTP/3", async () => {
  const server = Bun.serve({
    port: 0,
    h3: true,
    tls: { cert: Bun.file(CERT), key: Bun.file(KEY) },
    fetch() {
      throw new Error("boom");
    },
    error(err) {
      return new Response(`custom: ${err.message}`, { status: 503 });
    },
  });
  try {
    const r = await h3Client(`https://127.0.0.1:${server.port}/`);
    expect(r.status).toBe(503);
    expect(text(r.body)).toBe("custom: boom");
  } finally {
    server.stop(true);
  }
});

// Development and production error answers: protocol-matrix.test.ts (in a process of its own, side by side with HTTP/1.1).
